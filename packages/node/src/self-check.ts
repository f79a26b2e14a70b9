// The start-up self-check: makes sure the instrumentations really took
// effect and says so once, clearly, when they did not. Run on the first
// turn of the event loop, after the application's own start-up code, so a
// later agent or framework that replaced our hooks is caught too.
import { hasSubscribers } from "node:diagnostics_channel";
import { fileURLToPath } from "node:url";
import {
  modulesLeftUnhooked,
  modulesLoadedPastHooks,
  type Instrumentation,
} from "@threadline/core";
// Not an ESM import of node:fs (see core/module-hooks.ts).
const { existsSync, readFileSync, statSync } =
  process.getBuiltinModule("node:fs");

export interface SelfCheckInput {
  instrumentations: readonly Instrumentation[];
  httpEnabled: boolean;
}

function bundled(): boolean {
  // Installed normally, this file sits in <package>/dist next to <package>/package.json.
  try {
    const pkg = fileURLToPath(new URL("../package.json", import.meta.url));
    if (!existsSync(pkg)) return true;
    return (
      (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name !==
      "@threadline/node"
    );
  } catch {
    return true;
  }
}

// Where a bundler names the modules it took in: esbuild above each one's
// code (`// node_modules/pg/lib/client.js`, also under .pnpm), webpack's
// development build in each one's key (`"./node_modules/pg/lib/client.js":`).
// A minified or production bundle names none and goes unnoticed; a script
// that is no bundle has no such line.
const BUNDLED_PACKAGE =
  /(?:^\/\/ |^\/\*\*\*\/ "\.\/)(?:[^\n"]*\/)?node_modules\/(pg|pino|amqplib)\//gm;
const INSTRUMENTATION_OF: Record<string, string> = {
  pg: "@threadline/instrumentation-pg",
  pino: "@threadline/instrumentation-pino",
  amqplib: "@threadline/instrumentation-amqplib",
};
// Read once, at start-up; a larger script is left unread.
const MAX_SCRIPT_BYTES = 64 << 20;

/** The instrumented libraries built into the entry script, whose loads no hook sees. */
function bundledLibraries(
  script: string | undefined,
  instrumented: ReadonlySet<string>,
): string[] {
  if (script === undefined || !/\.[cm]?js$/.test(script)) return [];
  try {
    if (statSync(script).size > MAX_SCRIPT_BYTES) return [];
    const found = new Set<string>();
    for (const m of readFileSync(script, "latin1").matchAll(BUNDLED_PACKAGE))
      if (instrumented.has(INSTRUMENTATION_OF[m[1]!]!)) found.add(m[1]!);
    return [...found].sort();
  } catch {
    return [];
  }
}

/** Problems found; empty when everything took effect. */
export function selfCheck(input: SelfCheckInput): string[] {
  const problems: string[] = [];
  for (const i of input.instrumentations)
    problems.push(...(i.selfCheck?.() ?? []));
  if (input.httpEnabled && !hasSubscribers("http.client.request.created")) {
    problems.push(
      "outgoing http requests are not traced: the diagnostics channel subscription is missing",
    );
  }
  const unhooked = modulesLeftUnhooked();
  if (unhooked.length > 0) {
    problems.push(
      `module load hooks are not installed, so ${listed(unhooked)} will not be instrumented`,
    );
  }
  if (bundled()) {
    problems.push(
      "Threadline appears to be bundled into the application; keep @threadline/node and the libraries it instruments (pg, amqplib, pino) external to the bundle, or they will not be traced",
    );
  } else {
    const inside = bundledLibraries(
      process.argv[1],
      new Set(input.instrumentations.map((i) => i.name)),
    );
    if (inside.length > 0)
      problems.push(
        `${listed(inside)} ${inside.length === 1 ? "is" : "are"} bundled into ${process.argv[1]}, where no load hook reaches ${inside.length === 1 ? "it" : "them"}, so ${inside.length === 1 ? "it is" : "they are"} not instrumented; keep ${inside.length === 1 ? "it" : "them"} external to the bundle (esbuild: --packages=external, or --external:${inside.join(" --external:")})`,
      );
  }
  return problems;
}

/**
 * How long after the start modules loaded past the load hooks are looked
 * for again: on Node 22, an ES module loader's hooks (module.register) load
 * the application over several turns of the event loop, after the first.
 */
export const PAST_HOOKS_RECHECK_MS = 2000;

/** The problem of the hooked modules a loader compiled past the load hooks, if any. */
export function loadedPastHooks(): string | undefined {
  const past = modulesLoadedPastHooks();
  if (past.length === 0) return undefined;
  const one = past.length === 1;
  return `${listed(past)} ${one ? "was" : "were"} loaded by a loader that compiles files itself, past Threadline's module load hooks, so ${one ? "it is" : "they are"} not instrumented${past.includes("pino") ? " and pino writes secrets unredacted" : ""}; start Threadline after the other loaders (node --import tsx --import @threadline/node/register app.ts), and if this warning stays, have the loader leave CommonJS files to Node: an ES module load hook that returns their source takes them past every hook`;
}

/** "a", "a and b", "a, b and c" */
function listed(names: readonly string[]): string {
  return names.length === 1
    ? names[0]!
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}
