// Builds Jaeger v2 from its Go module into the per-user cache and starts it.
//
//   node scripts/backends/jaeger.mjs                 build if needed, print the binary path
//   node scripts/backends/jaeger.mjs validate [config.yaml ...]
//
// THREADLINE_JAEGER_BIN=/path/to/jaeger makes every function use that
// binary instead of building one.
//
// Importable: ensureJaeger(), validateJaegerConfig(), startJaeger().
//
// How it is built, and why this way:
//  - `go install github.com/jaegertracing/jaeger/cmd/jaeger@v2.x.y` cannot
//    work: the module path has no /v2, so Go rejects v2 tags. Jaeger still
//    tags each v2 release with a v1 number too (v1.76.0 is Jaeger v2.13.0).
//  - `go install pkg@version` also refuses a module whose go.mod has replace
//    directives, which Jaeger's does. So the build happens in a small
//    wrapper module that requires Jaeger at the pinned version and copies
//    Jaeger's own replace directives, then `go build`s cmd/jaeger from it.
//  - Jaeger's UI assets are not part of the Go module, so the binary serves
//    a placeholder page on 16686; the query APIs are complete.
//
// The version: releases after v2.13.0 (v2.14.0 .. v2.20.0) are tagged only
// as v2.x, so they exist on the module proxy only as commit pseudo-versions,
// and the proxy we use refuses those (v2.20.0 would be
// v1.76.1-0.20260720033334-798e4b0fcf22). THREADLINE_JAEGER_MODULE_VERSION
// overrides the pin where a proxy serves them. v2.13.0's HTTP search
// (GET /api/v3/traces) ignores query.attributes, which only v2.19.0 added;
// the customer search therefore goes through GET /api/traces?tags=..., which
// v2.13.0 serves from the same storage.
import { join, resolve } from "node:path";

import {
  buildGoProgram,
  isMain,
  repoRoot,
  startOtelcol,
  validateOtelcol,
  withGoPatterns,
} from "./common.mjs";

export const JAEGER_MODULE = "github.com/jaegertracing/jaeger";
/** Go module version; v1.76.0 is the source of Jaeger v2.13.0. */
export const JAEGER_MODULE_VERSION =
  process.env.THREADLINE_JAEGER_MODULE_VERSION || "v1.76.0";
/** The Jaeger release that module version is, for `jaeger version`. */
export const JAEGER_RELEASE = process.env.THREADLINE_JAEGER_MODULE_VERSION
  ? JAEGER_MODULE_VERSION
  : "v2.13.0";
export const CONFIGS = ["jaeger-memory.yaml", "jaeger-elasticsearch.yaml"].map(
  (f) => join(repoRoot, "collector-config", f),
);

// The checksum database has no record of the Collector releases this Jaeger
// depends on (v0.140.x / v1.46.x), so these two module trees are taken as
// the module proxy serves them; everything else stays verified.
const NO_SUMDB = [
  "go.opentelemetry.io/collector",
  "github.com/open-telemetry/opentelemetry-collector-contrib",
];

/** Builds Jaeger if the cached binary does not match; returns its path. */
export function ensureJaeger({ force = false } = {}) {
  // A Jaeger v2 binary obtained some other way (e.g. a newer release).
  if (process.env.THREADLINE_JAEGER_BIN)
    return resolve(process.env.THREADLINE_JAEGER_BIN);
  return buildGoProgram({
    label: `Jaeger ${JAEGER_RELEASE}`,
    module: JAEGER_MODULE,
    version: JAEGER_MODULE_VERSION,
    pkg: `${JAEGER_MODULE}/cmd/jaeger`,
    cacheName: "jaeger",
    tag: JAEGER_RELEASE,
    binName: "jaeger",
    ldflags: [
      `-X ${JAEGER_MODULE}/internal/version.latestVersion=${JAEGER_RELEASE}`,
    ],
    env: { GONOSUMDB: withGoPatterns(process.env, "GONOSUMDB", NO_SUMDB) },
    force,
    stamp: { release: JAEGER_RELEASE },
  });
}

/** Jaeger v2 is a Collector distribution, so it has `validate` too. */
export function validateJaegerConfig(config, { env = {} } = {}) {
  return validateOtelcol(ensureJaeger(), config, env);
}

/**
 * Starts Jaeger with one of the configs; resolves once the query service
 * answers on `queryUrl` (default http://127.0.0.1:16686).
 */
export async function startJaeger({
  config = CONFIGS[0],
  env = {},
  queryUrl = "http://127.0.0.1:16686",
  logFile,
} = {}) {
  const proc = await startOtelcol(ensureJaeger(), {
    config,
    env,
    logFile,
    name: "jaeger",
    readyUrl: `${queryUrl}/api/services`,
    timeoutMs: 60_000,
  });
  return { ...proc, queryUrl };
}

if (isMain(import.meta.url)) {
  const [cmd, ...args] = process.argv.slice(2);
  try {
    if (!cmd || cmd === "build") {
      console.log(ensureJaeger({ force: args.includes("--force") }));
    } else if (cmd === "validate") {
      for (const c of args.length ? args : CONFIGS) {
        const out = validateJaegerConfig(c);
        console.log(`${c}: valid${out ? `\n${out}` : ""}`);
      }
    } else {
      console.error(
        "usage: node scripts/backends/jaeger.mjs [build [--force] | validate [config ...]]",
      );
      process.exit(2);
    }
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
