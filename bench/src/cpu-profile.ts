// Reads V8 CPU profiles (node --cpu-prof) and says where a thread's time
// went, by function and package, for a person reading one profile. The
// report's figures come from Linux perf instead (see perf-profile.ts).
import { readFileSync } from "node:fs";
import { groupOf, placeOf, sourceOf } from "./parts.ts";

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
    columnNumber: number;
  };
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
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
    const at = sourceOf(
      n.callFrame.url,
      n.callFrame.lineNumber,
      n.callFrame.columnNumber,
    );
    const where = placeOf(at.url);
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${where}:${at.line + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    const group = groupOf(where);
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
