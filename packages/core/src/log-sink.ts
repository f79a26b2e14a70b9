/**
 * Receives each log line a logging instrumentation saw, already serialised
 * by the logger, with its correlation. Positional arguments keep the per
 * line cost to a call: no record object is built on the logging path.
 */
export interface LogRecordSink {
  emit(
    line: string,
    severityNumber: number,
    severityText: string | undefined,
    traceId: string | undefined,
    spanId: string | undefined,
    traceFlags: number,
    messageKey: string,
    ownFields?: number,
  ): void;
}

/**
 * Bits of {@link LogRecordSink.emit}'s `ownFields`: which of these fields
 * the logger itself writes at the start of its lines (pino's `level`,
 * `time`, `pid` and `hostname`, as its options have it). A field of one of
 * these names that the logger does not write is the application's, and
 * exported as an attribute. Without `ownFields`, a leading field of one
 * of these names is taken as the logger's.
 */
export const OwnField = Object.freeze({
  level: 1,
  time: 2,
  pid: 4,
  hostname: 8,
  /**
   * Not the logger's: the line's correlation wrote `customer.id`, the
   * customer of the context it was logged in, ahead of the application's
   * fields. One of the application's of that name comes later, and does
   * not take its place.
   */
  customer: 128,
});

/** Every {@link OwnField}: what a logger with pino's default options writes. */
export const ALL_OWN_FIELDS = 15;
