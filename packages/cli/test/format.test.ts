import assert from "node:assert/strict";
import { it } from "node:test";
import { formatSearch, formatTrace } from "../src/format.ts";
import type { LogRecord, SpanRecord, TraceSummary } from "../src/model.ts";

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

it("prints a trace of tens of thousands of spans at once, not in minutes", () => {
  // A migration's root and one query per row. Finding each span's children
  // by a pass over every span took 43 s for 70,000 spans.
  const children = 20_000;
  const root = span({ spanId: "f".repeat(16), endUs: children * 10 });
  const spans = [root];
  for (let i = 0; i < children; i++)
    spans.push(
      span({
        spanId: i.toString(16).padStart(16, "0"),
        parentSpanId: root.spanId,
        service: "orders",
        kind: 3,
        name: "SELECT rows",
        startUs: i * 10,
        endUs: i * 10 + 5,
      }),
    );
  const started = performance.now();
  const text = formatTrace({ traceId, spans, logs: [] });
  const tookMs = performance.now() - started;
  assert.equal(
    text.split("\n").filter((l) => l.includes("SELECT rows")).length,
    children,
  );
  // Linear, it takes a few tens of milliseconds; quadratic, several seconds.
  assert.ok(
    tookMs < 2_000,
    `${children + 1} spans took ${Math.round(tookMs)} ms`,
  );
});

// What a request wrote: it retitles the terminal, clears it, links
// elsewhere (OSC 8), and forges a line of the tree.
const hostile =
  "login failed for \u001b]0;HACKED\u0007\u001b[2J\u001b]8;;https://evil.example\u001b\\here\u001b]8;;\u001b\\\r\n└─ payments  client  POST ok\u009b31m\u007f\tend";

/** Control characters other than tab: C0, DEL and C1. */
const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

it("shows control characters in a trace's text as escapes, not to the terminal", () => {
  const text = formatTrace({
    traceId,
    spans: [
      span({
        spanId: "a".repeat(16),
        service: `gateway${hostile}`,
        name: `GET ${hostile}`,
        customer: `c-42${hostile}`,
        statusCode: 2,
        statusMessage: hostile,
        kind: 1,
      }),
      span({
        spanId: "b".repeat(16),
        parentSpanId: "a".repeat(16),
        kind: 3,
        attributes: { "db.query.text": hostile },
      }),
    ],
    logs: [
      { ...log("a".repeat(16), 1000, hostile), severityText: hostile },
      { ...log("c".repeat(16), 2000, hostile), service: hostile },
    ],
  });
  assert.doesNotMatch(text.replaceAll("\n", ""), control, JSON.stringify(text));
  assert.ok(
    text.includes(
      "\\x1b]0;HACKED\\x07\\x1b[2J\\x1b]8;;https://evil.example\\x1b\\here",
    ),
    text,
  );
  assert.ok(
    text.includes("\\r\\n└─ payments  client  POST ok\\u009b31m\\x7f\tend"),
    text,
  );
  // One line per span, log line and header: nothing forged.
  assert.equal(text.split("\n").length - 1, 5, text);
});

it("shows control characters in the search table as escapes", () => {
  const trace: TraceSummary = {
    traceId,
    startUs: 0,
    durationUs: 1000,
    rootService: `gateway${hostile}`,
    rootName: hostile,
    customer: `c-42${hostile}`,
    spanCount: 1,
    errorCount: 0,
    services: [hostile],
  };
  const text = formatSearch([trace]);
  assert.doesNotMatch(text.replaceAll("\n", ""), control, JSON.stringify(text));
  assert.equal(text.split("\n").length - 1, 2, text);
  assert.ok(text.includes(`c-42login failed for \\x1b]0;HACKED\\x07`), text);
});

it("tells a trace of lines still running from one whose spans were not kept", () => {
  const lines = (over: Partial<TraceSummary>): TraceSummary => ({
    traceId,
    startUs: 0,
    durationUs: 1000,
    rootService: "gateway",
    rootName: "",
    customer: "c-42",
    spanCount: 0,
    errorCount: 0,
    services: ["gateway"],
    ...over,
  });
  const search = formatSearch([
    lines({ inProgress: true }),
    lines({ spansNotKept: true }),
  ]).split("\n");
  assert.match(search[1]!, / gateway \(in progress\) /);
  assert.match(search[2]!, / gateway \(log lines only\) /);
  const logs = [log("", 0, "cart shown"), log("", 2000, "cart priced")];
  assert.match(
    formatTrace({ traceId, spans: [], logs }),
    /^trace \S+  customer c-42  in progress: no span yet, 2 log lines  1 services \(gateway\)  2\.0 ms so far\n/,
  );
  assert.match(
    formatTrace({ traceId, spans: [], logs, spansNotKept: true }),
    /^trace \S+  customer c-42  log lines only: no span of it was kept, 2 log lines  1 services \(gateway\)  2\.0 ms\n/,
  );
});
