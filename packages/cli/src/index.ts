export { startDevServer, DevServerError } from "./dev-server.ts";
export type { DevServer, DevServerOptions } from "./dev-server.ts";
export { Store } from "./store.ts";
export type { StoreOptions, ChangedTrace, ChangedTraces } from "./store.ts";
export { OtlpReceiver } from "./receiver.ts";
export type { ReceiverOptions, ReceiverStats } from "./receiver.ts";
export { ViewerBackend } from "./backends/viewer-backend.ts";
export {
  describeSpan,
  formatDuration,
  formatSearch,
  formatTrace,
} from "./format.ts";
export {
  paramsFromQuery,
  parseAttribute,
  parseDuration,
  parseTime,
  queryFromParams,
} from "./query.ts";
export { defaultDbPath, defaultViewerUrl } from "./paths.ts";
export { main } from "./main.ts";
export type {
  LogRecord,
  SearchQuery,
  SpanEvent,
  SpanRecord,
  TraceBackend,
  TraceDetail,
  TraceSummary,
} from "./model.ts";
export { JaegerBackend, jaegerApiV3 } from "./backends/jaeger-backend.ts";
export type {
  FindParams,
  JaegerApiV3,
  JaegerOptions,
} from "./backends/jaeger-backend.ts";
export { ElasticsearchBackend } from "./backends/elasticsearch-backend.ts";
