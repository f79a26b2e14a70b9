// Trace headers and baggage an application copies from its caller never
// ride along on its own calls, whichever propagators the service runs with:
// with OTEL_PROPAGATORS=tracecontext (or none) Threadline writes no baggage,
// and a copied one must not go out in its place.
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

let internal: RecordingServer;
before(async () => {
  internal = await startRecordingServer();
});
after(() => internal.close());

for (const propagators of ["tracecontext", "none"]) {
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
        },
      });
    });
    after(() => service.stop());

    it("sends none of the caller's trace headers or baggage on, however they are copied", async () => {
      internal.requests.length = 0;
      for (const how of ["fetch", "http", "late"]) {
        const q = new URLSearchParams({
          how,
          url: `${internal.url}/${how}`,
        });
        const res = await fetch(`${service.url}/forward?${q}`, {
          headers: {
            traceparent: CALLER_TRACEPARENT,
            tracestate: "vendor=caller",
            baggage: "customer.id=victim-42",
          },
        });
        assert.equal(res.status, 200, await res.text());
      }
      await waitFor(() => internal.requests.length >= 3, {
        what: "the three forwarded calls",
      });
      for (const r of internal.requests) {
        assert.equal(r.headers["baggage"], undefined, r.path);
        // With tracecontext, the request's own (its span continues the
        // caller's trace, tracestate included); with none, nothing.
        assert.notEqual(r.headers["traceparent"], CALLER_TRACEPARENT, r.path);
        if (propagators === "none") {
          assert.equal(r.headers["traceparent"], undefined, r.path);
          assert.equal(r.headers["tracestate"], undefined, r.path);
        }
      }
    });
  });
}
