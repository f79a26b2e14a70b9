import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Exception,
  type SpanOptions,
} from "@opentelemetry/api";
import { setCustomerInContext } from "@threadline/core";
import { TracerProvider } from "../src/trace/tracer-provider.ts";
import { alwaysOn, alwaysOff } from "../src/trace/sampler.ts";
import { MAX_OPEN_TRACKED, RecordingSpan } from "../src/trace/span.ts";

const limits = {
  attributeCountLimit: 4,
  attributeValueLengthLimit: 5,
  eventCountLimit: 2,
  linkCountLimit: 1,
  attributePerEventCountLimit: 1,
  attributePerLinkCountLimit: 1,
};

/** `room`: how many spans the sink takes between two drains. */
function setup(sampler = alwaysOn, spanLimits = limits, room = 512) {
  const ended: RecordingSpan[] = [];
  // How many had ended at each drain.
  const drained: number[] = [];
  const provider = new TracerProvider(sampler, spanLimits, {
    onEnd: (s) => ended.push(s),
    drainSpans: () => {
      drained.push(ended.length);
      return room;
    },
  });
  return { tracer: provider.getTracer("t", "1"), ended, drained };
}

describe("spans", () => {
  it("stamps the customer id of the context on every span", () => {
    const { tracer, ended } = setup();
    const ctx = setCustomerInContext(ROOT_CONTEXT, "c-42");
    const parent = tracer.startSpan("parent", { kind: SpanKind.SERVER }, ctx);
    tracer.startSpan("child", {}, trace.setSpan(ctx, parent)).end();
    parent.end();
    assert.deepEqual(
      ended.map((s) => [s.name, s.attributes["customer.id"]]),
      [
        ["child", "c-42"],
        ["parent", "c-42"],
      ],
    );
    assert.equal(ended[0]!.parentSpanId, ended[1]!.spanId);
    assert.equal(ended[0]!.traceId, ended[1]!.traceId);
  });

  it("continues valid parents, our own spans and remote ones, and starts a new trace under an invalid one", () => {
    const { tracer, ended } = setup();
    const own = tracer.startSpan("own");
    tracer.startSpan("under own", {}, trace.setSpan(ROOT_CONTEXT, own)).end();
    const remote = trace.wrapSpanContext({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      isRemote: true,
    });
    tracer
      .startSpan("under remote", {}, trace.setSpan(ROOT_CONTEXT, remote))
      .end();
    for (const traceId of [
      "0".repeat(32),
      "4BF92F3577B34DA6A3CE929D0E0E4736",
    ]) {
      const invalid = trace.wrapSpanContext({
        traceId,
        spanId: "00f067aa0ba902b7",
        traceFlags: 1,
      });
      tracer
        .startSpan("under invalid", {}, trace.setSpan(ROOT_CONTEXT, invalid))
        .end();
    }
    own.end();
    const [underOwn, underRemote, ...underInvalid] = ended;
    assert.equal(underOwn!.traceId, own.spanContext().traceId);
    assert.equal(underOwn!.parentSpanId, own.spanContext().spanId);
    assert.equal(underRemote!.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(underRemote!.parentSpanId, "00f067aa0ba902b7");
    assert.equal(underInvalid.length, 3); // the two, and "own"
    for (const s of underInvalid.slice(0, 2)) {
      assert.match(s.traceId, /^[0-9a-f]{32}$/);
      assert.notEqual(s.traceId, "0".repeat(32));
      assert.equal(s.parentSpanId, undefined);
    }
  });

  it("applies attribute, event and link limits", () => {
    const { tracer, ended } = setup();
    const span = tracer.startSpan("s", {
      attributes: { a: "123456789", b: 1, c: true },
    });
    span.setAttributes({ d: ["abcdefgh"], e: "dropped", f: "dropped" });
    span.setAttribute("a", "x");
    span.addEvent("e1", { k1: 1, k2: 2 });
    span.addEvent("e2");
    span.addEvent("e3");
    const linked = {
      traceId: "a".repeat(32),
      spanId: "b".repeat(16),
      traceFlags: 1,
    };
    span.addLinks([{ context: linked }, { context: linked }]);
    span.end();
    const s = ended[0]!;
    assert.deepEqual(s.attributes, { a: "x", b: 1, c: true, d: ["abcde"] });
    assert.equal(s.droppedAttributesCount, 2);
    assert.equal(s.events?.length, 2);
    assert.equal(s.events?.[0]?.droppedAttributesCount, 1);
    assert.equal(s.droppedEventsCount, 1);
    assert.equal(s.droppedLinksCount, 1);
  });

  it("takes null, or anything that is no object, for no attributes, and throws nothing", () => {
    const { tracer, ended } = setup(alwaysOn, {
      ...limits,
      eventCountLimit: 8,
      linkCountLimit: 8,
    });
    const context = {
      traceId: "a".repeat(32),
      spanId: "b".repeat(16),
      traceFlags: 1,
    };
    // What JavaScript callers of @opentelemetry/api can pass.
    const odd = [null, "str", 42, true, () => 1] as unknown as Attributes[];
    for (const attributes of odd) {
      const span = tracer.startSpan("s", {
        attributes,
        links: [{ context, attributes }],
      });
      span.setAttributes(attributes);
      span.addEvent("e", attributes);
      span.addLink({ context, attributes });
      span.addLinks([{ context, attributes }]);
      span.end();
      tracer.startActiveSpan("active", { attributes }, (s) => s.end());
    }
    const ctx = setCustomerInContext(ROOT_CONTEXT, "c-42");
    tracer.startSpan("with a customer", { attributes: odd[0] }, ctx).end();
    const span = tracer.startSpan("no options", null as unknown as SpanOptions);
    span.setAttribute(null as unknown as string, 1);
    span.setAttribute({} as unknown as string, 1);
    for (const exception of [null, undefined, 42, Symbol("s"), () => 1])
      span.recordException(exception as unknown as Exception);
    span.end();
    assert.equal(ended.length, 2 * odd.length + 2);
    for (const s of ended) {
      assert.deepEqual(
        s.attributes,
        s.name === "with a customer" ? { "customer.id": "c-42" } : {},
        s.name,
      );
      for (const e of [...(s.events ?? []), ...(s.links ?? [])])
        assert.deepEqual(e.attributes ?? {}, {}, s.name);
    }
    assert.equal(ended.at(-1)!.events?.length, 5);
  });

  it("keeps a link whose ids are hex digits in upper or mixed case, in lower case", () => {
    const { tracer, ended } = setup(alwaysOn, { ...limits, linkCountLimit: 4 });
    const span = tracer.startSpan("s");
    span.addLink({
      context: {
        traceId: "4BF92F3577B34DA6A3CE929D0E0E4736",
        spanId: "00F067AA0BA902B7",
        traceFlags: 1,
      },
    });
    span.addLink({
      context: {
        traceId: "4bf92f3577b34da6A3CE929D0E0E4736",
        spanId: "00f067aa0BA902B7",
        traceFlags: 0,
      },
    });
    span.end();
    const s = ended[0]!;
    assert.equal(s.droppedLinksCount, 0);
    assert.deepEqual(
      s.links?.map((l) => [l.traceId, l.spanId]),
      [
        ["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"],
        ["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"],
      ],
    );
  });

  it("copies start attributes the same way whichever path the copy takes", () => {
    const { tracer, ended } = setup();
    const ctx = setCustomerInContext(ROOT_CONTEXT, "c-42");
    const given = { a: "abc", b: 2, c: false };
    const start = (attributes: Record<string, unknown>, context = ctx) =>
      tracer.startSpan("s", { attributes: attributes as never }, context).end();
    start(given); // copied whole
    given.a = "changed after start";
    start({ a: "abc", b: 2, c: false, d: 4 }); // one too many with customer.id
    start({ a: "123456789", b: 2 }); // a value over the length limit
    start({ a: "abc", b: undefined, c: { no: 1 }, d: [{ no: 1 }], "": 1 }); // entries skipped
    start({ "customer.id": "own", a: "abc" }); // the attributes' own id wins
    start({ a: "abc", b: 2, c: false, d: 4 }, ROOT_CONTEXT); // no customer
    start(Object.assign(Object.create({ inherited: "yes" }), { a: "abc" }));
    assert.deepEqual(
      ended.map((s) => [{ ...s.attributes }, s.droppedAttributesCount]),
      [
        [{ "customer.id": "c-42", a: "abc", b: 2, c: false }, 0],
        [{ "customer.id": "c-42", a: "abc", b: 2, c: false }, 1],
        [{ "customer.id": "c-42", a: "12345", b: 2 }, 0],
        [{ "customer.id": "c-42", a: "abc" }, 0],
        [{ "customer.id": "own", a: "abc" }, 0],
        [{ a: "abc", b: 2, c: false, d: 4 }, 0],
        [{ "customer.id": "c-42", a: "abc", inherited: "yes" }, 0],
      ],
    );
  });

  it("follows the status rules: OK is final, UNSET never overrides", () => {
    const { tracer, ended } = setup();
    const span = tracer.startSpan("s");
    span.setStatus({ code: SpanStatusCode.ERROR, message: "bad" });
    span.setStatus({ code: SpanStatusCode.UNSET });
    span.setStatus({ code: SpanStatusCode.OK });
    span.setStatus({ code: SpanStatusCode.ERROR, message: "again" });
    span.end();
    assert.equal(ended[0]!.statusCode, SpanStatusCode.OK);
    assert.equal(ended[0]!.statusMessage, undefined);
  });

  it("ends once and ignores changes after end", () => {
    const { tracer, ended } = setup();
    const span = tracer.startSpan("s");
    span.end();
    span.end();
    span.setAttribute("late", 1);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.attributes["late"], undefined);
    assert.equal(span.isRecording(), false);
  });

  it("records exceptions as events", () => {
    const { tracer, ended } = setup(alwaysOn, {
      ...limits,
      attributeValueLengthLimit: 1000,
    });
    const span = tracer.startSpan("s");
    span.recordException(new TypeError("nope"));
    span.end();
    assert.equal(ended[0]!.events?.[0]?.name, "exception");
    assert.equal(
      ended[0]!.events?.[0]?.attributes?.["exception.type"],
      "TypeError",
    );
  });

  it("records what it can read of an exception whose stack, message or name throws when read, and throws nothing", () => {
    const { tracer, ended } = setup(alwaysOn, {
      ...limits,
      attributeValueLengthLimit: 1000,
      eventCountLimit: 4,
      attributePerEventCountLimit: 4,
    });
    const throwing = <T extends object>(e: T, ...keys: string[]): T => {
      for (const key of keys)
        Object.defineProperty(e, key, {
          get() {
            throw new Error(`no ${key}`);
          },
        });
      return e;
    };
    const span = tracer.startSpan("s");
    span.recordException(throwing(new Error("kept"), "stack"));
    span.recordException(
      throwing({ code: "E_PART", stack: "at work" }, "name", "message"),
    );
    span.recordException(
      new Proxy(new Error("p"), {
        get() {
          throw new Error("no property at all");
        },
      }),
    );
    span.end();
    const events = ended[0]!.events!;
    assert.deepEqual(
      events.map((e) => e.name),
      ["exception", "exception", "exception"],
    );
    assert.deepEqual(events[0]!.attributes, {
      "exception.type": "Error",
      "exception.message": "kept",
    });
    assert.deepEqual(events[1]!.attributes, {
      "exception.type": "E_PART",
      "exception.stacktrace": "at work",
    });
    assert.deepEqual(events[2]!.attributes, {});
  });

  it("still propagates a context for spans that are not sampled", () => {
    const { tracer, ended } = setup(alwaysOff);
    const span = tracer.startSpan("s");
    assert.equal(span.isRecording(), false);
    assert.match(span.spanContext().traceId, /^[0-9a-f]{32}$/);
    assert.equal(span.spanContext().traceFlags & 1, 0);
    span.end();
    assert.equal(ended.length, 0);
  });

  it("ends the spans still open, in any order of ending before, and lets the oldest go past its bound", () => {
    const { tracer, ended, drained } = setup(
      alwaysOn,
      { ...limits, attributeCountLimit: 8, attributeValueLengthLimit: 100 },
      3,
    );
    RecordingSpan.endOpenSpans("exit", "earlier tests' spans");
    ended.length = 0;
    drained.length = 0;
    const spans = Array.from({ length: 10 }, (_, i) =>
      tracer.startSpan(`s${i}`),
    );
    // Ended by their code: the newest, the oldest and one between.
    for (const i of [9, 0, 4]) spans[i]!.end();
    const ok = spans[5]!;
    ok.setStatus({ code: SpanStatusCode.OK });
    assert.equal(RecordingSpan.openCount, 7);
    // Handed on for export three at a time, so no queue fills.
    assert.equal(RecordingSpan.endOpenSpans("SIGTERM", "cut off"), 7);
    assert.equal(RecordingSpan.openCount, 0);
    assert.deepEqual(drained, [3, 6, 9]);
    // Oldest first: the requests that waited longest.
    assert.deepEqual(
      ended.slice(3).map((s) => s.name),
      ["s1", "s2", "s3", "s5", "s6", "s7", "s8"],
    );
    const byName = new Map(ended.map((s) => [s.name, s]));
    assert.deepEqual(
      [...byName.keys()].sort(),
      spans.map((_, i) => `s${i}`).sort(),
    );
    for (const i of [1, 2, 3, 5, 6, 7, 8]) {
      const s = byName.get(`s${i}`)!;
      assert.equal(s.attributes["threadline.unfinished"], "SIGTERM");
      if (i !== 5) {
        assert.equal(s.statusCode, SpanStatusCode.ERROR);
        assert.equal(s.statusMessage, "cut off");
      }
    }
    // OK is final; the attribute still says it was cut off.
    assert.equal(byName.get("s5")!.statusCode, SpanStatusCode.OK);
    for (const i of [0, 4, 9])
      assert.equal(
        byName.get(`s${i}`)!.attributes["threadline.unfinished"],
        undefined,
      );

    // Spans never ended are held up to the bound, newest kept.
    ended.length = 0;
    const leaked = Array.from({ length: MAX_OPEN_TRACKED + 10 }, (_, i) =>
      tracer.startSpan(`leak${i}`),
    );
    assert.equal(RecordingSpan.openCount, MAX_OPEN_TRACKED);
    assert.equal(RecordingSpan.endOpenSpans("exit", "x"), MAX_OPEN_TRACKED);
    assert.equal(leaked[9]!.isRecording(), true, "let go, not ended");
    assert.equal(leaked[10]!.isRecording(), false);
    // One let go and ended by its code later is counted nowhere.
    leaked[0]!.end();
    assert.equal(RecordingSpan.openCount, 0);
  });

  it("startActiveSpan runs the callback with the span active", () => {
    const { tracer } = setup();
    const result = tracer.startActiveSpan("s", (span) => {
      span.end();
      return 7;
    });
    assert.equal(result, 7);
  });
});

it("never cuts a character in half at the length limit", async () => {
  const { truncate } = await import("../src/internal/truncate.ts");
  const s = `${"a".repeat(3)}🌍`;
  assert.equal(truncate(s, 4), "aaa");
  assert.equal(truncate(s, 5), s);
  assert.equal(truncate("abc", 2), "ab");
  assert.ok(truncate(`${"a".repeat(8191)}🌍`, 8192).isWellFormed());
});
