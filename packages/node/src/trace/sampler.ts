// Head samplers, as named by OTEL_TRACES_SAMPLER. The ratio decision reads
// the trace id's right-most 52 bits (random per W3C Trace Context Level 2),
// so every service that sees a trace makes the same decision for it.
import { TraceFlags, type Context, type SpanContext } from "@opentelemetry/api";
import { watchLevelOf, watchList } from "@threadline/core";
import type { SamplerName } from "../config.ts";

/** Decides whether a new span is recorded and exported. */
export interface Sampler {
  /**
   * @param ctx the parent context
   * @param traceId the new span's trace id
   * @param parent the parent span context, if any
   */
  shouldSample(
    ctx: Context,
    traceId: string,
    parent: SpanContext | undefined,
  ): boolean;
  toString(): string;
}

const TWO_52 = 2 ** 52;

export const alwaysOn: Sampler = {
  shouldSample: () => true,
  toString: () => "AlwaysOn",
};
export const alwaysOff: Sampler = {
  shouldSample: () => false,
  toString: () => "AlwaysOff",
};

export function traceIdRatio(ratio: number): Sampler {
  if (ratio >= 1) return alwaysOn;
  if (ratio <= 0) return alwaysOff;
  const bound = Math.floor(ratio * TWO_52);
  return {
    shouldSample: (_ctx, traceId) => parseInt(traceId.slice(19), 16) < bound,
    toString: () => `TraceIdRatioBased{${ratio}}`,
  };
}

/** Follows the parent's sampled flag; roots are decided by `root`. */
export function parentBased(root: Sampler): Sampler {
  return {
    shouldSample: (ctx, traceId, parent) =>
      parent === undefined
        ? root.shouldSample(ctx, traceId, parent)
        : (parent.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED,
    toString: () => `ParentBased{root=${root.toString()}}`,
  };
}

export function samplerFromConfig(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return alwaysOn;
    case "always_off":
      return alwaysOff;
    case "traceidratio":
      return traceIdRatio(ratio);
    case "parentbased_always_off":
      return parentBased(alwaysOff);
    case "parentbased_traceidratio":
      return parentBased(traceIdRatio(ratio));
    case "parentbased_always_on":
      return parentBased(alwaysOn);
  }
}

/**
 * Samples every span of a watched customer's request (see core/watch.ts),
 * and leaves everyone else to `base`. A new trace, or one arriving from
 * another process, is sampled when watched whatever the caller decided:
 * the caller may not have the newest watch list yet. So is a child of a
 * local span that was not: a handler that learns its customer late
 * (`withCustomer` after a session lookup) began its request unrecorded,
 * and the watch it passes on makes every service downstream sample, so
 * without its spans from here on theirs would hang from parents nobody
 * exported. The same holds for a decision that came in with the request,
 * which is passed on just the same. A partial trace beats none.
 */
export function watchAware(base: Sampler): Sampler {
  return {
    shouldSample: (ctx, traceId, parent) =>
      (watchList.active && watchLevelOf(ctx) !== undefined) ||
      base.shouldSample(ctx, traceId, parent),
    toString: () => `WatchAware{${base.toString()}}`,
  };
}
