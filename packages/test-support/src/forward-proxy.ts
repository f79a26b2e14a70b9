// A forward proxy in a process of its own (so nothing of ours touches what
// it forwards), the kind applications reach through HTTP_PROXY or undici's
// ProxyAgent: absolute-form requests (`GET http://host/path`) are forwarded,
// and CONNECT opens a tunnel. It records the headers it could read: those
// of every absolute-form request, and those of a plain-HTTP request sent
// through a tunnel, which cross the proxy in clear.
import { spawn } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";
import { waitFor } from "./wait.ts";

export interface ProxiedRequest {
  /** `GET`, `POST`…, or `CONNECT` for a tunnel. */
  method: string;
  /** The absolute-form target, or `host:port` for a tunnel. */
  target: string;
  /** The request's headers; for a tunnel, those of the first request sent through it. */
  headers: IncomingHttpHeaders;
}

export interface ForwardProxy {
  readonly url: string;
  readonly port: number;
  readonly requests: ProxiedRequest[];
  close(): Promise<void>;
}

const PROXY = `
import http from "node:http";
import net from "node:net";
const report = (r) => process.stdout.write(JSON.stringify(r) + "\\n");
const headersOf = (head) => {
  const headers = {};
  for (const line of head.split("\\r\\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
};
const server = http.createServer((req, res) => {
  report({ method: req.method, target: req.url, headers: req.headers });
  const url = new URL(req.url);
  const headers = { ...req.headers };
  delete headers["proxy-connection"];
  const up = http.request(
    { host: url.hostname, port: url.port, path: url.pathname + url.search, method: req.method, headers },
    (answer) => { res.writeHead(answer.statusCode, answer.headers); answer.pipe(res); },
  );
  up.on("error", (e) => res.writeHead(502).end(String(e)));
  req.pipe(up);
});
server.on("connect", (req, socket, head) => {
  const colon = req.url.lastIndexOf(":");
  const up = net.connect(Number(req.url.slice(colon + 1)), req.url.slice(0, colon).replace(/^\\[|\\]$/g, ""), () => {
    socket.write("HTTP/1.1 200 Connection Established\\r\\n\\r\\n");
    let seen = head.toString("latin1");
    const first = () => {
      const end = seen.indexOf("\\r\\n\\r\\n");
      if (end === -1 && seen.length < 65536) return false;
      report({ method: "CONNECT", target: req.url, headers: headersOf(seen.slice(0, end)) });
      return true;
    };
    if (!first()) {
      const more = (d) => { seen += d.toString("latin1"); if (first()) socket.off("data", more); };
      socket.on("data", more);
    }
    up.write(head);
    up.pipe(socket);
    socket.pipe(up);
  });
  up.on("error", () => socket.destroy());
  socket.on("error", () => up.destroy());
});
server.listen(0, process.argv[1], () => report({ port: server.address().port }));
`;

/** Starts a forward proxy on `host` (a loopback address). */
export async function startForwardProxy(
  host = "127.0.0.1",
): Promise<ForwardProxy> {
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", PROXY, host],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const requests: ProxiedRequest[] = [];
  let port = 0;
  let rest = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const r = JSON.parse(line) as ProxiedRequest & { port?: number };
      if (r.port !== undefined) port = r.port;
      else requests.push(r);
    }
  });
  const exited = new Promise<void>((resolve) =>
    child.on("exit", () => resolve()),
  );
  try {
    await waitFor(() => port !== 0 || child.exitCode !== null, {
      what: "the forward proxy to listen",
    });
  } finally {
    if (port === 0) child.kill();
  }
  if (port === 0) throw new Error("the forward proxy exited at start");
  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    close: () => {
      child.kill();
      return exited;
    },
  };
}
