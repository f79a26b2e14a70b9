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
