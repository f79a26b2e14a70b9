// The threadline command as users run it: `threadline dev` as a process,
// the example shop exporting to it, then `threadline search` and
// `threadline trace` as processes, against the running viewer and against
// the store file after the viewer stopped.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import {
  freePort,
  startService,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  type RunningService,
  type Shop,
} from "@threadline/test-support";
import { Store, type TraceDetail, type TraceSummary } from "../src/index.ts";

const bin = fileURLToPath(new URL("../bin/threadline.js", import.meta.url));
const fixtures = fileURLToPath(
  new URL("../../../test/fixtures/", import.meta.url),
);
const dir = mkdtempSync(join(tmpdir(), "threadline-cli-"));
// Every suite below writes here; removed once all of them ran.
after(() => rmSync(dir, { recursive: true, force: true }));

function threadline(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, ...env },
      ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("threadline search and trace", () => {
  const db = join(dir, "store.sqlite");
  let dev: RunningService;
  let viewerUrl: string;
  let shop: Shop;

  before(async () => {
    const [otlpPort, viewerPort] = await Promise.all([freePort(), freePort()]);
    dev = await startService({
      entry: bin,
      env: {},
      ready: /viewer and API\s+http:\/\/[^:]+:(\d+)/,
      timeoutMs: 20_000,
      args: [
        "dev",
        "--db",
        db,
        "--otlp-port",
        String(otlpPort),
        "--port",
        String(viewerPort),
      ],
    });
    viewerUrl = `http://127.0.0.1:${viewerPort}`;
    const [databaseUrl, amqpUrl] = await Promise.all([
      testDatabase(),
      testBroker(),
    ]);
    shop = await startShop({
      otlpEndpoint: `http://127.0.0.1:${otlpPort}`,
      databaseUrl,
      amqpUrl,
      env: { OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_BLRP_SCHEDULE_DELAY: "100" },
    });
    for (const customer of ["c-42", "c-7", "c-42"]) {
      const res = await fetch(`${shop.gateway.url}/orders`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-customer-id": customer,
        },
        body: JSON.stringify({ item: "book", quantity: 1 }),
      });
      assert.equal(res.status, 201);
    }
    await waitFor(
      async () => {
        const r = (await (
          await fetch(`${viewerUrl}/api/search?customer=c-42`)
        ).json()) as { traces: TraceSummary[] };
        return (
          r.traces.length === 2 && r.traces.every((t) => t.spanCount === 9)
        );
      },
      { what: "both c-42 orders, complete", timeoutMs: 30_000 },
    );
  });

  after(async () => {
    await shop?.stop();
    await dev?.stop();
    await stopTestServers();
  });

  it("tells on start how to point services at a receiver on a port of its own", () => {
    const banner = dev.stdout.join("\n");
    assert.match(
      banner,
      /OTLP\/HTTP receiver\s+(http:\/\/\S+)\s+\(services need OTEL_EXPORTER_OTLP_ENDPOINT=\1\)/,
    );
    assert.doesNotMatch(banner, /default endpoint/);
  });

  it("says nothing on stderr when all is well, on every Node the packages accept", async () => {
    const help = await threadline(["--help"]);
    assert.equal(help.code, 0);
    assert.equal(help.stderr, "");
    const search = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `viewer=${viewerUrl}`,
    ]);
    assert.equal(search.code, 0, search.stderr);
    assert.equal(search.stderr, "");
    assert.deepEqual(dev.stderr, []);
  });

  it("lists a customer's traces from the running viewer", async () => {
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--backend",
      `viewer=${viewerUrl}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split("\n").slice(1);
    assert.equal(rows.length, 2, r.stdout);
    for (const row of rows) {
      assert.match(row, /gateway POST \/orders/);
      assert.match(row, /c-42/);
      assert.match(row, /gateway, orders, worker/);
    }
    assert.ok(!r.stdout.includes("c-7"));
  });

  it("prints JSON, and filters by service, operation and attribute", async () => {
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--service",
      "worker",
      "--operation",
      "UPDATE orders",
      "--attr",
      "peer.service=payments-provider",
      "--since",
      "1h",
      "--json",
      "--backend",
      `viewer=${viewerUrl}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { traces: TraceSummary[] };
    assert.equal(body.traces.length, 2);
    for (const t of body.traces) {
      assert.equal(t.customer, "c-42");
      assert.equal(t.spanCount, 9);
      assert.deepEqual(t.services, ["gateway", "orders", "worker"]);
    }
  });

  it("prints a trace as a tree with SQL, the queue hop, the third party and log lines", async () => {
    const search = JSON.parse(
      (
        await threadline([
          "search",
          "--customer",
          "c-42",
          "--json",
          "--backend",
          `viewer=${viewerUrl}`,
        ])
      ).stdout,
    ) as { traces: TraceSummary[] };
    const id = search.traces[0]!.traceId;
    const r = await threadline([
      "trace",
      id,
      "--backend",
      `viewer=${viewerUrl}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    for (const expected of [
      `trace ${id}`,
      "customer c-42",
      "9 spans",
      "SQL SELECT price_cents FROM products WHERE sku = $1",
      "SQL INSERT INTO orders",
      "publish",
      "[confirmed]",
      "process",
      "[ack]",
      "third party payments-provider: POST",
      "log info: order stored and announced",
      "log info: order paid",
    ]) {
      assert.ok(r.stdout.includes(expected), `${expected}\n${r.stdout}`);
    }
    const json = JSON.parse(
      (
        await threadline([
          "trace",
          id,
          "--json",
          "--backend",
          `viewer=${viewerUrl}`,
        ])
      ).stdout,
    ) as TraceDetail;
    assert.equal(json.spans.length, 9);
    assert.equal(json.logs.length, 5);
  });

  it("says a full page may not be all the traces that match", async () => {
    const r = await threadline([
      "search",
      "--customer",
      "c-42",
      "--limit",
      "1",
      "--backend",
      `viewer=${viewerUrl}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 2, r.stdout);
    assert.match(r.stderr, /^the newest 1 shown; more may match/);
  });

  it("finds the running viewer by itself with the local backend", async () => {
    const r = await threadline(["search", "--customer", "c-7"], {
      THREADLINE_VIEWER_URL: viewerUrl,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 2);
  });

  it("reads the store file when no viewer runs, history kept", async () => {
    await shop.stop();
    await dev.stop("SIGINT");
    const r = await threadline(["search", "--customer", "c-42", "--json"], {
      THREADLINE_DB: db,
      THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (JSON.parse(r.stdout) as { backend: string; traces: unknown[] }).traces
        .length,
      2,
    );
    assert.equal(
      (JSON.parse(r.stdout) as { backend: string }).backend,
      "local",
    );
  });

  it("explains bad usage", async () => {
    const r = await threadline(["trace", "not-a-trace"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /a trace id is 32 hex characters/);
    const s = await threadline(["search", "--since", "yesterday"]);
    assert.equal(s.code, 2);
    assert.match(s.stderr, /not a duration/);
    const none = await threadline(["search", "--customer", "x"], {
      THREADLINE_DB: join(dir, "missing.sqlite"),
      THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
    });
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /no local store .* start one with `npx threadline dev`/,
    );
  });
});

describe("threadline trace and search on a request still running", () => {
  it("print it from its log lines, its spans not sent yet", async () => {
    const db = join(dir, "running.sqlite");
    const store = new Store({ path: db });
    const traceId = "7".repeat(32);
    const now = Date.now() * 1000;
    store.ingestLogs(
      ["gateway", "payments"].map((service, i) => ({
        resource: { "service.name": service },
        scopes: [
          {
            scope: { name: "pino", version: "" },
            logs: [
              {
                timeUs: now + i * 1000,
                observedUs: now + i * 1000,
                severityNumber: 9,
                severityText: "info",
                body: `${service} waiting`,
                attributes: { "customer.id": "c-hang" },
                droppedAttributesCount: 0,
                traceId,
                spanId: "e".repeat(16),
                flags: 1,
                eventName: "",
              },
            ],
          },
        ],
      })),
    );
    await store.close();
    const env = {
      THREADLINE_DB: db,
      THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
    };
    const r = await threadline(["trace", traceId], env);
    assert.equal(r.code, 0, r.stderr);
    for (const expected of [
      "customer c-hang",
      "in progress: no span yet, 2 log lines",
      "gateway: info: gateway waiting",
      "payments: info: payments waiting",
    ])
      assert.ok(r.stdout.includes(expected), `${expected}\n${r.stdout}`);
    const search = await threadline(
      ["search", "--customer", "c-hang", "--since", "1h"],
      env,
    );
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stdout, /gateway \(in progress\).*c-hang.*7{32}/);
  });
});

describe("threadline trace on a broken trace", () => {
  it("prints spans that are their own parent or in a parent cycle", async () => {
    const db = join(dir, "cycles.sqlite");
    const store = new Store({ path: db });
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const span = (
      spanId: string,
      parentSpanId: string,
      name: string,
      at: number,
    ) => ({
      traceId,
      spanId,
      parentSpanId,
      traceState: "",
      name,
      kind: 1,
      startUs: Date.now() * 1000 + at,
      endUs: Date.now() * 1000 + at + 1000,
      attributes: {},
      events: [],
      links: [],
      statusCode: 0,
      statusMessage: "",
      flags: 1,
    });
    store.ingestSpans([
      {
        resource: { "service.name": "broken" },
        scopes: [
          {
            scope: { name: "t", version: "" },
            spans: [
              span("a".repeat(16), "a".repeat(16), "its own parent", 0),
              span("b".repeat(16), "a".repeat(16), "child of that", 100),
              span("c".repeat(16), "d".repeat(16), "cycle one", 200),
              span("d".repeat(16), "c".repeat(16), "cycle two", 300),
            ],
          },
        ],
      },
    ]);
    await store.close();
    const r = await threadline(["trace", traceId], {
      THREADLINE_DB: db,
      THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /4 spans/);
    for (const name of [
      "its own parent",
      "child of that",
      "cycle one",
      "cycle two",
    ])
      assert.equal(
        r.stdout.split(name).length - 1,
        1,
        `${name} once\n${r.stdout}`,
      );
  });
});

describe(
  "threadline trace through a viewer that answers slowly",
  {
    concurrency: true,
  },
  () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    /** A stand-in viewer answering /api/traces/<id> with `answer`. */
    async function standIn(
      answer: (res: http.ServerResponse) => void,
    ): Promise<{ url: string; close: () => void }> {
      const server = http.createServer((req, res) => {
        req.resume();
        answer(res);
      });
      await new Promise<void>((resolve) =>
        server.listen(0, "127.0.0.1", resolve),
      );
      const { port } = server.address() as net.AddressInfo;
      return {
        url: `http://127.0.0.1:${port}`,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      };
    }

    it("prints a large trace whole however long it takes to send, as long as it keeps coming", async () => {
      const start = Date.now() * 1000;
      const spans = Array.from({ length: 3000 }, (_, i) => ({
        traceId,
        spanId: (i + 1).toString(16).padStart(16, "0"),
        parentSpanId: i === 0 ? "" : "1".padStart(16, "0"),
        service: "big",
        name: i === 0 ? "GET /report" : `step ${i}`,
        kind: i === 0 ? 2 : 1,
        startUs: start + i * 10,
        endUs: start + i * 10 + 5,
        statusCode: 0,
        statusMessage: "",
        customer: null,
        attributes: {},
        events: [],
        links: [],
        resource: { "service.name": "big" },
        scope: "t",
      }));
      const body = Buffer.from(JSON.stringify({ traceId, spans, logs: [] }));
      // Seven slices two seconds apart: longer in all than the 10 s a viewer
      // has to start answering, never as long between two slices.
      const slices = 7;
      const viewer = await standIn((res) => {
        res.writeHead(200, { "content-type": "application/json" });
        let i = 0;
        const next = () => {
          const end = Math.ceil((body.length * (i + 1)) / slices);
          res.write(body.subarray(Math.ceil((body.length * i) / slices), end));
          if (++i < slices) setTimeout(next, 2000);
          else res.end();
        };
        next();
      });
      try {
        const r = await threadline([
          "trace",
          traceId,
          "--backend",
          `viewer=${viewer.url}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /3000 spans/);
        assert.match(r.stdout, /step 2999\b/);
      } finally {
        viewer.close();
      }
    });

    it("says a viewer that does not answer did not answer in time, not that none runs", async () => {
      const viewer = await standIn(() => {});
      try {
        const r = await threadline([
          "trace",
          traceId,
          "--backend",
          `viewer=${viewer.url}`,
        ]);
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          new RegExp(
            `the threadline viewer at ${viewer.url} did not answer within 10 s`,
          ),
        );
        assert.doesNotMatch(r.stderr, /running\?/);
      } finally {
        viewer.close();
      }
    });
  },
);

describe("threadline trace and search on text a request wrote", () => {
  it("print its control characters as escapes, and --json prints it as it was", async () => {
    const db = join(dir, "escapes.sqlite");
    const store = new Store({ path: db });
    const traceId = "7c2bd0e4a5e84f6b9d3f1a2b3c4d5e6f";
    const spanId = "1f282bde4b0a1c18";
    const user =
      "\u001b]0;HACKED\u0007\u001b[2J\n└─ payments  client  POST https://api.stripe.com/v1/refunds -> 200  12 ms";
    const now = Date.now() * 1000;
    store.ingestSpans([
      {
        resource: { "service.name": "shop" },
        scopes: [
          {
            scope: { name: "t", version: "" },
            spans: [
              {
                traceId,
                spanId,
                parentSpanId: "",
                traceState: "",
                name: `POST /login ${user}`,
                kind: 2,
                startUs: now,
                endUs: now + 1000,
                attributes: { "customer.id": "c-esc" },
                events: [],
                links: [],
                statusCode: 0,
                statusMessage: "",
                flags: 1,
              },
            ],
          },
        ],
      },
    ]);
    store.ingestLogs([
      {
        resource: { "service.name": "shop" },
        scopes: [
          {
            scope: { name: "t", version: "" },
            logs: [
              {
                timeUs: now + 100,
                observedUs: now + 100,
                severityNumber: 13,
                severityText: "warn",
                body: `login failed for ${user}`,
                attributes: {},
                droppedAttributesCount: 0,
                traceId,
                spanId,
                flags: 1,
                eventName: "",
              },
            ],
          },
        ],
      },
    ]);
    await store.close();
    const env = {
      THREADLINE_DB: db,
      THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
    };
    const control = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
    const tree = await threadline(["trace", traceId], env);
    assert.equal(tree.code, 0, tree.stderr);
    assert.doesNotMatch(tree.stdout, control, JSON.stringify(tree.stdout));
    // The header, the span and its log line: no line of the request's own.
    assert.equal(tree.stdout.split("\n").length - 1, 3, tree.stdout);
    assert.ok(
      tree.stdout.includes(
        "warn: login failed for \\x1b]0;HACKED\\x07\\x1b[2J\\n└─ payments",
      ),
      tree.stdout,
    );
    const table = await threadline(["search", "--customer", "c-esc"], env);
    assert.equal(table.code, 0, table.stderr);
    assert.doesNotMatch(table.stdout, control, JSON.stringify(table.stdout));
    assert.equal(table.stdout.split("\n").length - 1, 2, table.stdout);
    const exact = await threadline(["trace", traceId, "--json"], env);
    assert.equal(exact.code, 0, exact.stderr);
    const t = JSON.parse(exact.stdout) as TraceDetail;
    assert.equal(t.logs[0]?.body, `login failed for ${user}`);
    assert.equal(t.spans[0]?.name, `POST /login ${user}`);
  });
});

describe("threadline dev given a --db that is not a store", () => {
  it("names the file it could not use", async () => {
    const notDb = join(dir, "notes.txt");
    writeFileSync(notDb, "hello, this is not a database\n".repeat(10));
    const folder = join(dir, "a-folder");
    mkdirSync(folder);
    for (const [db, reason] of [
      [notDb, /file is not a database/],
      [folder, /unable to open database file/],
    ] as const) {
      const r = await threadline([
        "dev",
        "--db",
        db,
        "--otlp-port",
        "0",
        "--port",
        "0",
      ]);
      assert.equal(r.code, 1, r.stdout);
      assert.ok(
        r.stderr.startsWith(
          `threadline: ${db} is not a usable threadline store: `,
        ),
        r.stderr,
      );
      assert.match(r.stderr, reason);
    }
  });
});

describe("threadline dev with no configuration anywhere", () => {
  it("receives what a service exports with the SDK's defaults", async () => {
    const db = join(dir, "defaults.sqlite");
    const dev = await startService({
      entry: bin,
      env: {},
      ready: /viewer and API\s+http:\/\/[^:]+:(\d+)/,
      args: ["dev", "--db", db],
    });
    try {
      assert.equal(dev.port, 4320);
      // The service sets no OTEL_EXPORTER_OTLP_ENDPOINT: the default is the dev server.
      const app = await startService({
        entry: "hello.cjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: { OTEL_SERVICE_NAME: "defaults" },
      });
      try {
        await fetch(`${app.url}/hello`, {
          headers: { "x-customer-id": "c-0" },
        });
        await waitFor(
          async () =>
            (
              (await (
                await fetch("http://127.0.0.1:4320/api/search?customer=c-0")
              ).json()) as { traces: unknown[] }
            ).traces.length === 1,
          { what: "the trace in the viewer" },
        );
      } finally {
        await app.stop();
      }
    } finally {
      await dev.stop();
    }
  });
});

describe("threadline dev and search run with Threadline loaded", () => {
  it("trace neither the viewer's servers nor their own calls, nor report metrics", async () => {
    const [otlpPort, viewerPort] = await Promise.all([freePort(), freePort()]);
    // What a developer's shell sets to trace every service started from it:
    // the CLI gets it too, and would export to itself.
    const loaded = {
      NODE_OPTIONS: "--import @threadline/node/register",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "100",
    };
    const dev = await startService({
      entry: bin,
      cwd: fixtures,
      env: loaded,
      ready: /viewer and API\s+http:\/\/[^:]+:(\d+)/,
      args: [
        "dev",
        "--db",
        join(dir, "loaded.sqlite"),
        "--otlp-port",
        String(otlpPort),
        "--port",
        String(viewerPort),
      ],
    });
    const viewerUrl = `http://127.0.0.1:${viewerPort}`;
    const stats = async () =>
      (await (await fetch(`${viewerUrl}/api/stats`)).json()) as {
        spans: number;
        received: { metricRequests: number };
      };
    try {
      const r = await new Promise<{ code: number | null; stderr: string }>(
        (resolve) => {
          const child = spawn(
            process.execPath,
            [bin, "search", "--backend", `viewer=${viewerUrl}`],
            { cwd: fixtures, env: { ...process.env, ...loaded } },
          );
          let stderr = "";
          child.stderr
            .setEncoding("utf8")
            .on("data", (c: string) => (stderr += c));
          child.on("close", (code) => resolve({ code, stderr }));
        },
      );
      assert.equal(r.code, 0, r.stderr);
      // Polled as the viewer's page does, for longer than a batch takes.
      for (let i = 0; i < 15; i++) {
        assert.equal((await stats()).spans, 0, dev.stderr.join("\n"));
        await new Promise((done) => setTimeout(done, 100));
      }
      assert.equal((await stats()).spans, 0);
      // Nor does Threadline start in them: no metrics of their own either.
      assert.equal((await stats()).received.metricRequests, 0);
    } finally {
      await dev.stop();
    }
  });
});

/** Sends one request as written, target and all, and returns the raw answer. */
function rawRequest(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () =>
      socket.write(
        `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      ),
    );
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (answer += c));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

describe("threadline dev given a request target that is not a URL", () => {
  it("answers 400 on both ports and goes on receiving and serving", async () => {
    const [otlpPort, viewerPort] = await Promise.all([freePort(), freePort()]);
    const dev = await startService({
      entry: bin,
      env: {},
      ready: /viewer and API\s+http:\/\/[^:]+:(\d+)/,
      args: [
        "dev",
        "--memory",
        "--otlp-port",
        String(otlpPort),
        "--port",
        String(viewerPort),
      ],
    });
    try {
      // A web page can send this one with fetch(…, { mode: "no-cors" }).
      for (const port of [otlpPort, viewerPort]) {
        const answer = await rawRequest(port, "//[");
        assert.match(answer, /^HTTP\/1\.1 400 /, answer);
        assert.match(answer, /not a valid URL/);
      }
      const traceId = "5b8efff798038103d269b633813fc60c";
      const res = await fetch(`http://127.0.0.1:${otlpPort}/v1/traces`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          resourceSpans: [
            {
              resource: {
                attributes: [
                  { key: "service.name", value: { stringValue: "shop" } },
                ],
              },
              scopeSpans: [
                {
                  spans: [
                    {
                      traceId,
                      spanId: "eee19b7ec3c1b174",
                      name: "GET /after",
                      kind: 2,
                      startTimeUnixNano: String(Date.now() * 1e6),
                      endTimeUnixNano: String(Date.now() * 1e6 + 1e6),
                      attributes: [
                        { key: "customer.id", value: { stringValue: "c-400" } },
                      ],
                    },
                  ],
                },
              ],
            },
          ],
        }),
      });
      assert.equal(res.status, 200, await res.text());
      await waitFor(
        async () =>
          (
            (await (
              await fetch(
                `http://127.0.0.1:${viewerPort}/api/search?customer=c-400`,
              )
            ).json()) as { traces: TraceSummary[] }
          ).traces.some((t) => t.traceId === traceId),
        { what: "the trace sent after the bad requests, in the viewer" },
      );
      assert.equal(dev.child.exitCode, null);
      assert.deepEqual(dev.stderr, []);
    } finally {
      await dev.stop();
    }
  });
});

describe("threadline search and watch against a viewer started with a token", () => {
  it("say to set THREADLINE_VIEWER_TOKEN when it is missing or wrong, and work with it", async () => {
    const [otlpPort, viewerPort] = await Promise.all([freePort(), freePort()]);
    const dev = await startService({
      entry: bin,
      env: { THREADLINE_VIEWER_TOKEN: "" },
      ready: /viewer and API\s+http:\/\/[^:]+:(\d+)/,
      args: [
        "dev",
        "--memory",
        "--token",
        "s3cret",
        "--otlp-port",
        String(otlpPort),
        "--port",
        String(viewerPort),
      ],
    });
    const viewer = `http://127.0.0.1:${viewerPort}`;
    const search = ["search", "--customer", "c-1", "--backend"];
    try {
      for (const [token, said] of [
        ["", /requires a token: set THREADLINE_VIEWER_TOKEN/],
        ["wrong", /refused the token in THREADLINE_VIEWER_TOKEN/],
      ] as const) {
        const env = { THREADLINE_VIEWER_TOKEN: token };
        const found = await threadline([...search, `viewer=${viewer}`], env);
        assert.equal(found.code, 1, found.stderr);
        assert.match(found.stderr, said);
        const watched = await threadline(["watch", "--viewer", viewer], env);
        assert.equal(watched.code, 1, watched.stderr);
        assert.match(watched.stderr, said);
      }
      const env = { THREADLINE_VIEWER_TOKEN: "s3cret" };
      const found = await threadline([...search, `viewer=${viewer}`], env);
      assert.equal(found.code, 0, found.stderr);
      const watched = await threadline(["watch", "--viewer", viewer], env);
      assert.equal(watched.code, 0, watched.stderr);
    } finally {
      await dev.stop();
    }
  });
});

describe("threadline watch", () => {
  it("edits a fleet's watch-list file that services read", async () => {
    const file = join(dir, "watch.json");
    const set = await threadline([
      "watch",
      "c-42",
      "--for",
      "45m",
      "--file",
      file,
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /watching c-42 \(file .*watch\.json\)/);
    assert.match(set.stdout, /c-42\s+debug\s+\S+ \S+\s+45m/);
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      watch: Array<{ customer: string; until: string; level: string }>;
    };
    assert.deepEqual(
      doc.watch.map((e) => [e.customer, e.level]),
      [["c-42", "debug"]],
    );
    await threadline([
      "watch",
      "c-7",
      "--for",
      "1h",
      "--level",
      "trace",
      "--file",
      file,
    ]);
    const listed = await threadline(["watch", "--file", file, "--json"]);
    assert.deepEqual(
      (
        JSON.parse(listed.stdout) as {
          watch: Array<{ customer: string; level: string }>;
        }
      ).watch.map((e) => [e.customer, e.level]),
      [
        ["c-42", "debug"],
        ["c-7", "trace"],
      ],
    );
    const stopped = await threadline(["unwatch", "c-42", "--file", file]);
    assert.equal(stopped.code, 0);
    assert.match(stopped.stdout, /stopped watching c-42/);
    const missing = await threadline(["unwatch", "c-42", "--file", file]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /c-42 was not watched/);
  });

  it("names the missing directory of a watch-list file, and makes nothing there", async () => {
    const absent = join(dir, "no-such-dir");
    const file = join(absent, "watch.json");
    for (const args of [
      ["watch", "c-42", "--file", file],
      ["unwatch", "c-42", "--file", file],
    ]) {
      const r = await threadline(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.equal(
        r.stderr.trim(),
        `threadline: cannot edit the watch list ${file}: its directory ${absent} does not exist`,
      );
    }
    assert.equal(existsSync(absent), false);
  });

  it("keeps the file's permissions and the fields it does not know", async () => {
    // Customer ids are kept from other users; an entry carries the ticket
    // that asked for it, the document a note for whoever edits it.
    const file = join(dir, "private-watch.json");
    const until = new Date(Date.now() + 3_600_000).toISOString();
    writeFileSync(
      file,
      JSON.stringify({
        note: "see the on-call runbook",
        watch: [{ customer: "c-42", until, level: "debug", ticket: "T-1" }],
      }),
    );
    chmodSync(file, 0o600);
    const set = await threadline(["watch", "c-7", "--file", file]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      note: string;
      watch: Array<Record<string, string>>;
    };
    assert.equal(doc.note, "see the on-call runbook");
    assert.deepEqual(
      doc.watch.find((e) => e["customer"] === "c-42"),
      { customer: "c-42", until, level: "debug", ticket: "T-1" },
    );
    assert.ok(doc.watch.some((e) => e["customer"] === "c-7"));
    const stopped = await threadline(["unwatch", "c-7", "--file", file]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), {
      note: "see the on-call runbook",
      watch: [{ customer: "c-42", until, level: "debug", ticket: "T-1" }],
    });
  });

  it(
    "keeps the file's owner and group, or leaves it as it was",
    {
      skip:
        process.getuid?.() !== 0 &&
        "giving a file another owner needs root, and this is not",
    },
    async () => {
      // A web server reads the file through its group, or runs as the
      // file's owner: rewritten as root, it could read it no more.
      const file = join(dir, "served-watch.json");
      const until = new Date(Date.now() + 3_600_000).toISOString();
      const text = `${JSON.stringify({ watch: [{ customer: "c-42", until }] })}\n`;
      writeFileSync(file, text);
      chownSync(file, 65534, 65533);
      chmodSync(file, 0o640);
      const set = await threadline(["watch", "c-7", "--file", file]);
      assert.equal(set.code, 0, set.stderr);
      const st = statSync(file);
      assert.deepEqual(
        [st.uid, st.gid, st.mode & 0o7777],
        [65534, 65533, 0o640],
      );
      assert.match(readFileSync(file, "utf8"), /"c-7"/);
      const stopped = await threadline(["unwatch", "c-7", "--file", file]);
      assert.equal(stopped.code, 0, stopped.stderr);
      const after = statSync(file);
      assert.deepEqual(
        [after.uid, after.gid, after.mode & 0o7777],
        [65534, 65533, 0o640],
      );
      // A user who may not give a file to another (root without the
      // capability stands in for one) is refused, the file untouched.
      if (spawnSync("setpriv", ["--version"]).error) return;
      writeFileSync(file, text);
      const before = statSync(file);
      const refused = spawnSync(
        "setpriv",
        [
          "--bounding-set=-chown",
          "--",
          process.execPath,
          bin,
          "watch",
          "c-7",
          "--file",
          file,
        ],
        { encoding: "utf8" },
      );
      assert.equal(refused.status, 1, refused.stdout);
      assert.match(
        refused.stderr,
        /owned by uid 65534 and gid 65533.*it was left as it was: edit it as its owner or as root/,
      );
      const kept = statSync(file);
      assert.deepEqual(
        [kept.uid, kept.gid, kept.mode & 0o7777, kept.ino],
        [65534, 65533, 0o640, before.ino],
      );
      assert.equal(readFileSync(file, "utf8"), text);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.startsWith("served-watch.json.")),
        [],
      );
    },
  );

  it("lists and unwatches a file naming more customers than are watched at once", async () => {
    // Written while some of them had expired, or by hand: services refuse
    // it until it is within the limit, and unwatching is how it gets there.
    const file = join(dir, "full-watch.json");
    const until = new Date(Date.now() + 3_600_000).toISOString();
    writeFileSync(
      file,
      JSON.stringify({
        watch: Array.from({ length: 101 }, (_, i) => ({
          customer: `c-${i}`,
          until,
        })),
      }),
    );
    for (const customer of ["c-0", "c-new"]) {
      const more = await threadline(["watch", customer, "--file", file]);
      assert.equal(more.code, 1, customer);
      assert.match(more.stderr, /100 customers are watched already/);
    }
    const listed = await threadline(["watch", "--file", file]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split("\n").length, 102);
    assert.match(
      listed.stderr,
      /names 101 customers, more than the 100 watched at once: services refuse it/,
    );
    const stopped = await threadline(["unwatch", "c-0", "--file", file]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped watching c-0/);
    assert.equal(stopped.stderr, "");
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      watch: Array<{ customer: string }>;
    };
    assert.equal(doc.watch.length, 100);
    assert.ok(!doc.watch.some((e) => e.customer === "c-0"));
  });

  it("edits a file that begins with a byte order mark", async () => {
    // As some Windows editors save UTF-8.
    const file = join(dir, "bom-watch.json");
    const until = new Date(Date.now() + 3_600_000).toISOString();
    writeFileSync(
      file,
      `\uFEFF${JSON.stringify({ note: "n", watch: [{ customer: "c-42", until }] })}`,
    );
    const listed = await threadline(["watch", "--file", file]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /c-42/);
    const set = await threadline(["watch", "c-7", "--file", file]);
    assert.equal(set.code, 0, set.stderr);
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      note: string;
      watch: Array<{ customer: string }>;
    };
    assert.equal(doc.note, "n");
    assert.deepEqual(doc.watch.map((e) => e.customer).sort(), ["c-42", "c-7"]);
  });

  it("keeps every customer when several edit the file at once", async () => {
    // On-call engineers, or a script, each add a customer at the same
    // moment: each edit reads the file and writes it whole, so one made
    // between another's read and write was lost, though both said done.
    const file = join(dir, "shared-watch.json");
    const customers = Array.from({ length: 8 }, (_, i) => `c-${i}`);
    const runs = await Promise.all(
      customers.map((c) =>
        threadline(["watch", c, "--for", "10m", "--file", file]),
      ),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      watch: Array<{ customer: string }>;
    };
    assert.deepEqual(doc.watch.map((e) => e.customer).sort(), customers);
    // Unwatching all at once leaves nobody, and no lock behind.
    const stops = await Promise.all(
      customers.map((c) => threadline(["unwatch", c, "--file", file])),
    );
    for (const r of stops) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { watch: [] });
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("shared-watch.json.")),
      [],
    );
  });

  it("takes over the lock an edit that was killed left behind", async () => {
    const file = join(dir, "left-watch.json");
    const lock = `${file}.lock`;
    writeFileSync(lock, "12345\n");
    const then = new Date(Date.now() - 60_000);
    utimesSync(lock, then, then);
    const set = await threadline(["watch", "c-7", "--file", file]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(readFileSync(file, "utf8"), /"c-7"/);
    assert.equal(existsSync(lock), false);
  });

  it("waits for an edit holding the lock, then says so, leaving its lock", async () => {
    // A slow filesystem can keep an edit longer than the wait: its lock is
    // not taken from under it, and the edit that gave up says which file
    // to remove if no edit is running.
    const file = join(dir, "held-watch.json");
    const lock = `${file}.lock`;
    writeFileSync(lock, "held\n");
    const set = await threadline(["watch", "c-7", "--file", file]);
    assert.equal(set.code, 1, set.stdout);
    assert.match(
      set.stderr,
      /held-watch\.json\.lock was held by another edit .* for the 10s this one waited; try again, or remove .*held-watch\.json\.lock if no threadline watch or unwatch is running/,
    );
    assert.equal(readFileSync(lock, "utf8"), "held\n");
    assert.equal(existsSync(file), false);
    rmSync(lock);
  });

  it("takes over a lock left as a dangling link, without spinning", async () => {
    // The age of a link is its own: following it found nothing, and the
    // edit went straight back to trying, at full speed and for ever.
    const file = join(dir, "dangling-watch.json");
    const lock = `${file}.lock`;
    symlinkSync(join(dir, "no-such-dir", "x"), lock);
    const then = new Date(Date.now() - 60_000);
    lutimesSync(lock, then, then);
    const started = Date.now();
    const set = await threadline(["watch", "c-7", "--file", file], {}, 20_000);
    assert.equal(set.code, 0, set.stderr);
    assert.ok(Date.now() - started < 10_000);
    assert.match(readFileSync(file, "utf8"), /"c-7"/);
    assert.equal(existsSync(lock), false);
  });

  it("keeps every customer when several take over a killed edit's lock at once", async () => {
    // Edits that all found the old lock stale: one removed it and took its
    // own, which another, its look at the old one made before, then
    // removed as stale too, and both rewrote the list at once. Threads
    // rather than processes, started together, so that they meet the old
    // lock at the same moment as often as a test can make them.
    const watchTs = new URL("../src/watch.ts", import.meta.url).href;
    const customers = Array.from({ length: 8 }, (_, i) => `c-${i}`);
    for (let round = 0; round < 30; round++) {
      const file = join(dir, `taken-watch-${round}.json`);
      writeFileSync(`${file}.lock`, "12345\n");
      const then = new Date(Date.now() - 300_000);
      utimesSync(`${file}.lock`, then, then);
      const go = new Int32Array(new SharedArrayBuffer(4));
      const workers = customers.map(
        (customer) =>
          new Worker(
            `const { workerData, parentPort } = require("node:worker_threads");
            import(workerData.watchTs).then(async ({ FileWatchTarget }) => {
              const target = new FileWatchTarget(workerData.file);
              Atomics.wait(workerData.go, 0, 0);
              try {
                await target.watch(workerData.customer, 600000, 20);
                parentPort.postMessage("ok");
              } catch (err) {
                parentPort.postMessage(String(err));
              }
            });`,
            { eval: true, workerData: { watchTs, file, customer, go } },
          ),
      );
      const results = workers.map(
        (w) =>
          new Promise<unknown>((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
          }),
      );
      // Every thread loaded and waiting, then all let go together.
      await new Promise((r) => setTimeout(r, 500));
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      assert.deepEqual(
        await Promise.all(results),
        customers.map(() => "ok"),
      );
      await Promise.all(workers.map((w) => w.terminate()));
      const doc = JSON.parse(readFileSync(file, "utf8")) as {
        watch: Array<{ customer: string }>;
      };
      assert.deepEqual(
        doc.watch.map((e) => e.customer).sort(),
        customers,
        `round ${round}`,
      );
      // No lock, and no file the takeover used, left behind.
      assert.deepEqual(
        readdirSync(dir).filter((f) =>
          f.startsWith(`taken-watch-${round}.json.`),
        ),
        [],
      );
    }
  });

  it("edits the file a link points to, keeping the link", async () => {
    // A mounted or deployed file is often reached through a link.
    const real = join(dir, "watch-lists");
    mkdirSync(real);
    const file = join(real, "watch.json");
    writeFileSync(file, JSON.stringify({ watch: [] }));
    const link = join(dir, "linked-watch.json");
    symlinkSync("watch-lists/watch.json", link);
    const set = await threadline(["watch", "c-7", "--file", link]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(readlinkSync(link), "watch-lists/watch.json");
    assert.match(readFileSync(file, "utf8"), /"c-7"/);
    const stopped = await threadline(["unwatch", "c-7", "--file", link]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(readlinkSync(link), "watch-lists/watch.json");
    assert.doesNotMatch(readFileSync(file, "utf8"), /"c-7"/);
    // A link to a file not made yet: the file is made where it points.
    const ahead = join(dir, "ahead-watch.json");
    symlinkSync("watch-lists/new-watch.json", ahead);
    const first = await threadline(["watch", "c-7", "--file", ahead]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(readlinkSync(ahead), "watch-lists/new-watch.json");
    assert.match(readFileSync(join(real, "new-watch.json"), "utf8"), /"c-7"/);
    assert.deepEqual(readdirSync(real).sort(), [
      "new-watch.json",
      "watch.json",
    ]);
  });

  it("explains bad usage and an absent viewer", async () => {
    const bad = await threadline(["watch", "c 42"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a customer id/);
    const long = await threadline([
      "watch",
      "c-42",
      "--for",
      "30d",
      "--file",
      join(dir, "w.json"),
    ]);
    assert.equal(long.code, 2);
    assert.match(long.stderr, /at most 7d/);
    for (const [args, problem] of [
      [["--for", "30"], /needs a unit, like 30m/],
      [["--for", "0.5s"], /at least 1s/],
      [["c-11"], /one customer at a time: c-11 left over/],
    ] as const) {
      const r = await threadline([
        "watch",
        "c-42",
        ...args,
        "--file",
        join(dir, "w.json"),
      ]);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, problem);
    }
    for (const args of [
      ["--for", "5m"],
      ["--level", "trace"],
    ]) {
      const r = await threadline([
        "unwatch",
        "c-42",
        ...args,
        "--file",
        join(dir, "w.json"),
      ]);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /unwatch takes no --for or --level/);
    }
    for (const limit of ["0", "1001", "ten"]) {
      const r = await threadline(["search", "--limit", limit]);
      assert.equal(r.code, 2, limit);
      assert.match(r.stderr, /--limit must be a whole number from 1 to 1000/);
    }
    // An empty filter would match everything locally and nothing remotely;
    // an empty time or count would be skipped without a word.
    for (const option of [
      "--customer",
      "--service",
      "--operation",
      "--since",
      "--min-duration",
      "--from",
      "--to",
      "--limit",
    ]) {
      const r = await threadline(["search", option, " "]);
      assert.equal(r.code, 2, option);
      assert.match(r.stderr, new RegExp(`${option} needs a value`));
    }
    // A bare number would be milliseconds: --since 30 is not half an hour.
    for (const option of ["--since", "--min-duration"]) {
      const r = await threadline(["search", option, "30"]);
      assert.equal(r.code, 2, option);
      assert.match(r.stderr, new RegExp(`${option} "30" needs a unit`));
    }
    // A store's age with no unit would have been milliseconds: everything.
    const age = await threadline(["dev", "--memory", "--max-age", "30"]);
    assert.equal(age.code, 2);
    assert.match(age.stderr, /--max-age "30" needs a unit/);
    // A store smaller than its own tables would be emptied at every prune.
    for (const size of ["0", "100kb"]) {
      const r = await threadline(["dev", "--memory", "--max-size", size]);
      assert.equal(r.code, 2, size);
      assert.match(r.stderr, /--max-size must be at least 1MB/);
    }
    for (const port of ["", "0x1f90", "1e3", " 80"]) {
      const r = await threadline(["dev", "--memory", "--port", port]);
      assert.equal(r.code, 2, JSON.stringify(port));
      assert.match(r.stderr, /is not a port/);
    }
    const level = await threadline([
      "watch",
      "c-42",
      "--level",
      "info",
      "--file",
      join(dir, "w.json"),
    ]);
    assert.equal(level.code, 2);
    const none = await threadline([
      "watch",
      "c-42",
      "--viewer",
      "http://127.0.0.1:9",
    ]);
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /no threadline viewer answers at http:\/\/127\.0\.0\.1:9/,
    );
  });
});

describe("threadline <command> --help", () => {
  it(
    "prints that command's usage and exits 0",
    { timeout: 30_000 },
    async () => {
      for (const [command, usage, option] of [
        ["dev", /^ {2}threadline dev \[options\]/, /--otlp-port/],
        ["search", /^ {2}threadline search /, /--backend jaeger=/],
        ["search", /--from <time>/, /--to <time>/],
        ["search", /user:password in the URL/, /THREADLINE_JAEGER_TOKEN/],
        ["trace", /--json/, /--db <file>/],
        ["trace", /^ {2}threadline trace <trace-id>/, /--backend jaeger=/],
        ["watch", /^ {2}threadline watch <customer>/, /--file <path>/],
        ["watch", /--viewer <url>/, /--json/],
        ["unwatch", /^ {2}threadline watch <customer>/, /threadline unwatch/],
      ] as const) {
        for (const flag of ["--help", "-h"]) {
          const r = await threadline([command, flag]);
          assert.equal(r.code, 0, `${command} ${flag}: ${r.stderr}`);
          assert.equal(r.stderr, "");
          assert.match(r.stdout, usage);
          assert.match(r.stdout, option);
        }
      }
      // Asked with other options, help is all that happens.
      const r = await threadline(["watch", "c-42", "--help"], {
        THREADLINE_VIEWER_URL: "http://127.0.0.1:9",
      });
      assert.equal(r.code, 0);
      assert.doesNotMatch(r.stdout, /watching c-42/);
    },
  );
});
