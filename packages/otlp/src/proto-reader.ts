// A minimal, defensive protobuf reader for OTLP requests from the network.
//
// Every length is checked against the bytes that remain, wire types are
// checked against what each field expects, nesting is bounded, and anything
// unexpected throws an OtlpDecodeError naming what was wrong, so a receiver
// can answer 400 with a reason and never act on half-read data. Unknown
// fields are skipped, as protobuf requires.

const TWO_32 = 0x1_0000_0000;

/** A payload that is not a valid OTLP message. */
export class OtlpDecodeError extends Error {
  readonly code = "THREADLINE_OTLP_DECODE";
  constructor(message: string) {
    super(message);
    this.name = "OtlpDecodeError";
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** An integer as a number when a double holds it exactly, else as the bigint. */
export function safeOrBig(n: bigint): number | bigint {
  return n >= -MAX_SAFE && n <= MAX_SAFE ? Number(n) : n;
}

export class ProtoReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  readonly depth: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length, depth = 0) {
    if (depth > 32) throw new OtlpDecodeError("messages nested too deeply");
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.depth = depth;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OtlpDecodeError("truncated varint");
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * shift;
      if (b < 0x80) return result;
      shift *= 128;
    }
    throw new OtlpDecodeError("varint longer than 10 bytes");
  }

  /**
   * A signed int64 varint (two's complement): a number when it is a safe
   * integer, else a bigint, every digit kept (an id sent as int64 would be
   * rounded as a double).
   */
  int64(): number | bigint {
    const start = this.pos;
    const v = this.varint();
    // v is exact up to 2^53 and at least 2^53 past it. Ten-byte varints
    // (negative numbers) are past it.
    if (v <= Number.MAX_SAFE_INTEGER) return v;
    let big = 0n;
    let shift = 0n;
    for (let i = start; i < this.pos; i++) {
      big |= BigInt(this.buf[i]! & 0x7f) << shift;
      shift += 7n;
    }
    return safeOrBig(BigInt.asIntN(64, big));
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw new OtlpDecodeError("truncated fixed32");
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (
      (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)) + b[p + 3]! * 0x100_0000
    );
  }

  /** fixed64 as a double (exact below 2^53; nanosecond timestamps lose a few hundred ns). */
  fixed64(): number {
    const lo = this.fixed32();
    const hi = this.fixed32();
    return hi * TWO_32 + lo;
  }

  /**
   * sfixed64 (two's complement) as a double: exact below 2^53 in magnitude,
   * rounded once past it. (Read unsigned, less 2^64, a negative value
   * rounds to a multiple of 2048: -7 reads as 0.)
   */
  sfixed64(): number {
    const lo = this.fixed32();
    const hi = this.fixed32() | 0;
    return hi * TWO_32 + lo;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new OtlpDecodeError("truncated double");
    const v = new DataView(
      this.buf.buffer,
      this.buf.byteOffset + this.pos,
      8,
    ).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** The [start, end) of a length-delimited field's content. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start)
      throw new OtlpDecodeError("length runs past the end of the message");
    this.pos = start + len;
    return [start, start + len];
  }

  bytes(): Uint8Array {
    const [s, e] = this.span();
    return this.buf.subarray(s, e);
  }

  string(): string {
    const [s, e] = this.span();
    return Buffer.from(
      this.buf.buffer,
      this.buf.byteOffset + s,
      e - s,
    ).toString("utf8");
  }

  /** An id of `size` bytes as lowercase hex; empty when absent (length 0). */
  hexId(size: number, what: string): string {
    const [s, e] = this.span();
    if (e === s) return "";
    if (e - s !== size)
      throw new OtlpDecodeError(`${what} must be ${size} bytes, got ${e - s}`);
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + s, size).toString(
      "hex",
    );
  }

  message(): ProtoReader {
    const [s, e] = this.span();
    return new ProtoReader(this.buf, s, e, this.depth + 1);
  }

  /** Next tag as [field, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) throw new OtlpDecodeError("field number 0");
    return [field, t & 7];
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.pos + 8 > this.end)
          throw new OtlpDecodeError("truncated fixed64");
        this.pos += 8;
        return;
      case 2:
        this.span();
        return;
      case 5:
        if (this.pos + 4 > this.end)
          throw new OtlpDecodeError("truncated fixed32");
        this.pos += 4;
        return;
      default:
        throw new OtlpDecodeError(`unsupported wire type ${wire}`);
    }
  }

  expect(wire: number, expected: number, field: string): void {
    if (wire !== expected)
      throw new OtlpDecodeError(
        `${field} has wire type ${wire}, expected ${expected}`,
      );
  }
}
