// Callbacks sent back to the async context of the code that handed them
// over: a client library keeps them and calls them from its socket, in the
// context of whichever request opened the connection.
//
// Not AsyncResource.bind: it defines two properties on every function it
// makes (about 1.8 µs a call on the bench machine), and a pool query hands
// over a callback each time.
import { AsyncResource } from "node:async_hooks";

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
