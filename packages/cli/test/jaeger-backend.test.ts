// `threadline search` and `threadline trace --backend jaeger=<url>` as
// processes, against stand-ins for Jaeger's query API v3 that record what
// they were asked: a node:http server for the HTTP API, a node:http2 one
// for the gRPC API.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startRecordingServer,
  type RecordedRequest,
  type RecordingServer,
} from "@threadline/test-support";
import { JaegerBackend } from "../src/index.ts";

const bin = fileURLToPath(new URL("../bin/threadline.js", import.meta.url));

function threadline(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, THREADLINE_JAEGER_TOKEN: "", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";

/** One span of `customer`'s, as Jaeger's HTTP API v3 answers a search. */
function found(customer: string): unknown {
  const ns = String(BigInt(Date.now() - 1000) * 1_000_000n);
  return {
    result: {
      resourceSpans: [
        {
          resource: {
            attributes: [
              { key: "service.name", value: { stringValue: "shop" } },
            ],
          },
          scopeSpans: [
            {
              scope: { name: "test" },
              spans: [
                {
                  traceId: TRACE_ID,
                  spanId: "00f067aa0ba902b7",
                  name: "POST /orders",
                  kind: 2,
                  startTimeUnixNano: ns,
                  endTimeUnixNano: ns,
                  attributes: [
                    { key: "customer.id", value: { stringValue: customer } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    },
  };
}

/** Jaeger's answer to a search that finds nothing. */
const NONE = {
  status: 404,
  body: { error: { httpCode: 404, message: "No traces found" } },
};

/** A gRPC stand-in for Jaeger's QueryService, recording each call's headers. */
async function startGrpcJaeger(
  answer: (path: string) => {
    status: number;
    message?: string;
    messages?: Buffer[];
  },
): Promise<{
  url: string;
  calls: Array<{ path: string; headers: http2.IncomingHttpHeaders }>;
  close(): Promise<void>;
}> {
  const calls: Array<{ path: string; headers: http2.IncomingHttpHeaders }> = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    calls.push({ path, headers });
    stream.resume();
    stream.on("end", () => {
      const a = answer(path);
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      for (const m of a.messages ?? []) {
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(m.length, 1);
        stream.write(Buffer.concat([prefix, m]));
      }
      stream.on("wantTrailers", () =>
        stream.sendTrailers({
          "grpc-status": String(a.status),
          "grpc-message": encodeURIComponent(a.message ?? ""),
        }),
      );
      stream.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `grpc://127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const PASSWORD = "S3cretPass";
const BASIC = `Basic ${Buffer.from(`oncall:${PASSWORD}`).toString("base64")}`;
const withUser = (url: string) => url.replace("://", `://oncall:${PASSWORD}@`);

describe("threadline search against a Jaeger behind Basic auth", () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  const basicOnly = (req: RecordedRequest) =>
    req.headers.authorization === BASIC
      ? req.path.startsWith("/api/v3/traces?")
        ? { body: found("c-42") }
        : NONE
      : {
          status: 401,
          headers: { "www-authenticate": "Basic" },
          body: { error: { code: 401, message: "unauthorized" } },
        };

  it("sends the URL's user and password as Basic auth, and prints neither", async () => {
    const jaeger: RecordingServer = await startRecordingServer(basicOnly);
    servers.push(jaeger);
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--json",
      "--backend",
      `jaeger=${withUser(jaeger.url)}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      backend: string;
      traces: Array<{ traceId: string }>;
    };
    assert.deepEqual(
      out.traces.map((t) => t.traceId),
      [TRACE_ID],
    );
    assert.equal(out.backend, `jaeger ${jaeger.url}`);
    assert.ok(jaeger.requests.length > 0);
    for (const req of jaeger.requests)
      assert.equal(req.headers.authorization, BASIC, req.path);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(PASSWORD));
  });

  it("sends a password with a % that encodes nothing as it was written", async () => {
    const jaeger = await startRecordingServer(() => ({ status: 401 }));
    servers.push(jaeger);
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `jaeger=${jaeger.url.replace("://", "://oncall:50%off@")}`,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /401/);
    assert.equal(
      jaeger.requests[0]?.headers.authorization,
      `Basic ${Buffer.from("oncall:50%off").toString("base64")}`,
    );
    assert.doesNotMatch(r.stderr, /50%off/);
  });

  it("names Jaeger by its URL without the password when the password is refused", async () => {
    const jaeger = await startRecordingServer(basicOnly);
    servers.push(jaeger);
    const url = jaeger.url.replace("://", "://oncall:wrong@");
    for (const args of [
      ["search", "--customer", "c-42"],
      ["trace", TRACE_ID],
    ]) {
      const r = await threadline([...args, "--backend", `jaeger=${url}`]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`jaeger ${jaeger.url} answered 401`));
      assert.doesNotMatch(r.stderr, /wrong|oncall/);
    }
  });

  it("prints no password or key when Jaeger cannot be reached or the URL is wrong, nor for a wrong Elasticsearch URL", async () => {
    const jaeger = await startRecordingServer();
    const { port } = jaeger;
    await jaeger.close();
    const wrong = [
      `ftp://oncall:${PASSWORD}@127.0.0.1:${port}`,
      `http://oncall:${PASSWORD}@127.0.0.1:999999`,
      `http://oncall:${PASSWORD}#1@127.0.0.1:${port}`,
      // A key may be given in the query too.
      `ftp://127.0.0.1:${port}/?api_key=${PASSWORD}`,
    ];
    for (const url of [
      ...[
        `http://oncall:${PASSWORD}@127.0.0.1:${port}`,
        `grpc://oncall:${PASSWORD}@127.0.0.1:${port}`,
        ...wrong,
      ].map((url) => `jaeger=${url}`),
      // Elasticsearch takes its credentials from the URL the same way.
      ...wrong.map((url) => `elasticsearch=${url}`),
    ]) {
      const r = await threadline([
        "search",
        "--customer",
        "c-42",
        "--backend",
        url,
      ]);
      assert.notEqual(r.code, 0, url);
      assert.match(r.stderr, /127\.0\.0\.1/, url);
      assert.doesNotMatch(r.stderr, new RegExp(PASSWORD), url);
    }
  });

  it("sends THREADLINE_JAEGER_TOKEN as a bearer token", async () => {
    const jaeger = await startRecordingServer((req) =>
      req.path.startsWith("/api/v3/traces?") ? { body: found("c-42") } : NONE,
    );
    servers.push(jaeger);
    const r = await threadline(
      ["search", "--customer", "c-42", "--backend", `jaeger=${jaeger.url}`],
      { THREADLINE_JAEGER_TOKEN: "t0ken" },
    );
    assert.equal(r.code, 0, r.stderr);
    for (const req of jaeger.requests)
      assert.equal(req.headers.authorization, "Bearer t0ken", req.path);
  });

  it("sends the URL's user and password over gRPC", async () => {
    const jaeger = await startGrpcJaeger(() => ({ status: 5 }));
    servers.push(jaeger);
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `jaeger=${withUser(jaeger.url)}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no traces found/);
    assert.deepEqual(
      jaeger.calls.map((c) => [c.path, c.headers.authorization]),
      [["/jaeger.api_v3.QueryService/FindTraces", BASIC]],
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(PASSWORD));
  });
});

/** GetServicesResponse: repeated string services = 1. */
function services(...names: string[]): Buffer {
  return Buffer.concat(
    names.map((n) =>
      Buffer.concat([Buffer.from([0x0a, n.length]), Buffer.from(n)]),
    ),
  );
}

/** Jaeger's words when a storage needs a service name with an attribute filter. */
const SERVICE_REQUIRED = "service Name must be set";

describe("threadline search against a Jaeger that fails", () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it("waits for a Jaeger that does not answer once, and says so", async () => {
    const paths: string[] = [];
    const server = http.createServer((req) => paths.push(req.url ?? ""));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push({
      close: () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    });
    const { port } = server.address() as AddressInfo;
    const backend = new JaegerBackend(`http://127.0.0.1:${port}`, {
      timeoutMs: 300,
    });
    const t0 = Date.now();
    await assert.rejects(backend.search({ customer: "c-42" }), (err: Error) => {
      assert.match(err.message, /not reachable .*timeout/);
      return true;
    });
    assert.ok(Date.now() - t0 < 600, `${Date.now() - t0} ms`);
    assert.equal(paths.length, 1, paths.join("\n"));
    assert.match(paths[0]!, /^\/api\/v3\/traces\?/);
    await backend.close();

    const calls: string[] = [];
    const h2 = http2.createServer();
    h2.on("stream", (_stream, headers) => calls.push(String(headers[":path"])));
    await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
    const grpc = new JaegerBackend(
      `grpc://127.0.0.1:${(h2.address() as AddressInfo).port}`,
      { timeoutMs: 300 },
    );
    await assert.rejects(
      grpc.search({ customer: "c-42" }),
      /did not answer within 0.3 s/,
    );
    assert.deepEqual(calls, ["/jaeger.api_v3.QueryService/FindTraces"]);
    await grpc.close();
    await new Promise<void>((r) => h2.close(() => r()));
  });

  it("reports Jaeger's 401 to the search, not what another request got", async () => {
    const jaeger = await startRecordingServer((req) =>
      req.path.startsWith("/api/v3/traces?")
        ? { status: 401, body: { error: { message: "token expired" } } }
        : { status: 503, body: { error: { message: "other" } } },
    );
    servers.push(jaeger);
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `jaeger=${jaeger.url}`,
    ]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /answered 401: .*token expired/);
    assert.deepEqual(
      jaeger.requests.map((q) => q.path.split("?")[0]),
      ["/api/v3/traces"],
    );
  });

  it("asks each service when Jaeger's storage needs a service name, over HTTP", async () => {
    const jaeger = await startRecordingServer((req) => {
      if (req.path === "/api/v3/services")
        return { body: { services: ["billing", "shop"] } };
      const service = new URL(req.path, "http://x").searchParams.get(
        "query.service_name",
      );
      if (service === null)
        return {
          status: 500,
          body: { error: { httpCode: 500, message: SERVICE_REQUIRED } },
        };
      return service === "shop" ? { body: found("c-42") } : NONE;
    });
    servers.push(jaeger);
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--json",
      "--backend",
      `jaeger=${jaeger.url}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (
        JSON.parse(r.stdout) as { traces: Array<{ traceId: string }> }
      ).traces.map((t) => t.traceId),
      [TRACE_ID],
    );
    assert.equal(jaeger.requests.length, 4);
  });

  it("asks each service when Jaeger's storage needs a service name, over gRPC, and reports any other failure", async () => {
    // The first FindTraces, without a service, is refused.
    let first = true;
    const refusing = await startGrpcJaeger((path) => {
      if (path.endsWith("/FindTraces") && first) {
        first = false;
        return { status: 2, message: SERVICE_REQUIRED };
      }
      return path.endsWith("/GetServices")
        ? { status: 0, messages: [services("billing", "shop")] }
        : { status: 5 };
    });
    servers.push(refusing);
    let r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `jaeger=${refusing.url}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no traces found/);
    assert.deepEqual(
      refusing.calls.map((c) => c.path.split("/").pop()),
      ["FindTraces", "GetServices", "FindTraces", "FindTraces"],
    );

    const failing = await startGrpcJaeger(() => ({
      status: 16,
      message: "no credentials",
    }));
    servers.push(failing);
    r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `jaeger=${failing.url}`,
    ]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /answered gRPC status 16: no credentials/);
    assert.deepEqual(
      failing.calls.map((c) => c.path.split("/").pop()),
      ["FindTraces"],
    );
  });
});

describe("threadline search for a customer id with regular-expression characters", () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  const customerFilter = (req: RecordedRequest) => {
    const a = new URL(req.path, "http://x").searchParams.get(
      "query.attributes",
    );
    return a === null
      ? undefined
      : (JSON.parse(a) as Record<string, string>)["customer.id"];
  };
  const search = (customer: string, url: string) =>
    threadline([
      "search",
      "--customer",
      customer,
      "--json",
      "--backend",
      `jaeger=${url}`,
    ]);
  const traceIds = (stdout: string) =>
    (JSON.parse(stdout) as { traces: Array<{ traceId: string }> }).traces.map(
      (t) => t.traceId,
    );

  it("is found where Jaeger's storage matches the value as a regular expression", async () => {
    for (const [customer, regexp] of [
      ["bob+vip@example.com", "bob\\+vip\\@example\\.com"],
      ["acme(uk)", "acme\\(uk\\)"],
      ['x" OR 1=1 \\', 'x\\" OR 1=1 \\\\'],
    ]) {
      // As Elasticsearch's regexp query: only the escaped value is this
      // customer, and the raw one is a malformed expression or another.
      const jaeger = await startRecordingServer((req) =>
        req.path.startsWith("/api/v3/traces?") && customerFilter(req) === regexp
          ? { body: found(customer!) }
          : NONE,
      );
      servers.push(jaeger);
      const r = await search(customer!, jaeger.url);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(traceIds(r.stdout), [TRACE_ID], customer);
      assert.deepEqual(jaeger.requests.map(customerFilter), [regexp]);
    }
  });

  it("is found where Jaeger's storage compares the value as it is", async () => {
    const customer = "acme(uk)";
    // As Jaeger's memory, Badger and Cassandra storages.
    const jaeger = await startRecordingServer((req) => {
      if (!req.path.startsWith("/api/v3/traces?")) return NONE;
      const c = customerFilter(req);
      return c === undefined || c === customer
        ? { body: found(customer) }
        : NONE;
    });
    servers.push(jaeger);
    const r = await search(customer, jaeger.url);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(traceIds(r.stdout), [TRACE_ID]);
    assert.deepEqual(jaeger.requests.map(customerFilter), [
      "acme\\(uk\\)",
      undefined,
    ]);
  });

  it("is sent as it is when it has none", async () => {
    const jaeger = await startRecordingServer(() => NONE);
    servers.push(jaeger);
    const r = await search("c-42", jaeger.url);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(traceIds(r.stdout), []);
    assert.deepEqual(jaeger.requests.map(customerFilter), ["c-42"]);
  });
});

describe("threadline trace --json against Jaeger", () => {
  it("prints an integer attribute past 2^53 as its exact decimal", async () => {
    const trace = found("c-42") as {
      result: {
        resourceSpans: Array<{
          scopeSpans: Array<{
            spans: Array<{
              attributes: Array<{ key: string; value: unknown }>;
            }>;
          }>;
        }>;
      };
    };
    trace.result.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes.push({
      key: "order.id",
      value: { intValue: "1234567890123456789" },
    });
    const jaeger = await startRecordingServer((req) =>
      req.path === `/api/v3/traces/${TRACE_ID}` ? { body: trace } : NONE,
    );
    try {
      const r = await threadline([
        "trace",
        TRACE_ID,
        "--json",
        "--backend",
        `jaeger=${jaeger.url}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as {
        spans: Array<{ attributes: Record<string, unknown> }>;
      };
      assert.equal(out.spans[0]!.attributes["order.id"], "1234567890123456789");
    } finally {
      await jaeger.close();
    }
  });
});
