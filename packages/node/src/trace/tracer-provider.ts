import type {
  Tracer as ApiTracer,
  TracerOptions,
  TracerProvider as ApiTracerProvider,
} from "@opentelemetry/api";
import type { SpanLimits } from "../config.ts";
import { scopeText } from "../internal/scope-text.ts";
import type { Sampler } from "./sampler.ts";
import type { SpanSink } from "./span.ts";
import { Tracer } from "./tracer.ts";

/** Hands out one tracer per instrumentation scope; all share the sampler, limits and pipeline. */
export class TracerProvider implements ApiTracerProvider {
  readonly #tracers = new Map<string, Tracer>();
  readonly #limits: SpanLimits;
  readonly #sink: SpanSink;
  #sampler: Sampler;

  constructor(sampler: Sampler, limits: SpanLimits, sink: SpanSink) {
    this.#sampler = sampler;
    this.#limits = limits;
    this.#sink = sink;
  }

  /** Replaces the sampler for spans started from now on. */
  setSampler(sampler: Sampler): void {
    this.#sampler = sampler;
  }

  get sampler(): Sampler {
    return this.#sampler;
  }

  getTracer(
    name: string,
    version?: string,
    _options?: TracerOptions,
  ): ApiTracer {
    if (typeof name !== "string") name = scopeText(name);
    if (version !== undefined && typeof version !== "string")
      version = scopeText(version);
    const key = `${name}@${version ?? ""}`;
    let tracer = this.#tracers.get(key);
    if (tracer === undefined) {
      const scope = version === undefined ? { name } : { name, version };
      tracer = new Tracer(
        { scope, limits: this.#limits, sink: this.#sink },
        () => this.#sampler,
      );
      this.#tracers.set(key, tracer);
    }
    return tracer;
  }
}
