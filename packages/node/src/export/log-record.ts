// A captured logger line as an OTLP log record: the line is parsed once, at
// export, its message becomes the body and its other fields the attributes.
// Flat lines skip the parse (json-record.ts) and come out the same; large
// ones are parsed a member at a time (large-line.ts).
import {
  setKey,
  type Attributes,
  type LogRecordData,
  type LogsEncoder,
  type ProtoWriter,
  type Scope,
} from "@threadline/otlp";
import { parseDateTime } from "@threadline/core/date-time";
import {
  epochMillis,
  LOGGER_KEYS,
  NO_LOG_LIMITS,
  writeStagedRecord,
  writtenFields,
  type LogLimits,
} from "./json-record.ts";
import { LARGE_LINE, parseJson, parseLargeLine } from "./large-line.ts";
import {
  OWN_CUSTOMER,
  OWN_TIME,
  StagedLogReader,
  type StagedLog,
} from "./log-stage.ts";
import { truncate } from "../internal/truncate.ts";

/**
 * One OTLP request (protobuf) from a staged batch, parsed and encoded a
 * record at a time so the batch's record objects are never alive
 * together. A record that cannot be encoded is left out and counted. The
 * SDK's own records go under `sdkScope`, after the logger's.
 */
export function encodeStagedLogs(
  encoder: LogsEncoder,
  staged: Uint8Array,
  limits: LogLimits = NO_LOG_LIMITS,
  sdkScope?: Scope,
): { body: Uint8Array; rejected: number } {
  const write =
    limits === NO_LOG_LIMITS
      ? writeStagedRecord
      : (w: ProtoWriter, r: StagedLogReader) => writeStagedRecord(w, r, limits);
  let rejected = 0;
  let sdkRecords = 0;
  // The records of one scope: the logger's, or (sdk) the SDK's.
  const encode = (sdk: boolean) => {
    const reader = new StagedLogReader(staged);
    while (reader.advance()) {
      if (sdkScope !== undefined && reader.log.sdk !== sdk) {
        if (!sdk) sdkRecords++;
        continue;
      }
      try {
        if (encoder.appendWritten(write, reader)) continue;
      } catch {
        // The line is left to the parse below, which knows what to make of it.
      }
      reader.decode();
      try {
        encoder.append(toLogRecord(reader.log, limits));
        continue;
      } catch {
        // Nothing of it was kept: it goes as the line it was written as.
      }
      try {
        encoder.append(lineRecord(reader.log, lineText(reader.log.line)));
      } catch {
        // The batch goes on without it.
        rejected++;
      }
    }
  };
  encoder.start();
  encode(false);
  if (sdkScope !== undefined && sdkRecords > 0) {
    encoder.scope(sdkScope);
    encode(true);
  }
  return { body: encoder.finish(), rejected };
}

/** The same request as OTLP/JSON, a debugging format. */
export function encodeStagedLogsJson(
  encoder: LogsEncoder,
  staged: Uint8Array,
  limits: LogLimits = NO_LOG_LIMITS,
  sdkScope?: Scope,
): string {
  const reader = new StagedLogReader(staged);
  const records: LogRecordData[] = [];
  const sdkRecords: LogRecordData[] = [];
  while (reader.next()) {
    let record: LogRecordData;
    try {
      record = toLogRecord(reader.log, limits);
    } catch {
      record = lineRecord(reader.log, lineText(reader.log.line));
    }
    (sdkScope !== undefined && reader.log.sdk ? sdkRecords : records).push(
      record,
    );
  }
  return sdkScope === undefined
    ? encoder.encodeJson(records)
    : encoder.encodeJson(records, [{ scope: sdkScope, records: sdkRecords }]);
}

const NOT_LEADING = Symbol("not leading");

const CUSTOMER_ID = "customer.id";
/** Where a record keeps a `customer.id` of the application's that is not the line's customer. */
const LOGGED_CUSTOMER_ID = "log.customer.id";

/** Whether pino's leading value `a` is the parsed `b` (which may be exact where `a` is not). */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof b === "bigint" && Number(b) === a);
}

/**
 * `key`'s first value in the line, a string or a number, if it comes
 * before any nested object or array: where pino writes its own level,
 * time, pid, hostname and the trace ids. NOT_LEADING when it is not there.
 */
function leadingValue(line: string, key: string): unknown {
  const at = line.indexOf(`"${key}":`);
  if (at < 0) return NOT_LEADING;
  for (let i = 1; i < at; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) return NOT_LEADING; // { or [
  }
  const from = at + key.length + 3;
  let end = from;
  if (line.charCodeAt(from) === 0x22) {
    for (end = from + 1; end < line.length; end++) {
      const c = line.charCodeAt(end);
      if (c === 0x5c) end++;
      else if (c === 0x22) break;
    }
    end++;
  } else
    while (
      end < line.length &&
      line.charCodeAt(end) !== 0x2c &&
      line.charCodeAt(end) !== 0x7d
    )
      end++;
  try {
    const v: unknown = JSON.parse(line.slice(from, end));
    return typeof v === "string" || typeof v === "number" ? v : NOT_LEADING;
  } catch {
    return NOT_LEADING; // an object or array: not one of pino's
  }
}

/**
 * The error pino's serializer wrote: under `err`, or under the logger's
 * own `errorKey`, which the line does not name: the first top-level
 * object with a string `type`, `message` and `stack`. Of the objects a
 * large line kept as their text (`texts`), `err` is read for its own
 * members; the others, megabytes of a request body as a rule, are not
 * searched.
 */
function errorOf(
  parsed: Record<string, unknown>,
  texts: ReadonlySet<string> | undefined,
): Record<string, unknown> | undefined {
  const objectAt = (key: string): Record<string, unknown> | undefined => {
    const v = parsed[key];
    if (texts?.has(key) === true)
      return key === "err" && (v as string).startsWith("{")
        ? (parseLargeLine(v as string, 0).fields as Record<string, unknown>)
        : undefined;
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  };
  const err = objectAt("err");
  if (err !== undefined) return err;
  for (const key in parsed) {
    if (key === "err") continue;
    const e = objectAt(key);
    if (e === undefined) continue;
    if (
      typeof e["type"] === "string" &&
      typeof e["message"] === "string" &&
      typeof e["stack"] === "string"
    )
      return e;
  }
  return undefined;
}

/**
 * Turns one logger line into a log record; unparsable lines become a string
 * body. The limits apply to the attributes (strings, and strings within
 * arrays and objects, cut to the length limit; attributes past the count
 * limit left out and counted), as they do to a span's; the JSON text a
 * large line's object is kept as stands for the object, and is kept whole.
 */
export function toLogRecord(
  m: StagedLog,
  limits: LogLimits = NO_LOG_LIMITS,
): LogRecordData {
  const line = m.line;
  let body: LogRecordData["body"] = lineText(line);
  let attributes: Record<string, LogRecordData["body"]> | undefined;
  let time: number | undefined;
  /** Fields kept as their JSON text, whole: they stand for objects. */
  let texts: ReadonlySet<string> | undefined;
  try {
    // Integers past 2^53 (ids logged as bigints) keep every digit; a
    // large line's objects and arrays may stay text (see large-line.ts).
    let parsed: Record<string, unknown>;
    if (line.length > LARGE_LINE) {
      const large = parseLargeLine(line);
      parsed = large.fields;
      texts = large.texts;
    } else parsed = parseJson(line) as Record<string, unknown>;
    if (
      parsed !== null &&
      typeof parsed === "object" &&
      !Array.isArray(parsed)
    ) {
      const msgKey = m.messageKey || "msg";
      // A message that is not a string (pino writes what it is given) is
      // still the body.
      body = parsed[msgKey] as LogRecordData["body"];
      const own = writtenFields(m.ownFields, m.traceId !== undefined);
      // pino's own time, written before any field of the application's
      // (JSON.parse keeps the last of a repeated key: a field of the
      // application's named `time`); none from a logger that writes none.
      // A string is a time only as an RFC 3339 date-time (pino's isoTime);
      // any other stays an attribute, as it was written.
      const ownTime =
        (own & OWN_TIME) !== 0 ? leadingValue(line, "time") : NOT_LEADING;
      const given =
        (own & OWN_TIME) === 0
          ? undefined
          : ownTime === NOT_LEADING
            ? parsed["time"]
            : ownTime;
      const t = typeof given === "bigint" ? Number(given) : given;
      if (typeof t === "number") time = epochMillis(t);
      else if (typeof t === "string") {
        const ms = parseDateTime(t, true);
        if (!Number.isNaN(ms)) time = ms;
      }
      const timeKept = typeof t === "string" && time === undefined;
      attributes = {};
      for (const key in parsed) {
        if (key === msgKey) continue;
        // The customer the line was logged for, written ahead of the
        // application's fields, stays the record's: one of the
        // application's of the same name (a request body logged whole)
        // is kept beside it.
        if (key === CUSTOMER_ID && (m.ownFields & OWN_CUSTOMER) !== 0) {
          const ours = leadingValue(line, CUSTOMER_ID);
          if (typeof ours === "string") {
            attributes[CUSTOMER_ID] = ours;
            if (parsed[key] !== ours)
              attributes[LOGGED_CUSTOMER_ID] = parsed[
                key
              ] as LogRecordData["body"];
            continue;
          }
        }
        // pino's own keys say nothing the record does not; a field of the
        // application's with the same name (written later, so the one
        // parsed) is kept, and so is one the logger does not write.
        const bit = LOGGER_KEYS.get(key);
        if (
          bit !== undefined &&
          (own & bit) !== 0 &&
          !(bit === OWN_TIME && timeKept)
        ) {
          const own = key === "time" ? ownTime : leadingValue(line, key);
          if (own === NOT_LEADING || sameValue(own, parsed[key])) continue;
        }
        setKey(attributes, key, parsed[key] as LogRecordData["body"]);
      }
      const err = errorOf(parsed, texts);
      if (err !== undefined) {
        if (typeof err["type"] === "string")
          attributes["exception.type"] = err["type"];
        if (typeof err["message"] === "string")
          attributes["exception.message"] = err["message"];
        if (typeof err["stack"] === "string")
          attributes["exception.stacktrace"] = err["stack"];
      }
    }
  } catch {
    // not JSON (a custom formatter): keep the raw line as the body
  }
  let dropped = 0;
  if (attributes !== undefined && limits !== NO_LOG_LIMITS) {
    const limited: typeof attributes = {};
    let kept = 0;
    for (const key in attributes) {
      if (kept === limits.attributeCountLimit) {
        dropped++;
        continue;
      }
      setKey(
        limited,
        key,
        texts?.has(key)
          ? attributes[key]
          : cut(attributes[key], limits.attributeValueLengthLimit),
      );
      kept++;
    }
    attributes = limited;
  }
  return {
    ...lineRecord(m, body),
    time,
    attributes: attributes as Attributes | undefined,
    ...(dropped > 0 ? { droppedAttributesCount: dropped } : {}),
  };
}

/** A line without its newline. */
function lineText(line: string): string {
  return line.endsWith("\n") ? line.slice(0, -1) : line;
}

/** A captured line as a record of `body` (its text, as for an unparsable one) and no attributes. */
function lineRecord(m: StagedLog, body: LogRecordData["body"]): LogRecordData {
  return {
    time: undefined,
    observedTime: m.observed,
    severityNumber: m.severityNumber,
    severityText: m.severityText,
    body,
    attributes: undefined,
    traceId: m.traceId,
    spanId: m.spanId,
    traceFlags: m.traceFlags,
  };
}

type Value = LogRecordData["body"];
type Container = Value[] | Record<string, Value>;

/**
 * `v` with its strings, and those within its arrays and maps, cut to
 * `length`. A loop with its own stack, not a call per level: JSON.parse
 * reads a line nested far deeper than calls can go.
 */
function cut(v: Value, length: number): Value {
  const work: Array<[Container, Container]> = [];
  const step = (x: Value): Value => {
    if (typeof x === "string") return truncate(x, length);
    if (x === null || typeof x !== "object" || x instanceof Uint8Array)
      return x;
    const to: Container = Array.isArray(x) ? [] : {};
    work.push([x as Container, to]);
    return to;
  };
  const out = step(v);
  for (let next = work.pop(); next !== undefined; next = work.pop()) {
    const [from, to] = next;
    if (Array.isArray(from))
      for (let i = 0; i < from.length; i++) (to as Value[])[i] = step(from[i]);
    else
      for (const k of Object.keys(from))
        setKey(to as Record<string, Value>, k, step(from[k]));
  }
  return out;
}
