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
import type { TraceDetail, TraceSummary } from "../src/index.ts";

const bin = fileURLToPath(new URL("../bin/threadline.js", import.meta.url));
const script = new URL(
  "../../../scripts/backends/elasticsearch.mjs",
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
  customer: string;
  startUs: number;
  durationUs: number;
  failed?: boolean;
  attributes?: Record<string, unknown>;
}

/** An ECS span document, as the gateway's elasticsearch exporter writes it. */
function doc(s: Span): Record<string, unknown> {
  return {
    "@timestamp": iso(s.startUs),
    trace: { id: s.traceId },
    span: { id: s.spanId, name: s.name, kind: "SERVER" },
    ...(s.parentId === undefined ? {} : { parent: { id: s.parentId } }),
    service: { name: s.service },
    customer: { id: s.customer },
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
    const found = await search("--customer", "c-42");
    assert.deepEqual(
      found.map((t) => t.traceId),
      traces.slice(-50).reverse(),
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
