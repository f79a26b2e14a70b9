// CPU accounting from /proc, in clock ticks.
import { readdirSync, readFileSync } from "node:fs";

/**
 * Now on the monotonic clock, in microseconds: the clock V8 stamps CPU
 * profiles with and perf (-k CLOCK_MONOTONIC) stamps samples with.
 */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Clock ticks per second of /proc's times (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

/** Command name, user and system ticks from a /proc/<pid>[/task/<tid>]/stat text. */
export function parseStat(stat: string): {
  command: string;
  user: number;
  system: number;
} {
  // The command is in parentheses and may itself contain spaces and ")".
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  return {
    command: stat.slice(stat.indexOf("(") + 1, close),
    user: Number(fields[11]),
    system: Number(fields[12]),
  };
}

/**
 * The whole machine's clock ticks from a /proc/stat text: busy, all, and
 * stolen (time a virtual machine's CPUs were ready to run but its host ran
 * something else; 0 on bare metal).
 */
export function parseMachineStat(stat: string): {
  busy: number;
  total: number;
  steal: number;
} {
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice";
  // guest time is already counted in user and nice. Busy is the work this
  // machine did: neither idle, waiting for I/O, nor stolen by the host.
  const n = stat.split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const steal = n[7] ?? 0;
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - n[3]! - n[4]! - steal, total, steal };
}

/** The whole machine's clock ticks now (see parseMachineStat). */
export function machineTicks(): ReturnType<typeof parseMachineStat> {
  return parseMachineStat(readFileSync("/proc/stat", "utf8"));
}

/** User+system clock ticks of every process now (all its threads), by process id, with its command name. */
export function processTicks(): Map<
  number,
  { command: string; ticks: number }
> {
  const out = new Map<number, { command: string; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = parseStat(readFileSync(`/proc/${entry}/stat`, "utf8"));
      out.set(Number(entry), { command: s.command, ticks: s.user + s.system });
    } catch {
      // the process ended between listing and reading
    }
  }
  return out;
}
