// Alarms as operators know them: raised when a condition has held for the
// rule's time, active until it has no longer held for the rule's clearFor,
// then cleared; one alarm per
// rule and source however long the condition lasts (de-duplicated);
// acknowledgeable. Evaluated on an unref'd timer off the request path: the
// event loop is sampled here, HTTP outcomes are read from the tallies the
// HTTP instrumentation keeps, health from the registered checks.
import { randomUUID } from "node:crypto";
import {
  diag,
  health,
  httpServerOutcomes,
  messageOf,
  type ComponentHealth,
} from "@threadline/core";
import { Reader, type MeterProvider } from "../metrics/meter-provider.ts";
import {
  notifyAll,
  sendAgain,
  type AlarmEvent,
  type Notifier,
} from "./notifiers.ts";
import {
  attributeMatcher,
  type AlarmRule,
  type HttpErrorRatioRule,
  type Severity,
} from "./rules.ts";
import { LoopDelay } from "../internal/loop-delay.ts";

export interface Alarm {
  /** Rule name, and the source for per-component rules. */
  readonly id: string;
  readonly name: string;
  readonly severity: Severity;
  readonly source: string;
  readonly description: string;
  state: "active" | "cleared";
  /** Why it was raised, as its raise said. */
  reason: string;
  raisedAt: string;
  /**
   * How its condition stood at the latest evaluation that could tell (the
   * raise's, or one since): while it stays active the figures move on
   * from those the raise gave.
   */
  latestReason: string;
  latestAt: string;
  clearedAt?: string;
  acknowledged: boolean;
  acknowledgedAt?: string;
}

interface Condition {
  source: string;
  /** undefined: too little to tell; nothing changes. */
  holds: boolean | undefined;
  reason: string;
}

/** Requests and failures counted in one evaluation. */
interface HttpSample {
  at: number;
  total: number;
  errors: number;
}

interface KeyState {
  /** The rule's name and the condition's source, for health rules' sources that go. */
  rule: string;
  source: string;
  since: number | undefined;
  /** While raised: since when the condition has no longer held, if it has not. */
  clearingSince: number | undefined;
  alarm: Alarm | undefined;
  /** The raise's notification, sent again to those that could not be given it. */
  raise: AlarmEvent | undefined;
  /** Per notifier the raise could not be delivered to: when it last failed. */
  undelivered: Map<Notifier, number>;
  /** Aborted as the instance ends: the raise's sends give way to the clear. */
  abandon: AbortController;
}

/** A clear not yet delivered to every notifier its raise reached. */
interface UndeliveredClear {
  event: AlarmEvent;
  /** Per notifier: when the clear last failed (Infinity while sent again). */
  undelivered: Map<Notifier, number>;
}

/**
 * How long after a raise's or a clear's last failed delivery to a
 * notifier it is sent again (ms): a receiver down for longer than the
 * notifier's own retries (a webhook's or PagerDuty's outage) still gets
 * the page while the alarm is active, and its resolution once it clears,
 * and one down for hours is not sent a try every evaluation.
 */
const SEND_AGAIN_AFTER_MS = 60_000;

/** The signal of a clear sent again: nothing gives it up. */
const NEVER = new AbortController().signal;

/** A rule's clearFor when it has none, in evaluation intervals. */
const CLEAR_FOR_INTERVALS = 3;

const HISTORY = 100;

export interface AlarmEngineOptions {
  rules: readonly AlarmRule[];
  intervalMs: number;
  service: string;
  /** The resource's `service.instance.id`, carried by every notification. */
  instance: string;
  meterProvider: MeterProvider;
  notifiers: readonly Notifier[];
  /** Milliseconds on a monotonic clock; `performance.now()` unless given. */
  clock?: () => number;
  /** Receives each raise and clear as a structured log line. */
  log: (line: string, severityNumber: number, severityText: string) => void;
}

export class AlarmEngine {
  readonly #o: AlarmEngineOptions;
  readonly #states = new Map<string, KeyState>();
  /**
   * Per alarm id, its clear still owed to a receiver that has its raise:
   * sent again until delivered, or until the alarm is raised again.
   */
  readonly #clears = new Map<string, UndeliveredClear>();
  readonly #history: Alarm[] = [];
  readonly #delay = new LoopDelay();
  /** The rules' own windows of what callbacks report since the last collection. */
  readonly #reader = new Reader("alarm rules");
  /** The HTTP tallies at the last evaluation, or as the engine was made. */
  #lastHttp = {
    total: httpServerOutcomes.requests,
    errors: httpServerOutcomes.failed,
  };
  /** When the first HTTP counts were read: how far back samples reach. */
  #httpFirstAt: number | undefined;
  /** Evaluations' HTTP counts, as far back as the longest HTTP rule looks. */
  readonly #httpSamples: HttpSample[] = [];
  /**
   * Per counter or histogram rule: each series' running totals at the last
   * evaluation (a counter's value; a histogram's count and sum).
   */
  readonly #totals = new Map<string, Map<string, readonly number[]>>();
  /** Per metric rule: which points it reads, decided when the rules were given. */
  readonly #matchers = new Map<
    AlarmRule,
    (point: Record<string, unknown>) => boolean
  >();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Set once the instance stopped: nothing is raised or cleared after. */
  #ended = false;

  /** How far back HTTP samples are kept: the longest HTTP rule's time. */
  readonly #httpKeptMs: number;
  /** The instruments the metric rules read. */
  readonly #metricNames: readonly string[];
  /** Whether one of them was found observable. */
  #observableRead = false;

  constructor(options: AlarmEngineOptions) {
    this.#o = options;
    for (const r of options.rules)
      if (r.kind === "metric")
        this.#matchers.set(r, attributeMatcher(r.attributes));
    const metricRules = options.rules.filter((r) => r.kind === "metric");
    this.#metricNames = [...new Set(metricRules.map((r) => r.metric))];
    this.#httpKeptMs = Math.max(
      options.intervalMs,
      ...options.rules.map((r) =>
        r.kind === "http_error_ratio" ? r.forMs : 0,
      ),
    );
  }

  start(): void {
    if (this.#o.rules.some((r) => r.kind === "event_loop_delay"))
      this.#delay.start();
    this.#timer = setInterval(() => {
      this.#running ??= this.evaluate().finally(
        () => (this.#running = undefined),
      );
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#delay.stop();
    await this.#running;
  }

  /**
   * Stops evaluating and clears every active alarm, its reason saying the
   * instance stopped (`why`: shutdown, SIGTERM). Notifications name the
   * instance, which never starts again: an alarm still open when it ends
   * would stay open at every receiver for good. Resolves once the clears
   * were delivered, or after `timeoutMs`, whichever comes first; until
   * then the process is kept alive for them. Their raises' sends still
   * under way are given up for them.
   */
  end(why: string, timeoutMs: number): Promise<void> {
    void this.stop();
    // An evaluation under way when the instance stopped raises nothing.
    this.#ended = true;
    const sends: Promise<void>[] = [];
    for (const s of this.#states.values()) {
      if (s.alarm === undefined) continue;
      // The clear goes after its raise in each notifier's queue: a raise
      // still being tried or sent again (up to 10 s a try, more between
      // tries) would hold it back past the budget, and the process would
      // end with the alarm open at the receiver. Given up, it lets the
      // clear go at once, sent when the receiver may have the raise.
      s.abandon.abort();
      sends.push(this.#clear(s.alarm, why));
    }
    this.#states.clear();
    if (sends.length === 0) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      Promise.all(sends).then(() => {}),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]).finally(() => clearTimeout(timer));
  }

  /** Whether a rule reads metrics by name (runtime metrics among them). */
  get readsMetrics(): boolean {
    return this.#o.rules.some((r) => r.kind === "metric");
  }

  /** Active alarms, newest first. */
  active(): Alarm[] {
    return [...this.#states.values()]
      .flatMap((s) => (s.alarm === undefined ? [] : [s.alarm]))
      .sort((a, b) => b.raisedAt.localeCompare(a.raisedAt));
  }

  /** Raised and cleared alarms, newest first (the last 100). */
  history(): Alarm[] {
    return [...this.#history].reverse();
  }

  /** Marks an active alarm as seen; false when there is no such alarm. */
  acknowledge(id: string): boolean {
    const alarm = this.active().find((a) => a.id === id);
    if (alarm === undefined) return false;
    if (!alarm.acknowledged) {
      alarm.acknowledged = true;
      alarm.acknowledgedAt = new Date().toISOString();
    }
    return true;
  }

  /** The health components as the last evaluation found them. */
  components(): readonly ComponentHealth[] {
    return this.#components;
  }

  #components: ComponentHealth[] = [];

  /** One evaluation of every rule; never throws. */
  async evaluate(): Promise<void> {
    try {
      await this.#evaluate();
    } catch (err) {
      // Run from a timer: a rejection here would end the process. The
      // next interval evaluates again.
      diag.warnCollapsed(
        "alarm-evaluation",
        `alarms could not be evaluated: ${messageOf(err)}`,
      );
    }
  }

  async #evaluate(): Promise<void> {
    const components = await health.run();
    this.#components = components;
    // Observable instruments (runtime metrics) hold what their callbacks
    // last reported, for whichever reader collected last: an export more
    // often than the evaluations left a rule its last window only, and a
    // stall in an earlier one raised nothing. The callbacks run for the
    // rules' own reader, whose windows cover the time since the last
    // evaluation, and the rules are judged before another reader's run
    // can report other values.
    if (this.#readsObservable())
      await this.#o.meterProvider.observeAndRead(this.#reader, () =>
        this.#judge(components),
      );
    else this.#judge(components);
  }

  /**
   * Whether a metric rule reads an observable instrument (one made so
   * far): a histogram or a counter holds its values without callbacks.
   */
  #readsObservable(): boolean {
    // Once true, for good: instruments are never taken away.
    if (this.#observableRead) return true;
    for (const name of this.#metricNames) {
      const a = this.#o.meterProvider.find(name);
      if (a !== undefined && "observable" in a && a.observable)
        return (this.#observableRead = true);
    }
    return false;
  }

  #judge(components: ComponentHealth[]): void {
    const now = this.#now();
    const loop = this.#loopDelays();
    const http = this.#httpOutcomes();
    if (http !== undefined) {
      this.#httpFirstAt ??= now;
      this.#httpSamples.push({ at: now, ...http });
    }
    while (
      this.#httpSamples.length > 0 &&
      this.#httpSamples[0]!.at <= now - this.#httpKeptMs
    )
      this.#httpSamples.shift();
    for (const rule of this.#o.rules) {
      let conditions: Condition[];
      try {
        conditions = this.#conditions(rule, loop, now, components);
      } catch (err) {
        diag.warnCollapsed(
          `alarm-rule-${rule.name}`,
          `alarm rule ${rule.name} could not be evaluated: ${messageOf(err)}`,
        );
        continue;
      }
      for (const c of conditions) this.#step(rule, c, now);
      if (rule.kind === "health") this.#forgetRemoved(rule, conditions);
    }
    this.#sendAgain(now);
  }

  /**
   * A component whose check was removed (a pool ended, a connection
   * closed for good) has no condition any more: its alarm is cleared, or
   * it would stay active with nothing left to clear it.
   */
  #forgetRemoved(rule: AlarmRule, conditions: Condition[]): void {
    const present = new Set(conditions.map((c) => c.source));
    for (const [key, s] of this.#states)
      if (s.rule === rule.name && !present.has(s.source)) {
        // At once, whatever the rule's clearFor: the check is gone for
        // good, not healthy for a moment.
        this.#states.delete(key);
        if (s.alarm !== undefined) void this.#clear(s.alarm);
      }
  }

  #loopDelays(): Record<number, number> {
    const d = this.#delay.take();
    return { 50: d.p50, 90: d.p90, 99: d.p99, 100: d.max };
  }

  /**
   * Per series of `points` that `rule` reads, what its running totals
   * (`totals` gives them, the first a count that only grows) added since
   * the rule's last evaluation: all of them for a series first seen, or
   * for one whose count went down (it was reset, and all of it is new).
   */
  #increases<P extends { attributes: Record<string, unknown> }>(
    rule: AlarmRule,
    points: readonly P[],
    totals: (point: P) => readonly number[],
  ): Array<readonly number[]> {
    const matches = this.#matchers.get(rule)!;
    const seen = this.#totals.get(rule.name);
    const next = new Map<string, readonly number[]>();
    const out: Array<readonly number[]> = [];
    for (const p of points) {
      if (!matches(p.attributes)) continue;
      const key = JSON.stringify(p.attributes);
      const now = totals(p);
      const before = seen?.get(key);
      next.set(key, now);
      out.push(
        before === undefined || now[0]! < before[0]!
          ? now
          : now.map((v, i) => v - before[i]!),
      );
    }
    this.#totals.set(rule.name, next);
    return out;
  }

  /**
   * Requests and failed requests since the last evaluation; undefined
   * until the first request. A request failed when it was answered 5xx,
   * or ended with no status sent; one answered 1xx-4xx that the client
   * then left (a stream it closed) did not. Read from the HTTP
   * instrumentation's tallies, not the request histogram: past its series
   * limit, requests of new routes land in its overflow series, which has
   * no status code, and their failures would go unseen.
   */
  #httpOutcomes(): { total: number; errors: number } | undefined {
    const total = httpServerOutcomes.requests;
    const errors = httpServerOutcomes.failed;
    const last = this.#lastHttp;
    if (this.#httpFirstAt === undefined && total === last.total)
      return undefined;
    this.#lastHttp = { total, errors };
    return { total: total - last.total, errors: errors - last.errors };
  }

  /**
   * Requests and failures within the rule's time (at least the last
   * evaluation), and whether the samples reach back that far. The whole
   * window is judged at once: the newest few requests of a steady error
   * rate are as often under the limit as over it, and judging them alone
   * raised and cleared the alarm by chance.
   */
  #httpWindow(
    rule: HttpErrorRatioRule,
    now: number,
  ): { total: number; errors: number; covered: boolean; windowMs: number } {
    let total = 0;
    let errors = 0;
    const windowMs = Math.max(rule.forMs, this.#o.intervalMs);
    const from = now - windowMs;
    for (let i = this.#httpSamples.length - 1; i >= 0; i--) {
      const s = this.#httpSamples[i]!;
      if (s.at <= from) break;
      total += s.total;
      errors += s.errors;
    }
    // The first sample holds the interval before it.
    const covered =
      this.#httpFirstAt !== undefined &&
      now - this.#httpFirstAt + this.#o.intervalMs >= windowMs;
    return { total, errors, covered, windowMs };
  }

  #conditions(
    rule: AlarmRule,
    loop: Record<number, number>,
    now: number,
    components: ComponentHealth[],
  ): Condition[] {
    const service = this.#o.service;
    switch (rule.kind) {
      case "event_loop_delay": {
        const v = loop[rule.percentile] ?? 0;
        const label = rule.percentile === 100 ? "max" : `p${rule.percentile}`;
        return [
          {
            source: service,
            holds: v > rule.aboveSeconds,
            reason: `event-loop delay ${label} ${(v * 1000).toFixed(0)} ms (limit ${(rule.aboveSeconds * 1000).toFixed(0)} ms)`,
          },
        ];
      }
      case "http_error_ratio": {
        const http = this.#httpWindow(rule, now);
        // No requests at all: nothing is failing. Fewer than the minimum:
        // too few to tell, and a raised alarm stays raised.
        if (http.total === 0)
          return [
            {
              source: service,
              holds: false,
              reason: `no requests in the last ${Math.round(http.windowMs / 1000)} s (limit ${(rule.above * 100).toFixed(1)}%)`,
            },
          ];
        if (http.total < rule.minRequests)
          return [{ source: service, holds: undefined, reason: "" }];
        const ratio = http.errors / http.total;
        const over = ratio > rule.above;
        // A window not yet the rule's time long cannot tell that failures
        // lasted for it; it can tell that they are under the limit.
        if (over && !http.covered)
          return [{ source: service, holds: undefined, reason: "" }];
        return [
          {
            source: service,
            holds: over,
            reason: `${(ratio * 100).toFixed(1)}% of ${http.total} requests failed (limit ${(rule.above * 100).toFixed(1)}%)`,
          },
        ];
      }
      case "metric": {
        const data = this.#o.meterProvider
          .find(rule.metric)
          ?.collect(Date.now());
        const values: number[] = [];
        const matches = this.#matchers.get(rule)!;
        const counter = data?.kind === "sum" && data.monotonic;
        if (counter) {
          // A counter counts by its increase since the last evaluation,
          // per series, as Prometheus' increase() does: its running total
          // passes any limit in time and would then hold it for good.
          for (const [added] of this.#increases(rule, data.points, (p) => [
            p.value,
          ]))
            values.push(added!);
        } else if (data !== undefined && data.kind !== "histogram") {
          for (const p of data.points)
            if (matches(p.attributes)) values.push(p.value);
        } else if (data !== undefined) {
          // A histogram counts by its mean since the last evaluation, per
          // series (e.g. a queue's publish-to-delivery latency).
          for (const [count, sum] of this.#increases(rule, data.points, (p) => [
            p.count,
            p.sum,
          ]))
            if (count! > 0) values.push(sum! / count!);
        }
        // A histogram with no new values says nothing of this interval: a
        // rule with a time is not reset by a quiet interval, and a raised
        // alarm stays until values show otherwise (a stuck consumer
        // delivers nothing at all).
        if (data?.kind === "histogram" && values.length === 0)
          return [{ source: service, holds: undefined, reason: "" }];
        // The highest series is held to `above`, the lowest to `below`: a
        // band's two limits are each broken by a different series.
        let max = -Infinity;
        let min = Infinity;
        for (const v of values) {
          if (v > max) max = v;
          if (v < min) min = v;
        }
        const over = rule.above !== undefined && max > rule.above;
        const under = rule.below !== undefined && min < rule.below;
        const is = counter ? "rose by" : "is";
        return [
          {
            source: service,
            holds: over || under,
            // No value at all (no such instrument yet, no series the
            // filter matches, a gauge's callback that gave none, a
            // counter's first reading): nothing is over or under.
            reason:
              values.length === 0
                ? `${rule.metric} has no value to judge (${rule.above !== undefined ? `limit ${rule.above}` : `floor ${rule.below}`})`
                : under && !over
                  ? `${rule.metric} ${is} ${min} (floor ${rule.below})`
                  : rule.above !== undefined
                    ? `${rule.metric} ${is} ${max} (limit ${rule.above})`
                    : `${rule.metric} ${is} ${min} (floor ${rule.below})`,
          },
        ];
      }
      case "health": {
        const prefix = rule.component.endsWith("*")
          ? rule.component.slice(0, -1)
          : undefined;
        const bad =
          rule.when === "degraded" ? ["degraded", "unhealthy"] : ["unhealthy"];
        return components
          .filter((c) =>
            prefix === undefined
              ? c.name === rule.component
              : c.name.startsWith(prefix),
          )
          .map((c) => ({
            source: c.name,
            holds: bad.includes(c.status),
            reason: `${c.name} is ${c.status}${c.reason ? `: ${c.reason}` : ""}`,
          }));
      }
    }
  }

  #step(rule: AlarmRule, c: Condition, now: number): void {
    const key = rule.kind === "health" ? `${rule.name}:${c.source}` : rule.name;
    let s = this.#states.get(key);
    if (this.#ended) return;
    // Too little to tell: nothing changes, but for a clear under way,
    // which goes on, as the condition last showed it no longer holds (a
    // fast request, then none, clears a slow-requests alarm).
    if (c.holds === undefined && s?.clearingSince === undefined) return;
    if (s === undefined)
      this.#states.set(
        key,
        (s = {
          rule: rule.name,
          source: c.source,
          since: undefined,
          clearingSince: undefined,
          alarm: undefined,
          raise: undefined,
          undelivered: new Map(),
          abandon: new AbortController(),
        }),
      );
    // An error ratio is judged over the rule's time already.
    const forMs = rule.kind === "http_error_ratio" ? 0 : rule.forMs;
    if (s.alarm !== undefined && c.holds !== undefined && c.reason !== "") {
      s.alarm.latestReason = c.reason;
      s.alarm.latestAt = new Date().toISOString();
    }
    if (c.holds) {
      s.since ??= now;
      s.clearingSince = undefined;
      if (s.alarm === undefined && now - s.since >= forMs) {
        const raisedAt = new Date().toISOString();
        s.alarm = {
          id: key,
          name: rule.name,
          severity: rule.severity,
          source: c.source,
          description: rule.description ?? rule.name,
          state: "active",
          reason: c.reason,
          raisedAt,
          latestReason: c.reason,
          latestAt: raisedAt,
          acknowledged: false,
        };
        this.#record(s.alarm);
        // Raised again: the new raise is what the receiver needs now.
        this.#clears.delete(key);
        const state = s;
        state.raise = this.#event("raise", s.alarm);
        void this.#emit(state.raise, s.alarm, s.abandon.signal).then(
          (failed) => {
            for (const n of failed) state.undelivered.set(n, this.#now());
          },
        );
      }
      return;
    }
    // The condition no longer holds: forget what was not raised; clear
    // what was once it has not held for the rule's clearFor.
    if (s.alarm !== undefined) {
      s.clearingSince ??= now;
      const clearForMs =
        rule.clearForMs ?? CLEAR_FOR_INTERVALS * this.#o.intervalMs;
      if (now - s.clearingSince < clearForMs) return;
      void this.#clear(s.alarm);
    }
    this.#states.delete(key);
  }

  /** Clears a raised alarm, the instance having stopped when `stopped` says why; resolves once sent. */
  #clear(alarm: Alarm, stopped?: string): Promise<void> {
    alarm.state = "cleared";
    alarm.clearedAt = new Date().toISOString();
    if (stopped !== undefined)
      alarm.reason = `the instance stopped (${stopped})`;
    const event = this.#event("clear", alarm, stopped !== undefined);
    // As the instance ends there is no later evaluation to send it again.
    if (stopped !== undefined) return this.#emit(event, alarm).then(() => {});
    const owed: UndeliveredClear = { event, undelivered: new Map() };
    this.#clears.set(alarm.id, owed);
    return this.#emit(event, alarm).then((failed) => {
      if (this.#clears.get(alarm.id) !== owed) return;
      for (const n of failed) owed.undelivered.set(n, this.#now());
      if (owed.undelivered.size === 0) this.#clears.delete(alarm.id);
    });
  }

  /**
   * Sends an active alarm's raise again to each notifier that could not
   * be given it, once its retries were spent, and a cleared alarm's clear
   * to each that has the raise and could not be given the clear: at most
   * once a minute per notifier, one try each, the same event (its eventId,
   * PagerDuty's dedup key) so a receiver that did get an earlier try knows
   * a copy.
   */
  #sendAgain(now: number): void {
    for (const [id, owed] of this.#clears)
      for (const [n, failedAt] of owed.undelivered) {
        if (now - failedAt < SEND_AGAIN_AFTER_MS) continue;
        owed.undelivered.set(n, Infinity);
        const wanted = () => this.#clears.get(id) === owed;
        void sendAgain(n, owed.event, wanted, NEVER).then((delivered) => {
          if (!wanted()) return;
          if (!delivered) owed.undelivered.set(n, this.#now());
          else {
            owed.undelivered.delete(n);
            if (owed.undelivered.size === 0) this.#clears.delete(id);
          }
        });
      }
    for (const s of this.#states.values()) {
      const { alarm, raise } = s;
      if (alarm === undefined || raise === undefined) continue;
      for (const [n, failedAt] of s.undelivered) {
        if (now - failedAt < SEND_AGAIN_AFTER_MS) continue;
        s.undelivered.delete(n);
        void sendAgain(
          n,
          raise,
          () => alarm.state === "active",
          s.abandon.signal,
        ).then((delivered) => {
          if (!delivered && alarm.state === "active")
            s.undelivered.set(n, this.#now());
        });
      }
    }
  }

  #now(): number {
    return this.#o.clock?.() ?? performance.now();
  }

  #record(alarm: Alarm): void {
    this.#history.push(alarm);
    if (this.#history.length > HISTORY) this.#history.shift();
  }

  /** A raise's or clear's notification. */
  #event(
    action: "raise" | "clear",
    alarm: Alarm,
    instanceStopped = false,
  ): AlarmEvent {
    return {
      action,
      eventId: randomUUID(),
      service: this.#o.service,
      instance: this.#o.instance,
      ...(instanceStopped ? { instanceStopped } : {}),
      alarm: {
        id: alarm.id,
        name: alarm.name,
        severity: action === "raise" ? alarm.severity : "cleared",
        source: alarm.source,
        description: alarm.description,
        reason: alarm.reason,
        raisedAt: alarm.raisedAt,
        ...(alarm.clearedAt ? { clearedAt: alarm.clearedAt } : {}),
      },
    };
  }

  /**
   * Writes, logs and sends a raise or clear; resolves once it was sent, to
   * the notifiers a raise could not be delivered to. `abandon` gives up
   * its sends.
   */
  #emit(
    event: AlarmEvent,
    alarm: Alarm,
    abandon?: AbortSignal,
  ): Promise<Notifier[]> {
    const { action, instanceStopped } = event;
    const message =
      action === "raise"
        ? `alarm raised: ${alarm.name} [${alarm.severity}] ${alarm.reason}`
        : `alarm cleared: ${alarm.name} (${alarm.source})${instanceStopped ? `: ${alarm.reason}` : ""}`;
    diag.warn(message);
    const severityNumber =
      action === "clear" ? 9 : alarm.severity === "critical" ? 17 : 13;
    this.#o.log(
      JSON.stringify({
        time: Date.now(),
        msg: message,
        "event.name": action === "raise" ? "alarm.raised" : "alarm.cleared",
        "alarm.id": alarm.id,
        "alarm.name": alarm.name,
        "alarm.severity": event.alarm.severity,
        "alarm.source": alarm.source,
        "alarm.reason": alarm.reason,
      }),
      severityNumber,
      action === "clear" ? "info" : severityNumber === 17 ? "error" : "warn",
    );
    return notifyAll(this.#o.notifiers, event, abandon);
  }
}
