import assert from "node:assert/strict";
import { it } from "node:test";
import {
  decodeLogsJson,
  decodeLogsProto,
  LogsEncoder,
  ProtoWriter,
} from "@threadline/otlp";
import { NO_LOG_LIMITS, writeStagedRecord } from "../src/export/json-record.ts";
import {
  encodeStagedLogs,
  encodeStagedLogsJson,
  toLogRecord,
} from "../src/export/log-record.ts";
import {
  ALL_OWN_FIELDS,
  ECS_NAMES,
  LogStage,
  OWN_CUSTOMER,
  OWN_LEVEL,
  OWN_TIME,
  StagedLogReader,
  type StagedLog,
} from "../src/export/log-stage.ts";

/** What the exporter does with a batch. */
function exportBatch(stage: LogStage, encoder: LogsEncoder): Uint8Array {
  const { body, rejected } = encodeStagedLogs(encoder, stage.take());
  assert.equal(rejected, 0);
  return body;
}

const captured = (line: string, more: Partial<StagedLog> = {}): StagedLog => ({
  line,
  severityNumber: 9,
  severityText: "info",
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: 1,
  observed: 1763800000500,
  messageKey: "msg",
  ownFields: ALL_OWN_FIELDS,
  sdk: false,
  ...more,
});

it("turns captured lines into one OTLP request per batch", () => {
  const stage = new LogStage();
  const encoder = new LogsEncoder(
    { "service.name": "orders" },
    { name: "pino", version: "10.4.0" },
  );
  stage.append(
    captured(
      '{"level":30,"time":1763800000123,"pid":7,"hostname":"h","msg":"order placed","order":42,"trace_id":"x"}\n',
    ),
  );
  stage.append(
    captured("not json at all\n", {
      severityNumber: 17,
      severityText: "error",
      traceId: undefined,
      spanId: undefined,
      traceFlags: 0,
    }),
  );
  stage.append(
    captured('{"message":"custom key","n":1}', { messageKey: "message" }),
  );
  assert.equal(stage.pending, 3);
  const [resourceLogs] = decodeLogsProto(exportBatch(stage, encoder));
  assert.equal(resourceLogs!.resource["service.name"], "orders");
  assert.equal(resourceLogs!.scopes[0]!.scope.name, "pino");
  const [placed, plain, custom] = resourceLogs!.scopes[0]!.logs;
  assert.equal(placed!.body, "order placed");
  assert.deepEqual(placed!.attributes, { order: 42 });
  assert.equal(placed!.timeUs, 1763800000123000);
  assert.equal(placed!.observedUs, 1763800000500000);
  assert.equal(placed!.traceId, "0af7651916cd43dd8448eb211c80319c");
  assert.equal(placed!.spanId, "b7ad6b7169203331");
  assert.equal(placed!.severityText, "info");
  assert.equal(plain!.body, "not json at all");
  assert.equal(plain!.severityNumber, 17);
  assert.equal(plain!.traceId, "");
  assert.equal(custom!.body, "custom key");
  assert.deepEqual(custom!.attributes, { n: 1 });
  // The next batch starts empty.
  stage.append(captured('{"msg":"next"}'));
  const [next] = decodeLogsProto(exportBatch(stage, encoder));
  assert.deepEqual(
    next!.scopes[0]!.logs.map((l) => l.body),
    ["next"],
  );
});

// Flat lines are written from their staged bytes (json-record.ts); the rest
// are parsed. Either way the request must hold the same bytes.

const resource = { "service.name": "orders" };
const scope = { name: "pino", version: "10.4.0" };

/** Captured lines with a fractional observed time (its nanoseconds are written too). */
const logged = (text: string, more: Partial<StagedLog> = {}): StagedLog =>
  captured(text, { observed: 1763800000500.25, ...more });

function staged(logs: StagedLog[]): Uint8Array {
  const stage = new LogStage();
  for (const log of logs) stage.append(log);
  return stage.take();
}

/** The request as the exporter makes it (flat lines written from their bytes). */
function exported(batch: Uint8Array): Buffer {
  const { body } = encodeStagedLogs(new LogsEncoder(resource, scope), batch);
  return Buffer.from(body);
}

/** The same request with every line parsed by toLogRecord. */
function parsed(batch: Uint8Array): Buffer {
  const encoder = new LogsEncoder(resource, scope);
  const reader = new StagedLogReader(batch);
  encoder.start();
  while (reader.next()) {
    try {
      encoder.append(toLogRecord(reader.log));
    } catch {
      // left out, as the exporter leaves it out
    }
  }
  return Buffer.from(encoder.finish());
}

/** Whether the line is written without a parse. */
function takesBytes(log: StagedLog): boolean {
  const reader = new StagedLogReader(staged([log]));
  assert.ok(reader.advance());
  return writeStagedRecord(new ProtoWriter(), reader);
}

const FLAT = [
  '{"level":30,"time":1763800000123,"pid":7,"hostname":"h","msg":"order placed","order":42}\n',
  '{"level":30,"time":1763800000123,"msg":"with ids","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","customer.id":"c-42"}\n',
  '{"a":-0,"b":1.0,"c":1e21,"d":-12.5e-3,"g":0.1}',
  '{"t":true,"f":false,"n":null,"empty":"","":"no key","msg":7}',
  '{"unicode":"żółć 日本 🚀","ключ":"значение"}',
  ' { "spaced" : 1 ,\t"out" : "x" }\r\n',
  "{}",
  `{"msg":"${"long ".repeat(60)}","${"k".repeat(200)}":"ż${"v".repeat(300)}"}`,
  '{"time":true,"msg":"a time that is not one"}',
  '{"time":1763800000,"msg":"seconds (stdTimeFunctions.unixTime)"}',
  '{"time":1763800000123456789,"msg":"nanoseconds"}',
  '{"msg":42}',
  '{"msg":null,"other":1}',
  '{"msg":false}',
  // As wide as a line written from its bytes may be.
  `{${Array.from({ length: 64 }, (_, i) => `"k${i}":${i}`).join(",")}}`,
];

const PARSED = [
  '{"e":9007199254740993,"f":123456789012345678}', // integers a double cannot hold
  '{"msg":"a \\"quoted\\" word"}', // an escape
  '{"msg":"nested","req":{"id":1}}', // an object
  '{"msg":"list","tags":["a","b"]}', // an array
  '{"msg":"twice","k":1,"k":2}', // a repeated key
  '{"msg":"index","b":1,"7":2}', // an array index JSON.parse lists first
  '{"__proto__":1,"msg":"proto"}',
  '{"time":"2026-12-02T10:00:00.000Z","msg":"a date"}',
  "not json at all\n",
  '{"msg":"trailing",}',
  '{"n":01}',
  '{"n":1.}',
  '{"msg":"x"} and more',
  "[1,2,3]",
  "42",
  '{"msg":"tab\tinside"}', // a control character: not JSON
  `{${Array.from({ length: 65 }, (_, i) => `"k${i}":${i}`).join(",")}}`, // wider
];

it("writes flat lines from their bytes, and leaves the rest to JSON.parse", () => {
  for (const line of FLAT) assert.equal(takesBytes(logged(line)), true, line);
  for (const line of PARSED)
    assert.equal(takesBytes(logged(line)), false, line);
});

it("makes the same request from bytes as from parsed lines", () => {
  const logs = [
    ...FLAT.map((line) => logged(line)),
    ...PARSED.map((line) => logged(line)),
    logged('{"message":"custom key","msg":"an attribute now","n":1}', {
      messageKey: "message",
    }),
    logged('{"msg":"no correlation"}', {
      traceId: undefined,
      spanId: undefined,
      traceFlags: 0,
      severityText: undefined,
      severityNumber: 0,
    }),
    logged('{"msg":"span id only"}', { traceId: undefined }),
    // Ids that are not hex are written the way Buffer parses them.
    logged('{"msg":"odd ids"}', {
      traceId: "zz".repeat(16),
      spanId: "0123456789abcdeg",
    }),
  ];
  const batch = staged(logs);
  assert.deepEqual(exported(batch), parsed(batch));
  const [request] = decodeLogsProto(exported(batch));
  const records = request!.scopes[0]!.logs;
  // A line that is not a JSON object is a record too, its text the body.
  assert.equal(records.length, logs.length);
  assert.equal(records[FLAT.length + 8]!.body, "not json at all");
  assert.deepEqual(records[0]!.attributes, { order: 42 });
  assert.equal(records[0]!.body, "order placed");
  assert.equal(records[0]!.timeUs, 1763800000123000);
  const at = (line: string) => records[FLAT.indexOf(line)]!;
  assert.equal(
    at('{"time":1763800000,"msg":"seconds (stdTimeFunctions.unixTime)"}')
      .timeUs,
    1763800000000000,
  );
  assert.equal(
    Math.round(at('{"time":1763800000123456789,"msg":"nanoseconds"}').timeUs),
    1763800000123457,
  );
  assert.equal(at('{"msg":42}').body, 42);
  assert.equal(at('{"msg":false}').body, false);
});

it("keeps an application's trace and span ids as attributes, dropping only the correlation's", () => {
  const ids =
    '"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331"';
  const ecsIds =
    '"trace.id":"0af7651916cd43dd8448eb211c80319c","span.id":"b7ad6b7169203331"';
  const theirs = '"trace.id":"up-1","span.id":"up-2","trace_flags":"01"';
  const theirsEcs = '"trace_id":"up-3","span_id":"up-4","trace_flags":1';
  const logs = [
    logged(`{"level":30,"time":1,${ids},"msg":"otel",${theirs}}`),
    logged(`{"level":30,"time":1,${ids},"msg":"nested",${theirs},"o":{}}`),
    logged(`{"level":30,"time":1,${ecsIds},"msg":"ecs",${theirsEcs}}`, {
      ownFields: ALL_OWN_FIELDS | ECS_NAMES,
    }),
    logged(
      `{"level":30,"time":1,${ecsIds},"msg":"ecs nested",${theirsEcs},"o":{}}`,
      { ownFields: ALL_OWN_FIELDS | ECS_NAMES },
    ),
    // Outside a span every one of them is the application's.
    logged(`{"msg":"outside",${ids},${theirs}}`, { traceId: undefined }),
  ];
  assert.equal(takesBytes(logs[0]!), true, "the flat path");
  assert.equal(takesBytes(logs[2]!), true, "the flat path (ecs)");
  const batch = staged(logs);
  assert.deepEqual(exported(batch), parsed(batch));
  const [request] = decodeLogsProto(exported(batch));
  const [otel, nested, ecs, ecsNested, outside] = request!.scopes[0]!.logs;
  const app = { "trace.id": "up-1", "span.id": "up-2", trace_flags: "01" };
  const appEcs = { trace_id: "up-3", span_id: "up-4", trace_flags: 1 };
  assert.deepEqual(otel!.attributes, app);
  assert.deepEqual(nested!.attributes, { ...app, o: {} });
  assert.deepEqual(ecs!.attributes, appEcs);
  assert.deepEqual(ecsNested!.attributes, { ...appEcs, o: {} });
  assert.deepEqual(outside!.attributes, {
    trace_id: "0af7651916cd43dd8448eb211c80319c",
    span_id: "b7ad6b7169203331",
    ...app,
  });
  for (const log of logs)
    assert.deepEqual(
      toLogRecord(staged1(log)).attributes,
      request!.scopes[0]!.logs[logs.indexOf(log)]!.attributes,
      "the JSON encoder's records",
    );
});

/** `log` as the exporter's reader gives it back. */
function staged1(log: StagedLog): StagedLog {
  const reader = new StagedLogReader(staged([log]));
  assert.ok(reader.next());
  return reader.log;
}

it("keeps a field named __proto__ as an attribute of that name, cut or not", () => {
  const limits = { attributeCountLimit: 128, attributeValueLengthLimit: 8192 };
  const own = (o: unknown): [string, unknown][] =>
    Object.keys(o as object).map((k) => [k, (o as Record<string, unknown>)[k]]);
  for (const l of [NO_LOG_LIMITS, limits]) {
    const top = toLogRecord(
      logged('{"__proto__":{"injected":"yes","level":60},"user":"u1"}'),
      l,
    ).attributes;
    assert.equal(Object.getPrototypeOf(top), Object.prototype);
    assert.deepEqual(own(top), [
      ["__proto__", { injected: "yes", level: 60 }],
      ["user", "u1"],
    ]);
    const nested = toLogRecord(
      logged('{"body":{"__proto__":{"x":1},"a":2}}'),
      l,
    ).attributes!["body"];
    assert.equal(Object.getPrototypeOf(nested), Object.prototype);
    assert.deepEqual(own(nested), [
      ["__proto__", { x: 1 }],
      ["a", 2],
    ]);
    const str = toLogRecord(logged('{"__proto__":"str","b":1}'), l).attributes;
    assert.deepEqual(own(str), [
      ["__proto__", "str"],
      ["b", 1],
    ]);
  }
});

it("keeps a message that is not a string as the record's body", () => {
  const [request] = decodeLogsProto(
    exported(staged([logged('{"msg":{"a":1},"b":2}')])),
  );
  const [record] = request!.scopes[0]!.logs;
  assert.deepEqual(record!.body, { a: 1 });
  assert.deepEqual(record!.attributes, { b: 2 });
});

/** A small seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

it("makes the same request either way for thousands of generated lines", () => {
  const next = random(20261202);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const keys = [
    "msg",
    "time",
    "level",
    "pid",
    "hostname",
    "trace_id",
    "span_id",
    "trace_flags",
    "trace.id",
    "span.id",
    "customer.id",
    "order",
    "",
    "ключ",
    "a b",
    "12",
    "01",
    "__proto__",
    'q"uote',
    "err",
    "message",
    "x",
  ];
  const values = [
    '"text"',
    '""',
    '"żółć 🚀"',
    '"line\\nbreak"',
    '"\\u00e9"',
    "0",
    "-0",
    "42",
    "-7",
    "1.5",
    "1.0",
    "1e21",
    "1E-7",
    "-0.0",
    "0.10",
    "9007199254740991",
    "9007199254740993",
    "123456789012345678901234",
    "1e400",
    "true",
    "false",
    "null",
    '{"id":1}',
    "[1,2]",
    "{}",
    "[]",
    "1763800000123",
    '"2026-12-02T10:00:00Z"',
  ];
  const space = () => pick(["", "", "", " ", "\t", "\n"]);
  const logs: StagedLog[] = [];
  for (let i = 0; i < 3000; i++) {
    const n = Math.floor(next() * 9);
    const members: string[] = [];
    for (let k = 0; k < n; k++)
      members.push(
        `${space()}${JSON.stringify(pick(keys))}${space()}:${space()}${pick(values)}${space()}`,
      );
    logs.push(
      logged(`{${members.join(",")}}${pick(["\n", "", " \n"])}`, {
        messageKey: pick(["msg", "msg", "message", ""]),
        traceId: pick(["0af7651916cd43dd8448eb211c80319c", undefined]),
        severityText: pick(["info", "warn", undefined]),
        ownFields: pick([
          ALL_OWN_FIELDS,
          0,
          OWN_LEVEL | OWN_TIME,
          ALL_OWN_FIELDS | ECS_NAMES,
          ECS_NAMES,
        ]),
      }),
    );
  }
  let flat = 0;
  for (const log of logs) if (takesBytes(log)) flat++;
  // Both paths are exercised, not one of them alone.
  assert.ok(flat > 300 && flat < logs.length - 300, `${flat} flat`);
  for (let i = 0; i < logs.length; i += 500) {
    const batch = staged(logs.slice(i, i + 500));
    assert.deepEqual(exported(batch), parsed(batch), `lines ${i}-${i + 499}`);
  }
});

it("holds log records to the attribute limits, cutting strings by characters", () => {
  const limits = { attributeCountLimit: 3, attributeValueLengthLimit: 4 };
  const batch = staged([
    logged('{"msg":"short enough","a":"abcd","b":1,"c":"żółć"}'),
    logged(
      '{"msg":"cut","a":"abcdefgh","b":"żółćżółć","c":["xxxxxx",{"d":"yyyyyy"}]}',
    ),
    logged('{"msg":"too many","a":1,"b":2,"c":3,"d":4,"e":"xxxxxx"}'),
  ]);
  const { body } = encodeStagedLogs(
    new LogsEncoder(resource, scope),
    batch,
    limits,
  );
  const [within, cut, many] = decodeLogsProto(body)[0]!.scopes[0]!.logs;
  assert.deepEqual(within!.attributes, { a: "abcd", b: 1, c: "żółć" });
  assert.deepEqual(cut!.attributes, {
    a: "abcd",
    b: "żółć",
    c: ["xxxx", { d: "yyyy" }],
  });
  assert.deepEqual(many!.attributes, { a: 1, b: 2, c: 3 });
  assert.equal(many!.droppedAttributesCount, 2);
  assert.equal(within!.droppedAttributesCount, 0);
  // A line within the limits is still written from its bytes.
  const reader = new StagedLogReader(staged([logged('{"a":"abcd"}')]));
  assert.ok(reader.advance());
  assert.ok(writeStagedRecord(new ProtoWriter(), reader, limits));
});

it("takes pino's own time and keeps the application's fields of the same names", () => {
  const record = toLogRecord(
    captured(
      '{"level":30,"time":1763800000123,"pid":1,"hostname":"h","level":"db","time":250,"pid":4242,"hostname":"db-3","msg":"query done"}\n',
    ),
  );
  assert.equal(record.time, 1763800000123);
  assert.deepEqual(record.attributes, {
    level: "db",
    time: 250,
    pid: 4242,
    hostname: "db-3",
  });
  // pino's keys alone say nothing the record does not.
  assert.deepEqual(
    toLogRecord(
      captured('{"level":30,"time":1763800000123,"pid":1,"msg":"x","n":{}}\n'),
    ).attributes,
    { n: {} },
  );
});

it("reads the exception from whatever key the logger writes errors under", () => {
  const record = toLogRecord(
    captured(
      '{"level":50,"time":1763800000123,"error":{"type":"TypeError","message":"boom","stack":"TypeError: boom\\n    at f"},"msg":"boom"}\n',
    ),
  );
  assert.equal(record.attributes?.["exception.type"], "TypeError");
  assert.equal(record.attributes?.["exception.message"], "boom");
  assert.match(String(record.attributes?.["exception.stacktrace"]), /at f/);
});

it("keeps every digit of integers past 2^53 within int64, from bytes and from parsed lines", () => {
  const line =
    '{"level":30,"time":1763800000123,"id":9007199254740993,"neg":-9007199254740993,"huge":12345678901234567890,"msg":"ids"}\n';
  const record = toLogRecord(captured(line));
  assert.deepEqual(record.attributes, {
    id: 9007199254740993n,
    neg: -9007199254740993n,
    huge: 12345678901234567890, // past int64: a double, as OTLP has no larger integer
  });
  const stage = new LogStage();
  stage.append(captured(line));
  const body = Buffer.from(
    exportBatch(stage, new LogsEncoder(resource, scope)),
  );
  // AnyValue.int_value (field 3) of each, every digit in the varint.
  for (const n of [9007199254740993n, -9007199254740993n]) {
    const w = new ProtoWriter(16);
    w.tag(3, 0);
    w.int64Big(n);
    assert.ok(body.includes(Buffer.from(w.finish())), String(n));
  }
});

it("takes a string time only as an RFC 3339 date-time, and keeps any other as the attribute it was written as", () => {
  const at = (time: string) =>
    toLogRecord(captured(`{"level":30,"time":"${time}","msg":"x"}\n`));
  const times: Array<[string, number]> = [
    ["2026-12-06T12:29:54.328Z", Date.UTC(2026, 11, 6, 12, 29, 54, 328)],
    ["2026-12-06T12:29:54Z", Date.UTC(2026, 11, 6, 12, 29, 54)],
    ["2026-12-06t12:29:54.5z", Date.UTC(2026, 11, 6, 12, 29, 54, 500)],
    ["2026-12-06T13:29:54.570+01:00", Date.UTC(2026, 11, 6, 12, 29, 54, 570)],
    ["2026-12-06T07:59:54-04:30", Date.UTC(2026, 11, 6, 12, 29, 54)],
    ["2028-02-29T00:00:00Z", Date.UTC(2028, 1, 29)],
    ["2026-12-31T23:59:60Z", Date.UTC(2027, 0, 1)], // a leap second
    // Digits past the milliseconds (pino's isoTimeNano), kept as a fraction.
    [
      "2026-12-06T12:29:54.328835423Z",
      Date.UTC(2026, 11, 6, 12, 29, 54) + 328.835423,
    ],
    ["2026-12-06T12:29:54.0005Z", Date.UTC(2026, 11, 6, 12, 29, 54) + 0.5],
  ];
  for (const [time, ms] of times) {
    const record = at(time);
    assert.equal(record.time, ms, time);
    assert.deepEqual(record.attributes, {}, time);
  }
  for (const time of [
    "06/12/2026, 12:33:50", // en-GB: Date.parse reads June 12
    "2026-12-06 12:30:53,123", // log4j's: Date.parse reads nothing
    "2026-12-06T12:30:53", // no zone: local to whoever reads it
    "2026-12-06T12:30:53.123",
    "2026-12-06", // a date alone
    "2026-12-06T12:30Z", // no seconds
    "2026-12-06T12:30:53+0100", // an offset without its colon
    "2026-02-30T12:00:00Z", // Date.parse moves it to March 2
    "2026-13-01T12:00:00Z",
    "2026-12-06T24:00:00Z",
    "2026-12-06T12:30:53+24:00",
    "Sun, 06 Dec 2026 12:30:53 GMT",
    "1796560253123",
    "",
  ]) {
    const record = at(time);
    assert.equal(record.time, undefined, time);
    assert.deepEqual(record.attributes, { time }, time);
  }
  // Through the whole export: no time, and the attribute as written.
  const stage = new LogStage();
  stage.append(
    logged('{"level":30,"time":"06/12/2026, 12:33:50","msg":"en-GB"}\n'),
  );
  const [request] = decodeLogsProto(
    exportBatch(stage, new LogsEncoder(resource, scope)),
  );
  const [record] = request!.scopes[0]!.logs;
  assert.equal(record!.timeUs, 0);
  assert.deepEqual(record!.attributes, { time: "06/12/2026, 12:33:50" });
});

it("writes the SDK's own records under its scope, after the logger's, and no scope without records", () => {
  const sdkScope = { name: "@threadline/node", version: "0.1.0" };
  const scopesOf = (batch: Uint8Array) =>
    [
      decodeLogsProto(
        encodeStagedLogs(
          new LogsEncoder(resource, scope),
          batch,
          NO_LOG_LIMITS,
          sdkScope,
        ).body,
      ),
      decodeLogsJson(
        JSON.parse(
          encodeStagedLogsJson(
            new LogsEncoder(resource, scope),
            batch,
            NO_LOG_LIMITS,
            sdkScope,
          ),
        ),
      ),
    ].map(([resourceLogs]) =>
      resourceLogs!.scopes.map((s) => [
        s.scope.name,
        s.logs.map((l) => l.body),
      ]),
    );
  const mixed = staged([
    logged('{"msg":"alarm raised"}', { sdk: true }),
    logged('{"msg":"order placed"}'),
    logged("not json", { sdk: true }),
    logged('{"msg":"order paid","n":1}'),
  ]);
  for (const scopes of scopesOf(mixed))
    assert.deepEqual(scopes, [
      ["pino", ["order placed", "order paid"]],
      ["@threadline/node", ["alarm raised", "not json"]],
    ]);
  for (const scopes of scopesOf(
    staged([logged('{"msg":"alarm raised"}', { sdk: true })]),
  ))
    assert.deepEqual(scopes, [["@threadline/node", ["alarm raised"]]]);
  for (const scopes of scopesOf(staged([logged('{"msg":"order placed"}')])))
    assert.deepEqual(scopes, [["pino", ["order placed"]]]);
});

/**
 * A line of `pad` x's in its field `big`, and of every kind of member
 * JSON.parse has rules for: an escaped key and value, integers past 2^53,
 * `__proto__`, a repeated key, an array index, nested objects and arrays.
 */
const lineWith = (pad: number) =>
  '{"level":50,"time":1763800000123,"pid":7,"hostname":"h",' +
  '"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331",' +
  `"big":"${"x".repeat(pad)}","es\\"c":"a\\"b\\\\n\\u00e9","id":1234567890123456789,` +
  '"__proto__":{"p":1},"dup":1,"7":"index","nested":{"a":[1,2.5,{"b":null}],"s":"}]"},' +
  '"dup":{"x":[true,false]},"flag":true,"none":null,"n":-1.5e3,"msg":"m"}\n';

it("reads a line too large to parse whole member by member, as JSON.parse reads it", () => {
  const small = toLogRecord(captured(lineWith(1)));
  const large = toLogRecord(captured(lineWith(70_000)));
  assert.ok(lineWith(70_000).length > 64 * 1024);
  const { big, ...rest } = large.attributes!;
  assert.equal(big, "x".repeat(70_000));
  assert.deepEqual(
    Object.keys(large.attributes!),
    Object.keys(small.attributes!),
  );
  assert.deepEqual({ ...rest, big: "x" }, small.attributes);
  assert.equal(rest["id"], 1234567890123456789n);
  assert.deepEqual(rest["dup"], { x: [true, false] });
  assert.deepEqual(
    [large.body, large.time, large.severityNumber],
    [small.body, small.time, small.severityNumber],
  );
});

it("keeps a large line's objects past what it parses as their JSON text, smallest parsed first, whole under the length limit", () => {
  const limits = { attributeCountLimit: 128, attributeValueLengthLimit: 100 };
  const rows = (n: number, from: number) =>
    JSON.stringify(
      Array.from({ length: n }, (_, i) => ({ id: from + i, name: "row" })),
    );
  // Two bodies of some 40 KB: the first parsed, the budget then too short
  // for the second. An 80 KB one, and the error and the order logged after
  // them, are parsed first.
  const first = rows(1500, 0);
  const second = rows(1500, 1500);
  const huge = rows(3000, 3000);
  const stack = `Error: boom\n    at ${"y".repeat(300)}`;
  const line =
    `{"level":50,"time":1763800000123,"huge":${huge},"first":${first},` +
    `"second":${second},"err":{"type":"Error","message":"boom","stack":${JSON.stringify(stack)}},` +
    `"order":{"id":7},"msg":"large"}\n`;
  const record = toLogRecord(captured(line), limits);
  const a = record.attributes!;
  assert.equal(record.body, "large");
  assert.deepEqual(Object.keys(a), [
    "huge",
    "first",
    "second",
    "err",
    "order",
    "exception.type",
    "exception.message",
    "exception.stacktrace",
  ]);
  assert.equal(a["huge"], huge);
  assert.equal(a["second"], second);
  assert.deepEqual(a["first"], JSON.parse(first));
  assert.deepEqual(a["order"], { id: 7 });
  assert.equal(a["exception.type"], "Error");
  // Strings of what was parsed are cut, as ever.
  assert.equal((a["exception.stacktrace"] as string).length, 100);
});

it("keeps a large line that is no JSON object, or no JSON, as its body", () => {
  const array = `[${'"x",'.repeat(20_000)}"end"]`;
  const cut = lineWith(70_000).slice(0, -10);
  const unquoted = lineWith(70_000).replace('"flag"', "flag");
  for (const line of [array, cut, unquoted]) {
    const record = toLogRecord(captured(`${line}\n`));
    assert.equal(record.body, line);
    assert.equal(record.attributes, undefined);
  }
});

it("keeps a large line whose earlier value of a repeated key is no JSON as its body, as JSON.parse does", () => {
  const pad = `"pad":"${"x".repeat(70_000)}"`;
  for (const first of ["[1,,2]", '{"b" 1}', "[1}"]) {
    const line = `{"a":${first},"a":1,${pad},"msg":"m"}`;
    const record = toLogRecord(captured(`${line}\n`));
    assert.equal(record.body, line);
    assert.equal(record.attributes, undefined);
  }
});

it("takes the exception from `err` when a large line keeps it as its text", () => {
  const err = {
    type: "TimeoutError",
    message: "db",
    stack: "TimeoutError: db\n    at query",
    data: "d".repeat(70_000),
  };
  const line =
    `{"level":50,"time":1763800000123,"err":${JSON.stringify(err)},` +
    '"previous":{"type":"TypeError","message":"old","stack":"TypeError: old"},"msg":"failed"}';
  const record = toLogRecord(captured(`${line}\n`));
  const a = record.attributes!;
  assert.equal(a["err"], JSON.stringify(err));
  assert.deepEqual(
    [a["exception.type"], a["exception.message"], a["exception.stacktrace"]],
    [err.type, err.message, err.stack],
  );
});

it("exports a line nested deeper than calls go, its depth past OTLP's maps as JSON text, with or without limits", () => {
  // A logged request body an attacker nested: 20 KB, ten thousand levels.
  const levels = 10_000;
  const deep = `${"[".repeat(levels)}"${"z".repeat(200)}"${"]".repeat(levels)}`;
  const line = `{"level":30,"time":1763800000123,"body":${deep},"msg":"deep"}`;
  /** How many arrays down a decoded value's innermost string is, and the string. */
  const unwrap = (v: unknown): [number, string] => {
    let depth = 0;
    while (Array.isArray(v)) {
      v = v[0];
      depth++;
    }
    if (typeof v === "string" && v.startsWith("[")) {
      const inner = unwrap(JSON.parse(v));
      return [depth + inner[0], inner[1]];
    }
    return [depth, v as string];
  };
  const limits = { attributeCountLimit: 128, attributeValueLengthLimit: 100 };
  for (const lim of [NO_LOG_LIMITS, limits]) {
    const z = "z".repeat(lim === limits ? 100 : 200);
    const batch = staged([logged(`${line}\n`)]);
    const encoder = new LogsEncoder(resource, scope);
    const { body, rejected } = encodeStagedLogs(encoder, batch, lim);
    assert.equal(rejected, 0);
    const json = encodeStagedLogsJson(encoder, batch, lim);
    for (const decoded of [
      decodeLogsProto(body),
      decodeLogsJson(JSON.parse(json) as unknown),
    ]) {
      const [record] = decoded[0]!.scopes[0]!.logs;
      assert.equal(record!.body, "deep");
      assert.deepEqual(unwrap(record!.attributes["body"]), [levels, z]);
    }
  }
});

it("keeps the customer a line was logged for as its customer.id, and a customer.id of the application's beside it", () => {
  const stamped = ALL_OWN_FIELDS | OWN_CUSTOMER;
  const record = (line: string, ownFields = stamped) =>
    toLogRecord(captured(`${line}\n`, { ownFields })).attributes;
  const claimed =
    '{"level":30,"time":1763800000123,"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","customer.id":"c-42","customer.id":"victim","order":7,"msg":"m"}';
  assert.deepEqual(record(claimed), {
    "customer.id": "c-42",
    "log.customer.id": "victim",
    order: 7,
  });
  // The same customer twice, or the application's alone.
  assert.deepEqual(
    record(
      '{"level":30,"time":1,"customer.id":"c-42","customer.id":"c-42","msg":"m"}',
    ),
    { "customer.id": "c-42" },
  );
  assert.deepEqual(
    record(
      '{"level":30,"time":1,"customer.id":"c-9","msg":"m"}',
      ALL_OWN_FIELDS,
    ),
    { "customer.id": "c-9" },
  );
  // Without ours, the application's last one is the line's, as JSON.parse reads it.
  assert.deepEqual(record(claimed, ALL_OWN_FIELDS), {
    "customer.id": "victim",
    order: 7,
  });
});
