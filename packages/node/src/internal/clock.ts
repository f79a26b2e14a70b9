import type { HrTime, TimeInput } from "@opentelemetry/api";
import { diag } from "@threadline/core";
import { MAX_TIME_MS } from "@threadline/otlp";

const origin = performance.timeOrigin;

/** Current time as fractional epoch milliseconds, from the monotonic clock. */
export function now(): number {
  return origin + performance.now();
}

/**
 * A TimeInput as fractional epoch milliseconds. Numbers smaller than the
 * process's time origin are read as performance.now() values, as the
 * OpenTelemetry JS SDK does. A time OTLP cannot carry (NaN, an Invalid
 * Date, one before 1970 or past 2554: microseconds given for milliseconds)
 * is taken as now, as an omitted one is, and said once: encoded as it is,
 * it would reach the Collector as 0 or as the largest time there is.
 */
export function toEpochMs(time: TimeInput | undefined): number {
  if (time === undefined) return now();
  let ms: number;
  if (typeof time === "number") ms = time < origin ? origin + time : time;
  else if (time instanceof Date) ms = time.getTime();
  else if (Array.isArray(time)) {
    const [s, ns] = time as HrTime;
    ms = s * 1e3 + ns / 1e6;
  } else return now();
  if (ms >= 0 && ms <= MAX_TIME_MS) return ms;
  diag.warnOnce(
    "span-time",
    `a span was given a time OTLP cannot carry (${String(time)}); the current time was used instead. Times are epoch milliseconds, a Date or an HrTime`,
  );
  return now();
}
