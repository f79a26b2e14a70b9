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
        'good=1,bad key=2,=3,novalue,quote="x",ok=%E2%9C%93,pct=%,hex=%G1,short=a%4',
      ),
      [
        { key: "good", value: "1" },
        { key: "ok", value: "✓" },
      ],
    );
  });

  it("decodes percent-encoded bytes that are not UTF-8 to U+FFFD", () => {
    assert.deepEqual(
      parseBaggage(
        "name=Jos%E9,surrogate=%ED%A0%80,ff=%FF,cut=%E2%9C,bom=%EF%BB%BFx,ok=1",
      ),
      [
        { key: "name", value: "Jos\ufffd" },
        { key: "surrogate", value: "\ufffd\ufffd\ufffd" },
        { key: "ff", value: "\ufffd" },
        { key: "cut", value: "\ufffd" },
        { key: "bom", value: "\ufeffx" },
        { key: "ok", value: "1" },
      ],
    );
    assert.deepEqual(parseBaggage("k=1;p=%FF"), [
      { key: "k", value: "1", metadata: "p=%FF" },
    ]);
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
    assert.equal(header, "customer.id=c-42,note=a%2Cb%3Bc=d%20%C3%BC");
    assert.deepEqual(parseBaggage(header), [
      { key: "customer.id", value: "c-42" },
      { key: "note", value: "a,b;c=d ü" },
    ]);
  });

  it("encodes only what baggage-octet does not allow, and %, as UTF-8", () => {
    assert.equal(
      serializeBaggage([
        { key: "ref", value: "https://shop.example/search?q=a b+c&d=[e]#top" },
        { key: "odd", value: '100% "ok"\\ \u{1F600}\u00e9\u20ac\u007f' },
      ]),
      "ref=https://shop.example/search?q=a%20b+c&d=[e]#top," +
        "odd=100%25%20%22ok%22%5C%20%F0%9F%98%80%C3%A9%E2%82%AC%7F",
    );
    // A lone surrogate has no UTF-8 form: that member alone is left out.
    assert.equal(
      serializeBaggage([
        { key: "bad", value: "a\ud800b" },
        { key: "ok", value: "1" },
      ]),
      "ok=1",
    );
  });

  it("writes a header it read in the form it came in", () => {
    const header =
      "ref=https://shop.example/search?q=red%20shoes,note=caf%C3%A9%2C%3B;p=1";
    assert.equal(serializeBaggage(parseBaggage(header)), header);
  });

  it("never emits CR or LF", () => {
    const header = serializeBaggage([
      { key: "x", value: "a\r\nInjected: yes" },
    ]);
    assert.ok(!/[\r\n]/.test(header));
  });
});
