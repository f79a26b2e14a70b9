import assert from "node:assert/strict";
import { it } from "node:test";
import { createContextKey, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { EMPTY_CONTEXT } from "../src/context.ts";

const A = createContextKey("a");
const B = createContextKey("b");

it("behaves as the API's ROOT_CONTEXT does: immutable, last value wins, deletion", () => {
  for (const root of [EMPTY_CONTEXT, ROOT_CONTEXT]) {
    const one = root.setValue(A, 1);
    const two = one.setValue(B, 2).setValue(A, 3);
    assert.equal(root.getValue(A), undefined);
    assert.equal(one.getValue(A), 1);
    assert.equal(one.getValue(B), undefined);
    assert.equal(two.getValue(A), 3);
    assert.equal(two.getValue(B), 2);
    const deleted = two.deleteValue(A);
    assert.equal(deleted.getValue(A), undefined);
    assert.equal(deleted.getValue(B), 2);
    assert.equal(two.getValue(A), 3, "deleting leaves the original alone");
    assert.equal(deleted.setValue(A, 4).getValue(A), 4);
  }
});

it("works with the API's helpers", () => {
  const sc = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: 1,
  };
  const ctx = trace.setSpanContext(EMPTY_CONTEXT, sc);
  assert.deepEqual(trace.getSpanContext(ctx), sc);
  assert.equal(trace.getSpan(trace.deleteSpan(ctx)), undefined);
});
