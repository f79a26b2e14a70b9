// threadline dev's receiver and API against real HTTP: valid OTLP in both
// encodings, hostile and oversized payloads, back-pressure, tokens, and the
// live stream.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import {
  LogsEncoder,
  ProtoReader,
  TraceEncoder,
  type SpanData,
} from "@threadline/otlp";
import { waitFor } from "@threadline/test-support";
import { ExportMetricsServiceRequest } from "@threadline/test-support/schema";
import {
  DevServerError,
  startDevServer,
  ViewerBackend,
  type DevServer,
  type TraceDetail,
} from "../src/index.ts";
import type { ServicePanels } from "../src/store.ts";
import { spanData } from "./span-data.ts";
import { tableCounts } from "./table-counts.ts";

let n = 0;
function span(customer: string): SpanData {
  n++;
  return spanData({
    traceId: n.toString(16).padStart(32, "a"),
    spanId: n.toString(16).padStart(16, "b"),
    attributes: { "customer.id": customer },
  });
}

const traces = new TraceEncoder({ "service.name": "api" });

async function post(
  url: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
): Promise<{
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}> {
  const res = await fetch(url, { method: "POST", body, headers });
  return {
    status: res.status,
    text: Buffer.from(await res.arrayBuffer()).toString("latin1"),
    headers: Object.fromEntries(res.headers),
  };
}

interface LiveEvent {
  event: string;
  id: string;
  data: string;
}

/** A live stream, read as it arrives: its text, and its events without the comments. */
function openLive(
  url: string,
  headers: Record<string, string> = {},
): { text: () => string; events: () => LiveEvent[]; close: () => void } {
  let text = "";
  const req = http.get(url, { headers }, (res) => {
    res.setEncoding("utf8");
    res.on("data", (c: string) => (text += c));
  });
  return {
    text: () => text,
    events: () =>
      text
        .split("\n\n")
        .slice(0, -1)
        .map((block) => {
          const e = { event: "message", id: "", data: "" };
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            const field = line.slice(0, colon);
            if (field === "event" || field === "id" || field === "data")
              e[field] = line.slice(colon + 2);
          }
          return e;
        })
        .filter((e) => e.data !== ""),
    close: () => req.destroy(),
  };
}

/** The trace summaries a live stream sent, in order. */
function liveTraces(events: LiveEvent[]): Array<{
  traceId: string;
  customer: string;
  spanCount: number;
  logsAdded?: number;
}> {
  return events
    .filter((e) => e.event === "trace")
    .map((e) => JSON.parse(e.data));
}

const proto = { "content-type": "application/x-protobuf" };
const json = { "content-type": "application/json" };

/** The spans an OTLP/JSON answer says were left out, and why. */
function rejection(text: string): { spans: number; message: string } {
  const partial = (
    JSON.parse(text) as {
      partialSuccess?: { rejectedSpans?: string; errorMessage?: string };
    }
  ).partialSuccess;
  return {
    spans: Number(partial?.rejectedSpans ?? 0),
    message: partial?.errorMessage ?? "",
  };
}
describe("the OTLP receiver", () => {
  let dev: DevServer;
  before(async () => {
    dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      maxBodyBytes: 256 * 1024,
      flushIntervalMs: 10,
    });
  });
  after(() => dev.close());

  it("accepts traces and logs as protobuf and JSON", async () => {
    assert.equal(
      (
        await post(
          `${dev.otlpUrl}/v1/traces`,
          traces.encode([span("c-1")]),
          proto,
        )
      ).status,
      200,
    );
    assert.equal(
      (
        await post(
          `${dev.otlpUrl}/v1/traces`,
          traces.encodeJson([span("c-1")]),
          json,
        )
      ).status,
      200,
    );
    assert.equal(
      (
        await post(
          `${dev.otlpUrl}/v1/traces`,
          gzipSync(traces.encode([span("c-1")])),
          { ...proto, "content-encoding": "gzip" },
        )
      ).status,
      200,
    );
    const logs = new LogsEncoder({ "service.name": "api" }, { name: "pino" });
    const record = {
      time: Date.now(),
      observedTime: Date.now(),
      severityNumber: 9,
      severityText: "info",
      body: "hi",
      attributes: {},
      traceId: undefined,
      spanId: undefined,
      traceFlags: 0,
    };
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/logs`, logs.encode([record]), proto))
        .status,
      200,
    );
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/metrics`, new Uint8Array(), proto)).status,
      200,
      "metrics are accepted",
    );
    await waitFor(
      async () =>
        (
          (await (
            await fetch(`${dev.viewerUrl}/api/search?customer=c-1`)
          ).json()) as { traces: unknown[] }
        ).traces.length === 3,
      { what: "three traces" },
    );
    // Writes land a batch at a time: the log line can be in the batch after
    // the traces' one.
    await waitFor(() => dev.store.counts().logs > 0, {
      what: "the log line",
    }).catch(() => undefined);
    assert.equal(dev.store.counts().logs, 1);
  });

  it("answers malformed payloads with 400, oversized ones with 413, other types with 415, each with a reason, and keeps working", async () => {
    const good = traces.encode([span("c-2")]);
    const cases: Array<
      [Uint8Array | string, Record<string, string>, number, RegExp]
    > = [
      [good.subarray(0, good.length - 5), proto, 400, /runs past|truncated/],
      [Uint8Array.from([0x0a, 0x05, 0x01]), proto, 400, /runs past/],
      ["{not json", json, 400, /invalid JSON/],
      [
        JSON.stringify({ resourceSpans: [{ scopeSpans: "nope" }] }),
        json,
        400,
        /scopeSpans must be an array/,
      ],
      [good, { "content-type": "text/plain" }, 415, /unsupported content-type/],
      [new Uint8Array(300 * 1024), proto, 413, /exceeds the limit/],
      [
        gzipSync(Buffer.alloc(50 * 1024 * 1024)),
        { ...proto, "content-encoding": "gzip" },
        413,
        /decompressed payload exceeds/,
      ],
      [
        Buffer.from("not gzip"),
        { ...proto, "content-encoding": "gzip" },
        400,
        /invalid gzip/,
      ],
    ];
    for (const [body, headers, status, reason] of cases) {
      const res = await post(`${dev.otlpUrl}/v1/traces`, body, headers);
      assert.equal(res.status, status, reason.source);
      assert.match(res.text, reason);
    }
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/traces`, good, proto)).status,
      200,
    );
    await waitFor(
      async () =>
        (
          (await (
            await fetch(`${dev.viewerUrl}/api/search?customer=c-2`)
          ).json()) as { traces: unknown[] }
        ).traces.length === 1,
      { what: "the good trace" },
    );
    assert.ok(dev.receiver.stats.rejected >= cases.length);
  });

  it("closes the connection of a body streamed past the limit once it has answered 413", async () => {
    const url = new URL(dev.otlpUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (answer += d));
    const closed = new Promise<void>((resolve) =>
      socket.once("close", resolve),
    );
    socket.on("error", () => {});
    socket.write(
      "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    // Far more than the limit, a chunk at a time, until the receiver closes.
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    let open = true;
    void closed.then(() => (open = false));
    while (open && sent < 64 * 1024 * 1024) {
      const more = socket.write(
        Buffer.concat([
          Buffer.from(`${chunk.length.toString(16)}\r\n`),
          chunk,
          Buffer.from("\r\n"),
        ]),
      );
      sent += chunk.length;
      if (!more)
        await Promise.race([
          new Promise((resolve) => socket.once("drain", resolve)),
          closed,
        ]);
    }
    await closed;
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /exceeds the limit/);
    assert.ok(sent < 64 * 1024 * 1024, `closed after ${sent} bytes`);
  });

  it("files a log line of a time that cannot be right by when it came", async () => {
    const traceId = randomBytes(16).toString("hex");
    const body = (line: Record<string, unknown>) =>
      JSON.stringify({
        resourceLogs: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: "cron" } },
              ],
            },
            scopeLogs: [{ logRecords: [line] }],
          },
        ],
      });
    const before = dev.store.counts().logs;
    const sentAt = Date.now();
    for (const line of [
      // Past 2^53 microseconds: SQLite would keep it, and every read fail.
      {
        timeUnixNano: "18446744073709551615",
        traceId,
        flags: 1,
        body: { stringValue: "from the far future" },
      },
      // A clock ahead by years, the same line twice: two lines, not a resend.
      { timeUnixNano: "4102444800000000000", body: { stringValue: "tick" } },
      { timeUnixNano: "4102444801000000000", body: { stringValue: "tick" } },
    ])
      assert.equal(
        (await post(`${dev.otlpUrl}/v1/logs`, body(line), json)).status,
        200,
      );
    await waitFor(() => dev.store.counts().logs === before + 3, {
      what: "the three lines",
    });
    const res = await fetch(`${dev.viewerUrl}/api/traces/${traceId}`);
    assert.equal(res.status, 200);
    const detail = (await res.json()) as TraceDetail;
    assert.equal(detail.logs.length, 1);
    const search = await fetch(`${dev.viewerUrl}/api/search?service=cron`);
    assert.equal(search.status, 200);
    const found = (await search.json()) as {
      traces: Array<{ traceId: string; startUs: number }>;
    };
    const trace = found.traces.find((t) => t.traceId === traceId);
    assert.ok(trace !== undefined, JSON.stringify(found));
    assert.ok(
      trace.startUs >= sentAt * 1000 && trace.startUs <= Date.now() * 1000,
      `filed at ${trace.startUs}, sent at ${sentAt * 1000}`,
    );
  });

  it("stores the valid spans and log records of a batch with an invalid one, and says how many it left out", async () => {
    const search = async (customer: string) =>
      (
        (await (
          await fetch(
            `${dev.viewerUrl}/api/search?customer=${customer}&limit=1000`,
          )
        ).json()) as { traces: unknown[] }
      ).traces.length;
    const readProto = (text: string) => {
      const r = new ProtoReader(Buffer.from(text, "latin1"));
      const out = { rejected: 0, message: "" };
      while (!r.done) {
        const [f, w] = r.tag();
        if (f !== 1) {
          r.skip(w);
          continue;
        }
        const ps = r.message();
        while (!ps.done) {
          const [pf, pw] = ps.tag();
          if (pf === 1) out.rejected = ps.varint();
          else if (pf === 2) out.message = ps.string();
          else ps.skip(pw);
        }
      }
      return out;
    };
    const batch = (customer: string) => {
      const spans = Array.from({ length: 100 }, () => span(customer));
      spans.splice(50, 0, { ...span(customer), spanId: "0".repeat(16) });
      return spans;
    };

    const asProto = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode(batch("c-partial-proto")),
      proto,
    );
    assert.equal(asProto.status, 200, asProto.text);
    assert.equal(asProto.headers["content-type"], "application/x-protobuf");
    const p = readProto(asProto.text);
    assert.equal(p.rejected, 1);
    assert.match(p.message, /span_id/);

    const asJson = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encodeJson(batch("c-partial-json")),
      json,
    );
    assert.equal(asJson.status, 200, asJson.text);
    const j = (
      JSON.parse(asJson.text) as {
        partialSuccess: { rejectedSpans: string; errorMessage: string };
      }
    ).partialSuccess;
    assert.equal(Number(j.rejectedSpans), 1);
    assert.match(j.errorMessage, /span_id/);

    await waitFor(
      async () =>
        (await search("c-partial-proto")) === 100 &&
        (await search("c-partial-json")) === 100,
      { what: "the 200 valid spans" },
    );

    // Log records: one with a severity OTLP does not have.
    const logsBefore = dev.store.counts().logs;
    const traceId = "e".repeat(32);
    const record = (severityNumber: number) => ({
      timeUnixNano: String(Date.now() * 1e6),
      severityNumber,
      body: { stringValue: `severity ${severityNumber}` },
      traceId,
    });
    const logs = await post(
      `${dev.otlpUrl}/v1/logs`,
      JSON.stringify({
        resourceLogs: [
          {
            scopeLogs: [{ logRecords: [record(9), record(99), record(17)] }],
          },
        ],
      }),
      json,
    );
    assert.equal(logs.status, 200, logs.text);
    const l = (
      JSON.parse(logs.text) as {
        partialSuccess: { rejectedLogRecords: string; errorMessage: string };
      }
    ).partialSuccess;
    assert.equal(Number(l.rejectedLogRecords), 1);
    assert.match(l.errorMessage, /severity 99/);
    await waitFor(() => dev.store.counts().logs === logsBefore + 2, {
      what: "the two valid log records",
    });
    assert.equal(dev.receiver.stats.rejectedLogRecords, 1);
    assert.equal(dev.receiver.stats.rejectedSpans, 2);
  });

  it("keeps a JSON batch whose spans carry NaN or Infinity, and leaves out only a span that does not read", async () => {
    const found = async (customer: string) =>
      (
        (await (
          await fetch(
            `${dev.viewerUrl}/api/search?customer=${customer}&limit=1000`,
          )
        ).json()) as { traces: Array<{ traceId: string }> }
      ).traces.map((t) => t.traceId);
    const odd: SpanData = {
      ...span("c-nan"),
      attributes: {
        "customer.id": "c-nan",
        ratio: NaN,
        ceiling: Infinity,
        floor: -Infinity,
      },
    };
    const plain = span("c-nan");
    const res = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encodeJson([odd, plain]),
      json,
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(
      (JSON.parse(res.text) as { partialSuccess?: unknown }).partialSuccess,
      undefined,
      res.text,
    );
    await waitFor(async () => (await found("c-nan")).length === 2, {
      what: "both spans of the batch",
    });
    // The same, written by another exporter: numbers as strings.
    const numbers = JSON.parse(traces.encodeJson([span("c-num")])) as {
      resourceSpans: Array<{
        scopeSpans: Array<{
          spans: Array<{ attributes: Array<{ key: string; value: unknown }> }>;
        }>;
      }>;
    };
    const spans = numbers.resourceSpans[0]!.scopeSpans[0]!.spans;
    spans[0]!.attributes.push({ key: "ratio", value: { doubleValue: "0.25" } });
    // A span whose value is of no type OTLP/JSON has: left out, alone.
    const unreadable = JSON.parse(
      traces.encodeJson([span("c-num")]),
    ) as typeof numbers;
    const bad = unreadable.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    bad.attributes.push({ key: "ratio", value: { doubleValue: "a lot" } });
    spans.push(bad);
    const mixed = await post(
      `${dev.otlpUrl}/v1/traces`,
      JSON.stringify(numbers),
      json,
    );
    assert.equal(mixed.status, 200, mixed.text);
    const partial = (
      JSON.parse(mixed.text) as {
        partialSuccess: { rejectedSpans: string; errorMessage: string };
      }
    ).partialSuccess;
    assert.equal(Number(partial.rejectedSpans), 1);
    assert.match(partial.errorMessage, /doubleValue must be a number/);
    await waitFor(async () => (await found("c-num")).length === 1, {
      what: "the span that reads",
    });
    const [traceId] = await found("c-num");
    const trace = (await (
      await fetch(`${dev.viewerUrl}/api/traces/${traceId}`)
    ).json()) as { spans: Array<{ attributes: Record<string, unknown> }> };
    assert.equal(trace.spans[0]!.attributes["ratio"], 0.25);
  });

  it("finds an attribute too long to be indexed by any key, one with a quote or a backslash included", async () => {
    const long = "y".repeat(200);
    const keys = ['q"k', "b\\", "a\\b", "a.b", "a[0]", "a'b", "$"];
    const traceId = "9e75".padEnd(32, "8");
    const res = await post(
      `${dev.otlpUrl}/v1/traces`,
      new TraceEncoder({
        "service.name": "odd-keys",
        'resource"key\\': long,
      }).encode([
        spanData({
          traceId,
          spanId: "9e75".padEnd(16, "8"),
          attributes: Object.fromEntries(keys.map((k) => [k, long])),
        }),
      ]),
      proto,
    );
    assert.equal(res.status, 200, res.text);
    const search = async (attr: string) => {
      const r = await fetch(
        `${dev.viewerUrl}/api/search?${new URLSearchParams({ attr })}`,
      );
      const text = await r.text();
      assert.equal(r.status, 200, `${attr.slice(0, 20)}: ${text}`);
      return (
        JSON.parse(text) as { traces: Array<{ traceId: string }> }
      ).traces.map((t) => t.traceId);
    };
    await waitFor(async () => (await search(`a.b=${long}`)).length === 1, {
      what: "the span",
    });
    for (const key of [...keys, 'resource"key\\'])
      assert.deepEqual(await search(`${key}=${long}`), [traceId], key);
    assert.deepEqual(await search(`q"k=${long}z`), []);
  });

  it("shows NaN and Infinity attribute values by their names, and finds them by them", async () => {
    const attributes = {
      "customer.id": "c-inf",
      ratio: NaN,
      ceiling: Infinity,
      floor: -Infinity,
      range: [-Infinity, 0.5, NaN],
    };
    const asJson = spanData({
      traceId: "1f".padEnd(32, "6"),
      spanId: "1f".padEnd(16, "6"),
      attributes,
    });
    const asProto = spanData({
      traceId: "1f".padEnd(32, "7"),
      spanId: "1f".padEnd(16, "7"),
      attributes,
    });
    for (const res of [
      await post(`${dev.otlpUrl}/v1/traces`, traces.encodeJson([asJson]), json),
      await post(`${dev.otlpUrl}/v1/traces`, traces.encode([asProto]), proto),
    ])
      assert.equal(res.status, 200, res.text);
    const found = async (attr: string) =>
      (
        (await (
          await fetch(
            `${dev.viewerUrl}/api/search?${new URLSearchParams({ customer: "c-inf", attr })}`,
          )
        ).json()) as { traces: Array<{ traceId: string }> }
      ).traces
        .map((t) => t.traceId)
        .sort();
    const both = [asJson.traceId, asProto.traceId].sort();
    await waitFor(async () => (await found("ratio=NaN")).length === 2, {
      what: "both spans",
    });
    for (const { traceId } of [asJson, asProto]) {
      const detail = (await (
        await fetch(`${dev.viewerUrl}/api/traces/${traceId}`)
      ).json()) as TraceDetail;
      assert.deepEqual(detail.spans[0]!.attributes, {
        "customer.id": "c-inf",
        ratio: "NaN",
        ceiling: "Infinity",
        floor: "-Infinity",
        range: ["-Infinity", 0.5, "NaN"],
      });
    }
    assert.deepEqual(await found("ceiling=Infinity"), both);
    assert.deepEqual(await found("floor=-Infinity"), both);
  });

  it("keeps every digit of an integer past 2^53, shown as its decimal and found by it", async () => {
    const traceId = "b16".padEnd(32, "3");
    const spanId = "b16".padEnd(16, "3");
    const id = 1234567890123456789n;
    const now = Date.now();
    // A log line as the SDK sends it (protobuf), a span as JSON.
    const logs = new LogsEncoder(
      { "service.name": "orders" },
      { name: "pino" },
    );
    const line = await post(
      `${dev.otlpUrl}/v1/logs`,
      logs.encode([
        {
          time: now,
          observedTime: now,
          severityNumber: 9,
          severityText: "info",
          body: "order placed",
          attributes: { "customer.id": "c-big", "order.id": id },
          traceId,
          spanId,
          traceFlags: 1,
        },
      ]),
      proto,
    );
    assert.equal(line.status, 200, line.text);
    const sent = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encodeJson([
        spanData({
          traceId,
          spanId,
          attributes: {
            "customer.id": "c-big",
            "order.id": id,
            "refund.id": -id,
            "order.count": 3,
            // Not indexed: searched by reading the spans.
            "messaging.rabbitmq.message.delivery_tag": 9007199254740993n,
          },
        }),
      ]),
      json,
    );
    assert.equal(sent.status, 200, sent.text);
    // A metric point's attributes too.
    const metrics = await post(
      `${dev.otlpUrl}/v1/metrics`,
      JSON.stringify({
        resourceMetrics: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: "big" } },
              ],
            },
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: "process.memory.usage",
                    gauge: {
                      dataPoints: [
                        {
                          timeUnixNano: String(BigInt(now) * 1_000_000n),
                          asInt: "1048576",
                          attributes: [
                            { key: "id", value: { intValue: String(id) } },
                          ],
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
      json,
    );
    assert.equal(metrics.status, 200, metrics.text);
    const detail = await waitFor(
      async () => {
        const t = (await (
          await fetch(`${dev.viewerUrl}/api/traces/${traceId}`)
        ).json()) as TraceDetail;
        return t.spans?.length === 1 && t.logs.length === 1 && t;
      },
      { what: "the span and its log line" },
    );
    assert.deepEqual(detail.spans[0]!.attributes, {
      "customer.id": "c-big",
      "order.id": "1234567890123456789",
      "refund.id": "-1234567890123456789",
      "order.count": 3,
      "messaging.rabbitmq.message.delivery_tag": "9007199254740993",
    });
    assert.deepEqual(detail.logs[0]!.attributes, {
      "customer.id": "c-big",
      "order.id": "1234567890123456789",
    });
    const found = async (attr: string) =>
      (
        (await (
          await fetch(
            `${dev.viewerUrl}/api/search?${new URLSearchParams({ attr })}`,
          )
        ).json()) as { traces: Array<{ traceId: string }> }
      ).traces.map((t) => t.traceId);
    assert.deepEqual(await found("order.id=1234567890123456789"), [traceId]);
    assert.deepEqual(await found("refund.id=-1234567890123456789"), [traceId]);
    assert.deepEqual(await found("order.id=1234567890123456800"), []);
    assert.deepEqual(
      await found("messaging.rabbitmq.message.delivery_tag=9007199254740993"),
      [traceId],
    );
  });

  it('keeps a metrics export that holds an instrument named "", and its other metrics', async () => {
    // Protobuf written by protobufjs from the specification's schema: the
    // OpenTelemetry JS SDK exports an instrument created with the name ""
    // (its name field absent) next to the others, at every interval.
    const at = String(BigInt(Date.now()) * 1_000_000n);
    const body = ExportMetricsServiceRequest.encode(
      ExportMetricsServiceRequest.fromObject({
        resourceMetrics: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: "unnamed" } },
              ],
            },
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: "process.memory.usage",
                    gauge: {
                      dataPoints: [{ timeUnixNano: at, asInt: 64 * 2 ** 20 }],
                    },
                  },
                  {
                    name: "",
                    sum: {
                      aggregationTemporality: 2,
                      isMonotonic: true,
                      dataPoints: [{ timeUnixNano: at, asDouble: 1 }],
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
    ).finish();
    const res = await post(`${dev.otlpUrl}/v1/metrics`, body, proto);
    assert.equal(res.status, 200, res.text);
    const panels = await waitFor(
      async () => {
        const b = (await (
          await fetch(`${dev.viewerUrl}/api/metrics?service=unnamed&since=5m`)
        ).json()) as { panels?: ServicePanels };
        return b.panels?.rssMb.length === 1 && b.panels;
      },
      { what: "the export's memory usage" },
    );
    assert.equal(panels.rssMb[0]![1], 64);
  });

  it("leaves out a span with no start time, and mends one with no end or ending before it starts, so its trace keeps its time", async () => {
    const now = Date.now();
    const traceId = "c0ffee".padEnd(32, "1");
    let k = 0;
    const part = (over: Partial<SpanData>) =>
      spanData({
        traceId,
        spanId: (++k).toString(16).padStart(16, "c"),
        parentSpanId: k === 1 ? undefined : "1".padStart(16, "c"),
        attributes: { "customer.id": "c-neg" },
        startTime: now,
        endTime: now + 40,
        ...over,
      });
    const root = part({});
    const child = part({ startTime: now + 5, endTime: now + 30 });
    const odd = [
      part({ startTime: 0 }),
      part({ endTime: 0 }),
      part({ startTime: now + 20, endTime: now + 10 }),
    ];
    const res = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encodeJson([root, odd[0]!, child, odd[1]!, odd[2]!]),
      json,
    );
    assert.equal(res.status, 200, res.text);
    const rejected = rejection(res.text);
    assert.equal(rejected.spans, 1, res.text);
    assert.match(rejected.message, /no start_time_unix_nano/);
    // Protobuf alike.
    const asProto = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([part({ startTime: 0 })]),
      proto,
    );
    assert.equal(asProto.status, 200);
    assert.match(asProto.text, /no start_time_unix_nano/);

    const found = async () =>
      (
        (await (
          await fetch(`${dev.viewerUrl}/api/search?customer=c-neg&since=15m`)
        ).json()) as {
          traces: Array<{ startUs: number; durationUs: number }>;
        }
      ).traces;
    await waitFor(async () => (await found()).length === 1, {
      what: "the trace, found within the last 15 minutes",
    });
    const [t] = await found();
    assert.equal(t!.startUs, now * 1000);
    assert.equal(t!.durationUs, 40_000);
    const detail = (await (
      await fetch(`${dev.viewerUrl}/api/traces/${traceId}`)
    ).json()) as TraceDetail;
    assert.deepEqual(
      detail.spans.map((s) => [s.spanId, s.startUs, s.endUs]).sort(),
      [
        [root.spanId, now * 1000, (now + 40) * 1000],
        [child.spanId, (now + 5) * 1000, (now + 30) * 1000],
        [odd[1]!.spanId, now * 1000, now * 1000],
        [odd[2]!.spanId, (now + 20) * 1000, (now + 20) * 1000],
      ].sort(),
    );
  });

  it("leaves out a span dated before 2000, as one whose exporter wrote milliseconds for nanoseconds, so its trace keeps its time", async () => {
    const now = Date.now();
    const traceId = "e90c4".padEnd(32, "5");
    const root = spanData({
      traceId,
      spanId: "e90c4".padEnd(16, "1"),
      attributes: { "customer.id": "c-ms" },
      startTime: now,
      endTime: now + 40,
    });
    // Epoch milliseconds read as nanoseconds: 1970-01-01T00:29.
    const child = spanData({
      traceId,
      spanId: "e90c4".padEnd(16, "2"),
      parentSpanId: root.spanId,
      attributes: { "customer.id": "c-ms" },
      startTime: now / 1e6,
      endTime: now / 1e6,
    });
    const res = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encodeJson([root, child]),
      json,
    );
    assert.equal(res.status, 200, res.text);
    const rejected = rejection(res.text);
    assert.equal(rejected.spans, 1, res.text);
    assert.match(rejected.message, /before 2000-01-01T00:00:00Z/);
    // Protobuf alike.
    const asProto = await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([child]),
      proto,
    );
    assert.equal(asProto.status, 200);
    assert.match(asProto.text, /before 2000-01-01T00:00:00Z/);
    const found = await waitFor(
      async () => {
        const t = (
          (await (
            await fetch(`${dev.viewerUrl}/api/search?customer=c-ms&since=15m`)
          ).json()) as { traces: Array<{ startUs: number; spanCount: number }> }
        ).traces;
        return t.length > 0 && t;
      },
      { what: "the trace, found within the last 15 minutes" },
    );
    assert.equal(found.length, 1);
    assert.equal(found[0]!.startUs, now * 1000);
    assert.equal(found[0]!.spanCount, 1);
  });

  it("leaves out a span that ends far in the future, so its trace is not kept for ever", async () => {
    const now = Date.now();
    const traceId = "f07e4".padEnd(32, "5");
    const spanJson = (spanId: string, endTimeUnixNano: string) => ({
      traceId,
      spanId,
      name: "GET /old",
      kind: 2,
      startTimeUnixNano: String(now * 1e6),
      endTimeUnixNano,
    });
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: {
            attributes: [
              { key: "service.name", value: { stringValue: "legacy" } },
            ],
          },
          scopeSpans: [
            {
              scope: { name: "t" },
              spans: [
                spanJson("f07e4".padEnd(16, "1"), "1e40"),
                // An hour ahead: a clock that is off, still kept.
                spanJson("f07e4".padEnd(16, "2"), String((now + 3600e3) * 1e6)),
              ],
            },
          ],
        },
      ],
    });
    const res = await post(`${dev.otlpUrl}/v1/traces`, body, json);
    assert.equal(res.status, 200, res.text);
    const rejected = rejection(res.text);
    assert.equal(rejected.spans, 1, res.text);
    assert.match(rejected.message, /end_time_unix_nano is more than a day/);
  });

  it("dates a log line that carries no time by when it was received, so it is found by time and kept by a prune", async () => {
    // A store of its own: the prune must see only this line.
    const own = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      const traceId = "71e1e55".padEnd(32, "4");
      const body = JSON.stringify({
        resourceLogs: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: "billing" } },
              ],
            },
            scopeLogs: [
              {
                logRecords: [
                  {
                    severityNumber: 9,
                    body: { stringValue: "charged card" },
                    traceId,
                    spanId: "b7ad6b7169203331",
                    flags: 1,
                    attributes: [
                      {
                        key: "customer.id",
                        value: { stringValue: "c-notime" },
                      },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      });
      const before = Date.now() * 1000;
      // Sent twice, as an exporter that retries may: stored once.
      for (let i = 0; i < 2; i++) {
        const res = await post(`${own.otlpUrl}/v1/logs`, body, json);
        assert.equal(res.status, 200, res.text);
      }
      const after = Date.now() * 1000;
      await waitFor(() => own.store.pending === 0, {
        what: "both requests written",
      });
      const found = (
        (await (
          await fetch(`${own.viewerUrl}/api/search?customer=c-notime&since=1m`)
        ).json()) as { traces: Array<{ traceId: string }> }
      ).traces;
      assert.deepEqual(
        found.map((t) => t.traceId),
        [traceId],
      );
      const detail = (await (
        await fetch(`${own.viewerUrl}/api/traces/${traceId}`)
      ).json()) as TraceDetail;
      assert.equal(detail.logs.length, 1);
      assert.ok(
        detail.logs[0]!.timeUs >= before && detail.logs[0]!.timeUs <= after,
        `${detail.logs[0]!.timeUs} not within ${before}..${after}`,
      );
      assert.equal(own.store.prune(), 0);
      assert.equal(own.store.counts().logs, 1);
    } finally {
      await own.close();
    }
  });

  it("shows a request still running, its spans not sent yet, by its log lines", async () => {
    const traceId = "bad5eed".padEnd(32, "2");
    const now = Date.now();
    const line = (service: string, at: number, traceFlags = 1) => ({
      encoder: new LogsEncoder({ "service.name": service }, { name: "pino" }),
      record: {
        time: at,
        observedTime: at,
        severityNumber: 9,
        severityText: "info",
        body: `${service} waiting`,
        attributes: { "customer.id": "c-hang2" },
        traceId: traceFlags === 1 ? traceId : "5".repeat(32),
        spanId: "d".repeat(16),
        traceFlags,
      },
    });
    for (const { encoder, record } of [
      line("gateway", now),
      line("payments", now + 30),
      // An unsampled request's line: its spans never come.
      line("gateway", now + 40, 0),
    ])
      assert.equal(
        (await post(`${dev.otlpUrl}/v1/logs`, encoder.encode([record]), proto))
          .status,
        200,
      );
    type Found = {
      traceId: string;
      inProgress?: boolean;
      spanCount: number;
      services: string[];
      startUs: number;
      durationUs: number;
      rootService: string;
    };
    const search = async (query: string) =>
      (
        (await (
          await fetch(`${dev.viewerUrl}/api/search?${query}`)
        ).json()) as { traces: Found[] }
      ).traces;
    await waitFor(
      async () =>
        (await search("customer=c-hang2&since=15m"))[0]?.services.length === 2,
      { what: "the running request, found by its customer" },
    );
    const [running, ...others] = await search("customer=c-hang2&since=15m");
    assert.deepEqual(others, [], "the unsampled request is not listed");
    assert.equal(running!.traceId, traceId);
    assert.equal(running!.inProgress, true);
    assert.equal(running!.spanCount, 0);
    assert.deepEqual(running!.services, ["gateway", "payments"]);
    assert.equal(running!.rootService, "gateway");
    assert.equal(running!.startUs, now * 1000);
    assert.equal(running!.durationUs, 30_000);
    assert.equal(
      (await search("customer=c-hang2&service=payments"))[0]?.traceId,
      traceId,
    );
    for (const query of ["", "?limit=10000"]) {
      const res = await fetch(`${dev.viewerUrl}/api/traces/${traceId}${query}`);
      assert.equal(res.status, 200, query);
      const detail = (await res.json()) as TraceDetail;
      assert.deepEqual(detail.spans, []);
      assert.deepEqual(
        detail.logs.map((l) => l.body),
        ["gateway waiting", "payments waiting"],
      );
    }

    // Its spans come as it ends: they summarise it from then on.
    const root = spanData({
      traceId,
      spanId: "d".repeat(16),
      startTime: now - 5,
      endTime: now + 20_000,
      attributes: { "customer.id": "c-hang2" },
    });
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/traces`, traces.encode([root]), proto))
        .status,
      200,
    );
    await waitFor(
      async () =>
        (await search("customer=c-hang2"))[0]?.inProgress === undefined,
      { what: "the trace, its span arrived" },
    );
    const [ended, ...more] = await search("customer=c-hang2");
    assert.deepEqual(more, []);
    assert.equal(ended!.spanCount, 1);
    assert.deepEqual(ended!.services, ["api"]);
    assert.equal(ended!.startUs, (now - 5) * 1000);
    assert.deepEqual(await search("customer=c-hang2&service=payments"), []);
  });

  it("rejects bad search parameters with a reason", async () => {
    const res = await fetch(`${dev.viewerUrl}/api/search?minDuration=soon`);
    assert.equal(res.status, 400);
    assert.match(
      ((await res.json()) as { error: string }).error,
      /not a duration/,
    );
    // errors=yes searched every trace, read as a filtered list.
    for (const errors of ["yes", "on", "TRUE"]) {
      const bad = await fetch(`${dev.viewerUrl}/api/search?errors=${errors}`);
      assert.equal(bad.status, 400, errors);
      assert.match(
        ((await bad.json()) as { error: string }).error,
        /errors must be 1, true, 0 or false/,
      );
    }
    for (const errors of ["1", "true", "0", "false"])
      assert.equal(
        (await fetch(`${dev.viewerUrl}/api/search?errors=${errors}`)).status,
        200,
        errors,
      );
  });

  it("pages a search by the cursor each page ends with, through traces that started together", async () => {
    // 1100 traces starting at one microsecond, more than a search returns
    // at once, and 30 older.
    const at = Date.now() - 60_000;
    const spans = Array.from({ length: 1130 }, (_, i) =>
      spanData({
        traceId: randomBytes(16).toString("hex"),
        spanId: randomBytes(8).toString("hex"),
        startTime: i < 1100 ? at : at - i,
        endTime: at + 5,
        attributes: { "customer.id": "c-cursor" },
      }),
    );
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/traces`, traces.encode(spans), proto))
        .status,
      200,
    );
    const page = async (query: string) => {
      const res = await fetch(`${dev.viewerUrl}/api/search?${query}`);
      assert.equal(res.status, 200);
      return (await res.json()) as {
        traces: Array<{ traceId: string }>;
        next?: string;
      };
    };
    await waitFor(
      async () =>
        (await page("customer=c-cursor&limit=1000")).next !== undefined,
      { what: "c-cursor's traces stored" },
    );
    const seen: string[] = [];
    let next: string | undefined;
    do {
      const got = await page(
        `customer=c-cursor&limit=300${next !== undefined ? `&cursor=${next}` : ""}`,
      );
      assert.ok(got.traces.length <= 300);
      seen.push(...got.traces.map((t) => t.traceId));
      next = got.next;
      assert.ok(seen.length <= spans.length, "the pages end");
    } while (next !== undefined);
    assert.equal(seen.length, new Set(seen).size, "no trace twice");
    assert.deepEqual(new Set(seen), new Set(spans.map((s) => s.traceId)));

    const res = await fetch(
      `${dev.viewerUrl}/api/search?customer=c-cursor&cursor=${at}000`,
    );
    assert.equal(res.status, 400);
    assert.match(
      ((await res.json()) as { error: string }).error,
      /not a cursor/,
    );
  });

  it("streams new traces to live subscribers, filtered by customer", async () => {
    const live = openLive(`${dev.viewerUrl}/api/live?customer=c-live`);
    await waitFor(() => live.text().includes(": live"), {
      what: "the stream to open",
    });
    await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([span("c-other"), span("c-live")]),
      proto,
    );
    await waitFor(() => live.text().includes("event: trace"), {
      what: "a live event",
    });
    const sent = liveTraces(live.events());
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.customer, "c-live");
    live.close();
  });

  it("streams a trace to a customer's live view whenever a search for that customer finds it", async () => {
    // A batch job: its root carries no customer, its children one each.
    const job = { ...span("c-job-a"), attributes: {} };
    const child = (customer: string, startTime: number) => ({
      ...span(customer),
      traceId: job.traceId,
      parentSpanId: job.spanId,
      startTime,
      endTime: startTime + 1,
    });
    const liveB = openLive(`${dev.viewerUrl}/api/live?customer=c-job-b`);
    await waitFor(() => liveB.events().at(-1)?.event === "position", {
      what: "the stream to open",
    });
    await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([
        job,
        child("c-job-a", job.startTime + 1),
        child("c-job-b", job.startTime + 2),
      ]),
      proto,
    );
    const live = await waitFor(() => liveTraces(liveB.events())[0], {
      what: "the trace on c-job-b's live view",
    });
    liveB.close();
    assert.equal(live.traceId, job.traceId);
    assert.equal(live.customer, "c-job-b");

    const found = (
      (await (
        await fetch(`${dev.viewerUrl}/api/search?customer=c-job-b`)
      ).json()) as { traces: Array<{ traceId: string; customer: string }> }
    ).traces;
    assert.deepEqual(
      found.map((t) => [t.traceId, t.customer]),
      [[job.traceId, "c-job-b"]],
    );

    // A page coming back gets it too, and a later span with no customer
    // still reaches the view of a customer an earlier span carried.
    const back = openLive(`${dev.viewerUrl}/api/live?customer=c-job-b&after=0`);
    const replayed = await waitFor(
      () => back.events().at(-1)?.event === "position" && back.events(),
      { what: "the replay" },
    );
    assert.deepEqual(
      liveTraces(replayed).map((t) => [t.traceId, t.customer]),
      [[job.traceId, "c-job-b"]],
    );
    await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([
        { ...child("c-job-b", job.startTime + 3), attributes: {} },
      ]),
      proto,
    );
    const later = await waitFor(
      () => liveTraces(back.events()).find((t) => t.spanCount === 4),
      { what: "the trace's fourth span live" },
    );
    back.close();
    assert.equal(later.customer, "c-job-b");
  });

  it("replays to a stream opened again what changed while it was away, each trace once", async () => {
    const first = openLive(`${dev.viewerUrl}/api/live?customer=c-back`);
    await waitFor(() => first.events().at(-1)?.event === "position", {
      what: "the stream to open",
    });
    const a = span("c-back");
    await post(`${dev.otlpUrl}/v1/traces`, traces.encode([a]), proto);
    // The last change this page heard of, as the viewer keeps it.
    const seen = await waitFor(
      () => first.events().find((e) => e.event === "trace"),
      { what: "the first trace live" },
    );
    first.close();

    // While no page listens: a's second span, a new trace, another customer's.
    const b = span("c-back");
    const more = {
      ...span("c-back"),
      traceId: a.traceId,
      parentSpanId: a.spanId,
    };
    await post(
      `${dev.otlpUrl}/v1/traces`,
      traces.encode([more, b, span("c-elsewhere")]),
      proto,
    );
    await waitFor(
      async () => {
        const res = await fetch(`${dev.viewerUrl}/api/search?customer=c-back`);
        const found = (
          (await res.json()) as { traces: Array<{ spanCount: number }> }
        ).traces;
        return (
          found
            .map((t) => t.spanCount)
            .sort()
            .join() === "1,2"
        );
      },
      { what: "both traces stored" },
    );

    const back = (headers: Record<string, string>, query: string) =>
      openLive(`${dev.viewerUrl}/api/live?customer=c-back${query}`, headers);
    let position = "";
    for (const stream of [
      back({}, `&after=${seen.id}`),
      // What a browser sends when it reconnects by itself.
      back({ "last-event-id": seen.id }, ""),
    ]) {
      const events = await waitFor(
        () => stream.events().at(-1)?.event === "position" && stream.events(),
        { what: "the stream's position" },
      );
      stream.close();
      assert.deepEqual(
        liveTraces(events)
          .map((t) => [t.traceId, t.spanCount])
          .sort(),
        [
          [a.traceId, 2],
          [b.traceId, 1],
        ].sort(),
      );
      assert.ok(Number(events.at(-1)!.id) > Number(seen.id));
      position = events.at(-1)!.id;
    }

    // A browser reconnecting by itself keeps the address it opened, with
    // the ?after= of its first visit, and says what it heard last: only
    // what came after that is sent.
    const reconnected = back(
      { "last-event-id": position },
      `&after=${seen.id}`,
    );
    const heard = await waitFor(
      () =>
        reconnected.events().at(-1)?.event === "position" &&
        reconnected.events(),
      { what: "the stream's position" },
    );
    reconnected.close();
    assert.deepEqual(liveTraces(heard), []);

    // A stream opened without a number starts with what arrives next.
    const fresh = back({}, "");
    const events = await waitFor(
      () => fresh.events().at(-1)?.event === "position" && fresh.events(),
      { what: "the stream's position" },
    );
    fresh.close();
    assert.deepEqual(liveTraces(events), []);
  });

  it("tells live subscribers when a trace's log lines arrive after its spans", async () => {
    const root = span("c-logs");
    await post(`${dev.otlpUrl}/v1/traces`, traces.encode([root]), proto);
    await waitFor(
      async () =>
        (await fetch(`${dev.viewerUrl}/api/traces/${root.traceId}`)).ok,
      { what: "the trace stored" },
    );
    const live = openLive(`${dev.viewerUrl}/api/live?customer=c-logs`);
    await waitFor(() => live.text().includes(": live"), {
      what: "the stream to open",
    });
    const logs = new LogsEncoder({ "service.name": "api" }, { name: "pino" });
    const line = {
      time: Date.now(),
      observedTime: Date.now(),
      severityNumber: 9,
      severityText: "info",
      body: "charged",
      attributes: { "customer.id": "c-logs" },
      traceId: root.traceId,
      spanId: root.spanId,
      traceFlags: 1,
    };
    await post(`${dev.otlpUrl}/v1/logs`, logs.encode([line]), proto);
    await waitFor(() => live.text().includes("event: trace"), {
      what: "a live event for the log line",
    });
    assert.deepEqual(
      liveTraces(live.events()).map((t) => [t.traceId, t.logsAdded]),
      [[root.traceId, 1]],
    );
    live.close();
  });
});

describe("a trace read and the live stream", () => {
  /** The events a stream sent up to its position, and the stream closed. */
  const replay = async (url: string, headers: Record<string, string> = {}) => {
    const stream = openLive(url, headers);
    try {
      return await waitFor(
        () => stream.events().at(-1)?.event === "position" && stream.events(),
        { what: `the position of ${url}` },
      );
    } finally {
      stream.close();
    }
  };

  it("says where the stream stood when the trace was read, so that a stream opened from there sends what landed since", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      const read = async (traceId: string) => {
        const res = await fetch(`${dev.viewerUrl}/api/traces/${traceId}`);
        const body = (await res.json()) as Partial<TraceDetail> & {
          live: number;
        };
        return { status: res.status, body };
      };
      const root = span("c-read");
      const missing = await read(root.traceId);
      assert.equal(missing.status, 404);
      assert.ok(Number.isSafeInteger(missing.body.live), "a 404 says it too");

      await post(`${dev.otlpUrl}/v1/traces`, traces.encode([root]), proto);
      const first = await waitFor(
        async () => {
          const r = await read(root.traceId);
          return r.status === 200 && r.body;
        },
        { what: "the trace stored" },
      );
      assert.ok(first.live > missing.body.live);
      // The trace as a backend reading the viewer gives it: the position
      // is the viewer's own.
      assert.deepEqual(
        await new ViewerBackend(dev.viewerUrl).getTrace(root.traceId),
        dev.store.getTraceSync(root.traceId),
      );

      // Read, and then a second span, before any stream is open.
      const child = {
        ...span("c-read"),
        traceId: root.traceId,
        parentSpanId: root.spanId,
      };
      await post(`${dev.otlpUrl}/v1/traces`, traces.encode([child]), proto);
      const second = await waitFor(
        async () => {
          const r = await read(root.traceId);
          return r.body.spans?.length === 2 && r.body;
        },
        { what: "the second span stored" },
      );
      for (const after of [missing.body.live, first.live]) {
        const events = await replay(
          `${dev.viewerUrl}/api/live?customer=c-read&after=${after}`,
        );
        assert.deepEqual(
          events.map((e) => e.event),
          ["trace", "position"],
        );
        assert.deepEqual(
          liveTraces(events).map((t) => [t.traceId, t.spanCount]),
          [[root.traceId, 2]],
        );
        assert.equal(events.at(-1)!.id, String(second.live));
      }
      const none = await replay(
        `${dev.viewerUrl}/api/live?customer=c-read&after=${second.live}`,
      );
      assert.deepEqual(
        none.map((e) => e.event),
        ["position"],
      );
    } finally {
      await dev.close();
    }
  });

  it("tells a stream resumed from further back than it keeps that changes are missing, and sends what it keeps", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      const position = async () =>
        (await replay(`${dev.viewerUrl}/api/live`)).at(-1)!.id;
      const before = await position();
      // One batch of more changes than the stream keeps to replay.
      const many = Array.from({ length: 2001 }, () =>
        spanData({
          traceId: randomBytes(16).toString("hex"),
          spanId: randomBytes(8).toString("hex"),
          attributes: { "customer.id": "c-many" },
        }),
      );
      await post(`${dev.otlpUrl}/v1/traces`, traces.encode(many), proto);
      await waitFor(() => dev.store.counts().traces === many.length, {
        what: "the traces stored",
      });
      const now = await position();
      assert.notEqual(now, before);

      // As a page opens it again, and as a browser reconnects by itself.
      for (const [query, headers] of [
        [`?after=${before}`, {}],
        ["", { "last-event-id": before }],
      ] as const) {
        const events = await replay(
          `${dev.viewerUrl}/api/live${query}`,
          headers,
        );
        assert.equal(events[0]!.event, "incomplete");
        assert.equal(liveTraces(events).length, 1000, "what is kept");
        assert.equal(events.at(-1)!.id, now);
      }
      // From where it stands now, nothing is missing.
      const events = await replay(`${dev.viewerUrl}/api/live?after=${now}`);
      assert.deepEqual(
        events.map((e) => e.event),
        ["position"],
      );
    } finally {
      await dev.close();
    }
  });

  it("tells a stream resumed from a number of its previous run that changes are missing", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-dev-restart-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, "store.sqlite");
    const options = { dbPath, otlpPort: 0, viewerPort: 0, flushIntervalMs: 10 };
    let dev = await startDevServer(options);
    let heard: string;
    try {
      await post(
        `${dev.otlpUrl}/v1/traces`,
        traces.encode([span("c-restart")]),
        proto,
      );
      await waitFor(() => dev.store.counts().traces === 1, {
        what: "the first trace stored",
      });
      heard = (await replay(`${dev.viewerUrl}/api/live`)).at(-1)!.id;
    } finally {
      await dev.close();
    }
    dev = await startDevServer(options);
    try {
      // What the services send as the viewer comes back.
      const late = span("c-restart");
      await post(`${dev.otlpUrl}/v1/traces`, traces.encode([late]), proto);
      await waitFor(() => dev.store.counts().traces === 2, {
        what: "the second trace stored",
      });
      const events = await replay(`${dev.viewerUrl}/api/live`, {
        "last-event-id": heard,
      });
      assert.deepEqual(
        events.map((e) => e.event),
        ["incomplete", "trace", "position"],
      );
      assert.equal(liveTraces(events)[0]!.traceId, late.traceId);
    } finally {
      await dev.close();
    }
  });
});

describe("a trace read in part", () => {
  it("gives its first spans to start, their log lines and the lines of no span, and the whole counts", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      const traceId = randomBytes(16).toString("hex");
      const [root, first, second] = Array.from({ length: 3 }, () =>
        randomBytes(8).toString("hex"),
      ) as [string, string, string];
      const now = Date.now();
      const at = (ms: number) => String(BigInt(now + ms) * 1_000_000n);
      const resource = {
        attributes: [{ key: "service.name", value: { stringValue: "api" } }],
      };
      // Sent latest first: the spans are read in the order they started.
      const span = (spanId: string, parentSpanId: string, ms: number) => ({
        traceId,
        spanId,
        parentSpanId,
        name: `span at ${ms}`,
        kind: 1,
        startTimeUnixNano: at(ms),
        endTimeUnixNano: at(ms + 5),
        ...(ms === 20 ? { status: { code: 2 } } : {}),
      });
      const spans = {
        resourceSpans: [
          {
            resource,
            scopeSpans: [
              {
                spans: [
                  span(second, root, 20),
                  span(first, root, 10),
                  span(root, "", 0),
                ],
              },
            ],
          },
        ],
      };
      const line = (spanId: string, ms: number, body: string) => ({
        timeUnixNano: at(ms),
        severityNumber: 9,
        body: { stringValue: body },
        traceId,
        spanId,
      });
      const logs = {
        resourceLogs: [
          {
            resource,
            scopeLogs: [
              {
                logRecords: [
                  line(root, 1, "of the root"),
                  line(second, 21, "of the second child"),
                  line("", 30, "of no span"),
                ],
              },
            ],
          },
        ],
      };
      assert.equal(
        (await post(`${dev.otlpUrl}/v1/traces`, JSON.stringify(spans), json))
          .status,
        200,
      );
      assert.equal(
        (await post(`${dev.otlpUrl}/v1/logs`, JSON.stringify(logs), json))
          .status,
        200,
      );
      await waitFor(() => dev.store.counts().logs === 3, {
        what: "the trace and its lines",
      });
      const read = async (query: string) => {
        const res = await fetch(
          `${dev.viewerUrl}/api/traces/${traceId}${query}`,
        );
        return { status: res.status, body: (await res.json()) as TraceDetail };
      };
      const part = (await read("?limit=2")).body;
      assert.deepEqual(
        part.spans.map((s) => s.spanId),
        [root, first],
      );
      assert.deepEqual(
        part.logs.map((l) => l.body),
        ["of the root", "of no span"],
      );
      assert.equal(part.summary?.spanCount, 3);
      assert.equal(part.summary?.errorCount, 1);
      assert.equal(part.logCount, 3);
      const whole = (await read("")).body;
      assert.equal(whole.spans.length, 3);
      assert.equal(whole.logs.length, 3);
      assert.equal(whole.summary, undefined);
      for (const bad of ["0", "-1", "ten", "1.5", ""])
        assert.equal((await read(`?limit=${bad}`)).status, 400, bad);
    } finally {
      await dev.close();
    }
  });
});

describe("back-pressure", () => {
  it("answers 429 with Retry-After instead of buffering without bound", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      maxPending: 2,
      flushIntervalMs: 60_000,
    });
    try {
      assert.equal(
        (
          await post(
            `${dev.otlpUrl}/v1/traces`,
            traces.encode([span("a"), span("b")]),
            proto,
          )
        ).status,
        200,
      );
      const res = await post(
        `${dev.otlpUrl}/v1/traces`,
        traces.encode([span("c")]),
        proto,
      );
      assert.equal(res.status, 429);
      assert.equal(res.headers["retry-after"], "1");
      dev.store.flush();
      assert.equal(
        (
          await post(
            `${dev.otlpUrl}/v1/traces`,
            traces.encode([span("c")]),
            proto,
          )
        ).status,
        200,
      );
    } finally {
      await dev.close();
    }
  });
});

describe("a live stream nobody reads", () => {
  it("is closed once it holds megabytes unsent, and a stream that reads goes on", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    const stalled = net.connect(
      Number(new URL(dev.viewerUrl).port),
      "127.0.0.1",
    );
    try {
      stalled.write("GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      stalled.pause();
      const reading = openLive(`${dev.viewerUrl}/api/live`);
      await waitFor(() => reading.text().includes(": live"), {
        what: "the reading stream to open",
      });
      // About 40 MB of live events, each batch read by the reading stream
      // before the next: far more than the socket's buffers hold.
      const name = "x".repeat(4000);
      let sent = 0;
      for (let batch = 0; batch < 10; batch++) {
        const spans = Array.from({ length: 1000 }, () => ({
          ...span("c-stall"),
          traceId: randomBytes(16).toString("hex"),
          name,
        }));
        const res = await post(
          `${dev.otlpUrl}/v1/traces`,
          traces.encode(spans),
          proto,
        );
        assert.equal(res.status, 200, res.text);
        sent += spans.length;
        await waitFor(() => liveTraces(reading.events()).length === sent, {
          what: `${sent} traces on the reading stream`,
        });
      }
      reading.close();
      // What the stalled stream was sent stops short: the viewer closed it.
      let received = 0;
      stalled.on("data", (c: Buffer) => (received += c.length));
      const closed = new Promise((resolve) => stalled.once("close", resolve));
      stalled.on("error", () => {});
      stalled.resume();
      await waitFor(() => stalled.destroyed || stalled.readableEnded, {
        what: "the stalled stream closed",
      });
      await closed;
      assert.ok(received < 30e6, `the stalled stream got ${received} bytes`);
    } finally {
      stalled.destroy();
      await dev.close();
    }
  });
});

describe("the store's counts", () => {
  it("are the tables' through late spans, log lines, a restart and pruning", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-dev-counts-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, "store.sqlite");
    const truth = new DatabaseSync(dbPath);
    t.after(() => truth.close());
    const tables = () => tableCounts(truth);
    const stats = async (dev: DevServer) => {
      const s = (await (await fetch(`${dev.viewerUrl}/api/stats`)).json()) as {
        traces: number;
        spans: number;
        logs: number;
      };
      return { traces: s.traces, spans: s.spans, logs: s.logs };
    };
    const settled = async (dev: DevServer, spans: number, logs: number) => {
      const s = await waitFor(
        async () => {
          const s = await stats(dev);
          return s.spans === spans && s.logs === logs && s;
        },
        { what: `${spans} spans and ${logs} log lines` },
      );
      assert.deepEqual(s, tables());
      return s;
    };
    const id = (bytes: number) => randomBytes(bytes).toString("hex");
    const old = id(16);
    const fresh = id(16);
    const root = id(8);
    const now = Date.now();

    let dev = await startDevServer({
      dbPath,
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      // A trace from two hours ago, and the child of a request whose root
      // comes in a later export.
      const first = traces.encode([
        spanData({
          traceId: old,
          spanId: id(8),
          startTime: now - 7_200_000,
          endTime: now - 7_199_000,
        }),
        spanData({ traceId: fresh, spanId: id(8), parentSpanId: root }),
      ]);
      await post(`${dev.otlpUrl}/v1/traces`, first, proto);
      await settled(dev, 2, 0);
      await post(
        `${dev.otlpUrl}/v1/traces`,
        traces.encode([spanData({ traceId: fresh, spanId: root })]),
        proto,
      );
      // Sent again: stored and counted once.
      await post(`${dev.otlpUrl}/v1/traces`, first, proto);
      assert.deepEqual(await settled(dev, 3, 0), {
        traces: 2,
        spans: 3,
        logs: 0,
      });
      const logs = new LogsEncoder({ "service.name": "api" }, { name: "pino" });
      const line = (traceId: string | undefined) => ({
        time: now,
        observedTime: now,
        severityNumber: 9,
        severityText: "info",
        body: "order stored",
        attributes: {},
        traceId,
        spanId: traceId === undefined ? undefined : root,
        traceFlags: 0,
      });
      await post(
        `${dev.otlpUrl}/v1/logs`,
        logs.encode([line(fresh), line(undefined)]),
        proto,
      );
      await settled(dev, 3, 2);
    } finally {
      await dev.close();
    }

    // Opened again with an hour's limit: the old trace is pruned at start.
    dev = await startDevServer({
      dbPath,
      otlpPort: 0,
      viewerPort: 0,
      maxAgeMs: 3_600_000,
    });
    try {
      assert.deepEqual(await settled(dev, 2, 2), {
        traces: 1,
        spans: 2,
        logs: 2,
      });
    } finally {
      await dev.close();
    }
  });
});

describe("a start-up prune", () => {
  it("leaves a store over its size limit with an empty write-ahead log", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-dev-prune-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, "store.sqlite");
    let dev = await startDevServer({
      dbPath,
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
    try {
      // About 7 MB of log lines, a minute of 5,000 at a time.
      const logs = new LogsEncoder({ "service.name": "poller" }, { name: "t" });
      const now = Date.now();
      for (let m = 6; m > 0; m--) {
        const lines = Array.from({ length: 5000 }, (_, i) => ({
          time: now - m * 60_000 + i,
          observedTime: now - m * 60_000 + i,
          severityNumber: 9,
          severityText: "info",
          body: `poll tick ${m}.${i} ${"y".repeat(200)}`,
          attributes: {},
          traceId: undefined,
          spanId: undefined,
          traceFlags: 0,
        }));
        const res = await post(
          `${dev.otlpUrl}/v1/logs`,
          logs.encode(lines),
          proto,
        );
        assert.equal(res.status, 200, res.text);
      }
      await waitFor(() => dev.store.counts().logs === 30_000, {
        what: "the 30,000 lines stored",
      });
    } finally {
      await dev.close();
    }
    const maxBytes = 1024 * 1024;
    dev = await startDevServer({
      dbPath,
      otlpPort: 0,
      viewerPort: 0,
      maxBytes,
    });
    try {
      assert.ok(dev.store.counts().logs < 30_000 / 4);
      // The prune's own writes are not left in the log until the next one.
      const wal = statSync(`${dbPath}-wal`).size;
      assert.ok(wal < 64 * 1024, `${wal} bytes in the write-ahead log`);
      const file = statSync(dbPath).size;
      assert.ok(file <= 2 * maxBytes, `${file} bytes in the store file`);
    } finally {
      await dev.close();
    }
  });
});

describe("a prune while serving", () => {
  it("answers requests between its rounds", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-dev-rounds-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const maxBytes = 1024 * 1024;
    const dev = await startDevServer({
      dbPath: join(dir, "store.sqlite"),
      otlpPort: 0,
      viewerPort: 0,
      maxBytes,
      pruneIntervalMs: 200,
    });
    try {
      // About 7 MB of log lines, written at once: the next prune finds the
      // store far over its limit.
      const now = Date.now() * 1000;
      for (let m = 6; m > 0; m--)
        dev.store.ingestLogs([
          {
            resource: { "service.name": "poller" },
            scopes: [
              {
                scope: { name: "t", version: "" },
                logs: Array.from({ length: 5000 }, (_, i) => ({
                  timeUs: now - m * 60_000_000 + i,
                  observedUs: now - m * 60_000_000 + i,
                  severityNumber: 9,
                  severityText: "info",
                  body: `poll tick ${m}.${i} ${"y".repeat(200)}`,
                  attributes: {},
                  droppedAttributesCount: 0,
                  traceId: "",
                  spanId: "",
                  flags: 0,
                  eventName: "",
                })),
              },
            ],
          },
        ]);
      dev.store.flush();
      const full = dev.store.sizeBytes();
      assert.ok(full > 4 * maxBytes, `${full} bytes`);
      // What the viewer answers until the prune is done: some answer
      // comes while the store is neither full nor down to its limit.
      const seen: number[] = [];
      for (;;) {
        const stats = (await (
          await fetch(`${dev.viewerUrl}/api/stats`)
        ).json()) as { sizeBytes: number };
        seen.push(stats.sizeBytes);
        if (stats.sizeBytes <= maxBytes) break;
      }
      assert.ok(
        seen.some((n) => n < full && n > maxBytes),
        `answers saw ${seen.join(", ")} bytes`,
      );
    } finally {
      await dev.close();
    }
  });
});

describe("a store another process holds", () => {
  it("writes what it kept back once the file is free, without more arriving", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-dev-busy-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, "store.sqlite");
    const dev = await startDevServer({ dbPath, otlpPort: 0, viewerPort: 0 });
    const other = new DatabaseSync(dbPath);
    try {
      other.exec("BEGIN IMMEDIATE");
      const sent = await post(
        `${dev.otlpUrl}/v1/traces`,
        traces.encode([span("held")]),
        proto,
      );
      assert.equal(sent.status, 200);
      // The first write waits out the lock's timeout and gives up.
      await waitFor(() => dev.store.pending > 0 && Date.now(), {
        what: "the span kept for another try",
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      other.exec("COMMIT");
      other.close();
      await waitFor(() => dev.store.counts().traces === 1, {
        what: "the span written on a later try",
      });
    } finally {
      if (other.isOpen) other.close();
      await dev.close();
    }
  });
});

describe("tokens", () => {
  it("answers only requests naming a loopback host when there is no token", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
    });
    const { request } = await import("node:http");
    const status = (url: string, host: string, method = "GET") =>
      new Promise<number>((resolve, reject) => {
        const req = request(url, { method, headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    try {
      const port = new URL(dev.viewerUrl).port;
      // A page an attacker's name was pointed at 127.0.0.1 for (DNS rebinding).
      assert.equal(
        await status(`${dev.viewerUrl}/api/stats`, `attacker.example:${port}`),
        403,
      );
      assert.equal(
        await status(
          `${dev.viewerUrl}/api/watch/c-99?for=1m`,
          `attacker.example:${port}`,
          "POST",
        ),
        403,
      );
      assert.equal(
        await status(`${dev.otlpUrl}/threadline/v1/watch`, "attacker.example"),
        403,
      );
      assert.equal(
        await status(
          `${dev.viewerUrl}/api/stats`,
          "localhost.attacker.example",
        ),
        403,
      );
      // Loopback in every spelling a browser or client may send.
      for (const host of [
        `localhost:${port}`,
        `LocalHost.:${port}`,
        `app.localhost:${port}`,
        `127.0.0.1:${port}`,
        `[::1]:${port}`,
        `[0:0:0:0:0:0:0:1]:${port}`,
        `[::ffff:127.0.0.1]:${port}`,
      ])
        assert.equal(
          await status(`${dev.viewerUrl}/api/stats`, host),
          200,
          host,
        );
    } finally {
      await dev.close();
    }
  });

  it("refuses to listen beyond loopback without a token", async () => {
    await assert.rejects(
      startDevServer({
        dbPath: ":memory:",
        host: "0.0.0.0",
        otlpPort: 0,
        viewerPort: 0,
      }),
      (e: unknown) =>
        e instanceof DevServerError && /without a token/.test(e.message),
    );
  });

  it("requires the token for OTLP and the API when one is set", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      host: "0.0.0.0",
      otlpPort: 0,
      viewerPort: 0,
      token: "s3cret",
    });
    const otlp = dev.otlpUrl.replace("0.0.0.0", "127.0.0.1");
    const viewer = dev.viewerUrl.replace("0.0.0.0", "127.0.0.1");
    try {
      assert.equal(
        (await post(`${otlp}/v1/traces`, traces.encode([span("t")]), proto))
          .status,
        401,
      );
      assert.equal(
        (
          await post(`${otlp}/v1/traces`, traces.encode([span("t")]), {
            ...proto,
            authorization: "Bearer wrong",
          })
        ).status,
        401,
      );
      assert.equal(
        (
          await post(`${otlp}/v1/traces`, traces.encode([span("t")]), {
            ...proto,
            authorization: "Bearer s3cret",
          })
        ).status,
        200,
      );
      assert.equal((await fetch(`${viewer}/api/stats`)).status, 401);
      assert.equal(
        (await fetch(`${viewer}/api/stats?token=s3cret`)).status,
        200,
      );
      assert.equal(
        (
          await fetch(`${viewer}/api/stats`, {
            headers: { authorization: "Bearer s3cret" },
          })
        ).status,
        200,
      );
    } finally {
      await dev.close();
    }
  });
});

describe("the watch list", () => {
  let dev: DevServer;
  before(async () => {
    dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
    });
  });
  after(() => dev.close());

  const watchDoc = async (res: Response) =>
    (await res.json()) as {
      watch: Array<{ customer: string; until: string; level: string }>;
    };
  const watch = (body: unknown, contentType = "application/json") =>
    fetch(`${dev.viewerUrl}/api/watch`, {
      method: "POST",
      headers: { "content-type": contentType },
      body: JSON.stringify(body),
    });

  it("is set and cleared through the API, and served to services next to OTLP", async () => {
    const before = Date.now();
    const set = await watch({
      customer: "c-42",
      forMs: 60_000,
      level: "trace",
    });
    assert.equal(set.status, 200);
    const { watch: list } = await watchDoc(set);
    assert.deepEqual(
      list.map((e) => [e.customer, e.level]),
      [["c-42", "trace"]],
    );
    const until = Date.parse(list[0]!.until);
    assert.ok(until >= before + 60_000 && until <= Date.now() + 60_000);

    // What services poll: the same document, with an ETag for cheap re-reads.
    const served = await fetch(`${dev.otlpUrl}/threadline/v1/watch`);
    const etag = served.headers.get("etag")!;
    assert.deepEqual((await watchDoc(served)).watch, list);
    const again = await fetch(`${dev.otlpUrl}/threadline/v1/watch`, {
      headers: { "if-none-match": etag },
    });
    assert.equal(again.status, 304);

    const cleared = await fetch(`${dev.viewerUrl}/api/watch?customer=c-42`, {
      method: "DELETE",
    });
    assert.deepEqual((await watchDoc(cleared)).watch, []);
    assert.equal(
      (
        await fetch(`${dev.viewerUrl}/api/watch?customer=c-42`, {
          method: "DELETE",
        })
      ).status,
      404,
    );
    const changed = await fetch(`${dev.otlpUrl}/threadline/v1/watch`, {
      headers: { "if-none-match": etag },
    });
    assert.equal(changed.status, 200);

    // Ids no path segment can carry (URLs resolve `..`) go in the query.
    assert.equal((await watch({ customer: "..", forMs: 60_000 })).status, 200);
    const dots = await fetch(`${dev.viewerUrl}/api/watch?customer=..`, {
      method: "DELETE",
    });
    assert.equal(dots.status, 200);
    assert.deepEqual((await watchDoc(dots)).watch, []);
  });

  it("refuses bad requests with a reason, and cross-site form posts", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ customer: "c 42", forMs: 1000 }, /customer/],
      [{ customer: "c-42" }, /forMs/],
      [{ customer: "c-42", forMs: 8 * 24 * 3600 * 1000 }, /at most/],
      [{ customer: "c-42", forMs: 1000, level: "info" }, /level/],
    ];
    for (const [body, reason] of cases) {
      const res = await watch(body);
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error: string }).error, reason);
    }
    assert.equal(
      (await watch({ customer: "c-42", forMs: 1000 }, "text/plain")).status,
      415,
    );
    const res = await fetch(`${dev.viewerUrl}/api/watch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    assert.equal(res.status, 400);
    assert.deepEqual(
      (await watchDoc(await fetch(`${dev.viewerUrl}/api/watch`))).watch,
      [],
    );
  });

  it("answers a body that is not a JSON object with 400, not 500", async () => {
    for (const body of [null, [], "c-42", 42]) {
      const res = await watch(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(
        ((await res.json()) as { error: string }).error,
        /a JSON object/,
      );
    }
  });

  it("is bounded", async () => {
    for (let i = 0; i < 100; i++)
      assert.equal(
        (await watch({ customer: `c-${i}`, forMs: 60_000 })).status,
        200,
      );
    const full = await watch({ customer: "c-100", forMs: 60_000 });
    assert.equal(full.status, 409);
    assert.match(
      ((await full.json()) as { error: string }).error,
      /100 customers/,
    );
    // Renewing one already watched is fine.
    assert.equal(
      (await watch({ customer: "c-7", forMs: 120_000 })).status,
      200,
    );
  });
});

describe("a service running as several instances", () => {
  let dev: DevServer;
  before(async () => {
    dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      flushIntervalMs: 10,
    });
  });
  after(() => dev.close());

  const attributes = (o: Record<string, string>) =>
    Object.entries(o).map(([key, v]) => ({ key, value: { stringValue: v } }));
  const resource = (instance: string) => ({
    attributes: attributes({
      "service.name": "cluster",
      "service.instance.id": instance,
    }),
  });
  const nanos = (ms: number) => String(BigInt(ms) * 1_000_000n);

  it("draws the instances' totals, not one instance's counts read against another's", async () => {
    const t0 = Date.now() - 120_000;
    /**
     * One cumulative export of an instance: its requests (`failed` of them
     * with an error) and their mean latency, its CPU time, RSS, event-loop
     * delay p99 and database health.
     */
    const exported = (
      instance: string,
      timeMs: number,
      e: {
        ok: number;
        failed: number;
        seconds: number;
        cpu: number;
        rssMb: number;
        p99: number;
        health: number;
      },
    ) => {
      const at = nanos(timeMs);
      const requests = (count: number, error: boolean) => ({
        timeUnixNano: at,
        count: String(count),
        sum: count * e.seconds,
        attributes: attributes(
          error
            ? { "http.route": "/x", "error.type": "500" }
            : { "http.route": "/x" },
        ),
      });
      return {
        resourceMetrics: [
          {
            resource: resource(instance),
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: "http.server.request.duration",
                    histogram: {
                      aggregationTemporality: 2,
                      dataPoints: [
                        requests(e.ok, false),
                        ...(e.failed > 0 ? [requests(e.failed, true)] : []),
                      ],
                    },
                  },
                  {
                    name: "process.cpu.time",
                    sum: {
                      aggregationTemporality: 2,
                      isMonotonic: true,
                      dataPoints: [{ timeUnixNano: at, asDouble: e.cpu }],
                    },
                  },
                  {
                    name: "process.memory.usage",
                    gauge: {
                      dataPoints: [
                        { timeUnixNano: at, asInt: String(e.rssMb * 2 ** 20) },
                      ],
                    },
                  },
                  {
                    name: "nodejs.eventloop.delay",
                    gauge: {
                      dataPoints: [
                        {
                          timeUnixNano: at,
                          asDouble: e.p99,
                          attributes: attributes({
                            "nodejs.eventloop.delay.percentile": "p99",
                          }),
                        },
                      ],
                    },
                  },
                  {
                    name: "threadline.health.status",
                    gauge: {
                      dataPoints: [
                        {
                          timeUnixNano: at,
                          asInt: String(e.health),
                          attributes: attributes({
                            "threadline.component": "pg",
                          }),
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      };
    };
    // Every 10 s, 5 s apart, each serving 10 requests a second: A from its
    // start at 10 ms each on half a core, B (started earlier, 1 request a
    // second failing) at 30 ms on a whole core. A stops after 5 exports.
    const sent: Array<[number, unknown]> = [];
    for (let i = 0; i < 5; i++)
      sent.push([
        t0 + i * 10_000,
        exported("A", t0 + i * 10_000, {
          ok: 100 * (i + 1),
          failed: 0,
          seconds: 0.01,
          cpu: 5 * (i + 1),
          rssMb: 100,
          p99: 0.005,
          health: 0,
        }),
      ]);
    for (let i = 0; i < 8; i++)
      sent.push([
        t0 + 5_000 + i * 10_000,
        exported("B", t0 + 5_000 + i * 10_000, {
          ok: 1000 + 90 * (i + 1),
          failed: 200 + 10 * (i + 1),
          seconds: 0.03,
          cpu: 100 + 10 * (i + 1),
          rssMb: 300,
          p99: 0.05,
          health: 2,
        }),
      ]);
    sent.sort((a, b) => a[0] - b[0]);
    for (const [, body] of sent) {
      const res = await post(
        `${dev.otlpUrl}/v1/metrics`,
        JSON.stringify(body),
        json,
      );
      assert.equal(res.status, 200, res.text);
    }
    const panels = await waitFor(
      async () => {
        const body = (await (
          await fetch(`${dev.viewerUrl}/api/metrics?service=cluster&since=5m`)
        ).json()) as { panels?: ServicePanels };
        return body.panels?.rssMb.length === 13 && body.panels;
      },
      { what: "both instances' exports" },
    );
    // Read at each export of either: what each instance last reported,
    // A's until twice its interval has passed (after 60 s). An instance's
    // first export counts from zero over the interval after it, and B had
    // served 1200 requests before its first.
    const at = (s: number) => t0 + s * 1000;
    const series = (values: Array<[number, number]>) =>
      values.map(([s, v]) => [at(s), v]);
    const round = (points: Array<[number, number]>, digits = 0) =>
      points.map(([t, v]): [number, number] => [t, Number(v.toFixed(digits))]);
    // Seconds after t0 of every export: both every 5 s, then B's alone.
    const times = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 55, 65, 75];
    assert.deepEqual(
      round(panels.requestsPerSecond),
      series(
        times.map((s) => [s, s === 0 ? 10 : s <= 10 ? 140 : s <= 60 ? 20 : 10]),
      ),
    );
    assert.deepEqual(
      round(panels.errorsPerSecond),
      series(times.map((s) => [s, s === 0 ? 0 : s <= 10 ? 21 : 1])),
    );
    assert.deepEqual(
      round(panels.latencyMs).filter(([t]) => t >= at(15)),
      series(times.filter((s) => s >= 15).map((s) => [s, s <= 60 ? 20 : 30])),
    );
    assert.deepEqual(
      round(panels.cpuShare, 2),
      series(
        times
          .filter((s) => s >= 10)
          .map((s) => [s, s === 10 ? 0.5 : s <= 60 ? 1.5 : 1]),
      ),
    );
    assert.deepEqual(
      round(panels.rssMb),
      series(times.map((s) => [s, s === 0 ? 100 : s <= 60 ? 400 : 300])),
    );
    assert.deepEqual(
      round(panels.eventLoopDelayP99Ms),
      series(times.map((s) => [s, s === 0 ? 5 : 50])),
    );
    assert.deepEqual(
      panels.health["pg"],
      series(times.map((s) => [s, s === 0 ? 0 : 2])),
    );
  });

  it("keeps each instance's alarms apart: one clearing leaves another's active", async () => {
    const now = Date.now();
    const alarm = (
      instance: string,
      ms: number,
      action: "raise" | "clear",
    ) => ({
      resourceLogs: [
        {
          resource: resource(instance),
          scopeLogs: [
            {
              logRecords: [
                {
                  timeUnixNano: nanos(ms),
                  severityNumber: action === "raise" ? 17 : 9,
                  body: { stringValue: `alarm ${action}` },
                  attributes: attributes({
                    "event.name":
                      action === "raise" ? "alarm.raised" : "alarm.cleared",
                    "alarm.id": "http_5xx_ratio",
                    "alarm.name": "http_5xx_ratio",
                    "alarm.severity":
                      action === "raise" ? "critical" : "cleared",
                    "alarm.source": "http",
                    "alarm.reason": "5xx ratio 0.4",
                  }),
                },
              ],
            },
          ],
        },
      ],
    });
    for (const body of [
      alarm("A", now - 20_000, "raise"),
      alarm("B", now - 19_000, "raise"),
      alarm("B", now - 10_000, "clear"),
    ])
      assert.equal(
        (await post(`${dev.otlpUrl}/v1/logs`, JSON.stringify(body), json))
          .status,
        200,
      );
    const alarms = await waitFor(
      async () => {
        const body = (await (
          await fetch(`${dev.viewerUrl}/api/metrics?service=cluster`)
        ).json()) as {
          alarms: {
            active: Array<{ instance: string; action: string }>;
            history: unknown[];
          };
        };
        return body.alarms.history.length === 3 && body.alarms;
      },
      { what: "the three alarm events" },
    );
    assert.deepEqual(
      alarms.active.map((e) => [e.instance, e.action]),
      [["A", "raise"]],
    );
  });

  it("keeps an alarm active however many newer alarm events follow it", async () => {
    const now = Date.now();
    const event = (id: string, ms: number, action: "raise" | "clear") => ({
      timeUnixNano: nanos(ms),
      severityNumber: action === "raise" ? 17 : 9,
      body: { stringValue: `alarm ${action}` },
      attributes: attributes({
        "event.name": action === "raise" ? "alarm.raised" : "alarm.cleared",
        "alarm.id": id,
        "alarm.name": "dependency_unhealthy",
        "alarm.severity": action === "raise" ? "critical" : "cleared",
        "alarm.source": id,
        "alarm.reason": `${id} is unhealthy`,
      }),
    });
    // Raised a minute ago and never cleared; another alarm has flapped
    // 120 times since, last cleared.
    const logRecords = [event("stuck", now - 60_000, "raise")];
    for (let i = 0; i < 120; i++)
      logRecords.push(
        event("flappy", now - 50_000 + i * 100, i % 2 ? "clear" : "raise"),
      );
    const body = {
      resourceLogs: [
        {
          resource: {
            attributes: attributes({
              "service.name": "flapping",
              "service.instance.id": "A",
            }),
          },
          scopeLogs: [{ logRecords }],
        },
      ],
    };
    assert.equal(
      (await post(`${dev.otlpUrl}/v1/logs`, JSON.stringify(body), json)).status,
      200,
    );
    const alarms = await waitFor(
      async () => {
        const body = (await (
          await fetch(`${dev.viewerUrl}/api/metrics?service=flapping`)
        ).json()) as {
          alarms: {
            active: Array<{ instance: string; id: string; action: string }>;
            history: Array<{ id: string }>;
          };
        };
        return (
          body.alarms.history.some((e) => e.id === "flappy") && body.alarms
        );
      },
      { what: "the alarm events" },
    );
    assert.equal(
      alarms.history.length,
      100,
      "the history stays the newest 100",
    );
    assert.deepEqual(
      alarms.active.map((e) => [e.instance, e.id, e.action]),
      [["A", "stuck", "raise"]],
    );
  });
});
