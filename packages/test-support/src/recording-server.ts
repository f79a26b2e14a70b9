// A stand-in third-party API: a plain HTTP server, not instrumented, that
// records what it received and answers JSON.
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RecordingServer {
  readonly url: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startRecordingServer(
  answer: (req: RecordedRequest) => {
    status?: number;
    headers?: Record<string, string>;
    body?: unknown;
  } = () => ({ body: { ok: true } }),
  /** A loopback address to listen on. */
  host = "127.0.0.1",
): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      const recorded = {
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers: req.headers,
        body,
      };
      requests.push(recorded);
      const a = answer(recorded);
      res.writeHead(a.status ?? 200, {
        "content-type": "application/json",
        ...a.headers,
      });
      res.end(JSON.stringify(a.body ?? {}));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
