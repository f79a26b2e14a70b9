// Callbacks sent back to the async context of the code that handed them
// over: a client library keeps them and calls them from its socket, in the
// context of whichever request opened the connection.
//
// Not AsyncResource.bind: it defines two properties on every function it
// makes (about 1.8 µs a call on the bench machine), and a pool query hands
// over a callback each time.
import { AsyncResource } from "node:async_hooks";
import { context } from "@opentelemetry/api";
import { EMPTY_CONTEXT } from "./context.ts";

/**
 * `fn`, run in the caller's async context whoever calls it later, with the
 * `this` and arguments it is called with. `type` names the resource.
 */
export function inCallerContext<A extends unknown[], R>(
  fn: (this: unknown, ...args: A) => R,
  type: string,
): (this: unknown, ...args: A) => R {
  const caller = new AsyncResource(type);
  return function (this: unknown, ...args: A): R {
    return caller.runInAsyncScope(fn, this, ...args);
  };
}

/**
 * Opens a client library's connection: `connect` called on `self` with
 * `args` in the empty context, so the socket's events (and the client's)
 * belong to no request, and `callback`, when it is a function, passed
 * last and sent back to the caller's context. Without one, `connect` gets
 * `args` only (a promise's continuation is the caller's anyway).
 */
export function connectInEmptyContext<T, R>(
  connect: (this: T, ...args: unknown[]) => R,
  self: T,
  args: readonly unknown[],
  callback: unknown,
  type: string,
): R {
  return typeof callback === "function"
    ? context.with(
        EMPTY_CONTEXT,
        connect,
        self,
        ...args,
        inCallerContext(callback as (...a: unknown[]) => unknown, type),
      )
    : context.with(EMPTY_CONTEXT, connect, self, ...args);
}
