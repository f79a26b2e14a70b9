import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BAGGAGE_MAX_BYTES,
  BAGGAGE_MAX_MEMBERS,
  parseBaggage,
  serializeBaggage,
} from "../src/baggage.ts";

describe("baggage", () => {
  it("parses members, percent-decoding values and keeping properties", () => {
    assert.deepEqual(
      parseBaggage("customer.id=c-42, note=hello%20world;ttl=30"),
      [
        { key: "customer.id", value: "c-42" },
        { key: "note", value: "hello world", metadata: "ttl=30" },
      ],
    );
  });

  it("skips malformed members one by one", () => {
    assert.deepEqual(
      parseBaggage(
        'good=1,bad key=2,=3,novalue,quote="x",ok=%E2%9C%93,broken=%E2',
      ),
      [
        { key: "good", value: "1" },
        { key: "ok", value: "✓" },
      ],
    );
  });

  it("lets the last value of a repeated key win", () => {
    assert.deepEqual(parseBaggage("a=1,a=2"), [{ key: "a", value: "2" }]);
  });

  it("keeps at most 64 members and 8192 bytes, dropping whole members", () => {
    const many = Array.from({ length: 100 }, (_, i) => `k${i}=v`).join(",");
    assert.equal(parseBaggage(many).length, BAGGAGE_MAX_MEMBERS);
    const big = Array.from(
      { length: 10 },
      (_, i) => `k${i}=${"x".repeat(1000)}`,
    ).join(",");
    const kept = parseBaggage(big);
    assert.equal(kept.length, 8);
    assert.ok(serializeBaggage(kept).length <= BAGGAGE_MAX_BYTES);
  });

  it("ignores absurdly long headers entirely", () => {
    assert.deepEqual(parseBaggage(`a=${"x".repeat(20000)}`), []);
  });

  it("serialises with percent-encoding and round-trips", () => {
    const header = serializeBaggage([
      { key: "customer.id", value: "c-42" },
      { key: "note", value: "a,b;c=d ü" },
    ]);
    assert.equal(header, "customer.id=c-42,note=a%2Cb%3Bc%3Dd%20%C3%BC");
    assert.deepEqual(parseBaggage(header), [
      { key: "customer.id", value: "c-42" },
      { key: "note", value: "a,b;c=d ü" },
    ]);
  });

  it("never emits CR or LF", () => {
    const header = serializeBaggage([
      { key: "x", value: "a\r\nInjected: yes" },
    ]);
    assert.ok(!/[\r\n]/.test(header));
  });
});
