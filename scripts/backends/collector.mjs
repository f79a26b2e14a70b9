// Builds Threadline's OpenTelemetry Collector (gateway and agent) with the
// Collector builder (ocb) from collector-config/builder-config.yaml, into the
// per-user cache. A build is reused while the builder version, the manifest
// and the Go toolchain are unchanged.
//
//   node scripts/backends/collector.mjs            build if needed, print the binary path
//   node scripts/backends/collector.mjs validate [config.yaml ...]
//                                                   `otelcol validate` each config (default: all)
//
// Importable: ensureCollector(), validateConfig(), startCollector().
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

import {
  cacheRoot,
  goBinary,
  goVersion,
  isMain,
  log,
  readStamp,
  repoRoot,
  run,
  sha256,
  startOtelcol,
  validateOtelcol,
  withGoPatterns,
  writeStamp,
} from "./common.mjs";

/** ocb release; must match the component versions in the manifest. */
export const BUILDER_VERSION = "v0.157.0";
export const BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder";
export const MANIFEST = join(
  repoRoot,
  "collector-config",
  "builder-config.yaml",
);
export const BINARY_NAME = "otelcol-threadline";
export const CONFIGS = ["gateway.yaml", "agent.yaml"].map((f) =>
  join(repoRoot, "collector-config", f),
);

// Modules the checksum database has no record of (see the manifest's
// `replaces`); everything else stays verified.
const NO_SUMDB = ["go.opentelemetry.io/ebpf-profiler"];

function goEnv() {
  const env = { ...process.env, CGO_ENABLED: "0" };
  env.GONOSUMDB = withGoPatterns(env, "GONOSUMDB", NO_SUMDB);
  return env;
}

/** Installs ocb itself into the cache; returns its path. */
export function ensureBuilder() {
  const go = goBinary();
  const dir = join(cacheRoot(), "ocb", BUILDER_VERSION);
  const bin = join(dir, "builder");
  const stamp = readStamp(dir);
  if (existsSync(bin) && stamp?.version === BUILDER_VERSION) return bin;
  mkdirSync(dir, { recursive: true });
  log(`installing ocb ${BUILDER_VERSION} into ${dir}`);
  const r = run(go, ["install", `${BUILDER_MODULE}@${BUILDER_VERSION}`], {
    env: { ...goEnv(), GOBIN: dir },
  });
  writeStamp(dir, { version: BUILDER_VERSION, seconds: r.seconds });
  log(`ocb installed in ${r.seconds.toFixed(1)} s`);
  return bin;
}

/**
 * Builds the Collector if the cached one does not match the manifest;
 * returns the binary path.
 */
export function ensureCollector({ force = false } = {}) {
  const go = goBinary();
  const manifest = readFileSync(MANIFEST, "utf8");
  const toolchain = goVersion(go);
  const key = sha256(BUILDER_VERSION, "\0", toolchain, "\0", manifest).slice(
    0,
    16,
  );
  const dir = join(cacheRoot(), "collector", `${BUILDER_VERSION}-${key}`);
  const bin = join(dir, BINARY_NAME);
  const stamp = readStamp(dir);
  if (!force && existsSync(bin) && stamp?.key === key) return bin;

  const builder = ensureBuilder();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // ocb takes the output directory only from the manifest, so build from a
  // copy that names the cache directory.
  const effective = join(dir, "builder-config.yaml");
  writeFileSync(
    effective,
    manifest.replace(
      /^dist:\n/m,
      `dist:\n  output_path: ${JSON.stringify(dir)}\n`,
    ),
  );
  log(
    `building ${BINARY_NAME} with ocb ${BUILDER_VERSION} (${toolchain}) into ${dir}`,
  );
  const r = run(builder, [`--config=${effective}`], { env: goEnv(), cwd: dir });
  if (!existsSync(bin)) throw new Error(`ocb finished but ${bin} is missing`);
  const size = statSync(bin).size;
  writeStamp(dir, {
    key,
    builder: BUILDER_VERSION,
    toolchain,
    seconds: r.seconds,
    bytes: size,
  });
  log(
    `built ${BINARY_NAME} in ${r.seconds.toFixed(1)} s, ${(size / 1e6).toFixed(1)} MB`,
  );
  // Keep the manifest that produced this binary next to it for reference.
  copyFileSync(MANIFEST, join(dir, "builder-config.source.yaml"));
  return bin;
}

/** Runs `otelcol validate`; returns its combined output, throws on failure. */
export function validateConfig(config, { env = {} } = {}) {
  return validateOtelcol(ensureCollector(), config, env);
}

/**
 * Starts the Collector with a config; resolves once its health_check
 * extension answers. `healthUrl` must match the config's health endpoint.
 */
export async function startCollector({
  config,
  env = {},
  healthUrl,
  logFile,
  name = "collector",
}) {
  return startOtelcol(ensureCollector(), {
    config,
    env,
    logFile,
    name,
    readyUrl: healthUrl,
  });
}

if (isMain(import.meta.url)) {
  const [cmd, ...args] = process.argv.slice(2);
  try {
    if (!cmd || cmd === "build") {
      console.log(ensureCollector({ force: args.includes("--force") }));
    } else if (cmd === "validate") {
      const configs = args.length ? args : CONFIGS;
      for (const c of configs) {
        const out = validateConfig(c);
        console.log(`${c}: valid${out ? `\n${out}` : ""}`);
      }
    } else {
      console.error(
        "usage: node scripts/backends/collector.mjs [build [--force] | validate [config ...]]",
      );
      process.exit(2);
    }
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
