// Event-loop delay measured in windows (one per metrics collection, one per
// alarm evaluation).
//
// perf_hooks' monitorEventLoopDelay records the time between the ticks of a
// timer, and its reset() also forgets when the timer last ticked. A window
// closed right after the loop was held (a handler that blocked, then the
// collection's timer running before the monitor's overdue tick) therefore
// loses the very delay it is there to report: the next tick has nothing to
// measure from. Here a timer of our own records the time between its ticks
// (the same figures as the monitor's) into a histogram, and closing a window
// clears the histogram but keeps the last tick, so a held loop lands in the
// next window instead of nowhere.
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";

export interface LoopDelays {
  /** Ticks measured in the window. */
  count: number;
  /** Seconds, by percentile (100: the longest). */
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export class LoopDelay {
  readonly #resolutionMs: number;
  readonly #histogram: RecordableHistogram = createHistogram();
  #last = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(resolutionMs = 10) {
    this.#resolutionMs = resolutionMs;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#last = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      // Nanoseconds, as the monitor records them; at least 1 (the histogram's floor).
      this.#histogram.record(Math.max(1, Math.round((now - this.#last) * 1e6)));
      this.#last = now;
    }, this.#resolutionMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The window's delays since the last take(), and a new window. */
  take(): LoopDelays {
    const h = this.#histogram;
    const out =
      h.count === 0
        ? { count: 0, p50: 0, p90: 0, p99: 0, max: 0 }
        : {
            count: h.count,
            p50: h.percentile(50) / 1e9,
            p90: h.percentile(90) / 1e9,
            p99: h.percentile(99) / 1e9,
            max: h.max / 1e9,
          };
    h.reset();
    return out;
  }
}
