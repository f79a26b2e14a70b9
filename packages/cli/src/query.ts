// Search parameters as people type them (`--since 1h`, `min=250ms`,
// `attr=http.route=/orders`), shared by the JSON API and the CLI.
import type { SearchCursor, SearchQuery } from "./model.ts";

/** The most traces one search returns. */
export const MAX_LIMIT = 1000;

const UNITS: Record<string, number> = {
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `250ms`, `2s`, `1h`, `7d` (bare numbers are milliseconds) into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h|d)?\s*$/.exec(text);
  if (m === null)
    throw new Error(
      `${JSON.stringify(text)} is not a duration like 250ms, 30s, 1h or 7d`,
    );
  return Number(m[1]) * UNITS[m[2] ?? "ms"]!;
}

/** Parses an ISO date or epoch milliseconds into epoch microseconds. */
export function parseTime(text: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms))
    throw new Error(
      `${JSON.stringify(text)} is not a date (ISO 8601 or epoch milliseconds)`,
    );
  return ms * 1000;
}

/** Parses `key=value`. */
export function parseAttribute(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new Error(`${JSON.stringify(text)} is not key=value`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** A SearchQuery from URL search parameters (the JSON API's form). Throws with a reason on bad input. */
export function queryFromParams(
  p: URLSearchParams,
  nowMs = Date.now(),
): SearchQuery {
  const q: SearchQuery = {};
  const text = (k: string) => {
    const v = p.get(k)?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  q.customer = text("customer");
  q.service = text("service");
  q.operation = text("operation");
  const errors = text("errors");
  if (errors !== undefined && !["1", "true", "0", "false"].includes(errors))
    throw new Error(
      `errors must be 1, true, 0 or false, not ${JSON.stringify(errors)}`,
    );
  q.errorsOnly = errors === "1" || errors === "true";
  const min = text("minDuration");
  if (min !== undefined) q.minDurationUs = parseDuration(min) * 1000;
  const since = text("since");
  if (since !== undefined) q.fromUs = (nowMs - parseDuration(since)) * 1000;
  const from = text("from");
  if (from !== undefined) q.fromUs = parseTime(from);
  const to = text("to");
  if (to !== undefined) q.toUs = parseTime(to);
  const attrs = p.getAll("attr").filter((a) => a.trim() !== "");
  if (attrs.length > 0) q.attributes = attrs.map(parseAttribute);
  const limit = text("limit");
  if (limit !== undefined) q.limit = parseLimit(limit, "limit");
  const cursor = text("cursor");
  if (cursor !== undefined) q.after = parseCursor(cursor);
  return q;
}

/**
 * A page's `next` as the JSON API writes it: the trace's start in epoch
 * microseconds and its id, `1765000000123456-4bf92f3577b34da6a3ce929d0e0e4736`.
 */
export function formatCursor(c: SearchCursor): string {
  return `${c.startUs}-${c.traceId}`;
}

/** A `cursor` the JSON API wrote as a page's `next`. */
export function parseCursor(text: string): SearchCursor {
  const m = /^(\d{1,16})-([0-9a-fA-F]{32})$/.exec(text);
  const startUs = Number(m?.[1]);
  if (m === null || !Number.isSafeInteger(startUs))
    throw new Error(
      `${JSON.stringify(text)} is not a cursor: pass on a search's \`next\` as it came`,
    );
  return { startUs, traceId: m[2]!.toLowerCase() };
}

/** A count asked for, from 1 to `max` (MAX_LIMIT traces for a search); `name` names it in the error. */
export function parseLimit(
  text: string,
  name: string,
  max = MAX_LIMIT,
): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`${name} must be a whole number from 1 to ${max}`);
  return n;
}

/** The URL search parameters for a SearchQuery (the CLI talking to a viewer). */
export function paramsFromQuery(q: SearchQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.customer) p.set("customer", q.customer);
  if (q.service) p.set("service", q.service);
  if (q.operation) p.set("operation", q.operation);
  if (q.errorsOnly) p.set("errors", "1");
  if (q.minDurationUs !== undefined)
    p.set("minDuration", `${q.minDurationUs / 1000}ms`);
  if (q.fromUs !== undefined)
    p.set("from", String(Math.floor(q.fromUs / 1000)));
  if (q.toUs !== undefined) p.set("to", String(Math.ceil(q.toUs / 1000)));
  for (const [k, v] of q.attributes ?? []) p.append("attr", `${k}=${v}`);
  if (q.limit !== undefined) p.set("limit", String(q.limit));
  if (q.after !== undefined) p.set("cursor", formatCursor(q.after));
  return p;
}
