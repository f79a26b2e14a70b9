import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import {
  WATCH_DEBUG,
  WATCH_KEY,
  setCustomerInContext,
  watchList,
} from "@threadline/core";
import {
  parentBased,
  watchAware,
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

describe("watched customers", () => {
  const s = watchAware(parentBased(alwaysOff));
  const id = () => randomBytes(16).toString("hex");
  const c42 = setCustomerInContext(ROOT_CONTEXT, "c-42");
  const unsampled = (isRemote: boolean) => ({
    traceId: id(),
    spanId: "b7ad6b7169203331",
    traceFlags: 0,
    isRemote,
  });

  it("samples every new trace of a watched customer, and leaves others to the base", () => {
    watchList.replace([
      { customer: "c-42", until: Date.now() + 60_000, level: WATCH_DEBUG },
    ]);
    try {
      assert.equal(s.shouldSample(c42, id(), undefined), true);
      assert.equal(
        s.shouldSample(
          setCustomerInContext(ROOT_CONTEXT, "c-7"),
          id(),
          undefined,
        ),
        false,
      );
      assert.equal(s.shouldSample(ROOT_CONTEXT, id(), undefined), false);
      // A caller that did not know yet: this service samples from here on.
      assert.equal(s.shouldSample(c42, id(), unsampled(true)), true);
      // The customer became known inside a request that was not sampled.
      assert.equal(s.shouldSample(c42, id(), unsampled(false)), true);
      assert.equal(
        s.shouldSample(
          setCustomerInContext(ROOT_CONTEXT, "c-7"),
          id(),
          unsampled(false),
        ),
        false,
      );
    } finally {
      watchList.replace([]);
    }
    assert.equal(s.shouldSample(c42, id(), undefined), false);
  });

  it("samples a request that carries the watch decision", () => {
    const until = Date.now() + 60_000;
    const carried = c42.setValue(WATCH_KEY, {
      level: WATCH_DEBUG,
      until,
      customer: "c-42",
    });
    watchList.noteCarried(until);
    try {
      assert.equal(s.shouldSample(carried, id(), unsampled(true)), true);
      assert.equal(s.shouldSample(carried, id(), unsampled(false)), true);
    } finally {
      watchList.replace([]);
      watchList.refresh(Date.now() + 120_000);
    }
  });
});
