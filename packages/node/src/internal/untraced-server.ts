// Threadline's own HTTP endpoints (Prometheus scrapes, health): plain
// servers the http instrumentation skips, that never keep the process
// alive, that report a port they cannot take instead of throwing, and
// that no client holds open past their close.
import type { IncomingMessage, ServerResponse } from "node:http";
import { diag, UNTRACED_SERVER } from "@threadline/core";

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

/** Listens on host:port; resolves undefined (with a warning) when it cannot. */
export function startUntracedServer(
  what: string,
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<UntracedServer | undefined> {
  // Not an ESM import of node:http: its namespace loads undici and http2.
  const server = process.getBuiltinModule("node:http").createServer(handler);
  (server as unknown as Record<symbol, unknown>)[UNTRACED_SERVER] = true;
  server.unref();
  return new Promise((resolve) => {
    const failed = (err: NodeJS.ErrnoException) => {
      diag.warn(
        `${what} could not listen on ${host}:${port}: ${err.code ?? err.message}`,
      );
      resolve(undefined);
    };
    server.once("error", failed);
    try {
      server.listen(port, host, () => {
        const a = server.address();
        const p = typeof a === "object" && a !== null ? a.port : port;
        resolve({
          origin: `http://${host.includes(":") ? `[${host}]` : host}:${p}`,
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
