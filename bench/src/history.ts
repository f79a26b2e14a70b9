// The headline figures of every full run, kept beside the report
// (docs/benchmarks-history.json), so the report can set this run among the
// earlier ones. One run's shares move with the machine's speed over the
// minutes it took (no agent has served from under 7,000 to over 13,000
// realistic requests a second on the same virtual machine): whether a
// share near its goal meets it depends on the run, and a reader should see
// how far the runs spread, not only the last one.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { median, pairedRatio, type ReportInput } from "./report.ts";

export interface RunSummary {
  date: string;
  /** The commit measured, when the run knew it. */
  commit?: string;
  rounds: number;
  /** No agent's realistic requests per second: how fast the machine ran. */
  noAgentRps: number;
  /** The machine's CPU µs per no-agent realistic request (runs that measured it). */
  noAgentMachineUs?: number;
  /** Threadline at 100% sampling over no agent, realistic handler. */
  realisticShare: number;
  /** Threadline over upstream sdk-node, realistic handler (runs that measured it). */
  overUpstream?: number;
  /** Threadline at 100% sampling over no agent, hello handler. */
  helloShare?: number;
}

const finite = (n: number): number | undefined =>
  Number.isFinite(n) ? n : undefined;

/** This run's headline figures; undefined when it did not measure Threadline against no agent. */
export function summarizeRun(input: ReportInput): RunSummary | undefined {
  const none = input.results.filter(
    (r) => r.handler === "realistic" && r.contender === "none",
  );
  const ran = (handler: string, contender: string) =>
    input.results.some(
      (r) => r.handler === handler && r.contender === contender,
    );
  if (none.length === 0 || !ran("realistic", "threadline-100"))
    return undefined;
  const machine = none.flatMap((r) =>
    r.machineUsPerRequest === undefined ? [] : [r.machineUsPerRequest],
  );
  const share = (handler: string, a: string, b: string) =>
    ran(handler, a) && ran(handler, b)
      ? finite(pairedRatio(input, handler, a, b).median)
      : undefined;
  const summary: RunSummary = {
    date: input.date,
    ...(input.commit === undefined ? {} : { commit: input.commit }),
    rounds: input.rounds,
    noAgentRps: Math.round(median(none.map((r) => r.rps))),
    realisticShare: share("realistic", "threadline-100", "none")!,
  };
  if (machine.length > 0) summary.noAgentMachineUs = median(machine);
  const overUpstream = share("realistic", "threadline-100", "otel");
  if (overUpstream !== undefined) summary.overUpstream = overUpstream;
  const hello = share("hello", "threadline-100", "none");
  if (hello !== undefined) summary.helloShare = hello;
  return summary;
}

/** A run as the report lists it; `current`: the run the report is of. */
export interface ListedRun extends RunSummary {
  current: boolean;
}

/** `runs` to be listed, `current` (if one of them) marked. */
export function listRuns(
  runs: readonly RunSummary[],
  current: RunSummary | undefined,
): ListedRun[] {
  return runs.map((r) => ({
    ...r,
    current: current !== undefined && sameRun(r, current),
  }));
}

/** The runs kept at `file`, oldest first; none when there is no such file. */
export function readHistory(file: string): RunSummary[] {
  if (!existsSync(file)) return [];
  const runs = JSON.parse(readFileSync(file, "utf8")) as unknown;
  if (!Array.isArray(runs))
    throw new Error(`${file}: not a list of runs; remove it or fix it`);
  return runs as RunSummary[];
}

const sameRun = (a: RunSummary, b: RunSummary) =>
  a.date === b.date &&
  a.commit === b.commit &&
  a.noAgentRps === b.noAgentRps &&
  a.realisticShare === b.realisticShare;

/** Adds `run` to the history at `file` (once: a report rendered again adds nothing); returns the history. */
export function recordRun(file: string, run: RunSummary): RunSummary[] {
  const runs = readHistory(file);
  if (runs.some((r) => sameRun(r, run))) return runs;
  runs.push(run);
  writeFileSync(file, `${JSON.stringify(runs, null, 2)}\n`);
  return runs;
}

/** The history kept beside a report or its figures (docs/benchmarks.md or .json). */
export function historyFileOf(report: string): string {
  return report.replace(/\.(md|json)$/, "") + "-history.json";
}

/**
 * The commit checked out in `dir`, "-dirty" after it when tracked files
 * differ from it; undefined outside a git checkout.
 */
export function currentCommit(dir: string): string | undefined {
  const git = (...args: string[]) =>
    execFileSync("git", args, {
      cwd: dir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  try {
    const commit = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return undefined;
  }
}
