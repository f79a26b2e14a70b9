// The active-context store: one AsyncLocalStorage (on Node 24 backed by
// AsyncContextFrame, so propagation costs nothing per await). Ours rather
// than @opentelemetry/context-async-hooks because `with()` there binds the
// callback to `thisArg` on every call, an allocation on every request.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, ContextManager } from "@opentelemetry/api";
import { EMPTY_CONTEXT } from "@threadline/core";

export class AlsContextManager implements ContextManager {
  readonly #als = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.#als.getStore() ?? EMPTY_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    if (thisArg === undefined) return this.#als.run(context, fn, ...args);
    return this.#als.run(
      context,
      Reflect.apply as (f: F, t: unknown, a: A) => ReturnType<F>,
      fn,
      thisArg,
      args,
    );
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== "function") return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    const als = this.#als;
    const bound = function (this: unknown, ...args: unknown[]) {
      return als.run(context, () => fn.apply(this, args));
    };
    Object.defineProperty(bound, "length", { value: fn.length });
    return bound as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#als.disable();
    return this;
  }
}
