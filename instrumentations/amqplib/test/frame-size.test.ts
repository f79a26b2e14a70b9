// The sizes the copy path checks must be the sizes amqplib's own encoder
// gives the same properties, byte for byte.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadDefs } from "./fixtures/amqplib-under-test.ts";
import { contentHeaderSize, tableSize } from "../src/frame-size.ts";

const defs = loadDefs();

function encoded(properties: Record<string, unknown>): number {
  return defs.encodeProperties(defs.BasicProperties, 1, 10, properties).length;
}

function sized(properties: Record<string, unknown>): number {
  const headers = properties["headers"];
  const table =
    headers != null ? tableSize(headers as Record<string, unknown>) : 0;
  return contentHeaderSize(properties, table);
}

describe("the content-header frame's size, as amqplib encodes it", () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["no properties", {}],
    [
      "every short string, in UTF-8",
      {
        contentType: "application/json",
        contentEncoding: "gzip",
        correlationId: "c-1",
        replyTo: "amq.rabbitmq.reply-to",
        expiration: "60000",
        messageId: "m-é-1",
        type: "order.placed",
        userId: "guest",
        appId: "shop",
        clusterId: "x",
      },
    ],
    [
      "numbered properties",
      { deliveryMode: 2, priority: 5, timestamp: 1_764_692_000 },
    ],
    [
      "numbers of every width in a table",
      {
        headers: {
          zero: 0,
          byte: -128,
          short: 200,
          negShort: -0x8000,
          int: 70_000,
          negInt: -0x80000000,
          long: 2 ** 40,
          fraction: 1.5,
          big: 2 ** 63,
          negFraction: -0.25,
        },
      },
    ],
    [
      "strings, booleans, nulls, buffers, arrays and nested tables",
      {
        headers: {
          traceparent:
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          clé: "välue ✓",
          yes: true,
          no: false,
          nothing: null,
          skipped: undefined,
          raw: Buffer.from([1, 2, 3]),
          list: [1, "two", [3, 300], { four: 4 }, null, true],
          nested: { a: { b: "c", d: 70_000 } },
        },
      },
    ],
    [
      "values given a type",
      {
        headers: {
          t: { "!": "timestamp", value: 1_764_692_000 },
          f: { "!": "float", value: 1.5 },
          d: { "!": "decimal", value: { places: 2, digits: 1234 } },
          u8: { "!": "uint8", value: 200 },
          u16: { "!": "unsignedshort", value: 60_000 },
          u32: { "!": "uint32", value: 4_000_000_000 },
          i64: { "!": "int64", value: 5 },
          s: { "!": "string", value: "typed" },
          b: { "!": "boolean", value: true },
        },
      },
    ],
  ];
  for (const [what, properties] of cases)
    it(what, () => assert.equal(sized(properties), encoded(properties)));

  it("follows the prototype chain of the headers object, as amqplib's encoder does", () => {
    const headers = Object.create({ inherited: "yes" }) as Record<
      string,
      unknown
    >;
    headers["own"] = 1;
    assert.equal(sized({ headers }), encoded({ headers }));
  });
});
