// The watch list: customers whose requests get debug logs and are always
// sampled, for a limited time, switched on while the system runs.
//
// A service learns the list from a polled document (see the SDK) and keeps
// it here. The decision for one request is made by the first service that
// sees a watched customer and travels with the request in the
// `threadline.watch` baggage entry, so every service the request touches
// agrees, even one that has not fetched the newest list yet. Like all
// baggage, the entry is read only from trusted callers and never sent to
// third parties. A carried decision is the customer's it came with: work a
// service does for another customer inside the request (`withCustomer`) is
// watched only if its own list says so, and carries no decision on.
//
// The decision carries the watch's end with it (`debug;until=<epoch
// seconds>`), and is void from then on: a request can outlive the watch by
// far (a message retried from a queue republishes the context it came
// with), and nothing else would ever end it. A decision without an end, or
// one ending further ahead than any watch lasts, is not honoured; the
// service goes by its own list instead.
//
// Everything here is cheap when nobody is watched: callers test `active`
// (a plain field) before doing any lookup.
import { createContextKey, type Context } from "@opentelemetry/api";
import { parseDateTime } from "./date-time.ts";
import { getCustomerFromContext, isValidCustomerId } from "./customer.ts";

/** A watched request's lowest log level: pino's `debug` (20) or `trace` (10). */
export type WatchLevel = 10 | 20;
export const WATCH_DEBUG: WatchLevel = 20;
export const WATCH_TRACE: WatchLevel = 10;

/** Context key holding the {@link CarriedWatch} the current request came in with. */
export const WATCH_KEY: symbol = createContextKey("threadline.watch");
/** Baggage entry carrying the watch decision between services, and span attribute with its level. */
export const WATCH_BAGGAGE = "threadline.watch";
/** Where `threadline dev` serves the watch list, next to its OTLP paths. */
export const WATCH_PATH = "/threadline/v1/watch";
/** Most customers watched at once; a longer list is refused. */
export const MAX_WATCHED = 100;
/** Longest a customer is watched for: the CLI's and viewer's limit, ms. */
export const MAX_WATCH_MS = 7 * 24 * 3600 * 1000;
/** How far another service's clock may be ahead when it sets a decision's end, ms. */
const CLOCK_SKEW_MS = 60_000;

/** A request's watch: its level, and when it ends (epoch ms). */
export interface WatchDecision {
  readonly level: WatchLevel;
  readonly until: number;
}

/** A watch decision carried in from upstream, and the customer it was made for. */
export interface CarriedWatch extends WatchDecision {
  /** The customer the request came in with; the decision is void for any other. */
  readonly customer: string | undefined;
}

export interface WatchEntry {
  customer: string;
  /** Epoch ms at which the entry expires by itself. */
  until: number;
  level: WatchLevel;
}

export function watchLevelName(level: WatchLevel): "debug" | "trace" {
  return level === WATCH_TRACE ? "trace" : "debug";
}

/** `debug`/`trace` as a level; anything else is undefined. */
export function parseWatchLevel(value: unknown): WatchLevel | undefined {
  if (value === "debug") return WATCH_DEBUG;
  if (value === "trace") return WATCH_TRACE;
  return undefined;
}

/**
 * An ISO 8601 time with its time zone (`2026-11-21T12:30:00Z`,
 * `2026-11-21T14:30+02:00`) as whole epoch ms; NaN for anything else (see
 * parseDateTime).
 */
export function parseWatchTime(text: string): number {
  return Math.floor(parseDateTime(text, false));
}

/**
 * `text` without the byte order mark some Windows editors begin a UTF-8
 * file with, which JSON.parse refuses.
 */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export type WatchDocumentResult =
  { ok: true; entries: WatchEntry[] } | { ok: false; problem: string };

/**
 * Reads a watch-list document:
 *
 * ```json
 * { "watch": [ { "customer": "c-42", "until": "2026-11-21T12:30:00Z", "level": "debug" } ] }
 * ```
 *
 * A byte order mark before it is skipped. `until` is an ISO 8601 time with
 * its time zone, at most 7 days ahead;
 * `level` is `debug` (the default) or `trace`. A document with any invalid
 * entry is refused whole, so a typo never half-applies; entries already
 * expired are dropped. `countLimit: false` reads a document naming more than
 * MAX_WATCHED customers too, for an editor to bring it back within the
 * limit; a service refuses it.
 */
export function parseWatchDocument(
  text: string,
  now = Date.now(),
  { countLimit = true }: { countLimit?: boolean } = {},
): WatchDocumentResult {
  let doc: unknown;
  try {
    doc = JSON.parse(withoutBom(text));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  const list = (doc as { watch?: unknown } | null)?.watch;
  if (typeof doc !== "object" || doc === null || !Array.isArray(list))
    return { ok: false, problem: 'expected an object with a "watch" array' };
  // Expired entries and repeats do not count against the limit; this bound
  // only keeps a runaway document from being read at all.
  if (list.length > MAX_WATCHED * 10)
    return {
      ok: false,
      problem: `${list.length} entries is more than a watch list is read with (${MAX_WATCHED * 10}; at most ${MAX_WATCHED} customers are watched at once)`,
    };
  /** Each customer's entries in force, each with its own end and level. */
  const byCustomer = new Map<string, WatchEntry[]>();
  for (let i = 0; i < list.length; i++) {
    const e = list[i] as Record<string, unknown> | null;
    const where = `entry ${i}`;
    if (typeof e !== "object" || e === null)
      return { ok: false, problem: `${where} is not an object` };
    if (!isValidCustomerId(e.customer))
      return {
        ok: false,
        problem: `${where}: "customer" is not a valid customer id`,
      };
    const until =
      typeof e.until === "string" ? parseWatchTime(e.until) : Number.NaN;
    if (!Number.isFinite(until))
      return {
        ok: false,
        problem: `${where}: "until" must be an ISO 8601 time with its time zone, like 2026-11-21T12:30:00Z`,
      };
    // Past this, a forgotten entry would watch for good; a minute allows
    // for the writer's clock being ahead.
    if (until > now + MAX_WATCH_MS + CLOCK_SKEW_MS)
      return {
        ok: false,
        problem: `${where}: "until" is more than 7 days ahead; a customer is watched for at most 7 days`,
      };
    const level =
      e.level === undefined ? WATCH_DEBUG : parseWatchLevel(e.level);
    if (level === undefined)
      return {
        ok: false,
        problem: `${where}: "level" must be "debug" or "trace"`,
      };
    if (until <= now) continue;
    // A customer listed twice (lists merged by hand) is watched as each
    // entry says while it lasts: trace until noon and debug until six is
    // not trace until six. The same entry twice is one.
    let entries = byCustomer.get(e.customer);
    if (entries === undefined) byCustomer.set(e.customer, (entries = []));
    if (!entries.some((x) => x.until === until && x.level === level))
      entries.push({ customer: e.customer, until, level });
  }
  if (countLimit && byCustomer.size > MAX_WATCHED)
    return {
      ok: false,
      problem: `${byCustomer.size} customers watched; at most ${MAX_WATCHED} can be watched at once`,
    };
  return { ok: true, entries: [...byCustomer.values()].flat() };
}

/** Entries as a watch-list document has them: times in ISO 8601, levels by name. */
export function toWatchDocument(entries: readonly WatchEntry[]): {
  watch: Array<{ customer: string; until: string; level: "debug" | "trace" }>;
} {
  return {
    watch: entries.map((e) => ({
      customer: e.customer,
      until: new Date(e.until).toISOString(),
      level: watchLevelName(e.level),
    })),
  };
}

/** Writes entries as a watch-list document (the format parseWatchDocument reads). */
export function formatWatchDocument(entries: readonly WatchEntry[]): string {
  return `${JSON.stringify(toWatchDocument(entries), null, 2)}\n`;
}

/** The customers this process currently watches. */
export class WatchList {
  /**
   * False while nobody is watched and no request carried a watch that has
   * not ended yet: skip every check.
   */
  active = false;
  /**
   * Each customer's entries, the one that logs most first (then the one
   * that lasts longest): the first not yet ended is the one in force.
   */
  #entries = new Map<string, WatchEntry[]>();
  /** The latest end of a watch a request carried in, epoch ms. */
  #carriedUntil = 0;
  /** Turns the checks off at that end in a service that follows no list. */
  #carriedTimer: ReturnType<typeof setTimeout> | undefined;

  /** Replaces the list (from a fetched document). */
  replace(entries: readonly WatchEntry[], now = Date.now()): void {
    const next = new Map<string, WatchEntry[]>();
    for (const e of entries) {
      if (e.until <= now) continue;
      let of = next.get(e.customer);
      if (of === undefined) next.set(e.customer, (of = []));
      of.push(e);
    }
    for (const of of next.values())
      if (of.length > 1)
        of.sort((a, b) => a.level - b.level || b.until - a.until);
    this.#entries = next;
    this.refresh(now);
  }

  /** How many customers are watched. */
  get customers(): number {
    return this.#entries.size;
  }

  /** The watch level for `customer` now, if watched. */
  levelFor(customer: string, now = Date.now()): WatchLevel | undefined {
    return this.entryFor(customer, now)?.level;
  }

  /** The entry watching `customer` now, if any. */
  entryFor(customer: string, now = Date.now()): WatchEntry | undefined {
    const of = this.#entries.get(customer);
    if (of === undefined) return undefined;
    for (const e of of) if (e.until > now) return e;
    this.#entries.delete(customer);
    return undefined;
  }

  /**
   * A request arrived carrying a watch decision that ends at `until`: keep
   * the checks on until then, however long the request (or work it starts)
   * runs, as its decision holds that long. The end is at most 7 days ahead
   * (parseCarriedWatch), and is when a service following the list would
   * drop the customer too. They go off by themselves at the end, since a
   * service that follows no list has nothing else that would refresh it.
   * One timer at a time, not one per request: when later requests carried
   * a later end, it sets the next for what remains.
   */
  noteCarried(until: number, now = Date.now()): void {
    this.#carriedUntil = Math.max(this.#carriedUntil, until);
    this.active = true;
    if (this.#carriedTimer === undefined) this.#endCarriedAt(now);
  }

  #endCarriedAt(now: number): void {
    this.#carriedTimer = setTimeout(() => {
      this.#carriedTimer = undefined;
      const later = Date.now();
      this.refresh(later);
      if (this.#carriedUntil > later) this.#endCarriedAt(later);
    }, this.#carriedUntil - now);
    this.#carriedTimer.unref();
  }

  /** Drops expired entries; turns the checks off when nothing is left. */
  refresh(now = Date.now()): void {
    for (const [k, of] of this.#entries) {
      const left = of.filter((e) => e.until > now);
      if (left.length === 0) this.#entries.delete(k);
      else if (left.length < of.length) this.#entries.set(k, left);
    }
    this.active = this.#entries.size > 0 || this.#carriedUntil > now;
  }

  entries(): WatchEntry[] {
    return [...this.#entries.values()].flat();
  }
}

/** The process-wide watch list every instrumentation consults. */
export const watchList: WatchList = new WatchList();

/**
 * The watch decision for the request in `ctx`: the one it carries while
 * its customer is still the one it came with and it has not ended, unless
 * the list's entry for its customer logs more (trace where the decision
 * says debug: the list changed since the decision, or this service watches
 * the customer closer); else that entry. Call only when `watchList.active`.
 */
export function watchOf(ctx: Context, now?: number): WatchDecision | undefined {
  const carried = ctx.getValue(WATCH_KEY) as CarriedWatch | undefined;
  const customer = getCustomerFromContext(ctx);
  now ??= Date.now();
  if (
    carried !== undefined &&
    carried.customer === customer &&
    carried.until > now
  ) {
    // Nothing logs more than trace: the list is read only when it could.
    if (carried.level === WATCH_TRACE) return carried;
    const entry =
      customer === undefined ? undefined : watchList.entryFor(customer, now);
    return entry !== undefined && entry.level < carried.level ? entry : carried;
  }
  return customer === undefined ? undefined : watchList.entryFor(customer, now);
}

/** The watch level of the request in `ctx` (see watchOf). Call only when `watchList.active`. */
export function watchLevelOf(ctx: Context): WatchLevel | undefined {
  return watchOf(ctx)?.level;
}

/**
 * The `threadline.watch` baggage properties for `watch`: its end, in epoch
 * seconds, rounded down so a decision never outlasts its watch, and never
 * further ahead than a watch may last, which the next service would refuse.
 */
export function watchUntilProperty(
  watch: WatchDecision,
  now = Date.now(),
): string {
  return `until=${Math.floor(Math.min(watch.until, now + MAX_WATCH_MS) / 1000)}`;
}

/**
 * A decision read from the `threadline.watch` baggage entry, its value and
 * properties: undefined for an unknown level, no end, an end already past
 * or one further ahead than a watch may last (with a minute allowed for
 * clocks that differ), and without a customer: a watch is a customer's,
 * and one that came without its customer (a hop that dropped it) would
 * watch every request of this service that has none.
 */
export function parseCarriedWatch(
  value: string,
  properties: string | undefined,
  customer: string | undefined,
  now = Date.now(),
): CarriedWatch | undefined {
  const level = parseWatchLevel(value);
  if (level === undefined || properties === undefined || customer === undefined)
    return undefined;
  let until = Number.NaN;
  for (const p of properties.split(";")) {
    const eq = p.indexOf("=");
    if (eq === -1 || p.slice(0, eq).trim() !== "until") continue;
    const v = p.slice(eq + 1).trim();
    if (/^[0-9]{1,12}$/.test(v)) until = Number(v) * 1000;
    break;
  }
  if (!(until > now && until <= now + MAX_WATCH_MS + CLOCK_SKEW_MS))
    return undefined;
  return { level, until, customer };
}
