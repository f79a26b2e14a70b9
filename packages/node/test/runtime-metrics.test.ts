import assert from "node:assert/strict";
import { it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { HistogramPointData } from "@threadline/otlp";
import { MeterProvider, Reader } from "../src/metrics/meter-provider.ts";
import { registerRuntimeMetrics } from "../src/metrics/runtime.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

it("labels a full garbage collection major, not incremental", async () => {
  const provider = new MeterProvider();
  const stop = registerRuntimeMetrics(provider.getMeter("runtime"));
  try {
    gc();
    // GC entries reach the observer asynchronously: poll with a deadline.
    const deadline = Date.now() + 5000;
    let types: unknown[] = [];
    while (!types.includes("major") && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
      const m = (await provider.collect()).find(
        (x) => x.name === "v8js.gc.duration",
      );
      types = (m?.points ?? []).map(
        (p) => (p as HistogramPointData).attributes["v8js.gc.type"],
      );
    }
    assert.ok(types.includes("major"), `v8js.gc.type: ${types.join(", ")}`);
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

it("keeps each reader's event-loop delay and utilisation since its own last collection", async () => {
  const provider = new MeterProvider();
  const stop = registerRuntimeMetrics(provider.getMeter("runtime"));
  const otlp = new Reader("OTLP export");
  const alarms = new Reader("alarm rules");
  const loop = async (reader: Reader) => {
    const m = await provider.collect("cumulative", reader);
    const max = m
      .find((x) => x.name === "nodejs.eventloop.delay")
      ?.points.find(
        (p) => p.attributes["nodejs.eventloop.delay.percentile"] === "max",
      );
    const busy = m.find((x) => x.name === "nodejs.eventloop.utilization")
      ?.points[0];
    return {
      max: max && "value" in max ? max.value : undefined,
      busy: busy && "value" in busy ? busy.value : undefined,
    };
  };
  try {
    await loop(otlp);
    // The loop held for 200 ms, then the alarm rules' collection.
    const until = performance.now() + 200;
    while (performance.now() < until);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const evaluated = await loop(alarms);
    assert.ok(evaluated.max! >= 0.15, `the alarm rules' max ${evaluated.max}`);
    // The export's window holds the stall all the same, with ticks after
    // the alarm rules' collection too.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const exported = await loop(otlp);
    assert.ok(exported.max! >= 0.15, `the export's max ${exported.max}`);
    // 200 ms of the 300 ms or so since the export before.
    assert.ok(
      exported.busy! >= 0.3,
      `the export's utilisation ${exported.busy}`,
    );
  } finally {
    stop();
  }
});
