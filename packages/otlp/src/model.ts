// The shapes the encoders read. The SDK's span class implements SpanData
// directly, so nothing is copied between ending a span and encoding it.

/** A value OTLP can carry: primitives, arrays and (in logs) nested maps. */
export type AnyValue =
  | string
  | number
  /** An integer past 2^53, as a log line may carry one (int64's range). */
  | bigint
  | boolean
  | null
  | undefined
  | Uint8Array
  | readonly AnyValue[]
  | { readonly [key: string]: AnyValue };

/** Attributes: a plain object; `undefined` values are skipped. */
export type Attributes = { readonly [key: string]: AnyValue };

/** Instrumentation scope (the tracer or logger that produced the data). */
export interface Scope {
  readonly name: string;
  readonly version?: string | undefined;
  /** The schema URL a meter was made with (metrics only). */
  readonly schemaUrl?: string | undefined;
}

/** OpenTelemetry API span kind numbers (INTERNAL = 0 ... CONSUMER = 4). */
export type ApiSpanKind = 0 | 1 | 2 | 3 | 4;

export interface SpanEventData {
  readonly name: string;
  /** Epoch milliseconds (fractional). */
  readonly time: number;
  readonly attributes: Attributes | undefined;
  readonly droppedAttributesCount: number;
}

export interface SpanLinkData {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceState: string | undefined;
  readonly traceFlags: number;
  readonly attributes: Attributes | undefined;
  readonly droppedAttributesCount: number;
}

export interface SpanData {
  readonly scope: Scope;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly parentIsRemote: boolean;
  readonly traceState: string | undefined;
  readonly traceFlags: number;
  readonly name: string;
  readonly kind: ApiSpanKind;
  /** Epoch milliseconds (fractional). */
  readonly startTime: number;
  /** Epoch milliseconds (fractional). */
  readonly endTime: number;
  readonly attributes: Attributes;
  readonly droppedAttributesCount: number;
  readonly events: readonly SpanEventData[] | undefined;
  readonly droppedEventsCount: number;
  readonly links: readonly SpanLinkData[] | undefined;
  readonly droppedLinksCount: number;
  /** 0 unset, 1 ok, 2 error (same numbers in the API and OTLP). */
  readonly statusCode: number;
  readonly statusMessage: string | undefined;
}

export interface LogRecordData {
  /** Epoch milliseconds (fractional) when the event happened, if known. */
  readonly time: number | undefined;
  /** Epoch milliseconds when the SDK saw the record. */
  readonly observedTime: number;
  /** OTLP severity number (1-24), 0 when unknown. */
  readonly severityNumber: number;
  readonly severityText: string | undefined;
  readonly body: AnyValue;
  readonly attributes: Attributes | undefined;
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  readonly traceFlags: number;
  readonly eventName?: string | undefined;
  /** Attributes left out by the attribute count limit. */
  readonly droppedAttributesCount?: number | undefined;
}
