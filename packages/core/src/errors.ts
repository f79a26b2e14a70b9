/** Stable codes carried by errors Threadline throws. */
export type ThreadlineErrorCode =
  | "THREADLINE_INVALID_OPTION"
  | "THREADLINE_ALREADY_STARTED"
  | "THREADLINE_SHUT_DOWN";

/** An error with a stable `code` to branch on instead of the message. */
export class ThreadlineError extends Error {
  readonly code: ThreadlineErrorCode;

  constructor(code: ThreadlineErrorCode, message: string) {
    super(message);
    this.name = "ThreadlineError";
    this.code = code;
  }
}

/**
 * What was thrown, said: application code may throw anything (undefined, a
 * string, an object without a prototype, an error whose `message` getter
 * throws), and describing it must not throw in turn.
 */
export function messageOf(err: unknown): string {
  try {
    return err instanceof Error ? String(err.message) : String(err);
  } catch {
    return "an error without a readable message";
  }
}

/**
 * A failure's `error.type`, low in cardinality: its code (a system or
 * protocol code), else the type a library's own message stands for in
 * `known` (for errors raised without a code), else its class name, else
 * `Error`.
 */
export function errorTypeOf(
  err: unknown,
  known?: ReadonlyMap<string, string>,
): string {
  const e = err as
    { code?: unknown; name?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === "string") return e.code;
  const byMessage =
    known !== undefined && typeof e?.message === "string"
      ? known.get(e.message)
      : undefined;
  if (byMessage !== undefined) return byMessage;
  return typeof e?.name === "string" ? e.name : "Error";
}
