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
