// Profiles one contender under load: runs a bench service with --cpu-prof
// (main thread; worker threads write their own profiles), drives it with
// autocannon, then prints where the time went, by function and by package.
// With --perf, Linux perf samples the service instead, on the CPU clock:
// the main thread's CPU time by kind (JavaScript, garbage collection,
// kernel, other native code) and by function, waits for the core left out
// (see perf-profile.ts). With --heap, what the service allocates per
// request is sampled instead, by package and function (heap-profile.ts).
// Options: USAGE below.
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RunningService, startService } from "@threadline/test-support";
import { startBackends } from "./backends.ts";
import { contenders } from "./contenders.ts";
import { readProfile, summarize } from "./cpu-profile.ts";
import { type HeapProfile, summarizeHeap } from "./heap-profile.ts";
import {
  KINDS,
  perfNodeFlags,
  perfAvailable,
  perfMapFile,
  recordPerf,
  summarizePerf,
  type PerfRecording,
} from "./perf-profile.ts";
import { load, WARM_UP } from "./load.ts";
import {
  CLK_TCK,
  machineTicks,
  monotonicUs,
  parseStat,
  processTicks,
} from "./proc.ts";
import { positive, readOptions } from "./cli.ts";

const USAGE =
  "node bench/src/profile.ts [--contender threadline-100] [--handler realistic] [--requests 20000] [--top 40] [--env KEY=VALUE ...] [--node-arg <flag> ...] [--no-profile | --perf | --heap] [--keep <dir>]";
const values = readOptions(USAGE, {
  options: {
    contender: { type: "string" },
    handler: { type: "string" },
    requests: { type: "string" },
    top: { type: "string" },
    // KEY=VALUE set in the service's environment, e.g. to turn one feature off
    env: { type: "string", multiple: true },
    // an extra flag for the service's node, e.g. --node-arg=--trace-deopt
    "node-arg": { type: "string", multiple: true },
    // only the CPU accounting, without --cpu-prof's own overhead
    "no-profile": { type: "boolean" },
    // sample with Linux perf (CPU time) instead of --cpu-prof (wall clock)
    perf: { type: "boolean" },
    // sample what the service allocates instead of where its time goes
    heap: { type: "boolean" },
    // keep the .cpuprofile files (or perf.data, and perf's map of the
    // service's JIT code is left in place) here for further analysis
    keep: { type: "string" },
  },
});
const root = fileURLToPath(new URL("../", import.meta.url));
const services = join(root, "services");
const HEAP_SAMPLER = fileURLToPath(
  new URL("heap-sampler.cjs", import.meta.url),
);
const handler = values.handler ?? "realistic";
const requests = positive(USAGE, "requests", values.requests, 20_000);
const top = positive(USAGE, "top", values.top, 40);
const name = values.contender ?? "threadline-100";
const contender = contenders.find((c) => c.name === name);
if (values.perf && !perfAvailable())
  throw new Error(
    "--perf needs Linux perf (Debian: apt-get install linux-perf)",
  );
if ([values.perf, values.heap, values["no-profile"]].filter(Boolean).length > 1)
  throw new Error(`--perf, --heap and --no-profile are one each\n${USAGE}`);
if (contender === undefined)
  throw new Error(
    `unknown contender ${name}; one of ${contenders.map((c) => c.name).join(", ")}`,
  );

/** utime+stime clock ticks of every process on the machine, keyed by command name. */
function cpuByCommand(): Map<string, number> {
  const out = new Map<string, number>();
  for (const { command, ticks } of processTicks().values())
    out.set(command, (out.get(command) ?? 0) + ticks);
  return out;
}

/** User and system clock ticks of every thread of the given processes, keyed "process/thread". */
function cpuByThread(
  pids: Record<string, number>,
): Map<string, { user: number; system: number }> {
  const out = new Map<string, { user: number; system: number }>();
  for (const [name, pid] of Object.entries(pids)) {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const s = parseStat(
          readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"),
        );
        const key = `${name}/${s.command}`;
        const t = out.get(key) ?? { user: 0, system: 0 };
        t.user += s.user;
        t.system += s.system;
        out.set(key, t);
      } catch {
        // the thread ended between listing and reading
      }
    }
  }
  return out;
}

// perf writes into the directory but does not make it.
if (values.keep !== undefined) mkdirSync(values.keep, { recursive: true });
const dir = values.keep ?? mkdtempSync(join(tmpdir(), "threadline-prof-"));
const heapFile = join(dir, "heap.json");
// Piped into a reader that stops early (`| head`): the rest of the output
// is dropped, and the backends are still stopped below.
process.stdout.on("error", () => {});
const backends = await startBackends();
let perf: PerfRecording | undefined;
let service: RunningService | undefined;
try {
  const { env, sink, consumer } = backends;
  const svc = await startService({
    entry: join(services, `${handler}.cjs`),
    cwd: root,
    execArgv: [
      ...(values.perf
        ? perfNodeFlags(dir)
        : values.heap
          ? ["-r", HEAP_SAMPLER]
          : values["no-profile"]
            ? []
            : [`--cpu-prof`, `--cpu-prof-dir=${dir}`]),
      ...(values["node-arg"] ?? []),
      ...contender.execArgv,
    ],
    env: {
      ...env,
      ...contender.env(sink.url),
      ...Object.fromEntries(
        (values.env ?? []).map((kv) => [
          kv.slice(0, kv.indexOf("=")),
          kv.slice(kv.indexOf("=") + 1),
        ]),
      ),
      ...(values.heap ? { THREADLINE_BENCH_HEAP_OUT: heapFile } : {}),
      PORT: "0",
    },
  });
  service = svc;
  await load(svc.url, WARM_UP, 20);
  if (values.heap) {
    svc.child.kill("SIGUSR2");
    // The signal is handled on the service's next turn of its event loop.
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const pids = {
    service: svc.child.pid!,
    consumer: consumer.child.pid!,
    sink: sink.child.pid!,
  };
  const perfFile = join(dir, "perf.data");
  if (values.perf) perf = await recordPerf(pids.service, perfFile);
  const before = cpuByThread(pids);
  const commandsBefore = cpuByCommand();
  const machineBefore = machineTicks();
  const from = monotonicUs();
  const { seconds } = await load(svc.url, requests, 20);
  const to = monotonicUs();
  await perf?.stop();
  const machineAfter = machineTicks();
  const commandsAfter = cpuByCommand();
  const after = cpuByThread(pids);
  process.stdout.write(
    `${name} ${handler}: ${(requests / seconds).toFixed(0)} req/s\n\n-- CPU µs per request, by process and thread (user + system) --\n`,
  );
  const perRequest = (ticks: number) => ((ticks / CLK_TCK) * 1e6) / requests;
  for (const [key, t] of after) {
    const user = perRequest(t.user - (before.get(key)?.user ?? 0));
    const system = perRequest(t.system - (before.get(key)?.system ?? 0));
    if (user + system >= 0.5)
      process.stdout.write(
        `${(user + system).toFixed(1).padStart(7)}  ${key}  (${user.toFixed(1)} + ${system.toFixed(1)})\n`,
      );
  }
  process.stdout.write(
    `\n-- CPU µs per request, by command, machine-wide --\n`,
  );
  for (const [key, ticks] of commandsAfter) {
    const us = perRequest(ticks - (commandsBefore.get(key) ?? 0));
    if (us >= 0.5)
      process.stdout.write(`${us.toFixed(1).padStart(7)}  ${key}\n`);
  }
  const busy = machineAfter.busy - machineBefore.busy;
  const total = machineAfter.total - machineBefore.total;
  process.stdout.write(
    `${perRequest(busy).toFixed(1).padStart(7)}  all (machine ${((busy / total) * 100).toFixed(0)}% busy, ${(((machineAfter.steal - machineBefore.steal) / total) * 100).toFixed(1)}% taken by the host)\n`,
  );
  await svc.stop("SIGINT");
  if (perf !== undefined) {
    // The main thread's id is the process id.
    const { kinds, places } = await summarizePerf(
      perfFile,
      pids.service,
      from,
      to,
    );
    const usPerRequest = (us: number) => (us / requests).toFixed(2).padStart(7);
    process.stdout.write(
      `\n-- main thread, CPU µs per request, sampled by perf --\n${KINDS.map((k) => `${usPerRequest(kinds[k])}  ${k}`).join("\n")}\n\n-- by JavaScript function (builtins and runtime calls included; inlined functions count as their caller), else by symbol --\n${[
        ...places,
      ]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([place, us]) => `${usPerRequest(us)}  ${place}`)
        .join("\n")}\n`,
    );
  }
  const sent = (await (await fetch(`${sink.url}/_stats`)).json()) as {
    requests: number;
    bytes: number;
    paths: Record<string, number>;
  };
  process.stdout.write(
    `\n-- telemetry sent --\n${(sent.bytes / requests).toFixed(0)} bytes per request served and ${((sent.requests / requests) * 1000).toFixed(1)} exports per 1000 (warm-up included): ${JSON.stringify(sent.paths)}\n`,
  );
  if (values.heap) {
    const profile = JSON.parse(readFileSync(heapFile, "utf8")) as
      HeapProfile | { error: string };
    if ("error" in profile)
      throw new Error(`the heap sampler failed: ${profile.error}`);
    process.stdout.write(summarizeHeap(profile, requests, top));
  }
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    process.stdout.write(
      `\n==== ${f}\n${summarize(readProfile(join(dir, f)), top)}`,
    );
  }
} finally {
  await perf?.stop().catch(() => {});
  // Stopped already unless something failed on the way.
  await service?.stop("SIGINT");
  await backends.stop();
  if (values.keep === undefined) {
    rmSync(dir, { recursive: true, force: true });
    if (perf !== undefined && service !== undefined)
      rmSync(perfMapFile(service.child.pid!), { force: true });
  }
}
