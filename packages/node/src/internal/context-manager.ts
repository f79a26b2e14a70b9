// The active-context store: one AsyncLocalStorage (on Node 24 backed by
// AsyncContextFrame, so propagation costs nothing per await). Ours rather
// than @opentelemetry/context-async-hooks because `with()` there binds the
// callback to `thisArg` on every call, an allocation on every request.
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
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
    const als = this.#als;
    if (als.getStore() === context) return Reflect.apply(fn, thisArg, args);
    // AsyncLocalStorage.run() would build two frames (each a copy of the
    // active one): one to enter, and one to leave with, as the frame
    // active before but copied. A resource made here holds the frame
    // active now, and running through it puts that very frame back
    // afterwards: one new frame per call, and the caller's is not replaced
    // by a copy, which resources made after would capture and copy again.
    return new AsyncResource(SCOPE).runInAsyncScope(
      enter,
      undefined,
      als,
      context,
      fn,
      thisArg,
      args,
    ) as ReturnType<F>;
  }

  /**
   * Binds `target` to `context`. Binding to the active context (what
   * instrumentations do for callbacks a library calls later from elsewhere)
   * captures the current async context frame and switches back to it on
   * each call, as AsyncResource.bind does, rather than building a new frame
   * per call: no new frame when the callback runs. The application's own
   * AsyncLocalStorage values come back with it.
   */
  bind<T>(context: Context, target: T): T {
    if (typeof target !== "function") return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    if (context === this.active()) {
      // (AsyncLocalStorage.snapshot() would do the same at fifty times the cost, and drops `this`.)
      const resource = new AsyncResource("threadline.bind");
      return withLength(fn.length, (self, args) =>
        resource.runInAsyncScope(Reflect.apply, undefined, fn, self, args),
      ) as T;
    }
    return withLength(fn.length, (self, args) =>
      this.with(context, Reflect.apply, undefined, fn, self, args),
    ) as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#als.disable();
    return this;
  }
}

const SCOPE = "threadline.context";

/** Makes `context` active in a frame of its own (the resource's is left as it was) and calls `fn`. */
function enter(
  als: AsyncLocalStorage<Context>,
  context: Context,
  fn: (...args: unknown[]) => unknown,
  thisArg: unknown,
  args: unknown[],
): unknown {
  als.enterWith(context);
  return Reflect.apply(fn, thisArg, args);
}

/**
 * A function declaring `length` parameters that hands its receiver and
 * arguments to `call`: a bound callback keeps the arity some libraries read
 * (express tells error handlers by it). Literal parameter lists, because
 * redefining `length` costs more than the rest of a bind.
 */
function withLength(
  length: number,
  call: (self: unknown, args: IArguments) => unknown,
): (...args: unknown[]) => unknown {
  switch (length) {
    case 0:
      return function (this: unknown) {
        return call(this, arguments);
      };
    case 1:
      return function (this: unknown, _a: unknown) {
        return call(this, arguments);
      };
    case 2:
      return function (this: unknown, _a: unknown, _b: unknown) {
        return call(this, arguments);
      };
    case 3:
      return function (this: unknown, _a: unknown, _b: unknown, _c: unknown) {
        return call(this, arguments);
      };
    case 4:
      return function (
        this: unknown,
        _a: unknown,
        _b: unknown,
        _c: unknown,
        _d: unknown,
      ) {
        return call(this, arguments);
      };
    default: {
      const f = function (this: unknown) {
        return call(this, arguments);
      };
      Object.defineProperty(f, "length", { value: length });
      return f;
    }
  }
}
