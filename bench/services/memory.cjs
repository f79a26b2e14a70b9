// Preloaded into every measured bench service: on SIGUSR2 it writes where
// the process's memory is, by V8's count, to BENCH_MEMORY_DIR/<pid>.json,
// so the report can say which part of the RSS an agent adds: V8's young
// generation (sized by V8 from what survives its collections), the rest of
// V8's heap, or memory outside it. Read once, after a contender's measured
// turns, never during them.
"use strict";
const { writeFileSync, renameSync } = require("node:fs");
const { join } = require("node:path");
const v8 = require("node:v8");

const dir = process.env.BENCH_MEMORY_DIR;
if (dir) {
  process.on("SIGUSR2", () => {
    const spaces = v8.getHeapSpaceStatistics();
    const physical = (names) =>
      spaces
        .filter((s) => names.includes(s.space_name))
        .reduce((sum, s) => sum + s.physical_space_size, 0);
    const heap = spaces.reduce((sum, s) => sum + s.physical_space_size, 0);
    const young = physical(["new_space", "new_large_object_space"]);
    const code = physical([
      "code_space",
      "code_large_object_space",
      "trusted_space",
      "trusted_large_object_space",
    ]);
    const file = join(dir, `${process.pid}.json`);
    writeFileSync(
      `${file}.tmp`,
      JSON.stringify({
        rss: process.memoryUsage.rss(),
        young,
        code,
        otherHeap: heap - young - code,
        compilerPeak: v8.getHeapStatistics().peak_malloced_memory,
      }),
    );
    renameSync(`${file}.tmp`, file);
  });
}
