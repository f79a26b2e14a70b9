// The start-up self-check: makes sure the instrumentations really took
// effect and says so once, clearly, when they did not. Run on the first
// turn of the event loop, after the application's own start-up code, so a
// later agent or framework that replaced our hooks is caught too.
import { hasSubscribers } from "node:diagnostics_channel";
import { fileURLToPath } from "node:url";
import { modulesLeftUnhooked, type Instrumentation } from "@threadline/core";
// Not an ESM import of node:fs (see core/module-hooks.ts).
const { existsSync, readFileSync } = process.getBuiltinModule("node:fs");

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
  }
  return problems;
}

/** "a", "a and b", "a, b and c" */
function listed(names: readonly string[]): string {
  return names.length === 1
    ? names[0]!
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}
