// CPU accounting from /proc, in clock ticks.

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
