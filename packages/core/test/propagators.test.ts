import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ROOT_CONTEXT,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  trace,
} from "@opentelemetry/api";
import {
  BaggagePropagator,
  TraceContextPropagator,
} from "../src/propagators.ts";
import {
  getCustomerFromContext,
  setCustomerInContext,
} from "../src/customer.ts";
import { W3CTraceState } from "../src/trace-context.ts";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const SPAN = "b7ad6b7169203331";

describe("TraceContextPropagator", () => {
  const p = new TraceContextPropagator();

  it("extracts a remote span context with its tracestate", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: "a=1" },
      defaultTextMapGetter,
    );
    const sc = trace.getSpanContext(ctx)!;
    assert.equal(sc.traceId, TRACE);
    assert.equal(sc.spanId, SPAN);
    assert.equal(sc.isRemote, true);
    assert.equal(sc.traceState?.serialize(), "a=1");
  });

  it("ignores an invalid or repeated traceparent", () => {
    assert.equal(
      trace.getSpanContext(
        p.extract(
          ROOT_CONTEXT,
          { traceparent: "garbage" },
          defaultTextMapGetter,
        ),
      ),
      undefined,
    );
    const two = {
      traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-00`],
    };
    assert.equal(
      trace.getSpanContext(p.extract(ROOT_CONTEXT, two, defaultTextMapGetter)),
      undefined,
    );
  });

  it("injects traceparent and tracestate", () => {
    const ctx = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: TRACE,
      spanId: SPAN,
      traceFlags: 1,
      traceState: W3CTraceState.fromHeader("a=1")!,
    });
    const carrier: Record<string, string> = {};
    p.inject(ctx, carrier, defaultTextMapSetter);
    assert.deepEqual(carrier, {
      traceparent: `00-${TRACE}-${SPAN}-01`,
      tracestate: "a=1",
    });
  });
});

describe("BaggagePropagator", () => {
  const p = new BaggagePropagator();

  it("moves customer.id into the customer slot and keeps other entries as baggage", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: "customer.id=c-42,tier=gold" },
      defaultTextMapGetter,
    );
    assert.equal(getCustomerFromContext(ctx), "c-42");
    assert.equal(propagation.getBaggage(ctx)?.getEntry("tier")?.value, "gold");
  });

  it("refuses a customer id that is not a valid id", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: `customer.id=${"x".repeat(500)}` },
      defaultTextMapGetter,
    );
    assert.equal(getCustomerFromContext(ctx), undefined);
  });

  it("injects the customer slot, overriding a stale customer.id entry", () => {
    let ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: "customer.id=c-1,tier=gold" },
      defaultTextMapGetter,
    );
    ctx = setCustomerInContext(ctx, "c-2");
    const carrier: Record<string, string> = {};
    p.inject(ctx, carrier, defaultTextMapSetter);
    assert.equal(carrier["baggage"], "customer.id=c-2,tier=gold");
  });

  it("writes nothing when there is nothing to send", () => {
    const carrier: Record<string, string> = {};
    p.inject(ROOT_CONTEXT, carrier, defaultTextMapSetter);
    assert.deepEqual(carrier, {});
  });

  it("passes on a __proto__ key like any other", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: "a=1,__proto__=2,c=3" },
      defaultTextMapGetter,
    );
    const carrier: Record<string, string> = {};
    p.inject(ctx, carrier, defaultTextMapSetter);
    assert.equal(carrier["baggage"], "a=1,__proto__=2,c=3");
  });

  it("leaves out an entry no encoding can carry, and sends the customer and the rest", () => {
    const broken = "🚀".slice(0, 1); // half of a surrogate pair
    const ctx = setCustomerInContext(
      propagation.setBaggage(
        ROOT_CONTEXT,
        propagation.createBaggage({
          note: { value: broken },
          tier: { value: "gold" },
        }),
      ),
      "c-42",
    );
    const carrier: Record<string, string> = {};
    p.inject(ctx, carrier, defaultTextMapSetter);
    assert.equal(carrier["baggage"], "customer.id=c-42,tier=gold");
  });
});
