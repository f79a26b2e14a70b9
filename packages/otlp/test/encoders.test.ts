// Encodes with our writer and decodes with protobufjs (and JSON.parse),
// against a schema written separately from the OTLP specification.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeLogsRequest,
  decodeTraceRequest,
  spanAttributeKeys,
} from "@threadline/test-support";
import {
  decodeLogsJson,
  decodeLogsProto,
  decodeMetricsJson,
  decodeMetricsProto,
  decodeTracesJson,
  decodeTracesProto,
  LogsEncoder,
  MetricsEncoder,
  ProtoWriter,
  TraceEncoder,
  type AnyValue,
  type LogRecordData,
  type SpanData,
} from "../src/index.ts";

const scope = { name: "test-scope", version: "1.2.3" };
const resource = { "service.name": "orders", "process.pid": 42 };

function span(overrides: Partial<SpanData> = {}): SpanData {
  return {
    scope,
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    parentSpanId: "00f067aa0ba902b7",
    parentIsRemote: true,
    traceState: "a=1",
    traceFlags: 3,
    name: "GET /orders/:id",
    kind: 1,
    startTime: 1_700_000_000_123.456,
    endTime: 1_700_000_000_223.5,
    attributes: {
      "customer.id": "c-42",
      "http.response.status_code": 200,
      ratio: 0.25,
      negative: -7,
      ok: true,
      list: ["a", "b"],
      long: "x".repeat(300),
      unicode: "grüße ✓",
    },
    droppedAttributesCount: 2,
    events: [
      {
        name: "exception",
        time: 1_700_000_000_200,
        attributes: { "exception.type": "Error" },
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
        attributes: { why: "batch" },
        droppedAttributesCount: 0,
      },
    ],
    droppedLinksCount: 0,
    statusCode: 2,
    statusMessage: "boom",
    ...overrides,
  };
}

for (const format of ["protobuf", "json"] as const) {
  describe(`TraceEncoder (${format})`, () => {
    const encoder = new TraceEncoder(resource);
    const encode = (spans: SpanData[]) =>
      format === "json" ? encoder.encodeJson(spans) : encoder.encode(spans);

    it("writes every field of a span", () => {
      const [s] = decodeTraceRequest(encode([span()]));
      assert.ok(s);
      assert.equal(s.traceId, "0af7651916cd43dd8448eb211c80319c");
      assert.equal(s.spanId, "b7ad6b7169203331");
      assert.equal(s.parentSpanId, "00f067aa0ba902b7");
      assert.equal(s.traceState, "a=1");
      assert.equal(s.name, "GET /orders/:id");
      assert.equal(s.kind, 2); // OTLP SERVER
      // Fractional milliseconds carry a double's precision (a fraction of a microsecond).
      const near = (a: bigint, b: bigint) =>
        assert.ok(a - b < 1000n && b - a < 1000n, `${a} vs ${b}`);
      near(s.startTimeUnixNano, 1_700_000_000_123_456_000n);
      assert.equal(s.endTimeUnixNano, 1_700_000_000_223_500_000n);
      assert.deepEqual(s.attributes, {
        "customer.id": "c-42",
        "http.response.status_code": 200,
        ratio: 0.25,
        negative: -7,
        ok: true,
        list: ["a", "b"],
        long: "x".repeat(300),
        unicode: "grüße ✓",
      });
      assert.deepEqual(s.status, { code: 2, message: "boom" });
      assert.deepEqual(s.events, [
        {
          name: "exception",
          timeUnixNano: 1_700_000_000_200_000_000n,
          attributes: { "exception.type": "Error" },
        },
      ]);
      assert.deepEqual(s.links, [
        {
          traceId: "1af7651916cd43dd8448eb211c80319c",
          spanId: "c7ad6b7169203331",
          attributes: { why: "batch" },
        },
      ]);
      assert.equal(s.flags, 0x303); // trace flags 03, has-is-remote, is-remote
      assert.deepEqual(s.resource, resource);
      assert.deepEqual(s.scope, scope);
    });

    it("writes no id of the wrong length, and one with other than hex digits as protobuf reads it", () => {
      // The decoder refuses a request with an id of the wrong length, or
      // one in OTLP/JSON that is not hex, as the Collector does.
      const link = span().links![0]!;
      const [s] = decodeTraceRequest(
        encode([
          span({
            traceId: "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            spanId: "0305e82c3301",
            parentSpanId: "00f067aa0ba902b7ff",
            links: [
              { ...link, traceId: "abcd", spanId: "12" },
              { ...link, traceId: "Z".repeat(32), spanId: "4f89zz11d3z9a0c0" },
            ],
          }),
        ]),
      );
      assert.ok(s);
      assert.deepEqual([s.traceId, s.spanId, s.parentSpanId], ["", "", ""]);
      assert.deepEqual(
        s.links.map((l) => [l.traceId, l.spanId]),
        [
          ["", ""],
          ["0".repeat(32), "4f89000000000000"],
        ],
      );
    });

    it("groups spans by scope and handles many and large spans", () => {
      const other = { name: "other" };
      const spans = Array.from({ length: 600 }, (_, i) =>
        span({
          spanId: i.toString(16).padStart(16, "0"),
          scope: i % 2 ? scope : other,
          attributes: { i, blob: "y".repeat(i * 10) },
        }),
      );
      const decoded = decodeTraceRequest(encode(spans));
      assert.equal(decoded.length, 600);
      assert.deepEqual(
        new Set(decoded.map((s) => s.scope.name)),
        new Set(["test-scope", "other"]),
      );
      const s599 = decoded.find(
        (s) => s.spanId === (599).toString(16).padStart(16, "0"),
      )!;
      assert.equal(s599.attributes["blob"], "y".repeat(5990));
    });

    it("omits a missing parent and an unset status", () => {
      const [s] = decodeTraceRequest(
        encode([
          span({
            parentSpanId: undefined,
            parentIsRemote: false,
            statusCode: 0,
            statusMessage: undefined,
            events: undefined,
            links: undefined,
          }),
        ]),
      );
      assert.equal(s?.parentSpanId, "");
      assert.deepEqual(s?.status, { code: 0, message: "" });
      assert.equal(s?.flags, 0x103);
    });
  });
}

for (const format of ["protobuf", "json"] as const) {
  describe(`LogsEncoder (${format})`, () => {
    const encoder = new LogsEncoder(resource, scope);
    const record: LogRecordData = {
      time: 1_700_000_000_001,
      observedTime: 1_700_000_000_002,
      severityNumber: 9,
      severityText: "info",
      body: "order placed",
      attributes: {
        "customer.id": "c-42",
        order: { id: 7, items: ["a"] },
        nothing: null,
      },
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
    };

    it("writes every field of a record, nested values included", () => {
      const [r] = decodeLogsRequest(
        format === "json"
          ? encoder.encodeJson([record])
          : encoder.encode([record]),
      );
      assert.ok(r);
      assert.equal(r.timeUnixNano, 1_700_000_000_001_000_000n);
      assert.equal(r.observedTimeUnixNano, 1_700_000_000_002_000_000n);
      assert.equal(r.severityNumber, 9);
      assert.equal(r.severityText, "info");
      assert.equal(r.body, "order placed");
      assert.deepEqual(r.attributes, {
        "customer.id": "c-42",
        order: { id: 7, items: ["a"] },
        nothing: undefined,
      });
      assert.equal(r.traceId, "0af7651916cd43dd8448eb211c80319c");
      assert.equal(r.spanId, "b7ad6b7169203331");
      assert.equal(r.flags, 1);
      assert.deepEqual(r.resource, resource);
    });
  });
}

describe("TraceEncoder, a batch at a time", () => {
  it("writes each scope's spans together, in the order given, every batch afresh", () => {
    const other = { name: "other-scope" };
    const e = new TraceEncoder(resource);
    const decoded = decodeTraceRequest(
      e.encode([
        span({ spanId: "1111111111111111" }),
        span({ scope: other, spanId: "2222222222222222", name: "SELECT" }),
        span({ spanId: "3333333333333333" }),
      ]),
    );
    assert.deepEqual(
      decoded.map((s) => [s.scope.name, s.spanId]),
      [
        [scope.name, "1111111111111111"],
        [scope.name, "3333333333333333"],
        ["other-scope", "2222222222222222"],
      ],
    );
    // The next batch holds only its own spans, of the scopes it has.
    assert.deepEqual(
      decodeTraceRequest(e.encode([span({ scope: other })])).map((s) => [
        s.scope.name,
        s.spanId,
      ]),
      [["other-scope", "b7ad6b7169203331"]],
    );
  });

  it("writes attributes that repeat, change and come back exactly as given", () => {
    // Values repeated from span to span are copied from the last encoding:
    // each span must still carry its own values, whatever came before.
    const values = [
      "127.0.0.1",
      "127.0.0.1",
      "::1",
      "127.0.0.1",
      "127.0.0.1",
      5432,
      5432,
      -0,
      0,
      true,
      true,
      false,
      "grüße ✓",
      "grüße ✓",
      "z".repeat(700),
      "z".repeat(700),
      "z".repeat(701),
      ["a"],
      ["a"],
      "127.0.0.1",
    ] as const;
    const e = new TraceEncoder(resource);
    const decoded = decodeTraceRequest(
      e.encode(
        values.map((value, i) =>
          span({
            spanId: (i + 1).toString(16).padStart(16, "0"),
            attributes: { "server.address": value, i, same: "same" },
          }),
        ),
      ),
    );
    assert.deepEqual(
      decoded.map((s) => s.attributes),
      values.map((value, i) => ({
        "server.address": Object.is(value, -0) ? 0 : value,
        i,
        same: "same",
      })),
    );
  });

  it("writes values that take turns under one key, and more than it keeps", () => {
    // Two servers' ports alternate, then more values than a key keeps
    // come round in turn: each span still carries its own.
    const ports = [
      5432, 8080, 5432, 8080, 5432, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 8080, 5432,
      8080,
    ];
    const e = new TraceEncoder(resource);
    const body = e.encode(
      ports.map((port, i) =>
        span({
          spanId: (i + 1).toString(16).padStart(16, "0"),
          attributes: { "server.port": port, "server.address": `h${port % 2}` },
        }),
      ),
    );
    assert.deepEqual(
      decodeTraceRequest(body).map((s) => s.attributes),
      ports.map((port) => ({
        "server.port": port,
        "server.address": `h${port % 2}`,
      })),
    );
  });

  it("writes spans of a few kinds, their values and keys changing, exactly as given", () => {
    // Attributes of one kind are written from a model of the last ones
    // seen: whatever differs from it (a value, a key's place, a key more or
    // less, a nested value) must come out as the span had it.
    let seed = 7;
    const pick = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const kinds: Array<() => Record<string, unknown>> = [
      () => ({
        "db.system.name": ["postgresql", "mysql"][pick(2)],
        "server.port": [5432, 5433, "5432"][pick(3)],
        "db.query.text": ["SELECT 1", "SELECT 2", "x".repeat(600)][pick(3)],
        "db.wait_ms": pick(4) / 3,
      }),
      () => ({
        "http.request.method": ["GET", "POST"][pick(2)],
        "url.path": `/orders/${pick(3)}`,
        "server.port": 8080,
        ...(pick(2) === 0 ? { "http.route": "/orders/:id" } : {}),
        "network.peer.port": 40000 + pick(50),
        nested: pick(4) === 0 ? { a: [1, "b"] } : "flat",
      }),
      () =>
        pick(3) === 0
          ? { "url.path": "/", "http.request.method": "GET", ok: true }
          : {
              "http.request.method": "GET",
              "url.path": "/",
              ok: pick(2) === 0,
            },
    ];
    const e = new TraceEncoder(resource);
    const all: Array<Record<string, unknown>> = [];
    const spans: SpanData[] = [];
    for (let i = 0; i < 600; i++) {
      const attributes = kinds[pick(kinds.length)]!();
      all.push(attributes);
      spans.push(
        span({
          spanId: (i + 1).toString(16).padStart(16, "0"),
          attributes: attributes as SpanData["attributes"],
        }),
      );
    }
    const taken = e.encode(spans);
    assert.deepEqual(
      decodeTraceRequest(taken).map((s) => s.attributes),
      all,
    );
    assert.deepEqual(spanAttributeKeys(taken), all.map(Object.keys));
  });

  it("never writes a repeated value for one that only looks the same", () => {
    const values = [5432, "5432", 5432, 1, true, "1", 1, 0, false, "", 0];
    const e = new TraceEncoder(resource);
    const body = e.encode(
      values.map((value, i) =>
        span({
          spanId: (i + 1).toString(16).padStart(16, "0"),
          attributes: { a: "same", value, b: "same" },
        }),
      ),
    );
    assert.deepEqual(
      decodeTraceRequest(body).map((s) => s.attributes["value"]),
      values,
    );
  });

  it("leaves out a span it cannot encode, reports it, and encodes the rest", () => {
    const e = new TraceEncoder(resource);
    const bad = span({ name: undefined as unknown as string });
    assertLeavesOut((spans, onError) => e.encode(spans, onError), bad);
    // The next batch is whole.
    assert.deepEqual(
      decodeTraceRequest(e.encode([span({ spanId: "5555555555555555" })])).map(
        (s) => s.spanId,
      ),
      ["5555555555555555"],
    );
  });
});

it("writes a kind or status code that is no whole number a varint holds as 0, the message well-formed and finished", () => {
  // A negative number was written as one byte with its continuation bit
  // set, the varint never ended; Infinity never finished writing.
  const bad = [-1, -2, 2.5, -Infinity, NaN, "server", Infinity, 2 ** 64];
  const spans = bad.map((v, i) =>
    span({
      spanId: `${i}`.padStart(16, "a"),
      kind: v as SpanData["kind"],
      statusCode: v as number,
      statusMessage: "",
    }),
  );
  spans.push(span({ spanId: "ffffffffffffffff", kind: 2 }));
  const decoded = decodeTraceRequest(new TraceEncoder(resource).encode(spans));
  assert.deepEqual(
    decoded.map((s) => s.spanId),
    spans.map((s) => s.spanId),
  );
  assert.equal(decoded.at(-1)!.kind, 3);
  const w = new ProtoWriter(16);
  for (const v of bad) w.uvarint(v as number);
  assert.deepEqual([...w.finish()], [0, 0, 2, 0, 0, 0, 0, 0]);
});

for (const format of ["protobuf", "json"] as const)
  it(`writes a time OTLP cannot hold as the nearest one it can, never wrapped or refused (${format})`, () => {
    const max = 2n ** 64n - 1n;
    const cases: Array<[number, bigint]> = [
      [NaN, 0n],
      [-1, 0n],
      [-Infinity, 0n],
      [0, 0n],
      [1_700_000_000_000.5, 1_700_000_000_000_500_000n],
      [18_446_744_073_709, 18_446_744_073_709_000_000n],
      [18_446_744_073_709.56, max],
      [1_700_000_000_000_000, max], // microseconds for milliseconds
      [Infinity, max],
    ];
    const traces = new TraceEncoder(resource);
    const logs = new LogsEncoder(resource, scope);
    for (const [ms, nanos] of cases) {
      const spans = [span({ startTime: ms, endTime: ms })];
      const [s] = decodeTraceRequest(
        format === "json" ? traces.encodeJson(spans) : traces.encode(spans),
      );
      const records: LogRecordData[] = [
        {
          time: ms,
          observedTime: ms,
          severityNumber: 9,
          severityText: undefined,
          body: "b",
          attributes: undefined,
          traceId: undefined,
          spanId: undefined,
          traceFlags: 0,
        },
      ];
      const [r] = decodeLogsRequest(
        format === "json" ? logs.encodeJson(records) : logs.encode(records),
      );
      assert.deepEqual(
        [s?.startTimeUnixNano, s?.endTimeUnixNano, r?.timeUnixNano],
        [nanos, nanos, nanos],
        String(ms),
      );
    }
  });

it("leaves out a span it cannot encode in OTLP/JSON too, reports it, and encodes the rest", () => {
  const e = new TraceEncoder(resource);
  const bad = span({ events: 5 as unknown as SpanData["events"] });
  assertLeavesOut((spans, onError) => e.encodeJson(spans, onError), bad);
});

for (const format of ["protobuf", "json"] as const)
  it(`leaves out the spans of a scope whose name is no string, which a receiver refuses, and encodes the rest, next time too (${format})`, () => {
    const e = new TraceEncoder(resource);
    const encode = (
      spans: SpanData[],
      onError?: (err: unknown, s: SpanData) => void,
    ) =>
      format === "json"
        ? e.encodeJson(spans, onError)
        : e.encode(spans, onError);
    const bad = span({ scope: { name: 7 as unknown as string } });
    assertLeavesOut(encode, bad);
    assert.deepEqual(
      decodeTraceRequest(encode([span({ spanId: "5555555555555555" })])).map(
        (s) => s.spanId,
      ),
      ["5555555555555555"],
    );
  });

for (const format of ["protobuf", "json"] as const)
  it(`leaves out a span whose name is no string, which a receiver refuses (${format})`, () => {
    const e = new TraceEncoder(resource);
    const bad = span({ name: { a: 1 } as unknown as string });
    assertLeavesOut(
      (spans, onError) =>
        format === "json"
          ? e.encodeJson(spans, onError)
          : e.encode(spans, onError),
      bad,
    );
  });

/**
 * Encodes a good span, `bad` and a good one: `bad` alone is left out and
 * reported; without a handler the error is thrown.
 */
function assertLeavesOut(
  encode: (
    spans: SpanData[],
    onError?: (err: unknown, s: SpanData) => void,
  ) => Uint8Array | string,
  bad: SpanData,
): void {
  const errors: Array<[unknown, SpanData]> = [];
  const body = encode(
    [
      span({ spanId: "3333333333333333" }),
      bad,
      span({ spanId: "4444444444444444" }),
    ],
    (err, s) => errors.push([err, s]),
  );
  assert.deepEqual(
    decodeTraceRequest(body).map((s) => s.spanId),
    ["3333333333333333", "4444444444444444"],
  );
  assert.equal(errors.length, 1);
  assert.equal(errors[0]![1], bad);
  assert.ok(errors[0]![0] instanceof Error);
  assert.throws(() => encode([span(), bad]));
}

/** An INFO record of `body` and `attributes`, outside any trace. */
function plainRecord(
  body: AnyValue,
  attributes?: LogRecordData["attributes"],
): LogRecordData {
  return {
    time: 1_700_000_000_000,
    observedTime: 1_700_000_000_000,
    severityNumber: 9,
    severityText: undefined,
    body,
    attributes,
    traceId: undefined,
    spanId: undefined,
    traceFlags: 0,
  };
}

for (const format of ["protobuf", "json"] as const)
  it(`writes what is nested deeper than OTLP maps go as its JSON text, which the viewer's decoders read (${format})`, () => {
    const json = format === "json";
    const self: Record<string, AnyValue> = { x: 1 };
    self["self"] = self;
    const leaf: AnyValue = {
      leaf: "customer-42",
      big: 2n ** 62n + 1n,
      bytes: new Uint8Array([1, 2, 3]),
      list: [1.5, undefined, NaN, [true, null]],
      self,
    };
    let deep: AnyValue = leaf;
    for (let i = 12; i >= 1; i--) deep = { [`l${i}`]: deep };
    /** What is `levels` maps down from `v`. */
    const at = (v: unknown, levels: number) => {
      for (let i = 1; i <= levels; i++)
        v = (v as Record<string, unknown>)[`l${i}`];
      return v;
    };
    const text = `{"l10":{"l11":{"l12":{"leaf":"customer-42","big":${2n ** 62n + 1n},"bytes":"AQID","list":[1.5,null,null,[true,null]],"self":{"x":1,"self":null}}}}}`;

    // A log record's body and attributes: maps down to the ninth level.
    const logs = new LogsEncoder(resource, scope);
    const record = plainRecord(deep, { deep });
    const [r] = json
      ? decodeLogsJson(JSON.parse(logs.encodeJson([record])))[0]!.scopes[0]!
          .logs
      : decodeLogsProto(logs.encode([record]))[0]!.scopes[0]!.logs;
    assert.equal(at(r!.body, 9), text);
    assert.equal(at(r!.attributes["deep"], 9), text);
    assert.deepEqual(
      decodeLogsRequest(
        json ? logs.encodeJson([record]) : logs.encode([record]),
      ).map((l) => at(l.body, 9)),
      [text],
    );

    // A span's events and links, a message deeper: to the eighth.
    const traces = new TraceEncoder(resource);
    const spans = [
      span({
        attributes: { deep },
        events: [
          {
            name: "e",
            time: 1_700_000_000_000,
            attributes: { deep },
            droppedAttributesCount: 0,
          },
        ],
        links: [
          {
            traceId: "1af7651916cd43dd8448eb211c80319c",
            spanId: "c7ad6b7169203331",
            traceState: undefined,
            traceFlags: 1,
            attributes: { deep },
            droppedAttributesCount: 0,
          },
        ],
      }),
    ];
    const [s] = json
      ? decodeTracesJson(JSON.parse(traces.encodeJson(spans)))[0]!.scopes[0]!
          .spans
      : decodeTracesProto(traces.encode(spans))[0]!.scopes[0]!.spans;
    const eighth = `{"l9":${text}}`;
    assert.equal(at(s!.attributes["deep"], 9), text);
    assert.equal(at(s!.events[0]!.attributes["deep"], 8), eighth);
    assert.equal(at(s!.links[0]!.attributes["deep"], 8), eighth);

    // A metric point's attributes, as deep as an event's.
    const metrics = new MetricsEncoder(resource);
    const sum = [
      {
        scope,
        name: "n",
        description: "",
        unit: "",
        kind: "sum" as const,
        monotonic: true,
        points: [
          {
            attributes: { deep },
            startTime: 1_700_000_000_000,
            time: 1_700_000_000_000,
            value: 1,
          },
        ],
      },
    ];
    const [m] = json
      ? decodeMetricsJson(JSON.parse(metrics.encodeJson(sum)))[0]!.scopes[0]!
          .metrics
      : decodeMetricsProto(metrics.encode(sum))[0]!.scopes[0]!.metrics;
    assert.equal(at(m!.points[0]!.attributes["deep"], 8), eighth);
  });

for (const format of ["protobuf", "json"] as const)
  it(`writes a value nested deeper than calls go as its JSON text past OTLP's maps (${format})`, () => {
    const levels = 100_000;
    let body: AnyValue = 2n ** 62n + 1n;
    for (let i = 0; i < levels; i++) body = i % 2 === 0 ? [body] : { k: body };
    const logs = new LogsEncoder(resource, scope);
    const record = plainRecord(body);
    const [r] = (
      format === "json"
        ? decodeLogsJson(JSON.parse(logs.encodeJson([record])))
        : decodeLogsProto(logs.encode([record]))
    )[0]!.scopes[0]!.logs;
    let v: unknown = r!.body;
    let unwrapped = 0;
    while (typeof v !== "string") {
      v = Array.isArray(v) ? v[0] : (v as Record<string, unknown>)["k"];
      unwrapped++;
    }
    let text = String(2n ** 62n + 1n);
    for (let i = 0; i < levels - unwrapped; i++)
      text = i % 2 === 0 ? `[${text}]` : `{"k":${text}}`;
    assert.equal(v, text);
  });

describe("TraceEncoder, span by span", () => {
  it("takes every span appended since the last take, each scope's together", () => {
    const other = { name: "other-scope" };
    const e = new TraceEncoder(resource);
    e.append(span());
    e.append(
      span({ scope: other, spanId: "1111111111111111", name: "SELECT" }),
    );
    e.append(span({ spanId: "2222222222222222" }));
    assert.equal(e.pending, 3);
    const taken = decodeTraceRequest(e.take());
    assert.equal(e.pending, 0);
    assert.deepEqual(
      taken.map((s) => [s.scope.name, s.spanId, s.name]),
      [
        [scope.name, "b7ad6b7169203331", "GET /orders/:id"],
        [scope.name, "2222222222222222", "GET /orders/:id"],
        ["other-scope", "1111111111111111", "SELECT"],
      ],
    );
    assert.deepEqual(taken[0], decodeTraceRequest(e.encode([span()]))[0]);
  });

  it("keeps nothing of a span it cannot encode, and carries on", () => {
    const e = new TraceEncoder(resource);
    e.append(span({ spanId: "3333333333333333" }));
    assert.throws(() =>
      e.append(span({ name: undefined as unknown as string })),
    );
    e.append(span({ spanId: "4444444444444444" }));
    assert.equal(e.pending, 2);
    assert.deepEqual(
      decodeTraceRequest(e.take()).map((s) => s.spanId),
      ["3333333333333333", "4444444444444444"],
    );
    // A second batch starts empty.
    e.append(span());
    assert.equal(decodeTraceRequest(e.take()).length, 1);
  });

  it("takes all but the last span appended, which goes with the next take", () => {
    const other = { name: "other-scope" };
    const e = new TraceEncoder(resource);
    e.append(span({ spanId: "1111111111111111" }));
    e.append(span({ scope: other, spanId: "2222222222222222" }));
    const before = e.bytes;
    const big = span({
      spanId: "3333333333333333",
      attributes: { ids: Array.from({ length: 1000 }, (_, i) => i) },
    });
    e.append(big);
    const bigBytes = e.bytes - before;
    const first = decodeTraceRequest(e.takeBefore(before));
    assert.deepEqual(
      first.map((s) => [s.scope.name, s.spanId]),
      [
        [scope.name, "1111111111111111"],
        ["other-scope", "2222222222222222"],
      ],
    );
    assert.equal(e.pending, 1);
    assert.equal(e.bytes, bigBytes);
    const rest = decodeTraceRequest(e.take());
    assert.deepEqual(rest, decodeTraceRequest(e.encode([big])));
    assert.throws(() => e.takeBefore(0), RangeError);
  });
});

it("keeps its buffer's size when given no string where a string belongs", () => {
  const w = new ProtoWriter(64);
  for (let i = 0; i < 8; i++)
    assert.throws(() => w.stringField(2, { en: "x" } as unknown as string));
  assert.equal(w.capacity, 64);
});

describe("ProtoWriter hex ids", () => {
  const field = (hexOrBytes: () => ProtoWriter) =>
    Buffer.from(hexOrBytes().finish()).toString("hex");

  it("writes ids from a string and from ASCII bytes alike, bad digits as Buffer parses them", () => {
    for (const id of ["0af7651916cd43dd", "0123456789abcdeg", "zz".repeat(8)]) {
      const fromString = field(() => {
        const w = new ProtoWriter(64);
        w.hexField(2, id, 8);
        return w;
      });
      const fromBytes = field(() => {
        const w = new ProtoWriter(64);
        w.hexAsciiField(2, Buffer.from(`..${id}..`, "latin1"), 2, id.length);
        return w;
      });
      const bytes = Buffer.alloc(8);
      bytes.write(id, "hex");
      assert.equal(fromString, `1208${bytes.toString("hex")}`, id);
      assert.equal(fromBytes, fromString, id);
    }
  });
});

it("writes a lone surrogate in OTLP/JSON as U+FFFD, as the protobuf UTF-8 does", async () => {
  const { anyValueToJson } = await import("../src/index.ts");
  const half = "🌍".slice(0, 1);
  assert.deepEqual(anyValueToJson(`a${half}`), { stringValue: "a\uFFFD" });
  assert.deepEqual(anyValueToJson("ok 🌍"), { stringValue: "ok 🌍" });
});
