// The size of the content-header frame amqplib will encode for a message's
// properties, worked out without encoding it. The copy path (trace headers
// put into a copy of the application's headers for amqplib to encode, see
// amqplib-instrumentation.ts) checks it before adding them: amqplib does not
// check a frame against the connection's frame size (the broker closes the
// whole connection on a larger one), and encodes a headers table into a
// 64 KiB scratch buffer (a larger table throws, or is cut short).
//
// The sizes follow amqplib's encoder (lib/codec.js, lib/defs.js): numbers in
// a table take the smallest signed integer that holds them, or a double;
// `{ '!': type, value }` names the type; keys whose value is undefined are
// left out.

/** Frame header (7), class and weight (4), body size (8), property flags (2), frame end (1). */
const FRAME_FIXED = 22;
/** Properties encoded as short strings: a length byte and the UTF-8 bytes. */
const SHORT_STRINGS = [
  "contentType",
  "contentEncoding",
  "correlationId",
  "replyTo",
  "expiration",
  "messageId",
  "type",
  "userId",
  "appId",
  "clusterId",
] as const;

/** Bytes of a tagged value of each type that has a fixed size, the tag included. */
const FIXED: Record<string, number> = {
  boolean: 2,
  byte: 2,
  int8: 2,
  unsignedbyte: 2,
  uint8: 2,
  short: 3,
  int16: 3,
  unsignedshort: 3,
  uint16: 3,
  int: 5,
  int32: 5,
  unsignedint: 5,
  uint32: 5,
  float: 5,
  decimal: 6,
  long: 9,
  int64: 9,
  timestamp: 9,
  double: 9,
  float64: 9,
};

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function numberSize(n: number): number {
  const floating =
    n >= 0x8000000000000000 ||
    (Math.abs(n) < 0x4000000000000 && Math.floor(n) !== n);
  if (floating) return 9;
  if (n < 128 && n >= -128) return 2;
  if (n >= -0x8000 && n < 0x8000) return 3;
  if (n >= -0x80000000 && n < 0x80000000) return 5;
  return 9;
}

function valueSize(value: unknown): number {
  let type: string = typeof value;
  let val = value;
  if (
    type === "object" &&
    value !== null &&
    Object.prototype.hasOwnProperty.call(value, "!")
  ) {
    const typed = value as { "!": unknown; value: unknown };
    type = String(typed["!"]);
    val = typed.value;
  }
  if (type === "number") return numberSize(val as number);
  if (type === "string") return 5 + utf8Length(String(val));
  if (type === "object") {
    if (val === null) return 1;
    if (Array.isArray(val)) {
      let n = 5;
      for (const item of val) n += valueSize(item);
      return n;
    }
    if (Buffer.isBuffer(val)) return 5 + val.length;
    return 1 + tableSize(val as Record<string, unknown>);
  }
  // Types amqplib refuses to encode take nothing: its own error says why.
  return FIXED[type] ?? 0;
}

/** Bytes a field table takes, its length prefix included. */
export function tableSize(table: Record<string, unknown>): number {
  let n = 4;
  for (const key in table) {
    const value = table[key];
    if (value === undefined) continue;
    n += 1 + utf8Length(key) + valueSize(value);
  }
  return n;
}

/** Bytes of the content-header frame for `properties` (as amqplib's sendMessage gets them). */
export function contentHeaderSize(
  properties: Record<string, unknown>,
  headersSize: number,
): number {
  let n = FRAME_FIXED + headersSize;
  for (const name of SHORT_STRINGS) {
    const value = properties[name];
    if (typeof value === "string") n += 1 + utf8Length(value);
  }
  if (properties["deliveryMode"] != null) n += 1;
  if (properties["priority"] != null) n += 1;
  if (properties["timestamp"] != null) n += 8;
  return n;
}
