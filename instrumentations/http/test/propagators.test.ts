// The headers a propagator writes are the request's context's: copies the
// application sets of them (forwarding its caller's) are dropped. Headers of
// a propagator the service does not run are the application's to set
// (OTEL_PROPAGATORS=none where a mesh or a gateway carries the context) and
// go out as set, except baggage: it carries the customer id, and a copy of
// it (an untrusted caller's, say) is never sent, whatever the propagators.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startRecordingServer,
  startService,
  waitFor,
  type RecordingServer,
  type RunningService,
} from "@threadline/test-support";

const CALLER_TRACEPARENT =
  "00-11111111111111111111111111111111-2222222222222222-01";
const CALLER_TRACESTATE = "vendor=caller";
const CALLER_BAGGAGE = "customer.id=victim-42";

let internal: RecordingServer;
let partner: RecordingServer;
before(async () => {
  internal = await startRecordingServer();
  partner = await startRecordingServer();
});
after(async () => {
  await internal.close();
  await partner.close();
});

for (const propagators of ["tracecontext", "baggage", "none"]) {
  const traceContext = propagators === "tracecontext";
  describe(`OTEL_PROPAGATORS=${propagators}`, () => {
    let service: RunningService;
    before(async () => {
      service = await startService({
        entry: "forwarding-service.mjs",
        cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
        env: {
          OTEL_PROPAGATORS: propagators,
          OTEL_TRACES_EXPORTER: "none",
          OTEL_METRICS_EXPORTER: "none",
          THREADLINE_EDGE: "true",
          THREADLINE_THIRD_PARTIES: `127.0.0.1:${partner.port}=partner`,
        },
      });
    });
    after(() => service.stop());

    it("drops the copies of its propagators' headers and of baggage, and sends the others as copied", async () => {
      internal.requests.length = 0;
      partner.requests.length = 0;
      for (const to of [internal, partner])
        for (const how of ["fetch", "http", "late"]) {
          const q = new URLSearchParams({ how, url: `${to.url}/${how}` });
          const res = await fetch(`${service.url}/forward?${q}`, {
            headers: {
              traceparent: CALLER_TRACEPARENT,
              tracestate: CALLER_TRACESTATE,
              baggage: CALLER_BAGGAGE,
            },
          });
          assert.equal(res.status, 200, await res.text());
        }
      await waitFor(
        () => internal.requests.length >= 3 && partner.requests.length >= 3,
        { what: "the six forwarded calls" },
      );
      for (const [to, requests] of [
        ["internal", internal.requests],
        ["partner", partner.requests],
      ] as const)
        for (const r of requests) {
          const where = `${to} ${r.path}`;
          if (traceContext) {
            // The request's own: its span continues the caller's trace.
            assert.notEqual(
              r.headers["traceparent"],
              CALLER_TRACEPARENT,
              where,
            );
            assert.match(
              String(r.headers["traceparent"]),
              /^00-11111111111111111111111111111111-/,
              where,
            );
          } else {
            assert.equal(r.headers["traceparent"], CALLER_TRACEPARENT, where);
            assert.equal(r.headers["tracestate"], CALLER_TRACESTATE, where);
          }
          // An untrusted caller's baggage is not read, and its copy is
          // not sent on: the internal host trusts this service's baggage.
          assert.equal(r.headers["baggage"], undefined, where);
        }
    });
  });
}
