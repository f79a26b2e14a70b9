// The trace headers written into amqplib's content-header frame must give
// the very bytes amqplib writes when the same headers are in the message's
// headers object.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadDefs } from "./fixtures/amqplib-under-test.ts";
import { spliceHeaders, type HeaderEntries } from "../src/header-splice.ts";

const defs = loadDefs();

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const SENT_AT = 1_764_692_000_123;

/** Basic properties as amqplib's publish() builds them, every field present. */
function properties(
  options: Record<string, unknown>,
  headers: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return {
    contentType: undefined,
    contentEncoding: undefined,
    headers,
    deliveryMode: undefined,
    priority: undefined,
    correlationId: undefined,
    replyTo: undefined,
    expiration: undefined,
    messageId: undefined,
    timestamp: undefined,
    type: undefined,
    userId: undefined,
    appId: undefined,
    clusterId: undefined,
    ...options,
  };
}

function entriesObject(entries: HeaderEntries): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < entries.length; i += 2)
    out[entries[i] as string] = entries[i + 1];
  return out;
}

/** What amqplib writes with `entries` after the application's headers, and what the splice writes. */
function both(
  options: Record<string, unknown>,
  appHeaders: Record<string, unknown> | undefined,
  entries: HeaderEntries,
  channel = 1,
  bodySize = 48,
): [expected: Buffer, actual: Buffer | string] {
  const merged = { ...appHeaders, ...entriesObject(entries) };
  const expected = defs.encodeProperties(
    defs.BasicProperties,
    channel,
    bodySize,
    properties(options, merged),
  );
  const frame = defs.encodeProperties(
    defs.BasicProperties,
    channel,
    bodySize,
    properties(options, appHeaders),
  );
  return [expected, spliceHeaders(frame, entries, Infinity)];
}

const ours: HeaderEntries = [
  "traceparent",
  TRACEPARENT,
  "threadline-sent-at",
  SENT_AT,
];

describe("spliceHeaders", () => {
  const cases: Array<
    [string, Record<string, unknown>, Record<string, unknown> | undefined]
  > = [
    ["an empty headers table", {}, {}],
    ["no headers table at all", {}, undefined],
    [
      "the application's headers of every kind",
      {},
      {
        "x-tenant": "t-1",
        "x-count": 7,
        "x-big": 5_000_000_000,
        "x-ratio": 0.25,
        "x-flag": true,
        "x-list": ["a", 1],
        "x-nested": { deep: "yes" },
        "x-null": null,
        "x-bytes": Buffer.from("raw"),
        "x-ünïcode": "värde",
      },
    ],
    [
      "a content type and encoding before the table",
      { contentType: "application/json", contentEncoding: "gzip" },
      { "x-tenant": "t-1" },
    ],
    ["only a content encoding", { contentEncoding: "br" }, undefined],
    [
      "every other property after the table",
      {
        contentType: "text/plain",
        deliveryMode: 2,
        priority: 5,
        correlationId: "corr-1",
        replyTo: "amq.rabbitmq.reply-to",
        expiration: "60000",
        messageId: "m-1",
        timestamp: 1_764_692_000,
        type: "order.placed",
        userId: "guest",
        appId: "orders",
      },
      { CC: ["audit"] },
    ],
  ];
  for (const [name, options, appHeaders] of cases) {
    it(`matches amqplib's own encoding: ${name}`, () => {
      const [expected, actual] = both(options, appHeaders, ours);
      assert.ok(Buffer.isBuffer(actual));
      assert.deepEqual(actual, expected);
    });
  }

  it("matches with tracestate and non-ASCII baggage, on a high channel and a large body", () => {
    const [expected, actual] = both(
      { contentType: "application/json" },
      { "x-tenant": "t-1" },
      [
        "traceparent",
        TRACEPARENT,
        "tracestate",
        "tl=p:8,vendor=abc",
        "baggage",
        "customer.id=c-42,note=%C3%A9t%C3%A9,raw=été",
        "threadline-sent-at",
        SENT_AT,
      ],
      65_535,
      3_000_000_000,
    );
    assert.ok(Buffer.isBuffer(actual));
    assert.deepEqual(actual, expected);
  });

  it("matches for a table of tens of kilobytes, and leaves one amqplib could not encode alone", () => {
    const long = "v".repeat(60_000);
    const [expected, actual] = both({}, { "x-long": long }, ours);
    // equals(): a failing deepEqual would print tens of kilobytes.
    assert.ok(Buffer.isBuffer(actual) && actual.equals(expected));
    // amqplib encodes a table in 64 KiB of scratch space and refuses more.
    const frame = defs.encodeProperties(
      defs.BasicProperties,
      1,
      10,
      properties({}, { "x-long": "v".repeat(65_450) }),
    );
    assert.ok(spliceHeaders(frame, ours, Infinity) === "table full");
  });

  it("leaves a frame alone that would outgrow the connection's frame size", () => {
    const frame = defs.encodeProperties(
      defs.BasicProperties,
      1,
      10,
      properties({}, { "x-big": "z".repeat(8100) }),
    );
    assert.ok(frame.length <= 8192);
    assert.equal(spliceHeaders(frame, ours, 8192), "frame full");
    const spliced = spliceHeaders(frame, ours, 16_384);
    assert.ok(Buffer.isBuffer(spliced) && spliced.length > 8192);
  });

  it("refuses what is not a basic content header, leaving it unchanged", () => {
    const frame = defs.encodeProperties(
      defs.BasicProperties,
      1,
      10,
      properties({}, {}),
    );
    const copy = Buffer.from(frame);
    const method = Buffer.from(frame);
    method[0] = 1; // a method frame
    assert.equal(spliceHeaders(method, ours, Infinity), "unexpected frame");
    const truncated = frame.subarray(0, frame.length - 1);
    assert.equal(spliceHeaders(truncated, ours, Infinity), "unexpected frame");
    const wrongSize = Buffer.from(frame);
    wrongSize.writeUInt32BE(frame.length, 3);
    assert.equal(spliceHeaders(wrongSize, ours, Infinity), "unexpected frame");
    const otherClass = Buffer.from(frame);
    otherClass.writeUInt16BE(50, 7);
    assert.equal(spliceHeaders(otherClass, ours, Infinity), "unexpected frame");
    // A table length that runs past the frame.
    const overrun = Buffer.from(frame);
    overrun.writeUInt32BE(1000, 21);
    assert.equal(spliceHeaders(overrun, ours, Infinity), "unexpected frame");
    assert.deepEqual(frame, copy);
  });
});
