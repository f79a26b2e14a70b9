// The test suite: unit tests beside each package and integration tests that
// start real services as child processes. Run through `npm test`, which
// first makes sure Node, the dependencies and the build are in place.
// Extra arguments are passed to `node --test` (e.g. a file to run alone).
import { spawnSync } from "node:child_process";

const patterns = [
  "packages/*/test/**/*.test.ts",
  "instrumentations/*/test/**/*.test.ts",
  "test/**/*.test.ts",
];
const extra = process.argv.slice(2);
const files = extra.filter((a) => !a.startsWith("-"));
const flags = extra.filter((a) => a.startsWith("-"));
const args = [
  "--test",
  "--test-concurrency=2",
  "--test-timeout=180000",
  "--test-reporter=spec",
  ...flags,
  ...(files.length > 0 ? files : patterns),
];
const r = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(r.status ?? 1);
