// W3C Trace Context (Level 2) parsing and formatting, written as plain
// character loops: no regular expressions and no allocations beyond the
// resulting strings, because every inbound request and message runs it.
// https://www.w3.org/TR/trace-context-2/
import type { SpanContext, TraceState } from "@opentelemetry/api";

/** Parsed `traceparent` header. */
export interface Traceparent {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** Trace flag bit: the caller may have recorded this trace. */
export const FLAG_SAMPLED = 0x01;
/** Trace flag bit (Level 2): the trace id's right-most 7 bytes are random. */
export const FLAG_RANDOM = 0x02;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // a-f
  return -1;
}

/** 1 for each character code below 256 that is not a lowercase hex digit. */
const NOT_HEX = new Uint8Array(256).fill(1);
for (let c = 0x30; c <= 0x39; c++) NOT_HEX[c] = 0;
for (let c = 0x61; c <= 0x66; c++) NOT_HEX[c] = 0;

/**
 * Whether `s[from, to)` is lowercase hex and not all zeros. Without a
 * branch per character: random ids mix digits and letters, and a branch on
 * which one a character is mispredicts about half the time (three times
 * slower on a 32-character id).
 */
function isNonZeroHex(s: string, from: number, to: number): boolean {
  let bad = 0;
  let nonZero = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    bad |= (c >>> 8) | NOT_HEX[c & 0xff]!;
    nonZero |= c ^ 0x30;
  }
  return bad === 0 && nonZero !== 0;
}

/** Whether `id` is a valid trace id: 32 lowercase hex characters, not all zero. */
export function isValidTraceId(id: string): boolean {
  return id.length === 32 && isNonZeroHex(id, 0, 32);
}

/** Whether `id` is a valid span (parent) id: 16 lowercase hex characters, not all zero. */
export function isValidSpanId(id: string): boolean {
  return id.length === 16 && isNonZeroHex(id, 0, 16);
}

/**
 * Parses a `traceparent` header value. Returns `undefined` for anything the
 * specification calls invalid; unknown future versions are read the way the
 * specification asks (first 55 characters, then a dash or nothing).
 */
export function parseTraceparent(
  header: string | undefined,
): Traceparent | undefined {
  if (typeof header !== "string") return undefined;
  let value = header;
  if (value.length > 55) value = value.trim(); // tolerate OWS around the value
  const n = value.length;
  if (n < 55) return undefined;
  const v0 = hexValue(value.charCodeAt(0));
  const v1 = hexValue(value.charCodeAt(1));
  if (v0 < 0 || v1 < 0) return undefined;
  const version = v0 * 16 + v1;
  if (version === 0xff) return undefined;
  if (version === 0 && n !== 55) return undefined;
  if (n > 55 && value.charCodeAt(55) !== 0x2d) return undefined;
  if (
    value.charCodeAt(2) !== 0x2d ||
    value.charCodeAt(35) !== 0x2d ||
    value.charCodeAt(52) !== 0x2d
  ) {
    return undefined;
  }
  if (!isNonZeroHex(value, 3, 35) || !isNonZeroHex(value, 36, 52))
    return undefined;
  const f0 = hexValue(value.charCodeAt(53));
  const f1 = hexValue(value.charCodeAt(54));
  if (f0 < 0 || f1 < 0) return undefined;
  let traceFlags = f0 * 16 + f1;
  // Only the flags this version defines travel on; unknown bits are reset.
  traceFlags &= FLAG_SAMPLED | FLAG_RANDOM;
  return {
    traceId: value.slice(3, 35),
    spanId: value.slice(36, 52),
    traceFlags,
  };
}

const HEX = "0123456789abcdef";

/** Formats a version-00 `traceparent` header value. */
export function formatTraceparent(
  traceId: string,
  spanId: string,
  traceFlags: number,
): string {
  const f = traceFlags & 0xff;
  return `00-${traceId}-${spanId}-${HEX[f >> 4]}${HEX[f & 15]}`;
}

/** Most list-members a `tracestate` may hold. */
export const TRACESTATE_MAX_MEMBERS = 32;
/** Longest `tracestate` header read; longer ones are dropped whole. */
export const TRACESTATE_MAX_LENGTH = 8192;

function isLcAlpha(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isKeyChar(c: number): boolean {
  // lcalpha / DIGIT / "_" / "-" / "*" / "/"
  return (
    isLcAlpha(c) ||
    isDigit(c) ||
    c === 0x5f ||
    c === 0x2d ||
    c === 0x2a ||
    c === 0x2f
  );
}

/** Validates a `tracestate` key (simple or multi-tenant `tenant@system`). */
export function isValidTracestateKey(key: string): boolean {
  const n = key.length;
  if (n === 0 || n > 256) return false;
  const at = key.indexOf("@");
  if (at === -1) {
    if (!isLcAlpha(key.charCodeAt(0))) return false;
    for (let i = 1; i < n; i++) if (!isKeyChar(key.charCodeAt(i))) return false;
    return true;
  }
  // tenant-id "@" system-id
  if (at === 0 || at > 241 || n - at - 1 === 0 || n - at - 1 > 14) return false;
  const t0 = key.charCodeAt(0);
  if (!isLcAlpha(t0) && !isDigit(t0)) return false;
  for (let i = 1; i < at; i++) if (!isKeyChar(key.charCodeAt(i))) return false;
  if (!isLcAlpha(key.charCodeAt(at + 1))) return false;
  for (let i = at + 2; i < n; i++)
    if (!isKeyChar(key.charCodeAt(i))) return false;
  return true;
}

/** Validates a `tracestate` value: 1-256 printable characters except `,` and `=`, not ending in a space. */
export function isValidTracestateValue(value: string): boolean {
  const n = value.length;
  if (n === 0 || n > 256) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x2c || c === 0x3d) return false;
  }
  return value.charCodeAt(n - 1) !== 0x20;
}

/**
 * Parses a `tracestate` header into its members, in order. Returns
 * `undefined` when the header is invalid as a whole (a bad member, a
 * duplicate key, too many members), in which case it must not be propagated.
 * Empty members (`a=1,,b=2`) are allowed and skipped, as the spec says.
 */
export function parseTracestate(
  header: string | undefined,
): Array<[string, string]> | undefined {
  if (typeof header !== "string" || header.length > TRACESTATE_MAX_LENGTH)
    return undefined;
  const members: Array<[string, string]> = [];
  let start = 0;
  const n = header.length;
  while (start <= n) {
    let end = header.indexOf(",", start);
    if (end === -1) end = n;
    const raw = header.slice(start, end).trim();
    start = end + 1;
    if (raw.length === 0) continue;
    const eq = raw.indexOf("=");
    if (eq <= 0) return undefined;
    const key = raw.slice(0, eq);
    const value = raw.slice(eq + 1);
    if (!isValidTracestateKey(key) || !isValidTracestateValue(value))
      return undefined;
    for (const m of members) if (m[0] === key) return undefined;
    members.push([key, value]);
    if (members.length > TRACESTATE_MAX_MEMBERS) return undefined;
  }
  return members;
}

/**
 * An immutable `tracestate`, kept as the validated header string until
 * someone reads or changes a member: most services only pass it on.
 */
export class W3CTraceState implements TraceState {
  #header: string;
  #members: Array<[string, string]> | undefined;

  private constructor(
    header: string,
    members: Array<[string, string]> | undefined,
  ) {
    this.#header = header;
    this.#members = members;
  }

  /** A TraceState from a header value, or `undefined` if the header is invalid or empty. */
  static fromHeader(header: string | undefined): W3CTraceState | undefined {
    const members = parseTracestate(header);
    if (members === undefined || members.length === 0) return undefined;
    return new W3CTraceState(
      members.map((m) => `${m[0]}=${m[1]}`).join(","),
      members,
    );
  }

  static empty(): W3CTraceState {
    return new W3CTraceState("", []);
  }

  #list(): Array<[string, string]> {
    this.#members ??= parseTracestate(this.#header) ?? [];
    return this.#members;
  }

  get(key: string): string | undefined {
    for (const m of this.#list()) if (m[0] === key) return m[1];
    return undefined;
  }

  /** Returns a copy with `key` set and moved to the front; invalid keys or values leave it unchanged. */
  set(key: string, value: string): W3CTraceState {
    if (!isValidTracestateKey(key) || !isValidTracestateValue(value))
      return this;
    const rest = this.#list().filter((m) => m[0] !== key);
    const first: [string, string] = [key, value];
    const members = [first, ...rest].slice(0, TRACESTATE_MAX_MEMBERS);
    return new W3CTraceState(
      members.map((m) => `${m[0]}=${m[1]}`).join(","),
      members,
    );
  }

  unset(key: string): W3CTraceState {
    const members = this.#list().filter((m) => m[0] !== key);
    return new W3CTraceState(
      members.map((m) => `${m[0]}=${m[1]}`).join(","),
      members,
    );
  }

  serialize(): string {
    return this.#header;
  }
}

/** Whether a span context can be propagated. */
export function isPropagatable(sc: SpanContext | undefined): sc is SpanContext {
  return (
    sc !== undefined && isValidTraceId(sc.traceId) && isValidSpanId(sc.spanId)
  );
}
