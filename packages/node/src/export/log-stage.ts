// Log lines waiting for their batch, kept as bytes outside V8's heap.
//
// A captured line used to wait as a string with a small record beside it
// until its batch of 512 was sent. At thousands of lines a second those
// survive young-generation collections, and V8 answers survivors by growing
// the young generation (see batch-queue.ts): the waiting lines were the
// largest part of what the export path kept alive. Here each line is copied
// into a growing buffer as it is written and the string is garbage at once;
// a batch is one buffer (copied in one piece to an export worker, if there
// is one), read back a record at a time by the exporter, which parses and
// encodes the lines outside any request.
//
// Each line costs one call into C++ to write it and one to read it back:
// trace and span ids are ASCII copied by JavaScript and read back with the
// line, and severity texts and message keys, a handful per logger, are
// numbered in a table carried once per batch.
//
// A batch, little-endian:
//   u32 table bytes; the table: per string, u16 UTF-8 bytes and the bytes;
//   the records, each:
//     u8 severity number, u8 trace flags, u8 flags (which ids are there;
//     the SDK's own record), u8 own fields,
//     u16 severity text (table index), u16 message key (table index),
//     u32 bytes of ids and line, f64 observed time (ms),
//     [32 ASCII trace id][16 ASCII span id] line (UTF-8).
import type { BatchEncoder } from "./batch-queue.ts";

/**
 * `OwnField` of @threadline/core, bit for bit (the exporter, which may run
 * on a worker thread, loads no more than it needs).
 */
export const OWN_LEVEL = 1;
export const OWN_TIME = 2;
export const OWN_PID = 4;
export const OWN_HOSTNAME = 8;
export const ALL_OWN_FIELDS = 15;
/**
 * Staged with the own fields: the line's correlation is named as ECS
 * names it (`trace.id`, `span.id`: THREADLINE_LOG_FIELDS=ecs), not
 * `trace_id`, `span_id`.
 */
export const ECS_NAMES = 64;
/** `OwnField.customer`: the line's correlation wrote its `customer.id`. */
export const OWN_CUSTOMER = 128;

/** One captured log line and its correlation, as the log sink hands it over. */
export interface StagedLog {
  line: string;
  severityNumber: number;
  severityText: string | undefined;
  traceId: string | undefined;
  spanId: string | undefined;
  traceFlags: number;
  /** When it was captured, ms since the epoch. */
  observed: number;
  messageKey: string;
  /**
   * Which of the logger's own fields its lines begin with (OwnField bits),
   * and ECS_NAMES when the correlation is written under ECS's names.
   */
  ownFields: number;
  /**
   * The SDK's own record (an alarm's), exported under the SDK's
   * instrumentation scope, not the logger's.
   */
  sdk: boolean;
}

/** An empty record, to be filled in and reused. */
export function emptyStagedLog(): StagedLog {
  return {
    line: "",
    severityNumber: 0,
    severityText: undefined,
    traceId: undefined,
    spanId: undefined,
    traceFlags: 0,
    observed: 0,
    messageKey: "",
    ownFields: ALL_OWN_FIELDS,
    sdk: false,
  };
}

const HEADER = 20;
const HAS_TRACE_ID = 1;
const HAS_SPAN_ID = 2;
const SDK_RECORD = 4;
const NO_STRING = 0xffff;
export const TRACE_ID_LENGTH = 32;
export const SPAN_ID_LENGTH = 16;
// UTF-8 takes at most 3 bytes per UTF-16 code unit, so reserving this much
// room lets a line be written without measuring it first.
const MAX_BYTES_PER_UNIT = 3;

/** Copies `s` if it has `length` ASCII characters; false (and nothing kept) if not. */
function writeAscii(b: Buffer, at: number, s: string, length: number): boolean {
  if (s.length !== length) return false;
  for (let i = 0; i < length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return false;
    b[at + i] = c;
  }
  return true;
}

export class LogStage implements BatchEncoder<StagedLog> {
  #buf: Buffer;
  #pos = 0;
  #pending = 0;
  /** Severity texts and message keys of this batch; a record names them by index. */
  #strings: string[] = [];

  readonly #allocate: (size: number) => Buffer;
  readonly #initialSize: number;
  readonly #keepBytes: number;

  /**
   * `initialSize`: the stage's own buffer to start with (it grows, and
   * goes back to this after a batch that made it larger than `keepBytes`).
   * `allocate` gives the memory of each batch {@link take} hands out (for a
   * caller that reuses it once the batch is encoded).
   */
  constructor({
    initialSize = 64 * 1024,
    allocate = Buffer.allocUnsafeSlow,
    keepBytes = Infinity,
  }: {
    initialSize?: number;
    allocate?: (size: number) => Buffer;
    keepBytes?: number;
  } = {}) {
    this.#buf = Buffer.allocUnsafeSlow(initialSize);
    this.#allocate = allocate;
    this.#initialSize = initialSize;
    this.#keepBytes = keepBytes;
  }

  get pending(): number {
    return this.#pending;
  }

  /** Bytes of the records appended and not yet taken. */
  get bytes(): number {
    return this.#pos;
  }

  /** Bytes the stage's own buffer holds, used or not. */
  get capacity(): number {
    return this.#buf.length;
  }

  append(log: StagedLog): void {
    const severityText =
      log.severityText === undefined
        ? NO_STRING
        : this.#index(log.severityText);
    const messageKey = this.#index(log.messageKey);
    this.#ensure(
      HEADER +
        TRACE_ID_LENGTH +
        SPAN_ID_LENGTH +
        MAX_BYTES_PER_UNIT * log.line.length,
    );
    const b = this.#buf;
    const at = this.#pos;
    let pos = at + HEADER;
    let present = log.sdk ? SDK_RECORD : 0;
    if (
      log.traceId !== undefined &&
      writeAscii(b, pos, log.traceId, TRACE_ID_LENGTH)
    ) {
      present |= HAS_TRACE_ID;
      pos += TRACE_ID_LENGTH;
    }
    if (
      log.spanId !== undefined &&
      writeAscii(b, pos, log.spanId, SPAN_ID_LENGTH)
    ) {
      present |= HAS_SPAN_ID;
      pos += SPAN_ID_LENGTH;
    }
    pos += b.write(log.line, pos, "utf8");
    b[at] = log.severityNumber;
    b[at + 1] = log.traceFlags;
    b[at + 2] = present;
    b[at + 3] = log.ownFields;
    b.writeUInt16LE(severityText, at + 4);
    b.writeUInt16LE(messageKey, at + 6);
    b.writeUInt32LE(pos - at - HEADER, at + 8);
    b.writeDoubleLE(log.observed, at + 12);
    this.#pos = pos;
    this.#pending++;
  }

  /** The records appended since the last take(), in a buffer of their own (from `allocate`). */
  take(): Uint8Array {
    const out = this.#batch(this.#pos);
    this.#pos = 0;
    this.#pending = 0;
    this.#strings = [];
    // One very long line (it reserves 3 bytes a character) must not pin
    // its buffer for the rest of the process; a batch of ordinary lines
    // keeps the room it grew.
    if (this.#buf.length > this.#keepBytes)
      this.#buf = Buffer.allocUnsafeSlow(this.#initialSize);
    return out;
  }

  /**
   * The records appended while {@link bytes} was below `end` (a record's
   * end), as {@link take} gives them; the records after them stay. Both
   * batches carry the whole table of strings, so the indices the later
   * records hold stay true.
   */
  takeBefore(end: number): Uint8Array {
    const b = this.#buf;
    let count = 0;
    for (let at = 0; at < end; count++) at += HEADER + b.readUInt32LE(at + 8);
    const out = this.#batch(end);
    b.copy(b, 0, end, this.#pos);
    this.#pos -= end;
    this.#pending -= count;
    return out;
  }

  /** The table of strings and the first `end` bytes of records, in a buffer from `allocate`. */
  #batch(end: number): Buffer {
    const strings = this.#strings;
    let tableBytes = 0;
    for (const s of strings) tableBytes += 2 + Buffer.byteLength(s);
    const out = this.#allocate(4 + tableBytes + end);
    out.writeUInt32LE(tableBytes, 0);
    let pos = 4;
    for (const s of strings) {
      const n = out.write(s, pos + 2, "utf8");
      out.writeUInt16LE(n, pos);
      pos += 2 + n;
    }
    this.#buf.copy(out, pos, 0, end);
    return out;
  }

  #index(s: string): number {
    const strings = this.#strings;
    for (let i = 0; i < strings.length; i++) if (strings[i] === s) return i;
    if (strings.length === NO_STRING)
      throw new Error(`more than ${NO_STRING} level names and message keys`);
    if (Buffer.byteLength(s) > 0xffff)
      throw new Error("a level name or message key longer than 64 KB");
    strings.push(s);
    return strings.length - 1;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }
}

/** Reads back the records of one taken batch, in order, into one reused object. */
export class StagedLogReader {
  /** The batch. */
  readonly bytes: Buffer;
  readonly #strings: string[] = [];
  #pos: number;
  /** The record read by the last {@link next} that returned true. */
  readonly log: StagedLog = emptyStagedLog();
  /**
   * Where the current record's ASCII trace id (if it has one) and then span
   * id (if it has one) begin in {@link bytes}, and where its line begins
   * and ends; set by {@link advance}.
   */
  idsAt = 0;
  lineStart = 0;
  lineEnd = 0;
  hasTraceId = false;
  hasSpanId = false;

  constructor(body: Uint8Array) {
    const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    this.bytes = b;
    const end = 4 + b.readUInt32LE(0);
    let pos = 4;
    while (pos < end) {
      const n = b.readUInt16LE(pos);
      this.#strings.push(b.toString("utf8", pos + 2, pos + 2 + n));
      pos += 2 + n;
    }
    this.#pos = end;
  }

  /** Reads the next record, all but its ids and line (see {@link decode}); false at the end. */
  advance(): boolean {
    const b = this.bytes;
    const at = this.#pos;
    if (at + HEADER > b.length) return false;
    const log = this.log;
    const present = b[at + 2]!;
    const severityText = b.readUInt16LE(at + 4);
    const length = b.readUInt32LE(at + 8);
    log.severityNumber = b[at]!;
    log.traceFlags = b[at + 1]!;
    log.severityText =
      severityText === NO_STRING ? undefined : this.#strings[severityText];
    log.messageKey = this.#strings[b.readUInt16LE(at + 6)] ?? "";
    log.observed = b.readDoubleLE(at + 12);
    log.ownFields = b[at + 3]!;
    log.sdk = (present & SDK_RECORD) !== 0;
    this.hasTraceId = (present & HAS_TRACE_ID) !== 0;
    this.hasSpanId = (present & HAS_SPAN_ID) !== 0;
    this.idsAt = at + HEADER;
    this.lineStart =
      this.idsAt +
      (this.hasTraceId ? TRACE_ID_LENGTH : 0) +
      (this.hasSpanId ? SPAN_ID_LENGTH : 0);
    this.lineEnd = at + HEADER + length;
    this.#pos = this.lineEnd;
    return true;
  }

  /** Fills in the current record's ids and line as strings. */
  decode(): void {
    const log = this.log;
    // Ids and line in one read; the ids are ASCII, so their slices are exact.
    const text = this.bytes.toString("utf8", this.idsAt, this.lineEnd);
    let from = 0;
    log.traceId = undefined;
    log.spanId = undefined;
    if (this.hasTraceId) {
      log.traceId = text.slice(0, TRACE_ID_LENGTH);
      from = TRACE_ID_LENGTH;
    }
    if (this.hasSpanId) {
      log.spanId = text.slice(from, from + SPAN_ID_LENGTH);
      from += SPAN_ID_LENGTH;
    }
    log.line = from === 0 ? text : text.slice(from);
  }

  /** Reads the next record whole; false at the end. */
  next(): boolean {
    if (!this.advance()) return false;
    this.decode();
    return true;
  }
}
