/**
 * What every Threadline instrumentation offers the SDK, which composes them.
 * An instrumentation never loads the library it patches: it patches the
 * library when the application loads it (see module-hooks.ts) or listens on
 * the library's diagnostics channels.
 */
export interface Instrumentation {
  /** Package name, used as the instrumentation scope name. */
  readonly name: string;
  /** Starts patching or listening. Idempotent. */
  enable(): void;
  /** Stops producing telemetry; patched functions fall through to the originals. Idempotent. */
  disable(): void;
  /**
   * The start-up self-check: problems that mean the instrumentation did not
   * take effect (e.g. a module loaded before the hooks were in place).
   * Empty when all is well.
   */
  selfCheck?(): string[];
  /**
   * The process is ending (or Threadline is shut down) with work of this
   * instrumentation's still in progress, which its code will never finish:
   * recorded now as the failure it is, in the metrics too, before the last
   * export. Its spans are left open, for the SDK to end with the rest,
   * marked with `reason`; `message` is the status they are ended with.
   * Returns how many were recorded.
   */
  endUnfinished?(reason: string, message: string): number;
}

/**
 * Set (to true) on an `http.Server` whose requests are not to be traced:
 * Threadline's own endpoints (Prometheus scrapes, health checks).
 */
export const UNTRACED_SERVER = Symbol.for("threadline.untraced-server");

/** `server`, marked so that its requests are not traced (UNTRACED_SERVER). */
export function markUntraced<S extends object>(server: S): S {
  (server as Record<symbol, unknown>)[UNTRACED_SERVER] = true;
  return server;
}

/**
 * Puts `wrap(original)` in place of `target[key]`, and pushes onto `undo`
 * what puts the original back: as the own property it was, or by taking the
 * wrapper away where the original was inherited. Once something else has
 * put its own wrapper over ours, the undo leaves the method alone: that
 * wrapper calls ours, and taking ours away would break its chain (ours falls
 * through to the original when disabled). Returns the wrapper.
 */
export function replaceMethod<F>(
  target: object,
  key: PropertyKey,
  wrap: (original: F) => F,
  undo: Array<() => void>,
): F {
  const slots = target as Record<PropertyKey, unknown>;
  const hadOwn = Object.prototype.hasOwnProperty.call(target, key);
  const original = slots[key] as F;
  const wrapper = wrap(original);
  slots[key] = wrapper;
  undo.push(() => {
    if (slots[key] !== wrapper) return;
    if (hadOwn) slots[key] = original;
    else delete slots[key];
  });
  return wrapper;
}
