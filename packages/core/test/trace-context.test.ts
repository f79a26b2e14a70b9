import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  W3CTraceState,
  formatTraceparent,
  parseTraceparent,
  parseTracestate,
} from "../src/trace-context.ts";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const SPAN = "b7ad6b7169203331";

describe("traceparent", () => {
  it("parses a version-00 header", () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), {
      traceId: TRACE,
      spanId: SPAN,
      traceFlags: 1,
    });
  });

  it("keeps the Level 2 random flag and resets unknown flag bits", () => {
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.traceFlags, 3);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-ff`)?.traceFlags, 3);
  });

  it("rejects what the specification calls invalid", () => {
    const bad = [
      undefined,
      "",
      `00-${TRACE}-${SPAN}`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${"0".repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${"0".repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `0g-${TRACE}-${SPAN}-01`,
      `00_${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-0x`,
      // "š" is U+0161: its low byte is that of "a".
      `00-${TRACE.slice(0, 31)}\u0161-${SPAN}-01`,
      `00-${TRACE}-${SPAN.slice(0, 15)}\u0130-01`,
    ];
    for (const h of bad)
      assert.equal(parseTraceparent(h), undefined, String(h));
  });

  it("reads future versions by their first 55 characters", () => {
    assert.equal(
      parseTraceparent(`cc-${TRACE}-${SPAN}-01-what-the-future-holds`)?.traceId,
      TRACE,
    );
    assert.equal(parseTraceparent(`cc-${TRACE}-${SPAN}-01x`), undefined);
  });

  it("formats what it parses", () => {
    assert.equal(formatTraceparent(TRACE, SPAN, 1), `00-${TRACE}-${SPAN}-01`);
    assert.equal(formatTraceparent(TRACE, SPAN, 3), `00-${TRACE}-${SPAN}-03`);
  });
});

describe("tracestate", () => {
  it("parses members in order and skips empty ones", () => {
    assert.deepEqual(
      parseTracestate("rojo=00f067aa0ba902b7,, congo=t61rcWkgMzE"),
      [
        ["rojo", "00f067aa0ba902b7"],
        ["congo", "t61rcWkgMzE"],
      ],
    );
  });

  it("accepts multi-tenant keys", () => {
    assert.deepEqual(parseTracestate("tenant@vendor=x"), [
      ["tenant@vendor", "x"],
    ]);
  });

  it("drops the whole header on a bad member, a duplicate key or too many members", () => {
    assert.equal(parseTracestate("Rojo=1"), undefined);
    assert.equal(parseTracestate("a=1,a=2"), undefined);
    assert.equal(parseTracestate("a=x=y"), undefined);
    const many = Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(",");
    assert.equal(parseTracestate(many), undefined);
    assert.equal(parseTracestate("a=\u0001"), undefined);
  });

  it("sets, unsets and serialises without changing the original", () => {
    const ts = W3CTraceState.fromHeader("a=1,b=2")!;
    const changed = ts.set("b", "3").unset("a");
    assert.equal(ts.serialize(), "a=1,b=2");
    assert.equal(changed.serialize(), "b=3");
    assert.equal(ts.get("b"), "2");
    assert.equal(ts.set("Bad Key", "x"), ts);
  });
});
