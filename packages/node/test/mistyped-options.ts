// Each init() option given a value of another type than it takes, as a
// JavaScript caller or settings read at run time may give it; typed by
// InitOptions' keys, so that an option added later is added here too.
import type { InitOptions } from "../src/config.ts";

export const MISTYPED_OPTIONS: Readonly<
  Record<keyof Required<InitOptions>, unknown>
> = {
  serviceName: {},
  resourceAttributes: 5,
  endpoint: 123,
  headers: 5,
  protocol: 5,
  sampleRatio: "0.5",
  edge: "false",
  trustedCallers: 5,
  untrustedTraceparent: "linked",
  trustedProxies: { loopback: true },
  internalHosts: true,
  thirdParties: 5,
  customerHeader: 5,
  customerFromRequest: "x-customer-id",
  logFields: 5,
  logRedact: 5,
  exportLogs: "false",
  exportTraces: 0,
  exportMetrics: "none",
  shutdownTimeoutMs: "3000",
  exportThread: true,
  disabledInstrumentations: 5,
  ignoreIncomingPaths: { "/health": true },
  selfCheck: "false",
  runtimeMetrics: 1,
  hostMetrics: "true",
  prometheus: true,
  alarms: "on",
  health: 8080,
  pgRecordParameters: "yes",
  pgSqlCommenter: 1,
  amqpConsumerContext: 5,
  amqpTrustMessageBaggage: "true",
  amqpExternalExchanges: 5,
  watchUrl: true,
  watchIntervalMs: "5000",
  watchHeaders: 5,
};
