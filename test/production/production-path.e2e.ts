// The production path, end to end, against real servers started by
// scripts/test-production.mjs: the example shop exports to an agent
// Collector, which routes by trace id to the gateway Collector, which tail-
// samples and stores traces in Jaeger (on Elasticsearch storage) and ECS
// documents in Elasticsearch. Run with `npm run test:production`.
//
// c-42 is on the services' watch list (a fleet's watch-list file), c-1007 is
// listed in the gateway's own configuration, c-9's order is declined by the
// payments provider (an error), c-77's takes the provider a second (slow),
// and forty other customers order normally,
// of whom the gateway keeps about one in ten.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  ElasticsearchBackend,
  JaegerBackend,
  jaegerApiV3,
  type TraceSummary,
} from "@threadline/cli";
import {
  cleanEnv,
  freePort,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  type Shop,
} from "@threadline/test-support";

function need(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(
      `${name} is not set: run this file with npm run test:production`,
    );
  return v;
}
const agentUrl = need("THREADLINE_E2E_AGENT_URL");
const jaegerUrl = need("THREADLINE_E2E_JAEGER_URL");
const jaegerGrpcUrl = need("THREADLINE_E2E_JAEGER_GRPC_URL");
const esUrl = need("THREADLINE_E2E_ELASTICSEARCH_URL");
const tailPercent = Number(need("THREADLINE_E2E_TAIL_PERCENT"));

const cli = join(
  dirname(
    createRequire(import.meta.url).resolve("@threadline/cli/package.json"),
  ),
  "bin/threadline.js",
);
const run = promisify(execFile);
const threadline = (...args: string[]) =>
  run(process.execPath, [cli, ...args], {
    env: cleanEnv() as NodeJS.ProcessEnv,
  });

/**
 * `threadline search --customer <customer> ... --json` against `backend`,
 * asked again until `done` holds of its traces or 30 s have passed: the
 * last answer, for the caller's assertions to judge either way.
 */
async function searchUntil(
  customer: string,
  backend: string,
  done: (traces: TraceSummary[]) => boolean,
  filter: readonly string[] = [],
): Promise<{ traces: TraceSummary[]; stderr: string }> {
  let last = { traces: [] as TraceSummary[], stderr: "" };
  await waitFor(
    async () => {
      const r = await threadline(
        "search",
        "--customer",
        customer,
        ...filter,
        "--json",
        "--backend",
        backend,
      );
      const { traces } = JSON.parse(r.stdout) as { traces: TraceSummary[] };
      last = { traces, stderr: r.stderr };
      return done(traces);
    },
    { what: `${customer}'s traces from ${backend}`, timeoutMs: 30_000 },
  ).catch(() => undefined);
  return last;
}

const ORDINARY = 40;
const SERVICES = ["gateway", "orders", "worker"];

async function order(
  shop: Shop,
  customer: string,
  item: string,
  quantity = 2,
): Promise<void> {
  const res = await fetch(`${shop.gateway.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-customer-id": customer },
    body: JSON.stringify({ item, quantity }),
  });
  await res.text();
  assert.equal(res.status, 201);
}

async function es(path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${esUrl}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startMs: number;
  durationMs: number;
  error?: boolean;
  /** The error's status message. */
  message?: string;
  attributes?: Record<string, string | number>;
}

/** Attributes as OTLP/JSON writes them: a number as an integer. */
const otlpAttributes = (a: Record<string, string | number> = {}) =>
  Object.entries(a).map(([key, v]) => ({
    key,
    value: typeof v === "number" ? { intValue: String(v) } : { stringValue: v },
  }));

/** Spans of one service, sent to the agent as a service's SDK would. */
async function send(service: string, spans: OtlpSpan[]): Promise<void> {
  const ns = (ms: number) => String(BigInt(Math.round(ms)) * 1_000_000n);
  const res = await fetch(`${agentUrl}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      resourceSpans: [
        {
          resource: {
            attributes: [
              { key: "service.name", value: { stringValue: service } },
            ],
          },
          scopeSpans: [
            {
              scope: { name: "e2e" },
              spans: spans.map((s) => ({
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? "",
                name: s.name,
                kind: 2,
                startTimeUnixNano: ns(s.startMs),
                endTimeUnixNano: ns(s.startMs + s.durationMs),
                attributes: otlpAttributes(s.attributes),
                status:
                  s.error === true
                    ? { code: 2, ...(s.message ? { message: s.message } : {}) }
                    : {},
              })),
            },
          ],
        },
      ],
    }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** One log line of a service, sent to the agent as a service's SDK would. */
async function sendLog(
  service: string,
  line: {
    traceId: string;
    spanId: string;
    timeMs: number;
    body: string;
    attributes: Record<string, string | number>;
  },
): Promise<void> {
  const res = await fetch(`${agentUrl}/v1/logs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: otlpAttributes({ "service.name": service }) },
          scopeLogs: [
            {
              scope: { name: "e2e" },
              logRecords: [
                {
                  timeUnixNano: String(BigInt(line.timeMs) * 1_000_000n),
                  severityNumber: 9,
                  severityText: "INFO",
                  body: { stringValue: line.body },
                  traceId: line.traceId,
                  spanId: line.spanId,
                  attributes: otlpAttributes(line.attributes),
                },
              ],
            },
          ],
        },
      ],
    }),
  });
  assert.equal(res.status, 200, await res.text());
}

const hitsOf = (r: unknown) =>
  (r as { hits: { hits: Array<{ _source: Record<string, unknown> }> } }).hits
    .hits;

describe("the production path", () => {
  let shop: Shop;
  const dir = mkdtempSync(join(tmpdir(), "threadline-e2e-"));
  const watchFile = join(dir, "watch.json");
  let c42: TraceSummary[];

  before(async () => {
    // The fleet's watch list, as an operator would write it.
    await threadline("watch", "c-42", "--for", "1h", "--file", watchFile);
    const [databaseUrl, amqpUrl] = await Promise.all([
      testDatabase(),
      testBroker(),
    ]);
    shop = await startShop({
      otlpEndpoint: agentUrl,
      databaseUrl,
      amqpUrl,
      env: {
        OTEL_BSP_SCHEDULE_DELAY: "200",
        OTEL_BLRP_SCHEDULE_DELAY: "200",
        THREADLINE_WATCH_URL: watchFile,
        THREADLINE_WATCH_INTERVAL: "200",
      },
    });
    // Let every service read the watch list once.
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 3; i++) await order(shop, "c-42", "lamp");
    await order(shop, "c-1007", "book");
    await order(shop, "c-9", "lamp", 30); // 1350.00: declined
    await order(shop, "c-77", "lamp", 15); // 675.00: reviewed for a second
    for (let i = 0; i < ORDINARY; i += 10)
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          order(shop, `c-${100 + i + j}`, "pen"),
        ),
      );
  });

  after(async () => {
    await shop?.stop();
    await stopTestServers();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every trace of a watched customer, with every service in it, found by attribute in Jaeger", async () => {
    const backend = new JaegerBackend(jaegerUrl);
    c42 = await waitFor(
      async () => {
        const t = await backend.search({ customer: "c-42" });
        return t.length === 3 && t.every((x) => x.spanCount === 9) && t;
      },
      { what: "c-42's three traces in Jaeger", timeoutMs: 60_000 },
    );
    for (const t of c42) assert.deepEqual(t.services, SERVICES);
    // Jaeger's API v3 itself filters by the attribute (over gRPC on every
    // v2 release; over HTTP from 2.19): only c-42's traces come back.
    const now = Date.now() * 1000;
    // Before 2.19 a query must name a service: the edge's is enough, the
    // traces come back whole.
    const api = jaegerApiV3(jaegerGrpcUrl);
    const found = await api
      .find({
        service: "gateway",
        attributes: { "customer.id": "c-42" },
        fromUs: now - 3600e6,
        toUs: now + 60e6,
      })
      .finally(() => api.close());
    const ids = new Set(
      found.flatMap((r) =>
        r.scopes.flatMap((s) => s.spans.map((x) => x.traceId)),
      ),
    );
    assert.deepEqual([...ids].sort(), c42.map((t) => t.traceId).sort());
    const services = new Set(
      found.map((r) => r.resource["service.name"] as string),
    );
    assert.deepEqual([...services].sort(), SERVICES);
    // The SDK marked them, which is what the gateway keeps them for.
    const detail = await backend.getTrace(c42[0]!.traceId);
    assert.ok(
      detail!.spans.every((s) => s.attributes["threadline.watch"] === "debug"),
    );
  });

  it("keeps errors, slow traces and listed customers, and drops most ordinary traces", async (ctx) => {
    const backend = new JaegerBackend(jaegerUrl);
    // A span that reaches the gateway after its trace's decision is
    // forwarded on its own, so the trace can show up before its error does.
    const errors = await waitFor(
      async () => {
        const t = await backend.search({ customer: "c-9" });
        return t.length === 1 && t[0]!.errorCount >= 1 && t;
      },
      { what: "c-9's trace in Jaeger, with its error" },
    );
    assert.equal(errors.length, 1);
    // Slow: the provider reviewed the charge for a second, past the
    // gateway's 800 ms threshold. Its trace ends that second after c-9's,
    // and, like c-9's error, its slow part can arrive after the rest.
    // Waits until `whole` holds for a customer's traces, and gives the last
    // search either way, for the assertions to judge.
    const kept = async (
      customer: string,
      whole: (t: TraceSummary[]) => boolean,
    ) => {
      let last: TraceSummary[] = [];
      await waitFor(
        async () => {
          last = await backend.search({ customer });
          return whole(last);
        },
        { what: `${customer}'s trace in Jaeger` },
      ).catch(() => undefined);
      return last;
    };
    const slow = await kept(
      "c-77",
      (t) => t.length > 0 && t[0]!.durationUs >= 1_000_000,
    );
    assert.equal(slow.length, 1, "c-77's slow trace is kept");
    assert.ok(slow[0]!.durationUs >= 1_000_000, `${slow[0]!.durationUs} µs`);
    const listed = await kept("c-1007", (t) => t.length > 0);
    assert.equal(
      listed.length,
      1,
      "c-1007 is listed in the gateway's configuration",
    );

    // What was dropped is in neither store: Jaeger and Elasticsearch hold
    // the same traces, once the last decisions are written and both have
    // refreshed (a fresh index's shards can lag on a loaded machine).
    const es = new ElasticsearchBackend(esUrl);
    let all: TraceSummary[] = [];
    let inEs: string[] = [];
    const ids = (t: TraceSummary[]) => t.map((x) => x.traceId).sort();
    await waitFor(
      async () => {
        all = await backend.search({ limit: 500, service: "gateway" });
        inEs = ids(await es.search({ limit: 500, service: "gateway" }));
        return JSON.stringify(inEs) === JSON.stringify(ids(all));
      },
      {
        what: "Jaeger and Elasticsearch to hold the same traces",
        timeoutMs: 30_000,
      },
    ).catch(() => undefined);
    assert.deepEqual(inEs, ids(all));
    const ordinary = all.filter((t) => /^c-1\d\d$/.test(t.customer ?? ""));
    // About tailPercent% of 40; far from all of them.
    assert.ok(
      ordinary.length < ORDINARY / 2,
      `${ordinary.length} of ${ORDINARY} ordinary traces kept at ${tailPercent}%`,
    );
    ctx.diagnostic(
      `${ordinary.length} of ${ORDINARY} ordinary traces kept at ${tailPercent}%`,
    );
  });

  it("finds the logs of a trace and of a customer in Elasticsearch, with ECS fields", async () => {
    const traceId = c42[0]!.traceId;
    // 5 info lines per order, plus a debug line from each service: c-42 is watched.
    const byTrace = await waitFor(
      async () => {
        const h = hitsOf(
          await es("logs-*/_search", {
            size: 100,
            query: {
              bool: {
                filter: [{ term: { "trace.id": traceId } }],
                must_not: [{ term: { "event.kind": "event" } }],
              },
            },
          }),
        );
        return h.length >= 8 && h;
      },
      { what: "the trace's log lines in Elasticsearch" },
    );
    const levels = byTrace.map(
      (h) => (h._source["log"] as { level: string }).level,
    );
    assert.equal(levels.filter((l) => l === "debug").length, 3);
    const services = new Set(
      byTrace.map((h) => (h._source["service"] as { name: string }).name),
    );
    assert.deepEqual([...services].sort(), SERVICES);
    for (const h of byTrace) {
      assert.equal((h._source["customer"] as { id: string }).id, "c-42");
      assert.match((h._source["span"] as { id: string }).id, /^[0-9a-f]{16}$/);
    }
    const byCustomer = hitsOf(
      await es("logs-*/_search", {
        size: 200,
        query: { term: { "customer.id": "c-42" } },
      }),
    );
    assert.ok(
      byCustomer.length >= 3 * 8,
      `${byCustomer.length} lines for c-42`,
    );
    // Logs are not sampled: every ordinary order's lines are there.
    const ordinaryLines = hitsOf(
      await es("logs-*/_search", {
        size: 1000,
        query: { prefix: { "customer.id": "c-1" } },
      }),
    ).filter((h) =>
      /^c-1\d\d$/.test((h._source["customer"] as { id: string }).id),
    );
    assert.ok(
      ordinaryLines.length >= ORDINARY * 5,
      `${ordinaryLines.length} ordinary lines`,
    );
  });

  it("gives the same answer from threadline search on both backends", async () => {
    const ids = c42.map((t) => t.traceId).sort();
    for (const backend of [
      `jaeger=${jaegerUrl}`,
      `jaeger=${jaegerGrpcUrl}`,
      `elasticsearch=${esUrl}`,
    ]) {
      const { traces } = await searchUntil(
        "c-42",
        backend,
        (t) => t.length === ids.length,
      );
      assert.deepEqual(traces.map((t) => t.traceId).sort(), ids, backend);
      assert.ok(
        traces.every((t) => t.spanCount === 9 && t.customer === "c-42"),
      );
    }
    const { stdout } = await threadline(
      "trace",
      c42[0]!.traceId,
      "--backend",
      `elasticsearch=${esUrl}`,
    );
    assert.match(
      stdout,
      /SQL SELECT price_cents FROM products WHERE sku = \$1/,
    );
    assert.match(stdout, /third party payments-provider: POST/);
    assert.match(stdout, /log debug: priced the order/);
  });
});

// The tail sampler hands each kept trace on as a request of its own, and both
// stores sit behind the one traces pipeline: if the Elasticsearch side takes
// them one small request at a time, Jaeger waits for it too.
describe("a burst of kept traces", () => {
  const COUNT = 500;
  const service = "burst";
  const customer = need("THREADLINE_E2E_LISTED_CUSTOMERS").split(",")[1]!;

  async function jaegerCount(): Promise<number> {
    const q = new URLSearchParams({ service, limit: "2000", lookback: "1h" });
    const res = await fetch(`${jaegerUrl}/api/traces?${q}`);
    if (res.status === 404) return 0;
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { data: unknown[] }).data.length;
  }
  async function elasticsearchCount(): Promise<number> {
    const res = await fetch(`${esUrl}/traces-*/_count`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: { term: { "service.name": service } } }),
    });
    if (res.status === 404) return 0;
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { count: number }).count;
  }

  it("reaches Jaeger and Elasticsearch whole, within seconds of the decision", async () => {
    const now = Date.now();
    const run = randomBytes(8).toString("hex");
    const id = (i: number) => (i + 1).toString(16).padStart(16, "0");
    const spans = Array.from({ length: COUNT }, (_, i) => ({
      traceId: run + id(i),
      spanId: id(i),
      name: "GET /burst",
      startMs: now - 50,
      durationMs: 50,
      attributes: { "customer.id": customer },
    }));
    // A listed customer's single-span traces: every one is kept.
    for (let i = 0; i < COUNT; i += 100)
      await send(service, spans.slice(i, i + 100));
    const t0 = Date.now();
    // The gateway decides after 3 s and writes to Elasticsearch every
    // second: 30 s is ample on a busy machine, and about half of what the
    // traces take when each is a write of its own, ten per flush.
    let counts = [0, 0];
    await waitFor(
      async () => {
        counts = await Promise.all([jaegerCount(), elasticsearchCount()]);
        return counts[0] === COUNT && counts[1] === COUNT;
      },
      {
        what: `${COUNT} kept traces in both stores`,
        timeoutMs: 30_000,
        intervalMs: 500,
      },
    ).catch(() => undefined);
    assert.deepEqual(
      { jaeger: counts[0], elasticsearch: counts[1] },
      { jaeger: COUNT, elasticsearch: COUNT },
      `after ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  });
});

// A span started before the customer was known, or in a service that does
// not take it from its caller, has no customer.id: such a trace is still
// the customer's, and the filters are the trace's, not one span's.
describe("a customer on some spans of a trace only", () => {
  it("is found by the customer with filters that other spans meet", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = `${run}${"0".repeat(15)}1`;
    const now = Date.now();
    await send("storefront", [
      {
        traceId,
        spanId: "00000000000000a1",
        name: "POST /checkout",
        startMs: now - 100,
        durationMs: 60,
        attributes: { "customer.id": "c-3001", "threadline.watch": "debug" },
      },
    ]);
    await send("billing", [
      {
        traceId,
        spanId: "00000000000000a2",
        parentSpanId: "00000000000000a1",
        name: "charge",
        startMs: now - 90,
        durationMs: 30,
        error: true,
      },
    ]);
    for (const [backend, ...filter] of [
      [`jaeger=${jaegerUrl}`, "--service", "billing"],
      [`jaeger=${jaegerGrpcUrl}`, "--service", "billing"],
      [`jaeger=${jaegerGrpcUrl}`, "--errors", "--service", "billing"],
      [`elasticsearch=${esUrl}`, "--errors"],
      [`elasticsearch=${esUrl}`, "--service", "billing"],
    ] as const) {
      const { traces } = await searchUntil(
        "c-3001",
        backend,
        (t) => t.length === 1 && t[0]!.spanCount === 2,
        filter,
      );
      assert.deepEqual(
        traces.map((t) => [t.traceId, t.spanCount]),
        [[traceId, 2]],
        `${backend} ${filter.join(" ")}`,
      );
    }
  });
});

// The gateway writes attributes as top-level fields, into one data stream
// for every service, so one service's fields meet another's in its
// mapping: `user` (a name) and `user.id`, `order.id` a number and then a
// string. Elasticsearch refused the later documents, and nothing said so.
describe("attributes whose fields clash with another service's", () => {
  it("reach Elasticsearch, and threadline trace shows the whole tree", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = `${run}${"0".repeat(15)}1`;
    const now = Date.now();
    const count = async (index: string) => {
      const res = await fetch(`${esUrl}/${index}/_count`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: { term: { "trace.id": traceId } } }),
      });
      if (res.status === 404) return 0;
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { count: number }).count;
    };
    const counts = async () => [await count("logs-*"), await count("traces-*")];
    const first = { "customer.id": "c-3011", user: "bob", "order.id": 17 };
    await sendLog("storefront", {
      traceId,
      spanId: "00000000000000f1",
      timeMs: now - 90,
      body: "order taken",
      attributes: first,
    });
    await send("storefront", [
      {
        traceId,
        spanId: "00000000000000f1",
        name: "POST /basket",
        startMs: now - 100,
        durationMs: 60,
        attributes: { ...first, "threadline.watch": "debug" },
      },
    ]);
    // Written first: `user` and `order.id` are mapped as these are.
    await waitFor(async () => JSON.stringify(await counts()) === "[1,1]", {
      what: "the first service's line and span in Elasticsearch",
    });
    await sendLog("warehouse", {
      traceId,
      spanId: "00000000000000f2",
      timeMs: now - 70,
      body: "picked for user u-1",
      attributes: { "customer.id": "c-3011", "user.id": "u-1" },
    });
    await sendLog("warehouse", {
      traceId,
      spanId: "00000000000000f2",
      timeMs: now - 60,
      body: "order ord-17 packed",
      attributes: { "customer.id": "c-3011", "order.id": "ord-17" },
    });
    await send("warehouse", [
      {
        traceId,
        spanId: "00000000000000f2",
        parentSpanId: "00000000000000f1",
        name: "pack order",
        startMs: now - 80,
        durationMs: 30,
        attributes: { "user.id": "u-1", "order.id": "ord-17" },
      },
    ]);
    let found: number[] = [];
    await waitFor(
      async () => {
        found = await counts();
        return JSON.stringify(found) === "[3,2]";
      },
      { what: "every line and span in Elasticsearch", timeoutMs: 30_000 },
    ).catch(() => undefined);
    assert.deepEqual(found, [3, 2], "log lines, spans");
    const { stdout } = await threadline(
      "trace",
      traceId,
      "--backend",
      `elasticsearch=${esUrl}`,
    );
    assert.match(stdout, /storefront +server +POST \/basket/);
    assert.match(stdout, /warehouse +server +pack order/);
    for (const line of [
      "order taken",
      "picked for user u-1",
      "order ord-17 packed",
    ])
      assert.match(stdout, new RegExp(`log INFO: ${line}`));
  });
});

describe("a failed span's status message", () => {
  it("is shown by threadline trace from Elasticsearch as from Jaeger", async () => {
    const traceId = randomBytes(16).toString("hex");
    const now = Date.now();
    await send("worker", [
      {
        traceId,
        spanId: "00000000000000b1",
        name: "process orders.payments",
        startMs: now - 100,
        durationMs: 40,
        error: true,
        message: "message nacked without requeue",
        attributes: { "customer.id": "c-3010" },
      },
    ]);
    for (const backend of [`jaeger=${jaegerUrl}`, `elasticsearch=${esUrl}`]) {
      let stdout = "";
      await waitFor(
        async () => {
          stdout = await threadline("trace", traceId, "--backend", backend)
            .then((r) => r.stdout)
            .catch(() => "");
          return stdout.includes("process orders.payments");
        },
        { what: `the failed trace from ${backend}`, timeoutMs: 30_000 },
      ).catch(() => undefined);
      assert.match(
        stdout,
        /process orders\.payments .* ✗ ERROR: message nacked without requeue\n/,
        backend,
      );
    }
  });
});

// Jaeger on Elasticsearch matches an attribute's value as a regular
// expression: a customer id with characters one reserves is still found.
describe("a customer id with regular-expression characters", () => {
  it("is found in Jaeger over HTTP and gRPC", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = `${run}${"0".repeat(15)}1`;
    const customer = `bob+vip(${run})@example.com`;
    await send("accounts", [
      {
        traceId,
        spanId: "00000000000000d1",
        name: "GET /account",
        startMs: Date.now() - 100,
        durationMs: 20,
        attributes: { "customer.id": customer, "threadline.watch": "debug" },
      },
    ]);
    for (const backend of [`jaeger=${jaegerUrl}`, `jaeger=${jaegerGrpcUrl}`]) {
      const { traces, stderr } = await searchUntil(
        customer,
        backend,
        (t) => t.length === 1,
      );
      assert.deepEqual(
        traces.map((t) => [t.traceId, t.customer]),
        [[traceId, customer]],
        `${backend}: ${stderr}`,
      );
    }
  });
});

// Jaeger's HTTP API before 2.19 ignores the customer, so the CLI reads a
// service's traces and looks for the customer itself: an answer holds at
// most 1000 traces, the newest.
describe("a customer's trace behind more than one answer of newer traces", () => {
  it("is found by the customer over Jaeger's HTTP API", async () => {
    const run = randomBytes(8).toString("hex");
    const id = (i: number) => (i + 1).toString(16).padStart(16, "0");
    const now = Date.now();
    const NEWER = 1100;
    await send("catalog", [
      {
        traceId: run + id(NEWER),
        spanId: id(NEWER),
        name: "GET /catalog",
        startMs: now - 600_000,
        durationMs: 20,
        attributes: { "customer.id": "c-3002", "threadline.watch": "debug" },
      },
    ]);
    for (let i = 0; i < NEWER; i += 100)
      await send(
        "catalog",
        Array.from({ length: Math.min(100, NEWER - i) }, (_, j) => ({
          traceId: run + id(i + j),
          spanId: id(i + j),
          name: "GET /catalog",
          startMs: now - 60_000 + i + j,
          durationMs: 20,
          attributes: { "customer.id": "c-3003", "threadline.watch": "debug" },
        })),
      );
    await waitFor(
      async () => {
        const q = new URLSearchParams({
          service: "catalog",
          limit: "2000",
          lookback: "1h",
        });
        const res = await fetch(`${jaegerUrl}/api/traces?${q}`);
        return (
          res.ok &&
          ((await res.json()) as { data: unknown[] }).data.length === NEWER + 1
        );
      },
      { what: "the catalog's traces in Jaeger", timeoutMs: 60_000 },
    );
    const { stdout } = await threadline(
      "search",
      "--customer",
      "c-3002",
      "--json",
      "--backend",
      `jaeger=${jaegerUrl}`,
    );
    const { traces } = JSON.parse(stdout) as { traces: TraceSummary[] };
    assert.deepEqual(
      traces.map((t) => t.traceId),
      [run + id(NEWER)],
    );
  });
});

// A search without --since has no lower bound: a trace ten days old is
// found like one from today.
describe("a customer's trace from ten days ago", () => {
  it("is found without --since", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = (n: number) => `${run}${"0".repeat(15)}${n}`;
    const now = Date.now();
    // By names of their own: Jaeger on Elasticsearch lists a service and
    // operation only in the daily index of the first span it wrote with
    // them, and lists services from the indices of its max_span_age.
    for (const [n, startMs, name] of [
      [2, now - 1000, "GET /invoices"],
      [1, now - 10 * 24 * 3600_000, "GET /invoices/:id"],
    ] as const)
      await send("archive", [
        {
          traceId: traceId(n),
          spanId: `00000000000000b${n}`,
          name,
          startMs,
          durationMs: 30,
          attributes: { "customer.id": "c-3005", "threadline.watch": "debug" },
        },
      ]);
    for (const backend of [
      `elasticsearch=${esUrl}`,
      `jaeger=${jaegerUrl}`,
      `jaeger=${jaegerGrpcUrl}`,
    ]) {
      const { traces, stderr } = await searchUntil(
        "c-3005",
        backend,
        (t) => t.length === 2,
      );
      assert.deepEqual(
        traces.map((t) => t.traceId),
        [traceId(2), traceId(1)],
        `${backend}: ${stderr}`,
      );
      // Jaeger on Elasticsearch cannot search all time, and says how far
      // back it looked.
      if (backend.startsWith("jaeger="))
        assert.match(stderr, /searched the last 30 days/);
      else assert.equal(stderr, "");
    }
  });
});

// Jaeger on Elasticsearch opens a trace, and lists services, only from
// the indices of its max_span_age: a trace a search lists must open too.
describe("a customer's trace from five days ago", () => {
  it("is listed and opened by threadline over Jaeger's HTTP and gRPC APIs", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = `${run}${"0".repeat(15)}1`;
    // A service no newer span names, as when it was retired since.
    const service = `ledger-${run}`;
    await send(service, [
      {
        traceId,
        spanId: "00000000000000e1",
        name: "GET /statements",
        startMs: Date.now() - 5 * 24 * 3600_000,
        durationMs: 30,
        attributes: { "customer.id": "c-3007", "threadline.watch": "debug" },
      },
    ]);
    for (const backend of [`jaeger=${jaegerUrl}`, `jaeger=${jaegerGrpcUrl}`]) {
      const { traces, stderr } = await searchUntil(
        "c-3007",
        backend,
        (t) => t.length === 1,
      );
      assert.deepEqual(
        traces.map((t) => t.traceId),
        [traceId],
        `${backend}: ${stderr}`,
      );
      const shown = await threadline(
        "trace",
        traceId,
        "--backend",
        backend,
      ).then(
        (r) => r.stdout,
        (err: { stderr: string }) => err.stderr,
      );
      assert.match(
        shown,
        new RegExp(`${service}  server  GET /statements`),
        backend,
      );
    }
  });
});

// --min-duration is the trace's length: a queue consumer that runs two
// seconds after a short request makes a long trace of short spans.
describe("a long trace of short spans", () => {
  it("is found by --min-duration in Jaeger", async () => {
    const run = randomBytes(8).toString("hex");
    const traceId = `${run}${"0".repeat(15)}1`;
    const now = Date.now();
    await send("orders-api", [
      {
        traceId,
        spanId: "00000000000000c1",
        name: "POST /orders",
        startMs: now - 3000,
        durationMs: 50,
        attributes: { "customer.id": "c-3006", "threadline.watch": "debug" },
      },
    ]);
    await send("orders-worker", [
      {
        traceId,
        spanId: "00000000000000c2",
        parentSpanId: "00000000000000c1",
        name: "orders process",
        startMs: now - 1000,
        durationMs: 100,
        attributes: { "customer.id": "c-3006", "threadline.watch": "debug" },
      },
    ]);
    for (const backend of [`jaeger=${jaegerUrl}`, `jaeger=${jaegerGrpcUrl}`]) {
      // Both spans are there before the duration is asked about.
      const { traces } = await searchUntil(
        "c-3006",
        backend,
        (t) => t.length === 1 && t[0]!.spanCount === 2,
      );
      assert.deepEqual(
        traces.map((t) => [t.traceId, t.spanCount]),
        [[traceId, 2]],
        backend,
      );
      const long = async (d: string) => {
        const { stdout } = await threadline(
          "search",
          "--customer",
          "c-3006",
          "--min-duration",
          d,
          "--json",
          "--backend",
          backend,
        );
        return (JSON.parse(stdout) as { traces: TraceSummary[] }).traces.map(
          (t) => t.traceId,
        );
      };
      assert.deepEqual(await long("2s"), [traceId], backend);
      assert.deepEqual(await long("3s"), [], backend);
    }
  });
});

// A backend URL that points at the wrong thing is told as such, not as an
// empty answer nor as a JSON parser's complaint.
describe("a backend URL that is not the backend", () => {
  const search = (backend: string) =>
    threadline("search", "--customer", "c-42", "--backend", backend).then(
      (r) => ({ code: 0, stderr: r.stderr, stdout: r.stdout }),
      (err: { code: number; stderr: string; stdout: string }) => err,
    );

  it("names the backend when Jaeger's UI answers instead of its API", async () => {
    const url = `${jaegerUrl}/search`;
    const r = await search(`jaeger=${url}`);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`jaeger ${url}.*not JSON`));
  });

  it("does not take another server's 404 for no traces", async () => {
    const r = await search(`jaeger=${agentUrl}`);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`jaeger ${agentUrl} answered 404`));
  });

  it("names Elasticsearch's URL when something else answers", async () => {
    const r = await search(`elasticsearch=${jaegerUrl}`);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`elasticsearch ${jaegerUrl}`));
  });
});

// Jaeger's memory storage refuses a search for as many traces as it holds
// or more, and threadline search asks for 1000 at a time.
describe("a Jaeger whose memory storage holds 1000 traces or fewer", () => {
  it("fails threadline search with a message naming THREADLINE_JAEGER_MAX_TRACES", async () => {
    const { startJaeger } = (await import(
      new URL("../../scripts/backends/jaeger.mjs", import.meta.url).href
    )) as {
      startJaeger(o: {
        config: string;
        env: Record<string, string>;
        queryUrl: string;
      }): Promise<{ stop(): Promise<void> }>;
    };
    const at = async () => `127.0.0.1:${await freePort()}`;
    const [query, grpc] = [await at(), await at()];
    const jaeger = await startJaeger({
      config: fileURLToPath(
        new URL("../../collector-config/jaeger-memory.yaml", import.meta.url),
      ),
      queryUrl: `http://${query}`,
      env: {
        THREADLINE_JAEGER_OTLP_GRPC_ENDPOINT: await at(),
        THREADLINE_JAEGER_OTLP_HTTP_ENDPOINT: await at(),
        THREADLINE_JAEGER_QUERY_HTTP_ENDPOINT: query,
        THREADLINE_JAEGER_QUERY_GRPC_ENDPOINT: grpc,
        THREADLINE_JAEGER_HEALTH_ENDPOINT: await at(),
        THREADLINE_JAEGER_METRICS_PORT: String(await freePort()),
        THREADLINE_JAEGER_MAX_TRACES: "500",
      },
    });
    try {
      for (const backend of [
        `jaeger=http://${query}`,
        `jaeger=grpc://${grpc}`,
      ]) {
        const r = await threadline(
          "search",
          "--customer",
          "c-42",
          "--backend",
          backend,
        ).then(
          (r) => ({ code: 0, stderr: r.stderr, stdout: r.stdout }),
          (err: { code: number; stderr: string; stdout: string }) => err,
        );
        assert.equal(r.code, 1, r.stdout);
        assert.match(
          r.stderr,
          /asks for 1000 traces.*THREADLINE_JAEGER_MAX_TRACES.*over 1000/,
          backend,
        );
      }
    } finally {
      await jaeger.stop();
    }
  });
});

// Elasticsearch stops answering (here: its processes are stopped) while
// services keep logging. Log lines are not sampled, so none may be lost:
// what the gateway cannot queue it refuses, and the agent sends it again.
// Last in the file, because Jaeger's storage is frozen too meanwhile.
describe("log lines written while Elasticsearch does not answer", () => {
  const REQUESTS = 300;
  const PER_REQUEST = 20;
  const service = `frozen-${randomBytes(4).toString("hex")}`;
  const esGroup = Number(need("THREADLINE_E2E_ELASTICSEARCH_PID"));

  async function sendLines(i: number): Promise<void> {
    const ns = String(BigInt(Date.now()) * 1_000_000n);
    const res = await fetch(`${agentUrl}/v1/logs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        resourceLogs: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: service } },
              ],
            },
            scopeLogs: [
              {
                scope: { name: "e2e" },
                logRecords: Array.from({ length: PER_REQUEST }, (_, j) => ({
                  timeUnixNano: ns,
                  severityNumber: 9,
                  severityText: "INFO",
                  body: { stringValue: `line ${i}.${j}` },
                })),
              },
            ],
          },
        ],
      }),
    });
    assert.equal(res.status, 200, await res.text());
  }

  async function count(): Promise<number> {
    const res = await fetch(`${esUrl}/logs-*/_count`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: { term: { "service.name": service } } }),
    });
    if (res.status === 404) return 0;
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { count: number }).count;
  }

  it("all reach Elasticsearch once it answers again", async () => {
    // The node runs in a process group of its own (its launcher and the
    // server's JVM).
    process.kill(-esGroup, "SIGSTOP");
    try {
      // About 45 s and 6000 lines: more than the logs queue takes (2048
      // here), and longer than a batch processor handing its batches to a
      // queue of 200 requests, five a second, takes to fill it.
      for (let i = 0; i < REQUESTS; i++) {
        await sendLines(i);
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      process.kill(-esGroup, "SIGCONT");
    }
    let found = 0;
    await waitFor(
      async () => {
        found = await count();
        return found === REQUESTS * PER_REQUEST;
      },
      {
        what: "every line in Elasticsearch",
        timeoutMs: 90_000,
        intervalMs: 1000,
      },
    ).catch(() => undefined);
    assert.equal(found, REQUESTS * PER_REQUEST);
  });
});
