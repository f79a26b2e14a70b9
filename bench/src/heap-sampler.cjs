// Loaded into a bench service with -r by `profile.ts --heap`: samples what
// the service allocates, the objects collected since included (V8's
// sampling heap profiler keeps only live ones by default, and nearly all of
// a request's allocations die young). Sampling starts on SIGUSR2, once the
// service is warm, and the profile is written to THREADLINE_BENCH_HEAP_OUT
// on SIGINT, before the service's own handler exits.
"use strict";
const inspector = require("node:inspector");
const { writeFileSync } = require("node:fs");

const out = process.env.THREADLINE_BENCH_HEAP_OUT;
const session = new inspector.Session();
session.connect();
process.on("SIGUSR2", () => {
  session.post("HeapProfiler.enable");
  session.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
});
// A session on the main thread answers synchronously: the file is written
// before the next listener runs.
process.prependListener("SIGINT", () => {
  session.post("HeapProfiler.stopSampling", (err, result) => {
    writeFileSync(
      out,
      err
        ? JSON.stringify({ error: String(err) })
        : JSON.stringify(result.profile),
    );
  });
});
