// The trace headers of a publish, written straight into the content-header
// frame amqplib encoded for the message, instead of into a copy of its
// headers object for amqplib to encode.
//
// Why: amqplib's table encoder costs about half a microsecond per entry
// (several calls into C++ per string, a closure per value), and a publish
// gains two or three. Worse, it sizes the frame with Buffer.alloc(), which
// V8 keeps on its own heap only up to 64 bytes: the trace headers push every
// frame past that, onto a malloc'd backing store that is slower to make
// and to collect. Here the application's headers are encoded by amqplib as
// they would be without us (the frame stays small), and ours are appended
// to its headers table in one pooled allocation.
//
// The frame is AMQP 0-9-1's content header (section 4.2.6): type 2, channel,
// payload size, then class 60 (basic), weight, body size, property flags
// and the properties in flag order: content-type and content-encoding
// (short strings), then the headers table. The result is byte for byte what
// amqplib writes for the same headers with ours added last (the tests
// compare the two).

const FRAME_HEADER = 2;
const FRAME_END = 0xce;
const CLASS_BASIC = 60;
/** The most a headers table (its length included) can take: amqplib encodes one in 64 KiB. */
export const MAX_TABLE = 65_536;
/** Where the property flags are: frame header (7), class, weight, body size. */
const FLAGS_AT = 7 + 2 + 2 + 8;
const HAS_CONTENT_TYPE = 0x8000;
const HAS_CONTENT_ENCODING = 0x4000;
const HAS_HEADERS = 0x2000;

/**
 * Header names and values, alternating: strings, or epoch milliseconds
 * (integers past 2^31, which amqplib too sends as int64).
 */
export type HeaderEntries = Array<string | number>;

/** Each key as a field-table entry starts: its length, its UTF-8 bytes. */
const keyBytes = new Map<string, Buffer>();
function encodedKey(key: string): Buffer {
  let b = keyBytes.get(key);
  if (b === undefined) {
    const text = Buffer.from(key, "utf8");
    b = Buffer.concat([Buffer.of(text.length), text]);
    keyBytes.set(key, b);
  }
  return b;
}

function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++)
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

/** Copies `src[start, end)` to `dst` at `at`; a loop beats a call into C++ for the few bytes here. */
function copyBytes(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Buffer,
  at: number,
): void {
  if (end - start > 256) {
    dst.set(src.subarray(start, end), at);
    return;
  }
  for (let i = start; i < end; i++) dst[at + i - start] = src[i]!;
}

/** Bytes the entries take in a field table. */
function entriesSize(entries: HeaderEntries): number {
  let n = 0;
  for (let i = 0; i < entries.length; i += 2) {
    const value = entries[i + 1]!;
    n += encodedKey(entries[i] as string).length + 1;
    n += typeof value === "number" ? 8 : 4 + utf8Length(value);
  }
  return n;
}

function writeEntries(out: Buffer, at: number, entries: HeaderEntries): void {
  let pos = at;
  for (let i = 0; i < entries.length; i += 2) {
    const key = encodedKey(entries[i] as string);
    copyBytes(key, 0, key.length, out, pos);
    pos += key.length;
    const value = entries[i + 1]!;
    if (typeof value === "number") {
      out[pos++] = 0x6c; // 'l', signed 64-bit
      if (value >= 0 && Number.isSafeInteger(value)) {
        const high = Math.floor(value / 0x1_0000_0000);
        out.writeUInt32BE(high, pos);
        out.writeUInt32BE(value - high * 0x1_0000_0000, pos + 4);
      } else {
        out.writeBigInt64BE(BigInt(Math.trunc(value)), pos);
      }
      pos += 8;
      continue;
    }
    out[pos++] = 0x53; // 'S', long string
    const n = value.length;
    let j = 0;
    for (; j < n; j++) {
      const c = value.charCodeAt(j);
      if (c >= 0x80) break;
      out[pos + 4 + j] = c;
    }
    const bytes = j === n ? n : out.write(value, pos + 4, "utf8");
    out.writeUInt32BE(bytes, pos);
    pos += 4 + bytes;
  }
}

/** Why a frame was left as amqplib made it. */
export type SpliceRefusal =
  /** Not a basic content header as AMQP 0-9-1 lays it out. */
  | "unexpected frame"
  /** The headers table would grow past what amqplib itself can encode. */
  | "table full"
  /** The frame would grow past the connection's negotiated frame size. */
  | "frame full";

/**
 * The content-header frame `frame` with `entries` appended to its headers
 * table (a table made for them if it has none), or why not. `frameMax` is
 * the connection's negotiated frame size: a broker closes the whole
 * connection on a larger frame.
 */
export function spliceHeaders(
  frame: Buffer,
  entries: HeaderEntries,
  frameMax: number,
): Buffer | SpliceRefusal {
  const last = frame.length - 1;
  if (
    frame.length <= FLAGS_AT + 2 ||
    frame[0] !== FRAME_HEADER ||
    frame[last] !== FRAME_END ||
    frame.readUInt16BE(7) !== CLASS_BASIC ||
    frame.readUInt32BE(3) !== frame.length - 8
  )
    return "unexpected frame";
  const flags = frame.readUInt16BE(FLAGS_AT);
  let at = FLAGS_AT + 2;
  if ((flags & HAS_CONTENT_TYPE) !== 0) at += 1 + frame[at]!;
  if (at < last && (flags & HAS_CONTENT_ENCODING) !== 0) at += 1 + frame[at]!;
  const hasTable = (flags & HAS_HEADERS) !== 0;
  const tableLength = hasTable ? frame.readUInt32BE(at) : 0;
  const insertAt = hasTable ? at + 4 + tableLength : at;
  if (insertAt > last) return "unexpected frame";
  const size = entriesSize(entries);
  if (4 + tableLength + size > MAX_TABLE) return "table full";
  const extra = hasTable ? size : 4 + size;
  if (frame.length + extra > frameMax) return "frame full";
  // allocUnsafe: a slice of Node's shared pool; every byte is written below.
  const out = Buffer.allocUnsafe(frame.length + extra);
  copyBytes(frame, 0, insertAt, out, 0);
  copyBytes(frame, insertAt, frame.length, out, insertAt + extra);
  out.writeUInt32BE(frame.length - 8 + extra, 3);
  if (hasTable) {
    out.writeUInt32BE(tableLength + size, at);
    writeEntries(out, insertAt, entries);
  } else {
    out.writeUInt16BE(flags | HAS_HEADERS, FLAGS_AT);
    out.writeUInt32BE(size, insertAt);
    writeEntries(out, insertAt + 4, entries);
  }
  return out;
}
