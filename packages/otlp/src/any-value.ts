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
    const m = w.begin(field);
    w.stringField(1, key);
    const vm = w.begin(2);
    writeAnyValue(w, value, depth);
    w.end(vm);
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
