import type { AnyValue, Attributes } from "./model.ts";
import { ProtoReader } from "./proto-reader.ts";
import { ProtoWriter, WIRE_FIXED64, WIRE_VARINT } from "./proto-writer.ts";

/**
 * Levels of maps and arrays written as OTLP's own. A map or array nested
 * deeper is written as its JSON text, a string, in its place: receivers
 * refuse messages nested much deeper (the viewer's decoder reads 32 levels
 * of messages, and each level of a map takes three), and what is inside
 * still arrives.
 */
const MAX_DEPTH = 8;

/**
 * Where the values of event, link and metric point attributes start:
 * their KeyValues sit a message deeper in the request than a span's or a
 * log record's, so their values are cut a level sooner.
 */
export const DEEPER_START = 1;

/** A value's JSON text, if it is no map or array (which jsonText walks). */
function leafText(v: AnyValue): string | undefined {
  switch (typeof v) {
    case "string":
    case "number":
    case "boolean":
      return JSON.stringify(v);
    case "bigint":
      return v.toString();
    case "object":
      if (v === null) return "null";
      if (v instanceof Uint8Array)
        return JSON.stringify(
          Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"),
        );
      return undefined;
    default:
      return "null";
  }
}

/** A map or array jsonText is inside of: what is written of it so far. */
interface Open {
  readonly v: object;
  /** A map's keys; undefined for an array. */
  readonly keys: string[] | undefined;
  /** The next item or key. */
  i: number;
  readonly parts: string[];
  /** What comes before its text in its parent's: its key, if a map's. */
  readonly prefix: string;
}

/**
 * A map or array as JSON text, as JSON.stringify writes it but for what
 * OTLP carries and JSON does not: a bigint as its digits, bytes as base64
 * (as OTLP/JSON writes them), and a value within itself as null. A loop
 * with its own stack, not a call per level: a logged request body nested
 * thousands of levels deep (JSON.parse reads millions) would take more
 * stack than the thread has, and the record would be lost.
 */
function jsonText(v: AnyValue): string {
  const leaf = leafText(v);
  if (leaf !== undefined) return leaf;
  const inside = new Set<object>();
  const stack: Open[] = [];
  const enter = (o: object, prefix: string) => {
    let keys: string[] | undefined;
    if (!Array.isArray(o)) {
      keys = [];
      for (const key in o) keys.push(key);
    }
    inside.add(o);
    stack.push({ v: o, keys, i: 0, parts: [], prefix });
  };
  enter(v as object, "");
  for (;;) {
    const top = stack[stack.length - 1]!;
    const { keys } = top;
    if (
      top.i < (keys === undefined ? (top.v as unknown[]).length : keys.length)
    ) {
      const key = keys?.[top.i];
      const x =
        key === undefined
          ? (top.v as readonly AnyValue[])[top.i]
          : (top.v as Attributes)[key];
      top.i++;
      if (key !== undefined && x === undefined) continue;
      const prefix = key === undefined ? "" : `${JSON.stringify(key)}:`;
      const text =
        leafText(x) ?? (inside.has(x as object) ? "null" : undefined);
      if (text === undefined) enter(x as object, prefix);
      else top.parts.push(prefix + text);
      continue;
    }
    stack.pop();
    inside.delete(top.v);
    const body = top.parts.join(",");
    const text = keys === undefined ? `[${body}]` : `{${body}}`;
    const parent = stack[stack.length - 1];
    if (parent === undefined) return text;
    parent.parts.push(top.prefix + text);
  }
}

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
    case "bigint":
      w.tag(3, WIRE_VARINT);
      w.int64Big(v);
      return;
    case "object": {
      if (v === null) return;
      if (v instanceof Uint8Array) {
        w.bytesField(7, v);
        return;
      }
      if (depth > MAX_DEPTH) {
        w.stringFieldAlways(1, jsonText(v));
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
 * What is kept of one attribute key: its encoded KeyValue.key, and its
 * last few values with, for a value that came a second time, the whole
 * KeyValue content it was encoded to. Most attributes repeat from span to
 * span (the server, the database, the statement, the queue), and a repeat
 * is then one copy instead of a walk over the key and the value. Several
 * values per key, as keys are shared: `server.port` of the database's spans
 * and of the HTTP server's take turns. A value never seen twice costs a
 * look at the slots and no copies; a new value takes the oldest slot.
 */
class KeyEntry {
  readonly keyBytes: Uint8Array;
  readonly values: Array<string | number | boolean | undefined> = [
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  readonly bytes: Array<Uint8Array | undefined> = [
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  /** The slot the next new value takes. */
  next = 0;
  constructor(key: string) {
    const w = new ProtoWriter(key.length * 3 + 8);
    w.stringField(1, key);
    this.keyBytes = w.finish();
  }
}
/** Values kept per key (the slots of a {@link KeyEntry}). */
const SLOTS = 4;
const entries = new Map<string, KeyEntry>();
/** Keys remembered at most; later ones are written the long way. */
const MAX_KEYS = 1024;
/** Larger KeyValues are written the long way every time. */
const MAX_KEPT_BYTES = 512;
/** Bytes of encoded KeyValues kept in all, at most. */
const MAX_KEPT_TOTAL = 256 * 1024;
let keptTotal = 0;

/** The slot of `entry` holding `value`, or -1. */
function slotOf(entry: KeyEntry, value: string | number | boolean): number {
  const values = entry.values;
  for (let i = 0; i < SLOTS; i++) if (values[i] === value) return i;
  return -1;
}

/**
 * After `value`'s KeyValue content was written from `start`: keeps that
 * content if the value was seen before (in `slot`), else gives the value
 * the entry's oldest slot.
 */
function remember(
  w: ProtoWriter,
  start: number,
  entry: KeyEntry,
  value: string | number | boolean,
  slot: number,
): void {
  if (slot >= 0) {
    const n = w.length - start;
    if (n <= MAX_KEPT_BYTES && keptTotal + n <= MAX_KEPT_TOTAL) {
      entry.bytes[slot] = w.copy(start);
      keptTotal += n;
    }
    return;
  }
  const i = entry.next;
  entry.next = (i + 1) % SLOTS;
  const dropped = entry.bytes[i];
  if (dropped !== undefined) keptTotal -= dropped.length;
  entry.values[i] = value;
  entry.bytes[i] = undefined;
}

/** Writes one KeyValue message in `field`, copied from its key's slots if kept there. */
function writeKeyValue(
  w: ProtoWriter,
  field: number,
  key: string,
  value: AnyValue,
  depth: number,
): void {
  // Objects and long strings are neither remembered nor kept: long
  // strings are rare, and would hold memory until their slot is taken.
  let entry: KeyEntry | undefined;
  let slot = -1;
  if (
    typeof value !== "object" &&
    (typeof value !== "string" || value.length <= MAX_KEPT_BYTES)
  ) {
    entry = entries.get(key);
    if (entry === undefined && entries.size < MAX_KEYS)
      entries.set(key, (entry = new KeyEntry(key)));
    if (entry !== undefined) {
      slot = slotOf(entry, value as string | number | boolean);
      const kept = slot >= 0 ? entry.bytes[slot] : undefined;
      if (kept !== undefined) {
        w.bytesField(field, kept);
        return;
      }
    }
  }
  const m = w.begin(field);
  const start = w.length;
  if (entry !== undefined) w.raw(entry.keyBytes);
  else w.stringField(1, key);
  const vm = w.begin(2);
  writeAnyValue(w, value, depth);
  w.end(vm);
  if (entry !== undefined)
    remember(w, start, entry, value as string | number | boolean, slot);
  w.end(m);
}

/** Stands for a value a block never matches (objects, long strings). */
const UNMATCHED: unique symbol = Symbol("unmatched");

/**
 * The attributes of one kind of span (or record), as last modelled: their
 * keys and values in order, and the KeyValue fields they were written as,
 * end to end. Attributes of one kind come with the same keys in the same
 * order and mostly the same values, so a span is then written as one or
 * two copies of runs of the model, with only the values that differ (a
 * client's port, a duration) written on their own: one lookup and a few
 * cache lines per span instead of some per attribute.
 */
class Block {
  readonly keys: string[] = [];
  readonly values: Array<string | number | boolean | typeof UNMATCHED> = [];
  /** Where each KeyValue field of `bytes` ends. */
  readonly ends: number[] = [];
  bytes: Uint8Array = new Uint8Array(0);
  /** Views of runs of `bytes` copied before, by `from * (keys + 1) + to`. */
  views: Array<Uint8Array | undefined> = [];
  /** Spans in a row that matched less than half of the model. */
  misses = 0;
}
/**
 * Models by the field they are written in (span, event, record, point
 * attributes), then by the first key of the attributes they model.
 */
const blocks: Array<Map<string, Block> | undefined> = [];
let blockCount = 0;
const MAX_BLOCKS = 256;
/** Attributes written as more bytes than this are not modelled. */
const MAX_BLOCK_BYTES = 2048;
/** A model matching less than half of this many spans in a row is made again. */
const MAX_MISSES = 16;
/** Views of runs are kept for models of at most this many attributes. */
const MAX_VIEWS_KEYS = 32;
/** Fewer attributes than this are written one by one, never modelled. */
const MIN_BLOCK_KEYS = 3;
/**
 * Makes `block` model `attrs` from the KeyValue fields they were just
 * written as (in `w` from `start`): kept as they are, each field's end
 * found by reading its tag and length. False if they are too large.
 */
function model(
  block: Block,
  attrs: Attributes,
  w: ProtoWriter,
  start: number,
): boolean {
  if (w.length - start > MAX_BLOCK_BYTES) return false;
  const bytes = w.copy(start);
  block.keys.length = 0;
  block.values.length = 0;
  block.ends.length = 0;
  for (const key in attrs) {
    const value = attrs[key];
    if (value === undefined) continue;
    block.keys.push(key);
    block.values.push(
      typeof value === "object" ||
        typeof value === "bigint" ||
        (typeof value === "string" && value.length > MAX_KEPT_BYTES)
        ? UNMATCHED
        : value,
    );
  }
  const r = new ProtoReader(bytes);
  while (!r.done) {
    r.skip(r.tag()[1]);
    block.ends.push(r.pos);
  }
  // One field per defined attribute, as writeKeyValues writes them.
  if (block.ends.length !== block.keys.length) return false;
  block.bytes = bytes;
  block.views = [];
  block.misses = 0;
  return true;
}

/** Copies the KeyValue fields `from` to `to` (excluded) of `block`. */
function copyRun(w: ProtoWriter, block: Block, from: number, to: number): void {
  const n = block.ends.length;
  if (from === 0 && to === n) {
    w.raw(block.bytes);
    return;
  }
  // The same runs come back (the same value differs span after span), and
  // a view kept of one is copied at once where a new one costs its making.
  const at = from * (n + 1) + to;
  let view = block.views[at];
  if (view === undefined) {
    view = block.bytes.subarray(
      from === 0 ? 0 : block.ends[from - 1]!,
      block.ends[to - 1]!,
    );
    if (n <= MAX_VIEWS_KEYS) block.views[at] = view;
  }
  w.raw(view);
}

/** Writes each defined entry of `attrs` as a KeyValue message in `field`. */
export function writeKeyValues(
  w: ProtoWriter,
  field: number,
  attrs: Attributes,
  depth = 0,
): void {
  const models = (blocks[field] ??= new Map());
  const start = w.length;
  let block: Block | undefined;
  let first: string | undefined;
  /** The model's index of the attribute at hand. */
  let i = 0;
  /** The first index of the run of matches not yet copied, or -1. */
  let run = -1;
  let matched = 0;
  for (const key in attrs) {
    const value = attrs[key];
    if (value === undefined) continue;
    if (first === undefined) {
      first = key;
      block = models.get(key);
    }
    if (
      block !== undefined &&
      i < block.keys.length &&
      block.keys[i] === key &&
      block.values[i] === value
    ) {
      if (run < 0) run = i;
      matched++;
    } else {
      if (run >= 0) copyRun(w, block!, run, i);
      run = -1;
      writeKeyValue(w, field, key, value, depth);
    }
    i++;
  }
  if (run >= 0) copyRun(w, block!, run, i);
  if (first === undefined || i < MIN_BLOCK_KEYS) return;
  if (block === undefined) {
    if (blockCount >= MAX_BLOCKS) return;
    const made = new Block();
    if (model(made, attrs, w, start)) {
      models.set(first, made);
      blockCount++;
    }
  } else if (matched * 2 >= i) block.misses = 0;
  else if (++block.misses >= MAX_MISSES && !model(block, attrs, w, start)) {
    models.delete(first);
    blockCount--;
  }
}

/**
 * A double as OTLP/JSON writes it: NaN and the infinities as the strings
 * proto3's JSON mapping gives them, for JSON has no such numbers
 * (JSON.stringify would write null, which receivers refuse).
 */
export function jsonDouble(n: number): number | string {
  return Number.isFinite(n) ? n : String(n);
}

/**
 * A string field as OTLP/JSON writes it. What is no string throws, as the
 * protobuf writer does, rather than be written as another JSON type, over
 * which the Collector refuses the whole request.
 */
export function jsonString(s: string, field: string): string {
  if (typeof s !== "string") throw new TypeError(`${field} is not a string`);
  return s;
}

/** OTLP/JSON form of an AnyValue. */
export function anyValueToJson(v: AnyValue, depth = 0): unknown {
  switch (typeof v) {
    case "string":
      // A lone surrogate from the application becomes U+FFFD, as the
      // protobuf encoding's UTF-8 makes it: JSON receivers may refuse it.
      return { stringValue: v.isWellFormed() ? v : v.toWellFormed() };
    case "boolean":
      return { boolValue: v };
    case "bigint":
      return { intValue: String(BigInt.asIntN(64, v)) };
    case "number":
      if (Number.isSafeInteger(v)) return { intValue: String(v) };
      return { doubleValue: jsonDouble(v) };
    case "object":
      if (v === null) return {};
      if (v instanceof Uint8Array)
        return { bytesValue: Buffer.from(v).toString("base64") };
      if (depth > MAX_DEPTH) return { stringValue: jsonText(v) };
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
