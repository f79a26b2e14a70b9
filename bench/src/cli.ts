// The bench scripts' command lines: a mistyped option or a count that is not
// a number stops the script with one line saying so and how it is used,
// not a stack trace or a run with NaN in it.
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The options on this process's command line; exits 2 with `usage` when they do not parse. */
export function readOptions<T extends ParseArgsConfig>(
  usage: string,
  config: T,
): ReturnType<typeof parseArgs<T>>["values"] {
  try {
    return parseArgs(config).values;
  } catch (err) {
    return fail(usage, (err as Error).message);
  }
}

/** `--name`'s value as a positive whole number, `fallback` when not given; exits 2 with `usage` when it is not one. */
export function positive(
  usage: string,
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n <= 0)
    fail(
      usage,
      `--${name} takes a positive whole number, not ${JSON.stringify(value)}`,
    );
  return n;
}

function fail(usage: string, message: string): never {
  process.stderr.write(`${message}\nusage: ${usage}\n`);
  process.exit(2);
}
