import {
  context as contextApi,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanOptions,
  type Tracer as ApiTracer,
} from "@opentelemetry/api";
import {
  FLAG_RANDOM,
  getCustomerFromContext,
  isTracingSuppressed,
  isValidTraceId,
  WATCH_BAGGAGE,
  watchLevelName,
  watchLevelOf,
  watchList,
} from "@threadline/core";
import { newSpanId, newTraceId } from "../internal/ids.ts";
import { RecordingSpan, type SpanShared } from "./span.ts";
import type { Sampler } from "./sampler.ts";

const INVALID_CONTEXT: SpanContext = {
  traceId: "00000000000000000000000000000000",
  spanId: "0000000000000000",
  traceFlags: TraceFlags.NONE,
};

/** A span kind the API has (INTERNAL 0 to CONSUMER 4); any other, INTERNAL. */
function kindOf(kind: unknown): SpanKind {
  return typeof kind === "number" &&
    Number.isInteger(kind) &&
    kind >= 0 &&
    kind <= 4
    ? kind
    : 0;
}

export class Tracer implements ApiTracer {
  readonly #shared: SpanShared;
  readonly #sampler: () => Sampler;

  constructor(shared: SpanShared, sampler: () => Sampler) {
    this.#shared = shared;
    this.#sampler = sampler;
  }

  startSpan(
    name: string,
    options: SpanOptions = {},
    ctx: Context = contextApi.active(),
  ): Span {
    options ??= {};
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID_CONTEXT);
    const parentSpan = options.root === true ? undefined : trace.getSpan(ctx);
    const parent = parentSpan?.spanContext();
    // Our own spans' ids are valid by construction; others' are checked.
    const hasParent =
      parent !== undefined &&
      (parentSpan instanceof RecordingSpan || isValidTraceId(parent.traceId));
    const traceId = hasParent ? parent.traceId : newTraceId();
    const spanId = newSpanId();
    const parentContext = hasParent ? parent : undefined;
    // New traces carry the Level 2 "random" flag: our trace ids are random.
    const inherited = hasParent ? parent.traceFlags & FLAG_RANDOM : FLAG_RANDOM;
    const sampled = this.#sampler().shouldSample(ctx, traceId, parentContext);
    const traceFlags =
      inherited | (sampled ? TraceFlags.SAMPLED : TraceFlags.NONE);
    const spanContext: SpanContext = parentContext?.traceState
      ? {
          traceId,
          spanId,
          traceFlags,
          traceState: parentContext.traceState,
          isRemote: false,
        }
      : { traceId, spanId, traceFlags, isRemote: false };
    if (!sampled) return trace.wrapSpanContext(spanContext);
    const span = new RecordingSpan(
      this.#shared,
      spanContext,
      parentContext,
      name,
      kindOf(options.kind),
      options.startTime,
      options.attributes,
      options.links,
      getCustomerFromContext(ctx),
    );
    // Marks a watched request's spans, so tail sampling and the viewer know.
    if (watchList.active) {
      const watch = watchLevelOf(ctx);
      if (watch !== undefined)
        span.setAttribute(WATCH_BAGGAGE, watchLevelName(watch));
    }
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a?: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    let options: SpanOptions = {};
    let ctx = contextApi.active();
    let fn: F;
    if (typeof a === "function") {
      fn = a;
    } else if (typeof b === "function") {
      options = a ?? {};
      fn = b;
    } else {
      options = a ?? {};
      ctx = b ?? ctx;
      fn = c as F;
    }
    const span = this.startSpan(name, options, ctx);
    return contextApi.with(
      trace.setSpan(ctx, span),
      fn as (span: Span) => ReturnType<F>,
      undefined,
      span,
    );
  }
}
