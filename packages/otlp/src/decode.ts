// Decoding of OTLP trace and logs requests, protobuf and JSON, into one
// plain model for receivers (the local viewer). Timestamps become epoch
// microseconds (a double holds them exactly); ids become lowercase hex; an
// integer value past 2^53 becomes a bigint, every digit kept.
//
// A request that cannot be read (truncated, wrong types) throws. A span or
// log record that is not valid (an all-zero id, an unknown kind, status or
// severity) or does not read (a field of the wrong type, within a message
// that is whole) throws too, unless the caller passes `onInvalid`: then it
// is left out and its reason reported, so a receiver can keep the rest and
// answer with OTLP's partial success (exporters do not retry a 400, so one
// bad item would lose its whole batch).
import { OtlpDecodeError, ProtoReader, safeOrBig } from "./proto-reader.ts";

export type DecodedAttributes = Record<string, unknown>;

export interface DecodedEvent {
  name: string;
  timeUs: number;
  attributes: DecodedAttributes;
}

export interface DecodedLink {
  traceId: string;
  spanId: string;
  attributes: DecodedAttributes;
}

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP kind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startUs: number;
  endUs: number;
  attributes: DecodedAttributes;
  events: DecodedEvent[];
  links: DecodedLink[];
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  flags: number;
}

export interface DecodedScope {
  name: string;
  version: string;
}

export interface DecodedResourceSpans {
  resource: DecodedAttributes;
  scopes: Array<{ scope: DecodedScope; spans: DecodedSpan[] }>;
}

export interface DecodedLogRecord {
  timeUs: number;
  observedUs: number;
  severityNumber: number;
  severityText: string;
  body: unknown;
  attributes: DecodedAttributes;
  droppedAttributesCount: number;
  traceId: string;
  spanId: string;
  flags: number;
  eventName: string;
}

export interface DecodedResourceLogs {
  resource: DecodedAttributes;
  scopes: Array<{ scope: DecodedScope; logs: DecodedLogRecord[] }>;
}

/** What a receiver does with items that decode but are not valid. */
export interface DecodeOptions {
  /**
   * Called with the reason for each span or log record left out as invalid.
   * Without it, the first invalid item fails the whole request.
   */
  onInvalid?: ((reason: string) => void) | undefined;
  /**
   * Leave out as invalid a span whose start time is unset (0) or before
   * 2000 (epoch milliseconds or seconds written as nanoseconds). A store
   * that summarises a trace from its earliest start would otherwise date
   * the whole trace to 1970 for one such span. Leave out too a span that
   * ends more than a day after it is decoded: its trace would be kept by
   * age for as long. (An end unset or before the start is mended to the
   * start either way: the span keeps its place.)
   */
  strictTimes?: boolean | undefined;
}

/**
 * One item decoded and checked by `problem`, or undefined when it is left
 * out (and reported). With `onInvalid`, an item that does not decode is
 * left out too: its own message or JSON object was read whole, so the items
 * after it are still where they were.
 */
function item<S, T>(
  decode: (src: S) => T,
  src: S,
  problem: (item: T, options: DecodeOptions | undefined) => string | undefined,
  kind: string,
  options: DecodeOptions | undefined,
): T | undefined {
  let t: T;
  try {
    t = decode(src);
  } catch (e) {
    if (options?.onInvalid === undefined || !(e instanceof OtlpDecodeError))
      throw e;
    options.onInvalid(`a ${kind} does not read: ${e.message}`);
    return undefined;
  }
  return valid(t, problem(t, options), options);
}

/** The item, or undefined when `problem` leaves it out (and is reported). */
function valid<T>(
  item: T,
  problem: string | undefined,
  options: DecodeOptions | undefined,
): T | undefined {
  if (problem === undefined) return item;
  if (options?.onInvalid === undefined) throw new OtlpDecodeError(problem);
  options.onInvalid(problem);
  return undefined;
}

// Microseconds: a double cannot hold epoch nanoseconds exactly, but holds microseconds.
const nsToUs = (ns: number) => Math.round(ns / 1000);

// ---- protobuf -----------------------------------------------------------

function anyValue(r: ProtoReader): unknown {
  let value: unknown;
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, 2, "AnyValue.string_value");
        value = r.string();
        break;
      case 2:
        r.expect(w, 0, "AnyValue.bool_value");
        value = r.varint() !== 0;
        break;
      case 3:
        r.expect(w, 0, "AnyValue.int_value");
        value = r.int64();
        break;
      case 4:
        r.expect(w, 1, "AnyValue.double_value");
        value = r.double();
        break;
      case 5: {
        r.expect(w, 2, "AnyValue.array_value");
        const arr: unknown[] = [];
        const a = r.message();
        while (!a.done) {
          const [af, aw] = a.tag();
          if (af === 1) {
            a.expect(aw, 2, "ArrayValue.values");
            arr.push(anyValue(a.message()));
          } else a.skip(aw);
        }
        value = arr;
        break;
      }
      case 6:
        r.expect(w, 2, "AnyValue.kvlist_value");
        value = keyValueList(r.message());
        break;
      case 7:
        r.expect(w, 2, "AnyValue.bytes_value");
        value = Buffer.from(r.bytes()).toString("base64");
        break;
      default:
        r.skip(w);
    }
  }
  return value;
}

function keyValueList(r: ProtoReader): DecodedAttributes {
  const out: DecodedAttributes = {};
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, 2, "KeyValueList.values");
      keyValue(r.message(), out);
    } else r.skip(w);
  }
  return out;
}

export function keyValue(r: ProtoReader, into: DecodedAttributes): void {
  let key = "";
  let value: unknown;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, 2, "KeyValue.key");
      key = r.string();
    } else if (f === 2) {
      r.expect(w, 2, "KeyValue.value");
      value = anyValue(r.message());
    } else r.skip(w);
  }
  if (key !== "") setKey(into, key, value);
}

/**
 * Sets `into[key]` as an own property: defined, not assigned, for
 * `__proto__`, which a service may well send (a logged object parsed from
 * JSON) and which, assigned, would set the object's prototype instead of a
 * key, its fields passing for the object's.
 */
export function setKey<T>(
  into: Record<string, T>,
  key: string,
  value: T,
): void {
  if (key === "__proto__")
    Object.defineProperty(into, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  else into[key] = value;
}

function resource(r: ProtoReader): DecodedAttributes {
  const out: DecodedAttributes = {};
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, 2, "Resource.attributes");
      keyValue(r.message(), out);
    } else r.skip(w);
  }
  return out;
}

function scope(r: ProtoReader): DecodedScope {
  const s = { name: "", version: "" };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) s.name = r.string();
    else if (f === 2 && w === 2) s.version = r.string();
    else r.skip(w);
  }
  return s;
}

function event(r: ProtoReader): DecodedEvent {
  const e: DecodedEvent = { name: "", timeUs: 0, attributes: {} };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, 1, "Event.time_unix_nano");
      e.timeUs = nsToUs(r.fixed64());
    } else if (f === 2) {
      r.expect(w, 2, "Event.name");
      e.name = r.string();
    } else if (f === 3) {
      r.expect(w, 2, "Event.attributes");
      keyValue(r.message(), e.attributes);
    } else r.skip(w);
  }
  return e;
}

function link(r: ProtoReader): DecodedLink {
  const l: DecodedLink = { traceId: "", spanId: "", attributes: {} };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, 2, "Link.trace_id");
      l.traceId = r.hexId(16, "Link.trace_id");
    } else if (f === 2) {
      r.expect(w, 2, "Link.span_id");
      l.spanId = r.hexId(8, "Link.span_id");
    } else if (f === 4) {
      r.expect(w, 2, "Link.attributes");
      keyValue(r.message(), l.attributes);
    } else r.skip(w);
  }
  return l;
}

function span(r: ProtoReader): DecodedSpan {
  const s: DecodedSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    traceState: "",
    name: "",
    kind: 0,
    startUs: 0,
    endUs: 0,
    attributes: {},
    events: [],
    links: [],
    statusCode: 0,
    statusMessage: "",
    flags: 0,
  };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, 2, "Span.trace_id");
        s.traceId = r.hexId(16, "Span.trace_id");
        break;
      case 2:
        r.expect(w, 2, "Span.span_id");
        s.spanId = r.hexId(8, "Span.span_id");
        break;
      case 3:
        r.expect(w, 2, "Span.trace_state");
        s.traceState = r.string();
        break;
      case 4:
        r.expect(w, 2, "Span.parent_span_id");
        s.parentSpanId = r.hexId(8, "Span.parent_span_id");
        break;
      case 5:
        r.expect(w, 2, "Span.name");
        s.name = r.string();
        break;
      case 6:
        r.expect(w, 0, "Span.kind");
        s.kind = r.varint();
        break;
      case 7:
        r.expect(w, 1, "Span.start_time_unix_nano");
        s.startUs = nsToUs(r.fixed64());
        break;
      case 8:
        r.expect(w, 1, "Span.end_time_unix_nano");
        s.endUs = nsToUs(r.fixed64());
        break;
      case 9:
        r.expect(w, 2, "Span.attributes");
        keyValue(r.message(), s.attributes);
        break;
      case 11:
        r.expect(w, 2, "Span.events");
        s.events.push(event(r.message()));
        break;
      case 13:
        r.expect(w, 2, "Span.links");
        s.links.push(link(r.message()));
        break;
      case 15: {
        r.expect(w, 2, "Span.status");
        const st = r.message();
        while (!st.done) {
          const [sf, sw] = st.tag();
          if (sf === 2 && sw === 2) s.statusMessage = st.string();
          else if (sf === 3 && sw === 0) s.statusCode = st.varint();
          else st.skip(sw);
        }
        break;
      }
      case 16:
        r.expect(w, 5, "Span.flags");
        s.flags = r.fixed32();
        break;
      default:
        r.skip(w);
    }
  }
  return s;
}

/**
 * 2000-01-01T00:00:00Z in microseconds: no span starts earlier. One that
 * does is an exporter's mistake, epoch milliseconds or seconds written as
 * nanoseconds (a start around 1970-01-01T00:29).
 */
const EARLIEST_START_US = Date.UTC(2000, 0, 1) * 1000;

/** How far past the decoder's clock a span may end: a clock that is off by hours, not a garbled time. */
const LATEST_END_AHEAD_US = 24 * 3600 * 1e6;

/**
 * Whether a time (epoch microseconds) can be a telemetry item's, by the
 * bounds strictTimes holds spans to: from 2000 to a day past `nowUs`.
 */
export function isPlausibleTimeUs(
  us: number,
  nowUs = Date.now() * 1000,
): boolean {
  return us >= EARLIEST_START_US && us <= nowUs + LATEST_END_AHEAD_US;
}

/** Why a decoded span is not valid, or undefined (its end is mended). */
function spanProblem(
  s: DecodedSpan,
  options: DecodeOptions | undefined,
): string | undefined {
  if (s.traceId === "" || /^0+$/.test(s.traceId))
    return "a span has no valid trace_id";
  if (s.spanId === "" || /^0+$/.test(s.spanId))
    return "a span has no valid span_id";
  if (s.kind < 0 || s.kind > 5) return `a span has an unknown kind ${s.kind}`;
  if (s.statusCode < 0 || s.statusCode > 2)
    return `a span has an unknown status code ${s.statusCode}`;
  if (options?.strictTimes === true && s.startUs < EARLIEST_START_US)
    return s.startUs === 0
      ? "a span has no start_time_unix_nano"
      : "a span's start_time_unix_nano is before 2000-01-01T00:00:00Z (it counts nanoseconds since 1970; is it in milliseconds or seconds?)";
  if (s.endUs < s.startUs) s.endUs = s.startUs;
  if (
    options?.strictTimes === true &&
    s.endUs > Date.now() * 1000 + LATEST_END_AHEAD_US
  )
    return "a span's end_time_unix_nano is more than a day in the future";
  return undefined;
}

function logProblem(l: DecodedLogRecord): string | undefined {
  if (l.severityNumber < 0 || l.severityNumber > 24)
    return `a log record has an unknown severity ${l.severityNumber}`;
  return undefined;
}

/** One scope's items and one resource's scopes, as every OTLP export nests them. */
interface ScopeGroup<T> {
  scope: DecodedScope;
  items: T[];
}
interface ResourceGroup<T> {
  resource: DecodedAttributes;
  scopes: Array<ScopeGroup<T>>;
}

/** The groups with their items under the signal's own name (spans, logs, metrics). */
export function named<K extends string, T>(
  groups: Array<ResourceGroup<T>>,
  key: K,
): Array<{
  resource: DecodedAttributes;
  scopes: Array<{ scope: DecodedScope } & Record<K, T[]>>;
}> {
  return groups.map((g) => ({
    resource: g.resource,
    scopes: g.scopes.map(
      (sg) =>
        ({ scope: sg.scope, [key]: sg.items }) as {
          scope: DecodedScope;
        } & Record<K, T[]>,
    ),
  }));
}

/**
 * Walks an export request (protobuf): field 1 holds Resource<Signal>s, each
 * a resource (1) and Scope<Signal>s (2), each a scope (1) and items (2).
 * `item` decodes one item, or skips it by returning undefined. A group left
 * with no items is left out: it adds nothing, and kept, two bytes of body
 * (an empty group, a compressed body inflating to millions) would each
 * cost an object.
 */
export function decodeExportProto<T>(
  buf: Uint8Array,
  signal: "Spans" | "Logs" | "Metrics",
  itemName: string,
  item: (r: ProtoReader) => T | undefined,
): Array<ResourceGroup<T>> {
  const out: Array<ResourceGroup<T>> = [];
  const lower = signal.toLowerCase();
  const r = new ProtoReader(buf);
  while (!r.done) {
    const [f, w] = r.tag();
    if (f !== 1) {
      r.skip(w);
      continue;
    }
    r.expect(w, 2, `resource_${lower}`);
    const rm = r.message();
    const entry: ResourceGroup<T> = { resource: {}, scopes: [] };
    while (!rm.done) {
      const [rf, rw] = rm.tag();
      if (rf === 1) {
        rm.expect(rw, 2, `Resource${signal}.resource`);
        entry.resource = resource(rm.message());
      } else if (rf === 2) {
        rm.expect(rw, 2, `Resource${signal}.scope_${lower}`);
        const sm = rm.message();
        const group: ScopeGroup<T> = {
          scope: { name: "", version: "" },
          items: [],
        };
        while (!sm.done) {
          const [sf, sw] = sm.tag();
          if (sf === 1) {
            sm.expect(sw, 2, `Scope${signal}.scope`);
            group.scope = scope(sm.message());
          } else if (sf === 2) {
            sm.expect(sw, 2, `Scope${signal}.${itemName}`);
            const decoded = item(sm.message());
            if (decoded !== undefined) group.items.push(decoded);
          } else sm.skip(sw);
        }
        if (group.items.length > 0) entry.scopes.push(group);
      } else rm.skip(rw);
    }
    if (entry.scopes.length > 0) out.push(entry);
  }
  return out;
}

/** Decodes an ExportTraceServiceRequest. Throws OtlpDecodeError with a reason. */
export function decodeTracesProto(
  buf: Uint8Array,
  options?: DecodeOptions,
): DecodedResourceSpans[] {
  return named(
    decodeExportProto(buf, "Spans", "spans", (r) =>
      item(span, r, spanProblem, "span", options),
    ),
    "spans",
  );
}

function logRecord(r: ProtoReader): DecodedLogRecord {
  const l: DecodedLogRecord = {
    timeUs: 0,
    observedUs: 0,
    severityNumber: 0,
    severityText: "",
    body: undefined,
    attributes: {},
    droppedAttributesCount: 0,
    traceId: "",
    spanId: "",
    flags: 0,
    eventName: "",
  };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, 1, "LogRecord.time_unix_nano");
        l.timeUs = nsToUs(r.fixed64());
        break;
      case 11:
        r.expect(w, 1, "LogRecord.observed_time_unix_nano");
        l.observedUs = nsToUs(r.fixed64());
        break;
      case 2:
        r.expect(w, 0, "LogRecord.severity_number");
        l.severityNumber = r.varint();
        break;
      case 3:
        r.expect(w, 2, "LogRecord.severity_text");
        l.severityText = r.string();
        break;
      case 5:
        r.expect(w, 2, "LogRecord.body");
        l.body = anyValue(r.message());
        break;
      case 6:
        r.expect(w, 2, "LogRecord.attributes");
        keyValue(r.message(), l.attributes);
        break;
      case 7:
        r.expect(w, 0, "LogRecord.dropped_attributes_count");
        l.droppedAttributesCount = r.varint();
        break;
      case 8:
        r.expect(w, 5, "LogRecord.flags");
        l.flags = r.fixed32();
        break;
      case 9:
        r.expect(w, 2, "LogRecord.trace_id");
        l.traceId = r.hexId(16, "LogRecord.trace_id");
        break;
      case 10:
        r.expect(w, 2, "LogRecord.span_id");
        l.spanId = r.hexId(8, "LogRecord.span_id");
        break;
      case 12:
        r.expect(w, 2, "LogRecord.event_name");
        l.eventName = r.string();
        break;
      default:
        r.skip(w);
    }
  }
  return l;
}

/** Decodes an ExportLogsServiceRequest. Throws OtlpDecodeError with a reason. */
export function decodeLogsProto(
  buf: Uint8Array,
  options?: DecodeOptions,
): DecodedResourceLogs[] {
  return named(
    decodeExportProto(buf, "Logs", "log_records", (r) =>
      item(logRecord, r, logProblem, "log record", options),
    ),
    "logs",
  );
}

// ---- JSON ---------------------------------------------------------------

type J = Record<string, unknown>;

export function obj(v: unknown, what: string): J {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new OtlpDecodeError(`${what} must be an object`);
  return v as J;
}
export function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpDecodeError(`${what} must be an array`);
  return v;
}
export function str(v: unknown, what: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string")
    throw new OtlpDecodeError(`${what} must be a string`);
  return v;
}
export function num(v: unknown, what: string): number {
  if (v === undefined || v === null || v === "") return 0;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n))
    throw new OtlpDecodeError(`${what} must be a number`);
  return n;
}
/**
 * An int64: proto3's JSON mapping writes it as a string, so that an integer
 * past 2^53 keeps every digit; such a one is read as a bigint.
 */
function int64(v: unknown, what: string): number | bigint {
  const n = num(v, what);
  if (typeof v === "string" && !Number.isSafeInteger(n) && /^-?\d+$/.test(v))
    return safeOrBig(BigInt(v));
  return n;
}
/**
 * A double: a JSON number, or a string, as proto3's JSON mapping allows
 * (https://protobuf.dev/programming-guides/json/): "NaN", "Infinity" and
 * "-Infinity", which JSON has no number for, or the number's text.
 */
export function double(v: unknown, what: string): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return num(v, what);
}
function enumNum(v: unknown, names: readonly string[], what: string): number {
  if (typeof v === "string" && !/^\d+$/.test(v)) {
    const i = names.indexOf(v);
    if (i === -1)
      throw new OtlpDecodeError(
        `${what} has an unknown value ${JSON.stringify(v)}`,
      );
    return i;
  }
  return num(v, what);
}
function hexId(v: unknown, size: number, what: string): string {
  const s = str(v, what);
  if (s === "") return "";
  if (s.length !== size * 2 || !/^[0-9a-fA-F]+$/.test(s))
    throw new OtlpDecodeError(`${what} must be ${size * 2} hex characters`);
  return s.toLowerCase();
}

function jsonAnyValue(v: unknown, depth = 0): unknown {
  if (depth > 32) throw new OtlpDecodeError("values nested too deeply");
  if (v === undefined || v === null) return undefined;
  const o = obj(v, "AnyValue");
  if ("stringValue" in o) return str(o["stringValue"], "stringValue");
  if ("boolValue" in o) return o["boolValue"] === true;
  if ("intValue" in o) return int64(o["intValue"], "intValue");
  if ("doubleValue" in o) return double(o["doubleValue"], "doubleValue");
  if ("arrayValue" in o)
    return list(
      obj(o["arrayValue"], "arrayValue")["values"],
      "arrayValue.values",
    ).map((x) => jsonAnyValue(x, depth + 1));
  if ("kvlistValue" in o)
    return jsonKeyValues(
      obj(o["kvlistValue"], "kvlistValue")["values"],
      depth + 1,
    );
  if ("bytesValue" in o) return str(o["bytesValue"], "bytesValue");
  return undefined;
}

export function jsonKeyValues(v: unknown, depth = 0): DecodedAttributes {
  const out: DecodedAttributes = {};
  for (const kv of list(v, "attributes")) {
    const o = obj(kv, "KeyValue");
    const key = str(o["key"], "KeyValue.key");
    if (key !== "") setKey(out, key, jsonAnyValue(o["value"], depth));
  }
  return out;
}

const KINDS = [
  "SPAN_KIND_UNSPECIFIED",
  "SPAN_KIND_INTERNAL",
  "SPAN_KIND_SERVER",
  "SPAN_KIND_CLIENT",
  "SPAN_KIND_PRODUCER",
  "SPAN_KIND_CONSUMER",
] as const;
const STATUS = [
  "STATUS_CODE_UNSET",
  "STATUS_CODE_OK",
  "STATUS_CODE_ERROR",
] as const;
const SEVERITIES = [
  "SEVERITY_NUMBER_UNSPECIFIED",
  ...["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].flatMap((level) =>
    ["", "2", "3", "4"].map((n) => `SEVERITY_NUMBER_${level}${n}`),
  ),
];

function jsonScope(v: unknown): DecodedScope {
  if (v === undefined || v === null) return { name: "", version: "" };
  const o = obj(v, "scope");
  return {
    name: str(o["name"], "scope.name"),
    version: str(o["version"], "scope.version"),
  };
}

/**
 * Walks an OTLP/JSON export request (already parsed): `resource<Signal>`,
 * each with a resource and `scope<Signal>`, each with a scope and items.
 * Groups with no items are left out, as from protobuf.
 */
export function decodeExportJson<T>(
  body: unknown,
  signal: "Spans" | "Logs" | "Metrics",
  itemsKey: string,
  item: (v: unknown) => T | undefined,
): Array<ResourceGroup<T>> {
  const resources = `resource${signal}`;
  const scopes = `scope${signal}`;
  return list(obj(body, "request")[resources], resources)
    .map((rv) => {
      const rm = obj(rv, `${resources}[]`);
      return {
        resource: jsonKeyValues(
          rm["resource"] === undefined
            ? []
            : obj(rm["resource"], "resource")["attributes"],
        ),
        scopes: list(rm[scopes] ?? [], scopes)
          .map((sv) => {
            const sm = obj(sv, `${scopes}[]`);
            const items: T[] = [];
            for (const v of list(sm[itemsKey] ?? [], itemsKey)) {
              const decoded = item(v);
              if (decoded !== undefined) items.push(decoded);
            }
            return { scope: jsonScope(sm["scope"]), items };
          })
          .filter((g) => g.items.length > 0),
      };
    })
    .filter((g) => g.scopes.length > 0);
}

/** Decodes an OTLP/JSON ExportTraceServiceRequest (already parsed). */
export function decodeTracesJson(
  body: unknown,
  options?: DecodeOptions,
): DecodedResourceSpans[] {
  return named(
    decodeExportJson(body, "Spans", "spans", (v) =>
      item(jsonSpan, v, spanProblem, "span", options),
    ),
    "spans",
  );
}

const jsonSpan = (sv: unknown): DecodedSpan => {
  const s = obj(sv, "span");
  const status = s["status"] === undefined ? {} : obj(s["status"], "status");
  const d: DecodedSpan = {
    traceId: hexId(s["traceId"], 16, "traceId"),
    spanId: hexId(s["spanId"], 8, "spanId"),
    parentSpanId: hexId(s["parentSpanId"], 8, "parentSpanId"),
    traceState: str(s["traceState"], "traceState"),
    name: str(s["name"], "name"),
    kind: enumNum(s["kind"], KINDS, "kind"),
    startUs: nsToUs(num(s["startTimeUnixNano"], "startTimeUnixNano")),
    endUs: nsToUs(num(s["endTimeUnixNano"], "endTimeUnixNano")),
    attributes: jsonKeyValues(s["attributes"]),
    events: list(s["events"], "events").map((ev) => {
      const e = obj(ev, "event");
      return {
        name: str(e["name"], "event.name"),
        timeUs: nsToUs(num(e["timeUnixNano"], "event.timeUnixNano")),
        attributes: jsonKeyValues(e["attributes"]),
      };
    }),
    links: list(s["links"], "links").map((lv) => {
      const l = obj(lv, "link");
      return {
        traceId: hexId(l["traceId"], 16, "link.traceId"),
        spanId: hexId(l["spanId"], 8, "link.spanId"),
        attributes: jsonKeyValues(l["attributes"]),
      };
    }),
    statusCode: enumNum(status["code"], STATUS, "status.code"),
    statusMessage: str(status["message"], "status.message"),
    flags: num(s["flags"], "flags"),
  };
  return d;
};

/** Decodes an OTLP/JSON ExportLogsServiceRequest (already parsed). */
export function decodeLogsJson(
  body: unknown,
  options?: DecodeOptions,
): DecodedResourceLogs[] {
  return named(
    decodeExportJson(body, "Logs", "logRecords", (v) =>
      item(jsonLogRecord, v, logProblem, "log record", options),
    ),
    "logs",
  );
}

const jsonLogRecord = (lv: unknown): DecodedLogRecord => {
  const l = obj(lv, "logRecord");
  return {
    timeUs: nsToUs(num(l["timeUnixNano"], "timeUnixNano")),
    observedUs: nsToUs(num(l["observedTimeUnixNano"], "observedTimeUnixNano")),
    severityNumber: enumNum(l["severityNumber"], SEVERITIES, "severityNumber"),
    severityText: str(l["severityText"], "severityText"),
    body: jsonAnyValue(l["body"]),
    attributes: jsonKeyValues(l["attributes"]),
    droppedAttributesCount: num(
      l["droppedAttributesCount"],
      "droppedAttributesCount",
    ),
    traceId: hexId(l["traceId"], 16, "traceId"),
    spanId: hexId(l["spanId"], 8, "spanId"),
    flags: num(l["flags"], "flags"),
    eventName: str(l["eventName"], "eventName"),
  };
};
