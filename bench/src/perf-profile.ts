// Where a thread's CPU time goes, from Linux perf's sampling profiler on
// the software CPU clock: the kernel's timer interrupts the thread wherever
// it is, and only while it runs. V8's own profiler (--cpu-prof) is not used
// for figures: it samples on the wall clock, so a thread left waiting for
// the core after a system call counts as busy in that call, and its samples
// are taken when the thread next returns from the kernel, so a thread that
// makes a system call per log line or per request is seen in those calls
// far more than it is (the pino micro-benchmark: 87% of V8's samples in its
// write to /dev/null, 23% of perf's). perf sees the kernel too, and tells
// JavaScript (V8's builtins and runtime calls included, as the code that
// called them) from the garbage collector and other native code. It cannot
// see into V8's inlining: a library function inlined into one of
// Threadline's wrappers counts as the wrapper, and the reverse; nor past a
// builtin without a frame (see partOfStack). The process must run with
// --perf-basic-prof, so perf can name its JavaScript functions.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PARTS, partOfUrl, sourceOf, type Part } from "./parts.ts";

/** Samples per second of CPU time: 200 µs apart. */
export const PERF_HZ = 4999;

/** How long `perf record -p` takes to attach to a running process's threads, with room to spare. */
const ATTACH_MS = 1000;

/** What perf tells apart. */
export const KINDS = ["js", "gc", "native", "kernel"] as const;
export type Kind = (typeof KINDS)[number];

/** Whether `perf` can be run here (Debian: apt-get install linux-perf). */
export function perfAvailable(): boolean {
  return spawnSync("perf", ["--version"], { stdio: "ignore" }).status === 0;
}

export interface PerfRecording {
  /** Stops recording and waits until the file is written. */
  stop(): Promise<void>;
}

/**
 * `perf record`'s arguments: the CPU clock at PERF_HZ with call chains,
 * samples stamped on the monotonic clock (the clock of process.hrtime, so
 * they can be cut to a window measured elsewhere), written to `file`. Put
 * a command after them (`--`, then the command) to record it from its start.
 */
export function perfRecordArgs(file: string): string[] {
  return [
    "record",
    "--quiet",
    "-F",
    String(PERF_HZ),
    "-e",
    "cpu-clock",
    "-g",
    "-k",
    "CLOCK_MONOTONIC",
    "-o",
    file,
  ];
}

/**
 * Records process `pid`'s threads into `file` until stopped (or until the
 * process exits); resolves once perf has had time to attach to every
 * thread, so a window measured from then on is recorded whole. Sample
 * times are on the monotonic clock, the clock of process.hrtime, so they
 * can be cut to a window measured elsewhere.
 */
export async function recordPerf(
  pid: number,
  file: string,
): Promise<PerfRecording> {
  const child = spawn("perf", [...perfRecordArgs(file), "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) =>
      code === 0 || signal === "SIGINT"
        ? resolve()
        : reject(
            new Error(`perf record exited ${code ?? signal}: ${stderr.trim()}`),
          ),
    );
  });
  // perf may fail before anyone waits on it (a bad output path, a process
  // that cannot be traced): the failure is reported by stop(), not left to
  // end this process with everything it started still running.
  exited.catch(() => {});
  const recording = {
    async stop() {
      if (child.exitCode === null && child.signalCode === null)
        child.kill("SIGINT");
      await exited;
    },
  };
  await new Promise((r) => setTimeout(r, ATTACH_MS));
  return recording;
}

/** One frame of a `perf script` call chain: its symbol and where it lives. */
export interface Frame {
  symbol: string;
  dso: string;
}

const GC =
  /^v8::internal::(Heap::|Scavenger|ScavengerCollector|MarkCompactCollector|MinorMarkSweepCollector|IncrementalMarking|ConcurrentMarking|GCTracer|MemoryReducer|Sweeper)/;

/** What one sample is charged to; `stack` runs from the sampled frame to the root. */
export function kindOfStack(stack: readonly Frame[]): Kind {
  const top = stack[0];
  if (top === undefined) return "native";
  if (top.dso.includes("kernel")) return "kernel";
  for (const f of stack) {
    // perf names a JavaScript frame `JS:<tier><name> <url>:<line>:<column>`.
    if (f.symbol.startsWith("JS:")) return "js";
    if (GC.test(f.symbol)) return "gc";
  }
  return "native";
}

/** CPU microseconds of one thread, by kind and by where they were spent. */
export interface PerfSummary {
  kinds: Record<Kind, number>;
  /** By the nearest JavaScript function, or else the sampled symbol, with its kind. */
  places: Map<string, number>;
  /** By the report's parts: JavaScript by where its nearest function lives, the kernel with native code. */
  parts: Record<Part, number>;
}

/**
 * The part a sample of `kind` counts for. Many of V8's builtins (string
 * concatenation, inline-cache handlers, hash-table lookups) run without a
 * frame of their own, so perf's frame-pointer walk from one skips the
 * function that called it and names that function's caller: a builtin
 * pino's line building calls would count for Threadline's wrapper around
 * it. Samples taken in a builtin get a part of their own.
 */
function partOfStack(stack: readonly Frame[], kind: Kind): Part {
  if (kind === "gc") return "gc";
  if (kind !== "js") return "native";
  if (stack[0]!.symbol.startsWith("Builtins_")) return "builtins";
  const js = stack.find((f) => f.symbol.startsWith("JS:"))!;
  // `JS:<tier><name> <url>:<line>:<column>`; a URL holds no space.
  const at = sourceAt(js.symbol.slice(js.symbol.lastIndexOf(" ") + 1));
  return partOfUrl(at.replace(/:\d+:\d+$/, ""));
}

// A profile names the same few hundred functions in every sample, twice
// (for its part and for its place).
const sources = new Map<string, string>();

/** `<url>:<line>:<column>` (counted from 1) where that code was written: see sourceOf. */
function sourceAt(at: string): string {
  let source = sources.get(at);
  if (source === undefined) {
    const m = /^(.*):(\d+):(\d+)$/.exec(at);
    const src = m && sourceOf(m[1]!, Number(m[2]) - 1, Number(m[3]) - 1);
    source = src ? `${src.url}:${src.line + 1}:${src.column + 1}` : at;
    sources.set(at, source);
  }
  return source;
}

/** The nearest JavaScript function, or else the sampled symbol, labelled with its kind. */
function placeOfStack(stack: readonly Frame[], kind: Kind): string {
  const js =
    kind === "js" ? stack.find((f) => f.symbol.startsWith("JS:")) : undefined;
  // `JS:<tier><name> <url>:<line>:<column>`; the tier marks (*, ~, ^, +, ') say how V8 compiled it.
  if (js !== undefined) {
    const named = js.symbol.slice(3).replace(/^[*~^+']+/, "");
    const space = named.lastIndexOf(" ");
    return `${named.slice(0, space + 1)}${sourceAt(named.slice(space + 1))}`;
  }
  return `(${kind}) ${stack[0]?.symbol ?? "?"}`;
}

/**
 * CPU microseconds that thread `tid` spent in [fromUs, toUs] (the monotonic
 * clock, in microseconds), from the lines of
 * `perf script -F tid,time,ip,sym,dso`: each sample is a line
 * "<tid> <seconds>:", then one line per frame, "<address> <symbol> (<dso>)",
 * then a blank line.
 */
export async function summarizeScript(
  lines: AsyncIterable<string> | Iterable<string>,
  tid: number,
  fromUs: number,
  toUs: number,
): Promise<PerfSummary> {
  const kinds = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<
    Kind,
    number
  >;
  const places = new Map<string, number>();
  const parts = Object.fromEntries(PARTS.map((k) => [k, 0])) as Record<
    Part,
    number
  >;
  const perSample = 1e6 / PERF_HZ;
  let keep = false;
  let stack: Frame[] = [];
  const flush = () => {
    if (keep) {
      const kind = kindOfStack(stack);
      kinds[kind] += perSample;
      const place = placeOfStack(stack, kind);
      places.set(place, (places.get(place) ?? 0) + perSample);
      parts[partOfStack(stack, kind)] += perSample;
    }
    keep = false;
    stack = [];
  };
  for await (const line of lines) {
    if (line.length === 0) {
      flush();
      continue;
    }
    const head = /^\s*(\d+)\s+(\d+\.\d+):\s*$/.exec(line);
    if (head !== null) {
      flush();
      const us = Number(head[2]) * 1e6;
      keep = Number(head[1]) === tid && us >= fromUs && us <= toUs;
      continue;
    }
    if (!keep) continue;
    const frame = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
    if (frame !== null) stack.push({ symbol: frame[1]!, dso: frame[2]! });
  }
  flush();
  return { kinds, places, parts };
}

/** {@link summarizeScript} of a recording. */
export async function summarizePerf(
  file: string,
  tid: number,
  fromUs: number,
  toUs: number,
): Promise<PerfSummary> {
  const child = spawn(
    "perf",
    ["script", "-i", file, "-F", "tid,time,ip,sym,dso", "--no-inline"],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  const summary = await summarizeScript(
    createInterface({ input: child.stdout }),
    tid,
    fromUs,
    toUs,
  );
  const code = await closed;
  if (code !== 0) throw new Error(`perf script exited ${code}`);
  return summary;
}

/** Where --perf-basic-prof writes a process's map of its JIT code, for perf to read. */
export const perfMapFile = (pid: number) => `/tmp/perf-${pid}.map`;

/**
 * Node flags for a process perf will record: names for its JavaScript
 * functions. The flag also has V8 log heap events: into one file in `dir`
 * rather than one per isolate in the working directory (`/dev/null` would
 * send them to standard output).
 */
export function perfNodeFlags(dir: string): string[] {
  return [
    "--perf-basic-prof",
    `--logfile=${join(dir, "v8.log")}`,
    "--no-logfile-per-isolate",
  ];
}
