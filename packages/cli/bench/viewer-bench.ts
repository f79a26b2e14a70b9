// Benchmark of `threadline dev`: OTLP ingest throughput and search latency
// with a large store. Not a test: it reports figures, and checks them
// against the goals (ingest >= 20,000 spans/s sustained, customer search
// p95 < 200 ms at 1M stored spans).
//
// The viewer runs as its own process (`threadline dev`, built output) with
// a fresh store file; this process plays the exporters: it encodes
// shop-like traces (9 spans, 3 services, 10,000 customers) with the SDK's
// own encoder, 512 spans per request, 4 requests in flight, retrying on 429
// as OTLP exporters do. Ingest is timed until every span is written.
// Then 200 searches per kind run against the full store.
//
//   node packages/cli/bench/viewer-bench.ts [--spans 1000000] [--out docs/viewer-benchmark.md]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { TraceEncoder, type SpanData } from "@threadline/otlp";

const { values } = parseArgs({
  options: { spans: { type: "string" }, out: { type: "string" } },
});
const TOTAL = Number(values.spans ?? 1_000_000);
const BATCH = 512;
const IN_FLIGHT = 4;
const CUSTOMERS = 10_000;
const bin = fileURLToPath(new URL("../bin/threadline.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "threadline-bench-"));
const db = join(dir, "bench.sqlite");

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

const scopes = {
  gateway: { name: "@threadline/instrumentation-http" },
  orders: { name: "@threadline/instrumentation-pg" },
  worker: { name: "@threadline/instrumentation-amqplib" },
};
const encoders = {
  gateway: new TraceEncoder({ "service.name": "gateway" }),
  orders: new TraceEncoder({ "service.name": "orders" }),
  worker: new TraceEncoder({ "service.name": "worker" }),
};
type Service = keyof typeof encoders;

/** The 9 spans of trace number t, grouped by service. */
function traceSpans(t: number): Record<Service, SpanData[]> {
  const traceId = hex(t + 1, 32);
  const customer = `c-${t % CUSTOMERS}`;
  const start = Date.now() - 3_600_000 + (t % 3_600_000);
  const error = t % 50 === 0;
  let s = 0;
  const mk = (
    service: Service,
    parent: string | undefined,
    name: string,
    kind: 0 | 1 | 2 | 3 | 4,
    offset: number,
    dur: number,
    attributes: Record<string, string | number>,
  ): SpanData => ({
    scope: scopes[service],
    traceId,
    spanId: hex(t * 16 + ++s, 16),
    parentSpanId: parent,
    parentIsRemote: false,
    traceState: undefined,
    traceFlags: 1,
    name,
    kind,
    startTime: start + offset,
    endTime: start + offset + dur,
    attributes: { "customer.id": customer, ...attributes },
    droppedAttributesCount: 0,
    events: undefined,
    droppedEventsCount: 0,
    links: undefined,
    droppedLinksCount: 0,
    statusCode: error && name === "process orders" ? 2 : 0,
    statusMessage: undefined,
  });
  const root = mk("gateway", undefined, "POST /orders", 1, 0, 30, {
    "http.request.method": "POST",
    "http.route": "/orders",
    "url.path": "/orders",
    "http.response.status_code": 201,
    "user_agent.original": "bench",
  });
  const client = mk("gateway", root.spanId, "POST", 2, 1, 25, {
    "http.request.method": "POST",
    "url.full": "http://orders:3101/orders",
    "server.address": "orders",
    "server.port": 3101,
  });
  const server = mk("orders", client.spanId, "POST /orders", 1, 2, 20, {
    "http.request.method": "POST",
    "http.route": "/orders",
    "http.response.status_code": 201,
  });
  const select = mk("orders", server.spanId, "SELECT products", 2, 3, 2, {
    "db.system.name": "postgresql",
    "db.query.text": "SELECT price_cents FROM products WHERE sku = $1",
    "db.collection.name": "products",
    "db.operation.name": "SELECT",
  });
  const insert = mk("orders", server.spanId, "INSERT orders", 2, 6, 3, {
    "db.system.name": "postgresql",
    "db.query.text":
      "INSERT INTO orders (sku, quantity, amount_cents) VALUES ($1, $2, $3) RETURNING id",
    "db.collection.name": "orders",
    "db.operation.name": "INSERT",
  });
  const publish = mk("orders", server.spanId, "publish shop", 3, 10, 2, {
    "messaging.system": "rabbitmq",
    "messaging.destination.name": "shop",
    "messaging.rabbitmq.destination.routing_key": "order.created",
  });
  const consume = mk("worker", publish.spanId, "process orders", 4, 14, 40, {
    "messaging.system": "rabbitmq",
    "messaging.destination.subscription.name": "orders",
    "messaging.rabbitmq.settlement": "ack",
  });
  const charge = mk("worker", consume.spanId, "POST", 2, 16, 20, {
    "http.request.method": "POST",
    "peer.service": "payments-provider",
    "url.full": "https://api.payments.example/v1/charges",
    "http.response.status_code": 200,
  });
  const update = mk("worker", consume.spanId, "UPDATE orders", 2, 40, 5, {
    "db.system.name": "postgresql",
    "db.query.text": "UPDATE orders SET status = ? WHERE id = $1",
    "db.collection.name": "orders",
  });
  return {
    gateway: [root, client],
    orders: [server, select, insert, publish],
    worker: [consume, charge, update],
  };
}

/** Request bodies: each service's spans of consecutive traces, 512 spans per body. */
function* bodies(): Generator<{ body: Uint8Array; spans: number }> {
  const pending: Record<Service, SpanData[]> = {
    gateway: [],
    orders: [],
    worker: [],
  };
  let produced = 0;
  for (let t = 0; produced < TOTAL; t++) {
    const byService = traceSpans(t);
    for (const svc of Object.keys(pending) as Service[]) {
      for (const span of byService[svc]) {
        if (produced >= TOTAL) break;
        pending[svc].push(span);
        produced++;
      }
      if (pending[svc].length >= BATCH) {
        yield {
          body: encoders[svc].encode(pending[svc]),
          spans: pending[svc].length,
        };
        pending[svc] = [];
      }
    }
  }
  for (const svc of Object.keys(pending) as Service[])
    if (pending[svc].length > 0)
      yield {
        body: encoders[svc].encode(pending[svc]),
        spans: pending[svc].length,
      };
}

async function waitReady(
  child: ReturnType<typeof spawn>,
): Promise<{ otlp: string; viewer: string }> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      const otlp = /receiver\s+(http:\/\/\S+)/.exec(out)?.[1];
      const viewer = /viewer and API\s+(http:\/\/\S+)/.exec(out)?.[1];
      if (otlp && viewer) resolve({ otlp, viewer });
    });
    child.once("exit", (code) =>
      reject(new Error(`threadline dev exited with ${code}`)),
    );
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ]!;
}

const child = spawn(
  process.execPath,
  [
    bin,
    "dev",
    "--db",
    db,
    "--otlp-port",
    "0",
    "--port",
    "0",
    "--max-size",
    "8GB",
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
try {
  const { otlp, viewer } = await waitReady(child);
  const stats = async () =>
    (await (await fetch(`${viewer}/api/stats`)).json()) as {
      spans: number;
      traces: number;
      sizeBytes: number;
      received: { throttled: number };
    };

  // ---- ingest ----
  const source = bodies();
  let sent = 0;
  let throttled = 0;
  const t0 = performance.now();
  async function sender(): Promise<void> {
    for (let next = source.next(); !next.done; next = source.next()) {
      for (;;) {
        const res = await fetch(`${otlp}/v1/traces`, {
          method: "POST",
          body: next.value.body,
          headers: { "content-type": "application/x-protobuf" },
        });
        await res.arrayBuffer();
        if (res.status === 200) break;
        if (res.status !== 429)
          throw new Error(`ingest answered ${res.status}`);
        throttled++;
        await new Promise((r) => setTimeout(r, 100));
      }
      sent += next.value.spans;
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
  for (;;) {
    const s = await stats();
    if (s.spans >= sent) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ingestSeconds = (performance.now() - t0) / 1000;
  const final = await stats();
  const ingestRate = sent / ingestSeconds;

  // ---- search ----
  async function timed(
    kind: string,
    url: (i: number) => string,
  ): Promise<{
    kind: string;
    p50: number;
    p95: number;
    p99: number;
    rows: number;
  }> {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      const body = (await (await fetch(`${viewer}${url(i)}`)).json()) as {
        traces: unknown[];
      };
      times.push(performance.now() - start);
      rows += body.traces.length;
    }
    times.sort((a, b) => a - b);
    return {
      kind,
      p50: percentile(times, 50),
      p95: percentile(times, 95),
      p99: percentile(times, 99),
      rows: rows / 200,
    };
  }
  const searches = [
    await timed(
      "customer",
      (i) => `/api/search?customer=c-${(i * 7919) % CUSTOMERS}`,
    ),
    await timed(
      "customer + service + errors",
      (i) =>
        `/api/search?customer=c-${(i * 50) % CUSTOMERS}&service=worker&errors=1`,
    ),
    await timed(
      "attribute (indexed)",
      () => `/api/search?attr=peer.service=payments-provider&limit=50`,
    ),
    await timed(
      "customer + attribute (not indexed)",
      (i) =>
        `/api/search?customer=c-${(i * 31) % CUSTOMERS}&attr=${encodeURIComponent("db.query.text=SELECT price_cents FROM products WHERE sku = $1")}`,
    ),
  ];
  const traceTimes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await (
      await fetch(
        `${viewer}/api/traces/${hex(((i * 104729) % Math.floor(sent / 9)) + 1, 32)}`,
      )
    ).json();
    traceTimes.push(performance.now() - start);
  }
  traceTimes.sort((a, b) => a - b);
  searches.push({
    kind: "whole trace by id",
    p50: percentile(traceTimes, 50),
    p95: percentile(traceTimes, 95),
    p99: percentile(traceTimes, 99),
    rows: 1,
  });

  const customerP95 = searches[0]!.p95;
  const ok = (b: boolean) => (b ? "met" : "NOT met");
  const fileSize = statSync(db).size;
  const report = `# threadline dev benchmark

Generated by \`npm run bench:viewer\` (\`node packages/cli/bench/viewer-bench.ts --spans ${TOTAL}\`) on
${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM,
Node ${process.versions.node}, SQLite ${process.versions.sqlite ?? "(node:sqlite)"}.

The viewer runs as its own process (\`threadline dev\`, built output, a fresh store file). The
benchmark process plays the exporters: shop-like traces of 9 spans over 3 services and 10,000
customers, encoded as OTLP protobuf, ${BATCH} spans per request, ${IN_FLIGHT} requests in flight, retrying on
429 after 100 ms. Ingest is timed from the first request until every span is written to the store.

## Ingest

| spans | traces | time | spans/s | 429 answers | store size |
| ---: | ---: | ---: | ---: | ---: | ---: |
| ${sent.toLocaleString("en")} | ${final.traces.toLocaleString("en")} | ${ingestSeconds.toFixed(1)} s | **${Math.round(ingestRate).toLocaleString("en")}** | ${throttled} | ${(fileSize / 1024 ** 2).toFixed(0)} MiB |

Goal: >= 20,000 spans/s sustained: **${ok(ingestRate >= 20_000)}**.

## Search, with ${sent.toLocaleString("en")} spans stored (200 queries each, through the JSON API)

| query | p50 | p95 | p99 | rows per answer |
| --- | ---: | ---: | ---: | ---: |
${searches.map((s) => `| ${s.kind} | ${s.p50.toFixed(1)} ms | ${s.p95.toFixed(1)} ms | ${s.p99.toFixed(1)} ms | ${s.rows.toFixed(1)} |`).join("\n")}

Goal: customer search p95 < 200 ms: **${ok(customerP95 < 200)}**.
`;
  process.stdout.write(report);
  if (values.out) writeFileSync(values.out, report);
} finally {
  child.kill("SIGINT");
  await new Promise((r) => child.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
