// Where a thread's CPU time goes, from Linux perf's sampling profiler on
// the software CPU clock. V8's own profiler (--cpu-prof) samples on the wall
// clock: a thread that a system call left waiting for the core (a write
// that woke PostgreSQL, on a busy two-core machine) counts as busy in that
// call, and the kernel is hidden. perf samples a thread only while it runs
// and sees all of it; it tells JavaScript (V8's builtins and runtime calls
// included, as the code that called them) from the garbage collector, the
// kernel and other native code. It cannot see into V8's inlining, though:
// a library function inlined into one of Threadline's wrappers counts as
// the wrapper, so for who-spent-what inside JavaScript, V8's profile is the
// better witness. The process must run with --perf-basic-prof, so perf can
// name its JavaScript functions.
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";

/** Samples per second of CPU time: 200 µs apart. */
export const PERF_HZ = 4999;

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
 * Records process `pid`'s threads into `file` until stopped (or until the
 * process exits). Sample times are on the monotonic clock, the clock of
 * process.hrtime, so they can be cut to a window measured elsewhere.
 */
export function recordPerf(pid: number, file: string): PerfRecording {
  const args = [
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
    "-p",
    String(pid),
  ];
  const child = spawn("perf", args, {
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
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null)
        child.kill("SIGINT");
      await exited;
    },
  };
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
}

/** The nearest JavaScript function, or else the sampled symbol, labelled with its kind. */
function placeOfStack(stack: readonly Frame[], kind: Kind): string {
  const js =
    kind === "js" ? stack.find((f) => f.symbol.startsWith("JS:")) : undefined;
  // `JS:<tier><name> <url>:<line>:<column>`; the tier marks (*, ~, ^, +, ') say how V8 compiled it.
  if (js !== undefined) return js.symbol.slice(3).replace(/^[*~^+']+/, "");
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
  const perSample = 1e6 / PERF_HZ;
  let keep = false;
  let stack: Frame[] = [];
  const flush = () => {
    if (keep) {
      const kind = kindOfStack(stack);
      kinds[kind] += perSample;
      const place = placeOfStack(stack, kind);
      places.set(place, (places.get(place) ?? 0) + perSample);
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
  return { kinds, places };
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
 * functions, and none of the V8 log files the flag would otherwise leave
 * in the working directory.
 */
export const PERF_NODE_FLAGS = [
  "--perf-basic-prof",
  "--logfile=/dev/null",
  "--no-logfile-per-isolate",
];
