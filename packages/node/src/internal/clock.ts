import type { HrTime, TimeInput } from "@opentelemetry/api";

const origin = performance.timeOrigin;

/** Current time as fractional epoch milliseconds, from the monotonic clock. */
export function now(): number {
  return origin + performance.now();
}

/**
 * A TimeInput as fractional epoch milliseconds. Numbers smaller than the
 * process's time origin are read as performance.now() values, as the
 * OpenTelemetry JS SDK does.
 */
export function toEpochMs(time: TimeInput | undefined): number {
  if (time === undefined) return now();
  if (typeof time === "number") return time < origin ? origin + time : time;
  if (time instanceof Date) return time.getTime();
  if (Array.isArray(time)) {
    const [s, ns] = time as HrTime;
    return s * 1e3 + ns / 1e6;
  }
  return now();
}
