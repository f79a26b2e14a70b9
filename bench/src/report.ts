// Turns the runs into docs/benchmarks.md and a bar chart (SVG): medians per
// contender and handler, ratios and differences against no agent, and the
// goals checked against the figures of this run.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUSY_WAIT_US, YARDSTICK } from "./contenders.ts";
import type { ListedRun } from "./history.ts";
import { PART_LABELS, PARTS, type Part } from "./parts.ts";

/** The rounds `npm run bench` runs, whatever a run was given. */
export const DEFAULT_ROUNDS = 9;

/**
 * Where the machine's CPU time goes while a service serves its turns: the
 * service, the servers and processes it works with, and the rest (the
 * kernel's own threads and interrupts, the other service waiting its turn).
 */
export const MACHINE_PARTS = [
  "service",
  "postgres",
  "rabbitmq",
  "consumer",
  "sink",
  "load",
  "rest",
] as const;
export type MachinePart = (typeof MACHINE_PARTS)[number];

const MACHINE_PART_LABELS: Record<MachinePart, string> = {
  service: "the service",
  postgres: "PostgreSQL",
  rabbitmq: "RabbitMQ",
  consumer: "the queue's consumer (no agent in it)",
  sink: "the telemetry sink",
  load: "the load generator",
  rest: "the rest (the kernel's own threads and interrupts, the other service waiting)",
};

/** The figures of a measured load that drift with the machine's speed. */
export interface Baseline {
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
  /** The part of cpuUsPerRequest spent on the application's (main) thread. */
  mainThreadUsPerRequest: number;
  /** The share of the machine's CPU time its host took during the measured load (VM steal time). */
  stolenShare: number;
  /**
   * The whole machine's busy CPU time (every process and the kernel) over
   * the measured load, per request; absent from runs made before it was
   * measured, as are the two below.
   */
  machineUsPerRequest?: number;
  /** machineUsPerRequest by where it went. */
  machineParts?: Record<MachinePart, number>;
  /**
   * Where the service's memory was once the turns were over (absent from
   * runs made before it was read).
   */
  memory?: MemoryParts;
}

/** A service's memory by part, in bytes, as V8 counts it (see services/memory.cjs). */
export interface MemoryParts {
  rss: number;
  /** V8's young generation: its semi-spaces and young large objects. */
  young: number;
  /** Compiled code and bytecode's metadata (V8's code and trusted spaces). */
  code: number;
  /** The rest of V8's heap: objects that survived two young collections, and V8's own. */
  otherHeap: number;
  /** The most V8 had allocated with malloc at once (parsers' and compilers' working memory), since start. */
  compilerPeak: number;
}

export interface Measurement extends Baseline {
  contender: string;
  handler: string;
  /** Which round of the run: throughput is compared within a round. */
  round: number;
  rssBytes: number;
  startupMs: number;
  /**
   * No agent's figures over the turns it took with this contender (absent
   * for no agent itself): what this contender is compared with.
   */
  baseline?: Baseline;
}

/** The keys of a Measurement that hold a number. */
type NumericKey = {
  [K in keyof Measurement]-?: Measurement[K] extends number | undefined
    ? K
    : never;
}[keyof Measurement];

/** One run's figure over another's, the median of the rounds' ratios, with the lowest and highest. */
export interface Share {
  median: number;
  range: [number, number];
}

/** Main-thread self time by part, per request (per line for pino), from CPU profiles, in µs. */
export interface ProfileBreakdown {
  handler: string;
  none: Record<Part, number>;
  threadline: Record<Part, number>;
}

/**
 * One contender serving the realistic handler in one stretch from its
 * start: its peak RSS over each stretch up to a checkpoint, and its memory
 * by part at the checkpoint.
 */
export interface LongRun {
  contender: string;
  points: Array<{
    /** Requests served since the service started. */
    requests: number;
    peakRss: number;
    memory?: MemoryParts;
  }>;
}

export interface ReportInput {
  results: Measurement[];
  /** Absent from runs made before the long run was measured. */
  longRuns?: LongRun[];
  breakdowns: ProfileBreakdown[];
  micro: {
    pinoPlain: number;
    pinoCorrelated: number;
    pinoCorrelatedShare: Share;
    pinoCorrelatedExported: number;
    pinoCorrelatedExportedShare: Share;
    /**
     * Plain pino whose logger was given fast properties, as Threadline
     * gives pino's loggers: what correlation costs on its own. Absent from
     * runs made before it was measured.
     */
    pinoPlainFast?: number;
    pinoCorrelatedOverFastShare?: Share;
    /** Rounds of each micro-benchmark. */
    rounds: number;
    /** Turns each pino run took per round beside the runs it is compared with. */
    turns: number;
    debugPlain: number;
    debugGated: number;
    debugGatedShare: Share;
    exportThreadline: number;
    exportUpstream: number;
    /**
     * Median ms a terminate() of an idle worker thread with nothing to send
     * took, running Threadline and not. Absent from runs made before it was
     * measured.
     */
    workerTerminateMs?: { threadline: number; plain: number };
  };
  contenders: Array<{ name: string; label: string }>;
  rounds: number;
  connections: number;
  /** Turns each contender took with no agent per round. */
  turns: number;
  handlers: Array<{ name: string; amount: number }>;
  /** Requests each service served before its measured run. */
  warmUp: number;
  machine: string;
  versions: Record<string, string>;
  date: string;
  /** The commit measured (runs made in a git checkout). */
  commit?: string;
}

export interface Summary {
  contender: string;
  handler: string;
  rps: number;
  /** Median over rounds of this contender's throughput over no agent's in the same round. */
  ratio: number;
  /** The lowest and highest of those per-round ratios. */
  ratioRange: [number, number];
  cpuAdded: number;
  /** The whole machine's CPU time per request added (NaN for runs that did not measure it). */
  machineAdded: number;
  mainThreadAdded: number;
  p50Added: number;
  p99Added: number;
  rssAddedMb: number;
  startupAddedMs: number;
  /** Median over rounds of the share of the machine's CPU time the host took. */
  stolen: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2
    ? s[(s.length - 1) / 2]!
    : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The median of per-round ratios, with the lowest and highest. */
export function shareOf(ratios: number[]): Share {
  return {
    median: median(ratios),
    range: [Math.min(...ratios), Math.max(...ratios)],
  };
}

/**
 * `key` of contenders `a` and `b` in each round both ran, combined by `f`.
 * A drifting figure (see Baseline) of a contender that took turns with no
 * agent is compared as what it is beside no agent in those turns: against
 * no agent, with those turns; against another contender, each beside its
 * own (a share over a share, an addition less an addition).
 */
function perRound(
  input: ReportInput,
  handler: string,
  a: string,
  b: string,
  key: NumericKey,
  kind: "ratio" | "difference",
): number[] {
  const f =
    kind === "ratio"
      ? (x: number, y: number) => x / y
      : (x: number, y: number) => x - y;
  const out: number[] = [];
  for (let round = 0; round < input.rounds; round++) {
    const find = (c: string) =>
      input.results.find(
        (r) => r.handler === handler && r.contender === c && r.round === round,
      );
    const ma = find(a);
    const mb = find(b);
    if (ma === undefined || mb === undefined) continue;
    const x = ma[key] as number | undefined;
    const y = mb[key] as number | undefined;
    if (x === undefined || y === undefined) continue;
    // A baseline holds exactly the drifting figures.
    const drifts = (m: Measurement) =>
      m.baseline !== undefined && key in m.baseline ? m.baseline : undefined;
    const baseA = drifts(ma)?.[key as keyof Baseline] as number | undefined;
    const baseB = drifts(mb)?.[key as keyof Baseline] as number | undefined;
    if (baseA !== undefined && b === "none") out.push(f(x, baseA));
    else if (baseA !== undefined && baseB !== undefined)
      out.push(f(f(x, baseA), f(y, baseB)));
    else out.push(f(x, y));
  }
  return out;
}

/**
 * Throughput of contender `a` over contender `b`, round by round: the
 * machine's speed drifts over a run (other tenants, frequency), and ratios
 * taken within a round, of turns taken a second apart, leave that drift out.
 */
export function pairedRatio(
  input: ReportInput,
  handler: string,
  a: string,
  b: string,
): Share {
  return shareOf(perRound(input, handler, a, b, "rps", "ratio"));
}

/**
 * What contender `a` adds to contender `b`'s `key`: the median of the
 * differences within each round, for the same reason as {@link pairedRatio}
 * (a CPU time per request drifts with the machine's speed as throughput does).
 */
export function pairedDifference(
  input: ReportInput,
  handler: string,
  a: string,
  b: string,
  key: NumericKey,
): number {
  return median(perRound(input, handler, a, b, key, "difference"));
}

/**
 * What contender `c` adds to one part of the machine's CPU time per
 * request, beside no agent in its turns: the median over rounds; NaN for
 * runs that did not measure it.
 */
function machinePartAdded(
  input: ReportInput,
  handler: string,
  c: string,
  part: MachinePart,
): number {
  return median(
    input.results.flatMap((m) => {
      if (m.handler !== handler || m.contender !== c) return [];
      const mine = m.machineParts?.[part];
      const theirs = m.baseline?.machineParts?.[part];
      return mine === undefined || theirs === undefined ? [] : [mine - theirs];
    }),
  );
}

/** A ratio followed by its lowest and highest round, "0.68 (0.66–0.78)". */
function withRange(ratio: string, [low, high]: [number, number]): string {
  return `${ratio} (${fmt(low, 2)}–${fmt(high, 2)})`;
}

export function summarize(input: ReportInput): Summary[] {
  const out: Summary[] = [];
  for (const h of input.handlers) {
    const of = (c: string) =>
      input.results.filter((r) => r.handler === h.name && r.contender === c);
    const m = (c: string, k: NumericKey) =>
      median(of(c).map((r) => r[k] as number));
    for (const c of input.contenders) {
      // A contender may run with some handlers only (the yardstick).
      if (of(c.name).length === 0) continue;
      const share = pairedRatio(input, h.name, c.name, "none");
      const added = (k: NumericKey) =>
        pairedDifference(input, h.name, c.name, "none", k);
      out.push({
        contender: c.name,
        handler: h.name,
        rps: m(c.name, "rps"),
        ratio: share.median,
        ratioRange: share.range,
        cpuAdded: added("cpuUsPerRequest"),
        machineAdded: added("machineUsPerRequest"),
        mainThreadAdded: added("mainThreadUsPerRequest"),
        p50Added: added("p50"),
        p99Added: added("p99"),
        rssAddedMb: added("rssBytes") / 2 ** 20,
        startupAddedMs: added("startupMs"),
        stolen: m(c.name, "stolenShare"),
      });
    }
  }
  return out;
}

/** The memory table's columns: a heading, and the part of a service's memory it shows. */
const MEMORY_COLUMNS: Array<[string, (m: MemoryParts) => number]> = [
  ["RSS", (m) => m.rss],
  ["V8's young generation", (m) => m.young],
  ["code and bytecode", (m) => m.code],
  ["the rest of V8's heap", (m) => m.otherHeap],
  ["outside V8's heap", (m) => m.rss - m.young - m.code - m.otherHeap],
  ["V8's peak malloc", (m) => m.compilerPeak],
];

/** What each contender added to each part of memory (MB, medians over rounds), beside no agent as its turns ended. */
function memoryText(input: ReportInput): string {
  const tables = input.handlers.flatMap((h) => {
    const mine = (c: string) =>
      input.results.filter(
        (r) =>
          r.handler === h.name &&
          r.contender === c &&
          r.memory !== undefined &&
          r.baseline?.memory !== undefined,
      );
    const rows = input.contenders.filter((c) => mine(c.name).length > 0);
    if (rows.length === 0) return [];
    const added = (c: string, part: (m: MemoryParts) => number) =>
      median(
        mine(c).map((r) => mb(part(r.memory!) - part(r.baseline!.memory!))),
      );
    const bare = input.results.flatMap((r) =>
      r.handler === h.name && r.baseline?.memory !== undefined
        ? [r.baseline.memory]
        : [],
    );
    const own = (part: (m: MemoryParts) => number) =>
      median(bare.map((m) => mb(part(m))));
    const parts = MEMORY_COLUMNS.map(([, part]) => part);
    const larger = (c: string) =>
      mine(c).filter((r) => r.memory!.young > r.baseline!.memory!.young).length;
    const tl = mine("threadline-100").length;
    return [
      `### ${h.name}

| MB | ${MEMORY_COLUMNS.map(([heading]) => heading).join(" | ")} |
| --- |${" ---: |".repeat(MEMORY_COLUMNS.length)}
| no agent, its own | ${parts.map((p) => fmt(own(p), 1)).join(" | ")} |
${rows.map((c) => `| ${c.label} | ${parts.map((p) => signed(added(c.name, p), 1)).join(" | ")} |`).join("\n")}
${tl > 0 ? `\nThreadline at 100% sampling had a larger young generation than no agent beside it in ${larger("threadline-100")} of ${tl} rounds.\n` : ""}`,
    ];
  });
  if (tables.length === 0) return "";
  return `## Where the added memory goes

Read from V8 in each service as its turns ended, the contender's and no agent's side by side; what a contender
adds is the median over rounds of its difference from no agent. RSS here is at that moment, not the peak of the
tables above; outside V8's heap is RSS less V8's heap (the program, stacks, buffers and the C allocator's memory).

- V8's young generation is where new objects are made. V8 sizes it itself: it doubles it (to a limit) once the
  bytes that survived its young collections since the last doubling exceed its size, and shrinks it again when
  the service allocates little (no agent's service, up for the whole round, idles while each contender warms
  up). A service whose requests keep more objects alive at any moment (for an agent, the spans of the requests
  in flight and ended spans waiting to be encoded) takes the next doubling sooner.
- V8's peak malloc is the most memory V8's parsers and compilers held at once. V8 frees a finished optimizing
  compile on a background thread; while the load keeps the machine's cores busy those threads fall behind, the
  finished compiles pile up, and the C allocator keeps the memory they held once it is freed, outside V8's heap.
  An agent whose code turns hot adds compiles to the pile. (V8's \`--no-maglev-destroy-on-background\` frees them
  on the application's thread instead, and the pile, with or without an agent, does not form.)

${tables.join("\n")}
`;
}

const mb = (bytes: number) => bytes / 2 ** 20;

/** A contender's label in the report, or its name when the run does not list it. */
function labelOf(input: ReportInput, name: string): string {
  return input.contenders.find((c) => c.name === name)?.label ?? name;
}

/** The RSS, in MB, `run` adds to no agent's after `requests`, or undefined when it did not get that far. */
function rssAddedAt(
  bare: LongRun,
  run: LongRun,
  requests: number,
): number | undefined {
  const p = run.points.find((q) => q.requests === requests);
  const b = bare.points.find((q) => q.requests === requests);
  return p === undefined || b === undefined
    ? undefined
    : mb(p.peakRss - b.peakRss);
}

/** The RSS an agent adds at the end of the long run, or undefined when not measured. */
function longRunAdded(
  input: ReportInput,
  contender: string,
): { mb: number; requests: number } | undefined {
  const bare = input.longRuns?.find((r) => r.contender === "none");
  const mine = input.longRuns?.find((r) => r.contender === contender);
  const requests = mine?.points.at(-1)?.requests;
  if (
    bare === undefined ||
    mine === undefined ||
    requests === undefined ||
    bare.points.at(-1)?.requests !== requests
  )
    return undefined;
  const added = rssAddedAt(bare, mine, requests);
  return added === undefined ? undefined : { mb: added, requests };
}

/** Memory over the long run: no agent's own, and what each agent adds, at each checkpoint. */
function longRunText(input: ReportInput): string {
  const runs = input.longRuns ?? [];
  const bare = runs.find((r) => r.contender === "none");
  if (bare === undefined || runs.length < 2) return "";
  const label = (name: string) => labelOf(input, name);
  const checkpoints = bare.points.map((p) => p.requests);
  const at = (run: LongRun, requests: number) =>
    run.points.find((p) => p.requests === requests);
  const cells = (figure: (requests: number) => string) =>
    checkpoints.map(figure).join(" | ");
  const young = (run: LongRun, requests: number) => {
    const y = at(run, requests)?.memory?.young;
    return y === undefined ? NaN : mb(y);
  };
  const rows = [
    `| no agent: peak RSS | ${cells((n) => fmt(mb(at(bare, n)!.peakRss), 1))} |`,
    `| no agent: V8's young generation | ${cells((n) => fmt(young(bare, n), 1))} |`,
    ...runs
      .filter((r) => r !== bare)
      .flatMap((r) => [
        `| ${label(r.contender)}: RSS added | ${cells((n) => {
          const added = rssAddedAt(bare, r, n);
          return added === undefined ? "–" : signed(added, 1);
        })} |`,
        `| ${label(r.contender)}: young generation added | ${cells((n) => signed(young(r, n) - young(bare, n), 1))} |`,
      ]),
  ];
  // What Threadline adds where its young generation and no agent's were the same size.
  const tl = runs.find((r) => r.contender === "threadline-100");
  const level = tl?.points.flatMap((p) => {
    const b = at(bare, p.requests);
    const y = young(tl, p.requests) - young(bare, p.requests);
    return b !== undefined && Math.abs(y) < 2
      ? [mb(p.peakRss - b.peakRss)]
      : [];
  });
  const inStep =
    level === undefined || level.length === 0
      ? ""
      : ` Where Threadline's young generation was the size of no agent's (${level.length} of ${checkpoints.length} counts), it added ${fmt(Math.min(...level), 1)}${level.length > 1 ? ` to ${fmt(Math.max(...level), 1)}` : ""} MB.`;
  const realistic = input.handlers.find((h) => h.name === "realistic");
  const rounds =
    realistic === undefined
      ? ""
      : ` its first ${(input.warmUp + realistic.amount).toLocaleString("en")} requests`;
  return `## Memory over a long run

The rounds above measure each service over${rounds}. Here each of no agent and
${runs
  .filter((r) => r !== bare)
  .map((r) => label(r.contender))
  .join(
    "; ",
  )} serves the realistic handler from its start in one stretch at ${input.connections} connections, one run each, one after
the other: peak RSS over the stretch up to each count of requests served, and V8's young generation at that count, in MB.

| MB, after this many requests | ${checkpoints.map((n) => n.toLocaleString("en")).join(" | ")} |
| --- |${" ---: |".repeat(checkpoints.length)}
${rows.join("\n")}

V8 goes on doubling a busy service's young generation, with or without an agent, until it reaches its limit; a
service whose requests keep more objects alive gets there sooner (see above), and what an agent adds to RSS
while it is ahead is mostly that. Once both are at the limit the difference is what else the agent keeps.${inStep}

`;
}

/** The summary of `contender` with `handler`, if it ran with it. */
function summaryOf(
  summary: Summary[],
  handler: string,
  contender: string,
): Summary | undefined {
  return summary.find(
    (s) => s.handler === handler && s.contender === contender,
  );
}

function chart(summary: Summary[], input: ReportInput): string {
  const bars = input.contenders.filter((c) => c.name !== "none");
  const groupWidth = 360;
  const width = 140 + groupWidth * input.handlers.length;
  const rowH = 26;
  const height = 70 + bars.length * rowH + 30;
  const colors: Record<string, string> = {
    "threadline-100": "#2f7ed8",
    "threadline-10": "#7cb5ec",
    "threadline-no-export": "#b0c4de",
    "threadline-worker": "#4572a7",
    otel: "#f28f43",
    "otel-auto": "#f7c59f",
    "dd-trace": "#8d4653",
    elastic: "#91e8e1",
    [YARDSTICK]: "#d0d0d0",
  };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Throughput with the agent, as a share of no agent (higher is better)</text>`,
  ];
  input.handlers.forEach((h, g) => {
    const x0 = 140 + g * groupWidth;
    parts.push(
      `<text x="${x0}" y="45" font-weight="bold">${h.name} handler</text>`,
    );
    const scale = (groupWidth - 70) / 1;
    parts.push(
      `<line x1="${x0}" y1="52" x2="${x0}" y2="${60 + bars.length * rowH}" stroke="#999"/>`,
    );
    const goal = h.name === "realistic" ? 0.8 : 0.6;
    parts.push(
      `<line x1="${x0 + goal * scale}" y1="52" x2="${x0 + goal * scale}" y2="${60 + bars.length * rowH}" stroke="#2a2" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${x0 + goal * scale + 3}" y="${68 + bars.length * rowH}" fill="#2a2">goal ${goal.toFixed(2)}</text>`,
    );
    bars.forEach((c, i) => {
      const s = summaryOf(summary, h.name, c.name);
      const y = 58 + i * rowH;
      if (g === 0) parts.push(`<text x="10" y="${y + 15}">${c.name}</text>`);
      if (s === undefined) return; // not run with this handler
      const ratio = Number.isFinite(s.ratio) ? s.ratio : 0;
      parts.push(
        `<rect x="${x0}" y="${y}" width="${Math.max(1, Math.min(1.2, ratio) * scale)}" height="${rowH - 8}" fill="${colors[c.name] ?? "#888"}"/>`,
      );
      parts.push(
        `<text x="${x0 + Math.min(1.2, ratio) * scale + 4}" y="${y + 14}">${ratio.toFixed(2)}</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/**
 * What the yardstick shows: the share a service keeps when its thread does
 * a known amount more per request and nothing else changes, next to what
 * Threadline adds to that thread. Empty when either did not run.
 */
function yardstickText(input: ReportInput, summary: Summary[]): string {
  const lines: string[] = [];
  for (const h of input.handlers) {
    const tl = summaryOf(summary, h.name, "threadline-100");
    const ys = summaryOf(summary, h.name, YARDSTICK);
    if (tl === undefined || ys === undefined) continue;
    lines.push(
      `A yardstick (${h.name}): the service with no agent and ${BUSY_WAIT_US} µs of busy waiting at the start of each request, nothing else changed, keeps ${withRange(fmt(ys.ratio, 2), ys.ratioRange)} of no-agent throughput, its application thread measured at ${signed(ys.mainThreadAdded)} µs per request. Threadline at 100% sampling adds ${signed(tl.mainThreadAdded)} µs to that thread and keeps ${fmt(tl.ratio, 2)}.`,
    );
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n\n`;
}

/**
 * Where the CPU time Threadline adds goes across the machine, part by part,
 * beside what no agent's requests take and what upstream adds. Empty for
 * runs that did not measure it.
 */
function machineText(input: ReportInput, summary: Summary[]): string {
  const lines: string[] = [];
  for (const h of input.handlers) {
    const get = (c: string) => summaryOf(summary, h.name, c);
    const tl = get("threadline-100");
    const none = input.results.filter(
      (r) => r.handler === h.name && r.contender === "none",
    );
    const bare = median(none.flatMap((r) => r.machineUsPerRequest ?? []));
    if (tl === undefined || !Number.isFinite(tl.machineAdded)) continue;
    const parts = MACHINE_PARTS.map(
      (p) =>
        `${MACHINE_PART_LABELS[p]} ${signed(machinePartAdded(input, h.name, "threadline-100", p))}`,
    ).join(", ");
    const otel = get("otel");
    const upstream =
      otel !== undefined && Number.isFinite(otel.machineAdded)
        ? ` Upstream OpenTelemetry (sdk-node) adds ${signed(otel.machineAdded)} µs, ${signed(machinePartAdded(input, h.name, "otel", "service"))} of it in the service.`
        : "";
    const goal = h.name === "realistic" ? 0.8 : 0.6;
    lines.push(
      `- ${h.name}, across the machine: a request with no agent takes ${fmt(bare)} µs of the machine's CPU; Threadline at 100% sampling adds ${signed(tl.machineAdded)} µs: ${parts}.${upstream} Were the machine's CPU all that set the pace, keeping ${fmt(goal, 2)} of no-agent throughput would allow ${fmt(bare * (1 / goal - 1))} µs more.`,
    );
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n\n`;
}

/** How export on a worker thread compares with export on the application's thread, when both ran. */
function workerText(input: ReportInput, summary: Summary[]): string {
  const parts: string[] = [];
  for (const h of input.handlers) {
    const get = (c: string) => summaryOf(summary, h.name, c);
    const main = get("threadline-100");
    const worker = get("threadline-worker");
    if (main === undefined || worker === undefined) continue;
    const over = pairedRatio(
      input,
      h.name,
      "threadline-worker",
      "threadline-100",
    );
    parts.push(
      `${h.name}: ${fmt(worker.ratio, 2)} of no agent against ${fmt(main.ratio, 2)} (${withRange(`${fmt(over.median, 2)}x`, over.range)} round by round), RSS ${signed(worker.rssAddedMb, 1)} MB against ${signed(main.rssAddedMb, 1)} MB`,
    );
  }
  return parts.length === 0
    ? "; it is not among the contenders above"
    : `; measured here as a contender, ${parts.join("; ")}`;
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toFixed(digits) : "–";
const signed = (n: number, digits = 0) =>
  Number.isFinite(n) ? `${n >= 0 ? "+" : ""}${n.toFixed(digits)}` : "–";

/**
 * A share to two places, or to three where two would round it onto the
 * other side of `bound` (0.796 is not 0.80 when 0.80 is the goal).
 */
function shareFigure(share: number, bound: number): string {
  const two = fmt(share, 2);
  return Number(two) >= bound === share >= bound ? two : fmt(share, 3);
}

/**
 * The goal's share in every full run so far, beside how fast the machine
 * ran: a share near its goal meets it in some runs and not in others.
 * Empty without at least one earlier run.
 */
function historyText(history: readonly ListedRun[]): string {
  if (history.length < 2) return "";
  const rows = history.map(
    (r) =>
      `| ${r.date}${r.current ? " (this run)" : ""} | ${r.commit ?? "–"} | ${r.rounds} | ${fmt(r.noAgentRps)} | ${fmt(r.noAgentMachineUs ?? NaN)} | ${shareFigure(r.realisticShare, 0.8)} | ${r.overUpstream === undefined ? "–" : `${fmt(r.overUpstream, 2)}x`} | ${fmt(r.helloShare ?? NaN, 2)} |`,
  );
  const shares = history.map((r) => r.realisticShare);
  const met = shares.filter((s) => s >= 0.8).length;
  const speeds = history.map((r) => r.noAgentRps);
  return `
### Runs so far

Every full run kept in \`docs/benchmarks-history.json\`, oldest first, each on the code of its commit. How fast the
machine ran (no agent's throughput, and the machine's CPU per no-agent request) changes from run to run: no agent's
realistic throughput differs by up to ${fmt(Math.max(...speeds) / Math.min(...speeds), 1)}x between these runs, and the shares move with it. Over these
${history.length} runs the realistic share ranged from ${fmt(Math.min(...shares), 2)} to ${fmt(Math.max(...shares), 2)} (median ${fmt(median(shares), 2)}) and reached 0.80 in ${met} of them.

| run | code | rounds | no agent, realistic req/s | machine CPU µs per no-agent request | realistic share | over upstream sdk-node | hello share |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}
`;
}

/**
 * The row comparing correlated pino with plain pino whose logger has fast
 * properties, as Threadline gives pino's loggers; empty for runs that did
 * not measure it.
 */
function workerTerminateRow(micro: ReportInput["micro"]): string {
  const ms = micro.workerTerminateMs;
  if (ms === undefined) return "";
  return `| ms a worker thread's terminate() takes, idle with nothing to send (as a pool ends one): with Threadline, and without | ${fmt(ms.threadline, 1)}, ${fmt(ms.plain, 1)} |
`;
}

function pinoOwnCostRow(micro: ReportInput["micro"]): string {
  const fast = micro.pinoPlainFast;
  const share = micro.pinoCorrelatedOverFastShare;
  if (fast === undefined || share === undefined) return "";
  return `| pino lines/s, plain, its logger given fast properties as Threadline gives pino's loggers (V8 keeps a root logger's properties in a hash table otherwise) | ${fmt(fast)} (${fmt(fast / micro.pinoPlain, 2)} of plain) |
| pino with Threadline's correlation against that: what correlation costs on its own | ${fmt(share.median, 2)} (rounds ${fmt(share.range[0], 2)}–${fmt(share.range[1], 2)}) |
`;
}

export function renderReport(
  input: ReportInput,
  history: readonly ListedRun[] = [],
): {
  markdown: string;
  svg: string;
} {
  const summary = summarize(input);
  const get = (h: string, c: string) => summaryOf(summary, h, c);
  const label = (name: string) => labelOf(input, name);
  const tables = input.handlers
    .map((h) => {
      const rows = input.contenders.flatMap((c) => {
        const s = get(h.name, c.name);
        if (s === undefined) return [];
        const share =
          c.name === "none"
            ? "**1.00**"
            : withRange(`**${fmt(s.ratio, 2)}**`, s.ratioRange);
        return `| ${label(c.name)} | ${fmt(s.rps)} | ${share} | ${c.name === "none" ? "–" : signed(s.cpuAdded)} | ${c.name === "none" ? "–" : signed(s.machineAdded)} | ${c.name === "none" ? "–" : signed(s.p50Added, 1)} | ${c.name === "none" ? "–" : signed(s.p99Added, 1)} | ${c.name === "none" ? "–" : signed(s.rssAddedMb, 1)} | ${c.name === "none" ? "–" : signed(s.startupAddedMs)} | ${fmt(s.stolen * 100, 1)} |`;
      });
      return `### ${h.name === "realistic" ? "Realistic handler (HTTP → PostgreSQL query → RabbitMQ publish → pino line → JSON)" : "Hello-world handler"}

${h.amount.toLocaleString("en")} requests measured per contender and round at ${input.connections} connections, in ${input.turns} turns with no agent, after a warm-up of ${input.warmUp.toLocaleString("en")}: V8 compiles a service's hot paths for its first 20,000 to 25,000 requests, whatever the agent, so the runs measure each contender's steady cost, not its start-up.

| contender | req/s | share of no agent (range over rounds) | service CPU µs/request added | machine CPU µs/request added | p50 ms added | p99 ms added | RSS MB added | start-up ms added | % taken by the host |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}
`;
    })
    .join("\n");
  const goal = (ok: boolean | undefined) =>
    ok === undefined ? "not measured" : ok ? "met" : "**not met**";
  const tlReal = get("realistic", "threadline-100");
  const tlHello = get("hello", "threadline-100");
  const otelReal = get("realistic", "otel");
  const otelAutoReal = get("realistic", "otel-auto");
  const overOtel =
    otelReal && tlReal
      ? pairedRatio(input, "realistic", "threadline-100", "otel")
      : undefined;
  const overOtelAuto =
    otelAutoReal && tlReal
      ? pairedRatio(input, "realistic", "threadline-100", "otel-auto")
      : undefined;
  /**
   * The row of a goal that a share must reach: its figure (see
   * shareFigure) and the verdict on the same number.
   */
  const shareGoal = (
    text: string,
    share: Share | undefined,
    bound: number,
    unit = "",
  ) => {
    if (share === undefined) return `| ${text} | – | ${goal(undefined)} |`;
    const met = share.median >= bound;
    const figure = shareFigure(share.median, bound);
    return `| ${text} | ${withRange(figure + unit, share.range)} | ${goal(met)} |`;
  };
  const ofNoAgent = (s: Summary | undefined): Share | undefined =>
    s && { median: s.ratio, range: s.ratioRange };
  const pino = input.micro.pinoCorrelatedShare;
  const pinoExported = input.micro.pinoCorrelatedExportedShare;
  const startup = tlHello?.startupAddedMs;
  const rss = Math.max(tlReal?.rssAddedMb ?? NaN, tlHello?.rssAddedMb ?? NaN);
  const goals = [
    shareGoal(
      "Realistic handler at 100% sampling: >= 0.80 of no-agent throughput",
      ofNoAgent(tlReal),
      0.8,
    ),
    shareGoal(
      "Realistic handler: >= 2x upstream OpenTelemetry's throughput (sdk-node with the four instrumentations)",
      overOtel,
      2,
      "x",
    ),
    shareGoal(
      "the same against upstream's zero-code setup (auto-instrumentations-node)",
      overOtelAuto,
      2,
      "x",
    ),
    shareGoal(
      "Hello-world at 100% sampling: >= 0.60 of no-agent throughput",
      ofNoAgent(tlHello),
      0.6,
    ),
    shareGoal(
      "pino with correlation: >= 0.90 of plain pino's lines/s",
      pino,
      0.9,
    ),
    `| Start-up added <= 150 ms | ${fmt(startup ?? NaN)} ms | ${goal(startup === undefined ? undefined : startup <= 150)} |`,
    `| RSS added <= 40 MB under load | ${fmt(rss, 1)} MB | ${goal(Number.isFinite(rss) ? rss <= 40 : undefined)} |`,
  ];
  const longRss = longRunAdded(input, "threadline-100");
  if (longRss !== undefined)
    goals.push(
      `| the same after ${longRss.requests.toLocaleString("en")} requests in one stretch (realistic handler, one run; see [Memory over a long run](#memory-over-a-long-run)) | ${fmt(longRss.mb, 1)} MB | ${goal(longRss.mb <= 40)} |`,
    );
  const gateCost = 1e9 / input.micro.debugGated - 1e9 / input.micro.debugPlain;
  const markdown = `# Overhead benchmark

Generated by \`npm run bench\` on ${input.date}. Machine: ${input.machine}.
Everything (load generator, services, PostgreSQL, RabbitMQ, the queue consumer and the telemetry sink) shares
this one machine, as on a developer's laptop or a small VM; figures are medians of ${input.rounds} rounds. In a round the
service with no agent starts and stays up, and each contender in turn (in a shuffled order, each a fresh process)
takes ${input.turns} turns with it, in alternating order, a second or less each. The machine's speed drifts from second to
second, and more over minutes: a contender is compared with no agent over the turns taken beside it, and a share
of no agent (or of another agent) is the median of those per-round ratios, with the lowest and highest round in
brackets.

![Throughput share of no agent](images/overhead.svg)

## Goals

| goal | this run | |
| --- | ---: | --- |
${goals.join("\n")}
${historyText(history)}
## Services under load

${tables}
Service CPU is the service process's user+system time (all its threads, export workers included) over its measured turns,
divided by the requests served; machine CPU is the whole machine's busy time over those turns (/proc/stat: every
process and the kernel, neither idle nor waiting for I/O), divided the same way; RSS is the peak sampled every 200 ms during those turns; start-up is the time from
spawning the process until it listens. What a contender adds is the median of its differences from no agent
within each round, as the shares are medians of ratios within each round. The share taken by the host is the machine's steal time over the measured
run (/proc/stat): the part of its CPU time a virtual machine's host gave to something else, 0 on bare metal. A run
that lost more to the host is slower for that alone, so a contender whose median is well above no agent's is
shown slower than it is.

## Where Threadline's cost goes

${input.handlers
  .map((h) => {
    const full = get(h.name, "threadline-100");
    const bare = get(h.name, "threadline-no-export");
    if (full === undefined || bare === undefined) return "";
    // Export's share, paired round by round as the rest.
    const exporting = (k: NumericKey) =>
      pairedDifference(
        input,
        h.name,
        "threadline-100",
        "threadline-no-export",
        k,
      );
    return `- ${h.name}: instrumentation alone (exporters off) ${signed(bare.cpuAdded)} µs CPU (${signed(bare.mainThreadAdded)} µs of it on the application's thread, the rest on the process's other threads, mostly V8's garbage-collection helpers) and ${signed(bare.rssAddedMb, 1)} MB RSS per service; recording and exporting spans and log lines (spans encoded 32 at a time as they end; log lines copied as they are written and encoded a batch at a time; HTTP; all on the application's thread, outside requests) ${signed(exporting("cpuUsPerRequest"))} µs (${signed(exporting("mainThreadUsPerRequest"))} µs on the application's thread) and ${signed(exporting("rssBytes") / 2 ** 20, 1)} MB.`;
  })
  .join("\n")}

${machineText(input, summary)}${yardstickText(input, summary)}Export runs on the application's thread by default: a worker thread is a second V8 isolate, about 20 MB of
RSS before it does anything, more than the memory goal leaves. \`THREADLINE_EXPORT_THREAD=worker\` moves
log parsing and the sending off the application's thread for services with memory to spare (spans are still
encoded as they end)${workerText(input, summary)}.

The upstream contender the goal names loads only the http, pg, amqplib and pino instrumentations, the same
coverage as Threadline${otelReal !== undefined && otelReal.ratio > 0.5 ? `, and keeps ${fmt(otelReal.ratio, 2)} of no-agent throughput here; twice its throughput would be more than the service makes with no agent at all, so no agent can meet that goal on this machine` : ""}.
Most services start upstream zero-code instead (\`-r @opentelemetry/auto-instrumentations-node/register\`,
every bundled instrumentation loaded); that setup is measured too${otelAutoReal !== undefined ? ` (${fmt(otelAutoReal.ratio, 2)} of no agent on the realistic handler)` : ""}.

${memoryText(input)}
${longRunText(input)}${renderBreakdowns(input.breakdowns)}
## Logging and export

Each micro-benchmark runs in fresh processes on one core, ${input.micro.rounds} rounds. In a round, the pino and disabled-level
runs compared with each other start side by side and, once warm, take ${input.micro.turns} turns each, one at a time, as the services
do; the span export runs take turns a whole run each. Figures are medians over the rounds, and a share of plain is
the median of the rounds' shares.

| measurement | result |
| --- | ---: |
| pino lines/s, plain | ${fmt(input.micro.pinoPlain)} |
| pino lines/s inside a span, with Threadline's correlation (trace_id, span_id, customer.id) | ${fmt(input.micro.pinoCorrelated)} (${fmt(pino.median, 2)} of plain; rounds ${fmt(pino.range[0], 2)}–${fmt(pino.range[1], 2)}) |
| the same, with the lines also exported over OTLP (copied as they are written and encoded a batch at a time on the same thread) | ${fmt(input.micro.pinoCorrelatedExported)} (${fmt(pinoExported.median, 2)} of plain; rounds ${fmt(pinoExported.range[0], 2)}–${fmt(pinoExported.range[1], 2)}) |
${pinoOwnCostRow(input.micro)}| calls to a disabled level (\`log.debug\` at level info) per second, plain | ${fmt(input.micro.debugPlain)} |
| the same with Threadline, nobody watched (the watch list's gate) | ${fmt(input.micro.debugGated)} (${fmt(input.micro.debugGatedShare.median, 2)} of plain; ${gateCost > 0.05 ? `${fmt(gateCost, 1)} ns more per call` : "no measurable cost per call"}) |
| spans/s started, ended, batched, encoded (OTLP protobuf) and sent: Threadline | ${fmt(input.micro.exportThreadline)} |
| the same with upstream BatchSpanProcessor + OTLP protobuf exporter | ${fmt(input.micro.exportUpstream)} |
${workerTerminateRow(input.micro)}
## Contenders and versions

${input.contenders.map((c) => `- **${c.name}**: ${c.label}`).join("\n")}

Versions: ${Object.entries(input.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(
      ", ",
    )}. All agents export to one local sink that accepts and discards (OTLP, Datadog agent and Elastic APM
server endpoints), so network and backend cost is equal; each agent samples every request unless stated.

## Reproduce

\`\`\`sh
npm run bench                      # all contenders, ${DEFAULT_ROUNDS} rounds, writes docs/benchmarks.md and docs/images/overhead.svg, adds the run to docs/benchmarks-history.json
npm run bench:run -- --quick --rounds 1 --only none,threadline-100   # a quick look, printed
npm run bench:render               # docs/benchmarks.md again from the figures its run kept in docs/benchmarks.json
npm run bench:profile -- --perf --contender threadline-100   # one contender's CPU by thread, kind and function, sampled by Linux perf as above
npm run bench:profile -- --contender threadline-100   # the same from V8's profiler (wall clock), by package and function
npm run bench:profile -- --heap --contender threadline-100   # the bytes each request makes V8 allocate, by package and function
\`\`\`
`;
  return { markdown, svg: chart(summary, input) };
}

const total = (parts: Record<Part, number>) =>
  PARTS.reduce((sum, k) => sum + parts[k], 0);

/** The profiled runs: a table per handler and what the figures say about the goals. */
function renderBreakdowns(breakdowns: ProfileBreakdown[]): string {
  if (breakdowns.length === 0) return "";
  const sections = breakdowns.map((b) => {
    // Handlers are per request in µs; pino is per line, shown in ns.
    const perLine = b.handler === "pino";
    const scale = perLine ? 1000 : 1;
    const digits = perLine ? 0 : 1;
    const unit = perLine ? "ns per line" : "µs per request";
    const row = (label: string, none: number, tl: number) =>
      `| ${label} | ${fmt(none * scale, digits)} | ${fmt(tl * scale, digits)} | ${signed(
        (tl - none) * scale,
        digits,
      )} |`;
    const rows = PARTS.filter(
      (k) => b.none[k] * scale >= 0.05 || b.threadline[k] * scale >= 0.05,
    ).map((k) => row(PART_LABELS[k], b.none[k], b.threadline[k]));
    const none = total(b.none);
    const tl = total(b.threadline);
    rows.push(row("**all**", none, tl));
    const own = b.threadline.instrumentation + b.threadline.export;
    const added = tl - none;
    let why: string;
    if (perLine) {
      const byChange = [...PARTS].sort(
        (x, y) => b.threadline[y] - b.none[y] - (b.threadline[x] - b.none[x]),
      );
      const biggest = byChange[0]!;
      const fell = byChange.at(-1)!;
      const fellBy = b.threadline[fell] - b.none[fell];
      const partName = (k: Part) => PART_LABELS[k].replace(/ \(.*\)$/, "");
      const ratio = `${fmt(tl / none, 2)}x`;
      const leaves = `The goal of 0.90 leaves ${fmt(none * scale * (1 / 0.9 - 1))} ns a line.`;
      why =
        added < 0
          ? `In these profiles a correlated line cost ${fmt(-added * scale)} ns less than a plain one (${ratio}): the difference is smaller than the profiles can tell apart. Threadline's own code is ${fmt(own * scale)} ns a line. ${leaves}`
          : `A correlated line costs ${fmt(added * scale)} ns more than a plain one (${ratio}); Threadline's own code takes ${fmt(own * scale)} ns a line, and the largest increase is in ${partName(biggest)} (${signed((b.threadline[biggest] - b.none[biggest]) * scale)} ns)${biggest === "native" ? ": the line is longer by the trace and span ids it carries, and each line is converted and written whole" : ""}${fellBy * scale <= -0.5 ? `; less is spent in ${partName(fell)} (${signed(fellBy * scale)} ns; Threadline gives pino's loggers fast properties, which plain pino's root logger lacks)` : ""}. ${leaves}`;
    } else {
      // At a share s of no-agent throughput, the thread may spend 1/s times as long per request.
      const budget = none * (1 / (b.handler === "realistic" ? 0.8 : 0.6) - 1);
      why = `If the application's thread sets the pace, keeping ${b.handler === "realistic" ? "0.80" : "0.60"} of no-agent throughput allows it ${fmt(budget, 1)} µs more per request than the ${fmt(none, 1)} µs it spends with no agent. Threadline adds ${fmt(added, 1)} µs: ${fmt(own, 1)} µs in its own functions (instrumentation ${fmt(b.threadline.instrumentation, 1)}, export ${fmt(b.threadline.export, 1)}) and ${fmt(added - own, 1)} µs more in the application's libraries, Node.js core, V8's builtins, native code, the kernel and garbage collection (more bytes through the sockets, the exporter's included; longer headers built and parsed; events emitted; objects collected).`;
    }
    return `### ${b.handler === "pino" ? "pino, one line inside a span (exporters off)" : `${b.handler[0]!.toUpperCase()}${b.handler.slice(1)} handler`}

| ${unit} | ${perLine ? "plain pino | with Threadline's correlation" : "no agent | Threadline, 100% sampling"} | added |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

${why}
`;
  });
  return `## Where the application's thread spends its time (CPU profiles)

Three more runs each of no agent and of Threadline, alternated, sampled by Linux perf on the CPU clock
(5 kHz) and cut to the measured requests: the CPU time of the service's main thread by part, medians of the
three; time spent waiting for a core is not counted. A sample counts for the JavaScript function nearest the
top of its stack, V8's builtins and runtime calls included; code V8 inlined counts for the function it was
inlined into (a library's function inlined into one of Threadline's wrappers counts as Threadline's, and the
reverse). Many of V8's builtins run without a frame of their own, so a sample in one cannot say which
function called it: those have a row of their own. Sampling slows a process down, so these figures are for
comparing the parts with each other, not with the tables above. V8's own profiler (\`--cpu-prof\`) is not used
for them: its samples are taken as a thread returns from the kernel, so a thread making a system call per
line or per request is seen in those calls far more than it is.

${sections.join("\n")}`;
}

/**
 * Writes the report of `input` to `out` (markdown), its chart to
 * images/overhead.svg beside it, and the run's figures to `out` with .json
 * for .md, so that a change to the report can be rendered from them again
 * (bench/src/render.ts) without measuring for an hour.
 */
/**
 * Writes the report to `out`, its chart under images/ and its figures to
 * the .json beside it; `history`, the full runs so far, this one included,
 * for the table of runs.
 */
export function writeReport(
  input: ReportInput,
  out: string,
  history: readonly ListedRun[] = [],
): string {
  const { markdown, svg } = renderReport(input, history);
  const svgPath = join(dirname(out), "images", "overhead.svg");
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(out, markdown);
  writeFileSync(svgPath, svg);
  writeFileSync(
    out.replace(/(\.md)?$/, ".json"),
    `${JSON.stringify(input, null, 1)}\n`,
  );
  return markdown;
}
