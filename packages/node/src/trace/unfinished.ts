// Spans still open when the process ends. A request cut off by a crash, a
// process.exit() or a SIGTERM nobody handles is the one a customer
// complains about, and its spans would never end: nothing of it would be
// exported. At the end they are ended, marked with why, and sent with the
// rest (sdk.ts calls this from its exit, signal and shutdown paths), once
// the instrumentations have counted the requests among them in the metrics.
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  diag,
  errorTypeOf,
  messageOf,
  type Instrumentation,
} from "@threadline/core";
import { truncate } from "../internal/truncate.ts";
import { RecordingSpan, type UnfinishedReason } from "./span.ts";

/** The longest error text a crash's status message quotes. */
const MAX_DETAIL = 200;

function statusMessage(reason: UnfinishedReason, crash?: string): string {
  switch (reason) {
    case "crash":
      return `unfinished when the process crashed: ${crash ?? "uncaught exception"}`;
    case "exit":
      return "unfinished when the process exited";
    case "shutdown":
      return "unfinished when Threadline was shut down";
    case "terminate":
      return "unfinished when its worker thread was terminated";
    default:
      return `unfinished when the process ended on ${reason}`;
  }
}

/**
 * Ends every open span of this thread for `reason`, after the
 * instrumentations have recorded the work of theirs still in progress (a
 * request's duration, its route and error), so that it reaches the metrics
 * exported after this and the spans ended here; returns how many spans and
 * records there were.
 */
export function endUnfinished(
  reason: UnfinishedReason,
  crash?: string,
  instrumentations: readonly Instrumentation[] = [],
): number {
  const message = statusMessage(reason, crash);
  let n = 0;
  for (const i of instrumentations) {
    if (i.endUnfinished === undefined) continue;
    try {
      n += i.endUnfinished(reason, message);
    } catch (err) {
      diag.warnCollapsed(
        "unfinished",
        `${i.name} could not record its unfinished work: ${(err as Error).message}`,
      );
    }
  }
  if (RecordingSpan.openCount === 0) return n;
  return n + RecordingSpan.endOpenSpans(reason, message);
}

/** Whether this thread has spans still open. */
export function hasUnfinished(): boolean {
  return RecordingSpan.openCount > 0;
}

/** An error as a crash's status quotes it: its type and message, cut short. */
function describe(err: unknown): string {
  const text =
    err instanceof Error
      ? `${errorTypeOf(err)}: ${messageOf(err)}`
      : messageOf(err);
  return text.length > MAX_DETAIL
    ? `${truncate(text, MAX_DETAIL)}\u2026`
    : text;
}

export interface CrashWatch {
  /** What crashed the process, once an uncaught exception will end it. */
  readonly crash: string | undefined;
  remove(): void;
}

/**
 * Watches for an uncaught exception or unhandled rejection (through
 * `uncaughtExceptionMonitor`, which changes nothing of how the process
 * handles it): the span active where it was thrown records it, and when
 * nothing handles it, the process's end says it crashed, and of what.
 */
export function watchCrashes(): CrashWatch {
  let crash: string | undefined;
  const onError = (err: unknown) => {
    try {
      const span = trace.getSpan(context.active());
      if (span instanceof RecordingSpan && span.isRecording()) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: describe(err) });
      }
      if (
        process.listenerCount("uncaughtException") === 0 &&
        !process.hasUncaughtExceptionCaptureCallback()
      )
        crash = describe(err);
    } catch {
      // Never adds an error of ours to the application's.
    }
  };
  process.on("uncaughtExceptionMonitor", onError);
  return {
    get crash() {
      return crash;
    },
    remove() {
      process.removeListener("uncaughtExceptionMonitor", onError);
    },
  };
}
