// The exporter's own health check and the optional health endpoint:
// GET /livez answers while the event loop does; GET /readyz (and /health)
// runs every registered check (PostgreSQL pools, RabbitMQ connections, the
// exporter, the application's own) and answers 503 when one is unhealthy;
// GET /alarms lists active alarms and their history, POST
// /alarms/<id>/ack acknowledges one. HEAD answers as GET does.
import {
  health,
  messageOf,
  worstStatus,
  type ComponentHealth,
  type HealthCheck,
  type HealthResult,
} from "@threadline/core";
import type { AlarmEngine } from "./alarms/engine.ts";
import type { ExportPipeline } from "./export/pipeline.ts";
import {
  startUntracedServer,
  type UntracedServer,
} from "./internal/untraced-server.ts";

/** Registers a check of your own under `name`; returns its removal. */
export function registerHealthCheck(
  name: string,
  check: HealthCheck,
): () => void {
  return health.register(name, check);
}

const DROP_WINDOW_MS = 60_000;

/**
 * The exporter: degraded (never unhealthy: telemetry must not take a
 * service out of rotation) while it drops data or its buffer is over half
 * full.
 */
export function registerExporterHealth(
  pipeline: ExportPipeline,
  maxBytes: number,
): () => void {
  let lastDropped = 0;
  let lastDropAt = -Infinity;
  return health.register("exporter", (): HealthResult => {
    const s = pipeline.stats();
    let dropped = 0;
    let pendingBytes = 0;
    for (const signal of [s.traces, s.logs, s.metrics]) {
      for (const n of Object.values(signal.dropped)) dropped += n;
      pendingBytes = Math.max(pendingBytes, signal.pendingBytes);
    }
    const now = performance.now();
    if (dropped > lastDropped) {
      lastDropped = dropped;
      lastDropAt = now;
    }
    const details = { dropped, pendingBytes, maxBytes };
    if (now - lastDropAt < DROP_WINDOW_MS)
      return {
        status: "degraded",
        reason: "telemetry was dropped in the last minute",
        details,
      };
    if (pendingBytes > maxBytes / 2)
      return {
        status: "degraded",
        reason:
          "the export buffer is over half full: the Collector is slow or down",
        details,
      };
    return { status: "healthy", details };
  });
}

const HEALTH = {
  what: "the health endpoint",
  variable: "THREADLINE_HEALTH_PORT",
};

// HEAD is answered as GET is, without the body, and OPTIONS with what a
// path takes: probes such as `curl -I`, `wget --spider` and HAProxy's
// httpchk (OPTIONS unless told otherwise) use them, and would take a
// healthy service out of rotation on a 405.
const READ = "GET, HEAD, OPTIONS";
const ACK = "POST, OPTIONS";
const PROBE_PATHS = new Set(["/livez", "/readyz", "/health"]);
const READ_PATHS = new Set([...PROBE_PATHS, "/alarms"]);
const PATHS = "GET /livez, /readyz, /health or /alarms; POST /alarms/<id>/ack";
// Said by /alarms and the acknowledgement when no engine runs, as a 404
// with no lists: empty ones would read as a service with no alarms, to a
// script as to whoever is on call.
const ALARMS_OFF =
  "alarms are off (THREADLINE_ALARMS=false, or init()'s alarms: false)";

export function startHealthEndpoint(
  host: string,
  port: number,
  service: string,
  alarms?: AlarmEngine,
): Promise<UntracedServer | undefined> {
  return startUntracedServer(HEALTH, host, port, (req, res) => {
    req.resume();
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const ack = /^\/alarms\/(.+)\/ack$/.exec(path);
    const allow = ack !== null ? ACK : READ_PATHS.has(path) ? READ : undefined;
    // Every answer of a path says what it takes.
    const headers: Record<string, string> =
      allow === undefined ? {} : { allow };
    const json = (status: number, body: unknown) => {
      // An OPTIONS probe gets the status alone.
      if (req.method === "OPTIONS") {
        res.writeHead(status, { ...headers, "content-length": "0" }).end();
        return;
      }
      const text = JSON.stringify(body);
      // The length, not chunks, so a HEAD answer carries what the GET does.
      res
        .writeHead(status, {
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(text)),
          "cache-control": "no-store",
          ...headers,
        })
        .end(text);
    };
    if (allow === undefined) return json(404, { error: PATHS });
    // OPTIONS is how HAProxy's httpchk probes by default, counting any 2xx
    // as up: a probe's path answers it with the status GET would get.
    if (req.method === "OPTIONS" && (ack !== null || !PROBE_PATHS.has(path)))
      return json(204, undefined);
    if (ack !== null) {
      if (req.method !== "POST") return json(405, { error: "use POST" });
      if (alarms === undefined) return json(404, { error: ALARMS_OFF });
      let id: string;
      try {
        id = decodeURIComponent(ack[1]!);
      } catch {
        return json(400, { error: "the alarm id is not valid URL encoding" });
      }
      return alarms.acknowledge(id)
        ? json(200, { acknowledged: id })
        : json(404, { error: `no active alarm ${id}` });
    }
    if (
      req.method !== "GET" &&
      req.method !== "HEAD" &&
      req.method !== "OPTIONS"
    )
      return json(405, { error: "use GET or HEAD" });
    if (path === "/livez") return json(200, { status: "alive", service });
    if (path === "/alarms")
      return alarms === undefined
        ? json(404, { error: ALARMS_OFF, service })
        : json(200, {
            service,
            active: alarms.active(),
            history: alarms.history(),
          });
    health
      .run()
      .then((components) => {
        const status = worstStatus(components.map((c) => c.status));
        json(status === "unhealthy" ? 503 : 200, {
          status,
          service,
          components: components.map(printable),
        });
      })
      .catch((err: unknown) => {
        // A probe that gets no answer takes the service out of rotation
        // as surely as a crash would; say what went wrong instead.
        if (!res.headersSent)
          json(500, { error: `the health report failed: ${messageOf(err)}` });
        else res.destroy();
      });
  });
}

/**
 * The component as the endpoint writes it: details JSON cannot carry (a
 * BigInt, a cycle, a throwing toJSON) are replaced by a note, so one
 * check's details never cost the whole answer; its status still counts.
 */
function printable(component: ComponentHealth): ComponentHealth {
  if (component.details === undefined) return component;
  try {
    JSON.stringify(component.details);
    return component;
  } catch (err) {
    return {
      ...component,
      details: {
        unprintable: `the check's details cannot be written as JSON: ${messageOf(err)}`,
      },
    };
  }
}
