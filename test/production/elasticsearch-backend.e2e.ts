// `threadline search` and `threadline trace` against a real Elasticsearch
// (the minimal distribution the production path uses, started by
// scripts/backends/elasticsearch.mjs with the same index templates), holding
// span documents in the shape the gateway Collector writes (ECS, see
// collector-config/README.md), many more than one request can return.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort } from "@threadline/test-support";
import type { TraceDetail, TraceSummary } from "@threadline/cli";

const bin = fileURLToPath(
  new URL("../../packages/cli/bin/threadline.js", import.meta.url),
);
const script = new URL(
  "../../scripts/backends/elasticsearch.mjs",
  import.meta.url,
).href;

interface RunningElasticsearch {
  url: string;
  stop(): Promise<void>;
}
const { startElasticsearch } = (await import(script)) as {
  startElasticsearch(o: { port: number }): Promise<RunningElasticsearch>;
};

function threadline(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
/** Epoch microseconds as the exporter writes them: RFC 3339 with nanoseconds. */
const iso = (us: number) =>
  `${new Date(Math.floor(us / 1000)).toISOString().slice(0, -1)}${String(us % 1000).padStart(3, "0")}000Z`;

interface Span {
  traceId: string;
  spanId: string;
  parentId?: string;
  service: string;
  name: string;
  customer?: string;
  startUs: number;
  durationUs: number;
  failed?: boolean;
  /** The status message of a failed span, which the gateway adds. */
  message?: string;
  attributes?: Record<string, unknown>;
}

/** An ECS span document, as the gateway's elasticsearch exporter writes it. */
function doc(s: Span): Record<string, unknown> {
  return {
    "@timestamp": iso(s.startUs),
    trace: { id: s.traceId },
    span: {
      id: s.spanId,
      name: s.name,
      kind: "SERVER",
      ...(s.message === undefined ? {} : { status: { message: s.message } }),
    },
    ...(s.parentId === undefined ? {} : { parent: { id: s.parentId } }),
    service: { name: s.service },
    ...(s.customer === undefined ? {} : { customer: { id: s.customer } }),
    event: {
      duration: s.durationUs * 1000,
      outcome: s.failed === true ? "failure" : "success",
    },
    data_stream: { type: "traces", dataset: "generic", namespace: "default" },
    ...s.attributes,
  };
}

let es: RunningElasticsearch;

async function index(spans: Span[]): Promise<void> {
  for (let i = 0; i < spans.length; i += 5000) {
    const body = spans
      .slice(i, i + 5000)
      .map(
        (s) =>
          `{"create":{"_index":"traces-generic-default","require_data_stream":true}}\n${JSON.stringify(doc(s))}\n`,
      )
      .join("");
    const res = await fetch(`${es.url}/_bulk?refresh=wait_for`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body,
    });
    const answer = (await res.json()) as { errors: boolean };
    assert.equal(res.status, 200);
    assert.equal(answer.errors, false, JSON.stringify(answer).slice(0, 500));
  }
}

async function search(...args: string[]): Promise<TraceSummary[]> {
  const r = await threadline([
    "search",
    ...args,
    "--json",
    "--backend",
    `elasticsearch=${es.url}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { traces: TraceSummary[] }).traces;
}

/** `threadline trace <id>` through Elasticsearch, as JSON and as text. */
async function traceOf(
  id: string,
): Promise<{ detail: TraceDetail; text: string }> {
  const backend = ["--backend", `elasticsearch=${es.url}`];
  const json = await threadline(["trace", id, "--json", ...backend]);
  assert.equal(json.code, 0, json.stderr);
  const text = await threadline(["trace", id, ...backend]);
  assert.equal(text.code, 0, text.stderr);
  return { detail: JSON.parse(json.stdout) as TraceDetail, text: text.stdout };
}

before(async () => {
  es = await startElasticsearch({ port: await freePort() });
});
after(() => es?.stop());

let nextTrace = 0;
const traceId = () => hex(++nextTrace, 32);

describe("Elasticsearch: traces with more spans than one request returns", () => {
  const now = Date.now() * 1000;
  // 300 traces of 60 spans each for c-42, one a second over the last five
  // minutes, oldest first: 18,000 spans.
  const traces: string[] = [];

  before(async () => {
    const spans: Span[] = [];
    for (let t = 0; t < 300; t++) {
      const id = traceId();
      traces.push(id);
      const startUs = now - (300 - t) * 1_000_000;
      for (let s = 0; s < 60; s++)
        spans.push({
          traceId: id,
          spanId: hex(t * 100 + s + 1, 16),
          ...(s === 0 ? {} : { parentId: hex(t * 100 + 1, 16) }),
          service: s === 0 ? "gateway" : "orders",
          name: s === 0 ? "POST /orders" : `SELECT products ${s}`,
          customer: "c-42",
          startUs: startUs + s * 100,
          durationUs: s === 0 ? 50_000 : 50,
        });
    }
    await index(spans);
  });

  it("finds the newest traces, each with all its spans", async () => {
    // 12,000 spans.
    const found = await search("--customer", "c-42", "--limit", "200");
    assert.deepEqual(
      found.map((t) => t.traceId),
      traces.slice(-200).reverse(),
    );
    for (const t of found) assert.equal(t.spanCount, 60, t.traceId);
  });

  it("shows a trace of more than 10,000 spans whole", async () => {
    const id = traceId();
    const startUs = now - 60_000_000;
    const spans: Span[] = [];
    for (let s = 0; s < 10_050; s++)
      spans.push({
        traceId: id,
        spanId: hex(1_000_000 + s, 16),
        ...(s === 0 ? {} : { parentId: hex(1_000_000, 16) }),
        service: s === 0 ? "gateway" : "worker",
        name: s === 0 ? "POST /imports" : "INSERT rows",
        customer: "c-43",
        startUs: startUs + s,
        durationUs: s === 0 ? 20_000_000 : 1,
      });
    await index(spans);
    const r = await threadline([
      "trace",
      id,
      "--json",
      "--backend",
      `elasticsearch=${es.url}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const detail = JSON.parse(r.stdout) as TraceDetail;
    assert.equal(detail.spans.length, 10_050);
    const [row] = await search("--customer", "c-43");
    assert.equal(row?.spanCount, 10_050);
  });
});

describe("Elasticsearch: filters over more traces than one search reads", () => {
  const now = Date.now() * 1000;
  const refunds: string[] = [];

  before(async () => {
    const spans: Span[] = [];
    const order = (startUs: number, route: string, odd: boolean) => {
      const id = traceId();
      const root = hex(nextTrace * 10, 16);
      const common = { traceId: id, parentId: root, customer: "c-7" };
      spans.push(
        {
          traceId: id,
          spanId: root,
          service: "gateway",
          name: `POST ${route}`,
          customer: "c-7",
          startUs,
          durationUs: odd ? 100_000 : 30_000,
          attributes: { "http.route": route },
        },
        {
          ...common,
          spanId: hex(nextTrace * 10 + 1, 16),
          service: "orders",
          name: "INSERT orders",
          startUs: startUs + 10_000,
          durationUs: 5_000,
        },
        // The refunds' charge fails at the payments provider, long after
        // the gateway answered: the trace lasts 2.1 s, no span of it 1 s.
        {
          ...common,
          spanId: hex(nextTrace * 10 + 2, 16),
          service: "worker",
          name: "charge",
          startUs: startUs + (odd ? 1_500_000 : 20_000),
          durationUs: odd ? 600_000 : 5_000,
          failed: odd,
          attributes: odd
            ? {
                "payment.provider": "acme",
                "http.response.status_code": 402,
              }
            : { "payment.provider": "other" },
        },
      );
      return id;
    };
    // Three refunds twenty minutes ago, then 1000 orders, newer.
    for (let i = 0; i < 3; i++)
      refunds.push(
        order(now - 1_200_000_000 + i * 1_000_000, "/refunds", true),
      );
    for (let i = 0; i < 1000; i++)
      order(now - 900_000_000 + i * 900_000, "/orders", false);
    await index(spans);
  });

  const ids = (t: TraceSummary[]) => t.map((x) => x.traceId).sort();

  it("finds the failed traces among many good ones", async () => {
    const found = await search(
      "--customer",
      "c-7",
      "--errors",
      "--since",
      "1h",
    );
    assert.deepEqual(ids(found), [...refunds].sort());
    for (const t of found) assert.equal(t.errorCount, 1);
  });

  it("finds traces by operation, attribute and duration", async () => {
    for (const filter of [
      ["--operation", "/refunds"],
      ["--operation", "POST /refunds"],
      ["--attr", "payment.provider=acme"],
      ["--attr", "http.response.status_code=402"],
      ["--min-duration", "1s"],
    ])
      assert.deepEqual(
        ids(await search("--customer", "c-7", ...filter)),
        [...refunds].sort(),
        filter.join(" "),
      );
  });

  it("needs each filter met by some span of the trace, not by one span", async () => {
    const found = await search(
      "--customer",
      "c-7",
      "--errors",
      "--operation",
      "/refunds",
      "--service",
      "orders",
      "--attr",
      "payment.provider=acme",
      "--min-duration",
      "2s",
    );
    assert.deepEqual(ids(found), [...refunds].sort());
    assert.deepEqual(
      await search("--customer", "c-7", "--errors", "--operation", "/orders"),
      [],
    );
    assert.deepEqual(
      await search("--customer", "c-7", "--min-duration", "3s"),
      [],
    );
  });

  it("returns as many traces as the limit asks", async () => {
    const found = await search("--customer", "c-7", "--limit", "1000");
    assert.equal(found.length, 1000);
    assert.ok(found.every((t) => t.rootName === "POST /orders"));
  });
});

describe("Elasticsearch: a customer on some spans of a trace only", () => {
  const now = Date.now() * 1000;
  const id = traceId();

  // The customer was known to the gateway only: the payments service, which
  // does not trust its caller's baggage, fails its span without it.
  before(() =>
    index([
      {
        traceId: id,
        spanId: hex(9_000_001, 16),
        service: "edge",
        name: "POST /checkout",
        customer: "c-91",
        startUs: now - 5_000_000,
        durationUs: 40_000,
      },
      {
        traceId: id,
        spanId: hex(9_000_002, 16),
        parentId: hex(9_000_001, 16),
        service: "payments",
        name: "charge",
        startUs: now - 4_990_000,
        durationUs: 20_000,
        failed: true,
        attributes: { "payment.provider": "acme" },
      },
    ]),
  );

  it("is found by the customer with filters that other spans meet", async () => {
    for (const filter of [
      [],
      ["--errors"],
      ["--service", "payments"],
      ["--operation", "charge"],
      ["--attr", "payment.provider=acme"],
      ["--errors", "--service", "payments"],
    ]) {
      const found = await search("--customer", "c-91", ...filter);
      assert.deepEqual(
        found.map((t) => t.traceId),
        [id],
        filter.join(" ") || "no filter",
      );
      assert.equal(found[0]!.customer, "c-91");
    }
    assert.deepEqual(
      await search("--customer", "c-91", "--service", "orders"),
      [],
    );
  });
});

// The exporter writes span events as log documents of their own: an
// exception as an error document in logs-apm.error-*, naming its span as
// parent.id, any other event in logs-apm.app.<service>-* with the span's
// span.id (as it wrote them for a span recorded by the SDK).
describe("Elasticsearch: a span's events", () => {
  const now = Date.now() * 1000;
  const id = traceId();
  const span = hex(9_100_001, 16);
  const common = {
    trace: { id },
    service: { name: "payments", language: { name: "nodejs" } },
    host: { hostname: "box", name: "box" },
    elastic: { mapping: { mode: "ecs" } },
  };

  before(async () => {
    await index([
      {
        traceId: id,
        spanId: span,
        service: "payments",
        name: "charge",
        customer: "c-93",
        startUs: now - 3_000_000,
        durationUs: 20_000,
        failed: true,
        message: "charge failed",
      },
    ]);
    const docs: Array<[string, Record<string, unknown>]> = [
      [
        "logs-apm.error-default",
        {
          ...common,
          "@timestamp": iso(now - 2_990_000),
          parent: { id: span },
          error: {
            exception: { type: "Error", message: "card declined by provider" },
            stack_trace: "Error: card declined by provider\n    at charge",
          },
          data_stream: {
            type: "logs",
            dataset: "apm.error",
            namespace: "default",
          },
        },
      ],
      [
        "logs-apm.app.payments-default",
        {
          ...common,
          "@timestamp": iso(now - 2_995_000),
          span: { id: span },
          event: { kind: "event" },
          message: "retry",
          attempt: 2,
          data_stream: {
            type: "logs",
            dataset: "apm.app.payments",
            namespace: "default",
          },
        },
      ],
    ];
    const res = await fetch(`${es.url}/_bulk?refresh=wait_for`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: docs
        .map(
          ([i, d]) =>
            `{"create":{"_index":"${i}","require_data_stream":true}}\n${JSON.stringify(d)}\n`,
        )
        .join(""),
    });
    const answer = (await res.json()) as { errors: boolean };
    assert.equal(answer.errors, false, JSON.stringify(answer).slice(0, 500));
  });

  it("are shown on their span, the exception under its OpenTelemetry names", async () => {
    const r = await threadline([
      "trace",
      id,
      "--json",
      "--backend",
      `elasticsearch=${es.url}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const detail = JSON.parse(r.stdout) as TraceDetail;
    assert.deepEqual(detail.logs, []);
    const [charge] = detail.spans;
    assert.equal(charge?.statusMessage, "charge failed");
    assert.equal(charge!.attributes["span.status.message"], undefined);
    assert.deepEqual(
      charge?.events.sort((a, b) => a.timeUs - b.timeUs),
      [
        { name: "retry", timeUs: now - 2_995_000, attributes: { attempt: 2 } },
        {
          name: "exception",
          timeUs: now - 2_990_000,
          attributes: {
            "exception.type": "Error",
            "exception.message": "card declined by provider",
            "exception.stacktrace":
              "Error: card declined by provider\n    at charge",
          },
        },
      ],
    );
    const text = await threadline([
      "trace",
      id,
      "--backend",
      `elasticsearch=${es.url}`,
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.doesNotMatch(text.stdout, /log/);
  });
});

// The gateway keeps every log line but only some traces, and holds a kept
// trace's spans until its sampling decision: most traces' lines are in
// Elasticsearch with no span beside them.
describe("Elasticsearch: a trace of log lines and no span", () => {
  // Set as the lines are written: a trace is in progress for a minute
  // after its last line, and the suites before this one take a while.
  let now = 0;
  const id = traceId();
  const old = traceId();
  const span = hex(9_200_001, 16);
  const line = (us: number, message: string) => ({
    "@timestamp": iso(us),
    trace: { id },
    span: { id: span },
    service: { name: "gateway" },
    customer: { id: "c-777" },
    log: { level: "info" },
    event: { severity: 9 },
    message,
    data_stream: { type: "logs", dataset: "generic", namespace: "default" },
  });

  before(async () => {
    now = Date.now() * 1000;
    const res = await fetch(`${es.url}/_bulk?refresh=wait_for`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: [
        line(now - 2_000_000, "order requested"),
        line(now - 1_999_000, "still waiting for orders"),
        { ...line(now - 600_000_000, "cart shown"), trace: { id: old } },
      ]
        .map(
          (d) =>
            `{"create":{"_index":"logs-generic-default","require_data_stream":true}}\n${JSON.stringify(d)}\n`,
        )
        .join(""),
    });
    const answer = (await res.json()) as { errors: boolean };
    assert.equal(answer.errors, false, JSON.stringify(answer).slice(0, 500));
  });

  it("is shown by its lines, as the local store shows it", async () => {
    const { detail, text } = await traceOf(id);
    assert.deepEqual(detail.spans, []);
    assert.deepEqual(
      detail.logs.map((l) => [l.timeUs, l.spanId, l.customer, l.body]),
      [
        [now - 2_000_000, span, "c-777", "order requested"],
        [now - 1_999_000, span, "c-777", "still waiting for orders"],
      ],
    );
    assert.match(
      text,
      new RegExp(
        `^trace ${id}  customer c-777  in progress: no span yet, 2 log lines `,
      ),
    );
    assert.match(text, /gateway: info: order requested\n/);
    assert.match(text, /gateway: info: still waiting for orders\n/);
    assert.equal(detail.spansNotKept, undefined);
  });

  // The gateway decides a trace within seconds of its first span: lines a
  // minute old with no span beside them are of a trace it did not keep.
  it("is shown as not kept once its spans can no longer come", async () => {
    const { detail, text } = await traceOf(old);
    assert.deepEqual(detail.spans, []);
    assert.equal(detail.spansNotKept, true);
    assert.match(
      text,
      new RegExp(
        `^trace ${old}  customer c-777  log lines only: no span of it was kept, 1 log lines `,
      ),
    );
    assert.doesNotMatch(text, /in progress|so far/);
  });
});

// Most of a customer's requests are in Elasticsearch as log lines alone (the
// gateway keeps a share of ordinary traces): a search for the customer lists
// them among the traces it kept, as the local store lists a request whose
// spans have not come.
describe("Elasticsearch: a customer's traces known by their log lines only", () => {
  // Set as the lines are written: a trace is in progress for a minute
  // after its last line, and the suites before this one take a while.
  let now = 0;
  const newer = traceId();
  const kept = traceId();
  const older = traceId();
  const past = traceId();
  const spansWithout = traceId();
  const line = (
    id: string,
    us: number,
    service: string,
    customer: string | undefined,
    message: string,
  ) => ({
    "@timestamp": iso(us),
    trace: { id },
    span: { id: hex(9_300_001, 16) },
    service: { name: service },
    ...(customer === undefined ? {} : { customer: { id: customer } }),
    log: { level: "info" },
    event: { severity: 9 },
    message,
    data_stream: { type: "logs", dataset: "generic", namespace: "default" },
  });

  before(async () => {
    now = Date.now() * 1000;
    await index([
      {
        traceId: kept,
        spanId: hex(9_300_010, 16),
        service: "gateway",
        name: "POST /refunds",
        customer: "c-800",
        startUs: now - 5_000_000,
        durationUs: 40_000,
        failed: true,
        attributes: { "http.route": "/refunds", "payment.provider": "acme" },
      },
      // Its spans do not carry the customer, its lines do: a trace with
      // spans is judged by them.
      {
        traceId: spansWithout,
        spanId: hex(9_300_020, 16),
        service: "gateway",
        name: "POST /orders",
        startUs: now - 6_000_000,
        durationUs: 40_000,
      },
    ]);
    const res = await fetch(`${es.url}/_bulk?refresh=wait_for`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: [
        line(newer, now - 3_000_000, "gateway", "c-800", "order requested"),
        line(newer, now - 2_900_000, "orders", "c-800", "order stored"),
        // A service that does not take the customer from its caller.
        line(newer, now - 2_800_000, "payments", undefined, "charged"),
        line(kept, now - 4_990_000, "gateway", "c-800", "refund requested"),
        line(spansWithout, now - 5_990_000, "gateway", "c-800", "ordered"),
        line(older, now - 8_000_000, "gateway", "c-800", "cart shown"),
        line(past, now - 600_000_000, "gateway", "c-800", "basket shown"),
        line(past, now - 599_000_000, "orders", "c-800", "basket priced"),
        line(traceId(), now - 1_000_000, "gateway", "c-801", "other customer"),
      ]
        .map(
          (d) =>
            `{"create":{"_index":"logs-generic-default","require_data_stream":true}}\n${JSON.stringify(d)}\n`,
        )
        .join(""),
    });
    const answer = (await res.json()) as { errors: boolean };
    assert.equal(answer.errors, false, JSON.stringify(answer).slice(0, 500));
  });

  it("lists them with the traces of spans, newest first, as the local store does", async () => {
    const found = await search("--customer", "c-800");
    assert.deepEqual(
      found.map((t) => t.traceId),
      [newer, kept, older, past],
    );
    assert.deepEqual(found[0], {
      traceId: newer,
      rootService: "gateway",
      rootName: "",
      customer: "c-800",
      startUs: now - 3_000_000,
      durationUs: 200_000,
      spanCount: 0,
      errorCount: 0,
      services: ["gateway", "orders", "payments"],
      inProgress: true,
    });
    assert.equal(found[1]!.spanCount, 1);
    assert.equal(found[1]!.inProgress, undefined);
    assert.equal(found[2]!.startUs, now - 8_000_000);
    assert.equal(found[2]!.inProgress, true);
    // Lines ten minutes old: the gateway did not keep their trace.
    assert.deepEqual(found[3], {
      traceId: past,
      rootService: "gateway",
      rootName: "",
      customer: "c-800",
      startUs: now - 600_000_000,
      durationUs: 1_000_000,
      spanCount: 0,
      errorCount: 0,
      services: ["gateway", "orders"],
      spansNotKept: true,
    });
    assert.deepEqual(
      (await search("--customer", "c-800", "--limit", "2")).map(
        (t) => t.traceId,
      ),
      [newer, kept],
    );
    const text = await threadline([
      "search",
      "--customer",
      "c-800",
      "--backend",
      `elasticsearch=${es.url}`,
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /gateway \(in progress\)/);
    assert.match(text.stdout, /gateway \(log lines only\)/);
  });

  it("leaves them out of a search that only spans can meet", async () => {
    for (const filter of [
      ["--errors"],
      ["--operation", "/refunds"],
      ["--attr", "payment.provider=acme"],
    ])
      assert.deepEqual(
        (await search("--customer", "c-800", ...filter)).map((t) => t.traceId),
        [kept],
        filter.join(" "),
      );
    // A service and a duration are met by lines, as in the local store.
    assert.deepEqual(
      (await search("--customer", "c-800", "--service", "payments")).map(
        (t) => t.traceId,
      ),
      [newer],
    );
    assert.deepEqual(
      (await search("--customer", "c-800", "--min-duration", "100ms")).map(
        (t) => t.traceId,
      ),
      [newer, past],
    );
  });
});
