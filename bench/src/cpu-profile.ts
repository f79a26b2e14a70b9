// Reads V8 CPU profiles (node --cpu-prof) and says where a thread's time
// went: by function and package for a person reading one profile, or by a
// few broad parts for the report. A profile's timestamps are microseconds
// of the machine's monotonic clock (process.hrtime), so samples can be cut
// to the window another process measured.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/** The repository's root directory, a prefix of its own modules' paths. */
const REPO_PATH = fileURLToPath(new URL("../../", import.meta.url));

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
}

/**
 * Where a function lives: an npm package name, `threadline:<package>/<file>`
 * for the project's own packages, a `node:` module, or `(native/gc)` for
 * V8's and native code's pseudo-frames.
 */
export function placeOf(url: string): string {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  if (path.startsWith(REPO_PATH) && !path.includes("/node_modules/")) {
    const inRepo = path.slice(REPO_PATH.length).split("/");
    if (inRepo[0] === "packages" || inRepo[0] === "instrumentations")
      return `threadline:${inRepo.slice(1).join("/")}`;
  }
  if (path.includes("node_modules/")) {
    const after = path.slice(path.lastIndexOf("node_modules/") + 13);
    return after
      .split("/")
      .slice(0, after.startsWith("@") ? 2 : 1)
      .join("/");
  }
  if (path.startsWith("node:")) return path;
  if (path === "") return "(native/gc)";
  return path.split("/").slice(-2).join("/");
}

/** The broad parts the report splits a thread's time into. */
export const PARTS = [
  "instrumentation",
  "export",
  "application",
  "node",
  "native",
  "gc",
] as const;
export type Part = (typeof PARTS)[number];

export const PART_LABELS: Record<Part, string> = {
  instrumentation:
    "Threadline: instrumentation (contexts, spans, propagation, log correlation, request metrics)",
  export: "Threadline: export (encoding, log parsing, batching, sending)",
  application: "the application and its libraries",
  node: "Node.js core (JavaScript)",
  native: "native code and system calls (sockets, files, V8 runtime)",
  gc: "garbage collection (this thread's share)",
};

function partOf(frame: ProfileNode["callFrame"]): Part | undefined {
  const place = placeOf(frame.url);
  if (place === "(native/gc)") {
    if (frame.functionName === "(idle)") return undefined;
    if (frame.functionName === "(garbage collector)") return "gc";
    return "native";
  }
  if (place.startsWith("threadline:"))
    return place.startsWith("threadline:otlp/") || place.includes("/export/")
      ? "export"
      : "instrumentation";
  // The API's context and propagation calls are made by the instrumentations.
  if (place === "@opentelemetry/api") return "instrumentation";
  if (place.startsWith("node:")) return "node";
  return "application";
}

/** Self time in microseconds by part, of the samples taken in [fromUs, toUs]. */
export function timeByPart(
  p: CpuProfile,
  fromUs = -Infinity,
  toUs = Infinity,
): Record<Part, number> {
  const parts = new Map(p.nodes.map((n) => [n.id, partOf(n.callFrame)]));
  const out = Object.fromEntries(PARTS.map((k) => [k, 0])) as Record<
    Part,
    number
  >;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const delta = p.timeDeltas[i] ?? 0;
    t += delta;
    if (t < fromUs || t > toUs) continue;
    const part = parts.get(p.samples[i]!);
    if (part !== undefined) out[part] += delta;
  }
  return out;
}

/** Self time by function and by package, as text, for one profile. */
export function summarize(p: CpuProfile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) =>
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)),
  );
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const where = placeOf(n.callFrame.url);
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${where}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    const group = where.startsWith("threadline:")
      ? `threadline ${where.split(":")[1]!.split("/")[0]}`
      : where.startsWith("node:")
        ? "node core"
        : where;
    pkg.set(group, (pkg.get(group) ?? 0) + t);
  }
  const fmt = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, t]) => `${((t / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  return `total sampled ${(total / 1000).toFixed(0)} ms\n\n-- by package --\n${fmt(pkg, 25)}\n\n-- by function (self time) --\n${fmt(fn, top)}\n`;
}
