import assert from "node:assert/strict";
import { it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { HistogramPointData } from "@threadline/otlp";
import { MeterProvider } from "../src/metrics/meter-provider.ts";
import { registerRuntimeMetrics } from "../src/metrics/runtime.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

it("reports each garbage collection's pause in seconds by kind: a full one major, a young one minor", async () => {
  const provider = new MeterProvider();
  const stop = registerRuntimeMetrics(provider.getMeter("runtime"));
  try {
    gc();
    // Young-generation collections: short-lived objects until one happens.
    let junk: unknown[] = [];
    for (let i = 0; i < 200_000; i++) {
      junk.push({ i });
      if (junk.length > 1000) junk = [];
    }
    const m = (await provider.collect()).find(
      (x) => x.name === "v8js.gc.duration",
    );
    const points = (m?.points ?? []) as HistogramPointData[];
    const types = points.map((p) => p.attributes["v8js.gc.type"]);
    assert.ok(types.includes("major"), `v8js.gc.type: ${types.join(", ")}`);
    assert.ok(types.includes("minor"), `v8js.gc.type: ${types.join(", ")}`);
    for (const p of points) {
      // Seconds: a pause is well under one, and longer than a nanosecond.
      assert.ok(p.count > 0 && p.sum > 1e-9 * p.count && p.sum < p.count);
    }
  } finally {
    stop();
  }
});

it("reports the event loop's delay to a collection that follows another within its sampling", async () => {
  const provider = new MeterProvider();
  const stop = registerRuntimeMetrics(provider.getMeter("runtime"));
  const p99 = async () =>
    (await provider.collect())
      .find((x) => x.name === "nodejs.eventloop.delay")
      ?.points.find(
        (p) => p.attributes["nodejs.eventloop.delay.percentile"] === "p99",
      );
  try {
    // The loop is sampled every 20 ms: a window of 100 ms has ticks.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(await p99(), "the first collection's p99");
    // The next collection at once: its own window has none.
    assert.ok(await p99(), "the second collection's p99");
  } finally {
    stop();
  }
});
