export {
  decodeLogsRequest,
  decodeMetricsRequest,
  decodeTraceRequest,
  spanAttributeKeys,
  startOtlpReceiver,
} from "./otlp-receiver.ts";
export type {
  Attrs,
  OtlpReceiver,
  ReceivedLog,
  ReceivedMetric,
  ReceivedPoint,
  ReceivedRequest,
  ReceivedSpan,
  Responder,
} from "./otlp-receiver.ts";
export { cleanEnv, exitWithin, startService } from "./service.ts";
export type { RunningService, ServiceOptions } from "./service.ts";
export { startRecordingServer } from "./recording-server.ts";
export type { RecordedRequest, RecordingServer } from "./recording-server.ts";
export { waitFor } from "./wait.ts";
export { writeRulesFile } from "./rules-file.ts";
export type { RulesFile } from "./rules-file.ts";
export { startForwardProxy } from "./forward-proxy.ts";
export type { ForwardProxy, ProxiedRequest } from "./forward-proxy.ts";
export {
  freePort,
  startPglite,
  startPostgres,
  startRabbitMQ,
} from "./servers.ts";
export type { RunningPostgres, RunningServer } from "./servers.ts";
export { stopTestServers, testBroker, testDatabase } from "./shared-servers.ts";
export { startShop } from "./shop.ts";
export type { Shop, ShopOptions } from "./shop.ts";
export { selfSignedCertificate } from "./tls.ts";
export type { SelfSigned } from "./tls.ts";
