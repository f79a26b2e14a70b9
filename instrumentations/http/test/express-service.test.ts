// Express routes as a service started the way users start one meets them:
// Threadline first, then Express, whose own final handler answers what the
// application's routes pass on. Only the route that answered or failed
// names the request; one no route answered has none, in its span and in
// its request-duration series.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
  type ReceivedPoint,
  type ReceivedSpan,
  type RunningService,
} from "@threadline/test-support";

const SERVER = 2;

let receiver: OtlpReceiver;
let service: RunningService;

before(async () => {
  receiver = await startOtlpReceiver();
  service = await startService({
    entry: "express-service.mjs",
    cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
    env: {
      OTEL_SERVICE_NAME: "express-service",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      NODE_ENV: "test",
    },
  });
});

after(async () => {
  await service.stop();
  await receiver.close();
});

describe("an Express service's top-level routes that pass requests on", () => {
  // Path, the status Express answers, the route it is named after.
  const expected: [string, number, string | undefined][] = [
    ["/things/5", 404, undefined],
    ["/items/6", 200, "/items/:itemId"],
    ["/parts/7", 503, "/parts/:partId"],
    ["/logged/8", 200, "/logged/:id"],
    ["/broken/9", 500, "/broken/:id"],
  ];
  let spans: ReceivedSpan[];
  let points: ReceivedPoint[];

  before(async () => {
    for (const [path, status] of expected) {
      const res = await fetch(`${service.url}${path}`);
      await res.arrayBuffer();
      assert.equal(res.status, status, path);
    }
    // Stopped, it exports what it has left: the spans and its metrics.
    await service.stop();
    spans = await receiver.waitForSpans(
      (all) => all.filter((s) => s.kind === SERVER).length >= expected.length,
      `${expected.length} server spans`,
    );
    const duration = receiver.metrics.findLast(
      (m) => m.name === "http.server.request.duration",
    );
    assert.ok(duration, "http.server.request.duration exported");
    points = duration.points;
  });

  for (const [path, status, route] of expected)
    it(`names ${path} (${status}) ${route ?? "after no route"}`, () => {
      const span = spans.find(
        (s) => s.kind === SERVER && s.attributes["url.path"] === path,
      );
      assert.ok(span, `the span of ${path}`);
      assert.equal(span.attributes["http.route"], route);
      assert.equal(span.name, route === undefined ? "GET" : `GET ${route}`);
      assert.equal(span.attributes["http.response.status_code"], status);
    });

  it("records each request's duration under the route that named it", () => {
    const series = (status: unknown, route: unknown) => `${status} ${route}`;
    assert.deepEqual(
      points
        .map((p) =>
          series(
            p.attributes["http.response.status_code"],
            p.attributes["http.route"],
          ),
        )
        .sort(),
      expected.map(([, status, route]) => series(status, route)).sort(),
    );
  });
});
