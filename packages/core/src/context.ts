// A context that costs one small object per value set. The API's
// BaseContext copies its whole Map and creates three closures on every
// setValue, and a traced request sets four or five values (remote parent,
// baggage, customer, span, route holder) before its handler runs; those
// copies were most of what a request allocated for tracing, and what kept
// V8's young generation growing under load. A context here is a link to
// its parent: lookups walk the chain, which is as deep as the values set
// on the way from the root (a handful), never as long as a request.
import type { Context } from "@opentelemetry/api";

const DELETED = Symbol("threadline.context.deleted");

class ChainedContext implements Context {
  readonly #parent: ChainedContext | undefined;
  readonly #key: symbol | undefined;
  readonly #value: unknown;

  constructor(
    parent: ChainedContext | undefined,
    key: symbol | undefined,
    value: unknown,
  ) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
  }

  getValue(key: symbol): unknown {
    let c: ChainedContext | undefined = this;
    do {
      if (c.#key === key) return c.#value === DELETED ? undefined : c.#value;
      c = c.#parent;
    } while (c !== undefined);
    return undefined;
  }

  setValue(key: symbol, value: unknown): Context {
    return new ChainedContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return this.getValue(key) === undefined
      ? this
      : new ChainedContext(this, key, DELETED);
  }
}

/**
 * The empty context Threadline's context manager and instrumentations
 * start from (the API's `ROOT_CONTEXT` works the same, at a higher cost).
 */
export const EMPTY_CONTEXT: Context = new ChainedContext(
  undefined,
  undefined,
  undefined,
);
