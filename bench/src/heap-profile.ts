// Reads a sampling heap profile (see heap-sampler.cjs) and says what the
// service allocated per request, by package and by function: the bytes a
// request makes V8 allocate, collected young or not, which CPU profiles
// show only as time spread over allocation sites and collections.
import { groupOf, placeOf, sourceOf } from "./parts.ts";

interface HeapNode {
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
    columnNumber: number;
  };
  selfSize: number;
  children: HeapNode[];
}

export interface HeapProfile {
  head: HeapNode;
}

/** Bytes allocated per request by package and by function, as text. */
export function summarizeHeap(
  profile: HeapProfile,
  requests: number,
  top: number,
): string {
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  const stack = [profile.head];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    stack.push(...n.children);
    if (n.selfSize === 0) continue;
    total += n.selfSize;
    const at = sourceOf(
      n.callFrame.url,
      n.callFrame.lineNumber,
      n.callFrame.columnNumber,
    );
    const where = placeOf(at.url);
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${where}${where.startsWith("(") ? "" : `:${at.line + 1}`}`;
    fn.set(key, (fn.get(key) ?? 0) + n.selfSize);
    const group = groupOf(where);
    pkg.set(group, (pkg.get(group) ?? 0) + n.selfSize);
  }
  const rows = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, bytes]) => `${(bytes / requests).toFixed(0).padStart(7)}  ${k}`)
      .join("\n");
  return `\n-- bytes allocated per request on V8's heap, sampled (collected objects included) --\n${(total / requests).toFixed(0).padStart(7)}  all\n\n-- by package --\n${rows(pkg, 25)}\n\n-- by function (self) --\n${rows(fn, top)}\n`;
}
