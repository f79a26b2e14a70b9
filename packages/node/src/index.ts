export { init } from "./sdk.ts";
export { registerHealthCheck } from "./health.ts";
export type { HealthCheck, HealthResult, HealthStatus } from "@threadline/core";
export type { ThreadlineHandle } from "./sdk.ts";
export type { CustomerSource, InitOptions, OtlpProtocol } from "./config.ts";
export type { PipelineStats, SignalStats } from "./export/pipeline.ts";
export type { DropReason } from "./export/protocol.ts";
export {
  getCustomerId,
  setHttpRoute,
  withCustomer,
  ThreadlineError,
} from "@threadline/core";
export { withMessageContext } from "@threadline/instrumentation-amqplib";
