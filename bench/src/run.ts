// The overhead benchmark: the same two services under the same load with
// no agent, Threadline (100% and 10% sampling), upstream OpenTelemetry,
// dd-trace and elastic-apm-node, alternated in one run for several rounds;
// beside them a yardstick that is no agent, only a fixed busy wait per
// request (realistic handler only; see contenders.ts).
//
// Every agent exports to one local sink that accepts and discards, so the
// network and backend cost is the same for all. PostgreSQL and RabbitMQ are
// real servers on loopback; a separate process drains the queue. Load comes
// from autocannon in this process, a fixed number of requests at a fixed
// concurrency per contender and round (after a warm-up), served in turns
// taken with the service with no agent, so that both see the machine at the
// same speed. Reported: medians over rounds of
// throughput (and its ratio to no agent), CPU time per request added,
// p50/p99 latency added, peak RSS added, start-up time added; plus pino
// lines/s with and without Threadline's correlation, and the export
// pipeline's spans/s. A long run then follows no agent, Threadline and
// upstream over 800,000 requests each, for the memory V8 keeps growing
// long after the rounds end. Last, three runs each of no agent and Threadline
// sampled by Linux perf say where the application's thread spends a request
// (and a pino line). Options: USAGE below.
import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
} from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { startService, type RunningService } from "@threadline/test-support";
import { startBackends } from "./backends.ts";
import { positive, readOptions } from "./cli.ts";
import { load, WARM_UP } from "./load.ts";
import { contenders, type Contender } from "./contenders.ts";
import {
  currentCommit,
  historyFileOf,
  readHistory,
  recordRun,
  summarizeRun,
  listRuns,
  type ListedRun,
} from "./history.ts";
import { PARTS, type Part } from "./parts.ts";
import {
  perfAvailable,
  perfMapFile,
  perfNodeFlags,
  perfRecordArgs,
  recordPerf,
  summarizePerf,
  type PerfRecording,
} from "./perf-profile.ts";
import {
  CLK_TCK,
  machineTicks,
  monotonicUs,
  parseStat,
  processTicks,
} from "./proc.ts";
import {
  DEFAULT_ROUNDS,
  renderReport,
  writeReport,
  type Baseline,
  MACHINE_PARTS,
  type MachinePart,
  type ReportInput,
  type LongRun,
  type Measurement,
  type MemoryParts,
  median,
  shareOf,
  type ProfileBreakdown,
} from "./report.ts";

const USAGE =
  "node bench/src/run.ts [--rounds 9] [--out docs/benchmarks.md] [--only threadline-100,otel] [--quick]";
const values = readOptions(USAGE, {
  options: {
    rounds: { type: "string" },
    out: { type: "string" },
    only: { type: "string" },
    quick: { type: "boolean" },
  },
});
// Nine: on a shared virtual machine one round's ratio can stray by a fifth
// either way, and the median of five moved as much between two runs of the
// same code.
const ROUNDS = positive(USAGE, "rounds", values.rounds, DEFAULT_ROUNDS);
const CONNECTIONS = 20;
const root = fileURLToPath(new URL("../", import.meta.url));
// Read before the run: the code measured is what was checked out at its start.
const commit = currentCommit(root);
const services = join(root, "services");
/** Where the services write their memory when asked (see services/memory.cjs). */
const memoryDir = mkdtempSync(join(tmpdir(), "threadline-bench-memory-"));
/** Correlation alone, for the pino micro-benchmark. */
const EXPORTERS_OFF = {
  OTEL_LOGS_EXPORTER: "none",
  OTEL_TRACES_EXPORTER: "none",
  OTEL_METRICS_EXPORTER: "none",
};

const handlers = [
  {
    name: "realistic",
    file: "realistic.cjs",
    amount: values.quick ? 4000 : 20_000,
  },
  { name: "hello", file: "hello.cjs", amount: values.quick ? 10_000 : 60_000 },
] as const;

/**
 * The long run: no agent, Threadline and upstream each serve the realistic
 * handler in one stretch, their memory read at each of these request
 * counts. V8 keeps growing a busy service's young generation for far longer
 * than the rounds last (see memoryText in report.ts), so what an agent adds
 * to RSS depends on how long the load has lasted.
 */
const LONG_RUN_CHECKPOINTS = values.quick
  ? [10_000, 20_000]
  : [50_000, 100_000, 200_000, 400_000, 800_000];
const LONG_RUN_CONTENDERS = ["none", "threadline-100", "otel"];

/** utime + stime of thread `tid` of process `pid`. */
function threadTicks(pid: number, tid: number): number {
  const { user, system } = parseStat(
    readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"),
  );
  return user + system;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(
    readFileSync(`/proc/${pid}/status`, "utf8"),
  );
  return m ? Number(m[1]) * 1024 : 0;
}

function shuffle<T>(list: T[], seed: number): T[] {
  const out = [...list];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * CPU time per part of process `pid`'s main thread in `window`, from the
 * perf recording in `dir`, divided by `per`.
 */
async function profileParts(
  dir: string,
  pid: number,
  window: [number, number],
  per: number,
): Promise<Record<Part, number>> {
  try {
    // The main thread's id is the process id.
    const { parts } = await summarizePerf(
      join(dir, "perf.data"),
      pid,
      ...window,
    );
    for (const k of PARTS) parts[k] /= per;
    return parts;
  } finally {
    rmSync(perfMapFile(pid), { force: true });
  }
}

/**
 * Processes that are a part of the machine of their own: this one (it runs
 * autocannon), and the queue's consumer and the telemetry sink once started.
 */
const namedProcesses = new Map<number, MachinePart>([[process.pid, "load"]]);
const RABBITMQ_COMMANDS = /^(beam\.smp|erl_child_setup|epmd|inet_gethost)$/;

/** The part of the machine process `pid` counts for while `service` serves a turn. */
function machinePartOf(
  pid: number,
  command: string,
  service: number,
): MachinePart {
  if (pid === service) return "service";
  const named = namedProcesses.get(pid);
  if (named !== undefined) return named;
  if (command === "postgres") return "postgres";
  if (RABBITMQ_COMMANDS.test(command)) return "rabbitmq";
  return "rest";
}

/** A started service and when it took to listen. */
interface Started {
  svc: RunningService;
  pid: number;
  startupMs: number;
}

async function start(
  contender: Contender,
  handler: (typeof handlers)[number],
  env: Record<string, string>,
  sink: string,
  execArgv: string[] = [],
): Promise<Started> {
  const started = performance.now();
  const svc = await startService({
    entry: join(services, handler.file),
    cwd: root,
    execArgv: [
      "-r",
      join(services, "memory.cjs"),
      ...execArgv,
      ...contender.execArgv,
    ],
    env: {
      ...env,
      ...contender.env(sink),
      BENCH_MEMORY_DIR: memoryDir,
      PORT: "0",
    },
    timeoutMs: 60_000,
  });
  return {
    svc,
    pid: svc.child.pid!,
    startupMs: performance.now() - started,
  };
}

/** Where a started service's memory is now, by part; undefined if it did not say within a few seconds. */
async function memoryOf(s: Started): Promise<MemoryParts | undefined> {
  const file = join(memoryDir, `${s.pid}.json`);
  rmSync(file, { force: true });
  s.svc.child.kill("SIGUSR2");
  for (let waited = 0; waited < 5_000; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(file)) continue;
    const parts = JSON.parse(readFileSync(file, "utf8")) as MemoryParts;
    unlinkSync(file);
    return parts;
  }
  return undefined;
}

// SIGINT: the services exit on it themselves, whatever an agent does with
// SIGTERM (the zero-code upstream setup shuts its SDK down and stays up).
const stop = (s: Started) => s.svc.stop("SIGINT", 15_000);

/** What a service did over one or more stretches of load, summed. */
class Tally {
  requests = 0;
  seconds = 0;
  mainTicks = 0;
  machineTotal = 0;
  machineSteal = 0;
  /** The machine's busy ticks by part (what no process of a part took is the rest's); the service's are its CPU. */
  readonly machineParts = Object.fromEntries(
    MACHINE_PARTS.map((p) => [p, 0]),
  ) as Record<MachinePart, number>;
  peakRss = 0;
  readonly p50: number[] = [];
  readonly p99: number[] = [];

  /** Serves `amount` requests at the bench's concurrency and adds them in. */
  async run(s: Started, amount: number, label: string): Promise<void> {
    const { pid } = s;
    this.peakRss = Math.max(this.peakRss, rssBytes(pid));
    const sampler = setInterval(() => {
      this.peakRss = Math.max(this.peakRss, rssBytes(pid));
    }, 200);
    const main0 = threadTicks(pid, pid); // the main thread's id is the process id
    const procs0 = processTicks();
    const machine0 = machineTicks();
    const { result: r, seconds } = await load(s.svc.url, amount, CONNECTIONS);
    const main1 = threadTicks(pid, pid);
    const machine1 = machineTicks();
    const procs1 = processTicks();
    clearInterval(sampler);
    this.peakRss = Math.max(this.peakRss, rssBytes(pid));
    if (r.errors > 0 || r.non2xx > 0)
      throw new Error(
        `${label}: ${r.errors} errors, ${r.non2xx} non-2xx answers`,
      );
    this.requests += r.requests.total;
    this.seconds += seconds;
    this.mainTicks += main1 - main0;
    this.machineTotal += machine1.total - machine0.total;
    this.machineSteal += machine1.steal - machine0.steal;
    let named = 0;
    for (const [p, after] of procs1) {
      const part = machinePartOf(p, after.command, pid);
      if (part === "rest") continue;
      // A process started during the turn took all its time in it.
      const took = after.ticks - (procs0.get(p)?.ticks ?? 0);
      this.machineParts[part] += took;
      named += took;
    }
    this.machineParts.rest += machine1.busy - machine0.busy - named;
    this.p50.push(r.latency.p50);
    this.p99.push(r.latency.p99);
  }

  /** Adds `other`'s stretches to this one's. */
  merge(other: Tally): void {
    this.requests += other.requests;
    this.seconds += other.seconds;
    this.mainTicks += other.mainTicks;
    this.machineTotal += other.machineTotal;
    this.machineSteal += other.machineSteal;
    for (const p of MACHINE_PARTS)
      this.machineParts[p] += other.machineParts[p];
    this.peakRss = Math.max(this.peakRss, other.peakRss);
    this.p50.push(...other.p50);
    this.p99.push(...other.p99);
  }

  /** The figures of a Measurement this tally gives. */
  figures(): Baseline {
    const usPerRequest = (ticks: number) =>
      ((ticks / CLK_TCK) * 1e6) / this.requests;
    return {
      rps: this.requests / this.seconds,
      p50: median(this.p50),
      p99: median(this.p99),
      cpuUsPerRequest: usPerRequest(this.machineParts.service),
      mainThreadUsPerRequest: usPerRequest(this.mainTicks),
      stolenShare: this.machineSteal / Math.max(1, this.machineTotal),
      machineUsPerRequest: usPerRequest(
        MACHINE_PARTS.reduce((sum, p) => sum + this.machineParts[p], 0),
      ),
      machineParts: Object.fromEntries(
        MACHINE_PARTS.map((p) => [p, usPerRequest(this.machineParts[p])]),
      ) as Record<MachinePart, number>,
    };
  }
}

/**
 * Turns each contender takes with no agent within a round, and the requests
 * in each turn: the machine's speed drifts from second to second, and two
 * services measured a second apart, many times over, see the same machine.
 */
const TURNS = 5;
/** A pause between turns, so that one turn's closing connections are not the next one's work. */
const SETTLE_MS = 100;

/**
 * Measures `contender` in a fresh process, taking turns with `bare` (the
 * service with no agent, already warm): each serves the handler's amount of
 * requests in TURNS turns, in alternating order. Returns the contender's
 * measurement, its turns of no agent as the baseline, and adds those turns
 * to `bareTally`.
 */
async function measureInTurns(
  contender: Contender,
  handler: (typeof handlers)[number],
  env: Record<string, string>,
  sink: string,
  round: number,
  bare: Started,
  bareTally: Tally,
): Promise<Measurement> {
  const s = await start(contender, handler, env, sink);
  try {
    await load(s.svc.url, WARM_UP, CONNECTIONS); // JIT, pools, connections
    const mine = new Tally();
    const theirs = new Tally();
    const label = `${contender.name}/${handler.name}`;
    const turn = handler.amount / TURNS;
    for (let t = 0; t < TURNS; t++) {
      const runs: Array<() => Promise<void>> = [
        () => mine.run(s, turn, label),
        () => theirs.run(bare, turn, `none/${handler.name}`),
      ];
      if (t % 2 === 1) runs.reverse();
      for (const run of runs) {
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        await run();
      }
    }
    bareTally.merge(theirs);
    // Both services' memory as their turns end, side by side.
    const memory = await memoryOf(s);
    const bareMemory = await memoryOf(bare);
    return {
      contender: contender.name,
      handler: handler.name,
      round,
      ...mine.figures(),
      memory,
      rssBytes: mine.peakRss,
      startupMs: s.startupMs,
      baseline: { ...theirs.figures(), memory: bareMemory },
    };
  } finally {
    await stop(s);
  }
}

/**
 * One continuous measured run of `contender` under perf, recorded into
 * `profileDir`: its process, the monotonic window of the run and the
 * requests served, to cut the recording to.
 */
async function profiledRun(
  contender: Contender,
  handler: (typeof handlers)[number],
  env: Record<string, string>,
  sink: string,
  profileDir: string,
): Promise<{ window: [number, number]; requests: number; pid: number }> {
  const s = await start(
    contender,
    handler,
    env,
    sink,
    perfNodeFlags(profileDir),
  );
  let perf: PerfRecording | undefined;
  try {
    await load(s.svc.url, WARM_UP, CONNECTIONS);
    perf = await recordPerf(s.pid, join(profileDir, "perf.data"));
    const from = monotonicUs();
    const { result: r } = await load(s.svc.url, handler.amount, CONNECTIONS);
    const to = monotonicUs();
    await perf.stop();
    return { window: [from, to], requests: r.requests.total, pid: s.pid };
  } finally {
    await perf?.stop().catch(() => {});
    await stop(s);
  }
}

async function micro(
  file: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<number> {
  return Number((await microOutput(file, args, env)).pop());
}

/** The lines a micro-benchmark printed; run under `wrap` (a command and its arguments) if given. */
async function microOutput(
  file: string,
  args: string[],
  env: Record<string, string>,
  wrap: string[] = [],
): Promise<string[]> {
  const command = [process.execPath, ...args, join(root, "src", file)];
  const [program, ...rest] = [...wrap, ...command];
  return new Promise((resolve, reject) => {
    const child = spawn(program!, rest, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.on("close", (code) =>
      code === 0
        ? resolve(out.trim().split("\n"))
        : reject(new Error(`${file} exited ${code}: ${out}`)),
    );
  });
}

/** Runs `fn` with a fresh directory for a perf recording, removed afterwards. */
async function inProfileDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "threadline-bench-prof-"));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU time per line by part of the pino micro-benchmark's measured loop, recorded by perf from its start. */
function pinoProfile(
  args: string[],
  env: Record<string, string>,
): Promise<Record<Part, number>> {
  return inProfileDir(async (dir) => {
    const lines = await microOutput(
      "pino-micro.cjs",
      [...perfNodeFlags(dir), ...args],
      { ...env, WINDOW: "1" },
      ["perf", ...perfRecordArgs(join(dir, "perf.data")), "--"],
    );
    const w = lines.find((l) => l.startsWith("window "))?.split(" ");
    if (w === undefined) throw new Error("pino-micro.cjs printed no window");
    return profileParts(
      dir,
      Number(w[4]),
      [Number(w[1]), Number(w[2])],
      Number(w[3]),
    );
  });
}

/**
 * Runs each of `runs` `rounds` times, taking turns and rotating the order
 * each round; returns each one's results in round order. Runs compared with
 * each other take turns because the machine's speed drifts: a share is then
 * the median of the shares within a round.
 */
async function alternated<T>(
  rounds: number,
  runs: Array<() => Promise<T>>,
): Promise<T[][]> {
  const out = runs.map((): T[] => []);
  for (let r = 0; r < rounds; r++)
    for (let k = 0; k < runs.length; k++) {
      const i = (r + k) % runs.length;
      out[i]!.push(await runs[i]!());
    }
  return out;
}

/**
 * Turns each micro-benchmark process takes in a round, beside the ones it
 * is compared with: as the services do (see measureInTurns), they see the
 * machine at the same speed, where runs a few seconds apart may not.
 */
const MICRO_TURNS = 5;

interface MicroSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/** A micro-benchmark process that runs a slice of its loop each time it is asked (its TURNS mode). */
class TurnTaker {
  readonly #file: string;
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  #count = 0;
  #ms = 0;

  constructor(spec: MicroSpec) {
    this.#file = spec.file;
    this.#child = spawn(
      process.execPath,
      [...spec.args, join(root, "src", spec.file)],
      {
        cwd: root,
        env: { ...process.env, ...spec.env, TURNS: String(MICRO_TURNS) },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    this.#lines = createInterface({ input: this.#child.stdout! })[
      Symbol.asyncIterator
    ]();
  }

  async #next(): Promise<string> {
    const r = await this.#lines.next();
    if (r.done) throw new Error(`${this.#file} exited in the middle of a turn`);
    return r.value;
  }

  /** Waits for the warm-up to end. */
  async ready(): Promise<void> {
    const line = await this.#next();
    if (line !== "ready")
      throw new Error(`${this.#file} printed ${line} instead of ready`);
  }

  async turn(): Promise<void> {
    this.#child.stdin!.write("go\n");
    const [lines, ms] = (await this.#next()).split(" ").map(Number);
    if (!(lines! > 0 && ms! > 0))
      throw new Error(`${this.#file} printed a turn it could not have run`);
    this.#count += lines!;
    this.#ms += ms!;
  }

  /** Lines (or calls) per second over its turns. */
  get rate(): number {
    return this.#count / (this.#ms / 1000);
  }

  /** Ends it, killing it if it has not exited 10 s after its input ended. */
  async close(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((r) => child.once("close", r));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await closed;
    clearTimeout(timer);
  }
}

/**
 * Runs the micro-benchmarks `specs` side by side for `rounds` rounds: fresh
 * processes each round, warmed up one at a time, then MICRO_TURNS turns
 * each, one process running at a time, in an order rotated every turn and
 * round. Returns each one's rate per round.
 */
async function microInTurns(
  rounds: number,
  specs: MicroSpec[],
): Promise<number[][]> {
  const out = specs.map((): number[] => []);
  for (let r = 0; r < rounds; r++) {
    const takers: TurnTaker[] = [];
    try {
      for (const spec of specs) {
        const taker = new TurnTaker(spec);
        takers.push(taker);
        await taker.ready();
      }
      for (let t = 0; t < MICRO_TURNS; t++)
        for (let k = 0; k < takers.length; k++)
          await takers[(r + t + k) % takers.length]!.turn();
      takers.forEach((taker, i) => out[i]!.push(taker.rate));
    } finally {
      await Promise.all(takers.map((taker) => taker.close()));
    }
  }
  return out;
}

/** Each round's `of` over its `base`. */
const shareOver = (of: number[], base: number[]) =>
  shareOf(of.map((x, i) => x / base[i]!));

const REGISTER = ["-r", "@threadline/node/register"];
/** Correlated pino lines are logged in a span, for a customer: they carry trace_id, span_id and customer.id. */
const IN_REQUEST = { MODE: "span", CUSTOMER: "c-1042" };
/**
 * Rounds of each micro-benchmark (a fresh process per run, on one core):
 * nine, as for the services; with five, one run of unchanged code put
 * correlated pino at 0.78 of plain, and single pairs run just after gave
 * 0.63, 0.89, 0.93 and 0.89.
 */
const MICRO_ROUNDS = 9;

/** One measurement's line on stderr, as the run goes. */
function report(round: number, handler: string, m: Measurement): void {
  const base =
    m.baseline === undefined
      ? ""
      : `  (no agent in its turns ${m.baseline.rps.toFixed(0)} req/s)`;
  process.stderr.write(
    `round ${round + 1}/${ROUNDS} ${handler.padEnd(9)} ${m.contender.padEnd(15)} ${m.rps.toFixed(0).padStart(6)} req/s  p50 ${m.p50} ms  p99 ${m.p99} ms  ${m.cpuUsPerRequest.toFixed(0)} µs CPU/req (machine ${(m.machineUsPerRequest ?? NaN).toFixed(0)})  RSS ${(m.rssBytes / 2 ** 20).toFixed(0)} MB  start ${m.startupMs.toFixed(0)} ms${base}\n`,
  );
}

/**
 * `contender` serving the realistic handler from its start in one stretch,
 * with no warm-up of its own: its peak RSS over each stretch up to a
 * checkpoint, and its memory by part at the checkpoint.
 */
async function longRun(
  contender: Contender,
  env: Record<string, string>,
  sink: string,
): Promise<LongRun> {
  const realistic = handlers.find((h) => h.name === "realistic")!;
  const s = await start(contender, realistic, env, sink);
  try {
    const points: LongRun["points"] = [];
    let served = 0;
    for (const at of LONG_RUN_CHECKPOINTS) {
      const tally = new Tally();
      await tally.run(s, at - served, `${contender.name}/long run`);
      served = at;
      const memory = await memoryOf(s);
      points.push({
        requests: at,
        peakRss: tally.peakRss,
        ...(memory === undefined ? {} : { memory }),
      });
      process.stderr.write(
        `long run ${contender.name.padEnd(15)} ${at.toLocaleString("en").padStart(9)} requests  RSS ${(tally.peakRss / 2 ** 20).toFixed(0)} MB  young ${((memory?.young ?? NaN) / 2 ** 20).toFixed(0)} MB\n`,
      );
    }
    return { contender: contender.name, points };
  } finally {
    await stop(s);
  }
}

// No agent always runs: every other contender is measured beside it.
const selected = values.only
  ? contenders.filter(
      (c) => c.name === "none" || values.only!.split(",").includes(c.name),
    )
  : contenders;
// Piped into a reader that stops early (`| head`): the rest of the output
// is dropped, and the backends are still stopped below.
process.stdout.on("error", () => {});
const backends = await startBackends();
const { env, sink: sinkSvc } = backends;
namedProcesses.set(backends.consumer.child.pid!, "consumer");
namedProcesses.set(sinkSvc.child.pid!, "sink");
const results: Measurement[] = [];
try {
  const bare = contenders.find((c) => c.name === "none")!;
  for (let round = 0; round < ROUNDS; round++) {
    for (const handler of handlers) {
      const running = selected.filter(
        (c) =>
          c.name !== "none" && (c.handlers?.includes(handler.name) ?? true),
      );
      // No agent stays up for the round, and every contender takes turns
      // with it (see measureInTurns).
      const b = await start(bare, handler, env, sinkSvc.url);
      const bareTally = new Tally();
      let bareMemory: MemoryParts | undefined;
      try {
        await load(b.svc.url, WARM_UP, CONNECTIONS);
        for (const contender of shuffle(running, round * 7 + handler.amount)) {
          const m = await measureInTurns(
            contender,
            handler,
            env,
            sinkSvc.url,
            round,
            b,
            bareTally,
          );
          results.push(m);
          report(round, handler.name, m);
        }
        bareMemory = await memoryOf(b);
      } finally {
        await stop(b);
      }
      const m: Measurement = {
        contender: bare.name,
        handler: handler.name,
        round,
        ...bareTally.figures(),
        memory: bareMemory,
        rssBytes: bareTally.peakRss,
        startupMs: b.startupMs,
      };
      results.push(m);
      report(round, handler.name, m);
    }
  }
  const longRuns: LongRun[] = [];
  for (const name of LONG_RUN_CONTENDERS) {
    const c = selected.find((x) => x.name === name);
    if (c !== undefined) longRuns.push(await longRun(c, env, sinkSvc.url));
  }
  // Micro-benchmarks run one at a time: they measure CPU, and share two cores.
  const pino = (args: string[], env: Record<string, string>): MicroSpec => ({
    file: "pino-micro.cjs",
    args,
    env,
  });
  const [pinoPlain, pinoPlainFast, pinoCorrelated, pinoExported] =
    await microInTurns(MICRO_ROUNDS, [
      pino([], { MODE: "plain" }),
      pino([], { MODE: "plain", FAST: "1" }),
      pino(REGISTER, { ...IN_REQUEST, ...EXPORTERS_OFF }),
      pino(REGISTER, {
        ...IN_REQUEST,
        OTEL_EXPORTER_OTLP_ENDPOINT: sinkSvc.url,
      }),
    ]);
  const [debugPlain, debugGated] = await microInTurns(MICRO_ROUNDS, [
    pino([], { MODE: "span", CALL: "debug" }),
    pino(REGISTER, {
      MODE: "span",
      CALL: "debug",
      OTEL_EXPORTER_OTLP_ENDPOINT: sinkSvc.url,
    }),
  ]);
  const [exportThreadline, exportUpstream] = await alternated(
    MICRO_ROUNDS,
    ["threadline", "upstream"].map(
      (who) => () =>
        micro("export-micro.mjs", [], {
          OTEL_EXPORTER_OTLP_ENDPOINT: sinkSvc.url,
          WHO: who,
        }),
    ),
  );
  // Fresh processes too; each alternates its own workers, with and without.
  const terminations: Array<[number, number]> = [];
  for (let r = 0; r < MICRO_ROUNDS; r++) {
    const line = (
      await microOutput("worker-terminate-micro.mjs", REGISTER, {
        OTEL_EXPORTER_OTLP_ENDPOINT: sinkSvc.url,
      })
    ).pop();
    const [threadline, plain] = (line ?? "").split(" ").map(Number);
    if (!Number.isFinite(threadline) || !Number.isFinite(plain))
      throw new Error(`worker-terminate-micro.mjs printed "${line}"`);
    terminations.push([threadline!, plain!]);
  }
  const microResults = {
    pinoPlain: median(pinoPlain!),
    pinoCorrelated: median(pinoCorrelated!),
    pinoCorrelatedShare: shareOver(pinoCorrelated!, pinoPlain!),
    pinoCorrelatedExported: median(pinoExported!),
    pinoCorrelatedExportedShare: shareOver(pinoExported!, pinoPlain!),
    pinoPlainFast: median(pinoPlainFast!),
    pinoCorrelatedOverFastShare: shareOver(pinoCorrelated!, pinoPlainFast!),
    debugPlain: median(debugPlain!),
    debugGated: median(debugGated!),
    debugGatedShare: shareOver(debugGated!, debugPlain!),
    exportThreadline: median(exportThreadline!),
    exportUpstream: median(exportUpstream!),
    workerTerminateMs: {
      threadline: median(terminations.map((t) => t[0])),
      plain: median(terminations.map((t) => t[1])),
    },
    rounds: MICRO_ROUNDS,
    turns: MICRO_TURNS,
  };
  // Profiled runs, no agent and Threadline alternated: sampling slows a
  // process, so these figures are for comparing parts, not for the tables
  // above. Medians per part, as one run can land in a slow spell.
  const breakdowns: ProfileBreakdown[] = [];
  const compare = async (
    handler: string,
    runNone: () => Promise<Record<Part, number>>,
    runThreadline: () => Promise<Record<Part, number>>,
  ) => {
    const [runsNone, runsThreadline] = await alternated(Math.min(ROUNDS, 3), [
      runNone,
      runThreadline,
    ]);
    const medians = (xs: Record<Part, number>[]) =>
      Object.fromEntries(
        PARTS.map((k) => [k, median(xs.map((x) => x[k]))]),
      ) as Record<Part, number>;
    breakdowns.push({
      handler,
      none: medians(runsNone!),
      threadline: medians(runsThreadline!),
    });
    process.stderr.write(`profiled ${handler}\n`);
  };
  const none = selected.find((c) => c.name === "none");
  const tl = selected.find((c) => c.name === "threadline-100");
  if (none !== undefined && tl !== undefined && !perfAvailable())
    process.stderr.write(
      "no CPU profiles: Linux perf was not found (Debian: apt-get install linux-perf)\n",
    );
  else if (none !== undefined && tl !== undefined) {
    const profiled = (c: Contender, handler: (typeof handlers)[number]) => () =>
      inProfileDir(async (dir) => {
        const m = await profiledRun(c, handler, env, sinkSvc.url, dir);
        return profileParts(dir, m.pid, m.window, m.requests);
      });
    for (const handler of handlers)
      await compare(
        handler.name,
        profiled(none, handler),
        profiled(tl, handler),
      );
    await compare(
      "pino",
      () => pinoProfile([], { MODE: "plain" }),
      () =>
        pinoProfile(REGISTER, {
          ...IN_REQUEST,
          ...EXPORTERS_OFF,
        }),
    );
  }
  const versions: Record<string, string> = {};
  for (const p of [
    "@opentelemetry/sdk-node",
    "@opentelemetry/instrumentation-http",
    "@opentelemetry/auto-instrumentations-node",
    "dd-trace",
    "elastic-apm-node",
    "pino",
    "pg",
    "amqplib",
    "autocannon",
  ]) {
    // The bench's own copy when npm could not hoist it, else the workspace's.
    const file = [root, join(root, "..")]
      .map((dir) => join(dir, "node_modules", p, "package.json"))
      .find((f) => existsSync(f));
    versions[p] =
      file === undefined
        ? "?"
        : (JSON.parse(readFileSync(file, "utf8")) as { version: string })
            .version;
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? "CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux; Node ${process.versions.node}; PostgreSQL and RabbitMQ from the distribution, on the same machine`;
  const input: ReportInput = {
    results,
    longRuns,
    micro: microResults,
    breakdowns,
    contenders: selected.map((c) => ({ name: c.name, label: c.label })),
    rounds: ROUNDS,
    connections: CONNECTIONS,
    turns: TURNS,
    handlers: handlers.map((h) => ({ name: h.name, amount: h.amount })),
    warmUp: WARM_UP,
    machine,
    versions,
    date: new Date().toISOString().slice(0, 10),
    ...(commit === undefined ? {} : { commit }),
  };
  let history: ListedRun[] = [];
  if (values.out !== undefined) {
    // A quick look is no run to set beside the others.
    const run = values.quick ? undefined : summarizeRun(input);
    const file = historyFileOf(values.out);
    history = listRuns(
      run === undefined ? readHistory(file) : recordRun(file, run),
      run,
    );
  }
  process.stdout.write(
    values.out
      ? writeReport(input, values.out, history)
      : renderReport(input).markdown,
  );
} finally {
  await backends.stop();
  rmSync(memoryDir, { recursive: true, force: true });
}
