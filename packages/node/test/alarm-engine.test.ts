import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout } from "node:timers/promises";
import { health, httpServerOutcomes } from "@threadline/core";
import { waitFor } from "@threadline/test-support";
import { AlarmEngine, type AlarmEngineOptions } from "../src/alarms/engine.ts";
import type { AlarmEvent } from "../src/alarms/notifiers.ts";
import { DEFAULT_RULES, type AlarmRule } from "../src/alarms/rules.ts";
import { MeterProvider, Reader } from "../src/metrics/meter-provider.ts";
import { registerRuntimeMetrics } from "../src/metrics/runtime.ts";

/** An engine the test evaluates by hand, with these options where it names none. */
function engineWith(
  options: Pick<AlarmEngineOptions, "rules"> & Partial<AlarmEngineOptions>,
): AlarmEngine {
  return new AlarmEngine({
    intervalMs: 60_000,
    service: "s",
    instance: "i-1",
    meterProvider: new MeterProvider(),
    notifiers: [],
    log: () => {},
    ...options,
  });
}

/** A request the HTTP instrumentation counts, as it ends. */
function request(failed: boolean): void {
  httpServerOutcomes.requests++;
  if (failed) httpServerOutcomes.failed++;
}

it("judges the HTTP error ratio over the rule's time, not one evaluation", async () => {
  const rule: AlarmRule = {
    name: "http_5xx_ratio",
    kind: "http_error_ratio",
    above: 0.05,
    minRequests: 20,
    forMs: 0,
    severity: "major",
  };
  const engine = engineWith({
    rules: [rule],
    // Evaluated by hand; the interval is how far back a rule with no time looks.
    intervalMs: 60_000,
    service: "quiet",
  });
  const evaluation = async (failures: number) => {
    for (let i = 0; i < failures; i++) request(true);
    await engine.evaluate();
    return engine.active().map((a) => a.name);
  };
  // A quiet service where every request fails: three per evaluation.
  for (let i = 0; i < 6; i++) assert.deepEqual(await evaluation(3), []);
  assert.deepEqual(await evaluation(3), ["http_5xx_ratio"], "21 of 21 failed");
  // Still failing, still few per evaluation: the alarm stays.
  assert.deepEqual(await evaluation(2), ["http_5xx_ratio"]);
  assert.deepEqual(await evaluation(0), ["http_5xx_ratio"]);
  await engine.stop();
});

it("judges a steady error rate over the rule's whole time: raised once, held, cleared once it is over", async () => {
  let now = 0;
  const engine = engineWith({
    // The default rule at the default interval.
    rules: [
      {
        name: "http_5xx_ratio",
        kind: "http_error_ratio",
        above: 0.05,
        minRequests: 20,
        forMs: 120_000,
        severity: "major",
      },
    ],
    intervalMs: 10_000,
    service: "steady",
    clock: () => now,
  });
  // 100 requests per evaluation; failures vary around 7.8% as random ones
  // would, some evaluations under 5%.
  const failures = [12, 2, 9, 4, 11, 3, 8, 10, 5, 15, 6, 9];
  const evaluation = async (failed: number) => {
    for (let i = 0; i < 100; i++) request(i < failed);
    now += 10_000;
    await engine.evaluate();
    return engine.active().length === 1;
  };
  const seen: boolean[] = [];
  // Seven minutes of it.
  for (let i = 0; i < 42; i++)
    seen.push(await evaluation(failures[i % failures.length]!));
  // Raised once two minutes of requests are in sight, and held.
  assert.deepEqual(
    seen,
    Array.from({ length: 42 }, (_, i) => i >= 11),
  );
  // Then 1% fail: the window's ratio falls under 5% as the failures leave
  // it, and the alarm is cleared then, once.
  const after: boolean[] = [];
  for (let i = 0; i < 14; i++) after.push(await evaluation(1));
  const cleared = after.indexOf(false);
  assert.ok(cleared > 0 && cleared < 12, `cleared at ${cleared}`);
  assert.ok(
    after.slice(cleared).every((a) => !a),
    after.join(" "),
  );
  assert.equal(
    engine.history().length,
    1,
    "one alarm, raised and cleared once",
  );
  await engine.stop();
});

it("raises no error-ratio alarm for a burst shorter than the rule's time when the window's ratio stays under the limit", async () => {
  let now = 0;
  const engine = engineWith({
    rules: [
      {
        name: "http_5xx_ratio",
        kind: "http_error_ratio",
        above: 0.05,
        minRequests: 20,
        forMs: 60_000,
        severity: "major",
      },
    ],
    intervalMs: 10_000,
    service: "busy",
    clock: () => now,
  });
  const evaluation = async (failed: number) => {
    for (let i = 0; i < 100; i++) request(i < failed);
    now += 10_000;
    await engine.evaluate();
    return engine.active().length;
  };
  // One bad evaluation in a healthy minute: 20 of 600, 3.3%.
  for (const failed of [0, 0, 0, 20, 0, 0, 0, 0, 0, 0])
    assert.equal(await evaluation(failed), 0);
  // Then 30% fail: 30 of the minute's 600 is 5%, not over it; 60 is.
  const bad = [];
  for (let i = 0; i < 6; i++) bad.push(await evaluation(30));
  assert.deepEqual(bad, [0, 1, 1, 1, 1, 1]);
  await engine.stop();
});

it("judges a rule on the event loop's delay over the time since its last evaluation, exports in between or not", async () => {
  const meterProvider = new MeterProvider();
  const stopRuntime = registerRuntimeMetrics(meterProvider.getMeter("runtime"));
  const otlp = new Reader("OTLP export");
  const exportedMax = async (): Promise<number> => {
    const m = (await meterProvider.collect("cumulative", otlp)).find(
      (m) => m.name === "nodejs.eventloop.delay",
    );
    const p = m?.kind === "gauge" ? m.points : [];
    return (
      p.find((p) => p.attributes["nodejs.eventloop.delay.percentile"] === "max")
        ?.value ?? 0
    );
  };
  const engine = engineWith({
    rules: [
      {
        name: "loop_stall",
        kind: "metric",
        metric: "nodejs.eventloop.delay",
        attributes: { "nodejs.eventloop.delay.percentile": "max" },
        above: 0.3,
        forMs: 0,
        clearForMs: 0,
        severity: "major",
      },
    ],
    meterProvider,
    intervalMs: 3_000,
  });
  try {
    await setTimeout(100);
    await exportedMax();
    await engine.evaluate();
    assert.deepEqual(engine.active(), []);
    // A stall, then an export, then a quiet export, then the evaluation.
    const from = performance.now();
    while (performance.now() - from < 400);
    await setTimeout(100);
    const stalled = await exportedMax();
    assert.ok(stalled >= 0.3, `exported max ${stalled}`);
    await setTimeout(100);
    await exportedMax();
    await engine.evaluate();
    assert.deepEqual(
      engine.active().map((a) => a.name),
      ["loop_stall"],
      "the stall before the last export raised the alarm",
    );
    // A stall the evaluation saw first is the next export's too.
    const again = performance.now();
    while (performance.now() - again < 400);
    await setTimeout(100);
    await engine.evaluate();
    const next = await exportedMax();
    assert.ok(next >= 0.3, `exported max ${next}`);
  } finally {
    await engine.stop();
    stopRuntime();
  }
});

it("runs no observable callback for metric rules that read none", async () => {
  const meterProvider = new MeterProvider();
  const meter = meterProvider.getMeter("test");
  let runs = 0;
  meter
    .createObservableGauge("nodejs.eventloop.utilization")
    .addCallback((r) => {
      runs++;
      r.observe(0.1);
    });
  const latency = meter.createHistogram(
    "threadline.messaging.delivery.latency",
  );
  const engine = engineWith({
    rules: [
      {
        name: "orders_queue_slow",
        kind: "metric",
        metric: "threadline.messaging.delivery.latency",
        above: 5,
        forMs: 0,
        severity: "major",
      },
    ],
    meterProvider,
  });
  await engine.evaluate();
  latency.record(8);
  await engine.evaluate();
  await engine.stop();
  // A histogram holds its values itself; a run of the callbacks would
  // have taken what the runtime metrics measure since their last run.
  assert.equal(runs, 0);
  assert.deepEqual(
    engine.active().map((a) => a.name),
    ["orders_queue_slow"],
  );
});

it("clears a component's alarm when its health check is removed", async () => {
  const events: AlarmEvent[] = [];
  const engine = engineWith({
    rules: [
      {
        name: "dependency_unhealthy",
        kind: "health",
        component: "cache-*",
        when: "unhealthy",
        forMs: 0,
        severity: "critical",
      },
    ],
    notifiers: [{ name: "recorded", send: async (e) => void events.push(e) }],
  });
  const remove = health.register("cache-a", () => ({
    status: "unhealthy",
    reason: "connection refused",
  }));
  await engine.evaluate();
  assert.deepEqual(
    engine.active().map((a) => a.id),
    ["dependency_unhealthy:cache-a"],
  );
  // The cache client is closed for good: its check goes with it.
  remove();
  await engine.evaluate();
  await engine.evaluate();
  assert.deepEqual(engine.active(), []);
  assert.deepEqual(
    events.map((e) => `${e.action} ${e.alarm.source}`),
    ["raise cache-a", "clear cache-a"],
  );
  await engine.stop();
});

it("raises a histogram rule with a time when values come every other interval", async () => {
  const meterProvider = new MeterProvider();
  const latency = meterProvider
    .getMeter("test")
    .createHistogram("threadline.messaging.delivery.latency");
  const engine = engineWith({
    rules: [
      {
        name: "orders_queue_slow",
        kind: "metric",
        metric: "threadline.messaging.delivery.latency",
        above: 5,
        forMs: 450,
        clearForMs: 0,
        severity: "major",
      },
    ],
    intervalMs: 150,
    meterProvider,
  });
  // A batch consumer: deliveries, all slow, in every other evaluation.
  const evaluation = async (delivered: boolean) => {
    if (delivered) latency.record(8);
    await engine.evaluate();
    await setTimeout(150);
    return engine.active().map((a) => a.name);
  };
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(await evaluation(true), []);
    assert.deepEqual(await evaluation(false), []);
  }
  // 600 ms of slow deliveries, more than the rule's 450.
  assert.deepEqual(await evaluation(true), ["orders_queue_slow"]);
  // Nothing delivered says nothing: the alarm stays until deliveries are fast.
  assert.deepEqual(await evaluation(false), ["orders_queue_slow"]);
  latency.record(0.1);
  assert.deepEqual(await evaluation(false), []);
  await engine.stop();
});

it("holds the lowest series to a band's floor, not only the highest", async () => {
  const meterProvider = new MeterProvider();
  meterProvider
    .getMeter("test")
    .createObservableGauge("pool.connections.idle")
    .addCallback((result) => {
      result.observe(1, { pool: "orders" });
      result.observe(50, { pool: "reports" });
    });
  const engine = engineWith({
    rules: [
      {
        name: "pool_idle_out_of_band",
        kind: "metric",
        metric: "pool.connections.idle",
        above: 100,
        below: 2,
        forMs: 0,
        severity: "minor",
      },
    ],
    meterProvider,
  });
  await engine.evaluate();
  assert.deepEqual(
    engine.active().map((a) => [a.name, a.reason]),
    [["pool_idle_out_of_band", "pool.connections.idle is 1 (floor 2)"]],
  );
  await engine.stop();
});

/** A meter provider whose gauge queue.depth observes what `depth` gives, if anything. */
function queueDepth(depth: () => number | undefined): MeterProvider {
  const meterProvider = new MeterProvider();
  meterProvider
    .getMeter("test")
    .createObservableGauge("queue.depth")
    .addCallback((result) => {
      const d = depth();
      if (d !== undefined) result.observe(d);
    });
  return meterProvider;
}

/** queue.depth above 1 at once, cleared once under it for `clearForMs`. */
const queueBacklog = (clearForMs: number): AlarmRule => ({
  name: "queue_backlog",
  kind: "metric",
  metric: "queue.depth",
  above: 1,
  forMs: 0,
  clearForMs,
  severity: "minor",
});

it("says how an active alarm's condition stands at each evaluation, beside the reason it was raised for", async () => {
  let depth = 5;
  let now = 0;
  const meterProvider = queueDepth(() => depth);
  const engine = engineWith({
    rules: [queueBacklog(20_000)],
    meterProvider,
    intervalMs: 10_000,
    clock: () => now,
  });
  const listed = async () => {
    await engine.evaluate();
    now += 10_000;
    return engine.active().map((a) => [a.reason, a.latestReason]);
  };
  assert.deepEqual(await listed(), [
    ["queue.depth is 5 (limit 1)", "queue.depth is 5 (limit 1)"],
  ]);
  depth = 9;
  assert.deepEqual(await listed(), [
    ["queue.depth is 5 (limit 1)", "queue.depth is 9 (limit 1)"],
  ]);
  // Under the limit, not yet for clearFor: still active, and it says so.
  depth = 0;
  assert.deepEqual(await listed(), [
    ["queue.depth is 5 (limit 1)", "queue.depth is 0 (limit 1)"],
  ]);
  const [alarm] = engine.active();
  assert.ok(Date.parse(alarm!.latestAt) >= Date.parse(alarm!.raisedAt));
  await listed();
  assert.deepEqual(await listed(), []);
  assert.equal(engine.history()[0]!.latestReason, "queue.depth is 0 (limit 1)");
  await engine.stop();
});

it("says why an alarm is clearing when its metric has no value, or its service no requests", async () => {
  let now = 0;
  let depth: number | undefined = 5;
  const meterProvider = queueDepth(() => depth);
  const engine = engineWith({
    rules: [
      queueBacklog(60_000),
      {
        name: "http_5xx_ratio",
        kind: "http_error_ratio",
        above: 0.05,
        minRequests: 1,
        forMs: 0,
        severity: "major",
      },
    ],
    meterProvider,
    intervalMs: 10_000,
    clock: () => now,
  });
  const latest = async () => {
    now += 10_000;
    await engine.evaluate();
    return Object.fromEntries(
      engine.active().map((a) => [a.name, a.latestReason]),
    );
  };
  for (let i = 0; i < 4; i++) request(true);
  assert.deepEqual(await latest(), {
    queue_backlog: "queue.depth is 5 (limit 1)",
    http_5xx_ratio: "100.0% of 4 requests failed (limit 5.0%)",
  });
  depth = undefined;
  assert.deepEqual(await latest(), {
    queue_backlog: "queue.depth has no value to judge (limit 1)",
    http_5xx_ratio: "no requests in the last 10 s (limit 5.0%)",
  });
  await engine.stop();
});

it("keeps evaluating when a check and a callback throw what cannot even be described", async () => {
  /** An error whose message cannot be read: reading it throws. */
  const unreadable = () =>
    Object.defineProperty(new Error(), "message", {
      get() {
        throw new Error("the job store is closed");
      },
    });
  const unregister = health.register("jobs-store", () => {
    throw unreadable();
  });
  const meterProvider = new MeterProvider();
  let calls = 0;
  meterProvider
    .getMeter("test")
    .createObservableGauge("jobs.waiting")
    .addCallback(async (result) => {
      if (++calls === 1) throw unreadable();
      result.observe(500);
    });
  const engine = engineWith({
    rules: [
      {
        name: "store_down",
        kind: "health",
        component: "jobs-*",
        when: "unhealthy",
        forMs: 0,
        severity: "critical",
      },
      {
        name: "jobs_piling_up",
        kind: "metric",
        metric: "jobs.waiting",
        above: 100,
        forMs: 0,
        severity: "major",
      },
    ],
    intervalMs: 50,
    meterProvider,
  });
  try {
    engine.start();
    await waitFor(() => engine.active().length === 2, {
      what: "both alarms, the second from a later evaluation",
    });
    const down = engine.active().find((a) => a.name === "store_down");
    assert.match(
      down?.reason ?? "",
      /jobs-store is unhealthy: an error without a readable message/,
    );
  } finally {
    await engine.stop();
    unregister();
  }
});

it("raises a flapping dependency's alarm once and clears it only once it has stayed healthy for the rule's clearFor", async () => {
  const events: AlarmEvent[] = [];
  let now = 0;
  const engine = engineWith({
    rules: [
      {
        name: "cache_down",
        kind: "health",
        component: "flappy-cache",
        when: "unhealthy",
        forMs: 0,
        clearForMs: 30_000,
        severity: "critical",
      },
    ],
    intervalMs: 10_000,
    clock: () => now,
    notifiers: [{ name: "recorded", send: async (e) => void events.push(e) }],
  });
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("flappy-cache", () => ({ status }));
  const evaluation = async (next: typeof status) => {
    status = next;
    now += 10_000;
    await engine.evaluate();
    return engine.active().length;
  };
  try {
    // Every other check fails, for five minutes.
    const flapping: number[] = [];
    for (let i = 0; i < 31; i++)
      flapping.push(await evaluation(i % 2 ? "healthy" : "unhealthy"));
    assert.deepEqual(flapping, Array(31).fill(1), "raised, and held");
    // Healthy from now on: cleared once it has been for 30 s.
    const healthy: number[] = [];
    for (let i = 0; i < 5; i++) healthy.push(await evaluation("healthy"));
    assert.deepEqual(healthy, [1, 1, 1, 0, 0]);
    await setTimeout(10);
    assert.deepEqual(
      events.map((e) => e.action),
      ["raise", "clear"],
    );
  } finally {
    remove();
    await engine.stop();
  }
});

it("holds the default health rules' alarms through a flap at the default interval, and clears them 30 s after it ends", async () => {
  const events: AlarmEvent[] = [];
  let now = 0;
  const engine = engineWith({
    rules: DEFAULT_RULES,
    intervalMs: 10_000,
    clock: () => now,
    notifiers: [{ name: "recorded", send: async (e) => void events.push(e) }],
  });
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("flappy-db", () => ({ status }));
  const evaluation = async (next: typeof status) => {
    status = next;
    now += 10_000;
    await engine.evaluate();
    return engine.active().filter((a) => a.source === "flappy-db").length;
  };
  try {
    const seen: number[] = [];
    for (let i = 0; i < 13; i++)
      seen.push(await evaluation(i % 2 ? "healthy" : "unhealthy"));
    for (let i = 0; i < 5; i++) seen.push(await evaluation("healthy"));
    assert.deepEqual(seen, [...Array(16).fill(1), 0, 0]);
    await setTimeout(10);
    assert.deepEqual(
      events.filter((e) => e.alarm.source === "flappy-db").map((e) => e.action),
      ["raise", "clear"],
    );
  } finally {
    remove();
    await engine.stop();
  }
});

it("clears a histogram rule's alarm once clearFor has passed since a fast value, quiet evaluations after it", async () => {
  const meterProvider = new MeterProvider();
  const latency = meterProvider
    .getMeter("test")
    .createHistogram("threadline.messaging.delivery.latency");
  let now = 0;
  const engine = engineWith({
    rules: [
      {
        name: "orders_queue_slow",
        kind: "metric",
        metric: "threadline.messaging.delivery.latency",
        above: 5,
        forMs: 0,
        clearForMs: 30_000,
        severity: "major",
      },
    ],
    intervalMs: 10_000,
    meterProvider,
    clock: () => now,
  });
  const evaluation = async (value?: number) => {
    if (value !== undefined) latency.record(value);
    now += 10_000;
    await engine.evaluate();
    return engine.active().length;
  };
  const seen = [await evaluation(8), await evaluation(), await evaluation(0.1)];
  for (let i = 0; i < 4; i++) seen.push(await evaluation());
  assert.deepEqual(seen, [1, 1, 1, 1, 1, 0, 0]);
  await engine.stop();
});

it("judges a counter by its increase since the last evaluation, not its running total, and an up-down counter by its value", async () => {
  const meterProvider = new MeterProvider();
  const meter = meterProvider.getMeter("test");
  const errors = meter.createCounter("errors.total");
  const depth = meter.createUpDownCounter("queue.depth");
  let now = 0;
  const engine = engineWith({
    rules: [
      {
        name: "errors_rising",
        kind: "metric",
        metric: "errors.total",
        above: 10,
        forMs: 0,
        clearForMs: 0,
        severity: "major",
      },
      {
        name: "queue_deep",
        kind: "metric",
        metric: "queue.depth",
        above: 10,
        forMs: 0,
        clearForMs: 0,
        severity: "minor",
      },
    ],
    intervalMs: 10_000,
    meterProvider,
    clock: () => now,
  });
  const evaluation = async (newErrors: number) => {
    errors.add(newErrors, { "error.type": "timeout" });
    now += 10_000;
    await engine.evaluate();
    return engine
      .active()
      .map((a) => a.name)
      .join(",");
  };
  try {
    // A slow steady rise: 5 an interval, its total soon past 10.
    const steady: string[] = [];
    for (let i = 0; i < 6; i++) steady.push(await evaluation(5));
    assert.deepEqual(steady, Array(6).fill(""));
    // A burst raises it; a quiet interval, an increase of 0, clears it.
    assert.equal(await evaluation(20), "errors_rising");
    assert.equal(
      engine.active()[0]!.reason,
      "errors.total rose by 20 (limit 10)",
    );
    assert.equal(await evaluation(0), "");
    // An up-down counter is held to its value, which stays over the limit.
    depth.add(15);
    assert.equal(await evaluation(0), "queue_deep");
    assert.equal(await evaluation(0), "queue_deep");
    depth.add(-10);
    assert.equal(await evaluation(0), "");
  } finally {
    await engine.stop();
  }
});

it("judges an observable counter by its increase, the whole value at the first evaluation and after a reset", async () => {
  const meterProvider = new MeterProvider();
  let total = 0;
  meterProvider
    .getMeter("test")
    .createObservableCounter("jobs.failed")
    .addCallback((r) => r.observe(total, { queue: "mail" }));
  const engine = engineWith({
    rules: [
      {
        name: "jobs_failing",
        kind: "metric",
        metric: "jobs.failed",
        above: 10,
        forMs: 0,
        clearForMs: 0,
        severity: "major",
      },
    ],
    meterProvider,
  });
  const evaluation = async (value: number) => {
    total = value;
    await engine.evaluate();
    return engine.active().length;
  };
  try {
    // Since the series started: 12 of them.
    assert.equal(await evaluation(12), 1);
    assert.equal(await evaluation(15), 0);
    assert.equal(await evaluation(400), 1);
    assert.equal(await evaluation(405), 0);
    // The process counting them restarted: all of 3 is new, and of 30 then 27.
    assert.equal(await evaluation(3), 0);
    assert.equal(await evaluation(30), 1);
  } finally {
    await engine.stop();
  }
});
