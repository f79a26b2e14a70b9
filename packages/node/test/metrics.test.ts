import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { diag } from "@threadline/core";
import type { HistogramPointData, MetricData } from "@threadline/otlp";
import { MeterProvider } from "../src/metrics/meter-provider.ts";
import {
  CARDINALITY_LIMIT,
  attributesKey,
} from "../src/metrics/instruments.ts";

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

  it("places histogram measurements in buckets and keeps exemplars from sampled spans", async () => {
    const p = new MeterProvider();
    const h = p.getMeter("m").createHistogram("latency", { unit: "s" });
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
      const lines: string[] = [];
      diag.reset();
      diag.setSink((_level, message) => lines.push(message));
      try {
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
      } finally {
        diag.setSink(undefined);
        diag.reset();
      }
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

  it("collects the other metrics when a callback throws undefined, null or a string", async () => {
    const lines: string[] = [];
    diag.reset();
    diag.setSink((_level, message) => lines.push(message));
    try {
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
    } finally {
      diag.setSink(undefined);
      diag.reset();
    }
  });
});
