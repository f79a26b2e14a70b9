// Property-based tests of the W3C Trace Context (Level 2) and Baggage
// handling: arbitrary, malformed, oversized and adversarial input never
// throws, is either accepted as valid or ignored, stays within the
// specifications' limits, and never produces a header that could inject
// another header (CR/LF) on the way out.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ROOT_CONTEXT,
  defaultTextMapGetter,
  propagation,
  trace,
  type TextMapGetter,
} from "@opentelemetry/api";
import {
  BAGGAGE_MAX_BYTES,
  BAGGAGE_MAX_MEMBERS,
  isValidBaggageKey,
  parseBaggage,
  serializeBaggage,
} from "../src/baggage.ts";
import {
  BaggagePropagator,
  TraceContextPropagator,
} from "../src/propagators.ts";
import { CompositePropagator } from "../src/composite-propagator.ts";
import {
  getCustomerFromContext,
  setCustomerInContext,
  isValidCustomerId,
} from "../src/customer.ts";
import {
  formatTraceparent,
  parseTraceparent,
  parseTracestate,
  TRACESTATE_MAX_MEMBERS,
  W3CTraceState,
} from "../src/trace-context.ts";

const RUNS = { numRuns: 2000 };
const lowerHex = (n: number) =>
  fc.string({
    unit: fc.constantFrom(..."0123456789abcdef"),
    minLength: n,
    maxLength: n,
  });
const hostile = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.string({ unit: "grapheme" }),
  fc.string({
    unit: fc.constantFrom(..."-0123456789abcdefABCDEF,;=% \t\r\n\u0000ÿ@*/_"),
    maxLength: 200,
  }),
  fc.string({ minLength: 5000, maxLength: 20000 }),
);
const noCrLf = (s: string) => !/[\r\n\u0000]/.test(s);
// W3C Baggage's baggage-octet.
const isBaggageOctet = (c: number) =>
  c === 0x21 ||
  (c >= 0x23 && c <= 0x2b) ||
  (c >= 0x2d && c <= 0x3a) ||
  (c >= 0x3c && c <= 0x5b) ||
  (c >= 0x5d && c <= 0x7e);

describe("traceparent", () => {
  it("never throws, and whatever it accepts is well formed", () => {
    fc.assert(
      fc.property(hostile, (h) => {
        const p = parseTraceparent(h);
        if (p === undefined) return;
        assert.match(p.traceId, /^[0-9a-f]{32}$/);
        assert.match(p.spanId, /^[0-9a-f]{16}$/);
        assert.notEqual(p.traceId, "0".repeat(32));
        assert.notEqual(p.spanId, "0".repeat(16));
        assert.ok(p.traceFlags >= 0 && p.traceFlags <= 3);
      }),
      RUNS,
    );
  });

  it("accepts every valid version-00 header and formats it back, with unknown flags cleared", () => {
    fc.assert(
      fc.property(
        lowerHex(32),
        lowerHex(16),
        fc.integer({ min: 0, max: 255 }),
        (traceId, spanId, flags) => {
          fc.pre(!/^0+$/.test(traceId) && !/^0+$/.test(spanId));
          const header = `00-${traceId}-${spanId}-${flags.toString(16).padStart(2, "0")}`;
          const p = parseTraceparent(header);
          assert.ok(p);
          assert.equal(p.traceFlags, flags & 3);
          assert.equal(
            formatTraceparent(p.traceId, p.spanId, p.traceFlags),
            `00-${traceId}-${spanId}-0${flags & 3}`,
          );
          // Upper-case hex is not valid trace context.
          if (/[a-f]/.test(header.slice(3)))
            assert.equal(parseTraceparent(header.toUpperCase()), undefined);
        },
      ),
      RUNS,
    );
  });
});

describe("tracestate", () => {
  it("never throws; what it keeps is within the limits and valid", () => {
    fc.assert(
      fc.property(hostile, (h) => {
        const members = parseTracestate(h);
        if (members === undefined) return;
        assert.ok(members.length <= TRACESTATE_MAX_MEMBERS);
        assert.equal(
          new Set(members.map((m) => m[0])).size,
          members.length,
          "no duplicate keys",
        );
        const ts = W3CTraceState.fromHeader(h);
        if (ts !== undefined) {
          assert.ok(noCrLf(ts.serialize()));
          assert.deepEqual(parseTracestate(ts.serialize()), members);
        }
      }),
      RUNS,
    );
  });

  it("round-trips generated valid lists", () => {
    const key = fc
      .tuple(
        fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz"),
        fc.string({ unit: fc.constantFrom(..."abcz09_-*/"), maxLength: 20 }),
      )
      .map(([a, b]) => a + b);
    const value = fc
      .string({
        unit: fc.constantFrom(..."abcXYZ09!#$%&'()*+-./:;<>?@[]^_`{|}~ "),
        minLength: 1,
        maxLength: 40,
      })
      .filter((v) => !v.endsWith(" "));
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, value), {
          minLength: 1,
          maxLength: 32,
          selector: (m) => m[0],
        }),
        (members) => {
          const header = members.map(([k, v]) => `${k}=${v}`).join(",");
          assert.deepEqual(parseTracestate(header), members);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("baggage", () => {
  it("never throws and never keeps more than the limits allow", () => {
    fc.assert(
      fc.property(hostile, (h) => {
        const members = parseBaggage(h);
        assert.ok(members.length <= BAGGAGE_MAX_MEMBERS);
        for (const m of members) assert.ok(isValidBaggageKey(m.key));
        const out = serializeBaggage(members);
        assert.ok(out.length <= BAGGAGE_MAX_BYTES);
        assert.ok(noCrLf(out) && !/[ \t"\\]/.test(out.replace(/;[^,]*/g, "")));
        // The next hop reads it and writes it again as it came.
        assert.equal(serializeBaggage(parseBaggage(out)), out);
      }),
      RUNS,
    );
  });

  it("round-trips any value, percent-encoding what needs it", () => {
    const key = fc.string({
      unit: fc.constantFrom(..."abcXYZ019!#$%&'*+-.^_`|~"),
      minLength: 1,
      maxLength: 16,
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(key, fc.string({ unit: "grapheme", maxLength: 30 })),
          { maxLength: 20, selector: (m) => m[0] },
        ),
        (pairs) => {
          const header = serializeBaggage(
            pairs.map(([k, v]) => ({ key: k, value: v })),
          );
          assert.ok(noCrLf(header));
          assert.equal(serializeBaggage(parseBaggage(header)), header);
          // Only `%` and what baggage-octet does not allow are encoded.
          for (const item of header.split(",")) {
            const value = item.slice(item.indexOf("=") + 1);
            for (const [, hex] of value.matchAll(/%([0-9A-F]{2})/g)) {
              const b = parseInt(hex!, 16);
              assert.ok(b >= 0x80 || b === 0x25 || !isBaggageOctet(b), item);
            }
          }
          assert.deepEqual(
            parseBaggage(header).map((m) => [m.key, m.value]),
            pairs.filter(
              ([k, v]) =>
                encodeURIComponent(v).length + k.length < BAGGAGE_MAX_BYTES,
            ),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("reads any percent-encoded bytes, with U+FFFD for what is not UTF-8", () => {
    const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const encoded = Array.from(
          bytes,
          (b) => "%" + b.toString(16).padStart(2, "0"),
        ).join("");
        assert.deepEqual(parseBaggage(`k=${encoded}`), [
          { key: "k", value: utf8.decode(bytes) },
        ]);
      }),
      RUNS,
    );
  });
});

describe("propagation", () => {
  const propagator = new CompositePropagator([
    new TraceContextPropagator(),
    new BaggagePropagator(),
  ]);
  const anyHeader = fc.oneof(
    hostile,
    fc.array(hostile, { maxLength: 3 }),
    fc.constant(undefined),
  );
  const getter: TextMapGetter<Record<string, unknown>> = {
    get: (c, k) => c[k] as string | string[] | undefined,
    keys: (c) => Object.keys(c),
  };

  it("extracts from hostile carriers without throwing or inventing a customer", () => {
    fc.assert(
      fc.property(
        anyHeader,
        anyHeader,
        anyHeader,
        (traceparent, tracestate, baggage) => {
          const ctx = propagator.extract(
            ROOT_CONTEXT,
            { traceparent, tracestate, baggage },
            getter,
          );
          const customer = getCustomerFromContext(ctx);
          if (customer !== undefined) assert.ok(isValidCustomerId(customer));
          const sc = trace.getSpanContext(ctx);
          if (sc !== undefined) assert.match(sc.traceId, /^[0-9a-f]{32}$/);
        },
      ),
      RUNS,
    );
  });

  it("never writes a header that could inject another header", () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ unit: "binary", maxLength: 12 }),
          fc.string({ unit: "binary", maxLength: 40 }),
          { maxKeys: 8 },
        ),
        fc.string({ unit: "binary", maxLength: 40 }),
        (entries, customer) => {
          let ctx = setCustomerInContext(ROOT_CONTEXT, customer);
          const bag: Record<string, { value: string }> = {};
          for (const [k, v] of Object.entries(entries)) bag[k] = { value: v };
          ctx = propagation.setBaggage(ctx, propagation.createBaggage(bag));
          ctx = trace.setSpanContext(ctx, {
            traceId: "0af7651916cd43dd8448eb211c80319c",
            spanId: "b7ad6b7169203331",
            traceFlags: 1,
            traceState: W3CTraceState.fromHeader("a=1"),
          });
          const carrier: Record<string, string> = {};
          propagator.inject(ctx, carrier, { set: (c, k, v) => (c[k] = v) });
          for (const v of Object.values(carrier))
            assert.ok(noCrLf(v) && v.length <= BAGGAGE_MAX_BYTES);
          // What was sent reads back as the same customer (when it was a valid id).
          const back = propagator.extract(
            ROOT_CONTEXT,
            carrier,
            defaultTextMapGetter,
          );
          assert.equal(
            getCustomerFromContext(back),
            isValidCustomerId(customer) ? customer : undefined,
          );
        },
      ),
      { numRuns: 1000 },
    );
  });
});
