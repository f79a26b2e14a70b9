// Metric instruments: one aggregation per attribute set, kept cumulative;
// a collection asking for delta gets the change since the last one that did.
//
// Recording finds the series through an index of the attributes in the
// order they were given (see SeriesMap) and updates a few numbers: no
// string, no sort and no object per measurement once the series exists. Each instrument holds at most
// CARDINALITY_LIMIT series; measurements beyond go to one overflow series
// (`otel.metric.overflow=true`), as the OpenTelemetry specification asks,
// so a high-cardinality attribute cannot grow memory without bound; it
// aggregates what it takes as the instrument does (a sum adds them up, a
// gauge keeps the last), observable instruments' too.
// Histograms keep, per bucket, the latest measurement taken inside a sampled
// span as an exemplar, linking the point to a trace. An observable
// (asynchronous) instrument keeps only the series its callbacks reported in
// the latest collection, as the specification asks: each collection fills a
// new set of series, so one they stop reporting is neither exported nor
// counted towards the limit. Its series start where what they report could
// first have been counted (see NumberAggregator), not at their first
// observation: a total first reported at a collection would otherwise claim
// to have grown by all of it in no time. A sum's series left out by a
// callback that failed or was late keeps its start time for a few
// collections: the total it comes back with is no reset.
import {
  context,
  trace,
  type Attributes,
  type Context,
} from "@opentelemetry/api";
import { diag } from "@threadline/core";
import type {
  AnyValue,
  Attributes as PointAttributes,
  ExemplarData,
  HistogramPointData,
  MetricData,
  NumberPointData,
  Scope,
} from "@threadline/otlp";
import { isAttributeValue } from "../internal/attribute-value.ts";

/**
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the specification
 * defines it: cumulative everything; delta for counters (observable ones
 * too) and histograms; lowmemory, delta for synchronous counters and
 * histograms only. Up-down counters and gauges stay as they are.
 */
export type TemporalityPreference = "cumulative" | "delta" | "lowmemory";

/**
 * Which measurements may become exemplars (OTEL_METRICS_EXEMPLAR_FILTER):
 * those made inside a sampled span (the default), all, or none.
 */
export type ExemplarFilter = "trace_based" | "always_on" | "always_off";

export const CARDINALITY_LIMIT = 2000;
const OVERFLOW: Attributes = { "otel.metric.overflow": true };

/**
 * The OpenTelemetry SDK's default bounds, of a histogram advised none
 * whatever its unit: seconds' buckets would put a job of minutes in +Inf.
 */
export const DEFAULT_BUCKETS = [
  0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
];

/** Whether a measurement's attributes hold a value isAttributeValue() refuses. */
function hasInvalid(attributes: Attributes): boolean {
  for (const k in attributes) {
    const v = attributes[k];
    if (v !== undefined && !isAttributeValue(v)) return true;
  }
  return false;
}

function valueKey(v: unknown): string {
  // Strings and other values are told apart: "200" and 200 are two series.
  return typeof v === "string" ? `\u0001${v}` : `\u0002${JSON.stringify(v)}`;
}

/**
 * Stable key of an attribute set, whatever the order of its keys, leaving
 * out values that are no attribute values.
 */
export function attributesKey(attributes: Attributes | undefined): string {
  if (typeof attributes !== "object" || attributes === null) return "";
  const keys = Object.keys(attributes);
  if (keys.length === 0) return "";
  if (keys.length > 1) keys.sort();
  let key = "";
  for (const k of keys) {
    const v = attributes[k];
    if (v === undefined || !isAttributeValue(v)) continue;
    key += `${k}${valueKey(v)}\u0000`;
  }
  return key;
}

function copy(attributes: Attributes | undefined): PointAttributes {
  const out: Record<string, AnyValue> = {};
  if (attributes !== undefined)
    for (const k in attributes) {
      const v = attributes[k];
      if (v !== undefined && isAttributeValue(v)) out[k] = v as AnyValue;
    }
  return out;
}

/** An instrument's one warning about attribute values it left out. */
class InvalidAttributes {
  pending = true;
  readonly #name: string;

  constructor(scope: Scope, descriptor: InstrumentDescriptor) {
    this.#name = `${scope.name}\u0000${descriptor.name}`;
  }

  warn(): void {
    this.pending = false;
    diag.warnOnce(
      `metric-attribute:${this.#name}`,
      `metric ${this.#name.slice(this.#name.indexOf("\u0000") + 1)} was given an attribute value that is not a string, number, boolean or array of them; it is recorded without that attribute`,
    );
  }
}

/**
 * An instrument's warnings about values it leaves out, one of each kind:
 * what is no number, what is no finite one (a ratio of 0/0 is NaN), and a
 * counter's negative increment. Without them a series that never came
 * left nothing to go on.
 */
class RefusedValues {
  #said = 0;
  readonly #name: string;

  constructor(descriptor: InstrumentDescriptor) {
    this.#name = descriptor.name;
  }

  /**
   * Says why `value` is left out, the first time a value is for that
   * reason; `negative` says why a negative number is no value for it.
   */
  refuse(value: unknown, negative = "a histogram takes none"): void {
    const why = typeof value !== "number" ? 1 : !Number.isFinite(value) ? 2 : 4;
    if ((this.#said & why) !== 0) return;
    this.#said |= why;
    diag.warn(
      why === 1
        ? `metric ${this.#name} was given ${notNumber(value)} where a number belongs; it leaves such values out`
        : why === 2
          ? `metric ${this.#name} was given ${String(value)}, no finite number; it leaves such values out`
          : `metric ${this.#name} was given a negative value (${String(value)}); ${negative}, so it leaves such values out`,
    );
  }
}

/** What a value that is no number is, for a warning: its kind, and a short one itself. */
function notNumber(value: unknown): string {
  switch (typeof value) {
    case "string":
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case "bigint":
      return `the bigint ${value}`;
    case "boolean":
    case "undefined":
      return String(value);
    case "object":
      return value === null
        ? "null"
        : Array.isArray(value)
          ? "an array"
          : "an object";
    default:
      return `a ${typeof value}`;
  }
}

const now = () => performance.timeOrigin + performance.now();

const COUNTS_UP = "a counter only counts up";
const TOTAL_UP = "an observable counter reports a count, never below 0";

export interface InstrumentDescriptor {
  name: string;
  description: string;
  unit: string;
}

interface NumberSeries {
  attributes: PointAttributes;
  startTime: number;
  value: number;
  /** The collection that last observed it (observable instruments only). */
  round: number;
  /** The value and time of its last delta export (time undefined: none yet). */
  reported: number;
  reportedAt: number | undefined;
  /**
   * On an observable sum's overflow series, what each attribute set folded
   * into it reported last, by attributesKey(): its value is their sum.
   */
  overflowed: Map<string, number> | undefined;
}

interface HistogramSeries {
  attributes: PointAttributes;
  startTime: number;
  count: number;
  sum: number;
  /**
   * The smallest and largest measurements before the last delta
   * collection; the series' whole min and max are these with the
   * interval's own.
   */
  min: number;
  max: number;
  /**
   * The smallest and largest measurements since the last delta collection:
   * an interval's own, which the running min and max cannot give once an
   * earlier interval went lower or higher. Only these are kept per
   * measurement.
   */
  intervalMin: number;
  intervalMax: number;
  counts: number[];
  exemplars: Array<ExemplarData | undefined>;
  /** What its last delta export had reached, and when; undefined: none yet. */
  reported: HistogramReported | undefined;
}

interface HistogramReported {
  at: number;
  count: number;
  sum: number;
  counts: number[];
}

/** A step of the ordered-attributes index: next key, then its value. */
interface IndexNode<S> {
  next: Map<string, Map<unknown, IndexNode<S>>> | undefined;
  series: S | undefined;
}

/** Nodes the ordered index may hold, past which misses take the canonical path. */
const INDEX_LIMIT = 16 * CARDINALITY_LIMIT;

/**
 * Series by attribute set. A measurement's attributes are looked up in the
 * order they were given, one Map step per key and value (attribute names
 * and values are mostly constants, whose hashes V8 keeps), so a series that
 * exists is found without building a string. The first time an order is
 * seen it is resolved through the canonical key (sorted keys), so {a,b} and
 * {b,a} are one series. At most CARDINALITY_LIMIT series; beyond it, new
 * sets land in the overflow series.
 */
class SeriesMap<S> {
  readonly #byKey = new Map<string, S>();
  /**
   * Series by attribute object, for frozen objects only: an instrumentation
   * that records with the same constant attributes every time finds its
   * series in one lookup. (Series are never removed, so an entry never
   * goes stale.)
   */
  readonly #byIdentity = new WeakMap<Attributes, S>();
  /** The frozen object last looked up and its series: a field compare before the WeakMap. */
  #lastFrozen: Attributes | undefined;
  #lastSeries: S | undefined;
  readonly #index: IndexNode<S> = { next: undefined, series: undefined };
  #indexNodes = 0;
  /** The overflow series, once the limit made one. */
  overflow: S | undefined;
  readonly #make: (attributes: PointAttributes) => S;
  readonly #invalid: InvalidAttributes;

  constructor(
    make: (attributes: PointAttributes) => S,
    invalid: InvalidAttributes,
  ) {
    this.#make = make;
    this.#invalid = invalid;
  }

  get size(): number {
    return this.#byKey.size;
  }

  values(): IterableIterator<S> {
    return this.#byKey.values();
  }

  /** The series with exactly these attributes, if there is one. */
  find(attributes: Attributes | undefined): S | undefined {
    return this.#byKey.get(attributesKey(attributes));
  }

  /** The same by the attributes' key (attributesKey()). */
  findByKey(key: string): S | undefined {
    return this.#byKey.get(key);
  }

  get(given: Attributes | undefined): S {
    // JavaScript callers pass null for none, and what is no object is none.
    const attributes =
      typeof given === "object" && given !== null ? given : undefined;
    if (attributes !== undefined && attributes === this.#lastFrozen)
      return this.#lastSeries!;
    const frozen = attributes !== undefined && Object.isFrozen(attributes);
    if (!frozen) return this.#walk(attributes);
    let s = this.#byIdentity.get(attributes);
    if (s === undefined) {
      s = this.#walk(attributes);
      this.#byIdentity.set(attributes, s);
    }
    this.#lastFrozen = attributes;
    this.#lastSeries = s;
    return s;
  }

  #walk(attributes: Attributes | undefined): S {
    let node: IndexNode<S> | undefined = this.#index;
    if (attributes !== undefined)
      for (const k in attributes) {
        const v = attributes[k];
        if (v === undefined) continue;
        node = node.next?.get(k)?.get(v);
        if (node === undefined) break;
      }
    return node?.series ?? this.#resolve(attributes);
  }

  #resolve(attributes: Attributes | undefined): S {
    // Looked for until found once: an index miss is the slow path already.
    if (
      this.#invalid.pending &&
      attributes !== undefined &&
      hasInvalid(attributes)
    )
      this.#invalid.warn();
    let key = attributesKey(attributes);
    let s = this.#byKey.get(key);
    if (s === undefined) {
      let point = attributes;
      // The overflow series counts towards the limit.
      if (this.#byKey.size >= CARDINALITY_LIMIT - 1) {
        point = OVERFLOW;
        key = attributesKey(OVERFLOW);
        s = this.#byKey.get(key);
      }
      if (s === undefined) {
        s = this.#make(copy(point));
        this.#byKey.set(key, s);
        if (point === OVERFLOW) this.overflow = s;
      }
    }
    this.#remember(attributes, s);
    return s;
  }

  /** Indexes this order of the attributes (arrays are values compared by identity: never indexed). */
  #remember(attributes: Attributes | undefined, s: S): void {
    let node = this.#index;
    if (attributes !== undefined)
      for (const k in attributes) {
        const v = attributes[k];
        if (v === undefined) continue;
        if (
          typeof v === "object" ||
          typeof v === "function" ||
          this.#indexNodes >= INDEX_LIMIT
        )
          return;
        node.next ??= new Map();
        let byValue = node.next.get(k);
        if (byValue === undefined) node.next.set(k, (byValue = new Map()));
        let child = byValue.get(v);
        if (child === undefined) {
          byValue.set(v, (child = { next: undefined, series: undefined }));
          this.#indexNodes++;
        }
        node = child;
      }
    node.series = s;
  }
}

const numberSeries = (
  attributes: PointAttributes,
  startTime: number,
): NumberSeries => ({
  attributes,
  startTime,
  value: 0,
  round: 0,
  reported: 0,
  reportedAt: undefined,
  overflowed: undefined,
});

/** Sums (monotonic or not) and last-value gauges over attribute sets. */
export class NumberAggregator {
  readonly #make: (attributes: PointAttributes) => NumberSeries;
  readonly #invalid: InvalidAttributes;
  #series: SeriesMap<NumberSeries>;
  /** The series an observable instrument's callbacks report in the collection running. */
  #observing: SeriesMap<NumberSeries> | undefined;
  /**
   * An observable counter's last delta report per attribute set, which the
   * series of the next rounds start from; kept a few collections past a
   * round that did not report it (a callback that failed once), so the
   * series comes back with its delta, not its total.
   */
  #lastReported = new Map<
    string,
    { value: number; at: number; missed: number }
  >();
  /**
   * The start times of observable series a round did not report (their
   * callback failed or was late), kept as #lastReported is: a series that
   * comes back keeps its start, or a backend would read its running total
   * as a reset.
   */
  #unreported = new Map<string, { startTime: number; missed: number }>();
  #observingRound = 0;
  readonly #refused: RefusedValues;
  readonly kind: "sum" | "gauge";
  readonly monotonic: boolean;
  /** Fed by callbacks (observe()) rather than add() and set(). */
  readonly observable: boolean;
  readonly descriptor: InstrumentDescriptor;
  readonly scope: Scope;
  /**
   * Set for an observable instrument whose values count from a known time
   * (epoch ms) rather than from its creation, such as a process's CPU
   * time: every series starts there.
   */
  countedSince: number | undefined;

  /**
   * `lastCollection` (observable instruments): when the meter provider last
   * collected, if it has.
   */
  constructor(
    scope: Scope,
    descriptor: InstrumentDescriptor,
    kind: "sum" | "gauge",
    monotonic: boolean,
    observable = false,
    lastCollection: () => number | undefined = () => undefined,
  ) {
    this.scope = scope;
    this.descriptor = descriptor;
    this.kind = kind;
    this.monotonic = monotonic;
    this.observable = observable;
    this.#invalid = new InvalidAttributes(scope, descriptor);
    this.#refused = new RefusedValues(descriptor);
    const created = now();
    // A synchronous series starts at its first measurement. An observable
    // one starts, as the specification's start timestamps say, at the
    // instrument's creation when the first collection reports it, else at
    // the collection before the one that first reports it: what it reports
    // may have accumulated since then.
    this.#make = observable
      ? (attributes) =>
          numberSeries(
            attributes,
            this.countedSince ?? Math.max(created, lastCollection() ?? 0),
          )
      : (attributes) => numberSeries(attributes, now());
    this.#series = new SeriesMap(this.#make, this.#invalid);
  }

  add(value: number, attributes?: Attributes): void {
    if (
      typeof value !== "number" ||
      !Number.isFinite(value) ||
      (this.monotonic && value < 0)
    )
      return this.#refused.refuse(value, COUNTS_UP);
    this.#series.get(attributes).value += value;
  }

  set(value: number, attributes?: Attributes): void {
    if (typeof value !== "number" || !Number.isFinite(value))
      return this.#refused.refuse(value);
    this.#series.get(attributes).value = value;
  }

  /**
   * An observable instrument's value in collection `round`: absolute, so a
   * sum is replaced, not added (but see #take() for the overflow series).
   * Goes to a new set of series that endRound() makes current; a series
   * reported before keeps its start time.
   */
  observe(
    value: number,
    attributes: Attributes | undefined,
    round: number,
  ): void {
    if (
      typeof value !== "number" ||
      !Number.isFinite(value) ||
      (this.monotonic && value < 0)
    )
      return this.#refused.refuse(value, TOTAL_UP);
    if (this.#observingRound !== round || this.#observing === undefined) {
      this.#observing = new SeriesMap(this.#make, this.#invalid);
      this.#observingRound = round;
    }
    const s = this.#observing.get(attributes);
    if (s.round !== round) {
      s.round = round;
      // By the series' own attributes, as they were noted: those of the
      // overflow series are not those of the set observed.
      const key = attributesKey(s.attributes as Attributes);
      const before = this.#series.findByKey(key);
      if (before !== undefined) s.startTime = before.startTime;
      else if (this.#unreported.size > 0) {
        const gone = this.#unreported.get(key);
        if (gone !== undefined) s.startTime = gone.startTime;
      }
      // Each round makes new series: what a delta collection reported
      // comes from the one record of it, kept across rounds.
      if (this.#lastReported.size > 0) {
        const last = this.#lastReported.get(key);
        if (last !== undefined) {
          s.reported = last.value;
          s.reportedAt = last.at;
        }
      }
    }
    this.#take(s, this.#observing, value, attributes);
  }

  /**
   * An observable instrument's value outside a collection's round (see
   * MeterProvider.collectSync()): it updates the current series, as
   * observe() would have in the round that made them.
   */
  observeNow(value: number, attributes: Attributes | undefined): void {
    if (
      typeof value !== "number" ||
      !Number.isFinite(value) ||
      (this.monotonic && value < 0)
    )
      return this.#refused.refuse(value, TOTAL_UP);
    this.#take(this.#series.get(attributes), this.#series, value, attributes);
  }

  /**
   * Takes an observed value into its series. The overflow series stands for
   * every attribute set past the limit, and aggregates them as the
   * instrument aggregates: a sum's is the sum of what each set reported
   * last in the round (a set reported twice counts once, as it would in a
   * series of its own), a gauge's the last value reported, as a gauge's
   * series keeps the last of its measurements.
   */
  #take(
    s: NumberSeries,
    series: SeriesMap<NumberSeries>,
    value: number,
    attributes: Attributes | undefined,
  ): void {
    if (this.kind !== "sum" || s !== series.overflow) {
      s.value = value;
      return;
    }
    const key = attributesKey(attributes);
    const overflowed = (s.overflowed ??= new Map());
    s.value += value - (overflowed.get(key) ?? 0);
    overflowed.set(key, value);
  }

  /** Makes what collection `round` observed the instrument's series, and only that. */
  endRound(round: number): void {
    const next =
      this.#observingRound === round && this.#observing !== undefined
        ? this.#observing
        : new SeriesMap(this.#make, this.#invalid);
    this.#rememberUnreported(next);
    this.#series = next;
    this.#observing = undefined;
  }

  /**
   * Notes the start times of the sums' series `next` leaves out, at most
   * CARDINALITY_LIMIT; forgets one unseen for a while. (A gauge's start
   * time tells nothing a backend reads.)
   */
  #rememberUnreported(next: SeriesMap<NumberSeries>): void {
    if (this.kind !== "sum") return;
    for (const [key, gone] of this.#unreported)
      if (
        next.findByKey(key) !== undefined ||
        gone.missed >= FORGET_AFTER_MISSED
      )
        this.#unreported.delete(key);
      else gone.missed++;
    for (const s of this.#series.values()) {
      if (this.#unreported.size >= CARDINALITY_LIMIT) break;
      const key = attributesKey(s.attributes as Attributes);
      if (next.findByKey(key) === undefined)
        this.#unreported.set(key, { startTime: s.startTime, missed: 1 });
    }
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  /** Current value of the series with exactly these attributes. */
  value(attributes?: Attributes): number | undefined {
    return this.#series.find(attributes)?.value;
  }

  /**
   * Every series at `time`. With a preference that makes this instrument
   * delta (see TemporalityPreference), each point is the change since the
   * previous collection made with one, and a synchronous series that did
   * not change is left out; only one reader may ask for delta.
   */
  collect(
    time: number,
    preference: TemporalityPreference = "cumulative",
  ): MetricData | undefined {
    if (this.#series.size === 0) return undefined;
    const delta =
      this.kind === "sum" &&
      this.monotonic &&
      (preference === "delta" ||
        (preference === "lowmemory" && !this.observable));
    const points: NumberPointData[] = [];
    for (const s of this.#series.values()) {
      if (!delta) {
        points.push({
          attributes: s.attributes,
          startTime: s.startTime,
          time,
          value: s.value,
        });
        continue;
      }
      // An observed counter that went down was reset: all of it is new.
      const reset = s.value < s.reported;
      const value = reset ? s.value : s.value - s.reported;
      const startTime = s.reportedAt ?? s.startTime;
      s.reported = s.value;
      s.reportedAt = time;
      if (value === 0 && !this.observable) continue;
      points.push({ attributes: s.attributes, startTime, time, value });
    }
    if (delta && this.observable) this.#rememberReported(time);
    if (points.length === 0) return undefined;
    const d = this.descriptor;
    return this.kind === "sum"
      ? {
          scope: this.scope,
          name: d.name,
          description: d.description,
          unit: d.unit,
          kind: "sum",
          monotonic: this.monotonic,
          temporality: delta ? "delta" : "cumulative",
          points,
        }
      : {
          scope: this.scope,
          name: d.name,
          description: d.description,
          unit: d.unit,
          kind: "gauge",
          points,
        };
  }

  series(): Iterable<NumberSeries> {
    return this.#series.values();
  }

  /** Notes what each series reported; forgets one unseen for a while. */
  #rememberReported(time: number): void {
    const next = new Map<
      string,
      { value: number; at: number; missed: number }
    >();
    for (const s of this.#series.values())
      next.set(attributesKey(s.attributes as Attributes), {
        value: s.reported,
        at: time,
        missed: 0,
      });
    for (const [key, last] of this.#lastReported)
      if (!next.has(key) && last.missed < FORGET_AFTER_MISSED)
        next.set(key, { ...last, missed: last.missed + 1 });
    this.#lastReported = next;
  }
}

/** Collections an observable series may go unreported and keep its last delta report and its start time. */
const FORGET_AFTER_MISSED = 10;

/** Explicit-bucket histograms over attribute sets. */
export class HistogramAggregator {
  readonly #series: SeriesMap<HistogramSeries>;
  readonly descriptor: InstrumentDescriptor;
  readonly scope: Scope;
  readonly bounds: readonly number[];
  readonly #exemplars: ExemplarFilter;
  readonly #refused: RefusedValues;

  constructor(
    scope: Scope,
    descriptor: InstrumentDescriptor,
    bounds: readonly number[],
    exemplars: ExemplarFilter = "trace_based",
  ) {
    this.#refused = new RefusedValues(descriptor);
    this.scope = scope;
    this.descriptor = descriptor;
    this.bounds = bounds;
    this.#exemplars = exemplars;
    this.#series = new SeriesMap(
      (attributes) => ({
        attributes,
        startTime: now(),
        count: 0,
        sum: 0,
        min: Infinity,
        max: -Infinity,
        intervalMin: Infinity,
        intervalMax: -Infinity,
        counts: new Array<number>(bounds.length + 1).fill(0),
        exemplars: new Array<ExemplarData | undefined>(bounds.length + 1).fill(
          undefined,
        ),
        reported: undefined,
      }),
      new InvalidAttributes(scope, descriptor),
    );
  }

  record(
    value: number,
    attributes?: Attributes,
    ctx: Context = context.active(),
  ): void {
    // A histogram's sum must only grow: Prometheus reads a _sum that went
    // down as a reset, and OTLP leaves out the sum of one given negatives.
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
      return this.#refused.refuse(value);
    const s = this.#series.get(attributes);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    s.counts[i]!++;
    s.count++;
    s.sum += value;
    if (value < s.intervalMin) s.intervalMin = value;
    if (value > s.intervalMax) s.intervalMax = value;
    const filter = this.#exemplars;
    if (filter === "always_off") return;
    const sc = trace.getSpanContext(ctx);
    const sampled = sc !== undefined && (sc.traceFlags & 1) === 1;
    if (!sampled && filter === "trace_based") return;
    // Updated in place: one object per bucket, not one per measurement.
    // Outside a sampled span (always_on) it names no trace.
    const traceId = sampled ? sc.traceId : "";
    const spanId = sampled ? sc.spanId : "";
    const e = s.exemplars[i];
    if (e === undefined)
      s.exemplars[i] = { time: now(), value, traceId, spanId };
    else {
      e.time = now();
      e.value = value;
      e.traceId = traceId;
      e.spanId = spanId;
    }
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  series(): Iterable<HistogramSeries> {
    return this.#series.values();
  }

  /**
   * Every series at `time`; with any preference but cumulative, the
   * measurements since the previous collection made with one, leaving out
   * series that took none, with their own min and max.
   */
  collect(
    time: number,
    preference: TemporalityPreference = "cumulative",
  ): MetricData | undefined {
    if (this.#series.size === 0) return undefined;
    const delta = preference !== "cumulative";
    const points: HistogramPointData[] = [];
    for (const s of this.#series.values()) {
      const was = delta ? s.reported : undefined;
      let min = Math.min(s.min, s.intervalMin);
      let max = Math.max(s.max, s.intervalMax);
      if (delta) {
        if (was !== undefined && was.count === s.count) continue;
        s.reported = {
          at: time,
          count: s.count,
          sum: s.sum,
          counts: [...s.counts],
        };
        min = s.intervalMin;
        max = s.intervalMax;
        // Into the running ones, which a cumulative reader still reports.
        s.min = Math.min(s.min, min);
        s.max = Math.max(s.max, max);
        s.intervalMin = Infinity;
        s.intervalMax = -Infinity;
      }
      const exemplars: ExemplarData[] = [];
      for (const e of s.exemplars)
        if (e !== undefined && (was === undefined || e.time > was.at))
          exemplars.push({ ...e });
      points.push({
        attributes: s.attributes,
        startTime: was?.at ?? s.startTime,
        time,
        count: s.count - (was?.count ?? 0),
        sum: s.sum - (was?.sum ?? 0),
        min,
        max,
        bounds: this.bounds,
        counts:
          was === undefined
            ? [...s.counts]
            : s.counts.map((c, i) => c - was.counts[i]!),
        ...(exemplars.length > 0 ? { exemplars } : {}),
      });
    }
    if (points.length === 0) return undefined;
    const d = this.descriptor;
    return {
      scope: this.scope,
      name: d.name,
      description: d.description,
      unit: d.unit,
      kind: "histogram",
      temporality: delta ? "delta" : "cumulative",
      points,
    };
  }
}
