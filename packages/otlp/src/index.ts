export { ProtoWriter } from "./proto-writer.ts";
export { TraceEncoder, msToNanosString } from "./trace-encoder.ts";
export { LogsEncoder } from "./logs-encoder.ts";
export { anyValueToJson, keyValuesToJson } from "./any-value.ts";
export type {
  AnyValue,
  ApiSpanKind,
  Attributes,
  LogRecordData,
  Scope,
  SpanData,
  SpanEventData,
  SpanLinkData,
} from "./model.ts";
