// Log lines waiting for their batch, kept as bytes outside V8's heap.
//
// A captured line used to wait as a string with a small record beside it
// until its batch of 512 was sent. At thousands of lines a second those
// survive young-generation collections, and V8 answers survivors by growing
// the young generation (see batch-queue.ts): the waiting lines were the
// largest part of what the export path kept alive. Here each line is copied
// into a growing buffer as it is written and the string is garbage at once;
// a batch is one buffer, transferred to the export worker without a copy
// when there is one, and read back a record at a time by the exporter.
//
// One record, little-endian:
//   u8 severity number, u8 trace flags, u8 presence bits, u8 unused,
//   u32 severity text bytes, u32 message key bytes, u32 line bytes,
//   f64 observed time (ms), [16 trace id bytes], [8 span id bytes],
//   severity text, message key, line (UTF-8).
import type { BatchEncoder } from "./batch-queue.ts";

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
}

const HEADER = 24;
const HAS_TRACE_ID = 1;
const HAS_SPAN_ID = 2;
const HAS_SEVERITY_TEXT = 4;
// UTF-8 takes at most 3 bytes per UTF-16 code unit, so reserving this much
// room lets a string be written without measuring it first.
const MAX_BYTES_PER_UNIT = 3;

export class LogStage implements BatchEncoder<StagedLog> {
  #buf: Buffer;
  #pos = 0;
  #pending = 0;

  constructor(initialSize = 64 * 1024) {
    this.#buf = Buffer.allocUnsafeSlow(initialSize);
  }

  get pending(): number {
    return this.#pending;
  }

  append(log: StagedLog): void {
    const severityText = log.severityText ?? "";
    const reserve =
      HEADER +
      24 +
      MAX_BYTES_PER_UNIT *
        (severityText.length + log.messageKey.length + log.line.length);
    this.#ensure(reserve);
    const b = this.#buf;
    const at = this.#pos;
    let pos = at + HEADER;
    let present = log.severityText === undefined ? 0 : HAS_SEVERITY_TEXT;
    // Ids that are not the hex they should be are left out, not mangled.
    if (
      log.traceId !== undefined &&
      log.traceId.length === 32 &&
      b.write(log.traceId, pos, 16, "hex") === 16
    ) {
      present |= HAS_TRACE_ID;
      pos += 16;
    }
    if (
      log.spanId !== undefined &&
      log.spanId.length === 16 &&
      b.write(log.spanId, pos, 8, "hex") === 8
    ) {
      present |= HAS_SPAN_ID;
      pos += 8;
    }
    const severityBytes = b.write(severityText, pos, "utf8");
    pos += severityBytes;
    const keyBytes = b.write(log.messageKey, pos, "utf8");
    pos += keyBytes;
    const lineBytes = b.write(log.line, pos, "utf8");
    pos += lineBytes;
    b[at] = log.severityNumber;
    b[at + 1] = log.traceFlags;
    b[at + 2] = present;
    b[at + 3] = 0;
    b.writeUInt32LE(severityBytes, at + 4);
    b.writeUInt32LE(keyBytes, at + 8);
    b.writeUInt32LE(lineBytes, at + 12);
    b.writeDoubleLE(log.observed, at + 16);
    this.#pos = pos;
    this.#pending++;
  }

  /** The records appended since the last take(), in a buffer of their own. */
  take(): Uint8Array {
    const out = Buffer.allocUnsafeSlow(this.#pos);
    this.#buf.copy(out, 0, 0, this.#pos);
    this.#pos = 0;
    this.#pending = 0;
    return out;
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

/** Reads back the records of one taken batch, in order. */
export function* stagedLogs(body: Uint8Array): Generator<StagedLog> {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let pos = 0;
  while (pos + HEADER <= b.length) {
    const present = b[pos + 2]!;
    const severityBytes = b.readUInt32LE(pos + 4);
    const keyBytes = b.readUInt32LE(pos + 8);
    const lineBytes = b.readUInt32LE(pos + 12);
    const log: StagedLog = {
      line: "",
      severityNumber: b[pos]!,
      severityText: undefined,
      traceId: undefined,
      spanId: undefined,
      traceFlags: b[pos + 1]!,
      observed: b.readDoubleLE(pos + 16),
      messageKey: "",
    };
    pos += HEADER;
    if (present & HAS_TRACE_ID) {
      log.traceId = b.toString("hex", pos, pos + 16);
      pos += 16;
    }
    if (present & HAS_SPAN_ID) {
      log.spanId = b.toString("hex", pos, pos + 8);
      pos += 8;
    }
    if (present & HAS_SEVERITY_TEXT)
      log.severityText = b.toString("utf8", pos, pos + severityBytes);
    pos += severityBytes;
    log.messageKey = b.toString("utf8", pos, pos + keyBytes);
    pos += keyBytes;
    log.line = b.toString("utf8", pos, pos + lineBytes);
    pos += lineBytes;
    yield log;
  }
}
