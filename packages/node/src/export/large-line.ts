// A large logger line parsed without stalling the thread it is exported on.
//
// JSON.parse of a line, and encoding the maps and arrays it makes, take
// about 30 ns a byte: a 4 MB line of nested objects (a request body logged
// whole) held the exporter's thread, the application's by default, for 100
// to 190 ms. A line longer than LARGE_LINE is read a top-level member at a
// time instead: its strings, numbers and literals are parsed as JSON.parse
// parses them, and its objects and arrays are parsed, smallest first, while
// they add up to at most NESTED_PARSE_BUDGET characters; any other stays the
// JSON text it was written as, a string holding all of it, as a map nested
// past the encoder's depth does. Finding where members end is a scan of the
// line at a few nanoseconds a character.

import { setKey } from "@threadline/otlp";

/** Lines of more UTF-16 code units than this are read by {@link parseLargeLine}. */
export const LARGE_LINE = 64 * 1024;
/** Characters of a large line's objects and arrays parsed into maps and arrays. */
export const NESTED_PARSE_BUDGET = 64 * 1024;

/** A run of digits too long for a double to hold exactly. */
const LONG_INTEGER = /\d{16}/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * JSON.parse's reviver: an integer a double cannot hold exactly becomes a
 * bigint, OTLP's int64 (past int64 it stays a double, as OTLP has nothing
 * larger).
 */
function exactIntegers(
  this: unknown,
  _key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  if (typeof value !== "number" || Number.isSafeInteger(value)) return value;
  const source = context?.source;
  if (source === undefined || !/^-?\d+$/.test(source)) return value;
  const n = BigInt(source);
  return n >= INT64_MIN && n <= INT64_MAX ? n : value;
}

/** JSON.parse, with integers past 2^53 kept exact (see exactIntegers). */
export function parseJson(text: string): unknown {
  return LONG_INTEGER.test(text)
    ? JSON.parse(text, exactIntegers)
    : JSON.parse(text);
}

const isSpace = (c: number) =>
  c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

function malformed(at: number): never {
  throw new SyntaxError(`malformed JSON at ${at}`);
}

/** The index after the closing quote of the string whose opening quote is at `i`. */
function stringEnd(s: string, i: number): number {
  // indexOf finds a quote far faster than a loop over the characters; one
  // after an odd number of backslashes is escaped, and the search goes on.
  for (let q = s.indexOf('"', i + 1); q >= 0; q = s.indexOf('"', q + 1)) {
    let backslashes = 0;
    while (s.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
  }
  return malformed(i);
}

/** The index after the object or array that opens at `i`. */
function nestedEnd(s: string, i: number): number {
  const n = s.length;
  let depth = 0;
  for (let j = i; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22)
      // A string, skipped in this loop: most of a line is strings, and a
      // call per string costs more than its characters.
      for (j++; j < n; j++) {
        const d = s.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c) j++;
      }
    else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return j + 1;
  }
  return malformed(i);
}

/** The index after the value that starts at `i`. */
function valueEnd(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x22) return stringEnd(s, i);
  if (c === 0x7b || c === 0x5b) return nestedEnd(s, i);
  let j = i;
  for (; j < s.length; j++) {
    const d = s.charCodeAt(j);
    if (d === 0x2c || d === 0x7d || isSpace(d)) break;
  }
  return j === i ? malformed(i) : j;
}

/** A large line's fields, and the keys of those left as JSON text. */
export interface LargeLine {
  readonly fields: Record<string, unknown>;
  readonly texts: ReadonlySet<string>;
}

/**
 * The JSON object `line` holds, as JSON.parse gives it (the same keys, in
 * the same order, the last value of a repeated key), but for the objects
 * and arrays left as their text once `budget` characters of them are
 * parsed. Throws a SyntaxError for what is no JSON object; an object or
 * array left as text is not checked.
 */
export function parseLargeLine(
  line: string,
  budget = NESTED_PARSE_BUDGET,
): LargeLine {
  /** The members, as [key, value start, value end]. */
  const members: Array<[string, number, number]> = [];
  let i = skipSpace(line, 0);
  if (line.charCodeAt(i) !== 0x7b) malformed(i);
  i = skipSpace(line, i + 1);
  if (line.charCodeAt(i) === 0x7d) i = skipSpace(line, i + 1);
  else
    for (;;) {
      if (line.charCodeAt(i) !== 0x22) malformed(i);
      const keyEnd = stringEnd(line, i);
      const key = JSON.parse(line.slice(i, keyEnd)) as string;
      i = skipSpace(line, keyEnd);
      if (line.charCodeAt(i) !== 0x3a) malformed(i);
      const start = skipSpace(line, i + 1);
      const end = valueEnd(line, start);
      members.push([key, start, end]);
      i = skipSpace(line, end);
      const sep = line.charCodeAt(i);
      if (sep === 0x2c) {
        i = skipSpace(line, i + 1);
        continue;
      }
      if (sep !== 0x7d) malformed(i);
      i = skipSpace(line, i + 1);
      break;
    }
  if (i !== line.length) malformed(i);
  // Each key's last member, by the key's first place (a Map keeps the
  // order keys were first set in, as JSON.parse keeps a repeated key in
  // its first place with its last value).
  const last = new Map<string, number>();
  for (let k = 0; k < members.length; k++) last.set(members[k]![0], k);
  const values = new Array<unknown>(members.length);
  const nested: number[] = [];
  for (let k = 0; k < members.length; k++) {
    const [, start, end] = members[k]!;
    const c = line.charCodeAt(start);
    if (c !== 0x7b && c !== 0x5b) values[k] = parseJson(line.slice(start, end));
    else if (last.get(members[k]![0]) === k) nested.push(k);
    // An earlier value of a repeated key is dropped, but JSON.parse would
    // refuse the line for it all the same.
    else JSON.parse(line.slice(start, end));
  }
  // Smallest first, so that an error or an order is parsed before the
  // request body logged beside it.
  const size = (k: number) => members[k]![2] - members[k]![1];
  nested.sort((a, b) => size(a) - size(b) || a - b);
  const texts = new Set<string>();
  for (const k of nested) {
    const text = line.slice(members[k]![1], members[k]![2]);
    if (text.length <= budget) {
      budget -= text.length;
      values[k] = parseJson(text);
    } else {
      values[k] = text;
      texts.add(members[k]![0]);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, k] of last) setKey(out, key, values[k]);
  return { fields: out, texts };
}
