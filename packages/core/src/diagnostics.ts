// The SDK's own diagnostic output: warnings a user must see (a bad setting,
// an instrumentation that did not take, data that was dropped), written to
// stderr with a `threadline` prefix and controlled by OTEL_LOG_LEVEL.
// Repeated warnings are collapsed: the first is written at once, later ones
// under the same key are counted and summarised once per window, so a
// Collector outage costs one line a minute, not one per batch.

/** Verbosity, as OTEL_LOG_LEVEL names it. */
export type DiagLevel =
  "none" | "error" | "warn" | "info" | "debug" | "verbose";

const RANK: Record<DiagLevel, number> = {
  none: 0,
  error: 1,
  warn: 2,
  info: 3,
  debug: 4,
  verbose: 5,
};

/** Where diagnostic lines go; the default writes to stderr. */
export type DiagSink = (
  level: Exclude<DiagLevel, "none">,
  message: string,
) => void;

const stderrSink: DiagSink = (level, message) => {
  try {
    process.stderr.write(`threadline ${level}: ${message}\n`);
  } catch {
    // stderr closed: nothing sensible left to do
  }
};

interface Pending {
  message: string;
  count: number;
  timer: NodeJS.Timeout;
}

/** Diagnostic logger with once-only and collapsed warnings. */
export class Diagnostics {
  #rank = RANK.warn;
  #sink: DiagSink = stderrSink;
  readonly #once = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  /** Window over which repeated warnings are collapsed, in milliseconds. */
  collapseWindowMs = 60_000;

  /** Parses an OTEL_LOG_LEVEL value; returns false (and changes nothing) if unknown. */
  setLevel(level: string): boolean {
    const l = level.trim().toLowerCase() as DiagLevel | "all";
    if (l === "all") {
      this.#rank = RANK.verbose;
      return true;
    }
    // Own keys only: `constructor` or `__proto__` is no level.
    if (!Object.hasOwn(RANK, l)) return false;
    this.#rank = RANK[l];
    return true;
  }

  setSink(sink: DiagSink | undefined): void {
    this.#sink = sink ?? stderrSink;
  }

  enabled(level: Exclude<DiagLevel, "none">): boolean {
    return RANK[level] <= this.#rank;
  }

  #write(level: Exclude<DiagLevel, "none">, message: string): void {
    if (RANK[level] <= this.#rank) this.#sink(level, message);
  }

  error(message: string): void {
    this.#write("error", message);
  }
  warn(message: string): void {
    this.#write("warn", message);
  }
  info(message: string): void {
    this.#write("info", message);
  }
  debug(message: string): void {
    this.#write("debug", message);
  }

  /** Writes a warning the first time `key` is seen, never again. */
  warnOnce(key: string, message: string): void {
    if (this.#once.has(key)) return;
    this.#once.add(key);
    this.warn(message);
  }

  /**
   * Writes the first warning for `key` at once; further ones within the
   * window are counted (`count` each) and written as one summary line.
   */
  warnCollapsed(key: string, message: string, count = 1): void {
    const p = this.#pending.get(key);
    if (p !== undefined) {
      p.count += count;
      p.message = message;
      return;
    }
    this.warn(message);
    const timer = setTimeout(() => this.#flushKey(key), this.collapseWindowMs);
    timer.unref();
    this.#pending.set(key, { message, count: 0, timer });
  }

  #flushKey(key: string): void {
    const p = this.#pending.get(key);
    if (p === undefined) return;
    this.#pending.delete(key);
    clearTimeout(p.timer);
    if (p.count > 0)
      this.warn(
        `${p.message} (repeated ${p.count} more times in the last ${Math.round(this.collapseWindowMs / 1000)} s)`,
      );
  }

  /** Writes every pending collapsed summary now (at shutdown). */
  flush(): void {
    for (const key of [...this.#pending.keys()]) this.#flushKey(key);
  }

  /** Forgets once-only keys and pending summaries (for tests and re-initialisation). */
  reset(): void {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#once.clear();
  }
}

/** The process-wide diagnostic logger shared by the SDK and the instrumentations. */
export const diag: Diagnostics = new Diagnostics();
