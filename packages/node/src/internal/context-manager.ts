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
    const prior = als.getStore();
    if (prior === context) return Reflect.apply(fn, thisArg, args);
    // Enters and leaves as AsyncLocalStorage.run() does: a frame to enter
    // and another, copied from the callee's, to leave with (so a value the
    // callee entered into another AsyncLocalStorage with enterWith() stays,
    // as after run()). An AsyncResource made here would put the caller's
    // very frame back, about 50 ns a call less, but its runInAsyncScope()
    // pushes on Node's async hook stack: recursion that runs out of stack
    // can leave a push there without its pop, and Node then aborts the
    // process rather than let the application catch the RangeError.
    als.enterWith(context);
    try {
      return Reflect.apply(fn, thisArg, args);
    } finally {
      als.enterWith(prior as Context);
    }
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
