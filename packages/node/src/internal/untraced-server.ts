// Threadline's own HTTP endpoints (Prometheus scrapes, health): plain
// servers the http instrumentation skips, that never keep the process
// alive, that report a port they cannot take instead of throwing, that no
// client holds open past their close, and that answer for their own
// process alone, in a cluster worker too.
import type { Cluster } from "node:cluster";
import type { IncomingMessage, ServerResponse } from "node:http";
import { diag, markUntraced } from "@threadline/core";

export interface UntracedServer {
  /** http://host:port, with the port actually taken. */
  readonly origin: string;
  /**
   * Stops listening and ends every connection: idle ones at once, those
   * with an answer under way after `graceMs`. A client's connection (a
   * load balancer's idle keep-alive, a request never finished, a bare
   * connect) must not hold up the shutdown waiting for this.
   */
  close(graceMs: number): Promise<void>;
}

/** The endpoint, as its warnings name it. */
export interface Endpoint {
  /** e.g. "the health endpoint". */
  readonly what: string;
  /** The variable that sets its port. */
  readonly variable: string;
  /** Another way to its data, for the workers of a cluster that go without. */
  readonly otherwise?: string;
  /** Its path, as a message naming where it listens shows it. */
  readonly path?: string;
}

/**
 * The endpoints of this process by the port they asked for, while they
 * hold or wait for it: one that finds its port taken by another of them
 * says so, rather than blame another process.
 */
const asked = new Map<number, Endpoint>();

/** Listens on host:port; resolves undefined (with a warning) when it cannot. */
export function startUntracedServer(
  endpoint: Endpoint,
  given: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<UntracedServer | undefined> {
  // An IPv6 address may come bracketed, as a URL writes it; listen()
  // takes it bare.
  const host =
    given.startsWith("[") && given.endsWith("]") ? given.slice(1, -1) : given;
  // Not an ESM import of node:http: its namespace loads undici and http2.
  const server = process.getBuiltinModule("node:http").createServer(handler);
  markUntraced(server);
  server.unref();
  return new Promise((resolve) => {
    const failed = (err: NodeJS.ErrnoException) => {
      const other = asked.get(port);
      if (other === endpoint) asked.delete(port);
      diag.warn(
        `${endpoint.what} could not listen on ${host}:${port}: ${err.code ?? err.message}` +
          (err.code !== "EADDRINUSE"
            ? ""
            : other !== undefined && other !== endpoint
              ? `, the port is ${other.what}'s (${other.variable}); give each a port of its own`
              : inUse(endpoint)),
      );
      resolve(undefined);
    };
    server.once("error", failed);
    // Port 0 takes any free port: which one, it says once listening.
    if (port !== 0 && !asked.has(port)) asked.set(port, endpoint);
    try {
      // Exclusive: a cluster worker would otherwise get the primary's
      // shared handle, and with every worker on it, each scrape or probe
      // would reach whichever worker the primary hands it to, a series
      // whose counters jump between processes, a readiness of any one.
      // So the first worker takes the port and the others are told so.
      server.listen({ port, host, exclusive: true }, () => {
        const a = server.address();
        const p = typeof a === "object" && a !== null ? a.port : port;
        const origin = `http://${host.includes(":") ? `[${host}]` : host}:${p}`;
        if (port === 0)
          diag.info(
            `${endpoint.what} listens on ${origin}${endpoint.path ?? ""} (${endpoint.variable}=0 takes any free port)`,
          );
        resolve({
          origin,
          close: (graceMs) =>
            new Promise((r) => {
              // Not unref'd: the shutdown waits for it, and must not see
              // the process end in the meantime.
              const cut = setTimeout(
                () => server.closeAllConnections(),
                graceMs,
              );
              // close() ends the idle connections itself.
              server.close(() => {
                clearTimeout(cut);
                if (asked.get(port) === endpoint) asked.delete(port);
                r();
              });
            }),
        });
      });
    } catch (err) {
      // A port out of range throws rather than emitting "error".
      failed(err as NodeJS.ErrnoException);
    }
  });
}

function inUse(endpoint: Endpoint): string {
  const cluster = process.getBuiltinModule(
    "node:cluster",
  ) as unknown as Cluster;
  if (!cluster.isWorker)
    return `, the port is taken by another process; set ${endpoint.variable} to a free one`;
  return (
    `, the port is taken, by the cluster's primary or the worker that took it first, ` +
    `which answers for itself alone; this worker goes without it. Give each worker a port of its own ` +
    `(${endpoint.variable} in the env of cluster.fork(), or pm2's increment_var) to reach every worker` +
    (endpoint.otherwise === undefined ? "" : `, or ${endpoint.otherwise}`)
  );
}
