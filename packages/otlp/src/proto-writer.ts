// A minimal protobuf writer for OTLP.
//
// Nested messages are written in one pass: a message's length is not known
// before its content, so one byte is reserved for it, the content written,
// and the content moved right if the length needs more than one varint byte
// (copyWithin of a few hundred bytes; most OTLP sub-messages are short).
// Strings are written straight into the buffer as UTF-8 with the same trick;
// short ASCII strings (attribute keys, most values) byte by byte in
// JavaScript, which beats a call into the native UTF-8 writer at that size.
// Ids are written from their hex form without intermediate objects.

const TWO_32 = 0x1_0000_0000;
const TWO_64 = 2 ** 64;

/**
 * The latest time OTLP's epoch nanoseconds (a uint64) hold, in epoch
 * milliseconds: 2^64 - 1 ns, in the year 2554 (as a double, under a
 * microsecond short of it).
 */
export const MAX_TIME_MS = 2 ** 64 / 1e6;

/** Wire types used by OTLP. */
export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** Strings up to this many characters (< 0x80) are tried as ASCII in JavaScript. */
const SHORT_STRING = 64;

/** Value of each hex digit's char code, 16 for anything else. */
const HEX = new Uint8Array(128).fill(16);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[97 + i] = HEX[65 + i] = 10 + i;

/**
 * The byte of each pair of ASCII character codes (high << 7 | low), 0x100
 * where either is not a hex digit: one load per byte of an id.
 */
const HEX_PAIR = new Uint16Array(1 << 14).fill(0x100);
for (let hi = 0; hi < 128; hi++)
  for (let lo = 0; lo < 128; lo++)
    if ((HEX[hi]! | HEX[lo]!) < 16)
      HEX_PAIR[(hi << 7) | lo] = (HEX[hi]! << 4) | HEX[lo]!;

/** The byte of two hex digits' character codes; more than 0xff if either is not one. */
function hexByte(hi: number, lo: number): number {
  return (hi | lo) < 0x80 ? HEX_PAIR[(hi << 7) | lo]! : 0x100;
}

/**
 * An id of `n` bytes as OTLP/JSON writes it: its hex digits when it has
 * 2n of them, the bytes the protobuf writer makes of it when some are not
 * hex (as Buffer parses them), and undefined, for no field at all, when
 * it is of another length or no string: the Collector refuses a whole
 * request over an id it cannot read.
 */
export function jsonId(id: unknown, n: number): string | undefined {
  if (typeof id !== "string" || id.length !== 2 * n) return undefined;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x80 || HEX[c] === 16) {
      const bytes = Buffer.alloc(n);
      bytes.write(id, "hex");
      return bytes.toString("hex");
    }
  }
  return id;
}

/** Writes an unsigned varint (0 <= n < 2^31) into `buf` at `pos`; returns the position after it. */
export function writeVarintAt(buf: Uint8Array, pos: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Bytes a varint of `n` takes. */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x20_0000) return 3;
  if (n < 0x1000_0000) return 4;
  return 5;
}

/**
 * Where an encoder puts a finished request: `size` bytes, every one of which
 * it writes. Buffer.allocUnsafeSlow when not given.
 */
export type Allocate = (size: number) => Uint8Array;

export class ProtoWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(initialSize = 64 * 1024) {
    this.#buf = Buffer.allocUnsafe(initialSize);
  }

  get length(): number {
    return this.#pos;
  }

  /** Bytes its buffer holds, written or not. */
  get capacity(): number {
    return this.#buf.length;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  /**
   * Writes an unsigned varint (0 <= n < 2^53). What no uint64 holds (a
   * negative number, NaN, Infinity, no number) is written as 0: a negative
   * one was a byte with its continuation bit set and no byte after it, a
   * malformed message a Collector refuses whole, and Infinity never ended.
   */
  uvarint(n: number): void {
    this.#ensure(10);
    const b = this.#buf;
    let pos = this.#pos;
    let v = n >= 0 && n < TWO_64 ? n : 0;
    while (v >= 0x80) {
      b[pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[pos++] = v;
    this.#pos = pos;
  }

  /** Writes a signed int64 varint (two's complement for negatives). */
  int64(n: number): void {
    if (n >= 0) this.uvarint(n);
    else this.int64Big(BigInt(n));
  }

  /** Writes an int64 varint from a bigint (cut to 64 bits, two's complement). */
  int64Big(n: bigint): void {
    let v = BigInt.asUintN(64, n);
    this.#ensure(10);
    while (v >= 0x80n) {
      this.#buf[this.#pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#pos++] = Number(v);
  }

  tag(field: number, wire: number): void {
    this.uvarint((field << 3) | wire);
  }

  fixed32(n: number): void {
    this.#ensure(4);
    this.#buf.writeUInt32LE(n >>> 0, this.#pos);
    this.#pos += 4;
  }

  /** Writes a fixed64 from a non-negative integer held in a double. */
  fixed64(n: number): void {
    this.#ensure(8);
    const hi = Math.floor(n / TWO_32);
    this.#buf.writeUInt32LE(n - hi * TWO_32, this.#pos);
    this.#buf.writeUInt32LE(hi >>> 0, this.#pos + 4);
    this.#pos += 8;
  }

  /**
   * Writes fractional epoch milliseconds as fixed64 epoch nanoseconds,
   * exactly: ms * 1e6 overflows a double's 53-bit mantissa, so the integral
   * milliseconds are split at 2^32 and multiplied in parts. A time the
   * uint64 cannot hold is written as the nearest one it can, not wrapped
   * round: one before 1970 (or NaN) as 0, one past 2^64 - 1 ns as that.
   */
  fixed64Nanos(ms: number): void {
    let low = 0;
    let high = 0;
    if (ms > 0) {
      const whole = Math.floor(ms);
      const frac = Math.round((ms - whole) * 1e6);
      const top = Math.floor(whole / TWO_32);
      const t = (whole - top * TWO_32) * 1e6 + frac; // < 2^53
      const carry = Math.floor(t / TWO_32);
      low = t - carry * TWO_32;
      high = top * 1e6 + carry;
      // Infinity makes NaN of these, and fails the test as well.
      if (!(high < TWO_32)) low = high = TWO_32 - 1;
    }
    this.#ensure(8);
    this.#buf.writeUInt32LE(low, this.#pos);
    this.#buf.writeUInt32LE(high, this.#pos + 4);
    this.#pos += 8;
  }

  double(n: number): void {
    this.#ensure(8);
    this.#buf.writeDoubleLE(n, this.#pos);
    this.#pos += 8;
  }

  /** Field of wire type LEN holding a UTF-8 string. Empty strings are skipped (proto3 default). */
  stringField(field: number, s: string): void {
    if (s.length === 0) return;
    this.tag(field, WIRE_LEN);
    this.string(s);
  }

  /** Like {@link stringField} but also writes empty strings (oneof members must be present). */
  stringFieldAlways(field: number, s: string): void {
    this.tag(field, WIRE_LEN);
    this.string(s);
  }

  /** A length-prefixed UTF-8 string (without tag). */
  string(s: string): void {
    // What is no string throws before room is made for it: its length is
    // no number, and the buffer grew (doubled) by it every time.
    if (typeof s !== "string")
      throw new TypeError(`a ${typeof s} was given where a string belongs`);
    const len = s.length;
    const max = len * 3;
    this.#ensure(max + 5);
    if (len <= SHORT_STRING) {
      const b = this.#buf;
      const start = this.#pos + 1; // the length fits one varint byte
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[start + i] = c;
      }
      if (i === len) {
        b[this.#pos] = len;
        this.#pos = start + len;
        return;
      }
    }
    if (max < 0x80) {
      const start = this.#pos + 1;
      const n = this.#buf.write(s, start, "utf8");
      this.#buf[this.#pos] = n;
      this.#pos = start + n;
      return;
    }
    const n = Buffer.byteLength(s);
    this.uvarint(n);
    this.#buf.write(s, this.#pos, n, "utf8");
    this.#pos += n;
  }

  /**
   * Field holding an id of `n` bytes given as hex (trace and span ids).
   * An id of any other length, empty included, is left out: a receiver
   * refuses the whole request over one it cannot read as an id.
   */
  hexField(field: number, hex: string, n: number): void {
    if (hex?.length !== 2 * n) return;
    const at = this.#shortBytes(field, n);
    const b = this.#buf;
    for (let i = 0; i < n; i++) {
      const v = hexByte(hex.charCodeAt(2 * i), hex.charCodeAt(2 * i + 1));
      if (v > 0xff) return this.#notHex(at, n, hex);
      b[at + i] = v;
    }
  }

  /**
   * Field holding bytes given as ASCII hex digits in `src` (ids kept as
   * text in a buffer), written as {@link hexField} writes their string.
   */
  hexAsciiField(
    field: number,
    src: Uint8Array,
    start: number,
    digits: number,
  ): void {
    const n = digits >>> 1;
    if (n === 0) return;
    const at = this.#shortBytes(field, n);
    const b = this.#buf;
    for (let i = 0; i < n; i++) {
      const v = hexByte(src[start + 2 * i]!, src[start + 2 * i + 1]!);
      if (v > 0xff) {
        const text = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
        return this.#notHex(
          at,
          n,
          text.toString("latin1", start, start + digits),
        );
      }
      b[at + i] = v;
    }
  }

  /** Starts a field of `n` (< 128) bytes; returns where the caller writes them. */
  #shortBytes(field: number, n: number): number {
    this.tag(field, WIRE_LEN);
    this.#ensure(n + 1);
    this.#buf[this.#pos] = n;
    const at = this.#pos + 1;
    this.#pos = at + n;
    return at;
  }

  /** Ids that are not hex: written the way Buffer parses them (up to the first bad digit). */
  #notHex(at: number, n: number, text: string): void {
    this.#buf.fill(0, at, at + n);
    this.#buf.write(text, at, n, "hex");
  }

  /**
   * Field of wire type LEN holding `src[start, end)` as it is: UTF-8 text
   * already encoded, copied without decoding it.
   */
  rangeField(field: number, src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.tag(field, WIRE_LEN);
    this.uvarint(n);
    this.#ensure(n);
    const b = this.#buf;
    const pos = this.#pos;
    // A loop beats a call into C++ for the short strings of a log line.
    if (n <= SHORT_STRING)
      for (let i = 0; i < n; i++) b[pos + i] = src[start + i]!;
    else b.set(src.subarray(start, end), pos);
    this.#pos = pos + n;
  }

  bytesField(field: number, bytes: Uint8Array): void {
    const n = bytes.length;
    if (field < 16 && n < 0x80) {
      // Tag and length of one byte each, the common case, written at once.
      this.#ensure(n + 2);
      const pos = this.#pos;
      this.#buf[pos] = (field << 3) | WIRE_LEN;
      this.#buf[pos + 1] = n;
      this.#buf.set(bytes, pos + 2);
      this.#pos = pos + 2 + n;
      return;
    }
    this.tag(field, WIRE_LEN);
    this.uvarint(bytes.length);
    this.raw(bytes);
  }

  raw(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  /** Starts a sub-message in `field`; pass the returned mark to {@link end}. */
  begin(field: number): number {
    this.tag(field, WIRE_LEN);
    this.#ensure(1);
    return this.#pos++;
  }

  /** Ends a sub-message started with {@link begin}, writing its length. */
  end(mark: number): void {
    const start = mark + 1;
    const len = this.#pos - start;
    const size = varintSize(len);
    if (size > 1) {
      this.#ensure(size - 1);
      this.#buf.copyWithin(start + size - 1, start, this.#pos);
      this.#pos += size - 1;
    }
    let p = mark;
    let v = len;
    while (v >= 0x80) {
      this.#buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.#buf[p] = v;
  }

  /**
   * A copy of what was written, in an ArrayBuffer of its own (so it can be
   * transferred), or in memory from `allocate`; the writer can be reset and
   * reused.
   */
  finish(allocate?: Allocate): Uint8Array {
    // Not zero-filled first: every byte is overwritten by the copy.
    const out = (allocate ?? Buffer.allocUnsafeSlow)(this.#pos);
    this.#buf.copy(out, 0, 0, this.#pos);
    return out;
  }

  reset(): void {
    this.#pos = 0;
  }

  /** Forgets what was written after `length` (a {@link length} read earlier). */
  truncate(length: number): void {
    if (length < this.#pos) this.#pos = length;
  }

  /** A copy of what was written from `start` (a {@link length} read earlier) on. */
  copy(start: number): Uint8Array {
    return new Uint8Array(this.#buf.subarray(start, this.#pos));
  }

  /** What was written so far, without copying; valid until the next write. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }
}
