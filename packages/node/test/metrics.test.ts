import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ROOT_CONTEXT, trace, type Attributes } from "@opentelemetry/api";
import { diag, SECONDS_BUCKETS } from "@threadline/core";
import type {
  HistogramPointData,
  MetricData,
  NumberPointData,
} from "@threadline/otlp";
import {
  MeterProvider,
  Reader,
  countedSince,
  readerOf,
} from "../src/metrics/meter-provider.ts";
import {
  CARDINALITY_LIMIT,
  attributesKey,
} from "../src/metrics/instruments.ts";

/** Runs `fn` with Threadline's warnings collected in `lines` instead of printed. */
async function withWarnings(
  fn: (lines: string[]) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  diag.reset();
  diag.setSink((_level, message) => lines.push(message));
  try {
    await fn(lines);
  } finally {
    diag.setSink(undefined);
    diag.reset();
  }
}

describe("metrics", () => {
  it("aggregates per attribute set, whatever the key order", async () => {
    const p = new MeterProvider();
    const c = p.getMeter("m").createCounter("orders");
    c.add(1, { status: "paid", sku: "book" });
    c.add(2, { sku: "book", status: "paid" });
    c.add(-5, { sku: "book", status: "paid" }); // counters ignore negatives
    c.add(1);
    const [m] = await p.collect();
    assert.equal(m!.kind, "sum");
    assert.deepEqual(
      m!.points.map((x) => [x.attributes, "value" in x ? x.value : undefined]),
      [
        [{ status: "paid", sku: "book" }, 3],
        [{}, 1],
      ],
    );
    assert.equal(
      attributesKey({ a: 1, b: "x" }),
      attributesKey({ b: "x", a: 1 }),
    );
  });

  it("finds one series for a frozen attribute object and an equal plain one", async () => {
    const p = new MeterProvider();
    const c = p.getMeter("m").createCounter("sent");
    const paid = Object.freeze({ status: "paid", sku: "book" });
    const unpaid = Object.freeze({ status: "unpaid", sku: "book" });
    c.add(1, paid);
    c.add(1, paid);
    c.add(1, { sku: "book", status: "paid" });
    c.add(1, unpaid);
    c.add(1, paid);
    const [m] = await p.collect();
    assert.deepEqual(
      m!.points.map((x) => [x.attributes, "value" in x ? x.value : undefined]),
      [
        [{ status: "paid", sku: "book" }, 4],
        [{ status: "unpaid", sku: "book" }, 1],
      ],
    );
  });

  it("tells values of different types apart, and counts array-valued sets", async () => {
    const p = new MeterProvider();
    const c = p.getMeter("m").createCounter("answers");
    for (let i = 0; i < 3; i++) {
      c.add(1, { code: 200 });
      c.add(1, { code: "200" });
      c.add(1, { code: 200, tags: ["a", "b"] });
      c.add(1, { tags: ["a", "b"], code: 200 });
    }
    const [m] = await p.collect();
    const values = m!.points.map((x) => [
      x.attributes,
      "value" in x ? x.value : undefined,
    ]);
    assert.deepEqual(values, [
      [{ code: 200 }, 3],
      [{ code: "200" }, 3],
      [{ code: 200, tags: ["a", "b"] }, 6],
    ]);
  });

  it("records a measurement without an attribute value that is none, warning once per instrument", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider();
      const meter = p.getMeter("m");
      const c = meter.createCounter("orders");
      const h = meter.createHistogram("latency", { unit: "s" });
      const circular: Record<string, unknown> = {};
      circular["self"] = circular;
      const bad = [
        7n,
        circular,
        [1n],
        [circular],
        () => 1,
        Symbol("s"),
      ] as unknown as string[];
      for (const value of bad) {
        c.add(1, { shard: value, queue: "emails" });
        c.add(1, Object.freeze({ queue: "emails", shard: value }));
        h.record(0.1, { shard: value });
      }
      meter
        .createObservableCounter("jobs.done")
        .addCallback((r) =>
          r.observe(5, { shard: 7n as unknown as number, queue: "emails" }),
        );
      const byName = Object.fromEntries(
        (await p.collect()).map((m) => [
          m.name,
          m.points.map((x) => [x.attributes, "value" in x ? x.value : x.count]),
        ]),
      );
      assert.deepEqual(byName, {
        orders: [[{ queue: "emails" }, 2 * bad.length]],
        latency: [[{}, bad.length]],
        "jobs.done": [[{ queue: "emails" }, 5]],
      });
      assert.deepEqual(
        lines.map(
          (l) => /^metric (\S+) was given an attribute value/.exec(l)?.[1],
        ),
        ["orders", "latency", "jobs.done"],
      );
    });
  });

  it("places histogram measurements in buckets and keeps exemplars from sampled spans", async () => {
    const p = new MeterProvider();
    const h = p.getMeter("m").createHistogram("latency", {
      unit: "s",
      advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
    });
    const ctx = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
    });
    h.record(0.003);
    h.record(0.2, {}, ctx);
    h.record(12);
    const [m] = await p.collect();
    assert.equal(m!.kind, "histogram");
    const point = m!.points[0]! as HistogramPointData;
    assert.equal(point.count, 3);
    assert.equal(point.min, 0.003);
    assert.equal(point.max, 12);
    assert.equal(point.counts[0], 1);
    assert.equal(point.counts[point.bounds.indexOf(0.25)], 1);
    assert.equal(point.counts.at(-1), 1);
    assert.deepEqual(
      point.exemplars?.map((e) => e.traceId),
      ["0af7651916cd43dd8448eb211c80319c"],
    );
  });

  it("leaves a negative histogram measurement out, warning once per instrument", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider();
      const meter = p.getMeter("jobs");
      const wait = meter.createHistogram("jobs.queue.wait", { unit: "s" });
      const size = meter.createHistogram("jobs.batch.size");
      wait.record(2);
      size.record(3);
      const points = async () =>
        Object.fromEntries(
          (await p.collect()).map((m) => {
            const x = m.points[0] as HistogramPointData;
            return [
              m.name,
              [m.points.length, x.count, x.sum, x.min, x.max, x.counts[0]],
            ];
          }),
        );
      const before = await points();
      // A wait measured against a clock that runs ahead of this host's.
      wait.record(-1.5);
      wait.record(-0.2, { queue: "emails" });
      size.record(-1);
      assert.deepEqual(await points(), before);
      assert.deepEqual(before, {
        "jobs.queue.wait": [1, 1, 2, 2, 2, 0],
        "jobs.batch.size": [1, 1, 3, 3, 3, 0],
      });
      assert.deepEqual(
        lines.map(
          (l) => /^metric (\S+) was given a negative value/.exec(l)?.[1],
        ),
        ["jobs.queue.wait", "jobs.batch.size"],
      );
    });
  });

  it("leaves out what is no finite number, and a counter's negative increments, saying so once per instrument and reason", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider();
      const meter = p.getMeter("jobs");
      const done = meter.createCounter("jobs.done");
      const ratio = meter.createGauge("jobs.hit.ratio");
      const wait = meter.createHistogram("jobs.wait");
      let observed = 0 / 0;
      meter
        .createObservableGauge("jobs.lag")
        .addCallback((r) => r.observe(observed));
      let total = -7;
      meter
        .createObservableCounter("jobs.total")
        .addCallback((r) => r.observe(total));
      done.add(2);
      ratio.record(0.5);
      wait.record(1);
      for (let i = 0; i < 3; i++) {
        done.add(0 / 0);
        done.add(-1);
        done.add("3" as unknown as number);
        ratio.record(undefined as unknown as number);
        ratio.record(1 / 0);
        wait.record(-1 / 0);
      }
      const values = async () =>
        Object.fromEntries(
          (await p.collect()).map((m) => {
            const x = m.points[0]!;
            return [m.name, "value" in x ? x.value : x.count];
          }),
        );
      assert.deepEqual(await values(), {
        "jobs.done": 2,
        "jobs.hit.ratio": 0.5,
        "jobs.wait": 1,
      });
      observed = 4;
      total = 5;
      const later = await values();
      assert.deepEqual([later["jobs.lag"], later["jobs.total"]], [4, 5]);
      assert.deepEqual(lines, [
        "metric jobs.done was given NaN, no finite number; it leaves such values out",
        "metric jobs.done was given a negative value (-1); a counter only counts up, so it leaves such values out",
        'metric jobs.done was given the string "3" where a number belongs; it leaves such values out',
        "metric jobs.hit.ratio was given undefined where a number belongs; it leaves such values out",
        "metric jobs.hit.ratio was given Infinity, no finite number; it leaves such values out",
        "metric jobs.wait was given -Infinity, no finite number; it leaves such values out",
        "metric jobs.lag was given NaN, no finite number; it leaves such values out",
        "metric jobs.total was given a negative value (-7); an observable counter reports a count, never below 0, so it leaves such values out",
      ]);
    });
  });

  it("keeps one histogram for every creation of a name a counter took first", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    meter.createCounter("jobs").add(1);
    const h1 = meter.createHistogram("jobs");
    const h2 = meter.createHistogram("jobs");
    h1.record(10);
    h1.record(20);
    h2.record(30);
    meter.createUpDownCounter("jobs").add(-2);
    meter.createUpDownCounter("jobs").add(-3);
    h1.record(40);
    const collected = await p.collect();
    assert.deepEqual(
      collected.map((m) => [
        m.kind,
        m.points.map((x) => ("value" in x ? x.value : [x.count, x.sum])),
      ]),
      [
        ["sum", [1]],
        ["histogram", [[4, 100]]],
        ["sum", [-5]],
      ],
    );
  });

  it("caps the series per instrument, folding the rest into an overflow series", async () => {
    const p = new MeterProvider();
    const c = p.getMeter("m").createCounter("by_user");
    for (let i = 0; i < CARDINALITY_LIMIT + 500; i++)
      c.add(1, { user: `u${i}` });
    const [m] = await p.collect();
    assert.equal(m!.points.length, CARDINALITY_LIMIT);
    const overflow = m!.points.find(
      (x) => x.attributes["otel.metric.overflow"] === true,
    );
    assert.ok(overflow && "value" in overflow && overflow.value === 501);
  });

  it("takes null, or anything that is no object, for no attributes, and throws nothing", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    // What JavaScript callers of @opentelemetry/api can pass.
    const odd = [null, "str", 42, true, () => 1] as unknown as Attributes[];
    const counter = meter.createCounter("counter");
    const upDown = meter.createUpDownCounter("up.down");
    const gauge = meter.createGauge("gauge");
    const histogram = meter.createHistogram("histogram");
    for (const attributes of odd) {
      counter.add(1, attributes);
      upDown.add(1, attributes);
      gauge.record(1, attributes);
      histogram.record(1, attributes);
    }
    meter
      .createObservableCounter("observed")
      .addCallback((r) => odd.forEach((a) => r.observe(2, a)));
    const batched = meter.createObservableGauge("batched");
    meter.addBatchObservableCallback(
      (r) => odd.forEach((a) => r.observe(batched, 3, a)),
      [batched],
    );
    assert.deepEqual(
      (await p.collect()).map((m) => [
        m.name,
        m.points.map((x) => [x.attributes, "value" in x ? x.value : x.count]),
      ]),
      [
        ["counter", [[{}, odd.length]]],
        ["up.down", [[{}, odd.length]]],
        ["gauge", [[{}, 1]]],
        ["histogram", [[{}, odd.length]]],
        ["observed", [[{}, 2]]],
        ["batched", [[{}, 3]]],
      ],
    );
  });

  it("runs observable callbacks at collection, and never throws from a failing one", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    let level = 3;
    meter.createObservableGauge("level").addCallback((r) => r.observe(level));
    meter.createObservableCounter("broken").addCallback(() => {
      throw new Error("boom");
    });
    assert.deepEqual(
      (await p.collect()).map((m) => [
        m.name,
        m.points.map((x) => ("value" in x ? x.value : 0)),
      ]),
      [["level", [3]]],
    );
    level = 7;
    assert.deepEqual(
      p
        .collectSync()
        .map((m) => m.points.map((x) => ("value" in x ? x.value : 0))),
      [[7]],
    );
  });

  it(
    "collects without an asynchronous callback that never settles, and names its instrument",
    {
      timeout: 10_000,
    },
    async () => {
      await withWarnings(async (lines) => {
        const p = new MeterProvider({ callbackTimeoutMs: 100 });
        const meter = p.getMeter("m");
        meter.createObservableGauge("level").addCallback((r) => r.observe(3));
        meter
          .createObservableGauge("queue.depth")
          .addCallback(() => new Promise<void>(() => {}));
        let late: (() => void) | undefined;
        meter.createObservableGauge("slow").addCallback(
          (r) =>
            new Promise<void>((resolve) => {
              late = () => {
                r.observe(1);
                resolve();
              };
            }),
        );
        const collected = await p.collect();
        assert.deepEqual(
          collected.map((m) => m.name),
          ["level"],
        );
        assert.match(
          lines.join("\n"),
          /did not finish within 100 ms .*: queue\.depth; slow$/,
        );
        // What a callback observes once its collection went on without it is not kept.
        late!();
        await Promise.resolve();
        assert.deepEqual(
          p.collectSync().map((m) => m.name),
          ["level"],
        );
      });
    },
  );

  it("exports only the series observable callbacks reported last, keeping the start time of those that stay", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    const depths = new Map([
      ["emails", 4],
      ["invoices", 2],
    ]);
    meter.createObservableGauge("queue.depth").addCallback((r) => {
      for (const [queue, n] of depths) r.observe(n, { queue });
    });
    const consumers = meter.createObservableUpDownCounter("queue.consumers");
    meter.addBatchObservableCallback(
      (r) => {
        for (const queue of depths.keys()) r.observe(consumers, 1, { queue });
      },
      [consumers],
    );
    const points = (collected: MetricData[]) =>
      collected.map((m) => [
        m.name,
        m.points.map((x) => [x.attributes.queue, "value" in x ? x.value : 0]),
      ]);
    const first = await p.collect();
    depths.delete("emails");
    depths.set("invoices", 7);
    const second = await p.collect();
    assert.deepEqual(points(second), [
      ["queue.depth", [["invoices", 7]]],
      ["queue.consumers", [["invoices", 1]]],
    ]);
    assert.equal(
      second[0]!.points[0]!.startTime,
      first[0]!.points.find((x) => x.attributes.queue === "invoices")!
        .startTime,
    );
  });

  it("starts an observable series where what it reports could first have been counted, never at its first observation", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    const queues = ["emails"];
    const before = performance.timeOrigin + performance.now();
    const handled = meter.createObservableCounter("jobs.handled");
    const after = performance.timeOrigin + performance.now();
    handled.addCallback((r) => {
      for (const queue of queues) r.observe(5, { queue });
    });
    const cpu = meter.createObservableCounter("cpu");
    countedSince(cpu, 1000);
    cpu.addCallback((r) => r.observe(2));
    const byName = (ms: MetricData[]) =>
      Object.fromEntries(ms.map((m) => [m.name, m.points]));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const first = byName(await p.collect());
    // Reported by the first collection: since the instrument was made.
    const emails = first["jobs.handled"]![0]!;
    assert.ok(
      emails.startTime >= before && emails.startTime <= after,
      `${emails.startTime - before} ms after the instrument`,
    );
    // The 5 ms timer runs on the loop's whole-millisecond clock and may
    // fire a little early by this one.
    assert.ok(emails.time - emails.startTime >= 4);
    assert.equal(first["cpu"]![0]!.startTime, 1000);
    queues.push("invoices");
    const second = byName(await p.collect());
    const invoices = second["jobs.handled"]!.find(
      (x) => x.attributes.queue === "invoices",
    )!;
    // First reported by a later one: since the collection before it.
    assert.equal(invoices.startTime, emails.time);
    assert.equal(
      second["jobs.handled"]!.find((x) => x.attributes.queue === "emails")!
        .startTime,
      emails.startTime,
    );
    // Delta too: the first point covers the same time.
    const q = new MeterProvider();
    const c = q.getMeter("m").createObservableCounter("cpu");
    countedSince(c, 1000);
    c.addCallback((r) => r.observe(2));
    const [d] = await q.collect("delta");
    assert.equal(d!.points[0]!.startTime, 1000);
  });

  it("frees the series limit of observable instruments from what their callbacks stopped reporting", async () => {
    const p = new MeterProvider();
    let batch = 0;
    p.getMeter("m")
      .createObservableGauge("job.progress")
      .addCallback((r) => {
        for (let i = 0; i < CARDINALITY_LIMIT - 1; i++)
          r.observe(1, { job: `${batch}-${i}` });
      });
    await p.collect();
    batch = 1;
    const [m] = await p.collect();
    assert.equal(m!.points.length, CARDINALITY_LIMIT - 1);
    assert.ok(
      m!.points.every((x) => String(x.attributes.job).startsWith("1-")),
      "every series from the latest collection, none in overflow",
    );
  });

  it("keeps exemplars from sampled spans, every measurement, or none, as the filter says", async () => {
    const sampled = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
    });
    const unsampled = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "1af7651916cd43dd8448eb211c80319c",
      spanId: "c7ad6b7169203331",
      traceFlags: 0,
    });
    const kept = async (filter?: "always_on" | "always_off") => {
      const p = new MeterProvider(
        filter === undefined ? {} : { exemplarFilter: filter },
      );
      const h = p.getMeter("m").createHistogram("latency", {
        unit: "s",
        advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
      });
      h.record(0.001, {}, sampled); // first bucket
      h.record(0.3, {}, unsampled); // 0.5 bucket
      h.record(20, {}, ROOT_CONTEXT); // last bucket
      const [m] = await p.collect();
      return ((m!.points[0] as HistogramPointData).exemplars ?? []).map((e) => [
        e.value,
        e.traceId,
      ]);
    };
    assert.deepEqual(await kept(), [
      [0.001, "0af7651916cd43dd8448eb211c80319c"],
    ]);
    assert.deepEqual(await kept("always_off"), []);
    assert.deepEqual(await kept("always_on"), [
      [0.001, "0af7651916cd43dd8448eb211c80319c"],
      [0.3, ""],
      [20, ""],
    ]);
  });

  it("collects counters and histograms as deltas when asked, leaving out series that did not move", async () => {
    const p = new MeterProvider();
    const meter = p.getMeter("m");
    const orders = meter.createCounter("orders");
    const queued = meter.createUpDownCounter("queued");
    const latency = meter.createHistogram("latency", { unit: "s" });
    const sampled = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
    });
    orders.add(2, { status: "paid" });
    orders.add(1, { status: "unpaid" });
    queued.add(5);
    latency.record(0.25, {}, sampled);
    latency.record(0.5);
    const byName = (ms: MetricData[]) =>
      Object.fromEntries(ms.map((m) => [m.name, m]));
    const first = byName(await p.collect("delta"));
    assert.equal(first["orders"]!.kind, "sum");
    assert.equal(
      (first["orders"] as { temporality?: string }).temporality,
      "delta",
    );
    assert.deepEqual(
      first["orders"]!.points.map((x) => ("value" in x ? x.value : 0)),
      [2, 1],
    );
    // An up-down counter stays cumulative whatever the preference.
    assert.equal(
      (first["queued"] as { temporality?: string }).temporality,
      "cumulative",
    );

    orders.add(4, { status: "paid" });
    queued.add(-2);
    latency.record(0.125);
    const firstHistogram = first["latency"]!.points[0] as HistogramPointData;
    assert.equal(firstHistogram.count, 2);
    const second = byName(await p.collect("delta"));
    const paid = second["orders"]!.points;
    assert.equal(paid.length, 1, "unpaid did not move, so it is left out");
    assert.deepEqual(paid[0]!.attributes, { status: "paid" });
    assert.equal("value" in paid[0]! && paid[0].value, 4);
    assert.equal(paid[0]!.startTime, first["orders"]!.points[0]!.time);
    assert.equal(
      "value" in second["queued"]!.points[0]! &&
        second["queued"]!.points[0].value,
      3,
    );
    const h = second["latency"]!.points[0] as HistogramPointData;
    assert.equal(h.count, 1);
    assert.equal(h.sum, 0.125);
    assert.equal(
      h.counts.reduce((a, b) => a + b, 0),
      1,
    );
    // The interval's own, though an earlier one went higher.
    assert.equal(h.min, 0.125);
    assert.equal(h.max, 0.125);
    assert.equal(h.exemplars, undefined, "the exemplar was reported before");
    assert.equal(h.startTime, firstHistogram.time);

    // Nothing recorded: counters and histograms have nothing to send, and
    // a cumulative collection (a scrape) still sees every total.
    const third = byName(await p.collect("delta"));
    assert.deepEqual(Object.keys(third), ["queued"]);
    const totals = byName(await p.collect());
    assert.deepEqual(
      totals["orders"]!.points.map((x) => ("value" in x ? x.value : 0)),
      [6, 1],
    );
    const total = totals["latency"]!.points[0] as HistogramPointData;
    assert.deepEqual([total.count, total.min, total.max], [3, 0.125, 0.5]);
    orders.add(1, { status: "unpaid" });
    const fourth = byName(await p.collect("delta"));
    assert.deepEqual(
      fourth["orders"]!.points.map((x) => ("value" in x ? x.value : 0)),
      [1],
    );
  });

  it("sends an observable counter's delta, not its total, after a collection its callback missed", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider();
      let total = 0;
      let round = 0;
      p.getMeter("m")
        .createObservableCounter("bytes")
        .addCallback((r) => {
          round++;
          total += 10;
          if (round === 3) throw new Error("the source did not answer");
          r.observe(total, { source: "disk" });
        });
      let sent = 0;
      for (let i = 0; i < 5; i++)
        for (const m of await p.collect("delta"))
          for (const point of m.points)
            if ("value" in point) sent += point.value;
      // Five rounds of 10, the third unread: what was sent adds up to the
      // last total read.
      assert.equal(total, 50);
      assert.equal(sent, 50);
      assert.equal(lines.length, 1);
    });
  });

  it("keeps an observable series' start time across collections its callback failed or was late for", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider({ callbackTimeoutMs: 50 });
      let total = 0;
      let round = 0;
      let away = 0;
      p.getMeter("m")
        .createObservableCounter("jobs.done")
        .addCallback(async (r) => {
          round++;
          total += 10;
          if (round === 3) throw new Error("the source did not answer");
          if (round === 5)
            await new Promise((resolve) => setTimeout(resolve, 200));
          if (round >= 7 && away-- > 0) return;
          r.observe(total, { queue: "emails" });
        });
      const point = async () => {
        const [m] = await p.collect("cumulative");
        const x = m?.points[0];
        return x === undefined ? undefined : { ...x };
      };
      const first = await point();
      assert.ok(first !== undefined);
      await point();
      assert.equal(await point(), undefined); // the callback threw
      const fourth = await point();
      assert.equal(fourth?.startTime, first.startTime);
      assert.equal(await point(), undefined); // the callback was late
      const sixth = await point();
      assert.equal(sixth?.startTime, first.startTime);
      // Unreported for longer than a backend would wait: a series of its own.
      away = 11;
      let last = sixth;
      for (let i = 0; i < 11; i++) last = (await point()) ?? last;
      const back = await point();
      assert.ok(back !== undefined);
      assert.notEqual(back.startTime, first.startTime);
      assert.ok(back.startTime > last.time);
      assert.equal(lines.length, 2);
    });
  });

  it("sends observable counters as deltas with delta, cumulative with lowmemory, and counts a reset in full", async () => {
    const collectWith = async (preference: "delta" | "lowmemory") => {
      const p = new MeterProvider();
      let total = 10;
      p.getMeter("m")
        .createObservableCounter("bytes")
        .addCallback((r) => r.observe(total));
      const values: number[] = [];
      const temporalities = new Set<string | undefined>();
      for (const next of [15, 15, 3]) {
        for (const m of await p.collect(preference)) {
          if (m.kind !== "sum") continue;
          temporalities.add(m.temporality);
          values.push(m.points[0]!.value);
        }
        total = next;
      }
      for (const m of await p.collect(preference))
        if (m.kind === "sum") values.push(m.points[0]!.value);
      return { values, temporalities: [...temporalities] };
    };
    // 10, then +5, then unchanged (still sent: a callback reported it),
    // then a restart at 3.
    assert.deepEqual(await collectWith("delta"), {
      values: [10, 5, 0, 3],
      temporalities: ["delta"],
    });
    assert.deepEqual(await collectWith("lowmemory"), {
      values: [10, 15, 15, 3],
      temporalities: ["cumulative"],
    });
  });

  it("collects the other metrics when a callback throws undefined, null or a string", async () => {
    await withWarnings(async (lines) => {
      const p = new MeterProvider();
      const meter = p.getMeter("m");
      meter.createObservableGauge("level").addCallback((r) => r.observe(3));
      for (const thrown of [undefined, null, "no database"])
        meter.createObservableGauge("broken").addCallback(() => {
          throw thrown;
        });
      meter.addBatchObservableCallback(() => {
        throw null;
      }, []);
      const collected = await p.collect();
      assert.deepEqual(
        collected.map((m) => m.name),
        ["level"],
      );
      assert.deepEqual(lines, [
        "an observable metric callback threw: undefined",
      ]);
    });
  });

  it("runs the callbacks once for each reader that collects, one reader after the other, each reading its own", async () => {
    const p = new MeterProvider();
    const otlp = new Reader("OTLP export");
    const scrape = new Reader("Prometheus scrape");
    const runs: string[] = [];
    let running = false;
    p.getMeter("m")
      .createObservableGauge("reader")
      .addCallback(async (r) => {
        assert.equal(running, false, "a run while another is under way");
        running = true;
        const reader = readerOf(r)?.name ?? "none";
        runs.push(reader);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running = false;
        r.observe(reader === "OTLP export" ? 1 : 2);
      });
    const value = (m: MetricData[]) =>
      (m.find((x) => x.name === "reader")?.points[0] as NumberPointData)?.value;
    // Asked for together: the scrape's run waits for the export's, and a
    // second export at the same time shares the first's.
    const [exported, scraped, again] = await Promise.all([
      p.collect("cumulative", otlp),
      p.collect("cumulative", scrape),
      p.collect("cumulative", otlp),
    ]);
    assert.deepEqual(runs, ["OTLP export", "Prometheus scrape"]);
    assert.equal(value(exported), 1);
    assert.equal(value(again), 1);
    assert.equal(value(scraped), 2);
  });
});
