// The OpenTelemetry metrics API over Threadline's own aggregators (see
// instruments.ts), so `metrics.getMeter()` in application code, the
// instrumentations' request metrics and the SDK's own counters all land in
// one place that the periodic reader, the Prometheus endpoint and the alarm
// rules read.
//
// Ours rather than @opentelemetry/sdk-metrics: that package alone takes
// longer to load than the whole start-up budget we allow, and recording
// through its view and storage layers costs more per measurement than a
// Map lookup and an addition.
import {
  createNoopMeter,
  type Attributes,
  type BatchObservableCallback,
  type BatchObservableResult,
  type Context,
  type Counter,
  type Gauge,
  type Histogram,
  type Meter,
  type MeterOptions,
  type MeterProvider as ApiMeterProvider,
  type MetricOptions,
  type Observable,
  type ObservableCallback,
  type ObservableCounter,
  type ObservableGauge,
  type ObservableResult,
  type ObservableUpDownCounter,
  type UpDownCounter,
} from "@opentelemetry/api";
import { diag, messageOf } from "@threadline/core";
import { scopeText } from "../internal/scope-text.ts";
import type { MetricData, Scope } from "@threadline/otlp";
import {
  DEFAULT_BUCKETS,
  HistogramAggregator,
  NumberAggregator,
  type ExemplarFilter,
  type TemporalityPreference,
} from "./instruments.ts";

type Aggregator = NumberAggregator | HistogramAggregator;

/**
 * One of those that read the metrics: the OTLP export, the Prometheus
 * endpoint, the alarm rules. A callback that reports what happened since
 * the last collection (the event loop's delay and utilisation, the host's
 * CPU) keeps a window per reader, found with readerOf(), so that one
 * reader's collection never shortens another's window.
 */
export class Reader {
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }
}

/** The reader each result handed to a callback collects for. */
const readers = new WeakMap<object, Reader>();

/**
 * The reader a callback's result collects for; undefined for a result of
 * another meter provider.
 */
export function readerOf(
  result: ObservableResult | BatchObservableResult,
): Reader | undefined {
  return readers.get(result);
}

class ObservableInstrument
  implements ObservableCounter, ObservableGauge, ObservableUpDownCounter
{
  readonly aggregator: NumberAggregator;
  readonly callbacks = new Set<ObservableCallback>();

  constructor(aggregator: NumberAggregator) {
    this.aggregator = aggregator;
  }

  addCallback(callback: ObservableCallback): void {
    this.callbacks.add(callback);
  }

  removeCallback(callback: ObservableCallback): void {
    this.callbacks.delete(callback);
  }
}

/** The instrument name syntax of the OpenTelemetry metrics API. */
const NAME = /^[A-Za-z][A-Za-z0-9_./-]{0,254}$/;

/** What an instrument refused for its name is: it records nothing. */
const NOOP = createNoopMeter();

interface Descriptor {
  name: string;
  description: string;
  unit: string;
}

/**
 * A description or unit as it is exported: a string, "" when none is
 * given. One that is no string (a translations object, say) is "" too,
 * with a warning once: exported, it failed the whole collection.
 */
function optionText(name: string, option: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (value !== undefined && value !== null)
    diag.warnOnce(
      `metric-${option}:${name}`,
      `metric ${name} was given a ${option} that is not a string (${typeof value}); it is exported without one`,
    );
  return "";
}

class ThreadlineMeter implements Meter {
  readonly #scope: Scope;
  readonly #provider: MeterProvider;

  constructor(scope: Scope, provider: MeterProvider) {
    this.#scope = scope;
    this.#provider = provider;
  }

  /**
   * The instrument's name, description and unit; undefined, with a warning
   * once, for a name the API's syntax does not allow: the instrument is
   * then one that records nothing, as the specification lets a meter make
   * it (a name that is no string at all could not even be exported).
   */
  #descriptor(
    name: string,
    options: MetricOptions | undefined,
  ): Descriptor | undefined {
    if (typeof name !== "string" || !NAME.test(name)) {
      const shown =
        typeof name === "string"
          ? JSON.stringify(name)
          : `of type ${typeof name}`;
      diag.warnOnce(
        `metric-name:${shown}`,
        `metric name ${shown} is not a valid instrument name (a letter, then up to 254 letters, digits, "_", ".", "/" or "-"); the instrument records nothing`,
      );
      return undefined;
    }
    return {
      name,
      description: optionText(name, "description", options?.description),
      unit: optionText(name, "unit", options?.unit),
    };
  }

  createCounter(name: string, options?: MetricOptions): Counter {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createCounter("");
    const a = this.#provider.numberAggregator(this.#scope, d, "sum", true);
    return {
      add: (value: number, attributes?: Attributes) => a.add(value, attributes),
    };
  }

  createUpDownCounter(name: string, options?: MetricOptions): UpDownCounter {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createUpDownCounter("");
    const a = this.#provider.numberAggregator(this.#scope, d, "sum", false);
    return {
      add: (value: number, attributes?: Attributes) => a.add(value, attributes),
    };
  }

  createGauge(name: string, options?: MetricOptions): Gauge {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createGauge("");
    const a = this.#provider.numberAggregator(this.#scope, d, "gauge", false);
    return {
      record: (value: number, attributes?: Attributes) =>
        a.set(value, attributes),
    };
  }

  createHistogram(name: string, options?: MetricOptions): Histogram {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createHistogram("");
    const advised = options?.advice?.explicitBucketBoundaries;
    const bounds =
      advised === undefined ? DEFAULT_BUCKETS : bucketBounds(name, advised);
    const a = this.#provider.histogramAggregator(this.#scope, d, bounds);
    return {
      record: (value: number, attributes?: Attributes, ctx?: Context) =>
        a.record(value, attributes, ctx),
    };
  }

  createObservableCounter(
    name: string,
    options?: MetricOptions,
  ): ObservableCounter {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createObservableCounter("");
    return this.#provider.observable(this.#scope, d, "sum", true);
  }

  createObservableUpDownCounter(
    name: string,
    options?: MetricOptions,
  ): ObservableUpDownCounter {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createObservableUpDownCounter("");
    return this.#provider.observable(this.#scope, d, "sum", false);
  }

  createObservableGauge(
    name: string,
    options?: MetricOptions,
  ): ObservableGauge {
    const d = this.#descriptor(name, options);
    if (d === undefined) return NOOP.createObservableGauge("");
    return this.#provider.observable(this.#scope, d, "gauge", false);
  }

  addBatchObservableCallback(
    callback: BatchObservableCallback,
    observables: Observable[],
  ): void {
    this.#provider.addBatch(callback, observables);
  }

  removeBatchObservableCallback(callback: BatchObservableCallback): void {
    this.#provider.removeBatch(callback);
  }
}

/**
 * A histogram's advised bucket bounds made usable: the finite numbers, in
 * ascending order, each once. Bounds out of order or repeated put
 * measurements in the wrong buckets, and an infinite one makes a second
 * `+Inf` bucket that a Prometheus scrape refuses. Advice with no bound
 * left gives the default buckets, with a warning; an empty list is kept, as
 * it asks for the one bucket (a count and a sum).
 */
function bucketBounds(name: string, advised: unknown): readonly number[] {
  // Advice from JavaScript may be anything: what is no list holds no bound.
  const list: readonly unknown[] = Array.isArray(advised) ? advised : [advised];
  if (list.length === 0) return [];
  const finite = list.filter(
    (b): b is number => typeof b === "number" && Number.isFinite(b),
  );
  const bounds = [...new Set(finite)].sort((a, b) => a - b);
  if (bounds.length > 0) return bounds;
  diag.warnOnce(
    `metric-buckets:${name}`,
    `histogram ${name} was advised bucket bounds ${list.map(String).join(", ")}, none of them a finite number; it takes the default buckets`,
  );
  return DEFAULT_BUCKETS;
}

/** Settings of a {@link MeterProvider}. */
export interface MeterProviderOptions {
  /**
   * How long a collection waits for an asynchronous observable callback, in
   * milliseconds; one that takes longer is collected without, with a
   * warning naming its instruments, so it cannot hold up an export, a
   * scrape or a shutdown.
   * @default 30000 (the specification's OTEL_METRIC_EXPORT_TIMEOUT)
   */
  callbackTimeoutMs?: number;
  /** Which histogram measurements may become exemplars. @default "trace_based" */
  exemplarFilter?: ExemplarFilter;
}

export class MeterProvider implements ApiMeterProvider {
  readonly #callbackTimeoutMs: number;
  readonly #exemplarFilter: ExemplarFilter;
  readonly #meters = new Map<string, ThreadlineMeter>();
  /** By scope (name, version, schema URL), name and kind, in the order they were made. */
  readonly #aggregators = new Map<string, Aggregator>();
  /** Scope and name of every aggregator, to warn when a name comes with a second kind. */
  readonly #names = new Set<string>();
  readonly #observables: ObservableInstrument[] = [];
  readonly #batches = new Map<BatchObservableCallback, Observable[]>();
  /** The aggregators of observable instruments, which keep only what was last reported. */
  readonly #observed = new Set<NumberAggregator>();
  #rounds = 0;
  /** The time of the latest snapshot, where a series first observed after it starts. */
  #collectedAt: number | undefined;
  /** Whoever collects without naming a reader. */
  readonly #anyReader = new Reader("unnamed");
  /** The callbacks' run under way, which the same reader's collections join. */
  #turn: Turn | undefined;

  constructor(options: MeterProviderOptions = {}) {
    this.#callbackTimeoutMs = options.callbackTimeoutMs ?? 30_000;
    this.#exemplarFilter = options.exemplarFilter ?? "trace_based";
  }

  getMeter(name: string, version?: string, options?: MeterOptions): Meter {
    if (typeof name !== "string") name = scopeText(name);
    if (version !== undefined && typeof version !== "string")
      version = scopeText(version);
    let schemaUrl = options?.schemaUrl;
    if (schemaUrl !== undefined && typeof schemaUrl !== "string")
      schemaUrl = scopeText(schemaUrl);
    const key = `${name}@${version ?? ""}\u0000${schemaUrl ?? ""}`;
    let m = this.#meters.get(key);
    if (m === undefined) {
      m = new ThreadlineMeter(
        {
          name,
          ...(version === undefined ? {} : { version }),
          ...(schemaUrl ? { schemaUrl } : {}),
        },
        this,
      );
      this.#meters.set(key, m);
    }
    return m;
  }

  numberAggregator(
    scope: Scope,
    d: { name: string; description: string; unit: string },
    kind: "sum" | "gauge",
    monotonic: boolean,
  ): NumberAggregator {
    return this.#aggregator(
      scope,
      d.name,
      `${kind}${monotonic}`,
      () => new NumberAggregator(scope, d, kind, monotonic),
    );
  }

  histogramAggregator(
    scope: Scope,
    d: { name: string; description: string; unit: string },
    bounds: readonly number[],
  ): HistogramAggregator {
    return this.#aggregator(
      scope,
      d.name,
      "histogram",
      () => new HistogramAggregator(scope, d, bounds, this.#exemplarFilter),
    );
  }

  /**
   * The aggregator of one identity (scope, name, kind), made the first
   * time. A name taken by another kind gets an aggregator of its own, with
   * a warning, and every later instrument of that identity shares it.
   */
  #aggregator<A extends Aggregator>(
    scope: Scope,
    name: string,
    kind: string,
    make: () => A,
  ): A {
    // By version and schema URL too: two versions of a library (each its
    // own meter) are two scopes, whose metrics a backend tells apart.
    const named = `${scope.name}\u0000${scope.version ?? ""}\u0000${scope.schemaUrl ?? ""}\u0000${name}`;
    const key = `${named}\u0000${kind}`;
    const existing = this.#aggregators.get(key);
    if (existing !== undefined) return existing as A;
    if (this.#names.has(named))
      diag.warnOnce(
        `metric-dup:${named}`,
        `metric ${name} was created twice with different kinds; the second is kept apart`,
      );
    else this.#names.add(named);
    const a = make();
    this.#aggregators.set(key, a);
    return a;
  }

  observable(
    scope: Scope,
    d: { name: string; description: string; unit: string },
    kind: "sum" | "gauge",
    monotonic: boolean,
  ): ObservableInstrument {
    // Apart from a synchronous instrument of the same name and kind: its
    // series are not forgotten when no callback reports them.
    const a = this.#aggregator(
      scope,
      d.name,
      `observable ${kind}${monotonic}`,
      () =>
        new NumberAggregator(
          scope,
          d,
          kind,
          monotonic,
          true,
          () => this.#collectedAt,
        ),
    );
    this.#observed.add(a);
    const o = new ObservableInstrument(a);
    this.#observables.push(o);
    return o;
  }

  addBatch(callback: BatchObservableCallback, observables: Observable[]): void {
    this.#batches.set(callback, observables);
  }

  removeBatch(callback: BatchObservableCallback): void {
    this.#batches.delete(callback);
  }

  /** Every aggregator, for readers that look at live values (Prometheus, alarms). */
  aggregators(): Iterable<Aggregator> {
    return this.#aggregators.values();
  }

  /** The aggregator of an instrument by name, whatever its scope. */
  find(name: string): Aggregator | undefined {
    for (const a of this.#aggregators.values())
      if (a.descriptor.name === name) return a;
    return undefined;
  }

  /**
   * Runs every callback once. Observations count while `round.open`, so a
   * callback that settles after its collection gave up on it changes
   * nothing. They go to round `n`'s new series or, without a number, into
   * the current series. Returns the callbacks still running, by the
   * instruments they report.
   */
  #observe(round: Round): Running[] {
    const n = round.n;
    const report = (
      a: NumberAggregator,
      value: number,
      attributes: Attributes | undefined,
    ) => {
      if (n === undefined) a.observeNow(value, attributes);
      else a.observe(value, attributes, n);
    };
    const running: Running[] = [];
    const started = (returned: unknown, names: () => string) => {
      if (!isThenable(returned)) return;
      const done = Promise.resolve(returned).then(
        (): true => true,
        (err: unknown): true => {
          diag.warnCollapsed(
            "metric-callback",
            `an observable metric callback failed: ${messageOf(err)}`,
          );
          return true;
        },
      );
      running.push({ names, done });
    };
    for (const o of this.#observables) {
      const r: ObservableResult = {
        observe: (value, attributes) => {
          if (round.open) report(o.aggregator, value, attributes);
        },
      };
      readers.set(r, round.reader);
      for (const cb of o.callbacks) {
        try {
          started(cb(r), () => o.aggregator.descriptor.name);
        } catch (err) {
          diag.warnCollapsed(
            "metric-callback",
            `an observable metric callback threw: ${messageOf(err)}`,
          );
        }
      }
    }
    for (const [cb, observables] of this.#batches) {
      const r: BatchObservableResult = {
        observe: (observable, value, attributes) => {
          if (
            round.open &&
            observables.includes(observable) &&
            observable instanceof ObservableInstrument
          )
            report(observable.aggregator, value, attributes);
        },
      };
      readers.set(r, round.reader);
      try {
        started(cb(r), () =>
          observables
            .map((o) =>
              o instanceof ObservableInstrument
                ? o.aggregator.descriptor.name
                : "?",
            )
            .join(", "),
        );
      } catch (err) {
        diag.warnCollapsed(
          "metric-callback",
          `a batch metric callback threw: ${messageOf(err)}`,
        );
      }
    }
    return running;
  }

  #snapshot(preference: TemporalityPreference): MetricData[] {
    const time = performance.timeOrigin + performance.now();
    this.#collectedAt = time;
    const out: MetricData[] = [];
    for (const a of this.#aggregators.values()) {
      const d = a.collect(time, preference);
      if (d !== undefined) out.push(d);
    }
    return out;
  }

  /**
   * Runs observable callbacks (see observeAndRead()) for `reader`, then snapshots
   * every series, cumulative unless `preference` makes an instrument delta:
   * then since the previous collection that asked for it. Never throws.
   */
  collect(
    preference: TemporalityPreference = "cumulative",
    reader: Reader = this.#anyReader,
    deadline?: number,
  ): Promise<MetricData[]> {
    return this.observeAndRead(
      reader,
      () => this.#snapshot(preference),
      deadline,
    );
  }

  /**
   * Runs observable callbacks for `reader`, waiting for asynchronous ones
   * up to the callback timeout, or until `deadline` (performance.now()
   * time) if that comes first, and forgets the series no callback
   * reported this time; then `read`, whose result it resolves to, before
   * any other run of the callbacks: find() and the aggregators show what
   * the callbacks reported for this reader. A call while the same reader's
   * run is under way shares it: callbacks never run twice at once. Another
   * reader's call waits for it, then has a run of its own, within the
   * same time from when it was made: its windows are its own, and sharing
   * the run would have it read values measured for another. If the other
   * run outlasts that time, the call reads what the callbacks reported
   * last, running none: a scrape must be answered before its scraper gives
   * up.
   */
  observeAndRead<T>(
    reader: Reader,
    read: () => T,
    deadline?: number,
  ): Promise<T> {
    const now = performance.now();
    const ms = Math.max(
      0,
      Math.min(this.#callbackTimeoutMs, (deadline ?? Infinity) - now),
    );
    return this.#observeAndRead(reader, read, { at: now + ms, ms });
  }

  #observeAndRead<T>(reader: Reader, read: () => T, limit: Limit): Promise<T> {
    const turn = this.#turn;
    if (turn !== undefined && turn.reader !== reader)
      return settledBy([turn.done], limit.at).then(([settled]) => {
        if (settled) return this.#observeAndRead(reader, read, limit);
        diag.warnCollapsed(
          "metric-collect-late",
          `the ${reader.name} could not wait any longer for the observable metric callbacks run for the ${turn.reader.name}; it took what they reported last`,
        );
        return read();
      });
    return new Promise<T>((resolve, reject) => {
      (turn ?? this.#begin(reader, limit)).reads.push((failed) => {
        if (failed !== undefined) reject(failed.err);
        else
          try {
            resolve(read());
          } catch (err) {
            reject(err as Error);
          }
      });
    });
  }

  /** Starts a run of the callbacks for `reader`; its reads follow it at once. */
  #begin(reader: Reader, limit: Limit): Turn {
    const reads: Turn["reads"] = [];
    const finish = (failed?: { err: unknown }) => {
      this.#turn = undefined;
      for (const r of reads) r(failed);
    };
    const turn: Turn = {
      reader,
      reads,
      done: this.#round(reader, limit).then(
        () => finish(),
        (err: unknown) => finish({ err }),
      ),
    };
    this.#turn = turn;
    return turn;
  }

  async #round(reader: Reader, limit: Limit): Promise<void> {
    const n = ++this.#rounds;
    const round: Round = { open: true, n, reader };
    const running = this.#observe(round);
    if (running.length > 0) {
      // A reader that waited for another's run has what is left of its
      // time: the collection, not each run, is bounded by the timeout.
      const finished = await settledBy(
        running.map((r) => r.done),
        limit.at,
      );
      const late = running.filter((_, i) => !finished[i]);
      if (late.length > 0)
        diag.warnCollapsed(
          "metric-callback-late",
          `observable metric callbacks did not finish within ${Math.round(limit.ms)} ms and were collected without: ${late.map((r) => r.names()).join("; ")}`,
          late.length,
        );
    }
    round.open = false;
    for (const a of this.#observed) a.endRound(n);
  }

  /**
   * The same without waiting for asynchronous callbacks (for 'exit'
   * handlers). Nothing is forgotten: an asynchronous callback cannot report
   * any more, and what it reported last is the best there is.
   */
  collectSync(
    preference: TemporalityPreference = "cumulative",
    reader: Reader = this.#anyReader,
  ): MetricData[] {
    const round: Round = { open: true, n: undefined, reader };
    this.#observe(round);
    round.open = false;
    return this.#snapshot(preference);
  }
}

/** One run of the callbacks: whether it still takes observations, its number and its reader. */
interface Round {
  open: boolean;
  /** Undefined: observations update the current series, forgetting none. */
  n: number | undefined;
  reader: Reader;
}

/**
 * How long a collection may wait for asynchronous callbacks: until `at`
 * (performance.now() time), `ms` from when it was asked for.
 */
interface Limit {
  at: number;
  ms: number;
}

/** A run of the callbacks for one reader, and the reads that wait for it. */
interface Turn {
  reader: Reader;
  /** Each is called once the run ends, with its error if it failed. */
  reads: ((failed: { err: unknown } | undefined) => void)[];
  /** Settles (never rejects) once the reads were called. */
  done: Promise<void>;
}

/** A callback's promise, settled or not, and the instruments it reports. */
interface Running {
  names: () => string;
  /** Resolves to true once the callback settles; never rejects. */
  done: Promise<true>;
}

/**
 * Makes an observable instrument's series start at `time` (epoch ms): for
 * values counted from then rather than from the instrument's creation, as
 * a process's CPU time counts from the process's start. An instrument of
 * another meter provider is left alone.
 */
export function countedSince(instrument: Observable, time: number): void {
  if (instrument instanceof ObservableInstrument)
    instrument.aggregator.countedSince = time;
}

/**
 * For each of `dones` (which never reject), whether it settles by
 * `deadline` (performance.now() time): one timer for them all.
 */
async function settledBy(
  dones: readonly Promise<unknown>[],
  deadline: number,
): Promise<boolean[]> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(
      () => resolve(false),
      Math.max(0, deadline - performance.now()),
    );
    timer.unref();
  });
  try {
    return await Promise.all(
      dones.map((done) =>
        Promise.race([done.then((): true => true), timedOut]),
      ),
    );
  } finally {
    clearTimeout(timer);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as { then?: unknown }).then === "function"
  );
}
