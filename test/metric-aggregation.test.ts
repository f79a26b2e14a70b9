// How an instrumented service aggregates the application's own metrics, as
// a backend receives them over OTLP.
import assert from "node:assert/strict";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  stopTestServers,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

after(() => stopTestServers());

it("folds an observable instrument's attribute sets past the limit into one overflow series: a sum of them for sums, the last for a gauge", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "observed-overflow.mjs",
    cwd: fixtures,
    ready: false,
    env: {
      OTEL_SERVICE_NAME: "queues",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      RUN_MS: "1000",
    },
  });
  try {
    assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
    const exports = (name: string) =>
      receiver.metrics.filter((m) => m.name === name);
    assert.ok(exports("queue.number").length >= 3, "three exports or more");
    // 1999 queues of their own, and the overflow: every export, the one at
    // exit included, holds all 2100 and the 101 past the limit once.
    const overflow = { "otel.metric.overflow": true };
    for (const name of ["queue.messages", "queue.consumers"])
      for (const m of exports(name)) {
        assert.equal(m.points.length, 2000, name);
        const total = m.points.reduce((n, p) => n + p.value!, 0);
        assert.equal(total, 2100, name);
        const o = m.points.find((p) => p.attributes["otel.metric.overflow"]);
        assert.deepEqual(o?.attributes, overflow, name);
        assert.equal(o.value, 101, name);
      }
    for (const m of exports("queue.number")) {
      const o = m.points.find((p) => p.attributes["otel.metric.overflow"]);
      assert.equal(o?.value, 2099);
    }
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("sends the overflow series of an observable counter as a delta like the others, with delta temporality", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "observed-overflow.mjs",
    cwd: fixtures,
    ready: false,
    env: {
      OTEL_SERVICE_NAME: "queues",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "delta",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      RUN_MS: "1000",
    },
  });
  try {
    assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
    const exports = receiver.metrics.filter((m) => m.name === "queue.messages");
    assert.ok(exports.length >= 3, "three exports or more");
    // Every queue reports 1 throughout: the first export carries it, the
    // 101 past the limit in the overflow series, and later ones nothing new.
    const overflowed = exports.map(
      (m) => m.points.find((p) => p.attributes["otel.metric.overflow"])?.value,
    );
    const totals = exports.map((m) =>
      m.points.reduce((n, p) => n + p.value!, 0),
    );
    assert.deepEqual(overflowed, [101, ...overflowed.slice(1).map(() => 0)]);
    assert.deepEqual(totals, [2100, ...totals.slice(1).map(() => 0)]);
    assert.ok(exports.every((m) => m.temporality === "delta"));
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("keeps a histogram's advised bucket bounds that are numbers, in order and once, and the SDK's default ones when none is or none was advised", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "bucket-advice.mjs",
    cwd: fixtures,
    ready: false,
    env: {
      OTEL_SERVICE_NAME: "buckets",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      RUN_MS: "500",
    },
  });
  try {
    assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
    const point = (name: string) => {
      const m = receiver.metrics.findLast((x) => x.name === name);
      assert.ok(m, name);
      return m.points[0]!;
    };
    const unsorted = point("size.unsorted");
    assert.deepEqual(unsorted.explicitBounds, [1, 10, 100]);
    assert.deepEqual(unsorted.bucketCounts, [0, 1, 1, 1]);
    const repeated = point("size.repeated");
    assert.deepEqual(repeated.explicitBounds, [1]);
    assert.deepEqual(repeated.bucketCounts, [1, 1]);
    // No advice, or no bound left: the OpenTelemetry SDK's default
    // buckets, whatever the unit (the latter with a warning).
    const defaults = [
      0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
    ];
    const jobs = point("jobs.run.duration");
    assert.deepEqual(jobs.explicitBounds, defaults);
    assert.deepEqual(
      jobs.bucketCounts,
      [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0],
    );
    const none = point("wait.none");
    assert.deepEqual(none.explicitBounds, defaults);
    assert.equal(none.count, 1);
    const warnings = svc.stderr.filter((l) => /wait\.none/.test(l));
    assert.equal(warnings.length, 1, svc.stderr.join("\n"));
    assert.match(warnings[0]!, /bucket/);
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

for (const protocol of ["http/protobuf", "http/json"])
  it(`exports the meters of one name and different versions or schema URLs as scopes of their own (${protocol})`, async () => {
    const receiver = await startOtlpReceiver();
    const svc = await startService({
      entry: "meter-versions.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "versions",
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL: "200",
      },
    });
    try {
      assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
      const calls = receiver.metrics.filter((m) => m.name === "lib.calls");
      const last = new Map(
        calls.map((m) => [
          `${m.scope.version} ${m.scope.schemaUrl}`,
          m.points.map((p) => p.value),
        ]),
      );
      assert.deepEqual([...last].sort(), [
        [" ", [100]],
        [" https://opentelemetry.io/schemas/1.30.0", [1000]],
        ["1.0.0 ", [1]],
        ["2.0.0 ", [10]],
      ]);
      assert.ok(calls.every((m) => m.scope.name === "lib"));
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });
