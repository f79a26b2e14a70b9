// Renders docs/benchmarks.md (and its chart) again from the figures a run
// wrote beside it (name.json for name.md), for a change to the report that
// needs no new measurements.
//
//   node bench/src/render.ts [docs/benchmarks.json]
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  historyFileOf,
  listRuns,
  readHistory,
  summarizeRun,
} from "./history.ts";
import { type ReportInput, writeReport } from "./report.ts";

const figures =
  process.argv[2] ??
  fileURLToPath(new URL("../../docs/benchmarks.json", import.meta.url));
// The report is written beside its figures: anything else would be overwritten.
if (!figures.endsWith(".json")) {
  console.error(
    `render: ${figures} is not a run's figures (a .json file that npm run bench or run.ts --out writes beside its report)`,
  );
  process.exit(2);
}
if (!existsSync(figures)) {
  console.error(
    `render: no figures at ${figures}; a run writes them (npm run bench, or npm run bench:run -- --out <file>.md)`,
  );
  process.exit(2);
}
const input = JSON.parse(readFileSync(figures, "utf8")) as ReportInput;
writeReport(
  input,
  figures.replace(/\.json$/, ".md"),
  listRuns(readHistory(historyFileOf(figures)), summarizeRun(input)),
);
console.log(`rendered ${figures.replace(/\.json$/, ".md")}`);
