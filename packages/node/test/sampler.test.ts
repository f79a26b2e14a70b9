import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import {
  parentBased,
  traceIdRatio,
  alwaysOff,
  alwaysOn,
} from "../src/trace/sampler.ts";

describe("samplers", () => {
  it("samples about the configured share of random trace ids", () => {
    const s = traceIdRatio(0.1);
    let sampled = 0;
    for (let i = 0; i < 20000; i++)
      if (
        s.shouldSample(ROOT_CONTEXT, randomBytes(16).toString("hex"), undefined)
      )
        sampled++;
    assert.ok(sampled > 1700 && sampled < 2300, `sampled ${sampled} of 20000`);
  });

  it("decides the same way for the same trace id", () => {
    const s = traceIdRatio(0.5);
    const id = randomBytes(16).toString("hex");
    const first = s.shouldSample(ROOT_CONTEXT, id, undefined);
    for (let i = 0; i < 10; i++)
      assert.equal(s.shouldSample(ROOT_CONTEXT, id, undefined), first);
  });

  it("follows the parent's sampled flag", () => {
    const s = parentBased(alwaysOff);
    const parent = {
      traceId: "a".repeat(32),
      spanId: "b".repeat(16),
      traceFlags: 1,
    };
    assert.equal(s.shouldSample(ROOT_CONTEXT, parent.traceId, parent), true);
    assert.equal(
      s.shouldSample(ROOT_CONTEXT, parent.traceId, {
        ...parent,
        traceFlags: 0,
      }),
      false,
    );
    assert.equal(
      parentBased(alwaysOn).shouldSample(
        ROOT_CONTEXT,
        parent.traceId,
        undefined,
      ),
      true,
    );
  });
});
