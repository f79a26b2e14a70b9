// What a service depends on, and whether each dependency works: checks
// registered by the instrumentations (each PostgreSQL pool, each RabbitMQ
// connection), by the SDK (the exporter) and by the application, read by
// the health endpoint and the alarms.
import { context } from "@opentelemetry/api";
import { messageOf } from "./errors.ts";
import { suppressTracing } from "./propagators.ts";

export type HealthStatus = "healthy" | "degraded" | "unhealthy";

export interface HealthResult {
  status: HealthStatus;
  /** Why, in a few words: shown on the endpoint and in alarms. */
  reason?: string;
  details?: Record<string, unknown>;
}

/** A check; it may be async, and is given `timeoutMs` to answer. */
export type HealthCheck = () => HealthResult | Promise<HealthResult>;

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
    const untraced = suppressTracing(context.active());
    return Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        const start = performance.now();
        let timer: NodeJS.Timeout | undefined;
        let result: HealthResult;
        try {
          result = await Promise.race([
            Promise.resolve(context.with(untraced, check)),
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
}

/** The process's one registry. */
export const health: HealthRegistry = ((globalThis as Record<symbol, unknown>)[
  Symbol.for("threadline.health")
] ??= new HealthRegistry()) as HealthRegistry;
