// A logger's line written as an OTLP LogRecord straight from its staged
// bytes.
//
// Most lines are one flat JSON object of numbers, booleans, nulls and
// strings with nothing escaped in them. Such a line goes into the request
// without being decoded: keys and string values are copied as the UTF-8
// they already are, numbers are read in place, and no string, no parsed
// object and no attributes object is made. Anything else (an escape, a
// nested object or array, a repeated key, a key JSON.parse would move to
// the front, a time that is not a number, text that is not JSON) is left
// to toLogRecord. Either way the request holds the same bytes: the tests
// hold the two paths to that.
import {
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_VARINT,
  writeAnyValue,
  type ProtoWriter,
} from "@threadline/otlp";
import {
  ECS_NAMES,
  OWN_HOSTNAME,
  OWN_LEVEL,
  OWN_PID,
  OWN_TIME,
  SPAN_ID_LENGTH,
  TRACE_ID_LENGTH,
  type StagedLogReader,
} from "./log-stage.ts";

/** The attribute limits of log records (OTEL_LOGRECORD_ATTRIBUTE_*). */
export interface LogLimits {
  readonly attributeCountLimit: number;
  /** In characters, of each string. */
  readonly attributeValueLengthLimit: number;
}

export const NO_LOG_LIMITS: LogLimits = Object.freeze({
  attributeCountLimit: Infinity,
  attributeValueLengthLimit: Infinity,
});

/**
 * A line's numeric `time` as epoch milliseconds. pino writes milliseconds;
 * `stdTimeFunctions.unixTime` writes seconds, and a time function of the
 * application's own may give micro- or nanoseconds. For a time near now
 * the size says which: seconds stay below 1e11 until the year 5138,
 * milliseconds below 1e14, microseconds below 1e17.
 */
export function epochMillis(t: number): number {
  if (t < 1e11) return t * 1000;
  if (t < 1e14) return t;
  if (t < 1e17) return t / 1e3;
  return t / 1e6;
}

/**
 * The correlation fields under the names they are written with (by
 * default `trace_id`, `span_id`; ECS's `trace.id`, `span.id` with
 * ECS_NAMES): ours when the record has a trace id, else the application's.
 */
export const CORRELATION = 16;
export const ECS_CORRELATION = 32;

/**
 * The bits of the fields the logger and our correlation wrote at the start
 * of a line: its own fields, and the correlation under its names when the
 * record has a trace id (it was written in a span).
 */
export function writtenFields(ownFields: number, hasTraceId: boolean): number {
  if (!hasTraceId) return ownFields;
  return (
    ownFields | ((ownFields & ECS_NAMES) !== 0 ? ECS_CORRELATION : CORRELATION)
  );
}

/**
 * Keys of a logger's line that are not attributes of its record when the
 * logger or our correlation wrote them (the record has them, or they say
 * nothing), by the bit of {@link writtenFields} that says so. Otherwise
 * they are the application's, and attributes like any other: the other
 * naming's ids, say, or a `trace_flags` (which the correlation never
 * writes).
 */
export const LOGGER_KEYS: ReadonlyMap<string, number> = new Map([
  ["level", OWN_LEVEL],
  ["time", OWN_TIME],
  ["pid", OWN_PID],
  ["hostname", OWN_HOSTNAME],
  ["trace_id", CORRELATION],
  ["span_id", CORRELATION],
  ["trace.id", ECS_CORRELATION],
  ["span.id", ECS_CORRELATION],
]);

const STRING = 1;
const NUMBER = 2;
const TRUE = 3;
const FALSE = 4;
const NULL = 5;

/** Per member: key start, key end, value kind (0 once it is known not to be an attribute), value start, value end. */
const FIELDS = 5;
/**
 * The most members a line written from its bytes has; a wider one is left
 * to JSON.parse. Telling a repeated key compares each key with those before
 * it, work that grows with the square of their number: a line of the
 * parsed body of a request (`log.info(req.body)`) with 20,000 short keys
 * held the application's thread for a second, where JSON.parse takes
 * milliseconds. pino's own lines have a dozen or two.
 */
const MAX_FLAT_MEMBERS = 64;
const members = new Int32Array(FIELDS * MAX_FLAT_MEMBERS);
/** The value of each member that is a number. */
const numbers = new Float64Array(MAX_FLAT_MEMBERS);

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const PROTO = utf8("__proto__");
/** Message keys as UTF-8, a handful per process. */
const messageKeys = new Map<string, Uint8Array>();

const isSpace = (c: number | undefined) =>
  c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number | undefined) =>
  c !== undefined && c >= 0x30 && c <= 0x39;

/** The index of the quote ending the string that starts at `i`, or -1 for an escape, a control character or no end. */
function stringEnd(b: Uint8Array, i: number, end: number): number {
  for (; i < end; i++) {
    const c = b[i]!;
    if (c === 0x22) return i;
    if (c === 0x5c || c < 0x20) return -1;
  }
  return -1;
}

/** The end of the JSON number that starts at `i`, or -1 if there is none. */
function numberEnd(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= end) return -1;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (i < end && isDigit(b[i])) i++;
  else return -1;
  if (i < end && b[i] === 0x2e) {
    const from = ++i;
    while (i < end && isDigit(b[i])) i++;
    if (i === from) return -1;
  }
  if (i < end && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const from = i;
    while (i < end && isDigit(b[i])) i++;
    if (i === from) return -1;
  }
  return i;
}

/** The value of the JSON number in b[start, end), as JSON.parse reads it. */
function numberValue(b: Uint8Array, start: number, end: number): number {
  const negative = b[start] === 0x2d;
  const from = negative ? start + 1 : start;
  if (end - from <= 15) {
    let n = 0;
    let i = from;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c < 0x30 || c > 0x39) break;
      n = n * 10 + (c - 0x30);
    }
    if (i === end) return negative ? -n : n;
  }
  return Number(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString(
      "latin1",
      start,
      end,
    ),
  );
}

/** Whether `b[start, end)` holds exactly the bytes of `s`. */
function equals(b: Uint8Array, start: number, end: number, s: Uint8Array) {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (b[start + i] !== s[i]) return false;
  return true;
}

function literal(b: Uint8Array, i: number, end: number, word: string) {
  if (i + word.length > end) return false;
  for (let k = 0; k < word.length; k++)
    if (b[i + k] !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * Reads the members of the flat JSON object in b[start, end) into
 * `members` and `numbers`; their count, or -1 for a line this path leaves
 * to JSON.parse.
 */
function scan(b: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && isSpace(b[i])) i++;
  if (i >= end || b[i] !== 0x7b) return -1;
  i++;
  while (i < end && isSpace(b[i])) i++;
  let n = 0;
  if (i < end && b[i] === 0x7d) i++;
  else
    for (;;) {
      if (i >= end || b[i] !== 0x22) return -1;
      const keyStart = ++i;
      i = stringEnd(b, i, end);
      if (i < 0) return -1;
      const keyEnd = i++;
      while (i < end && isSpace(b[i])) i++;
      if (i >= end || b[i] !== 0x3a) return -1;
      i++;
      while (i < end && isSpace(b[i])) i++;
      if (i >= end) return -1;
      let kind: number;
      let valueStart = i;
      const c = b[i];
      if (c === 0x22) {
        valueStart = ++i;
        i = stringEnd(b, i, end);
        if (i < 0) return -1;
        kind = STRING;
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
        const word = c === 0x74 ? "true" : c === 0x66 ? "false" : "null";
        if (!literal(b, i, end, word)) return -1;
        i += word.length;
        kind = c === 0x74 ? TRUE : c === 0x66 ? FALSE : NULL;
      } else {
        i = numberEnd(b, i, end);
        if (i < 0) return -1;
        kind = NUMBER;
      }
      const valueEnd = i;
      if (kind === STRING) i++;
      if (n === MAX_FLAT_MEMBERS) return -1;
      const m = n * FIELDS;
      members[m] = keyStart;
      members[m + 1] = keyEnd;
      members[m + 2] = kind;
      members[m + 3] = valueStart;
      members[m + 4] = valueEnd;
      if (kind === NUMBER) numbers[n] = numberValue(b, valueStart, valueEnd);
      n++;
      while (i < end && isSpace(b[i])) i++;
      if (i >= end) return -1;
      if (b[i] === 0x7d) {
        i++;
        break;
      }
      if (b[i] !== 0x2c) return -1;
      i++;
      while (i < end && isSpace(b[i])) i++;
    }
  while (i < end && isSpace(b[i])) i++;
  return i === end ? n : -1;
}

/**
 * Whether JSON.parse would give the keys in another order or drop one: a
 * key twice (the last value wins, in the first one's place), an array
 * index (listed first), `__proto__` (sets the attributes' prototype).
 */
function keysNeedParse(b: Uint8Array, n: number): boolean {
  for (let k = 0; k < n; k++) {
    const start = members[k * FIELDS]!;
    const end = members[k * FIELDS + 1]!;
    let digits = start < end;
    for (let i = start; digits && i < end; i++) digits = isDigit(b[i]);
    if (digits || equals(b, start, end, PROTO)) return true;
    for (let j = 0; j < k; j++) {
      const s = members[j * FIELDS]!;
      const e = members[j * FIELDS + 1]!;
      if (e - s !== end - start) continue;
      let same = true;
      for (let i = 0; same && i < end - start; i++)
        same = b[s + i] === b[start + i];
      if (same) return true;
    }
  }
  return false;
}

/** The logger's keys by their length in bytes, with their bits: most keys are no such key's length. */
const LOGGER_KEYS_BY_LENGTH: Array<Array<[Uint8Array, number]>> = [];
for (const [key, bit] of LOGGER_KEYS)
  (LOGGER_KEYS_BY_LENGTH[Buffer.byteLength(key)] ??= []).push([utf8(key), bit]);

/** Whether b[start, end) is an integer literal: digits, maybe a minus. */
function digitsOnly(b: Uint8Array, start: number, end: number): boolean {
  for (let i = b[start] === 0x2d ? start + 1 : start; i < end; i++)
    if (!isDigit(b[i])) return false;
  return true;
}

/** The LOGGER_KEYS bit of the key in b[start, end); 0 for another key. */
function loggerKeyBit(b: Uint8Array, start: number, end: number): number {
  const candidates = LOGGER_KEYS_BY_LENGTH[end - start];
  if (candidates === undefined) return 0;
  for (let i = 0; i < candidates.length; i++) {
    const [key, bit] = candidates[i]!;
    if (equals(b, start, end, key)) return bit;
  }
  return 0;
}

/**
 * Writes the reader's current record (after its advance()) as LogRecord
 * fields, as LogsEncoder.append writes toLogRecord's result; false, having
 * written what the caller must drop, when the line needs JSON.parse.
 */
export function writeStagedRecord(
  w: ProtoWriter,
  reader: StagedLogReader,
  limits: LogLimits = NO_LOG_LIMITS,
): boolean {
  const b = reader.bytes;
  const n = scan(b, reader.lineStart, reader.lineEnd);
  if (n < 0 || keysNeedParse(b, n)) return false;
  const log = reader.log;
  const messageKey = log.messageKey || "msg";
  let msg = messageKeys.get(messageKey);
  if (msg === undefined) {
    msg = utf8(messageKey);
    if (messageKeys.size < 64) messageKeys.set(messageKey, msg);
  }
  let body = -1;
  let bodyKind = 0;
  let bodyNumber = 0;
  let time: number | undefined;
  let attributes = 0;
  const own = writtenFields(log.ownFields, reader.hasTraceId);
  for (let k = 0; k < n; k++) {
    const m = k * FIELDS;
    const keyStart = members[m]!;
    const keyEnd = members[m + 1]!;
    let attribute = true;
    if (equals(b, keyStart, keyEnd, msg)) {
      attribute = false;
      // A message that is not a string (pino writes what it is given) is
      // still the body.
      body = m;
      bodyKind = members[m + 2]!;
      if (bodyKind === NUMBER) bodyNumber = numbers[k]!;
    }
    const bit = loggerKeyBit(b, keyStart, keyEnd);
    if ((bit & own) !== 0) {
      attribute = false;
      if (bit === OWN_TIME) {
        if (members[m + 2] === STRING) return false; // a date to parse
        if (members[m + 2] === NUMBER) time = epochMillis(numbers[k]!);
      }
    }
    // An integer past 2^53 (the body's or an attribute's) is left to
    // toLogRecord, which keeps its digits.
    if (
      members[m + 2] === NUMBER &&
      (attribute || body === m) &&
      !Number.isSafeInteger(numbers[k]) &&
      digitsOnly(b, members[m + 3]!, members[m + 4]!)
    )
      return false;
    if (!attribute) members[m + 2] = 0;
    // A line the limits cut is left to toLogRecord, which cuts by
    // characters; a string of no more bytes than the limit has no more
    // characters either.
    else if (
      ++attributes > limits.attributeCountLimit ||
      (members[m + 2] === STRING &&
        members[m + 4]! - members[m + 3]! > limits.attributeValueLengthLimit)
    )
      return false;
  }
  if (time !== undefined) {
    w.tag(1, WIRE_FIXED64);
    w.fixed64Nanos(time);
  }
  if (log.severityNumber > 0) {
    w.tag(2, WIRE_VARINT);
    w.uvarint(log.severityNumber);
  }
  if (log.severityText) w.stringField(3, log.severityText);
  if (body >= 0) {
    const bm = w.begin(5);
    if (bodyKind === STRING)
      w.rangeField(1, b, members[body + 3]!, members[body + 4]!);
    else
      writeAnyValue(
        w,
        bodyKind === NUMBER
          ? bodyNumber
          : bodyKind === NULL
            ? null
            : bodyKind === TRUE,
      );
    w.end(bm);
  }
  for (let k = 0; k < n; k++) {
    const m = k * FIELDS;
    const kind = members[m + 2]!;
    if (kind === 0) continue; // the message, or a dropped key
    const keyStart = members[m]!;
    const keyEnd = members[m + 1]!;
    const kv = w.begin(6);
    if (keyEnd > keyStart) w.rangeField(1, b, keyStart, keyEnd);
    const vm = w.begin(2);
    // A string as the bytes it is; any other value as the encoder writes it.
    if (kind === STRING) w.rangeField(1, b, members[m + 3]!, members[m + 4]!);
    else
      writeAnyValue(
        w,
        kind === NUMBER ? numbers[k]! : kind === NULL ? null : kind === TRUE,
      );
    w.end(vm);
    w.end(kv);
  }
  if (log.traceFlags) {
    w.tag(8, WIRE_FIXED32);
    w.fixed32(log.traceFlags & 0xff);
  }
  if (reader.hasTraceId) w.hexAsciiField(9, b, reader.idsAt, TRACE_ID_LENGTH);
  if (reader.hasSpanId)
    w.hexAsciiField(
      10,
      b,
      reader.idsAt + (reader.hasTraceId ? TRACE_ID_LENGTH : 0),
      SPAN_ID_LENGTH,
    );
  w.tag(11, WIRE_FIXED64);
  w.fixed64Nanos(log.observed);
  return true;
}
