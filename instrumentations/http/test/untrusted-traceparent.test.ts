// A caller that is not trusted (every caller of an edge service) sends a
// traceparent that picks the trace id and whether it is sampled. Left as it
// is, the request continues the caller's trace; with
// THREADLINE_UNTRUSTED_TRACEPARENT=link it starts a trace of the service's
// own, sampled by the service's sampler, linked to the caller's. Trusted
// callers are continued either way.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  type RunningService,
} from "@threadline/test-support";
import { Gateways } from "./gateways.ts";

const SERVER = 2;
const CALLER_TRACE = "11111111111111111111111111111111";
const CALLER_SPAN = "2222222222222222";

let receiver: OtlpReceiver;
let gateways: Gateways;

interface Answer {
  customer: string | null;
  trace?: { traceId: string; sampled: boolean };
}

/** What `svc` says of the request it took, sent with the caller's `traceparent` flags. */
function ask(svc: RunningService, flags: "00" | "01"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get(
        `${svc.url}/who?trace=1`,
        {
          headers: {
            traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-${flags}`,
            "x-customer-id": "c-7",
          },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve(JSON.parse(body) as Answer));
        },
      )
      .on("error", reject);
  });
}

before(async () => {
  gateways = await Gateways.open();
  receiver = gateways.receiver;
});

after(() => gateways.close());

describe("an edge service taking an untrusted caller's traceparent", () => {
  it("continues the caller's trace, sampled as the caller says, unless told to link", async () => {
    const edge = await gateways.start("edge-continue", {
      THREADLINE_EDGE: "true",
      OTEL_TRACES_SAMPLER: "parentbased_always_off",
    });
    assert.deepEqual((await ask(edge, "01")).trace, {
      traceId: CALLER_TRACE,
      sampled: true,
    });
  });

  it("starts a trace of its own, linked to the caller's, sampled by its own sampler", async () => {
    const edge = await gateways.start("edge-link", {
      THREADLINE_EDGE: "true",
      THREADLINE_UNTRUSTED_TRACEPARENT: "link",
      OTEL_TRACES_SAMPLER: "parentbased_always_off",
    });
    // The caller's sampled flag no longer turns sampling on...
    const unsampled = await ask(edge, "01");
    assert.equal(unsampled.trace?.sampled, false);
    assert.notEqual(unsampled.trace?.traceId, CALLER_TRACE);
    const sampling = await gateways.start("edge-link-sampled", {
      THREADLINE_EDGE: "true",
      THREADLINE_UNTRUSTED_TRACEPARENT: "link",
    });
    // ...nor off, and the trace is the service's, the caller's linked.
    const own = await ask(sampling, "00");
    assert.equal(own.customer, "c-7");
    assert.equal(own.trace?.sampled, true);
    assert.notEqual(own.trace?.traceId, CALLER_TRACE);
    const isServer = (s: ReceivedSpan) =>
      s.resource["service.name"] === "edge-link-sampled" && s.kind === SERVER;
    const server = (
      await receiver.waitForSpans(
        (all) => all.some(isServer),
        "the linking edge's server span",
      )
    ).find(isServer)!;
    assert.equal(server.traceId, own.trace?.traceId);
    assert.equal(server.parentSpanId, "");
    assert.deepEqual(
      server.links.map((l) => [l.traceId, l.spanId]),
      [[CALLER_TRACE, CALLER_SPAN]],
    );
    assert.equal(server.attributes["customer.id"], "c-7");
  });
});

describe("an internal service told to link untrusted callers' traces", () => {
  it("continues a trusted caller's trace and links an untrusted one's", async () => {
    const trusting = await gateways.start("inner-trusting", {
      THREADLINE_UNTRUSTED_TRACEPARENT: "link",
    });
    assert.equal((await ask(trusting, "01")).trace?.traceId, CALLER_TRACE);
    const wary = await gateways.start("inner-wary", {
      THREADLINE_UNTRUSTED_TRACEPARENT: "link",
      // The test calls from loopback, which this service does not trust.
      THREADLINE_TRUSTED_CALLERS: "10.0.0.1",
    });
    assert.notEqual((await ask(wary, "01")).trace?.traceId, CALLER_TRACE);
  });
});
