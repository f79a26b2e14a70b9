import type {
  Context,
  TextMapGetter,
  TextMapPropagator,
  TextMapSetter,
} from "@opentelemetry/api";
import { diag } from "./diagnostics.ts";

/** Runs several propagators in order; one failing never stops the others or the caller. */
export class CompositePropagator implements TextMapPropagator {
  readonly #propagators: readonly TextMapPropagator[];
  readonly #fields: string[];

  constructor(propagators: readonly TextMapPropagator[]) {
    this.#propagators = propagators;
    this.#fields = [...new Set(propagators.flatMap((p) => p.fields()))];
  }

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    for (const p of this.#propagators) {
      try {
        p.inject(ctx, carrier, setter);
      } catch (err) {
        diag.warnCollapsed(
          "propagator-inject",
          `a propagator failed to inject: ${(err as Error).message}`,
        );
      }
    }
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    let result = ctx;
    for (const p of this.#propagators) {
      try {
        result = p.extract(result, carrier, getter);
      } catch (err) {
        diag.warnCollapsed(
          "propagator-extract",
          `a propagator failed to extract: ${(err as Error).message}`,
        );
      }
    }
    return result;
  }

  fields(): string[] {
    return this.#fields;
  }
}
