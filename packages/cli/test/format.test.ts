import assert from "node:assert/strict";
import { it } from "node:test";
import { formatTrace } from "../src/format.ts";
import type { LogRecord, SpanRecord } from "../src/model.ts";

const traceId = "0af7651916cd43dd8448eb211c80319c";

function span(over: Partial<SpanRecord>): SpanRecord {
  return {
    traceId,
    spanId: "",
    parentSpanId: "",
    service: "gateway",
    name: "GET /checkout",
    kind: 2,
    startUs: 0,
    endUs: 10_000,
    statusCode: 0,
    statusMessage: "",
    customer: "c-42",
    attributes: {},
    events: [],
    links: [],
    resource: {},
    scope: "",
    ...over,
  };
}

function log(spanId: string, timeUs: number, body: string): LogRecord {
  return {
    timeUs,
    traceId,
    spanId,
    service: "gateway",
    severityNumber: 9,
    severityText: "info",
    body,
    attributes: {},
    customer: "c-42",
  };
}

it("prints a span's log lines and its calls in the order they happened", () => {
  const text = formatTrace({
    traceId,
    spans: [
      span({ spanId: "a".repeat(16) }),
      span({
        spanId: "b".repeat(16),
        parentSpanId: "a".repeat(16),
        service: "orders",
        kind: 3,
        name: "POST",
        startUs: 2000,
        endUs: 6000,
      }),
    ],
    logs: [
      log("a".repeat(16), 9000, "gateway done"),
      log("a".repeat(16), 1000, "gateway got request"),
    ],
  });
  const lines = text.split("\n");
  const at = (s: string) => lines.findIndex((l) => l.includes(s));
  assert.ok(at("gateway got request") < at("POST"), text);
  assert.ok(at("POST") < at("gateway done"), text);
});
