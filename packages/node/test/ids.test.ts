import assert from "node:assert/strict";
import { it } from "node:test";
import { newSpanId, newTraceId } from "../src/internal/ids.ts";

it("draws distinct lowercase hex ids across many refills of the pool", () => {
  const seen = new Set<string>();
  // Interleaved, so ids of both lengths straddle every stretch and refill:
  // 3000 rounds take 96 KB of random bytes, twelve pools' worth.
  for (let i = 0; i < 3000; i++) {
    const traceId = newTraceId();
    const spanA = newSpanId();
    const spanB = newSpanId();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    assert.match(spanA, /^[0-9a-f]{16}$/);
    assert.match(spanB, /^[0-9a-f]{16}$/);
    for (const id of [traceId, spanA, spanB]) {
      assert.ok(!seen.has(id), `${id} was drawn twice`);
      seen.add(id);
    }
  }
});
