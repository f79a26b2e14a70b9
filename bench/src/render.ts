// Renders docs/benchmarks.md (and its chart) again from the figures a run
// wrote beside it, for a change to the report that needs no new
// measurements.
//
//   node bench/src/render.ts [docs/benchmarks.json]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type ReportInput, writeReport } from "./report.ts";

const figures =
  process.argv[2] ??
  fileURLToPath(new URL("../../docs/benchmarks.json", import.meta.url));
const input = JSON.parse(readFileSync(figures, "utf8")) as ReportInput;
writeReport(input, figures.replace(/\.json$/, ".md"));
