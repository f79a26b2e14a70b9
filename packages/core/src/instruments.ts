// Instruments for instrumentations' request metrics. They come from the
// global meter provider, which the SDK registers after it has enabled the
// instrumentations (and again after a restart), so they are made at first
// use and made again whenever the global provider is another one.
// AttributeSets gives them one frozen attributes object per set of values.
import {
  metrics,
  type Attributes,
  type Meter,
  type MeterProvider,
} from "@opentelemetry/api";

/**
 * The bucket bounds the semantic conventions advise for the request
 * durations (HTTP, messaging), in seconds. The instrumentations advise them
 * themselves: a histogram without advice gets the SDK's default buckets.
 */
export const SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** Returns a getter for the instruments `make` builds on the current global provider's meter `scope`. */
export function lazyInstruments<T>(
  scope: string,
  make: (meter: Meter) => T,
): () => T {
  let provider: MeterProvider | undefined;
  let made: T | undefined;
  return () => {
    const current = metrics.getMeterProvider();
    if (made === undefined || current !== provider) {
      provider = current;
      made = make(current.getMeter(scope));
    }
    return made;
  };
}

/** How many sets of values an {@link AttributeSets} keeps an object for. */
const KEPT_SETS = 8;

/**
 * The attributes of a request metric, one frozen object per set of values
 * for the first few sets seen: a histogram finds the series of an object it
 * has seen frozen by identity, without walking its keys, and most services
 * record a handful of sets over and over (one route, method and status).
 * Values past the first few sets get a fresh object each time, which the
 * histogram looks up key by key as before; objects are never dropped, so a
 * metric's series index holds no short-lived keys. Up to six values,
 * compared with `===`.
 */
export class AttributeSets<
  A,
  B = undefined,
  C = undefined,
  D = undefined,
  E = undefined,
  F = undefined,
> {
  readonly #build: (a: A, b: B, c: C, d: D, e: E, f: F) => Attributes;
  /** Each kept set's values, six to a set, in the order of #sets. */
  readonly #values: unknown[] = [];
  readonly #sets: Attributes[] = [];

  constructor(build: (a: A, b: B, c: C, d: D, e: E, f: F) => Attributes) {
    this.#build = build;
  }

  get(a: A, b: B, c: C, d: D, e: E, f?: F): Attributes {
    const values = this.#values;
    const sets = this.#sets;
    for (let i = 0, j = 0; i < sets.length; i++, j += 6)
      if (
        values[j] === a &&
        values[j + 1] === b &&
        values[j + 2] === c &&
        values[j + 3] === d &&
        values[j + 4] === e &&
        values[j + 5] === f
      )
        return sets[i]!;
    const attributes = this.#build(a, b, c, d, e, f as F);
    if (sets.length < KEPT_SETS) {
      values.push(a, b, c, d, e, f);
      sets.push(Object.freeze(attributes));
    }
    return attributes;
  }
}
