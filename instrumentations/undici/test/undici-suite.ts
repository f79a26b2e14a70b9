// The undici tests, shared by the undici majors the package supports: each
// test file runs them against the undici an application installs
// (`undici.test.ts` undici 7, `undici-8.test.ts` undici 8), and Node's own
// fetch() beside it. Inside one process, against a real OTLP receiver, real
// servers and a real forward proxy on loopback addresses: 127.0.0.1 is
// internal, 127.0.0.2 external, 127.0.0.3 a declared third party.
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  selfSignedCertificate,
  startForwardProxy,
  startOtlpReceiver,
  startRecordingServer,
  waitFor,
  type ForwardProxy,
  type OtlpReceiver,
  type ReceivedSpan,
  type RecordingServer,
} from "@threadline/test-support";
import { context, trace } from "@opentelemetry/api";
import { suppressTracing } from "@threadline/core";
import {
  getCustomerId,
  init,
  withCustomer,
  type ThreadlineHandle,
} from "@threadline/node";
import type * as undiciModule from "undici";

/** An undici module, as an application imports it. */
export type Undici = typeof undiciModule;

/** A fetch(): Node's own, or an undici module's. */
type Fetch = (
  url: string,
  init?: { headers?: Record<string, string> },
) => Promise<{ status: number; text(): Promise<string> }>;

const CLIENT = 3;

/** V8's full collection, as `--expose-gc` would give it, for what only a collection ends. */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/**
 * Registers the tests for `undici`, of major version `major`, with
 * Threadline started in `before`.
 */
export function undiciTests(undici: Undici, major: number): void {
  const { EnvHttpProxyAgent, ProxyAgent, request, stream } = undici;
  const fetches: Array<[string, Fetch]> = [
    ["fetch()", fetch],
    ["undici's fetch()", undici.fetch],
  ];
  /** The undici major a fetch of `fetches` is: Node's own is the undici Node bundles. */
  const undiciMajorOf = (name: string) =>
    name === "fetch()"
      ? Number(process.versions["undici"]!.split(".")[0])
      : major;

  let receiver: OtlpReceiver;
  let internal: RecordingServer;
  let external: RecordingServer;
  let thirdParty: RecordingServer;
  let threadline: ThreadlineHandle;
  /** Waits for a CLIENT span of each of `urls`, and gives them in their order. */
  const clientSpansOf = async (urls: string[]) => {
    const of = (spans: ReceivedSpan[], url: string) =>
      spans.find((x) => x.kind === CLIENT && x.attributes["url.full"] === url);
    const spans = await receiver.waitForSpans(
      (s) => urls.every((url) => of(s, url) !== undefined),
      "a span for each call",
    );
    return urls.map((url) => of(spans, url)!);
  };
  const closing: Array<() => Promise<void>> = [];

  before(async () => {
    receiver = await startOtlpReceiver();
    internal = await startRecordingServer();
    external = await startRecordingServer(undefined, "127.0.0.2");
    thirdParty = await startRecordingServer(undefined, "127.0.0.3");
    process.env["OTEL_BSP_SCHEDULE_DELAY"] = "20";
    threadline = init({
      serviceName: "undici-test",
      endpoint: receiver.url,
      exportLogs: false,
      ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
      internalHosts: "none,127.0.0.1",
      thirdParties: { "127.0.0.3": "acme" },
    });
  });

  after(async () => {
    await threadline.shutdown();
    await Promise.all([
      receiver.close(),
      internal.close(),
      external.close(),
      thirdParty.close(),
    ]);
  });

  beforeEach(() => receiver.clear());

  afterEach(async () => {
    await Promise.all(closing.splice(0).map((close) => close()));
  });

  /** Listens on `host` (the internal address); the server is closed after the test. */
  async function listening(
    server: http.Server,
    host = "127.0.0.1",
  ): Promise<void> {
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    closing.push(
      () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
  }

  /**
   * Runs `calls` as the handler of a request that came in with a customer id
   * (c-42 unless `customer` says), the way a service calls out while serving
   * its own request. The request is made as that customer's: a customer header goes to an internal host
   * only as the customer of the context the call is made in.
   */
  async function serving(
    calls: () => Promise<void>,
    customer = "c-42",
  ): Promise<void> {
    const app = http.createServer((_req, res) => {
      calls().then(
        () => res.end("ok"),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    await listening(app);
    const { port } = app.address() as { port: number };
    const res = await withCustomer(customer, () =>
      fetch(`http://127.0.0.1:${port}/work`, {
        headers: { "x-customer-id": customer },
      }),
    );
    assert.equal(res.status, 200, await res.text());
  }

  async function proxyOn(host: string): Promise<ForwardProxy> {
    const proxy = await startForwardProxy(host);
    closing.push(() => proxy.close());
    return proxy;
  }

  describe("undici through a forward proxy", () => {
    it("judges and records a request a ProxyAgent sends without a tunnel by its destination", async () => {
      const proxy = await proxyOn("127.0.0.1");
      await serving(async () => {
        const dispatcher = new ProxyAgent({
          uri: proxy.url,
          proxyTunnel: false,
        });
        closing.push(() => dispatcher.close());
        for (const url of [
          `${external.url}/via-proxy`,
          `${thirdParty.url}/charge`,
          `${internal.url}/inside`,
        ]) {
          const res = await request(url, {
            dispatcher,
            headers: { "x-customer-id": "c-42" },
          });
          await res.body.text();
        }
      });
      assert.deepEqual(
        proxy.requests.map((r) => r.target),
        [
          `${external.url}/via-proxy`,
          `${thirdParty.url}/charge`,
          `${internal.url}/inside`,
        ],
      );
      const outside: Array<[string, http.IncomingHttpHeaders]> = [
        ...proxy.requests
          .slice(0, 2)
          .map(
            (r) =>
              [`proxy ${r.target}`, r.headers] as [
                string,
                http.IncomingHttpHeaders,
              ],
          ),
        [
          "external",
          external.requests.find((r) => r.path === "/via-proxy")!.headers,
        ],
        [
          "third party",
          thirdParty.requests.find((r) => r.path === "/charge")!.headers,
        ],
      ];
      for (const [who, headers] of outside) {
        assert.equal(headers["baggage"], undefined, who);
        assert.equal(headers["x-customer-id"], undefined, who);
        assert.match(String(headers["traceparent"]), /^00-/, who);
      }
      const inside = internal.requests.find((r) => r.path === "/inside")!;
      assert.equal(inside.headers["baggage"], "customer.id=c-42");
      const spans = await receiver.waitForSpans(
        (s) => s.filter((x) => x.kind === CLIENT).length >= 4,
        "the client spans",
      );
      const call = (url: string) =>
        spans.find(
          (s) => s.kind === CLIENT && s.attributes["url.full"] === url,
        );
      const toExternal = call(`${external.url}/via-proxy`);
      assert.equal(toExternal?.attributes["server.address"], "127.0.0.2");
      assert.equal(toExternal?.attributes["server.port"], external.port);
      assert.equal(
        call(`${thirdParty.url}/charge`)?.attributes["peer.service"],
        "acme",
      );
      assert.ok(call(`${internal.url}/inside`), "the internal call's span");
    });

    /**
     * Calls `service` through `proxy` (which tunnels plain HTTP with CONNECT)
     * with dispatchers given to the requests themselves: the first request
     * is made before its tunnel is opened, the next ones go through that
     * tunnel again (one connection, kept within the service's short
     * keep-alive). Tunnelling plain HTTP is asked for: undici 7 does by
     * default, undici 8 sends it to the proxy in absolute form instead (the
     * case of the test above).
     */
    async function throughTunnels(
      proxy: ForwardProxy,
      service: RecordingServer,
    ): Promise<string[]> {
      await serving(async () => {
        const agent = new ProxyAgent({
          uri: proxy.url,
          proxyTunnel: true,
          connections: 1,
          keepAliveTimeoutThreshold: 500,
        });
        const env = new EnvHttpProxyAgent({
          httpProxy: proxy.url,
          proxyTunnel: true,
        });
        closing.push(
          () => agent.close(),
          () => env.close(),
        );
        const headers = { "x-customer-id": "c-42" };
        for (const path of ["/opens", "/again"]) {
          const res = await request(`${service.url}${path}`, {
            dispatcher: agent,
            headers,
          });
          await res.body.text();
        }
        const res = await undici.fetch(`${service.url}/fetch`, {
          dispatcher: agent,
          headers,
        });
        await res.text();
        const viaEnv = await request(`${service.url}/env-agent`, {
          dispatcher: env,
          headers,
        });
        await viaEnv.body.text();
      });
      assert.deepEqual(
        proxy.requests.map((r) => `${r.method} ${r.target}`),
        [
          `CONNECT 127.0.0.1:${service.port}`,
          `CONNECT 127.0.0.1:${service.port}`,
        ],
        "one tunnel for the ProxyAgent's requests, one for the EnvHttpProxyAgent's",
      );
      return ["/opens", "/again", "/fetch", "/env-agent"];
    }

    it("keeps the customer id from a proxy that is not internal when the request's own dispatcher tunnels plain HTTP through it", async () => {
      const proxy = await proxyOn("127.0.0.2");
      const service = await startRecordingServer();
      closing.push(() => service.close());
      const paths = await throughTunnels(proxy, service);
      for (const r of proxy.requests) {
        assert.equal(r.headers["baggage"], undefined, `proxy ${r.target}`);
        assert.equal(
          r.headers["x-customer-id"],
          undefined,
          `proxy ${r.target}`,
        );
      }
      // What the service got crossed the proxy in clear.
      for (const path of paths) {
        const got = service.requests.find((r) => r.path === path);
        assert.ok(got, path);
        assert.equal(got.headers["baggage"], undefined, path);
        assert.equal(got.headers["x-customer-id"], undefined, path);
        assert.match(String(got.headers["traceparent"]), /^00-/, path);
      }
    });

    it("still sends the customer id to an internal host through an internal proxy's tunnel", async () => {
      const proxy = await proxyOn("127.0.0.1");
      const service = await startRecordingServer();
      closing.push(() => service.close());
      const paths = await throughTunnels(proxy, service);
      for (const path of paths) {
        const got = service.requests.find((r) => r.path === path);
        assert.ok(got, path);
        assert.equal(got.headers["baggage"], "customer.id=c-42", path);
        assert.equal(got.headers["x-customer-id"], "c-42", path);
      }
    });

    /**
     * A SOCKS5 proxy on `host` (no authentication, CONNECT only), closed
     * after the test. It records what it relays to the destination: plain
     * HTTP, in clear.
     */
    async function socksProxyOn(
      host: string,
    ): Promise<{ url: string; relayed: () => string }> {
      let relayed = "";
      const sockets = new Set<net.Socket>();
      const server = net.createServer((client) => {
        sockets.add(client);
        client.on("error", () => client.destroy());
        client.once("data", () => {
          client.write(Buffer.from([5, 0]));
          // VER CMD RSV ATYP, an IPv4 address or a name, then the port.
          client.once("data", (req) => {
            const named = req[3] === 3;
            const at = named ? 5 + req[4]! : 8;
            const to = named
              ? req.subarray(5, at).toString()
              : [...req.subarray(4, 8)].join(".");
            const up = net.connect(req.readUInt16BE(at), to, () => {
              client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
              client.on("data", (d: Buffer) => {
                relayed += d.toString("latin1");
              });
              client.pipe(up).pipe(client);
            });
            sockets.add(up);
            up.on("error", () => client.destroy());
          });
        });
      });
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      closing.push(
        () =>
          new Promise((resolve) => {
            for (const s of sockets) s.destroy();
            server.close(() => resolve());
          }),
      );
      const { port } = server.address() as { port: number };
      return { url: `socks5://${host}:${port}`, relayed: () => relayed };
    }

    it("keeps the customer id from a SOCKS5 proxy that is not internal, and sends it through one that is", async () => {
      // A service each: while a tunnel to a host is open, every request to
      // it is judged by that tunnel's proxy too.
      const through = async (host: string) => {
        const service = await startRecordingServer();
        closing.push(() => service.close());
        return { proxy: await socksProxyOn(host), service };
      };
      const outside = await through("127.0.0.2");
      const inside = await through("127.0.0.1");
      const paths = ["/opens", "/again", "/fetch"];
      await serving(async () => {
        for (const { proxy, service } of [outside, inside]) {
          const dispatcher = new undici.Socks5ProxyAgent(proxy.url);
          closing.push(() => dispatcher.close());
          const headers = { "x-customer-id": "c-42" };
          for (const path of ["/opens", "/again"]) {
            const res = await request(`${service.url}${path}`, {
              dispatcher,
              headers,
            });
            await res.body.text();
          }
          const res = await undici.fetch(`${service.url}/fetch`, {
            dispatcher,
            headers,
          });
          await res.text();
        }
      });
      for (const { proxy } of [outside, inside])
        for (const path of paths)
          assert.ok(proxy.relayed().includes(`GET ${path} `), path);
      assert.doesNotMatch(
        outside.proxy.relayed(),
        /^(baggage|x-customer-id):/im,
      );
      for (const path of paths) {
        const got = outside.service.requests.find((r) => r.path === path);
        assert.ok(got, path);
        assert.equal(got.headers["baggage"], undefined, path);
        assert.equal(got.headers["x-customer-id"], undefined, path);
        assert.match(String(got.headers["traceparent"]), /^00-/, path);
        const inner = inside.service.requests.find((r) => r.path === path);
        assert.ok(inner, path);
        assert.equal(inner.headers["baggage"], "customer.id=c-42", path);
        assert.equal(inner.headers["x-customer-id"], "c-42", path);
      }
    });
  });

  describe("undici's dispatchers", () => {
    it("traces requests through an Agent and a Pool, sending the customer id to internal hosts only", async () => {
      const agent = new undici.Agent();
      const pool = new undici.Pool(internal.url, { connections: 2 });
      closing.push(
        () => agent.close(),
        () => pool.close(),
      );
      const headers = { "x-customer-id": "c-42" };
      await serving(async () => {
        for (const url of [
          `${internal.url}/agent`,
          `${thirdParty.url}/agent`,
        ]) {
          const res = await request(url, { dispatcher: agent, headers });
          await res.body.text();
        }
        const fetched = await undici.fetch(`${internal.url}/agent-fetch`, {
          dispatcher: agent,
          headers,
        });
        await fetched.text();
        const pooled = await pool.request({
          method: "GET",
          path: "/pool",
          headers,
        });
        await pooled.body.text();
      });
      for (const path of ["/agent", "/agent-fetch", "/pool"]) {
        const got = internal.requests.findLast((r) => r.path === path);
        assert.equal(got?.headers["baggage"], "customer.id=c-42", path);
        assert.equal(got?.headers["x-customer-id"], "c-42", path);
      }
      const outside = thirdParty.requests.findLast((r) => r.path === "/agent");
      assert.ok(outside, "the third party's request");
      assert.equal(outside.headers["baggage"], undefined);
      assert.equal(outside.headers["x-customer-id"], undefined);
      assert.match(String(outside.headers["traceparent"]), /^00-/);
      const urls = [
        `${internal.url}/agent`,
        `${thirdParty.url}/agent`,
        `${internal.url}/agent-fetch`,
        `${internal.url}/pool`,
      ];
      const spans = await clientSpansOf(urls);
      for (const [i, url] of urls.entries()) {
        const span = spans[i]!;
        assert.equal(span.name, "GET", url);
        assert.equal(span.attributes["http.response.status_code"], 200, url);
        assert.equal(span.attributes["customer.id"], "c-42", url);
        assert.equal(
          span.attributes["peer.service"],
          url.startsWith(thirdParty.url) ? "acme" : undefined,
          url,
        );
      }
    });

    it("counts the attempts a RetryAgent makes after failed answers as resends, and a poll's repeats as calls of their own", async () => {
      const answered = new Map<string, number>();
      // `/<status>,<status>…/<name>`: each status in turn, the last from then on.
      const inTurn = (req: http.IncomingMessage, res: http.ServerResponse) => {
        const statuses = req.url!.split("/")[1]!.split(",").map(Number);
        const at = `${req.headers.host}${req.url}`;
        const n = answered.get(at) ?? 0;
        answered.set(at, n + 1);
        res.writeHead(statuses[Math.min(n, statuses.length - 1)]!).end("{}");
      };
      const servers: string[] = [];
      for (const host of ["127.0.0.1", "127.0.0.3"]) {
        const server = http.createServer(inTurn);
        await listening(server, host);
        servers.push(
          `http://${host}:${(server.address() as { port: number }).port}`,
        );
      }
      const retrying = new undici.RetryAgent(new undici.Agent(), {
        maxRetries: 3,
        minTimeout: 10,
        statusCodes: [503],
      });
      closing.push(() => retrying.close());
      await serving(async () => {
        for (const base of servers) {
          const res = await request(`${base}/503,503,200/retried`, {
            dispatcher: retrying,
          });
          await res.body.text();
          for (let poll = 0; poll < 3; poll++)
            await (await fetch(`${base}/200/polled`)).text();
        }
      });
      const ours = (s: { kind: number; attributes: Record<string, unknown> }) =>
        s.kind === CLIENT &&
        servers.some((base) =>
          String(s.attributes["url.full"]).startsWith(base),
        );
      const spans = await receiver.waitForSpans(
        (s) => s.filter(ours).length >= 12,
        "three attempts and three polls to each host",
      );
      assert.deepEqual(
        spans
          .filter(ours)
          .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1))
          .map((s) => [
            s.attributes["peer.service"],
            String(s.attributes["url.full"]).split("/").pop(),
            s.attributes["http.response.status_code"],
            s.attributes["http.request.resend_count"],
          ]),
        [undefined, "acme"].flatMap((peer) => [
          [peer, "retried", 503, undefined],
          [peer, "retried", 503, 1],
          [peer, "retried", 200, 2],
          [peer, "polled", 200, undefined],
          [peer, "polled", 200, undefined],
          [peer, "polled", 200, undefined],
        ]),
      );
    });
    it("makes a request a Pool queues, and runs the events of request()'s body and its callback, for the customer who made it, whoever opened the connection", async () => {
      // The body in two parts, the second in a later read of the socket.
      const baggage: Array<string | undefined> = [];
      const server = http.createServer((req, res) => {
        baggage.push(req.headers.baggage as string | undefined);
        res.writeHead(200).write("first");
        setTimeout(() => res.end("second"), 20);
      });
      await listening(server);
      const pool = new undici.Pool(
        `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        { connections: 1 },
      );
      closing.push(() => pool.close());
      // Another customer's request opens the one connection.
      await withCustomer("c-opener", async () => {
        await (await pool.request({ path: "/", method: "GET" })).body.text();
      });
      const events = await withCustomer("c-42", async () => {
        const { body } = await pool.request({ path: "/", method: "GET" });
        const seen: Array<string | undefined> = [];
        body.on("data", () => seen.push(getCustomerId()));
        await new Promise<void>((resolve) =>
          body.on("end", () => {
            seen.push(getCustomerId());
            resolve();
          }),
        );
        return seen;
      });
      assert.ok(events.length >= 3, String(events));
      assert.deepEqual(new Set(events), new Set(["c-42"]), String(events));
      const inCallback = await withCustomer(
        "c-7",
        () =>
          new Promise<Array<string | undefined>>((resolve, reject) =>
            pool.request({ path: "/", method: "GET" }, (err, data) => {
              if (err) return reject(err);
              const called = getCustomerId();
              data.body.resume();
              data.body.on("end", () => resolve([called, getCustomerId()]));
            }),
          ),
      );
      assert.deepEqual(inCallback, ["c-7", "c-7"]);
      // Each made as its caller's, queued for the connection or not.
      assert.deepEqual(baggage, [
        "customer.id=c-opener",
        "customer.id=c-42",
        "customer.id=c-7",
      ]);
    });

    it(
      "makes each fetch() a Pool queues for a busy connection in its own caller's trace, for its caller's customer",
      {
        skip:
          major === 8 &&
          "undici 8 is installed here under another name (undici-8), which the instrumentation does not look for",
      },
      async () => {
        const server = http.createServer((req, res) => {
          res.writeHead(200).write(String(req.headers.baggage));
          setTimeout(() => res.end(), 10);
        });
        await listening(server);
        const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        const pool = new undici.Pool(base, { connections: 1 });
        closing.push(() => pool.close());
        const calls = [
          ["c-1", undici.fetch],
          ["c-2", undici.fetch],
          ["c-3", fetch],
          ["c-4", fetch],
        ] as const;
        const tracer = trace.getTracer("test");
        const answers = await Promise.all(
          calls.map(([customer, f]) =>
            withCustomer(customer, () =>
              tracer.startActiveSpan(customer, async (parent) => {
                const url = `${base}/${customer}`;
                const text = await (
                  await (f as typeof undici.fetch)(url, { dispatcher: pool })
                ).text();
                parent.end();
                return { text, url, traceId: parent.spanContext().traceId };
              }),
            ),
          ),
        );
        assert.deepEqual(
          answers.map((a) => a.text),
          calls.map(([customer]) => `customer.id=${customer}`),
        );
        const spans = await clientSpansOf(answers.map((a) => a.url));
        assert.deepEqual(
          spans.map((x) => x.traceId),
          answers.map((a) => a.traceId),
        );
      },
    );

    it("runs a request undici makes again by itself, a retry or a redirect it follows, in its caller's trace and for its caller's customer, whoever opened the connection", async () => {
      // `/<status>,<status>…/<name>`: each status in turn, the last from then
      // on, 0 for a connection closed unanswered; `/moved/<name>` redirects
      // to `/200/<name>`.
      const answered = new Map<string, number>();
      const got: Array<{ path: string; baggage: string | undefined }> = [];
      const server = http.createServer((req, res) => {
        got.push({ path: req.url!, baggage: req.headers.baggage as string });
        const [, first, name] = req.url!.split("/");
        if (first === "moved") {
          res.writeHead(302, { location: `/200/${name}` }).end("moved");
          return;
        }
        const statuses = first!.split(",").map(Number);
        const n = answered.get(req.url!) ?? 0;
        answered.set(req.url!, n + 1);
        const status = statuses[Math.min(n, statuses.length - 1)]!;
        if (status === 0) req.socket.destroy();
        else res.writeHead(status).end("{}");
      });
      await listening(server);
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      // One connection each, so that the call made again goes over the one
      // another customer's request opened.
      const retryOptions = { minTimeout: 10, statusCodes: [503] };
      const retryAgent = () =>
        new undici.RetryAgent(
          new undici.Agent({ connections: 1 }),
          retryOptions,
        );
      type Dispatcher = undiciModule.Dispatcher;
      const byRequest = async (url: string, dispatcher: Dispatcher) => {
        await (await request(url, { dispatcher })).body.text();
      };
      const byFetch =
        (f: typeof undici.fetch) =>
        async (url: string, dispatcher: Dispatcher) => {
          await (await f(url, { dispatcher })).text();
        };
      const cases: Array<
        [
          string,
          Dispatcher,
          (url: string, dispatcher: Dispatcher) => Promise<void>,
          string,
        ]
      > = [
        ["retry-agent", retryAgent(), byRequest, "/503,200/retry-agent"],
        ["retry-agent-reset", retryAgent(), byRequest, "/0,200/retry-agent"],
        [
          "retry-agent-undici-fetch",
          retryAgent(),
          byFetch(undici.fetch),
          "/503,200/retry-agent-undici-fetch",
        ],
        [
          "retry-interceptor",
          new undici.Agent({ connections: 1 }).compose(
            undici.interceptors.retry(retryOptions),
          ),
          byRequest,
          "/503,200/retry-interceptor",
        ],
        [
          "redirect-interceptor",
          new undici.Agent({ connections: 1 }).compose(
            undici.interceptors.redirect({ maxRedirections: 2 }),
          ),
          byRequest,
          "/moved/redirect-interceptor",
        ],
      ];
      // Node's own fetch() with a dispatcher of its undici's major (an
      // answer through one of another major never ends).
      if (major === Number(process.versions.undici?.split(".")[0]))
        cases.splice(1, 0, [
          "retry-agent-fetch",
          retryAgent(),
          byFetch(fetch as unknown as typeof undici.fetch),
          "/503,200/retry-agent-fetch",
        ]);
      closing.push(
        ...cases.map(
          ([, d]) =>
            () =>
              d.close(),
        ),
      );
      await serving(async () => {
        for (const [name, dispatcher, call] of cases)
          await call(`${base}/200/open-${name}`, dispatcher);
      }, "c-opener");
      await serving(async () => {
        for (const [, dispatcher, call, path] of cases)
          await call(`${base}${path}`, dispatcher);
      });
      const paths = [
        ...cases.map(([, , , path]) => path),
        "/200/redirect-interceptor",
      ];
      const retried = paths.slice(0, -2);
      assert.deepEqual(
        got
          .filter((r) => paths.includes(r.path))
          .map((r) => [r.path, r.baggage]),
        [
          ...retried.flatMap((p) => [
            [p, "customer.id=c-42"],
            [p, "customer.id=c-42"],
          ]),
          ...paths.slice(-2).map((p) => [p, "customer.id=c-42"]),
        ],
        "every attempt and hop went with the caller's baggage",
      );
      const ours = (s: ReceivedSpan) =>
        s.kind === CLIENT &&
        paths.some((p) => s.attributes["url.full"] === `${base}${p}`);
      const spans = await receiver.waitForSpans(
        (s) => s.filter(ours).length >= retried.length * 2 + 2,
        "two attempts of each retried call, and the redirect's two hops",
      );
      const calls = spans
        .filter(ours)
        .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
      // All made by the one handler that served c-42.
      const parent = calls[0]!.parentSpanId;
      assert.deepEqual(
        calls.map((s) => [
          String(s.attributes["url.full"]).slice(base.length),
          s.traceId === calls[0]!.traceId && s.parentSpanId === parent,
          s.attributes["customer.id"],
          s.attributes["http.request.resend_count"],
        ]),
        [
          ...retried.flatMap((p) => [
            [p, true, "c-42", undefined],
            [p, true, "c-42", 1],
          ]),
          [paths.at(-2), true, "c-42", undefined],
          [paths.at(-1), true, "c-42", 1],
        ],
      );
      const server42 = spans.find((s) => s.spanId === parent);
      assert.equal(server42?.attributes["customer.id"], "c-42");
    });
    it("leaves the context of the code that cancels or aborts a request made in another as it was", async () => {
      // Headers and a first chunk; the rest never comes.
      const trickling = http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("partial");
      });
      await listening(trickling);
      const slow = `http://127.0.0.1:${(trickling.address() as { port: number }).port}`;
      const after = async (path: string) =>
        (await request(`${internal.url}${path}`)).body.text();
      await serving(async () => {
        // Made for another customer, let go of in this request's context.
        const other = <T>(call: () => Promise<T>) =>
          withCustomer("c-other", call);
        const cancelled = await other(() => fetch(`${slow}/cancelled`));
        await cancelled.body!.cancel();
        await after("/after-cancel");
        const abort = new AbortController();
        const aborted = await other(() =>
          undici.fetch(`${slow}/aborted`, { signal: abort.signal }),
        );
        abort.abort();
        await assert.rejects(aborted.text(), { name: "AbortError" });
        await after("/after-abort");
        const destroyed = await other(() => request(`${slow}/destroyed`));
        destroyed.body.on("error", () => {}).destroy();
        await after("/after-destroy");
      });
      assert.deepEqual(
        ["/after-cancel", "/after-abort", "/after-destroy"].map(
          (path) =>
            internal.requests.findLast((r) => r.path === path)?.headers[
              "baggage"
            ],
        ),
        ["customer.id=c-42", "customer.id=c-42", "customer.id=c-42"],
      );
    });
  });

  describe("undici and methods", () => {
    it("records a method in the case it is sent in: only a known method's exact name, else _OTHER", async () => {
      // request() sends a method as it is given; undici's fetch() upper-cases
      // DELETE, GET, HEAD, OPTIONS, POST and PUT only.
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          "request-get",
          () =>
            request(`${internal.url}/request-get`, { method: "get" }).then(
              (r) => r.body.text(),
            ),
        ],
        [
          "request-PATCH",
          () =>
            request(`${internal.url}/request-PATCH`, { method: "PATCH" }).then(
              (r) => r.body.text(),
            ),
        ],
        [
          "fetch-patch",
          () =>
            undici
              .fetch(`${internal.url}/fetch-patch`, { method: "patch" })
              .then((r) => r.text()),
        ],
        [
          "fetch-delete",
          () =>
            undici
              .fetch(`${internal.url}/fetch-delete`, { method: "delete" })
              .then((r) => r.text()),
        ],
      ];
      for (const [, call] of calls) await call();
      const urls = calls.map(([path]) => `${internal.url}/${path}`);
      const spans = await clientSpansOf(urls);
      assert.deepEqual(
        spans.map((span) => [
          span.name,
          span.attributes["http.request.method"],
          span.attributes["http.request.method_original"],
        ]),
        [
          ["HTTP", "_OTHER", "get"],
          ["PATCH", "PATCH", undefined],
          ["HTTP", "_OTHER", "patch"],
          ["DELETE", "DELETE", undefined],
        ],
      );
    });
  });

  describe("undici and metrics", () => {
    for (const [name, f] of fetches)
      it(`links each call's duration to its own trace with ${name}, over a kept-alive connection`, async () => {
        let connections = 0;
        const server = http.createServer((_req, res) => res.end("ok"));
        server.on("connection", () => connections++);
        await listening(server);
        const { port } = server.address() as { port: number };
        const tracer = trace.getTracer("undici-test");
        for (let i = 0; i < 3; i++) {
          const url = `http://127.0.0.1:${port}/call-${i}`;
          // Each call in a trace of its own, as the handlers of three
          // requests would make them.
          const traceId = await tracer.startActiveSpan(
            `job ${i}`,
            { root: true },
            async (job) => {
              await (await f(url)).text();
              job.end();
              return job.spanContext().traceId;
            },
          );
          const [span] = await clientSpansOf([url]);
          assert.equal(span!.traceId, traceId);
          await threadline.forceFlush();
          const point = receiver.metrics
            .findLast((m) => m.name === "http.client.request.duration")
            ?.points.find((p) => Number(p.attributes["server.port"]) === port);
          // The newest measurement of its bucket: its exemplar is this call's.
          assert.ok(
            point?.exemplars.some(
              (e) => e.traceId === traceId && e.spanId === span!.spanId,
            ),
            `call ${i}: exemplars ${JSON.stringify(point?.exemplars)}, span ${span!.traceId}/${span!.spanId}`,
          );
        }
        assert.equal(connections, 1);
      });
  });

  describe("undici and the Host header", () => {
    it("judges a request by the host its Host header names too, as an egress gateway routes it", async () => {
      const copied = { baggage: "customer.id=c-42", "x-customer-id": "c-42" };
      await serving(async () => {
        const res = await request(`${internal.url}/named-external`, {
          headers: { ...copied, host: `127.0.0.2:${external.port}` },
        });
        await res.body.text();
        const itself = await request(`${internal.url}/named-itself`, {
          headers: { ...copied, host: `127.0.0.1:${internal.port}` },
        });
        await itself.body.text();
        await stream(
          `${internal.url}/named-third-party`,
          {
            method: "GET",
            headers: { ...copied, host: `127.0.0.3:${thirdParty.port}` },
            opaque: null,
          },
          () =>
            new Writable({
              write: (_chunk, _encoding, done) => done(),
            }),
        );
      });
      for (const path of ["/named-external", "/named-third-party"]) {
        const got = internal.requests.find((r) => r.path === path);
        assert.ok(got, path);
        assert.equal(got.headers["baggage"], undefined, path);
        assert.equal(got.headers["x-customer-id"], undefined, path);
        assert.match(String(got.headers["traceparent"]), /^00-/, path);
      }
      const itself = internal.requests.find((r) => r.path === "/named-itself");
      assert.equal(itself?.headers["baggage"], "customer.id=c-42");
      assert.equal(itself?.headers["x-customer-id"], "c-42");
      const spans = await receiver.waitForSpans(
        (s) => s.some((x) => x.attributes["peer.service"] === "acme"),
        "the call's span, marked as acme's",
      );
      const call = spans.find((x) => x.attributes["peer.service"] === "acme")!;
      assert.equal(call.kind, CLIENT);
      assert.equal(call.attributes["customer.id"], "c-42");
    });
  });

  describe("undici and the customer header", () => {
    it("sends an internal host the customer header the application set only when it names the request's customer", async () => {
      const given: Array<
        [string, Record<string, string | string[]> | string[]]
      > = [
        ["/object-other", { "X-Customer-Id": "c-victim" }],
        ["/array-other", ["x-customer-id", "c-victim"]],
        ["/array-both", ["x-customer-id", "c-42", "X-CUSTOMER-ID", "c-victim"]],
        ["/values-both", { "x-customer-id": ["c-42", "c-victim"] }],
        ["/object-same", { "X-Customer-Id": "c-42" }],
        ["/array-same", ["X-Customer-Id", "c-42"]],
      ];
      await serving(async () => {
        for (const [path, headers] of given) {
          const res = await request(`${internal.url}${path}`, { headers });
          await res.body.text();
        }
        for (const [name, fetch] of fetches)
          for (const customer of ["c-victim", "c-42"]) {
            const res = await fetch(
              `${internal.url}/${name.startsWith("undici") ? "undici-" : ""}fetch-${customer}`,
              { headers: { "X-Customer-Id": customer } },
            );
            await res.text();
          }
      });
      // Outside any request: no customer to name.
      const outside = await request(`${internal.url}/outside`, {
        headers: { "x-customer-id": "c-42" },
      });
      await outside.body.text();
      const sent = (path: string) =>
        internal.requests.findLast((r) => r.path === path)?.headers[
          "x-customer-id"
        ] ?? null;
      assert.deepEqual(
        Object.fromEntries(
          [
            ...given.map(([path]) => path),
            "/fetch-c-victim",
            "/fetch-c-42",
            "/undici-fetch-c-victim",
            "/undici-fetch-c-42",
            "/outside",
          ].map((path) => [path, sent(path)]),
        ),
        {
          "/object-other": null,
          "/array-other": null,
          "/array-both": null,
          "/values-both": null,
          "/object-same": "c-42",
          "/array-same": "c-42",
          "/fetch-c-victim": null,
          "/fetch-c-42": "c-42",
          "/undici-fetch-c-victim": null,
          "/undici-fetch-c-42": "c-42",
          "/outside": null,
        },
      );
    });
  });

  describe("undici with tracing suppressed", () => {
    it("keeps what the trust rules keep from a request", async () => {
      const forged = {
        baggage: "customer.id=c-victim",
        "X-Customer-Id": "c-victim",
      };
      const own = { baggage: "customer.id=c-42", "x-customer-id": "c-42" };
      const calls = async (base: string, headers: Record<string, string>) => {
        const res = await request(`${base}/untraced-request`, {
          headers: Object.entries(headers).flat(),
        });
        await res.body.text();
        for (const [name, fetch] of fetches) {
          const fetched = await fetch(
            `${base}/untraced-${name.startsWith("undici") ? "undici-" : ""}fetch`,
            { headers },
          );
          await fetched.text();
        }
      };
      await withCustomer("c-42", () =>
        context.with(suppressTracing(context.active()), async () => {
          await calls(external.url, own);
          await calls(thirdParty.url, own);
          await calls(`${internal.url}/forged`, forged);
          await calls(`${internal.url}/own`, own);
        }),
      );
      const paths = [
        "/untraced-request",
        "/untraced-fetch",
        "/untraced-undici-fetch",
      ];
      const got = (server: RecordingServer, prefix: string) =>
        Object.fromEntries(
          paths.map((p) => {
            const r = server.requests.findLast(
              (x) => x.path === `${prefix}${p}`,
            );
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
      const none = Object.fromEntries(
        paths.map((p) => [p, [null, null, null]]),
      );
      assert.deepEqual(got(external, ""), none, "an external host");
      assert.deepEqual(got(thirdParty, ""), none, "the third party");
      assert.deepEqual(got(internal, "/forged"), none, "a forged customer");
      assert.deepEqual(
        got(internal, "/own"),
        Object.fromEntries(paths.map((p) => [p, [null, "c-42", null]])),
        "the context's own customer",
      );
    });
  });

  describe("undici and redirects", () => {
    /** A service on the internal address that answers each path with a redirect. */
    async function redirecting(
      to: Record<string, { status: number; location: string }>,
    ): Promise<RecordingServer> {
      const service = await startRecordingServer((req) => {
        const hop = to[req.path];
        return hop === undefined
          ? { body: { ok: true } }
          : { status: hop.status, headers: { location: hop.location } };
      });
      closing.push(() => service.close());
      return service;
    }

    /**
     * A server on the internal address answering a redirect whose body
     * fetch() does not read ahead of: at `/big` more than undici reads
     * ahead, at any other path a first chunk and never the rest.
     */
    async function unfinishedRedirects(): Promise<string> {
      const service = http.createServer((req, res) => {
        res.writeHead(302, { location: "/elsewhere" });
        if (req.url === "/big") res.end(Buffer.alloc(1_000_000, "x"));
        else res.write("partial");
      });
      await listening(service);
      return `http://127.0.0.1:${(service.address() as { port: number }).port}`;
    }

    type RedirectFetch = (
      url: string,
      init: { redirect: "error" | "manual" },
    ) => Promise<Response>;

    for (const [name, fetch] of fetches) {
      it(`marks the second and later hops of a redirect ${name} follows with http.request.resend_count`, async () => {
        const service = await redirecting({
          "/first": { status: 302, location: "/second" },
          "/second": { status: 307, location: "/third?x=1" },
          "/third?x=1": { status: 308, location: "/last" },
        });
        await serving(async () => {
          const res = await fetch(`${service.url}/first`);
          assert.equal(res.status, 200);
          await res.text();
          // The same URL again, on its own: a call of its own, not a resend.
          const again = await fetch(`${service.url}/last`);
          await again.text();
        });
        const urls = ["/first", "/second", "/third?x=1", "/last", "/last"].map(
          (path) => `${service.url}${path}`,
        );
        const spans = await receiver.waitForSpans(
          (s) =>
            s.filter(
              (x) =>
                x.kind === CLIENT &&
                urls.includes(String(x.attributes["url.full"])),
            ).length >= urls.length,
          "a span for each hop and for the call of its own",
        );
        const calls = spans
          .filter(
            (x) =>
              x.kind === CLIENT &&
              urls.includes(String(x.attributes["url.full"])),
          )
          .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
        assert.deepEqual(
          calls.map((s) => [
            s.attributes["url.full"],
            s.attributes["http.request.resend_count"],
          ]),
          [
            [urls[0], undefined],
            [urls[1], 1],
            [urls[2], 2],
            [urls[3], 3],
            [urls[4], undefined],
          ],
        );
        assert.equal(new Set(calls.map((s) => s.parentSpanId)).size, 1);
      });

      it(`keeps the customer id from a third party an internal service redirects to with ${name}, and marks the hop as its`, async () => {
        const service = await redirecting({
          "/pay": {
            status: 302,
            location: `${thirdParty.url}/charge-redirected`,
          },
        });
        const before = thirdParty.requests.length;
        await serving(async () => {
          const res = await fetch(`${service.url}/pay`, {
            headers: { "x-customer-id": "c-42" },
          });
          assert.equal(res.status, 200);
          await res.text();
        });
        const asked = service.requests.find((r) => r.path === "/pay");
        assert.equal(asked?.headers["baggage"], "customer.id=c-42");
        assert.equal(asked?.headers["x-customer-id"], "c-42");
        const got = thirdParty.requests
          .slice(before)
          .find((r) => r.path === "/charge-redirected");
        assert.ok(got, "the third party got the redirected request");
        assert.equal(got.headers["baggage"], undefined);
        assert.equal(got.headers["x-customer-id"], undefined);
        assert.match(String(got.headers["traceparent"]), /^00-/);
        const spans = await receiver.waitForSpans(
          (s) =>
            s.some(
              (x) =>
                x.attributes["url.full"] ===
                `${thirdParty.url}/charge-redirected`,
            ),
          "the hop's span",
        );
        const hop = spans.find(
          (x) =>
            x.attributes["url.full"] === `${thirdParty.url}/charge-redirected`,
        )!;
        assert.equal(hop.kind, CLIENT);
        assert.equal(hop.attributes["peer.service"], "acme");
        assert.equal(hop.attributes["http.request.resend_count"], 1);
        const first = spans.find(
          (x) => x.attributes["url.full"] === `${service.url}/pay`,
        );
        assert.equal(first?.attributes["peer.service"], undefined);
        assert.equal(first?.attributes["http.request.resend_count"], undefined);
      });

      it(`ends the answer to a redirect ${name} follows when it makes the next hop, however much of its body is still to come`, async () => {
        // More of a body than the connection takes in before the client
        // reads it: fetch() never reads a followed redirect's body, and
        // undici 7 leaves the answer waiting, its connection kept alive.
        const service = http.createServer((req, res) => {
          if (req.url === "/big-redirect") {
            res.writeHead(302, { location: "/after-big-redirect" });
            res.end(Buffer.alloc(200_000, "x"));
          } else res.end("ok");
        });
        await listening(service);
        const url = `http://127.0.0.1:${(service.address() as { port: number }).port}`;
        await serving(async () => {
          const res = await fetch(`${url}/big-redirect`);
          assert.equal(res.status, 200);
          assert.equal(await res.text(), "ok");
          // Sends only what has ended by now: the redirect's answer too.
          await threadline.forceFlush();
        });
        const answer = receiver.spans.find(
          (x) => x.attributes["url.full"] === `${url}/big-redirect`,
        );
        const hop = receiver.spans.find(
          (x) => x.attributes["url.full"] === `${url}/after-big-redirect`,
        );
        assert.ok(answer, "the redirect's answer ended before fetch() did");
        assert.ok(hop, "the hop ended before fetch() did");
        assert.ok(
          answer.endTimeUnixNano <= hop.startTimeUnixNano,
          "the answer ends before the next hop starts",
        );
        assert.equal(answer.attributes["http.response.status_code"], 302);
        assert.equal(answer.attributes["error.type"], undefined);
        assert.equal(answer.status.code, 0);
        assert.deepEqual(answer.events, []);
        assert.equal(hop.attributes["http.request.resend_count"], 1);
      });

      it(
        `ends the answer to a redirect ${name} refuses (redirect: "error") as a failed call once it has failed, however much of its body is still to come`,
        {
          skip:
            undiciMajorOf(name) < 8 &&
            "undici 7 neither reads nor aborts the answer when fetch() refuses it, and publishes nothing until its connection closes (see the README)",
        },
        async () => {
          const service = await unfinishedRedirects();
          await serving(async () => {
            for (const path of ["/big", "/never-ends"])
              await assert.rejects(
                (fetch as unknown as RedirectFetch)(`${service}${path}`, {
                  redirect: "error",
                }),
                (err: Error) =>
                  err instanceof TypeError &&
                  (err.cause as Error).message === "unexpected redirect",
              );
          });
          const urls = [`${service}/big`, `${service}/never-ends`];
          const spans = await receiver.waitForSpans(
            (s) =>
              urls.every((u) => s.some((x) => x.attributes["url.full"] === u)),
            "the refused redirects' spans",
            3_000,
          );
          for (const u of urls) {
            const call = spans.find((x) => x.attributes["url.full"] === u);
            assert.deepEqual(
              [
                call?.attributes["http.response.status_code"],
                call?.attributes["error.type"],
                call?.status.code,
              ],
              [302, "AbortError", 2],
              u,
            );
          }
        },
      );

      it(`does not record an answer to redirect: "manual" with ${name} the application never read, cancelled once collected, as a failed call`, async () => {
        const collect = collector();
        const service = await unfinishedRedirects();
        for (const path of ["/big", "/never-ends"]) {
          const status = await (async () =>
            (
              await (fetch as unknown as RedirectFetch)(`${service}${path}`, {
                redirect: "manual",
              })
            ).status)();
          assert.equal(status, 302);
        }
        const urls = [`${service}/big`, `${service}/never-ends`];
        await waitFor(
          () => {
            collect();
            return urls.every((u) =>
              receiver.spans.some((x) => x.attributes["url.full"] === u),
            );
          },
          { what: "the unread answers' spans", timeoutMs: 10_000 },
        );
        for (const u of urls) {
          const call = receiver.spans.find(
            (x) => x.attributes["url.full"] === u,
          );
          assert.deepEqual(
            [
              call?.attributes["http.response.status_code"],
              call?.attributes["error.type"],
              call?.status.code,
            ],
            [302, undefined, 0],
            u,
          );
        }
      });
    }

    it("records a redirect answer the application aborts itself, followed by nobody, as a failed call", async () => {
      // Each path answers a redirect whose body never finishes.
      const service = http.createServer((_req, res) => {
        res.writeHead(302, { location: "/elsewhere" });
        res.write("partial");
      });
      await listening(service);
      const url = `http://127.0.0.1:${(service.address() as { port: number }).port}`;
      await serving(async () => {
        // Given up on as soon as the answer is there, and later, as the
        // application's own timeout would, while waiting for the rest.
        const giveUp = (path: string, abort: AbortController) => {
          if (path.endsWith("-now")) abort.abort();
          else setTimeout(() => abort.abort(), 20);
        };
        for (const path of ["/manual-now", "/manual-later"]) {
          const abort = new AbortController();
          const res = await undici.fetch(`${url}${path}`, {
            redirect: "manual",
            signal: abort.signal,
          });
          assert.equal(res.status, 302);
          giveUp(path, abort);
          await assert.rejects(res.text(), { name: "AbortError" });
        }
        for (const path of ["/request-now", "/request-later"]) {
          const abort = new AbortController();
          const res = await request(`${url}${path}`, { signal: abort.signal });
          assert.equal(res.statusCode, 302);
          giveUp(path, abort);
          await assert.rejects(res.body.text(), { name: "AbortError" });
        }
      });
      const paths = {
        "/manual-now": "AbortError",
        "/manual-later": "AbortError",
        "/request-now": "UND_ERR_ABORTED",
        "/request-later": "UND_ERR_ABORTED",
      };
      const urls = Object.keys(paths).map((path) => `${url}${path}`);
      const spans = await receiver.waitForSpans(
        (s) => urls.every((u) => s.some((x) => x.attributes["url.full"] === u)),
        "the aborted calls' spans",
      );
      for (const [path, errorType] of Object.entries(paths)) {
        const call = spans.find(
          (x) => x.attributes["url.full"] === `${url}${path}`,
        );
        assert.deepEqual(
          [
            call?.attributes["http.response.status_code"],
            call?.attributes["error.type"],
            call?.status.code,
            call?.events.map((e) => e.name),
          ],
          [302, errorType, 2, ["exception"]],
          path,
        );
      }
    });
  });

  describe("undici and answers the application lets go of", () => {
    /**
     * A server on the internal address whose answers never finish: the
     * headers `head` writes (a 200 by default) and a first chunk.
     */
    async function trickling(
      head: (req: http.IncomingMessage, res: http.ServerResponse) => void = (
        _req,
        res,
      ) => res.writeHead(200, { "content-type": "text/plain" }),
    ): Promise<string> {
      const server = http.createServer((req, res) => {
        head(req, res);
        res.write("partial");
      });
      await listening(server);
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    }

    /** The calls to `base` in http.client.request.duration: status, count and error type, in that order. */
    async function durationsAt(base: string) {
      await threadline.forceFlush();
      const duration = receiver.metrics.findLast(
        (m) => m.name === "http.client.request.duration",
      );
      return duration?.points
        .filter(
          (p) => String(p.attributes["server.port"]) === new URL(base).port,
        )
        .map((p) => [
          p.attributes["http.response.status_code"],
          p.count,
          p.attributes["error.type"],
        ])
        .sort((a, b) =>
          String([a[0], a[2]]).localeCompare(String([b[0], b[2]])),
        );
    }

    type BodyFetch = (
      url: string,
      init?: { signal?: AbortSignal },
    ) => Promise<Response>;

    for (const [name, f] of fetches)
      it(`does not record an answer whose body the application cancels with ${name} as a failed call, nor the same call made again as its resend`, async () => {
        const bodyFetch = f as unknown as BodyFetch;
        const letGo = await trickling();
        const aborted = await trickling();
        await serving(async () => {
          // Each twice: the second is a call of its own.
          for (let i = 0; i < 2; i++) {
            const res = await bodyFetch(`${letGo}/cancel`);
            assert.equal(res.status, 200);
            await res.body!.cancel();
            const read = await bodyFetch(`${letGo}/reader`);
            const reader = read.body!.getReader();
            await reader.read();
            await reader.cancel("done");
          }
          // Aborted by the request's own signal while its body arrives: a
          // failure, as the application's timeout would be.
          const abort = new AbortController();
          const res = await bodyFetch(`${aborted}/signal`, {
            signal: abort.signal,
          });
          abort.abort();
          await assert.rejects(res.text(), { name: "AbortError" });
        });
        const urls = [
          `${letGo}/cancel`,
          `${letGo}/reader`,
          `${aborted}/signal`,
        ];
        const ours = (s: ReceivedSpan) =>
          s.kind === CLIENT && urls.includes(String(s.attributes["url.full"]));
        const spans = await receiver.waitForSpans(
          (s) => s.filter(ours).length >= 5,
          "the calls' spans",
        );
        assert.deepEqual(
          spans
            .filter(ours)
            .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano))
            .map((s) => [
              s.attributes["url.full"],
              s.attributes["http.response.status_code"],
              s.attributes["error.type"],
              s.status.code,
              s.events.map((e) => e.name),
              s.attributes["http.request.resend_count"],
            ]),
          [
            [urls[0], 200, undefined, 0, [], undefined],
            [urls[1], 200, undefined, 0, [], undefined],
            [urls[0], 200, undefined, 0, [], undefined],
            [urls[1], 200, undefined, 0, [], undefined],
            [urls[2], 200, "AbortError", 2, ["exception"], undefined],
          ],
        );
        assert.deepEqual(await durationsAt(letGo), [[200, 4, undefined]]);
        assert.deepEqual(await durationsAt(aborted), [[200, 1, "AbortError"]]);
      });

    it("records a 4xx or 5xx answer whose body the application lets go of by its status, as one read to the end, not as a failed call", async () => {
      // Answers with the status their path starts with, never finished.
      const base = await trickling((req, res) =>
        res.writeHead(Number(req.url!.split("/")[1]), {
          "content-type": "text/html",
        }),
      );
      const dispatcher = major >= 8 ? new undici.Agent() : undefined;
      if (dispatcher !== undefined) closing.push(() => dispatcher.close());
      const call = (url: string) => request(url, { dispatcher });
      const ways: Array<[string, (url: string) => Promise<void>]> = [
        ...fetches.map(([, f], i): [string, (url: string) => Promise<void>] => [
          `cancel-${i}`,
          async (url) => {
            const res = await (f as unknown as BodyFetch)(url);
            assert.equal(res.ok, false);
            await res.body!.cancel();
          },
        ]),
        [
          "destroy",
          async (url) => {
            (await call(url)).body.on("error", () => {}).destroy();
          },
        ],
        ["dump", async (url) => (await call(url)).body.dump({ limit: 1 })],
      ];
      const urls: string[] = [];
      await serving(async () => {
        // Each twice: a 404's repeat is a call of its own, a 503's a resend.
        for (const status of [404, 503])
          for (const [way, letGo] of ways) {
            const url = `${base}/${status}/${way}`;
            urls.push(url);
            for (let i = 0; i < 2; i++) await letGo(url);
          }
      });
      const ours = (s: ReceivedSpan) =>
        s.kind === CLIENT && urls.includes(String(s.attributes["url.full"]));
      const spans = await receiver.waitForSpans(
        (s) => s.filter(ours).length >= urls.length * 2,
        "the calls' spans",
      );
      assert.deepEqual(
        spans
          .filter(ours)
          .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano))
          .map((s) => [
            s.attributes["url.full"],
            s.attributes["http.response.status_code"],
            s.attributes["error.type"],
            s.status.code,
            s.status.message,
            s.events.map((e) => e.name),
            s.attributes["http.request.resend_count"],
          ]),
        urls.flatMap((url) => {
          const status = Number(new URL(url).pathname.split("/")[1]);
          return [undefined, status === 503 ? 1 : undefined].map((resend) => [
            url,
            status,
            String(status),
            2,
            "",
            [],
            resend,
          ]);
        }),
      );
      assert.deepEqual(await durationsAt(base), [
        [404, ways.length * 2, "404"],
        [503, ways.length * 2, "503"],
      ]);
    });

    it("does not record an answer to request() whose body the application destroys with no error as a failed call, and records one destroyed with an error or aborted as a failure", async () => {
      // Headers and a first chunk, the rest never: a 200, a 200 of a
      // declared length, a redirect; and a 200 whose connection is lost.
      const serve = () =>
        trickling((req, res) => {
          if (req.url === "/moved")
            res.writeHead(302, { location: "/elsewhere" });
          else if (req.url === "/sized")
            res.writeHead(200, { "content-length": "1000" });
          else res.writeHead(200, { "content-type": "text/plain" });
          if (req.url === "/lost") setTimeout(() => req.socket.destroy(), 20);
        });
      const letGo = await serve();
      const failed = await serve();
      // undici 7's request() goes through the global dispatcher Node
      // installed when node:http loaded; undici 8's would hide its body
      // (see the README), so it goes through an Agent of its own.
      const dispatcher = major >= 8 ? new undici.Agent() : undefined;
      if (dispatcher !== undefined) closing.push(() => dispatcher.close());
      const call = (url: string, opts: Record<string, unknown> = {}) =>
        request(url, { dispatcher, ...opts });
      await serving(async () => {
        const destroyed = await call(`${letGo}/destroy`);
        destroyed.body.on("error", () => {}).destroy();
        for await (const _ of (await call(`${letGo}/loop`)).body) break;
        // Beyond its limit, dump() destroys a body of unknown length with no
        // error, and one of a larger declared length with its own AbortError.
        await (await call(`${letGo}/dump`)).body.dump({ limit: 1 });
        await (await call(`${letGo}/sized`)).body.dump({ limit: 1 });
        const moved = await call(`${letGo}/moved`);
        assert.equal(moved.statusCode, 302);
        moved.body.on("error", () => {}).destroy();

        const withError = await call(`${failed}/error`);
        withError.body.on("error", () => {}).destroy(new Error("x"));
        const abort = new AbortController();
        const aborted = await call(`${failed}/abort`, { signal: abort.signal });
        abort.abort();
        await assert.rejects(aborted.body.text(), { name: "AbortError" });
        // A timeout that fires once the headers are in, as
        // AbortSignal.timeout's does (its own timer could fire before them
        // on a busy machine).
        const timer = new AbortController();
        const timedOut = await call(`${failed}/timeout`, {
          signal: timer.signal,
        });
        timer.abort(new DOMException("timed out", "TimeoutError"));
        await assert.rejects(timedOut.body.text(), { name: "TimeoutError" });
        const slow = await call(`${failed}/body-timeout`, { bodyTimeout: 20 });
        await assert.rejects(slow.body.text(), {
          code: "UND_ERR_BODY_TIMEOUT",
        });
        const lost = await call(`${failed}/lost`);
        await assert.rejects(lost.body.text(), { code: "UND_ERR_SOCKET" });
      });
      const paths: Array<[string, number, string | undefined]> = [
        [`${letGo}/destroy`, 200, undefined],
        [`${letGo}/loop`, 200, undefined],
        [`${letGo}/dump`, 200, undefined],
        [`${letGo}/sized`, 200, undefined],
        [`${letGo}/moved`, 302, undefined],
        [`${failed}/error`, 200, "UND_ERR_ABORTED"],
        [`${failed}/abort`, 200, "UND_ERR_ABORTED"],
        [`${failed}/timeout`, 200, "UND_ERR_ABORTED"],
        [`${failed}/body-timeout`, 200, "UND_ERR_BODY_TIMEOUT"],
        [`${failed}/lost`, 200, "UND_ERR_SOCKET"],
      ];
      const spans = await clientSpansOf(paths.map(([url]) => url));
      assert.deepEqual(
        spans.map((s) => [
          s.attributes["url.full"],
          s.attributes["http.response.status_code"],
          s.attributes["error.type"],
          s.status.code,
          s.events.map((e) => e.name),
        ]),
        paths.map(([url, status, errorType]) => [
          url,
          status,
          errorType,
          errorType === undefined ? 0 : 2,
          errorType === undefined ? [] : ["exception"],
        ]),
      );
      assert.deepEqual(await durationsAt(letGo), [
        [200, 4, undefined],
        [302, 1, undefined],
      ]);
      assert.deepEqual(await durationsAt(failed), [
        [200, 3, "UND_ERR_ABORTED"],
        [200, 1, "UND_ERR_BODY_TIMEOUT"],
        [200, 1, "UND_ERR_SOCKET"],
      ]);
    });
  });

  describe("undici over HTTP/2", () => {
    /**
     * A third party served over TLS that speaks HTTP/2 (undici 8 asks for
     * it by default, undici 7 when allowed), answering each path with a
     * redirect or with its rate limits, and `/hang` never.
     */
    async function http2ThirdParty(
      redirects: Record<string, string>,
    ): Promise<{ url: string; ca: string; versions: string[] }> {
      const { key, cert } = selfSignedCertificate("127.0.0.3", "IP:127.0.0.3");
      const versions: string[] = [];
      const server = http2.createSecureServer(
        { key, cert, allowHTTP1: true },
        (req, res) => {
          versions.push(req.httpVersion);
          // Left unanswered, for the application to give up on.
          if (req.url === "/hang") return;
          const location = redirects[req.url];
          if (location !== undefined) {
            res.writeHead(302, { location }).end();
            return;
          }
          res
            .writeHead(200, {
              "x-ratelimit-limit": "10",
              "x-ratelimit-remaining": "7",
            })
            .end("ok");
        },
      );
      await new Promise<void>((resolve) =>
        server.listen(0, "127.0.0.3", resolve),
      );
      closing.push(
        () => new Promise((resolve) => server.close(() => resolve())),
      );
      const { port } = server.address() as { port: number };
      return { url: `https://127.0.0.3:${port}`, ca: cert, versions };
    }

    it("records a third party's rate limits and the hops of a redirect fetch() follows", async () => {
      const acme = await http2ThirdParty({ "/moved": "/here" });
      const agent = new undici.Agent({
        allowH2: true,
        connect: { ca: acme.ca },
      });
      closing.push(() => agent.close());
      await serving(async () => {
        const res = await request(`${acme.url}/limits`, { dispatcher: agent });
        await res.body.text();
        const moved = await undici.fetch(`${acme.url}/moved`, {
          dispatcher: agent,
        });
        assert.equal(moved.status, 200);
        await moved.text();
      });
      assert.deepEqual(acme.versions, ["2.0", "2.0", "2.0"]);
      const spans = await receiver.waitForSpans(
        (s) =>
          s.filter(
            (x) =>
              x.kind === CLIENT &&
              String(x.attributes["url.full"]).startsWith(acme.url),
          ).length >= 3,
        "the calls' spans",
      );
      const calls = spans
        .filter(
          (x) =>
            x.kind === CLIENT &&
            String(x.attributes["url.full"]).startsWith(acme.url),
        )
        .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
      assert.deepEqual(
        calls.map((s) => [
          s.attributes["url.full"],
          s.attributes["peer.service"],
          s.attributes["http.request.resend_count"],
          s.attributes["threadline.ratelimit.remaining"],
        ]),
        [
          [`${acme.url}/limits`, "acme", undefined, 7],
          [`${acme.url}/moved`, "acme", undefined, undefined],
          [`${acme.url}/here`, "acme", 1, 7],
        ],
      );
      assert.deepEqual(
        calls[0]!.attributes["http.response.header.x-ratelimit-limit"],
        ["10"],
      );
    });

    it("records the HTTP version a connection negotiated, and none where nothing tells it", async () => {
      const acme = await http2ThirdParty({});
      const h2 = new undici.Agent({ allowH2: true, connect: { ca: acme.ca } });
      const h1 = new undici.Agent({ allowH2: false, connect: { ca: acme.ca } });
      closing.push(
        () => h2.close(),
        () => h1.close(),
      );
      await serving(async () => {
        await (await request(`${acme.url}/h2`, { dispatcher: h2 })).body.text();
        await (
          await undici.fetch(`${acme.url}/h2-fetch`, { dispatcher: h2 })
        ).text();
        await (await request(`${acme.url}/h1`, { dispatcher: h1 })).body.text();
        await (await request(`${internal.url}/plain`)).body.text();
      });
      assert.deepEqual(acme.versions, ["2.0", "2.0", "1.1"]);
      const urls = [
        `${acme.url}/h2`,
        `${acme.url}/h2-fetch`,
        `${acme.url}/h1`,
        `${internal.url}/plain`,
      ];
      const spans = await clientSpansOf(urls);
      assert.deepEqual(
        spans.map((span) => span.attributes["network.protocol.version"]),
        // Plain HTTP/1: undici does not tell the version its answer came in.
        ["2", "2", "1.1", undefined],
      );
    });

    for (const [name, f] of fetches)
      it(`does not record an answer to ${name} the application never read, cancelled once collected, as a failed call`, async () => {
        const collect = collector();
        // Headers and a first chunk; the rest never comes.
        const acme = http.createServer((_req, res) => {
          res.writeHead(200, { "content-type": "text/plain" });
          res.write("partial");
        });
        await listening(acme, "127.0.0.3");
        const url = `http://127.0.0.3:${(acme.address() as { port: number }).port}/big`;
        const status = await (async () => (await f(url)).status)();
        assert.equal(status, 200);
        const isCall = (x: { attributes: Record<string, unknown> }) =>
          x.attributes["url.full"] === url;
        await waitFor(
          () => {
            collect();
            return receiver.spans.some(isCall);
          },
          { what: "the unread answer's span", timeoutMs: 10_000 },
        );
        const span = receiver.spans.find(isCall);
        assert.equal(span?.attributes["http.response.status_code"], 200);
        assert.equal(span?.attributes["error.type"], undefined);
        assert.equal(span?.status.code, 0);
        assert.deepEqual(span?.events, []);
      });

    it("does not record the redirect answer fetch() follows as a failed call", async () => {
      const acme = await http2ThirdParty({ "/old": "/new" });
      const agent = new undici.Agent({
        allowH2: true,
        connect: { ca: acme.ca },
      });
      closing.push(() => agent.close());
      await serving(async () => {
        const res = await undici.fetch(`${acme.url}/old`, {
          dispatcher: agent,
        });
        assert.equal(res.status, 200);
        await res.text();
        // A call the application aborts still failed.
        const abort = new AbortController();
        const hanging = undici.fetch(`${acme.url}/hang`, {
          dispatcher: agent,
          signal: abort.signal,
        });
        await waitFor(() => acme.versions.length === 3, {
          what: "the call to hang",
        });
        abort.abort();
        await assert.rejects(hanging, { name: "AbortError" });
      });
      assert.deepEqual(acme.versions, ["2.0", "2.0", "2.0"]);
      const spans = await receiver.waitForSpans(
        (s) => s.some((x) => x.attributes["url.full"] === `${acme.url}/new`),
        "the hop's span",
      );
      const answer = spans.find(
        (x) => x.attributes["url.full"] === `${acme.url}/old`,
      );
      assert.equal(answer?.attributes["http.response.status_code"], 302);
      assert.equal(answer?.attributes["error.type"], undefined);
      assert.equal(answer?.status.code, 0);
      assert.deepEqual(answer?.events, []);
      const aborted = await receiver.waitForSpans(
        (s) => s.some((x) => x.attributes["url.full"] === `${acme.url}/hang`),
        "the aborted call's span",
      );
      const hung = aborted.find(
        (x) => x.attributes["url.full"] === `${acme.url}/hang`,
      );
      assert.equal(hung?.attributes["error.type"], "AbortError");
    });
  });
}
