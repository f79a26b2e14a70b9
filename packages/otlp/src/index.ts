export {
  MAX_TIME_MS,
  ProtoWriter,
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_LEN,
  WIRE_VARINT,
  type Allocate,
} from "./proto-writer.ts";
export { TraceEncoder, msToNanosString } from "./trace-encoder.ts";
export { LogsEncoder } from "./logs-encoder.ts";
export { anyValueToJson, keyValuesToJson, writeAnyValue } from "./any-value.ts";
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
export { OtlpDecodeError, ProtoReader } from "./proto-reader.ts";
export {
  decodeLogsJson,
  decodeLogsProto,
  decodeTracesJson,
  decodeTracesProto,
  setKey,
  isPlausibleTimeUs,
} from "./decode.ts";
export type {
  DecodeOptions,
  DecodedAttributes,
  DecodedEvent,
  DecodedLink,
  DecodedLogRecord,
  DecodedResourceLogs,
  DecodedResourceSpans,
  DecodedScope,
  DecodedSpan,
} from "./decode.ts";
export { MetricsEncoder } from "./metrics-encoder.ts";
export { decodeMetricsJson, decodeMetricsProto } from "./decode-metrics.ts";
export type {
  DecodedMetric,
  DecodedMetricPoint,
  DecodedResourceMetrics,
} from "./decode-metrics.ts";
export type {
  ExemplarData,
  HistogramPointData,
  MetricData,
  NumberPointData,
} from "./metrics-encoder.ts";
