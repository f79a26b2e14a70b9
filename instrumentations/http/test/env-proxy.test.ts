// Calls through forward proxies the application does not name in the
// request: Node's env proxy (NODE_USE_ENV_PROXY with HTTP_PROXY and
// NO_PROXY) for http and fetch alike, an http.Agent's proxyEnv, and an
// agent that connects to a proxy by itself, or opens a tunnel through one
// and hands its socket to the request. The calling service is a child
// process (Node reads the env proxy at start); 127.0.0.1 is internal, the
// proxy on 127.0.0.2 is not, and must never see baggage.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startForwardProxy,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
  type ForwardProxy,
  type OtlpReceiver,
  type RecordingServer,
  type RunningService,
} from "@threadline/test-support";

let receiver: OtlpReceiver;
let proxy: ForwardProxy;
let internal: RecordingServer;
let bypassed: RecordingServer;
let service: RunningService;

before(async () => {
  receiver = await startOtlpReceiver();
  proxy = await startForwardProxy("127.0.0.2");
  internal = await startRecordingServer();
  bypassed = await startRecordingServer();
  service = await startService({
    entry: "calling-service.mjs",
    cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      NODE_USE_ENV_PROXY: "1",
      HTTP_PROXY: proxy.url,
      NO_PROXY: `127.0.0.1:${bypassed.port}`,
    },
  });
});

after(async () => {
  await service.stop();
  await Promise.all([
    receiver.close(),
    proxy.close(),
    internal.close(),
    bypassed.close(),
  ]);
});

/** Has the service make a call while serving a request of customer c-42. */
async function call(how: string, url: string, via?: string): Promise<void> {
  const q = new URLSearchParams({ how, url });
  if (via !== undefined) q.set("proxy", via);
  const res = await fetch(`${service.url}/work?${q}`, {
    headers: { "x-customer-id": "c-42" },
  });
  assert.equal(res.status, 200, await res.text());
}

describe("calls through a proxy the request does not name", () => {
  it("sends no baggage through an env proxy that is not internal, with http and fetch alike, and honours NO_PROXY", async () => {
    await call("http", `${internal.url}/http-proxied`);
    await call("fetch", `${internal.url}/fetch-proxied`);
    await call("http", `${bypassed.url}/http-direct`);
    await call("fetch", `${bypassed.url}/fetch-direct`);
    const seen = await waitFor(
      () =>
        proxy.requests.length >= 2 &&
        internal.requests.length >= 2 && [
          proxy.requests.find(
            (r) => r.target === `${internal.url}/http-proxied`,
          ),
          proxy.requests.find(
            (r) =>
              r.method === "CONNECT" &&
              r.headers["host"] === `127.0.0.1:${internal.port}`,
          ),
        ],
      { what: "both calls through the proxy" },
    );
    for (const r of [...seen, ...internal.requests]) {
      assert.ok(r, "a call through the proxy");
      assert.equal(r.headers["baggage"], undefined, JSON.stringify(r));
      assert.match(String(r.headers["traceparent"]), /^00-/);
    }
    assert.deepEqual(
      bypassed.requests.map((r) => [r.path, r.headers["baggage"]]),
      [
        ["/http-direct", "customer.id=c-42"],
        ["/fetch-direct", "customer.id=c-42"],
      ],
    );
    assert.equal(proxy.requests.length, 2, "NO_PROXY bypasses the proxy");
  });

  it("sends no baggage through an agent's proxyEnv, or an agent of its own connecting to a proxy, that is not internal", async () => {
    proxy.requests.length = 0;
    internal.requests.length = 0;
    await call("proxy-env", `${internal.url}/agent-proxy-env`, proxy.url);
    await call("proxying-agent", `${internal.url}/proxying-agent`, proxy.url);
    await waitFor(() => internal.requests.length >= 2, {
      what: "both calls",
    });
    assert.deepEqual(
      proxy.requests.map((r) => r.target),
      [`${internal.url}/agent-proxy-env`, `${internal.url}/proxying-agent`],
    );
    for (const r of [...proxy.requests, ...internal.requests]) {
      assert.equal(r.headers["baggage"], undefined, JSON.stringify(r));
      assert.match(String(r.headers["traceparent"]), /^00-/);
    }
  });

  it("sends no baggage or customer header, in clear, through a tunnel an agent opened through a proxy that is not internal", async () => {
    proxy.requests.length = 0;
    internal.requests.length = 0;
    // Each call is two requests, the second made once the first is over.
    await call("tunnelling-agent", `${internal.url}/tunnelled-1`, proxy.url);
    await call("tunnelling-agent", `${internal.url}/tunnelled-2`, proxy.url);
    await waitFor(() => internal.requests.length >= 4, {
      what: "both calls",
    });
    assert.ok(proxy.requests.length > 0, "through the proxy");
    for (const r of proxy.requests)
      assert.deepEqual(
        [r.method, r.target],
        ["CONNECT", `127.0.0.1:${internal.port}`],
      );
    assert.deepEqual(
      internal.requests.map((r) => r.path),
      [
        "/tunnelled-1",
        "/tunnelled-1-again",
        "/tunnelled-2",
        "/tunnelled-2-again",
      ],
    );
    for (const r of [...proxy.requests, ...internal.requests]) {
      assert.equal(r.headers["baggage"], undefined, JSON.stringify(r));
      assert.equal(r.headers["x-customer-id"], undefined, JSON.stringify(r));
      assert.match(String(r.headers["traceparent"]), /^00-/);
    }
  });
});
