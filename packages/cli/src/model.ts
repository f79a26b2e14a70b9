// What the viewer, its JSON API and the CLI exchange, whichever backend
// (the local store, Jaeger, Elasticsearch) answered.

/** One row of a search result: a whole trace. */
export interface TraceSummary {
  traceId: string;
  /** Service and name of the root span (or of the earliest span when the root is missing). */
  rootService: string;
  rootName: string;
  /**
   * The customer a search or live filter asked for, which some span of the
   * trace carries; without one, the first customer its spans carry.
   */
  customer: string | null;
  startUs: number;
  durationUs: number;
  spanCount: number;
  errorCount: number;
  /** Every service the trace touched. */
  services: string[];
  /**
   * No span of the trace has arrived: it is made of its log lines. Spans
   * are sent as they end, so this is a request still running (or one whose
   * spans never came); its root is the service of its first line.
   */
  inProgress?: boolean;
  /**
   * No span of the trace was kept, and none is coming: the backend holds its
   * log lines alone (Elasticsearch behind the gateway, which keeps every
   * line but only a share of traces). Its root is the service of its first
   * line.
   */
  spansNotKept?: boolean;
}

export interface SpanEvent {
  name: string;
  timeUs: number;
  attributes: Record<string, unknown>;
}

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  name: string;
  /** OTLP kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startUs: number;
  endUs: number;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  customer: string | null;
  attributes: Record<string, unknown>;
  events: SpanEvent[];
  links: Array<{
    traceId: string;
    spanId: string;
    attributes: Record<string, unknown>;
  }>;
  resource: Record<string, unknown>;
  scope: string;
}

export interface LogRecord {
  timeUs: number;
  traceId: string;
  spanId: string;
  service: string;
  severityNumber: number;
  severityText: string;
  body: unknown;
  attributes: Record<string, unknown>;
  customer: string | null;
}

export interface TraceDetail {
  traceId: string;
  spans: SpanRecord[];
  logs: LogRecord[];
  /** When fewer spans than the trace's were asked for: the trace's summary, its counts whole. */
  summary?: TraceSummary;
  /** When fewer spans than the trace's were asked for: the trace's log lines, all counted. */
  logCount?: number;
  /** The trace has log lines and no span, and no span of it was kept (see {@link TraceSummary.spansNotKept}). */
  spansNotKept?: boolean;
}

/** A trace search. Every field narrows the result; none is tied to a service. */
export interface SearchQuery {
  customer?: string | undefined;
  service?: string | undefined;
  /** A span name or an HTTP route anywhere in the trace. */
  operation?: string | undefined;
  errorsOnly?: boolean | undefined;
  minDurationUs?: number | undefined;
  fromUs?: number | undefined;
  toUs?: number | undefined;
  /** Attribute equality on any span of the trace. */
  attributes?: Array<[string, string]> | undefined;
  /** @default 50 */
  limit?: number | undefined;
  /** Where the page starts: the `next` of the page before (the local store's). */
  after?: SearchCursor | undefined;
}

/**
 * The last trace of a page of the local store's search results, which comes
 * newest first by start and then by trace id: the next page is what follows
 * it in that order, however many traces started when it did.
 */
export interface SearchCursor {
  startUs: number;
  traceId: string;
}

/** A page of search results, and where the next begins when there is one. */
export interface SearchPage {
  traces: TraceSummary[];
  next?: SearchCursor;
}

/** Where `threadline search` and `threadline trace` read from. */
export interface TraceBackend {
  readonly name: string;
  /** What the last search could not cover, for the user to be told. */
  readonly notes?: readonly string[];
  search(query: SearchQuery): Promise<TraceSummary[]>;
  getTrace(traceId: string): Promise<TraceDetail | undefined>;
  close(): Promise<void>;
}

/** A resource's service.name, as OpenTelemetry names a service that gave none. */
export function serviceOf(resource: Record<string, unknown>): string {
  const name = resource["service.name"];
  return typeof name === "string" ? name : "unknown_service";
}

/**
 * A JSON.stringify replacer for attribute values JSON has no number for:
 * an integer past 2^53 (a bigint, as OTLP's int64 carries it) becomes its
 * exact decimal, and NaN and the infinities their names ("NaN",
 * "Infinity", "-Infinity", as OTLP/JSON writes them), where JSON.stringify
 * would write null. Strings, which are also what a search for them matches.
 */
export function jsonValue(_key: string, v: unknown): unknown {
  return typeof v === "bigint" || (typeof v === "number" && !Number.isFinite(v))
    ? String(v)
    : v;
}
