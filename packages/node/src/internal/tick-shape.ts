// Keeps process.nextTick() on V8's fast path.
//
// nextTick() queues an object literal whose keys are computed (async ids,
// the async context frame). V8's feedback for each such key remembers the
// one hidden class the object had before it, and holds that class weakly:
// full garbage collections that run while no tick is queued collect it, the
// next tick builds a fresh class, and the feedback turns megamorphic for the
// life of the process. The optimized nextTick() then defines each of those
// keys through a runtime call, about ten times the cost of a whole tick
// (test/tick-shape.test.ts provokes it). An instrumented service grows its
// heap at start-up, so it meets such a collection early; one tick object
// kept alive from the start keeps the classes alive, and the feedback
// stays monomorphic.
import { executionAsyncResource } from "node:async_hooks";

/** Held only so that the collector sees it referenced. */
const kept: object[] = [];

/**
 * Keeps the resource of one process.nextTick() callback (the queued object
 * itself) alive for the life of the process. The SDK calls it once, as it
 * starts.
 */
export function keepTickShape(): void {
  process.nextTick(keepCurrent);
}

function keepCurrent(): void {
  kept.push(executionAsyncResource());
}
