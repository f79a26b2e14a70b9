import type { AnyValue, Attributes } from "./model.ts";
import { type ProtoWriter, WIRE_FIXED64, WIRE_VARINT } from "./proto-writer.ts";

/** Writes the content of an AnyValue message (no tag, no length). */
export function writeAnyValue(w: ProtoWriter, v: AnyValue, depth = 0): void {
  switch (typeof v) {
    case "string":
      w.stringFieldAlways(1, v);
      return;
    case "boolean":
      w.tag(2, WIRE_VARINT);
      w.uvarint(v ? 1 : 0);
      return;
    case "number":
      if (Number.isSafeInteger(v)) {
        w.tag(3, WIRE_VARINT);
        w.int64(v);
      } else {
        w.tag(4, WIRE_FIXED64);
        w.double(v);
      }
      return;
    case "object": {
      if (v === null || depth > 8) return;
      if (v instanceof Uint8Array) {
        w.bytesField(7, v);
        return;
      }
      if (Array.isArray(v)) {
        const arr = w.begin(5);
        for (const item of v as readonly AnyValue[]) {
          const m = w.begin(1);
          writeAnyValue(w, item, depth + 1);
          w.end(m);
        }
        w.end(arr);
        return;
      }
      const kv = w.begin(6);
      writeKeyValues(w, 1, v as Attributes, depth + 1);
      w.end(kv);
      return;
    }
    default:
      return;
  }
}

/**
 * The last value each attribute key was written with, and that KeyValue's
 * encoded content once the same value came twice in a row. Most attributes
 * repeat from span to span (the server, the database, the statement, the
 * queue), and a repeat is then one copy instead of a walk over the key and
 * the value. A key whose value keeps changing costs a lookup and no copies.
 */
class LastValue {
  value: string | number | boolean;
  bytes: Uint8Array | undefined = undefined;
  constructor(value: string | number | boolean) {
    this.value = value;
  }
}
const lastValues = new Map<string, LastValue>();
/** Keys remembered at most; later ones are written the long way. */
const MAX_KEYS = 1024;
/** Larger KeyValues are written the long way every time. */
const MAX_KEPT_BYTES = 512;

/**
 * Notes `value` as `key`'s last value after its KeyValue content was written
 * from `start`; on its second time in a row, keeps that content.
 */
function remember(
  w: ProtoWriter,
  start: number,
  key: string,
  value: string | number | boolean,
  last: LastValue | undefined,
): void {
  if (last === undefined) {
    if (lastValues.size < MAX_KEYS) lastValues.set(key, new LastValue(value));
  } else if (last.value !== value) {
    last.value = value;
    last.bytes = undefined;
  } else if (w.length - start <= MAX_KEPT_BYTES) {
    last.bytes = w.copy(start);
  }
}

/** Writes each defined entry of `attrs` as a KeyValue message in `field`. */
export function writeKeyValues(
  w: ProtoWriter,
  field: number,
  attrs: Attributes,
  depth = 0,
): void {
  for (const key in attrs) {
    const value = attrs[key];
    if (value === undefined) continue;
    // Objects and long strings are neither remembered nor kept: long
    // strings are rare, and would hold memory until their key's value
    // changed.
    const rememberable =
      typeof value !== "object" &&
      (typeof value !== "string" || value.length <= MAX_KEPT_BYTES);
    const last = rememberable ? lastValues.get(key) : undefined;
    if (
      last !== undefined &&
      last.value === value &&
      last.bytes !== undefined
    ) {
      w.bytesField(field, last.bytes);
      continue;
    }
    const m = w.begin(field);
    const start = w.length;
    w.stringField(1, key);
    const vm = w.begin(2);
    writeAnyValue(w, value, depth);
    w.end(vm);
    if (rememberable) remember(w, start, key, value, last);
    w.end(m);
  }
}

/** OTLP/JSON form of an AnyValue. */
export function anyValueToJson(v: AnyValue, depth = 0): unknown {
  switch (typeof v) {
    case "string":
      return { stringValue: v };
    case "boolean":
      return { boolValue: v };
    case "number":
      if (Number.isSafeInteger(v)) return { intValue: String(v) };
      if (Number.isFinite(v)) return { doubleValue: v };
      return { doubleValue: String(v) }; // NaN / Infinity, as the protobuf JSON mapping writes them
    case "object":
      if (v === null || depth > 8) return {};
      if (v instanceof Uint8Array)
        return { bytesValue: Buffer.from(v).toString("base64") };
      if (Array.isArray(v))
        return {
          arrayValue: {
            values: (v as readonly AnyValue[]).map((x) =>
              anyValueToJson(x, depth + 1),
            ),
          },
        };
      return {
        kvlistValue: { values: keyValuesToJson(v as Attributes, depth + 1) },
      };
    default:
      return {};
  }
}

export function keyValuesToJson(
  attrs: Attributes | undefined,
  depth = 0,
): Array<{ key: string; value: unknown }> {
  const out: Array<{ key: string; value: unknown }> = [];
  if (attrs === undefined) return out;
  for (const key in attrs) {
    const value = attrs[key];
    if (value !== undefined)
      out.push({ key, value: anyValueToJson(value, depth) });
  }
  return out;
}
