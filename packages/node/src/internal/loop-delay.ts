// Event-loop delay measured in windows (one per reader of the metrics: the
// OTLP export, a Prometheus scrape, the alarm rules; one for the alarm
// engine's own event-loop rule).
//
// perf_hooks' monitorEventLoopDelay records the time between the ticks of a
// timer, and its reset() also forgets when the timer last ticked. A window
// closed right after the loop was held (a handler that blocked, then the
// collection's timer running before the monitor's overdue tick) therefore
// loses the very delay it is there to report: the next tick has nothing to
// measure from. Here a timer of our own records how late each of its ticks
// ran into a histogram, and closing a window clears the histogram but keeps
// the last tick, so a held loop lands in the next window instead of nowhere.
//
// The delay is the lateness alone, not the whole interval the monitor
// records (whose every figure includes its resolution), so the resolution
// can be coarse: a JavaScript timer's wakeup costs an idle process more
// than the monitor's native one, and 20 ms keeps the two at about the same
// cost. All windows share one timer.
//
// The histograms keep two significant digits from a microsecond to an hour:
// perf_hooks' default (three digits, one nanosecond to 2^53) is about 360 KB
// of counters per histogram, resident once the loop has been late by a wide
// range of amounts; this one measures 80 to 100 KB.
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

/** How often the loop is sampled. */
export const RESOLUTION_MS = 20;

/** Nanoseconds: what the histograms can tell apart, and the longest delay they hold. */
const LOWEST_NS = 1_000;
const HIGHEST_NS = 3_600e9;

/** The windows being measured, and the one timer that ticks for all of them. */
const windows = new Set<RecordableHistogram>();
let timer: NodeJS.Timeout | undefined;
let last = 0;

function tick(): void {
  const now = performance.now();
  // How late this tick ran, in nanoseconds, within what the histograms hold
  // (perf_hooks drops a value above the highest; one below the lowest reads 0).
  const ns = Math.min(
    HIGHEST_NS,
    Math.max(LOWEST_NS, Math.round((now - last - RESOLUTION_MS) * 1e6)),
  );
  last = now;
  for (const h of windows) h.record(ns);
}

export class LoopDelay {
  readonly #histogram: RecordableHistogram = createHistogram({
    lowest: LOWEST_NS,
    highest: HIGHEST_NS,
    figures: 2,
  });

  start(): void {
    windows.add(this.#histogram);
    if (timer !== undefined) return;
    last = performance.now();
    timer = setInterval(tick, RESOLUTION_MS);
    timer.unref();
  }

  stop(): void {
    windows.delete(this.#histogram);
    if (windows.size > 0 || timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  }

  /** The window's delays since the last take(), and a new window. */
  take(): LoopDelays {
    const out = this.read();
    this.#histogram.reset();
    return out;
  }

  /** The window's delays since the last take(), the window left open. */
  read(): LoopDelays {
    const h = this.#histogram;
    return h.count === 0
      ? { count: 0, p50: 0, p90: 0, p99: 0, max: 0 }
      : {
          count: h.count,
          p50: h.percentile(50) / 1e9,
          p90: h.percentile(90) / 1e9,
          p99: h.percentile(99) / 1e9,
          max: h.max / 1e9,
        };
  }
}
