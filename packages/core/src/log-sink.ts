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
  ): void;
}
