// What a service depends on, and whether each dependency works: checks
// registered by the instrumentations (each PostgreSQL pool, each RabbitMQ
// connection), by the SDK (the exporter) and by the application, read by
// the health endpoint and the alarms.
import { diag } from "./diagnostics.ts";
import { messageOf } from "./errors.ts";
import { untraced } from "./propagators.ts";

export type HealthStatus = "healthy" | "degraded" | "unhealthy";

export interface HealthResult {
  status: HealthStatus;
  /** Why, in a few words: shown on the endpoint and in alarms. */
  reason?: string;
  details?: Record<string, unknown>;
}

/**
 * A check; it may be async, and is given `timeoutMs` to answer (passed to
 * it, so work it starts, a probe, can be given up at the same time).
 */
export type HealthCheck = (
  timeoutMs: number,
) => HealthResult | Promise<HealthResult>;

export interface ComponentHealth extends HealthResult {
  name: string;
  /** Milliseconds the check took. */
  durationMs: number;
}

const RANK: Record<HealthStatus, number> = {
  healthy: 0,
  degraded: 1,
  unhealthy: 2,
};

/** The worst of several statuses (healthy when there are none). */
export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = "healthy";
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst;
}

export class HealthRegistry {
  readonly #checks = new Map<string, HealthCheck>();
  /**
   * Each check's call still under way: a run while it is shares it rather
   * than calling the check again. Probes from a load balancer, a
   * Kubernetes kubelet and the alarms come at once, and a check that
   * queries a dependency would query it once per probe; one that hangs
   * would pile up a call per probe for as long as it hangs.
   */
  readonly #running = new Map<
    string,
    { check: HealthCheck; answer: Promise<unknown> }
  >();

  /**
   * Adds a check under `name` (a second one with the same name replaces
   * it); returns its removal.
   */
  register(name: string, check: HealthCheck): () => void {
    this.#checks.set(name, check);
    return () => {
      if (this.#checks.get(name) === check) this.#checks.delete(name);
    };
  }

  has(name: string): boolean {
    return this.#checks.has(name);
  }

  /** Runs every check, untraced, each within `timeoutMs`; never throws. */
  async run(timeoutMs = 2000): Promise<ComponentHealth[]> {
    return Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        const start = performance.now();
        let timer: NodeJS.Timeout | undefined;
        let result: HealthResult;
        try {
          const answer: unknown = await Promise.race([
            this.#call(name, check, timeoutMs),
            new Promise<HealthResult>((resolve) => {
              timer = setTimeout(
                () =>
                  resolve({
                    status: "unhealthy",
                    reason: `no answer within ${timeoutMs} ms`,
                  }),
                timeoutMs,
              );
              timer.unref();
            }),
          ]);
          result = validResult(name, answer);
        } catch (err) {
          result = {
            status: "unhealthy",
            reason: messageOf(err),
          };
        } finally {
          if (timer !== undefined) clearTimeout(timer);
        }
        return {
          name,
          ...result,
          durationMs: Math.round((performance.now() - start) * 10) / 10,
        };
      }),
    );
  }

  /** `check`'s answer: its call under way, or a new one (see `#running`). */
  #call(name: string, check: HealthCheck, timeoutMs: number): Promise<unknown> {
    const running = this.#running.get(name);
    if (running !== undefined && running.check === check) return running.answer;
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(untraced(() => check(timeoutMs)));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const entry = { check, answer };
    this.#running.set(name, entry);
    const settled = () => {
      if (this.#running.get(name) === entry) this.#running.delete(name);
    };
    answer.then(settled, settled);
    return answer;
  }
}

/**
 * What a check returned, as a result: anything but one of the three
 * statuses is unhealthy (an unknown status would otherwise rank as
 * healthy, and a check that answers `false` or `{ status: "down" }` means
 * trouble), said once per check on stderr.
 */
function validResult(name: string, answer: unknown): HealthResult {
  const status =
    typeof answer === "object" && answer !== null
      ? (answer as { status?: unknown }).status
      : undefined;
  if (typeof status !== "string" || !Object.hasOwn(RANK, status)) {
    const reason = `the check returned an invalid result: ${describe(answer)}, not { status: "healthy", "degraded" or "unhealthy" }`;
    diag.warnOnce(
      `health result ${name}`,
      `health check ${name}: ${reason}; it counts as unhealthy`,
    );
    return { status: "unhealthy", reason };
  }
  const { reason, details } = answer as {
    reason?: unknown;
    details?: unknown;
  };
  const result: HealthResult = { status: status as HealthStatus };
  if (reason !== undefined && reason !== null)
    result.reason = typeof reason === "string" ? reason : messageOf(reason);
  if (typeof details === "object" && details !== null)
    result.details = details as Record<string, unknown>;
  return result;
}

/** A value in a few words: a check's answer in a reason. */
function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    const status = (value as { status?: unknown }).status;
    if (status === undefined) return "an object without a status";
    return `status ${typeof status === "string" ? JSON.stringify(status).slice(0, 60) : messageOf(status).slice(0, 60)}`;
  }
  if (typeof value === "string") return JSON.stringify(value.slice(0, 60));
  return messageOf(value);
}

/** The process's one registry. */
export const health: HealthRegistry = ((globalThis as Record<symbol, unknown>)[
  Symbol.for("threadline.health")
] ??= new HealthRegistry()) as HealthRegistry;

/** Per name a numbered check was asked for: the suffixes handed out. */
interface Numbering {
  /** Registered under a suffix of this name now. */
  live: number;
  /** The next suffix never handed out. */
  next: number;
  /** Suffixes given back, smallest first (a binary heap). */
  free: number[];
}

const numberingsOf = new WeakMap<HealthRegistry, Map<string, Numbering>>();

/**
 * Registers `check` under `base`, or under `base #2`, `base #3`... the lowest
 * not in use: one check per pool or connection to the same place. A
 * suffix given back is handed out again first, and finding one is a heap
 * operation, not a walk through the names registered before (a job that
 * makes and ends a pool per run would otherwise slow down with each).
 */
export function registerNumbered(
  base: string,
  check: HealthCheck,
  registry: HealthRegistry = health,
): { name: string; unregister: () => void } {
  let numberings = numberingsOf.get(registry);
  if (numberings === undefined)
    numberingsOf.set(registry, (numberings = new Map()));
  let numbering = numberings.get(base);
  if (numbering === undefined) {
    numbering = { live: 0, next: 1, free: [] };
    numberings.set(base, numbering);
  }
  const own = numbering;
  const names = numberings;
  let suffix: number | undefined;
  while (own.free.length > 0) {
    const i = heapPop(own.free);
    // Given back, but taken since under the same name by someone else.
    if (!registry.has(numberedName(base, i))) {
      suffix = i;
      break;
    }
  }
  if (suffix === undefined)
    do suffix = own.next++;
    while (registry.has(numberedName(base, suffix)));
  const name = numberedName(base, suffix);
  const remove = registry.register(name, check);
  own.live++;
  let registered = true;
  return {
    name,
    unregister: () => {
      if (!registered) return;
      registered = false;
      remove();
      // Forgotten with its last check: names are not kept for good.
      if (--own.live === 0) names.delete(base);
      else heapPush(own.free, suffix);
    },
  };
}

/**
 * The numbered checks one owner (an instrumentation) has registered and
 * not yet removed: a removal takes itself out, so an application that
 * opens and closes connections all day keeps none of theirs, and
 * `clear()` (at `disable()`) removes the rest.
 */
export class HealthChecks {
  readonly #registry: HealthRegistry;
  readonly #removals = new Set<() => void>();

  /** @param registry where the checks go; @default the process's one */
  constructor(registry: HealthRegistry = health) {
    this.#registry = registry;
  }

  /** {@link registerNumbered}; returns the check's removal. */
  register(base: string, check: HealthCheck): () => void {
    const { unregister: remove } = registerNumbered(
      base,
      check,
      this.#registry,
    );
    const unregister = () => {
      remove();
      this.#removals.delete(unregister);
    };
    this.#removals.add(unregister);
    return unregister;
  }

  /** Removes every check still registered. */
  clear(): void {
    for (const unregister of [...this.#removals]) unregister();
  }
}

function numberedName(base: string, suffix: number): string {
  return suffix === 1 ? base : `${base} #${suffix}`;
}

function heapPush(heap: number[], value: number): void {
  let i = heap.push(value) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heap[child + 1]! < heap[child]!) child++;
      if (heap[child]! >= last) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
  return top;
}
