import assert from "node:assert/strict";
import { it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { HistogramPointData } from "@threadline/otlp";
import { MeterProvider } from "../src/metrics/meter-provider.ts";
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
