// node:http/https and fetch instrumentation inside one process, against a
// real OTLP receiver: status and errors, aborts, keep-alive, routes, TLS,
// and egress rules for baggage.
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { Readable, type Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import express from "express";
import websocket from "@fastify/websocket";
import Fastify from "fastify";
import Fastify4 from "fastify4";
import { context, trace } from "@opentelemetry/api";
import { diag, httpServerOutcomes, suppressTracing } from "@threadline/core";
import {
  selfSignedCertificate,
  startOtlpReceiver,
  startRecordingServer,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
  type RecordingServer,
} from "@threadline/test-support";
import {
  init,
  setHttpRoute,
  withCustomer,
  type ThreadlineHandle,
} from "@threadline/node";

const SERVER = 2;
const CLIENT = 3;

// Made before Threadline starts (in before()), as an app that imports its
// routes before the SDK would: Threadline never sees it created.
const earlyFastify = Fastify();

let receiver: OtlpReceiver;
let thirdParty: RecordingServer;
let internal: RecordingServer;
let threadline: ThreadlineHandle;

/** Servers a test started, closed after it whether it passed or not. */
const servers = new Set<http.Server | https.Server>();

function listen(server: http.Server | https.Server): Promise<number> {
  servers.add(server);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve((server.address() as { port: number }).port),
    ),
  );
}

function get(
  url: string,
  options: https.RequestOptions = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith("https") ? https.get : http.get;
    request(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

/** Sends `call`, and answers `res` ok once its answer is read, 502 if it fails. */
function relay(call: http.ClientRequest, res: http.ServerResponse): void {
  call
    .on("response", (answer) => answer.resume().on("end", () => res.end("ok")))
    .on("error", () => res.writeHead(502).end())
    .end();
}

const byName = (spans: ReceivedSpan[], kind: number, name: string) =>
  spans.filter((s) => s.kind === kind && s.name === name);

/** The spans that pass `keep`, in the order they started. */
const inStartOrder = (
  spans: ReceivedSpan[],
  keep: (s: ReceivedSpan) => boolean,
) =>
  spans
    .filter(keep)
    .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));

const answeredAt = new Map<string, number>();

/**
 * Answers `/answers/<status>,<status>…/<name>` with the statuses in turn,
 * the last one from then on: a flaky endpoint (`503,503,200`) or a steady
 * one (`200`), each path counted on its own.
 */
function answerInTurn(req: { path: string }): { status: number } | undefined {
  const [, answers, statuses] = req.path.split("/");
  if (answers !== "answers" || statuses === undefined) return undefined;
  const list = statuses.split(",").map(Number);
  const n = answeredAt.get(req.path) ?? 0;
  answeredAt.set(req.path, n + 1);
  return { status: list[Math.min(n, list.length - 1)]! };
}

/** The rate-limit headers the third party answers each of these paths with. */
const RATE_LIMITS: Readonly<Record<string, Record<string, string>>> = {
  "/limits/seven": { "x-ratelimit-remaining": " 7 " },
  // A Unix time, as GitHub sends it, now past.
  "/limits/past": { "x-ratelimit-reset": "1700000000" },
  // None of them whole seconds or requests written in digits.
  "/limits/malformed": {
    "x-ratelimit-limit": " ",
    "x-ratelimit-remaining": "0x10",
    "ratelimit-remaining": "",
    "x-rate-limit-remaining": "1e3",
    "x-ratelimit-reset": "-5",
    "ratelimit-reset": "1.5",
    ratelimit: "limit=Infinity, remaining=+3, reset=0b11",
  },
};

before(async () => {
  receiver = await startOtlpReceiver();
  let flaky = 0;
  thirdParty = await startRecordingServer(
    (
      req,
    ): {
      status?: number;
      headers?: Record<string, string>;
      body?: unknown;
    } => {
      if (req.path === "/dated")
        return {
          status: 429,
          headers: {
            "retry-after": new Date(Date.now() + 30_000).toUTCString(),
            ratelimit: '"default";r=0;t=25, "daily";r=70;t=3600',
            "ratelimit-policy": '"default";q=100;w=60, "daily";q=1000;w=86400',
          },
        };
      if (req.path === "/limits/epoch")
        return {
          status: 429,
          headers: {
            "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) + 90),
          },
        };
      const limits = RATE_LIMITS[req.path];
      if (limits !== undefined) return { status: 429, headers: limits };
      const inTurn = answerInTurn(req);
      if (inTurn !== undefined) return inTurn;
      if (req.path !== "/flaky") return { body: { ok: true } };
      flaky++;
      return flaky === 1
        ? {
            status: 503,
            headers: {
              "retry-after": "0",
              ratelimit: "limit=10, remaining=0, reset=1",
            },
          }
        : {
            body: { ok: true },
            headers: {
              "x-ratelimit-limit": "10",
              "x-ratelimit-remaining": "9",
              "x-ratelimit-reset": "60",
            },
          };
    },
  );
  internal = await startRecordingServer(
    (req) => answerInTurn(req) ?? { body: { ok: true } },
  );
  process.env["OTEL_BSP_SCHEDULE_DELAY"] = "20";
  threadline = init({
    serviceName: "http-test",
    endpoint: receiver.url,
    exportLogs: false,
    // The receiver runs in this process: its OTLP and watch-list paths are not traced.
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
    thirdParties: {
      [`127.0.0.1:${thirdParty.port}`]: "acme",
      "api.stripe.test": "stripe",
    },
  });
});

after(async () => {
  await threadline.shutdown();
  await Promise.all([receiver.close(), thirdParty.close(), internal.close()]);
});

beforeEach(() => receiver.clear());

// Here rather than at the end of each test: a server left listening with
// its keep-alive connections after a failed assertion would keep the test
// process alive, and the run would hang instead of reporting the failure.
afterEach(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  servers.clear();
});

/**
 * Calls an app in this process as customer c-42's client: a customer
 * header goes to an internal host only as the customer of the context the
 * call is made in.
 */
const asCustomer = (url: string) =>
  withCustomer("c-42", () =>
    fetch(url, { headers: { "x-customer-id": "c-42" } }),
  );

/** Once `count` server spans arrived, the one for each path. */
async function serverSpans(
  count: number,
): Promise<(path: string) => ReceivedSpan | undefined> {
  const spans = await receiver.waitForSpans(
    (s) => s.filter((x) => x.kind === SERVER).length >= count,
    `${count} server spans`,
  );
  return (path) =>
    spans.find((s) => s.kind === SERVER && s.attributes["url.path"] === path);
}

/** Once exported, the routes http.server.request.duration has points for, by status. */
async function exportedRoutes(): Promise<(status: number) => unknown[]> {
  await threadline.forceFlush();
  const duration = receiver.metrics.findLast(
    (m) => m.name === "http.server.request.duration",
  );
  assert.ok(duration, "http.server.request.duration exported");
  return (status) =>
    duration.points
      .filter((p) => p.attributes["http.response.status_code"] === status)
      .map((p) => p.attributes["http.route"]);
}

/**
 * Gets `path` from `server`, whose answer may be cut off, and the SERVER
 * span of that request once it has arrived.
 */
async function serverSpanOfCut(
  server: http.Server,
  path: string,
): Promise<ReceivedSpan> {
  const port = await listen(server);
  await new Promise<void>((resolve) => {
    const req = http.get(`http://127.0.0.1:${port}${path}`, (res) => {
      res.resume();
      res.on("error", () => resolve());
      res.on("close", () => resolve());
    });
    req.on("error", () => resolve());
  });
  const spans = await receiver.waitForSpans(
    (s) => s.some((x) => x.kind === SERVER),
    "the server span",
  );
  return spans.find((s) => s.kind === SERVER)!;
}

describe("http server", () => {
  it("marks 5xx responses as errors on both ends", async () => {
    const server = http.createServer((_req, res) => res.writeHead(503).end());
    const port = await listen(server);
    const res = await fetch(`http://127.0.0.1:${port}/down`);
    assert.equal(res.status, 503);
    const spans = await receiver.waitForSpans(
      (s) => s.length >= 2,
      "server and client span",
    );
    const serverSpan = spans.find((s) => s.kind === SERVER)!;
    const clientSpan = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(serverSpan.status.code, 2);
    assert.equal(serverSpan.attributes["error.type"], "503");
    assert.equal(serverSpan.attributes["http.response.status_code"], 503);
    assert.equal(clientSpan.status.code, 2);
    assert.equal(serverSpan.parentSpanId, clientSpan.spanId);
  });

  it("records the HTTP version a request came in on its server span and duration metric", async () => {
    const server = http.createServer((_req, res) => res.end("ok"));
    const port = await listen(server);
    // HTTP/1.0 from a raw socket; fetch() asks in HTTP/1.1.
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () =>
        socket.end("GET /v10 HTTP/1.0\r\nhost: 127.0.0.1\r\n\r\n"),
      );
      socket.on("error", reject).on("close", () => resolve());
      socket.resume();
    });
    await (await fetch(`http://127.0.0.1:${port}/v11`)).text();
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === SERVER).length >= 2,
      "two server spans",
    );
    assert.deepEqual(
      inStartOrder(spans, (s) => s.kind === SERVER).map((s) => [
        s.attributes["url.path"],
        s.attributes["network.protocol.version"],
      ]),
      [
        ["/v10", "1.0"],
        ["/v11", "1.1"],
      ],
    );
    await threadline.forceFlush();
    const duration = receiver.metrics.findLast(
      (m) => m.name === "http.server.request.duration",
    );
    assert.ok(duration, "http.server.request.duration exported");
    const versions = new Set(
      duration.points.map((p) => p.attributes["network.protocol.version"]),
    );
    assert.ok(versions.has("1.0") && versions.has("1.1"), [...versions].join());
  });

  it("ends the server span of a request the client aborted, as an error", async () => {
    let gotRequest!: () => void;
    const requested = new Promise<void>((r) => (gotRequest = r));
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      res.write("partial");
      gotRequest();
    });
    const port = await listen(server);
    const req = http.get(`http://127.0.0.1:${port}/slow`, (res) =>
      res.resume(),
    );
    req.on("error", () => {});
    await requested;
    req.destroy();
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some((x) => x.kind === SERVER) && s.some((x) => x.kind === CLIENT),
      "both spans",
    );
    const serverSpan = spans.find((s) => s.kind === SERVER)!;
    assert.equal(serverSpan.attributes["error.type"], "aborted");
    assert.equal(serverSpan.status.code, 2);
    const clientSpan = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(clientSpan.status.code, 2);
  });

  it("records a response the server itself destroyed with an error as that error, a failed request", async () => {
    const before = httpServerOutcomes.failed;
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      // A download whose source fails halfway: pipeline() destroys the
      // response with the source's error.
      const source = new Readable({ read() {} });
      source.push("the first half");
      pipeline(source, res).catch(() => undefined);
      setTimeout(
        () =>
          source.destroy(
            Object.assign(new Error("S3 read failed"), { code: "ENOENT" }),
          ),
        20,
      );
    });
    const span = await serverSpanOfCut(server, "/download");
    assert.equal(span.attributes["http.response.status_code"], 200);
    assert.equal(span.attributes["error.type"], "ENOENT");
    assert.equal(span.status.code, 2);
    assert.match(String(span.status.message), /S3 read failed/);
    assert.ok(
      span.events.some(
        (e) =>
          e.name === "exception" &&
          e.attributes["exception.message"] === "S3 read failed",
      ),
      "the error, as an exception event",
    );
    assert.equal(httpServerOutcomes.failed, before + 1);
  });

  it("records why Node closed a request's connection while its handler waited for the body", async () => {
    const server = http.createServer(
      { requestTimeout: 300, connectionsCheckingInterval: 50 },
      (req, res) => {
        // Waits for a body that never comes whole.
        req.on("end", () => res.end("late"));
        req.resume();
      },
    );
    const port = await listen(server);
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () =>
        socket.write(
          "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
        ),
      );
      let got = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => (got += d));
      socket.on("error", () => {});
      socket.on("close", () => resolve(got));
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.kind === SERVER),
      "the server span",
    );
    const span = spans.find((s) => s.kind === SERVER)!;
    assert.equal(span.attributes["error.type"], "ERR_HTTP_REQUEST_TIMEOUT");
    assert.match(String(span.status.message), /^the connection failed: /);
  });

  it("records the status that was sent, not one set after the headers went", async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(200);
      res.write("id,total\n1,");
      // An error handler's res.status(500) once the answer is under way;
      // Express's final handler then closes the connection.
      setTimeout(() => {
        res.statusCode = 500;
        req.socket.destroy();
      }, 20);
    });
    const span = await serverSpanOfCut(server, "/export.csv");
    assert.equal(span.attributes["http.response.status_code"], 200);
    assert.equal(span.attributes["error.type"], "aborted");
  });

  it("records no status for an answer that never reached the connection before the client left", async () => {
    let closed = 0;
    const server = http.createServer((req, res) => {
      res.on("close", () => closed++);
      // Answered after the client has gone: the pipelined requests behind
      // it end at once, their answers queued behind its own.
      if (req.url === "/first") setTimeout(() => res.end("first"), 200);
      else if (req.url === "/head-only") res.writeHead(201);
      else res.end("queued");
    });
    const port = await listen(server);
    const { connect } = await import("node:net");
    const H = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    for (const requests of [
      H("/first") + H("/queued-1") + H("/queued-2"),
      H("/head-only"),
    ]) {
      const socket = connect(port, "127.0.0.1", () => socket.write(requests));
      socket.on("error", () => {});
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
    }
    await waitFor(() => closed === 4, { what: "the four responses closed" });
    const paths = ["/first", "/queued-1", "/queued-2", "/head-only"];
    const spans = await receiver.waitForSpans(
      (all) =>
        paths.every((p) =>
          all.some((s) => s.kind === SERVER && s.attributes["url.path"] === p),
        ),
      "the four server spans",
    );
    for (const path of paths) {
      const span = spans.find(
        (s) => s.kind === SERVER && s.attributes["url.path"] === path,
      )!;
      assert.equal(span.attributes["error.type"], "aborted", path);
      assert.equal(
        span.attributes["http.response.status_code"],
        undefined,
        path,
      );
    }
  });

  it("gives each request on a keep-alive connection its own span and trace", async () => {
    const server = http.createServer((req, res) => res.end(req.url));
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await get(`http://127.0.0.1:${port}/r${i}`, { agent })).body,
        `/r${i}`,
      );
    const spans = await receiver.waitForSpans(
      (s) => s.length >= 6,
      "six spans",
    );
    const servers = spans.filter((s) => s.kind === SERVER);
    assert.equal(servers.length, 3);
    assert.equal(new Set(servers.map((s) => s.traceId)).size, 3);
    for (const s of servers)
      assert.ok(
        spans.some((c) => c.kind === CLIENT && c.spanId === s.parentSpanId),
      );
    assert.equal(
      new Set(servers.map((s) => s.attributes["network.peer.port"])).size,
      1,
      "one connection",
    );
    agent.destroy();
  });

  it("reads each request's own Host header into server.address and server.port", async () => {
    const server = http.createServer((_req, res) => res.end());
    const port = await listen(server);
    // Repeats and changes, so a request never gets the one before's server.
    const hosts: Array<[string, string, number]> = [
      ["orders.internal:8080", "orders.internal", 8080],
      ["orders.internal:8080", "orders.internal", 8080],
      ["[::1]:9090", "::1", 9090],
      ["orders.internal", "orders.internal", 80],
      ["orders.internal:8080", "orders.internal", 8080],
    ];
    for (const [host] of hosts)
      await get(`http://127.0.0.1:${port}/h`, { headers: { host } });
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === SERVER).length >= hosts.length,
      "the server spans",
    );
    const servers = inStartOrder(spans, (s) => s.kind === SERVER);
    assert.deepEqual(
      servers.map((s) => [
        s.attributes["server.address"],
        s.attributes["server.port"],
      ]),
      hosts.map(([, address, p]) => [address, p]),
    );
  });

  it("runs a request's and its response's events in the request's context", async () => {
    const active = () => trace.getActiveSpan()?.spanContext().traceId;
    const seen: Record<string, { handler?: string; later: string[] }> = {};
    const server = http.createServer((req, res) => {
      const url = req.url!;
      const mine: { handler?: string; later: string[] } = {
        handler: active(),
        later: [],
      };
      seen[url] = mine;
      res.on("finish", () => mine.later.push(`finish ${active()}`));
      if (url === "/upload") {
        req.on("data", () => mine.later.push(`data ${active()}`));
        req.on("end", () => res.end("got it"));
        return;
      }
      // The first pipelined request answers last: its end() lets the
      // second one's queued response finish.
      if (url === "/slow") setTimeout(() => res.end("slow"), 50);
      else res.end("fast");
    });
    const port = await listen(server);
    const { connect } = await import("node:net");
    // Two pipelined requests on one connection.
    await new Promise<void>((resolve) => {
      const socket = connect(port, "127.0.0.1", () =>
        socket.write(
          "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
      );
      socket.resume().on("close", () => resolve());
    });
    // A body that arrives in chunks, after the request began.
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        { port, host: "127.0.0.1", method: "POST", path: "/upload" },
        (res) => res.resume().on("end", resolve),
      );
      req.on("error", reject);
      let n = 0;
      const tick = setInterval(() => {
        req.write("chunk");
        if (++n === 3) {
          clearInterval(tick);
          req.end();
        }
      }, 20);
    });
    for (const url of ["/slow", "/fast", "/upload"]) {
      const { handler, later } = seen[url]!;
      assert.match(String(handler), /^[0-9a-f]{32}$/, url);
      assert.ok(later.length >= 1, url);
      for (const event of later)
        assert.equal(event.split(" ")[1], handler, `${url}: ${event}`);
    }
    assert.ok(
      seen["/upload"]!.later.filter((e) => e.startsWith("data")).length >= 2,
    );
  });

  it("traces a request that asks to continue, once, whoever handles it", async () => {
    const spanIds: Array<string | undefined> = [];
    const active = () => trace.getActiveSpan()?.spanContext().spanId;
    const server = http.createServer((_req, res) => {
      spanIds.push(active());
      res.end(String(active() !== undefined));
    });
    // The usual handling: let the body come, then treat it as a request.
    server.on("checkContinue", (req, res) => {
      spanIds.push(active());
      res.writeContinue();
      server.emit("request", req, res);
    });
    const port = await listen(server);
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          port,
          host: "127.0.0.1",
          method: "POST",
          path: "/continue",
          headers: { expect: "100-continue" },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      req.on("continue", () => req.end("payload"));
    });
    assert.equal(body, "true", "the handler ran in the request's span");
    const mine = (s: ReceivedSpan) =>
      s.kind === SERVER && s.attributes["url.path"] === "/continue";
    await receiver.waitForSpans((all) => all.some(mine), "the server span");
    await threadline.forceFlush();
    const spans = receiver.spans.filter(mine);
    assert.equal(spans.length, 1);
    assert.deepEqual(spanIds, [spans[0]!.spanId, spans[0]!.spanId]);
  });

  it("traces a WebSocket handshake, accepted or refused, with its listener in the request's context", async () => {
    const server = http.createServer((_req, res) => res.end("plain"));
    const seen: Array<string | undefined> = [];
    // As WebSocket servers do: a 101 written on acceptance, a status line
    // ended with the socket on refusal.
    server.on("upgrade", async (req, socket) => {
      seen.push(trace.getActiveSpan()?.spanContext().spanId);
      // The handshake's own work (here a session lookup) joins its trace.
      await fetch(`${internal.url}/session`);
      if (req.url === "/socket?token=good") {
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        socket.write("after the handshake");
        setTimeout(() => socket.end(), 50);
      } else {
        socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n");
      }
    });
    const port = await listen(server);
    const handshake = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({
          port,
          host: "127.0.0.1",
          path,
          headers: {
            connection: "Upgrade",
            upgrade: "websocket",
            "x-customer-id": "c-42",
          },
        });
        req.on("upgrade", (res, socket) => {
          socket.destroy();
          resolve(res.statusCode ?? 0);
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    // As customer c-42's client (see asCustomer).
    await withCustomer("c-42", async () => {
      assert.equal(await handshake("/socket?token=good"), 101);
      assert.equal(await handshake("/socket?token=bad"), 401);
    });
    const mine = (s: ReceivedSpan) =>
      s.kind === SERVER && s.attributes["url.path"] === "/socket";
    const spans = await receiver.waitForSpans(
      (all) =>
        all.filter(mine).length >= 2 &&
        all.filter(
          (s) =>
            s.kind === CLIENT &&
            s.attributes["url.full"] === `${internal.url}/session`,
        ).length >= 2,
      "both handshakes and their lookups",
    );
    const handshakes = spans.filter(mine);
    assert.deepEqual(
      handshakes.map((s) => s.attributes["http.response.status_code"]).sort(),
      [101, 401],
    );
    assert.deepEqual(seen.sort(), handshakes.map((s) => s.spanId).sort());
    for (const h of handshakes) {
      assert.equal(h.name, "GET");
      assert.equal(h.status.code, 0);
      assert.equal(h.attributes["customer.id"], "c-42");
      assert.equal(h.attributes["url.query"], "token=REDACTED");
      const lookup = spans.find(
        (s) => s.kind === CLIENT && s.parentSpanId === h.spanId,
      );
      assert.ok(lookup, "the session lookup is a child of its handshake");
      assert.equal(lookup.attributes["customer.id"], "c-42");
    }
  });

  it("ends the span of a handshake the server never answers, as an error", async () => {
    const server = http.createServer((_req, res) => res.end("plain"));
    server.on("upgrade", (_req, socket) => socket.destroy());
    const port = await listen(server);
    await new Promise<void>((resolve) => {
      const req = http.request({
        port,
        host: "127.0.0.1",
        path: "/dropped",
        headers: { connection: "Upgrade", upgrade: "websocket" },
      });
      req.on("error", () => resolve());
      req.end();
    });
    const spans = await receiver.waitForSpans(
      (all) => all.some((s) => s.attributes["url.path"] === "/dropped"),
      "the dropped handshake",
    );
    const dropped = spans.find((s) => s.attributes["url.path"] === "/dropped")!;
    assert.equal(dropped.status.code, 2);
    assert.equal(dropped.attributes["error.type"], "aborted");
    assert.equal(dropped.attributes["http.response.status_code"], undefined);
  });

  it("reads the path of an absolute-form request target", async () => {
    const server = http.createServer((_req, res) => res.end("ok"));
    const port = await listen(server);
    const { connect } = await import("node:net");
    await new Promise<void>((resolve) => {
      const socket = connect(port, "127.0.0.1", () =>
        socket.write(
          `GET http://127.0.0.1:${port}/v1/ignored HTTP/1.1\r\nHost: x\r\n\r\n` +
            `GET http://127.0.0.1:${port}/absolute?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        ),
      );
      socket.resume().on("close", () => resolve());
    });
    const mine = (s: ReceivedSpan) =>
      s.kind === SERVER &&
      /absolute|ignored/.test(String(s.attributes["url.path"]));
    await receiver.waitForSpans((all) => all.some(mine), "the server span");
    await threadline.forceFlush();
    const servers = receiver.spans.filter(mine);
    assert.deepEqual(
      servers.map((s) => s.attributes["url.path"]),
      ["/absolute"],
    );
    assert.equal(servers[0]!.attributes["url.query"], "q=1");
  });

  it("names spans after express routes", async () => {
    const app = express();
    const router = express.Router();
    router.get("/orders/:id", (req, res) => {
      res.json({ id: req.params.id });
    });
    app.use("/api", router);
    const server = http.createServer(app);
    const port = await listen(server);
    assert.equal(
      (await get(`http://127.0.0.1:${port}/api/orders/17?token=abc`)).status,
      200,
    );
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.kind === SERVER),
      "server span",
    );
    const serverSpan = spans.find((s) => s.kind === SERVER)!;
    assert.equal(serverSpan.name, "GET /api/orders/:id");
    assert.equal(serverSpan.attributes["http.route"], "/api/orders/:id");
    assert.equal(serverSpan.attributes["url.path"], "/api/orders/17");
    assert.equal(serverSpan.attributes["url.query"], "token=REDACTED");
  });

  it("names express routes by their templates across parameterised mounts", async () => {
    const app = express();
    const posts = express.Router();
    posts.get("/posts/:postId", (_req, res) => {
      res.end("post");
    });
    const users = express.Router();
    users.use("/users/:userId", posts);
    app.use("/api", users);
    const versioned = express();
    versioned.get("/thing/:x", (_req, res) => {
      res.end("thing");
    });
    app.use("/v/:ver", versioned);
    // A mount the request passes through without a match, then a route.
    app.use("/api/users/:userId/never", express.Router());
    app.get("/top/:id", (_req, res) => {
      res.end("top");
    });
    const port = await listen(http.createServer(app));
    for (const path of [
      "/api/users/42/posts/7",
      "/api/users/43/posts/8",
      "/v/2/thing/9",
      "/top/5",
    ])
      assert.equal((await get(`http://127.0.0.1:${port}${path}`)).status, 200);
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === SERVER).length >= 4,
      "four server spans",
    );
    assert.deepEqual(
      spans
        .filter((s) => s.kind === SERVER)
        .map((s) => s.attributes["http.route"])
        .sort(),
      [
        "/api/users/:userId/posts/:postId",
        "/api/users/:userId/posts/:postId",
        "/top/:id",
        "/v/:ver/thing/:x",
      ],
    );
  });

  it("names a failed express route by its template, mounts included, and a route passed on by none", async () => {
    const app = express();
    // An error handled outside the route's router, one mount out and at the app.
    const inner = express.Router();
    inner.get("/boom", () => {
      throw new Error("handler failed");
    });
    inner.get("/pass/:id", (_req, _res, next) => {
      next();
    });
    inner.get("/answered/:id", (_req, res, next) => {
      res.end("answered");
      next();
    });
    const api = express.Router();
    api.use("/:ver", inner);
    api.use(
      (
        _err: unknown,
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        res.status(502).end("api error");
      },
    );
    app.use("/api", api);
    const tenants = express.Router();
    tenants.get("/orders/:id", async () => {
      throw Object.assign(new Error("unavailable"), { status: 503 });
    });
    app.use("/tenants/:tenant", tenants);
    // Same leaf path, top level: its own series.
    app.get("/orders/:id", (_req, res) => {
      res.end("order");
    });
    app.get("/maybe/:id", (_req, _res, next) => {
      next();
    });
    app.use((_req, res) => {
      res.status(404).end("not found");
    });
    app.use(
      (
        err: { status?: number },
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        res.status(err.status ?? 500).end("app error");
      },
    );
    const port = await listen(http.createServer(app));
    const expected: [string, number, string | undefined][] = [
      ["/tenants/acme/orders/7", 503, "/tenants/:tenant/orders/:id"],
      ["/api/v2/boom", 502, "/api/:ver/boom"],
      ["/api/v2/answered/3", 200, "/api/:ver/answered/:id"],
      ["/orders/9", 200, "/orders/:id"],
      // Passed on with next() and no later route matched: a 404, no route.
      ["/api/v2/pass/5", 404, undefined],
      ["/maybe/4", 404, undefined],
    ];
    for (const [path, status] of expected)
      assert.equal(
        (await get(`http://127.0.0.1:${port}${path}`)).status,
        status,
      );
    const byPath = await serverSpans(expected.length);
    for (const [path, status, route] of expected) {
      const span = byPath(path)!;
      assert.equal(span.attributes["http.route"], route, path);
      assert.equal(span.name, route === undefined ? "GET" : `GET ${route}`);
      assert.equal(span.attributes["http.response.status_code"], status);
    }

    const routesOf = await exportedRoutes();
    // The failure is the mounted route's, not the top-level one's.
    assert.ok(routesOf(503).includes("/tenants/:tenant/orders/:id"));
    assert.ok(!routesOf(503).includes("/orders/:id"), `${routesOf(503)}`);
    for (const route of routesOf(404))
      assert.ok(!/pass|maybe/.test(String(route)), `${routesOf(404)}`);
  });

  it("names array and regular-expression express routes by their paths as written", async () => {
    const app = express();
    const things = express.Router();
    things.get(["/a/:id", "/b/:id"], (_req, res) => {
      res.end("either");
    });
    app.use("/things", things);
    app.get(/^\/legacy\/(\d+)$/, (_req, res) => {
      res.end("legacy");
    });
    const items = express.Router();
    items.get("/items/:id", (_req, res) => {
      res.end("item");
    });
    app.use(["/shop", "/store"], items);
    // Mounted at a regular expression: its literal, closing slash and all.
    const versioned = express.Router();
    versioned.get("/status", (_req, res) => {
      res.end("status");
    });
    app.use(/\/v\d+/, versioned);
    const port = await listen(http.createServer(app));
    const expected = [
      ["/things/a/1", "/things/a/:id,/b/:id"],
      ["/things/b/2", "/things/a/:id,/b/:id"],
      ["/legacy/12", String.raw`/^\/legacy\/(\d+)$/`],
      ["/store/items/3", "/shop,/store/items/:id"],
      ["/v2/status", String.raw`/\/v\d+//status`],
    ] as const;
    for (const [path] of expected)
      assert.equal((await get(`http://127.0.0.1:${port}${path}`)).status, 200);
    const byPath = await serverSpans(expected.length);
    for (const [path, route] of expected) {
      const span = byPath(path)!;
      assert.equal(span.attributes["http.route"], route, path);
      assert.equal(span.name, `GET ${route}`);
    }
  });

  it("names spans and request metrics after fastify routes", async () => {
    const app = Fastify();
    app.get("/orders/:id", async (req) => ({
      id: (req.params as { id: string }).id,
    }));
    await app.register(
      (api, _options, done) => {
        api.get("/users/:userId/posts/:postId", (_req, reply) => {
          reply.send("post");
        });
        done();
      },
      { prefix: "/api/v1" },
    );
    app.get("/fail/:id", () => {
      throw new Error("handler failed");
    });
    // A route the application names itself keeps its name.
    app.get("/files/*", (_req, reply) => {
      setHttpRoute("/files/:name");
      reply.send("file");
    });
    // Answered before the handler is called: by an onRequest hook refusing
    // the caller, a preHandler hook serving from a cache, schema validation.
    await app.register(
      (admin, _options, done) => {
        admin.addHook("onRequest", (req, reply, next) => {
          if (req.headers.authorization === undefined)
            reply.code(401).send("sign in");
          else next();
        });
        admin.get("/users/:id", (_req, reply) => {
          reply.send("user");
        });
        done();
      },
      { prefix: "/admin" },
    );
    const cache = new Map([["A-1", "cached"]]);
    app.get(
      "/products/:sku",
      {
        preHandler: (req, reply, next) => {
          const hit = cache.get((req.params as { sku: string }).sku);
          if (hit !== undefined) reply.header("x-cache", "hit").send(hit);
          else next();
        },
      },
      (_req, reply) => {
        reply.send("fresh");
      },
    );
    app.post(
      "/carts/:id/items",
      {
        schema: {
          body: {
            type: "object",
            required: ["sku"],
            properties: { sku: { type: "string" } },
          },
        },
      },
      (_req, reply) => {
        reply.code(201).send();
      },
    );
    await app.listen({ port: 0, host: "127.0.0.1" });
    servers.add(app.server);
    const port = (app.server.address() as { port: number }).port;
    // Routes of an app made before Threadline started are named as their
    // handlers are called.
    earlyFastify.get("/early/:id", (_req, reply) => {
      reply.send("early");
    });
    await earlyFastify.listen({ port: 0, host: "127.0.0.1" });
    servers.add(earlyFastify.server);
    const earlyPort = (earlyFastify.server.address() as { port: number }).port;
    for (const [path, status] of [
      ["/orders/17?token=abc", 200],
      ["/api/v1/users/42/posts/7", 200],
      ["/fail/3", 500],
      ["/nowhere/9", 404],
      ["/files/a.txt", 200],
      ["/admin/users/5", 401],
      ["/products/A-1", 200],
    ] as const)
      assert.equal(
        (await get(`http://127.0.0.1:${port}${path}`)).status,
        status,
      );
    const invalid = await fetch(`http://127.0.0.1:${port}/carts/8/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ quantity: 2 }),
    });
    assert.equal(invalid.status, 400);
    await invalid.arrayBuffer();
    assert.equal(
      (await get(`http://127.0.0.1:${earlyPort}/early/1`)).status,
      200,
    );
    const byPath = await serverSpans(9);
    const order = byPath("/orders/17")!;
    assert.equal(order.name, "GET /orders/:id");
    assert.equal(order.attributes["http.route"], "/orders/:id");
    assert.equal(order.attributes["url.query"], "token=REDACTED");
    const post = byPath("/api/v1/users/42/posts/7")!;
    assert.equal(post.name, "GET /api/v1/users/:userId/posts/:postId");
    assert.equal(
      post.attributes["http.route"],
      "/api/v1/users/:userId/posts/:postId",
    );
    const failed = byPath("/fail/3")!;
    assert.equal(failed.name, "GET /fail/:id");
    assert.equal(failed.attributes["http.route"], "/fail/:id");
    assert.equal(failed.attributes["error.type"], "500");
    assert.equal(failed.status.code, 2);
    // No route matched: a template would be a guess, the path a new series per id.
    const missing = byPath("/nowhere/9")!;
    assert.equal(missing.name, "GET");
    assert.equal(missing.attributes["http.route"], undefined);
    assert.equal(missing.attributes["http.response.status_code"], 404);
    assert.equal(byPath("/files/a.txt")!.name, "GET /files/:name");
    for (const [path, name, status] of [
      ["/admin/users/5", "GET /admin/users/:id", 401],
      ["/products/A-1", "GET /products/:sku", 200],
      ["/carts/8/items", "POST /carts/:id/items", 400],
      ["/early/1", "GET /early/:id", 200],
    ] as const) {
      const span = byPath(path)!;
      assert.equal(span.name, name);
      assert.equal(span.attributes["http.route"], name.split(" ")[1]);
      assert.equal(span.attributes["http.response.status_code"], status);
    }

    const routeOf = await exportedRoutes();
    for (const route of [
      "/orders/:id",
      "/api/v1/users/:userId/posts/:postId",
      "/products/:sku",
      "/early/:id",
    ])
      assert.ok(routeOf(200).includes(route), `${route} in ${routeOf(200)}`);
    assert.ok(routeOf(500).includes("/fail/:id"), `${routeOf(500)}`);
    assert.ok(routeOf(401).includes("/admin/users/:id"), `${routeOf(401)}`);
    assert.ok(routeOf(400).includes("/carts/:id/items"), `${routeOf(400)}`);
    assert.deepEqual(routeOf(404), [undefined]);
  });

  it("names spans and request metrics after fastify 4 routes", async () => {
    const app = Fastify4();
    app.get("/orders/:id", (_req, reply) => {
      reply.send("order");
    });
    await app.register(
      (admin, _options, done) => {
        admin.addHook("onRequest", (_req, reply) => {
          reply.code(401).send("sign in");
        });
        admin.get("/users/:id", (_req, reply) => {
          reply.send("user");
        });
        done();
      },
      { prefix: "/admin" },
    );
    app.get(
      "/search",
      {
        schema: {
          querystring: {
            type: "object",
            required: ["q"],
            properties: { q: { type: "string" } },
          },
        },
      },
      (_req, reply) => {
        reply.send("results");
      },
    );
    await app.listen({ port: 0, host: "127.0.0.1" });
    servers.add(app.server);
    const port = (app.server.address() as { port: number }).port;
    for (const [path, status] of [
      ["/orders/17", 200],
      ["/admin/users/5", 401],
      ["/search", 400],
      ["/nowhere/9", 404],
    ] as const)
      assert.equal(
        (await get(`http://127.0.0.1:${port}${path}`)).status,
        status,
      );
    const byPath = await serverSpans(4);
    for (const [path, route] of [
      ["/orders/17", "/orders/:id"],
      ["/admin/users/5", "/admin/users/:id"],
      ["/search", "/search"],
    ] as const) {
      assert.equal(byPath(path)!.name, `GET ${route}`);
      assert.equal(byPath(path)!.attributes["http.route"], route);
    }
    assert.equal(byPath("/nowhere/9")!.attributes["http.route"], undefined);

    const routesOf = await exportedRoutes();
    assert.ok(routesOf(200).includes("/orders/:id"), `${routesOf(200)}`);
    assert.ok(routesOf(401).includes("/admin/users/:id"), `${routesOf(401)}`);
    assert.ok(routesOf(400).includes("/search"), `${routesOf(400)}`);
  });

  it("names WebSocket handshakes after fastify routes, accepted or refused by a hook", async () => {
    const app = Fastify();
    await app.register(websocket);
    app.addHook("onRequest", (req, reply, next) => {
      if ((req.query as { token?: string }).token !== "good")
        reply.code(401).send("sign in");
      else next();
    });
    app.get("/rooms/:roomId/socket", { websocket: true }, (socket) => {
      socket.on("message", (m: Buffer) => socket.send(`echo ${m}`));
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    servers.add(app.server);
    const port = (app.server.address() as { port: number }).port;
    const echo = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(
        `ws://127.0.0.1:${port}/rooms/7/socket?token=good`,
      );
      ws.onopen = () => ws.send("hi");
      ws.onmessage = (event) => {
        ws.close();
        resolve(String(event.data));
      };
      ws.onerror = () => reject(new Error("the handshake failed"));
    });
    assert.equal(echo, "echo hi");
    // One handshake, without a client that may try again when refused.
    const refused = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        port,
        host: "127.0.0.1",
        path: "/rooms/8/socket?token=bad",
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(refused, 401);
    const byPath = await serverSpans(2);
    for (const [path, status] of [
      ["/rooms/7/socket", 101],
      ["/rooms/8/socket", 401],
    ] as const) {
      const span = byPath(path)!;
      assert.equal(span.name, "GET /rooms/:roomId/socket", path);
      assert.equal(span.attributes["http.route"], "/rooms/:roomId/socket");
      assert.equal(span.attributes["http.response.status_code"], status);
    }
  });

  it("serves fastify's inject() and injectWS, whose requests come from no connection, untraced and without a warning", async () => {
    const warnings: string[] = [];
    // Collapsed warnings are written once a minute: an earlier one must not
    // hide this test's.
    diag.reset();
    diag.setSink((_level, message) => warnings.push(message));
    try {
      const app = Fastify();
      await app.register(websocket);
      // injectWS (@fastify/websocket 11.3) sends Sec-WebSocket-Version as
      // the number 13, which ws 8.23 refuses (400) with or without
      // Threadline: made the string a client sends.
      app.addHook("onRequest", (req, _reply, done) => {
        const headers = req.raw.headers as Record<string, unknown>;
        const version = headers["sec-websocket-version"];
        if (typeof version === "number")
          headers["sec-websocket-version"] = String(version);
        done();
      });
      app.get("/rooms/:roomId/socket", { websocket: true }, (socket) => {
        socket.on("message", (m: Buffer) => socket.send(`echo ${m}`));
      });
      app.get("/rooms/:roomId", () => ({ room: "open" }));
      const reply = await app.inject({ method: "GET", url: "/rooms/7" });
      assert.equal(reply.statusCode, 200);
      assert.deepEqual(reply.json(), { room: "open" });
      assert.deepEqual(warnings, [], "after inject()");
      const ws = await app.injectWS("/rooms/7/socket");
      const echo = await new Promise<string>((resolve) => {
        ws.on("message", (m: Buffer) => resolve(String(m)));
        ws.send("hi");
      });
      ws.terminate();
      assert.equal(echo, "echo hi");
      await app.close();
      assert.deepEqual(warnings, [], "after injectWS");
      await threadline.forceFlush();
      assert.deepEqual(
        receiver.spans
          .filter((s) => s.kind === SERVER)
          .map((s) => s.attributes["url.path"]),
        [],
      );
    } finally {
      diag.setSink(undefined);
    }
  });

  it("names WebSocket handshakes after fastify 4 routes", async () => {
    const app = Fastify4();
    const sockets = new WeakMap<object, Duplex>();
    app.get("/rooms/:roomId/socket", (req, reply) => {
      const socket = sockets.get(req.raw);
      if (socket === undefined) return reply.code(426).send();
      reply.hijack();
      socket.end(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      );
    });
    await app.ready();
    // As @fastify/websocket (its Fastify 4 releases) routes an upgrade
    // request: through Fastify, with a response made for it on its socket.
    app.server.on("upgrade", (req, socket) => {
      sockets.set(req, socket);
      const res = new http.ServerResponse(req);
      res.assignSocket(socket as net.Socket);
      app.routing(req, res);
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    servers.add(app.server);
    const port = (app.server.address() as { port: number }).port;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        port,
        host: "127.0.0.1",
        path: "/rooms/7/socket",
        headers: { connection: "Upgrade", upgrade: "websocket" },
      });
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 101);
    const span = (await serverSpans(1))("/rooms/7/socket")!;
    assert.equal(span.name, "GET /rooms/:roomId/socket");
    assert.equal(span.attributes["http.route"], "/rooms/:roomId/socket");
    assert.equal(span.attributes["http.response.status_code"], 101);
  });

  it("traces https servers and clients", async () => {
    const tls = selfSignedCertificate();
    const server = https.createServer(tls, (_req, res) => res.end("secure"));
    const port = await listen(server);
    assert.equal(
      (await get(`https://127.0.0.1:${port}/s`, { rejectUnauthorized: false }))
        .body,
      "secure",
    );
    const spans = await receiver.waitForSpans(
      (s) => s.length >= 2,
      "two spans",
    );
    const serverSpan = spans.find((s) => s.kind === SERVER)!;
    const clientSpan = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(serverSpan.attributes["url.scheme"], "https");
    assert.equal(
      clientSpan.attributes["url.full"],
      `https://127.0.0.1:${port}/s`,
    );
    assert.equal(serverSpan.parentSpanId, clientSpan.spanId);
  });

  it("redacts the secrets of a URL or query string carried in a query value, on server and client spans", async () => {
    const nested = (url: string) => encodeURIComponent(url);
    // Values carrying a URL or query string of their own, encoded or not,
    // one two deep, and one with an escape that cannot be decoded.
    const query = [
      `redirect_uri=${nested("https://app.test/cb?code=abc&state=1")}`,
      "next=/verify?token=t1",
      `return_to=${nested(`https://app.test/in?to=${nested("/x?sig=s2&q=1")}`)}`,
      "target=%ZZ%3Fsession%3Ds3",
      "page=2",
    ].join("&");
    const server = http.createServer((_req, res) => {
      const out = `${thirdParty.url}/cb?target=${nested("https://app.test/?api_key=k4&lang=en")}`;
      void fetch(out)
        .then((r) => r.text())
        .then(() => get(out))
        .then(
          () => res.end("ok"),
          () => res.writeHead(500).end(),
        );
    });
    const port = await listen(server);
    assert.equal(
      (await get(`http://127.0.0.1:${port}/login?${query}`)).status,
      200,
    );
    const login = (s: ReceivedSpan) =>
      s.kind === SERVER && s.attributes["url.path"] === "/login";
    const spans = await receiver.waitForSpans(
      (s) => s.some(login) && s.filter((x) => x.kind === CLIENT).length >= 3,
      "the server span and the three calls",
    );
    const redacted = [
      `redirect_uri=${nested("https://app.test/cb?code=REDACTED&state=1")}`,
      `next=${nested("/verify?token=REDACTED")}`,
      `return_to=${nested(`https://app.test/in?to=${nested("/x?sig=REDACTED&q=1")}`)}`,
      `target=${nested("%ZZ?session=REDACTED")}`,
      "page=2",
    ].join("&");
    assert.equal(spans.find(login)!.attributes["url.query"], redacted);
    const calls = spans.filter((s) => s.kind === CLIENT);
    assert.deepEqual(
      calls.map((s) => s.attributes["url.full"]).sort(),
      [
        `${thirdParty.url}/cb?target=${nested("https://app.test/?api_key=REDACTED&lang=en")}`,
        `${thirdParty.url}/cb?target=${nested("https://app.test/?api_key=REDACTED&lang=en")}`,
        `http://127.0.0.1:${port}/login?${redacted}`,
      ].sort(),
    );
  });
});

describe("http and fetch clients", () => {
  it("records connection failures", async () => {
    const closed = http.createServer();
    const port = await listen(closed);
    closed.close();
    const url = `http://127.0.0.1:${port}/nothing`;
    await assert.rejects(get(url));
    await assert.rejects(fetch(url));
    const spans = await receiver.waitForSpans(
      (s) => s.length >= 2,
      "two failed client spans",
    );
    for (const s of spans) {
      assert.equal(s.kind, CLIENT);
      assert.equal(s.status.code, 2);
      assert.ok(s.events.some((e) => e.name === "exception"));
    }
    assert.deepEqual(
      spans.map((s) => [s.attributes["url.full"], s.attributes["error.type"]]),
      [
        [url, "ECONNREFUSED"],
        [url, "ECONNREFUSED"],
      ],
    );
  });

  it("records the HTTP version a node:http answer came in, and none for fetch() over plain HTTP, which does not tell it", async () => {
    // Answers in the HTTP version its path names, whatever the request's.
    const answering = net.createServer((socket) =>
      socket.once("data", (data) => {
        const version = /^GET \/(1\.[01]) /.exec(String(data))?.[1];
        socket.end(
          `HTTP/${version ?? "1.1"} 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok`,
        );
      }),
    );
    await new Promise<void>((resolve) =>
      answering.listen(0, "127.0.0.1", resolve),
    );
    const base = `http://127.0.0.1:${(answering.address() as net.AddressInfo).port}`;
    const tls = selfSignedCertificate();
    const secure = `https://127.0.0.1:${await listen(
      https.createServer(tls, (_req, res) => res.end("ok")),
    )}`;
    try {
      await get(`${base}/1.0`);
      await get(`${base}/1.1`);
      await get(`${secure}/tls`, { rejectUnauthorized: false });
      await (await fetch(`${base}/1.0`)).text();
    } finally {
      answering.close();
    }
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === CLIENT).length >= 4,
      "four calls",
    );
    assert.deepEqual(
      inStartOrder(spans, (s) => s.kind === CLIENT).map((s) => [
        s.attributes["url.full"],
        s.attributes["network.protocol.version"],
      ]),
      [
        [`${base}/1.0`, "1.0"],
        [`${base}/1.1`, "1.1"],
        [`${secure}/tls`, "1.1"],
        [`${base}/1.0`, undefined],
      ],
    );
    // The duration metric has the version too, as the semantic conventions
    // recommend: a series per version.
    await threadline.forceFlush();
    const duration = receiver.metrics.findLast(
      (m) => m.name === "http.client.request.duration",
    );
    assert.ok(duration, "http.client.request.duration exported");
    const port = String(new URL(base).port);
    assert.deepEqual(
      duration.points
        .filter((p) => String(p.attributes["server.port"]) === port)
        .map((p) => p.attributes["network.protocol.version"])
        .sort(),
      ["1.0", "1.1", undefined],
    );
  });

  it("records a method as it is sent, in its own case: only a known method's exact name, else _OTHER", async () => {
    const url = `${internal.url}/method`;
    // fetch() sends DELETE, GET, HEAD, OPTIONS, POST and PUT in upper case
    // whatever case it is given, any other method as it is given.
    for (const method of ["patch", "get", "PURGE"])
      await (await fetch(`${url}?fetch=${method}`, { method })).text();
    // node:http sends every method in upper case.
    await new Promise<void>((resolve, reject) =>
      http
        .request(`${url}?http=patch`, { method: "patch" }, (res) =>
          res.resume().on("end", resolve),
        )
        .on("error", reject)
        .end(),
    );
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === CLIENT).length >= 4,
      "four calls",
    );
    assert.deepEqual(
      inStartOrder(spans, (s) => s.kind === CLIENT).map((s) => [
        s.name,
        s.attributes["http.request.method"],
        s.attributes["http.request.method_original"],
      ]),
      [
        ["HTTP", "_OTHER", "patch"],
        ["GET", "GET", undefined],
        ["HTTP", "_OTHER", "PURGE"],
        ["PATCH", "PATCH", undefined],
      ],
    );
  });

  it("records the status of a CONNECT and an upgrade a client makes: a proxy's refusal is an error", async () => {
    const proxy = http
      .createServer()
      .on("connect", (req, socket: Duplex) => {
        if (String(req.url).startsWith("denied"))
          socket.end("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
        else {
          socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          setTimeout(() => socket.end(), 20);
        }
      })
      .on("upgrade", (_req, socket: Duplex) => {
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
        );
        setTimeout(() => socket.end(), 20);
      });
    const port = await listen(proxy);
    const opened = (options: http.RequestOptions, event: string) =>
      new Promise<void>((resolve) => {
        const req = http.request({ host: "127.0.0.1", port, ...options });
        req.on(event, (_res, socket: Duplex) => {
          socket.on("close", () => resolve()).resume();
        });
        req.on("error", () => resolve());
        req.end();
      });
    await opened({ method: "CONNECT", path: "denied.example:443" }, "connect");
    await opened({ method: "CONNECT", path: "allowed.example:443" }, "connect");
    await opened(
      { headers: { connection: "Upgrade", upgrade: "x" } },
      "upgrade",
    );
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === CLIENT).length >= 3,
      "the three client spans",
    );
    const clients = spans.filter((s) => s.kind === CLIENT);
    assert.deepEqual(
      clients.map((s) => [
        s.name,
        s.attributes["http.response.status_code"],
        s.attributes["error.type"],
        s.status.code,
      ]),
      [
        ["CONNECT", 407, "407", 2],
        ["CONNECT", 200, undefined, 0],
        ["GET", 101, undefined, 0],
      ],
    );
  });

  it("records an aborted fetch", async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      res.write("start");
    });
    const port = await listen(server);
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/stream`, {
      signal: controller.signal,
    });
    controller.abort();
    await assert.rejects(res.text());
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.kind === CLIENT),
      "client span",
    );
    const clientSpan = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(clientSpan.status.code, 2);
    assert.equal(clientSpan.attributes["error.type"], "AbortError");
  });

  it("counts retries of a third-party call and records its rate-limit headers", async () => {
    await trace.getTracer("t").startActiveSpan("job", async (root) => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const res = await fetch(`${thirdParty.url}/flaky`);
        await res.text();
        if (res.ok) break;
      }
      root.end();
    });
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => x.attributes["peer.service"] === "acme").length >= 2,
      "two attempts",
    );
    const [first, second] = inStartOrder(
      spans,
      (x) => x.attributes["peer.service"] === "acme",
    );
    assert.equal(first!.attributes["http.request.resend_count"], undefined);
    assert.equal(first!.attributes["http.response.status_code"], 503);
    assert.equal(first!.attributes["threadline.ratelimit.remaining"], 0);
    assert.equal(first!.attributes["threadline.ratelimit.retry_after"], 0);
    assert.deepEqual(first!.attributes["http.response.header.ratelimit"], [
      "limit=10, remaining=0, reset=1",
    ]);
    assert.equal(second!.attributes["http.request.resend_count"], 1);
    assert.equal(second!.attributes["threadline.ratelimit.limit"], 10);
    assert.equal(second!.attributes["threadline.ratelimit.remaining"], 9);
    assert.equal(second!.attributes["threadline.ratelimit.reset"], 60);
  });

  const clients: Array<[string, (url: string) => Promise<number>]> = [
    [
      "fetch()",
      async (url) => {
        const res = await fetch(url);
        await res.text();
        return res.status;
      },
    ],
    ["node:http", async (url) => (await get(url)).status],
  ];
  for (const [client, call] of clients)
    for (const [where, server] of [
      ["a third party", () => thirdParty],
      ["an internal host", () => internal],
    ] as const)
      it(`counts a ${client} call to ${where} as a resend only after the same call failed`, async () => {
        const name = `${client}-${where}`.replace(/[^a-z]+/g, "-");
        const flaky = `${server().url}/answers/503,503,200/${name}`;
        const steady = `${server().url}/answers/200/${name}`;
        await trace.getTracer("t").startActiveSpan("job", async (root) => {
          // Retried until it is answered, then called again as a new call.
          while ((await call(flaky)) !== 200);
          await call(flaky);
          // A status polled three times, answered each time.
          for (let poll = 0; poll < 3; poll++) await call(steady);
          root.end();
        });
        const isOurs = (s: ReceivedSpan) =>
          s.kind === CLIENT && String(s.attributes["url.full"]).endsWith(name);
        const spans = await receiver.waitForSpans(
          (s) => s.filter(isOurs).length >= 7,
          "seven calls",
        );
        assert.deepEqual(
          inStartOrder(spans, isOurs).map((s) => [
            s.attributes["url.full"] === flaky ? "flaky" : "steady",
            s.attributes["http.response.status_code"],
            s.attributes["http.request.resend_count"],
          ]),
          [
            ["flaky", 503, undefined],
            ["flaky", 503, 1],
            ["flaky", 200, 2],
            ["flaky", 200, undefined],
            ["steady", 200, undefined],
            ["steady", 200, undefined],
            ["steady", 200, undefined],
          ],
        );
      });

  it("counts a call made again after a network error or a cut-off answer as its resend", async () => {
    const closed = http.createServer();
    const port = await listen(closed);
    closed.close();
    const refused = `http://127.0.0.1:${port}/refused`;
    const cutting = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": "10" });
      res.write("ab", () => res.destroy());
    });
    const cut = `http://127.0.0.1:${await listen(cutting)}/cut`;
    const getCut = (url: string) =>
      new Promise<void>((resolve, reject) => {
        http
          .get(url, (res) => {
            res.resume();
            res.on("error", () => {});
            res.on("close", () =>
              res.complete ? reject(new Error("complete")) : resolve(),
            );
          })
          .on("error", reject);
      });
    await trace.getTracer("t").startActiveSpan("job", async (root) => {
      for (let attempt = 0; attempt < 3; attempt++)
        await assert.rejects(fetch(`${refused}?by=fetch`));
      for (let attempt = 0; attempt < 3; attempt++)
        await assert.rejects(get(`${refused}?by=http`));
      for (let attempt = 0; attempt < 2; attempt++)
        await assert.rejects(async () =>
          (await fetch(`${cut}?by=fetch`)).text(),
        );
      for (let attempt = 0; attempt < 2; attempt++)
        await getCut(`${cut}?by=http`);
      root.end();
    });
    const spans = await receiver.waitForSpans(
      (s) => s.filter((x) => x.kind === CLIENT).length >= 10,
      "ten failed calls",
    );
    assert.deepEqual(
      inStartOrder(spans, (s) => s.kind === CLIENT).map((s) => [
        s.attributes["url.full"],
        s.status.code,
        s.attributes["http.request.resend_count"],
      ]),
      [
        [`${refused}?by=fetch`, 2, undefined],
        [`${refused}?by=fetch`, 2, 1],
        [`${refused}?by=fetch`, 2, 2],
        [`${refused}?by=http`, 2, undefined],
        [`${refused}?by=http`, 2, 1],
        [`${refused}?by=http`, 2, 2],
        [`${cut}?by=fetch`, 2, undefined],
        [`${cut}?by=fetch`, 2, 1],
        [`${cut}?by=http`, 2, undefined],
        [`${cut}?by=http`, 2, 1],
      ],
    );
  });

  it("reads a Retry-After date as seconds, and the draft's structured RateLimit headers", async () => {
    const isDated = (s: {
      kind: number;
      attributes: Record<string, unknown>;
    }) =>
      s.kind === CLIENT && String(s.attributes["url.full"]).endsWith("/dated");
    await (await fetch(`${thirdParty.url}/dated`)).text();
    const spans = await receiver.waitForSpans(
      (s) => s.some(isDated),
      "the rate-limited call",
    );
    const span = spans.find(isDated)!;
    const retryAfter = span.attributes["threadline.ratelimit.retry_after"];
    assert.ok(
      typeof retryAfter === "number" && retryAfter >= 25 && retryAfter <= 31,
      String(retryAfter),
    );
    assert.equal(span.attributes["threadline.ratelimit.remaining"], 0);
    assert.equal(span.attributes["threadline.ratelimit.reset"], 25);
    assert.equal(span.attributes["threadline.ratelimit.limit"], 100);
  });

  it("records no rate-limit number from a header not written in digits, not even an empty one as 0", async () => {
    await (await fetch(`${thirdParty.url}/limits/seven`)).text();
    await (await fetch(`${thirdParty.url}/limits/malformed`)).text();
    await get(`${thirdParty.url}/limits/malformed`);
    const isLimited = (s: ReceivedSpan) =>
      s.kind === CLIENT &&
      String(s.attributes["url.full"]).includes("/limits/");
    const spans = await receiver.waitForSpans(
      (s) => s.filter(isLimited).length >= 3,
      "the three rate-limited calls",
    );
    const numbers = (s: ReceivedSpan) =>
      Object.entries(s.attributes).filter(([k]) =>
        k.startsWith("threadline.ratelimit."),
      );
    assert.deepEqual(
      inStartOrder(spans, isLimited).map((s) => [
        String(s.attributes["url.full"]).split("/").pop(),
        numbers(s),
      ]),
      [
        ["seven", [["threadline.ratelimit.remaining", 7]]],
        ["malformed", []],
        ["malformed", []],
      ],
    );
    await threadline.forceFlush();
    const remaining = receiver.metrics.findLast(
      (m) => m.name === "threadline.third_party.ratelimit.remaining",
    );
    assert.deepEqual(
      remaining?.points
        .filter((p) => p.attributes["peer.service"] === "acme")
        .map((p) => p.value),
      [7],
    );
  });

  it("reads a rate-limit reset that is a Unix time as the seconds until then, 0 once past", async () => {
    await (await fetch(`${thirdParty.url}/limits/epoch`)).text();
    await get(`${thirdParty.url}/limits/past`);
    const isReset = (s: ReceivedSpan) =>
      s.kind === CLIENT &&
      /\/limits\/(epoch|past)$/.test(String(s.attributes["url.full"]));
    const spans = await receiver.waitForSpans(
      (s) => s.filter(isReset).length >= 2,
      "the two calls",
    );
    const [epoch, past] = inStartOrder(spans, isReset).map(
      (s) => s.attributes["threadline.ratelimit.reset"],
    );
    assert.ok(
      typeof epoch === "number" && epoch >= 80 && epoch <= 91,
      String(epoch),
    );
    assert.equal(past, 0);
  });

  it("counts no retries for separate calls made outside any span, as a poller makes them", async () => {
    for (let poll = 0; poll < 3; poll++)
      await (await fetch(`${thirdParty.url}/status`)).text();
    for (let poll = 0; poll < 2; poll++) await get(`${thirdParty.url}/status`);
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => x.attributes["peer.service"] === "acme").length >= 5,
      "five polls",
    );
    for (const s of spans.filter(
      (x) => x.attributes["peer.service"] === "acme",
    ))
      assert.equal(s.attributes["http.request.resend_count"], undefined);
  });

  it("takes the port of a request made with its headers as an array and no Host header from its options", async () => {
    // The third party is declared on this host with another port.
    let seen: http.IncomingHttpHeaders | undefined;
    const target = http.createServer(
      { requireHostHeader: false },
      (req, res) => {
        seen = req.headers;
        res.end("ok");
      },
    );
    const port = await listen(target);
    const app = http.createServer((_req, res) => {
      relay(
        http.request(`http://127.0.0.1:${port}/array`, {
          headers: ["accept", "*/*"],
        }),
        res,
      );
    });
    const appPort = await listen(app);
    const res = await asCustomer(`http://127.0.0.1:${appPort}/work`);
    assert.equal(res.status, 200);
    assert.equal(seen?.["host"], undefined);
    assert.equal(seen?.["baggage"], "customer.id=c-42");
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some(
          (x) =>
            x.kind === CLIENT &&
            x.attributes["url.full"] !== `http://127.0.0.1:${appPort}/work`,
        ),
      "the array request's span",
    );
    const span = spans.find(
      (x) =>
        x.kind === CLIENT &&
        String(x.attributes["url.full"]).endsWith("/array"),
    );
    assert.equal(
      span?.attributes["url.full"],
      `http://127.0.0.1:${port}/array`,
    );
    assert.equal(span?.attributes["server.port"], port);
    assert.equal(span?.attributes["peer.service"], undefined);
  });

  it("sends baggage to internal hosts only, removing even a copied baggage header for third parties", async () => {
    const server = http.createServer(async (req, res) => {
      // A proxy-like handler that forwards the incoming headers wholesale.
      const forwarded = { baggage: String(req.headers["baggage"] ?? "") };
      await fetch(`${thirdParty.url}/charge`, { headers: forwarded });
      await get(`${thirdParty.url}/charge-again`, { headers: forwarded });
      await fetch(`${internal.url}/inventory`);
      res.end("ok");
    });
    const port = await listen(server);
    const res = await asCustomer(`http://127.0.0.1:${port}/checkout`);
    assert.equal(res.status, 200);
    await waitFor(
      () => thirdParty.requests.length >= 2 && internal.requests.length >= 1,
      { what: "the three calls" },
    );
    for (const r of thirdParty.requests.slice(-2)) {
      assert.equal(r.headers["baggage"], undefined, r.path);
      assert.match(String(r.headers["traceparent"]), /^00-/);
    }
    assert.equal(
      internal.requests.at(-1)?.headers["baggage"],
      "customer.id=c-42",
    );
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => x.attributes["peer.service"] === "acme").length >= 2,
      "third-party spans",
    );
    for (const s of byName(spans, CLIENT, "GET").filter(
      (x) => x.attributes["peer.service"] === "acme",
    ))
      assert.equal(s.attributes["customer.id"], "c-42");
  });

  it("acts for the customer withCustomer() names, an integer id too, and for none when the id is invalid, never for the one around it", async () => {
    const server = http.createServer(async (_req, res) => {
      // The request came with c-42 in its baggage and its context.
      await withCustomer(1007, () => fetch(`${internal.url}/as-1007`));
      await withCustomer(10n ** 20n, () => fetch(`${internal.url}/as-bigint`));
      // 151 digits: over the 128 characters the next service would take.
      await withCustomer(10n ** 150n, () => fetch(`${internal.url}/as-huge`));
      await withCustomer("bob smith", () => fetch(`${internal.url}/as-bob`));
      await withCustomer(undefined, () => fetch(`${internal.url}/as-nobody`));
      await fetch(`${internal.url}/as-itself`);
      res.end("ok");
    });
    const port = await listen(server);
    assert.equal(
      (await asCustomer(`http://127.0.0.1:${port}/acting`)).status,
      200,
    );
    const sent = (path: string) =>
      internal.requests.find((r) => r.path === path)?.headers;
    await waitFor(() => sent("/as-itself"), { what: "the six calls" });
    assert.equal(sent("/as-1007")?.["baggage"], "customer.id=1007");
    assert.equal(sent("/as-bigint")?.["baggage"], `customer.id=${10n ** 20n}`);
    assert.equal(sent("/as-huge")?.["baggage"], undefined);
    assert.equal(sent("/as-bob")?.["baggage"], undefined);
    assert.equal(sent("/as-nobody")?.["baggage"], undefined);
    assert.equal(sent("/as-itself")?.["baggage"], "customer.id=c-42");
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some((x) => x.attributes["url.full"] === `${internal.url}/as-itself`),
      "the calls' spans",
    );
    const customerOf = (path: string) =>
      spans.find((x) => x.attributes["url.full"] === `${internal.url}${path}`)
        ?.attributes["customer.id"];
    assert.equal(customerOf("/as-1007"), "1007");
    assert.equal(customerOf("/as-bigint"), String(10n ** 20n));
    assert.equal(customerOf("/as-huge"), undefined);
    assert.equal(customerOf("/as-bob"), undefined);
    assert.equal(customerOf("/as-nobody"), undefined);
    assert.equal(customerOf("/as-itself"), "c-42");
  });

  /**
   * The call to `path`, which an egress gateway forwards to Stripe: it got
   * the trace but neither baggage nor the customer header, and its span is
   * Stripe's, with the customer.
   */
  async function assertSentAsStripes(path: string) {
    const charge = await waitFor(
      () => internal.requests.find((r) => r.path === path),
      { what: "the call" },
    );
    assert.equal(charge.headers["baggage"], undefined);
    assert.equal(charge.headers["x-customer-id"], undefined);
    assert.match(String(charge.headers["traceparent"]), /^00-/);
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.attributes["peer.service"] === "stripe"),
      "the call's span, marked as stripe's",
    );
    const call = spans.find((x) => x.attributes["peer.service"] === "stripe")!;
    assert.equal(call.kind, CLIENT);
    assert.equal(call.attributes["customer.id"], "c-42");
    return charge;
  }

  it("judges a call by the host its Host header names too, as an egress gateway routes it", async () => {
    const server = http.createServer(async (_req, res) => {
      await new Promise<void>((resolve, reject) =>
        http
          .get(
            {
              host: "127.0.0.1",
              port: internal.port,
              path: "/v1/charges",
              headers: { host: "api.stripe.test" },
            },
            (r) => r.resume().on("end", resolve),
          )
          .on("error", reject),
      );
      res.end("ok");
    });
    const port = await listen(server);
    const res = await asCustomer(`http://127.0.0.1:${port}/pay`);
    assert.equal(res.status, 200);
    await assertSentAsStripes("/v1/charges");
  });

  const lateHosts: Array<[string, (r: http.ClientRequest) => void]> = [
    ["a string", (r) => r.setHeader("Host", "api.stripe.test")],
    ["a list", (r) => r.setHeader("Host", ["api.stripe.test"])],
    ["appended", (r) => r.appendHeader("Host", "api.stripe.test")],
  ];
  for (const [how, setHost] of lateHosts)
    it(`judges a call by a Host header set after the request was made (${how}), as an egress gateway routes it`, async () => {
      const path = `/v1/late-charges/${how.replace(" ", "-")}`;
      const server = http.createServer((_req, res) => {
        const late = http.request({
          host: "127.0.0.1",
          port: internal.port,
          path,
          headers: { "x-customer-id": "c-42" },
        });
        setHost(late);
        late.setHeader("Baggage", "customer.id=c-42");
        relay(late, res);
      });
      const port = await listen(server);
      const res = await asCustomer(`http://127.0.0.1:${port}/pay`);
      assert.equal(res.status, 200);
      const charge = await assertSentAsStripes(path);
      // Appended, it follows the one the request was made with.
      if (how !== "appended")
        assert.equal(charge.headers["host"], "api.stripe.test");
    });

  it("judges a call by the port it connects to, which its Host header leaves out when it is the default", async () => {
    // The third party is declared with its port. Node leaves the port out
    // of the Host header when it is the default port the request's options
    // or its agent give, and an application may set one without a port.
    const shapes: Record<string, http.RequestOptions> = {
      "/default-port": { defaultPort: thirdParty.port },
      "/agent-default-port": {
        agent: new http.Agent({ defaultPort: thirdParty.port }),
      },
      "/host-without-port": { headers: { host: "127.0.0.1" } },
    };
    const call = (options: http.RequestOptions) =>
      new Promise<void>((resolve, reject) =>
        http
          .get(options, (r) => r.resume().on("end", resolve))
          .on("error", reject),
      );
    const server = http.createServer(async (_req, res) => {
      for (const [path, options] of Object.entries(shapes))
        await call({
          host: "127.0.0.1",
          port: thirdParty.port,
          path,
          ...options,
          headers: { "x-customer-id": "c-42", ...options.headers },
        });
      // Named to an egress gateway: the port is still the one connected to.
      await call({
        host: "127.0.0.1",
        port: internal.port,
        path: "/named-gateway",
        headers: { host: "api.stripe.test" },
      });
      res.end("ok");
    });
    const port = await listen(server);
    assert.equal(
      (await asCustomer(`http://127.0.0.1:${port}/ports`)).status,
      200,
    );
    const paths = Object.keys(shapes);
    await waitFor(
      () =>
        paths.every((p) => thirdParty.requests.some((r) => r.path === p)) &&
        internal.requests.some((r) => r.path === "/named-gateway"),
      { what: "every call" },
    );
    const sent = (path: string) => {
      const r = thirdParty.requests.find((x) => x.path === path)!;
      return [
        r.headers["baggage"] ?? null,
        r.headers["x-customer-id"] ?? null,
        /^00-/.test(String(r.headers["traceparent"])),
      ];
    };
    assert.deepEqual(
      Object.fromEntries(paths.map((path) => [path, sent(path)])),
      Object.fromEntries(paths.map((path) => [path, [null, null, true]])),
    );
    const spans = await receiver.waitForSpans(
      (all) =>
        all.filter((x) => x.kind === CLIENT && x.parentSpanId !== undefined)
          .length >= 4 &&
        all.some((x) =>
          String(x.attributes["url.full"]).endsWith("/named-gateway"),
        ),
      "the calls' spans",
    );
    const of = (path: string) => {
      const span = spans.find((x) =>
        String(x.attributes["url.full"]).endsWith(path),
      );
      return [
        span?.attributes["url.full"],
        span?.attributes["server.port"],
        span?.attributes["peer.service"],
      ];
    };
    assert.deepEqual(
      Object.fromEntries([...paths, "/named-gateway"].map((p) => [p, of(p)])),
      {
        ...Object.fromEntries(
          paths.map((p) => [
            p,
            [`${thirdParty.url}${p}`, thirdParty.port, "acme"],
          ]),
        ),
        "/named-gateway": [
          `${internal.url}/named-gateway`,
          internal.port,
          "stripe",
        ],
      },
    );
  });

  it("replaces trace headers an application forwards, with fetch and http alike", async () => {
    const forwarded = {
      traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
      tracestate: "up=1",
      baggage: "customer.id=evil",
    };
    let traceId = "";
    const server = http.createServer(async (_req, res) => {
      traceId = trace.getActiveSpan()!.spanContext().traceId;
      await fetch(`${internal.url}/forwarded-fetch`, { headers: forwarded });
      await get(`${internal.url}/forwarded-http`, { headers: forwarded });
      res.end("ok");
    });
    const port = await listen(server);
    assert.equal((await fetch(`http://127.0.0.1:${port}/proxy`)).status, 200);
    for (const path of ["/forwarded-fetch", "/forwarded-http"]) {
      const got = await waitFor(
        () => internal.requests.find((r) => r.path === path),
        { what: path },
      );
      assert.match(
        String(got.headers["traceparent"]),
        new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[13]$`),
        path,
      );
      assert.equal(got.headers["tracestate"], undefined, path);
      assert.equal(got.headers["baggage"], undefined, path);
    }
  });

  it("keeps the trace headers and baggage it wrote when the application sets copies after making the request", async () => {
    // A proxy-style handler copying its caller's headers onto its own call.
    const forwarded = {
      traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
      tracestate: "up=1",
      baggage: "customer.id=evil",
    };
    let traceId = "";
    const server = http.createServer((_req, res) => {
      traceId = trace.getActiveSpan()!.spanContext().traceId;
      const late = http.request(`${internal.url}/late-forward`);
      for (const [name, value] of Object.entries(forwarded))
        late.setHeader(name, value);
      late.appendHeader("Baggage", "customer.id=evil");
      late.setHeaders(new Map([["TraceParent", forwarded.traceparent]]));
      relay(late, res);
    });
    const port = await listen(server);
    const res = await asCustomer(`http://127.0.0.1:${port}/proxy`);
    assert.equal(res.status, 200);
    const got = await waitFor(
      () => internal.requests.find((r) => r.path === "/late-forward"),
      { what: "the forwarded call" },
    );
    assert.match(
      String(got.headers["traceparent"]),
      new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[13]$`),
    );
    assert.equal(got.headers["tracestate"], undefined);
    assert.equal(got.headers["baggage"], "customer.id=c-42");
  });

  it("keeps baggage and the customer header from third parties however the request is made", async () => {
    const proxy = await startRecordingServer();
    const third = `127.0.0.1:${thirdParty.port}`;
    const copied = { baggage: "customer.id=c-42", "x-customer-id": "c-42" };
    const sent = (req: http.ClientRequest) =>
      new Promise<void>((resolve, reject) => {
        req.on("response", (res) => res.resume().on("end", resolve));
        req.on("error", reject);
        req.end();
      });
    const server = http.createServer(async (_req, res) => {
      // The application names another host in the Host header.
      await get(`http://${third}/host-header`, {
        headers: { ...copied, host: "api.acme.example" },
      });
      // It sets the headers after the request was made.
      const late = http.request(`http://${third}/late`);
      late.setHeaders(new Map([["baggage", "customer.id=c-42"]]));
      late.appendHeader("X-Customer-Id", "c-42");
      await sent(late);
      // It gives the headers as an array, which Node writes out at once.
      await sent(
        http.request(`http://${third}/array`, {
          headers: ["host", third, ...Object.entries(copied).flat()],
        }),
      );
      // Through a forward proxy on loopback, the way axios's proxy option works.
      await sent(
        http.request({
          host: "127.0.0.1",
          port: proxy.port,
          path: `http://${third}/proxied`,
          headers: copied,
        }),
      );
      // A URL's scheme is case-insensitive, and proxies read it so.
      await sent(
        http.request({
          host: "127.0.0.1",
          port: proxy.port,
          path: `HTTP://${third}/proxied-upper`,
          headers: copied,
        }),
      );
      // To an internal host, but through a proxy that is not one.
      await sent(
        http.request({
          host: "127.0.0.1",
          port: thirdParty.port,
          path: `${internal.url}/through-a-stranger`,
          headers: copied,
        }),
      );
      // The IPv4 address it was declared by, spelt as IPv6.
      await get(`http://[::ffff:127.0.0.1]:${thirdParty.port}/mapped`, {
        headers: copied,
      });
      // Internal hosts still get baggage, whichever way the headers are given.
      await sent(
        http.request(`${internal.url}/array`, {
          headers: [
            "host",
            new URL(internal.url).host,
            "baggage",
            "customer.id=c-42,k=v",
          ],
        }),
      );
      res.end("ok");
    });
    const port = await listen(server);
    try {
      const res = await asCustomer(`http://127.0.0.1:${port}/checkout`);
      assert.equal(res.status, 200);
      const paths = [
        "/host-header",
        "/late",
        "/array",
        `${internal.url}/through-a-stranger`,
        "/mapped",
      ];
      await waitFor(
        () =>
          paths.every((p) => thirdParty.requests.some((r) => r.path === p)) &&
          proxy.requests.length === 2 &&
          internal.requests.some((r) => r.path === "/array"),
        { what: "every call" },
      );
      const seen = [
        ...paths.map((p) => thirdParty.requests.find((r) => r.path === p)!),
        ...proxy.requests,
      ];
      for (const r of seen) {
        assert.equal(r.headers["baggage"], undefined, r.path);
        assert.equal(r.headers["x-customer-id"], undefined, r.path);
        assert.match(String(r.headers["traceparent"]), /^00-/, r.path);
      }
      const inside = internal.requests.find((r) => r.path === "/array")!;
      assert.equal(inside.headers["baggage"], "customer.id=c-42");
      assert.match(String(inside.headers["traceparent"]), /^00-/);
      const spans = await receiver.waitForSpans(
        (all) =>
          all.filter((x) => x.attributes["peer.service"] === "acme").length >=
          6,
        "the third-party spans",
      );
      const proxied = spans.find((x) =>
        String(x.attributes["url.full"]).endsWith("/proxied"),
      );
      assert.equal(proxied?.attributes["url.full"], `http://${third}/proxied`);
      assert.equal(proxied?.attributes["peer.service"], "acme");
      const upper = spans.find((x) =>
        String(x.attributes["url.full"]).endsWith("/proxied-upper"),
      );
      assert.equal(
        upper?.attributes["url.full"],
        `http://${third}/proxied-upper`,
      );
      assert.equal(upper?.attributes["peer.service"], "acme");
    } finally {
      await proxy.close();
    }
  });

  it("keeps baggage and the customer header from a request that asks to continue, and writes its trace headers", async () => {
    // Node writes out the header block of a request with an Expect header
    // as the request is made, as it does for headers given as an array: a
    // handler forwarding an upload's headers (curl asks to continue) copies it.
    const copied = {
      expect: "100-continue",
      traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
      baggage: "customer.id=evil",
      "x-customer-id": "evil",
    };
    const upload = (url: string, array: boolean) =>
      new Promise<void>((resolve, reject) => {
        const req = http.request(url, {
          method: "POST",
          headers: array
            ? ["host", new URL(url).host, ...Object.entries(copied).flat()]
            : copied,
        });
        req.on("continue", () => req.end("body"));
        req.on("response", (res) => res.resume().on("end", resolve));
        req.on("error", reject);
      });
    let traceId = "";
    const server = http.createServer(async (_req, res) => {
      traceId = trace.getActiveSpan()!.spanContext().traceId;
      for (const base of [thirdParty.url, internal.url]) {
        await upload(`${base}/continue-object`, false);
        await upload(`${base}/continue-array`, true);
      }
      res.end("ok");
    });
    const port = await listen(server);
    const res = await asCustomer(`http://127.0.0.1:${port}/upload`);
    assert.equal(res.status, 200);
    const got = (recorder: RecordingServer) =>
      ["/continue-object", "/continue-array"].map((path) => {
        const r = recorder.requests.find((x) => x.path === path);
        assert.ok(r, path);
        return [
          path,
          r.headers["baggage"] ?? null,
          r.headers["x-customer-id"] ?? null,
          new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[13]$`).test(
            String(r.headers["traceparent"]),
          ),
          r.body,
        ];
      });
    assert.deepEqual(got(thirdParty), [
      ["/continue-object", null, null, true, "body"],
      ["/continue-array", null, null, true, "body"],
    ]);
    assert.deepEqual(got(internal), [
      ["/continue-object", "customer.id=c-42", null, true, "body"],
      ["/continue-array", "customer.id=c-42", null, true, "body"],
    ]);
  });

  it("destroys a request whose written header block it cannot edit, rather than send what it may not carry", async () => {
    // A Node that queues a header block sent at once otherwise: as bytes.
    const proto = http.OutgoingMessage.prototype as unknown as {
      _send(this: unknown, data: unknown, ...rest: unknown[]): unknown;
    };
    const original = proto._send;
    proto._send = function (
      this: { _header?: unknown; _headerSent?: unknown },
      data,
      ...rest
    ) {
      if (
        data !== "" ||
        this._headerSent !== false ||
        typeof this._header !== "string"
      )
        return original.call(this, data, ...rest);
      this._headerSent = true;
      return original.call(this, Buffer.from(this._header, "latin1"), ...rest);
    };
    const upload = (path: string, headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const req = http.request(`${thirdParty.url}${path}`, {
          method: "POST",
          headers: { expect: "100-continue", ...headers },
        });
        req.on("continue", () => req.end("body"));
        req.on("response", (res) =>
          res.resume().on("end", () => resolve("answered")),
        );
        req.on("error", () => resolve("failed"));
      });
    try {
      const outcomes = await withCustomer("c-42", async () => [
        await upload("/unedited-forward", { baggage: "customer.id=evil" }),
        await upload("/unedited-plain", { "x-kept": "1" }),
      ]);
      assert.deepEqual(outcomes, ["failed", "answered"]);
    } finally {
      proto._send = original;
    }
    const paths = thirdParty.requests.map((r) => r.path);
    assert.ok(paths.includes("/unedited-plain"));
    assert.ok(!paths.includes("/unedited-forward"));
  });

  it("keeps what the trust rules keep from a request with tracing suppressed, with fetch and http alike", async () => {
    const forged = {
      baggage: "customer.id=c-victim",
      "x-customer-id": "c-victim",
    };
    const own = { baggage: "customer.id=c-42", "x-customer-id": "c-42" };
    const sent = (req: http.ClientRequest) =>
      new Promise<void>((resolve, reject) => {
        req.on("response", (res) => res.resume().on("end", resolve));
        req.on("error", reject);
        req.end();
      });
    const calls = async (base: string, headers: Record<string, string>) => {
      await (await fetch(`${base}/untraced-fetch`, { headers })).text();
      await sent(http.request(`${base}/untraced-http`, { headers }));
      const late = http.request(`${base}/untraced-late`);
      for (const [name, value] of Object.entries(headers))
        late.setHeader(name.toUpperCase(), value);
      await sent(late);
    };
    await withCustomer("c-42", () =>
      context.with(suppressTracing(context.active()), async () => {
        await calls(thirdParty.url, own);
        await calls(`${internal.url}/forged`, forged);
        await calls(`${internal.url}/own`, own);
      }),
    );
    const paths = ["/untraced-fetch", "/untraced-http", "/untraced-late"];
    const got = (server: RecordingServer, prefix: string) =>
      Object.fromEntries(
        paths.map((p) => {
          const r = server.requests.find((x) => x.path === `${prefix}${p}`);
          assert.ok(r, `${prefix}${p}`);
          return [
            p,
            [
              r.headers["baggage"] ?? null,
              r.headers["x-customer-id"] ?? null,
              r.headers["traceparent"] ?? null,
            ],
          ];
        }),
      );
    const none = Object.fromEntries(paths.map((p) => [p, [null, null, null]]));
    assert.deepEqual(got(thirdParty, ""), none, "the third party");
    assert.deepEqual(got(internal, "/forged"), none, "a forged customer");
    assert.deepEqual(
      got(internal, "/own"),
      Object.fromEntries(paths.map((p) => [p, [null, "c-42", null]])),
      "the context's own customer",
    );
  });

  it("keeps from a request's trailers what its headers lose", async () => {
    const trailers = new Map<string, NodeJS.Dict<string>>();
    const target = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        trailers.set(req.url!, req.trailers);
        res.end("ok");
      });
    });
    const port = await listen(target);
    const send = (
      path: string,
      host: string | undefined,
      given: Record<string, string> | Array<[string, string]>,
    ) =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({
          host: "127.0.0.1",
          port,
          path,
          method: "POST",
          headers: host === undefined ? {} : { host },
        });
        req.on("response", (res) => res.resume().on("end", resolve));
        req.on("error", reject);
        req.write("x");
        req.addTrailers(given);
        req.end();
      });
    await withCustomer("c-42", async () => {
      // A third party and a host that is not internal, named to an egress gateway.
      await send("/stripe", "api.stripe.test", {
        baggage: "customer.id=c-42",
        "X-Customer-Id": "c-42",
        "x-kept": "1",
      });
      await send("/elsewhere", "partner.example", [
        ["Baggage", "customer.id=c-42"],
        ["x-customer-id", "c-42"],
        ["x-kept", "1"],
      ]);
      await send("/inside-own", undefined, {
        baggage: "customer.id=c-42",
        "x-customer-id": "c-42",
        "x-kept": "1",
      });
      await send("/inside-forged", undefined, [
        ["X-Customer-Id", "c-victim"],
        ["x-kept", "1"],
      ]);
    });
    assert.deepEqual(Object.fromEntries(trailers), {
      "/stripe": { "x-kept": "1" },
      "/elsewhere": { "x-kept": "1" },
      "/inside-own": { "x-customer-id": "c-42", "x-kept": "1" },
      "/inside-forged": { "x-kept": "1" },
    });
  });
});
