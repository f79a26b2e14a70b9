// The decoder against payloads written by three different writers: ours,
// protobufjs (from a schema written from the specification) and hand-made
// JSON; and against malformed and hostile input.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExportTraceServiceRequest } from "@threadline/test-support/schema";
import {
  decodeLogsJson,
  decodeLogsProto,
  decodeTracesJson,
  decodeTracesProto,
  LogsEncoder,
  OtlpDecodeError,
  type LogRecordData,
  TraceEncoder,
  type SpanData,
} from "../src/index.ts";
import { emptyGroups } from "./empty-groups.ts";

const span: SpanData = {
  scope: { name: "s", version: "1" },
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  parentSpanId: "00f067aa0ba902b7",
  parentIsRemote: false,
  traceState: "a=1",
  traceFlags: 1,
  name: "SELECT orders",
  kind: 2,
  startTime: 1_700_000_000_000,
  endTime: 1_700_000_000_250,
  attributes: {
    "customer.id": "c-42",
    n: -3,
    ok: true,
    ratio: 1.5,
    list: ["x", "y"],
  },
  droppedAttributesCount: 0,
  events: [
    {
      name: "e",
      time: 1_700_000_000_100,
      attributes: { k: "v" },
      droppedAttributesCount: 0,
    },
  ],
  droppedEventsCount: 0,
  links: [
    {
      traceId: "1af7651916cd43dd8448eb211c80319c",
      spanId: "c7ad6b7169203331",
      traceState: undefined,
      traceFlags: 1,
      attributes: undefined,
      droppedAttributesCount: 0,
    },
  ],
  droppedLinksCount: 0,
  statusCode: 2,
  statusMessage: "bad",
};

function checkDecoded(spans: ReturnType<typeof decodeTracesProto>): void {
  assert.equal(spans.length, 1);
  assert.equal(spans[0]!.resource["service.name"], "orders");
  const s = spans[0]!.scopes[0]!.spans[0]!;
  assert.equal(spans[0]!.scopes[0]!.scope.name, "s");
  assert.equal(s.traceId, span.traceId);
  assert.equal(s.spanId, span.spanId);
  assert.equal(s.parentSpanId, span.parentSpanId);
  assert.equal(s.name, "SELECT orders");
  assert.equal(s.kind, 3);
  assert.equal(s.startUs, 1_700_000_000_000_000);
  assert.equal(s.endUs - s.startUs, 250_000);
  assert.deepEqual(s.attributes, {
    "customer.id": "c-42",
    n: -3,
    ok: true,
    ratio: 1.5,
    list: ["x", "y"],
  });
  assert.equal(s.statusCode, 2);
  assert.equal(s.statusMessage, "bad");
  assert.equal(s.events[0]!.name, "e");
  assert.equal(s.links[0]!.spanId, "c7ad6b7169203331");
}

describe("decodeTraces", () => {
  const encoder = new TraceEncoder({ "service.name": "orders" });

  it("reads our protobuf", () =>
    checkDecoded(decodeTracesProto(encoder.encode([span]))));
  it("reads our JSON", () =>
    checkDecoded(decodeTracesJson(JSON.parse(encoder.encodeJson([span])))));

  it("reads protobuf written by protobufjs", () => {
    const msg = ExportTraceServiceRequest.fromObject({
      resourceSpans: [
        {
          resource: {
            attributes: [
              { key: "service.name", value: { stringValue: "billing" } },
            ],
          },
          scopeSpans: [
            {
              scope: { name: "x" },
              spans: [
                {
                  traceId: Buffer.from(
                    "0af7651916cd43dd8448eb211c80319c",
                    "hex",
                  ),
                  spanId: Buffer.from("b7ad6b7169203331", "hex"),
                  name: "op",
                  kind: 2,
                  startTimeUnixNano: "1700000000000000000",
                  endTimeUnixNano: "1700000000001000000",
                  attributes: [
                    {
                      key: "k",
                      value: {
                        kvlistValue: {
                          values: [{ key: "inner", value: { intValue: 7 } }],
                        },
                      },
                    },
                  ],
                },
              ],
            },
          ],
        },
      ],
    });
    const [rs] = decodeTracesProto(
      ExportTraceServiceRequest.encode(msg).finish(),
    );
    const s = rs!.scopes[0]!.spans[0]!;
    assert.equal(rs!.resource["service.name"], "billing");
    assert.equal(s.endUs - s.startUs, 1000);
    assert.deepEqual(s.attributes, { k: { inner: 7 } });
  });

  it("accepts enum names and numbers as strings in JSON", () => {
    const [rs] = decodeTracesJson({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  traceId: "0af7651916cd43dd8448eb211c80319c",
                  spanId: "b7ad6b7169203331",
                  kind: "SPAN_KIND_CLIENT",
                  startTimeUnixNano: 5000,
                  endTimeUnixNano: "9000",
                  status: { code: "STATUS_CODE_OK" },
                },
              ],
            },
          ],
        },
      ],
    });
    const s = rs!.scopes[0]!.spans[0]!;
    assert.equal(s.kind, 3);
    assert.equal(s.statusCode, 1);
    assert.equal(s.endUs, 9);
  });

  it("rejects malformed input with a reason, never half-read data", () => {
    const good = encoder.encode([span]);
    const bad: Array<[Uint8Array, RegExp]> = [
      [good.subarray(0, good.length - 7), /runs past|truncated/],
      [Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), /runs past/],
      [Uint8Array.from([0x08, 0x01]), /wire type/],
      [Uint8Array.from([0x0f]), /wire type 7|unsupported/],
      [Uint8Array.from([0x00]), /field number 0/],
      [Uint8Array.from(Array(11).fill(0xff)), /varint/],
    ];
    for (const [bytes, reason] of bad)
      assert.throws(
        () => decodeTracesProto(bytes),
        (e: unknown) => e instanceof OtlpDecodeError && reason.test(e.message),
      );
  });

  it("rejects spans without valid ids, and hostile nesting", () => {
    assert.throws(
      () =>
        decodeTracesJson({
          resourceSpans: [
            {
              scopeSpans: [
                { spans: [{ traceId: "xyz", spanId: "b7ad6b7169203331" }] },
              ],
            },
          ],
        }),
      OtlpDecodeError,
    );
    assert.throws(
      () =>
        decodeTracesJson({
          resourceSpans: [
            { scopeSpans: [{ spans: [{ spanId: "b7ad6b7169203331" }] }] },
          ],
        }),
      /trace_id/,
    );
    assert.throws(() => decodeTracesJson({ resourceSpans: "nope" }), /array/);
    let deep: unknown = { stringValue: "x" };
    for (let i = 0; i < 100; i++) deep = { arrayValue: { values: [deep] } };
    assert.throws(
      () =>
        decodeTracesJson({
          resourceSpans: [
            {
              scopeSpans: [
                {
                  spans: [
                    {
                      traceId: span.traceId,
                      spanId: span.spanId,
                      attributes: [{ key: "k", value: deep }],
                    },
                  ],
                },
              ],
            },
          ],
        }),
      /nested too deeply/,
    );
  });
});

describe("invalid items", () => {
  const encoder = new TraceEncoder({ "service.name": "orders" });
  const zeroId = { ...span, spanId: "0".repeat(16) };
  const other = { ...span, spanId: "d7ad6b7169203331" };
  for (const [name, decode] of [
    [
      "protobuf",
      (onInvalid?: (reason: string) => void) =>
        decodeTracesProto(encoder.encode([span, zeroId, other]), {
          onInvalid,
        }),
    ],
    [
      "JSON",
      (onInvalid?: (reason: string) => void) =>
        decodeTracesJson(
          JSON.parse(encoder.encodeJson([span, zeroId, other])),
          {
            onInvalid,
          },
        ),
    ],
  ] as const) {
    it(`are left out of ${name} and reported when the caller asks, the rest kept`, () => {
      const reasons: string[] = [];
      const [rs] = decode((r) => reasons.push(r));
      assert.deepEqual(
        rs!.scopes[0]!.spans.map((s) => s.spanId),
        [span.spanId, other.spanId],
      );
      assert.deepEqual(reasons, ["a span has no valid span_id"]);
      assert.throws(() => decode(), /no valid span_id/);
    });
  }
});

describe("decodeLogs", () => {
  const encoder = new LogsEncoder(
    { "service.name": "orders" },
    { name: "pino" },
  );
  const record = {
    time: 1_700_000_000_001,
    observedTime: 1_700_000_000_002,
    severityNumber: 17,
    severityText: "error",
    body: "payment failed",
    attributes: { "customer.id": "c-42", order: { id: 7 } },
    traceId: span.traceId,
    spanId: span.spanId,
    traceFlags: 1,
  };
  for (const [name, decode] of [
    ["protobuf", () => decodeLogsProto(encoder.encode([record]))],
    ["JSON", () => decodeLogsJson(JSON.parse(encoder.encodeJson([record])))],
  ] as const) {
    it(`reads our ${name}`, () => {
      const [rl] = decode();
      const l = rl!.scopes[0]!.logs[0]!;
      assert.equal(l.timeUs, 1_700_000_000_001_000);
      assert.equal(l.severityNumber, 17);
      assert.equal(l.body, "payment failed");
      assert.deepEqual(l.attributes, {
        "customer.id": "c-42",
        order: { id: 7 },
      });
      assert.equal(l.traceId, span.traceId);
    });
  }

  it("accepts severity names and numbers as strings in JSON", () => {
    const reasons: string[] = [];
    const [rl] = decodeLogsJson(
      {
        resourceLogs: [
          {
            scopeLogs: [
              {
                logRecords: [
                  "SEVERITY_NUMBER_ERROR",
                  "SEVERITY_NUMBER_UNSPECIFIED",
                  "SEVERITY_NUMBER_TRACE",
                  "SEVERITY_NUMBER_DEBUG4",
                  "SEVERITY_NUMBER_INFO2",
                  "SEVERITY_NUMBER_WARN3",
                  "SEVERITY_NUMBER_FATAL4",
                  "9",
                  13,
                  "SEVERITY_NUMBER_LOUD",
                ].map((severityNumber) => ({
                  timeUnixNano: "1700000000000000000",
                  severityNumber,
                  body: { stringValue: "payment failed" },
                })),
              },
            ],
          },
        ],
      },
      { onInvalid: (r) => reasons.push(r) },
    );
    assert.deepEqual(
      rl!.scopes[0]!.logs.map((l) => l.severityNumber),
      [17, 0, 1, 8, 10, 15, 24, 9, 13],
    );
    assert.deepEqual(reasons, [
      'a log record does not read: severityNumber has an unknown value "SEVERITY_NUMBER_LOUD"',
    ]);
  });

  const ids = {
    ...record,
    attributes: {
      big: 1234567890123456789n,
      negative: -1234567890123456789n,
      safe: 9007199254740991,
      small: -3,
      nested: [9223372036854775807n],
    },
  };
  for (const [name, decode] of [
    ["protobuf", () => decodeLogsProto(encoder.encode([ids]))],
    ["JSON", () => decodeLogsJson(JSON.parse(encoder.encodeJson([ids])))],
  ] as const) {
    it(`keeps every digit of an int64 past 2^53, as a bigint, in ${name}`, () => {
      assert.deepEqual(decode()[0]!.scopes[0]!.logs[0]!.attributes, {
        big: 1234567890123456789n,
        negative: -1234567890123456789n,
        safe: 9007199254740991,
        small: -3,
        nested: [9223372036854775807n],
      });
    });
  }

  // A logged object parsed from JSON may have a key named __proto__.
  const parsed = {
    ...record,
    attributes: JSON.parse(
      '{"__proto__":{"injected":"yes"},"user":"u1","body":{"__proto__":"s","a":2}}',
    ) as LogRecordData["attributes"],
  };
  for (const [name, decode] of [
    ["protobuf", () => decodeLogsProto(encoder.encode([parsed]))],
    ["JSON", () => decodeLogsJson(JSON.parse(encoder.encodeJson([parsed])))],
  ] as const) {
    it(`reads a key named __proto__ as a key, in ${name}`, () => {
      const a = decode()[0]!.scopes[0]!.logs[0]!.attributes;
      assert.equal(Object.getPrototypeOf(a), Object.prototype);
      assert.deepEqual(Object.keys(a), ["__proto__", "user", "body"]);
      assert.deepEqual(Object.getOwnPropertyDescriptor(a, "__proto__")?.value, {
        injected: "yes",
      });
      assert.equal(a["injected"], undefined);
      const body = a["body"] as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ["__proto__", "a"]);
      assert.equal(
        Object.getOwnPropertyDescriptor(body, "__proto__")?.value,
        "s",
      );
    });
  }
});

describe("empty resource and scope groups", () => {
  const empty = emptyGroups(4 * 1024 * 1024);
  const traces = new TraceEncoder({ "service.name": "orders" });
  const logs = new LogsEncoder({ "service.name": "orders" }, { name: "pino" });
  const record = {
    time: 1_700_000_000_001,
    observedTime: 1_700_000_000_002,
    severityNumber: 9,
    severityText: "info",
    body: "order placed",
    attributes: {},
    traceId: span.traceId,
    spanId: span.spanId,
    traceFlags: 1,
  };

  it("are left out of protobuf, so a body of them costs what its bytes do", () => {
    assert.equal(decodeTracesProto(empty).length, 0);
    assert.equal(decodeLogsProto(empty).length, 0);
    // Concatenated protobuf messages merge: the one span or record is kept.
    const [rs, ...moreSpans] = decodeTracesProto(
      Buffer.concat([empty, traces.encode([span]), empty]),
    );
    assert.equal(moreSpans.length, 0);
    assert.deepEqual(
      rs!.scopes.map((g) => g.spans.map((s) => s.spanId)),
      [[span.spanId]],
    );
    const [rl, ...moreLogs] = decodeLogsProto(
      Buffer.concat([empty, logs.encode([record])]),
    );
    assert.equal(moreLogs.length, 0);
    assert.deepEqual(
      rl!.scopes.map((g) => g.logs.map((l) => l.body)),
      [["order placed"]],
    );
  });

  it("are left out of JSON too", () => {
    const groups = (key: string) => [
      {},
      { [key]: [] },
      { [key]: [{}, { scope: { name: "s" } }] },
    ];
    assert.deepEqual(
      decodeTracesJson({ resourceSpans: groups("scopeSpans") }),
      [],
    );
    assert.deepEqual(decodeLogsJson({ resourceLogs: groups("scopeLogs") }), []);
  });
});
