import assert from "node:assert/strict";
import { it } from "node:test";
import { summarizeHeap, type HeapProfile } from "../src/heap-profile.ts";

const repo = new URL("../../", import.meta.url);
const node = (
  functionName: string,
  url: string,
  selfSize: number,
  children: HeapProfile["head"][] = [],
): HeapProfile["head"] => ({
  callFrame: { functionName, url, lineNumber: 9, columnNumber: 2 },
  selfSize,
  children,
});

it("sums a sampled heap profile per request, by package and by function", () => {
  const startSpan = new URL("packages/node/dist/trace/tracer.js", repo).href;
  const profile: HeapProfile = {
    head: node("(root)", "", 0, [
      node("emit", "node:events", 3000, [
        node("startSpan", startSpan, 4000, [
          node("startSpan", startSpan, 2000),
        ]),
      ]),
      node("query", "/srv/app/node_modules/pg/lib/client.js", 1000),
      node("(V8 API)", "", 500),
    ]),
  };
  const text = summarizeHeap(profile, 10, 2);
  const section = (title: string) =>
    text
      .slice(text.indexOf(`-- ${title}`))
      .split("\n")
      .slice(1)
      .filter((l) => l.trim() !== "")
      .map((l) => l.trim().replace(/\s+/g, " "))
      .slice(0, 4);
  assert.match(text, /^\s+1050 {2}all$/m);
  assert.deepEqual(section("by package"), [
    "600 threadline node",
    "300 node core",
    "100 pg",
    "50 (native/gc)",
  ]);
  // The same function on two paths is one row; only `top` rows are shown.
  assert.deepEqual(section("by function"), [
    "600 startSpan threadline:node/dist/trace/tracer.js:10",
    "300 emit node:events:10",
  ]);
});
