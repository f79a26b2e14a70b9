import assert from "node:assert/strict";
import { it } from "node:test";
import {
  kindOfStack,
  PERF_HZ,
  summarizeScript,
  type Frame,
} from "../src/perf-profile.ts";

const repo = new URL("../../", import.meta.url).href;
const NODE = "/opt/node/bin/node";
const MAP = "/tmp/perf-100.map";
const js = (name: string, url: string): Frame => ({
  symbol: `JS:*'${name} ${url}:10:3`,
  dso: MAP,
});
const native = (symbol: string, dso = NODE): Frame => ({ symbol, dso });
const kernel = (symbol: string): Frame => ({
  symbol,
  dso: "[kernel.kallsyms]",
});

const writeSpan = js("writeSpan", `${repo}packages/otlp/dist/trace-encoder.js`);
const startSpan = js("startSpan", `${repo}packages/node/dist/trace/tracer.js`);
const emit = js("threadlineEmit", `${repo}instrumentations/http/dist/http.js`);
const query = js("query", `${repo}node_modules/pg/lib/client.js`);
const writeGeneric = js("Socket._writeGeneric", "node:net");
const hasSubscribers = {
  symbol: "JS:+'get hasSubscribers node:diagnostics_channel:314:21",
  dso: MAP,
};
const loop = native("uv_run");

it("counts a builtin or runtime call as the JavaScript that made it", () => {
  assert.equal(
    kindOfStack([native("Builtins_KeyedLoadIC_Megamorphic"), startSpan, emit]),
    "js",
  );
  assert.equal(
    kindOfStack([native("Builtins_TypedArrayPrototypeSet"), writeSpan]),
    "js",
  );
  assert.equal(kindOfStack([query, emit, loop]), "js");
  assert.equal(kindOfStack([hasSubscribers, emit]), "js");
});

it("keeps the kernel, the collector and code outside JavaScript apart", () => {
  assert.equal(
    kindOfStack([kernel("tcp_sendmsg"), native("__GI___writev"), writeGeneric]),
    "kernel",
  );
  assert.equal(
    kindOfStack([
      native("__memmove_avx512_unaligned_erms", "libc.so.6"),
      native("v8::internal::Scavenger::Process"),
      native("v8::internal::ScavengerCollector::CollectGarbage"),
      native("v8::internal::Runtime_AllocateInYoungGeneration"),
      startSpan,
    ]),
    "gc",
  );
  assert.equal(kindOfStack([native("llhttp__internal__run"), loop]), "native");
  assert.equal(kindOfStack([]), "native");
});

/** `perf script -F tid,time,ip,sym,dso` output for one sample. */
function sample(tid: number, seconds: string, frames: Frame[]): string[] {
  return [
    `${tid} ${seconds}: `,
    ...frames.map(
      (f, i) => `\t    ${(0x1000 + i).toString(16)} ${f.symbol} (${f.dso})`,
    ),
    "",
  ];
}

it("adds up one thread's samples inside the window, each worth 1/PERF_HZ s", async () => {
  const lines = [
    ...sample(100, "10.000100", [startSpan, emit]), // before the window
    ...sample(100, "10.001000", [startSpan, emit]),
    ...sample(100, "10.001200", [writeSpan]),
    // A builtin without a frame: perf names its caller's caller.
    ...sample(100, "10.001300", [native("Builtins_StringAdd_CheckNone"), emit]),
    ...sample(101, "10.001300", [native("v8::internal::Heap::Scavenge")]), // another thread
    ...sample(100, "10.001400", [
      native(
        "node::LibuvStreamWrap::ReadStart()::{lambda(uv_stream_s*, long)#2}::_FUN",
      ),
      loop,
    ]),
    ...sample(100, "10.001600", [kernel("_raw_spin_unlock_irqrestore")]),
    ...sample(100, "10.001800", [
      native("v8::internal::ScavengerCollector::CollectGarbage"),
      startSpan,
    ]),
    ...sample(100, "10.009000", [writeSpan]), // after it
  ];
  const { kinds, places, parts } = await summarizeScript(
    lines,
    100,
    10_000_500,
    10_002_000,
  );
  const one = 1e6 / PERF_HZ;
  assert.deepEqual(kinds, { js: 3 * one, gc: one, native: one, kernel: one });
  // The kernel counts with native code; JavaScript by where it lives.
  assert.deepEqual(parts, {
    instrumentation: one,
    export: one,
    application: 0,
    node: 0,
    builtins: one,
    native: 2 * one,
    gc: one,
  });
  assert.deepEqual(
    [...places],
    [
      [`startSpan ${repo}packages/node/dist/trace/tracer.js:10:3`, one],
      [`writeSpan ${repo}packages/otlp/dist/trace-encoder.js:10:3`, one],
      [`threadlineEmit ${repo}instrumentations/http/dist/http.js:10:3`, one],
      [
        "(native) node::LibuvStreamWrap::ReadStart()::{lambda(uv_stream_s*, long)#2}::_FUN",
        one,
      ],
      ["(kernel) _raw_spin_unlock_irqrestore", one],
      ["(gc) v8::internal::ScavengerCollector::CollectGarbage", one],
    ],
  );
});
