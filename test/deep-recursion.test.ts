// Recursion that runs out of stack inside traced code: the application's
// own catch gets the RangeError, as it would without Threadline, and the
// service goes on serving and exporting.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

let receiver: OtlpReceiver;
let app: RunningService;
before(async () => {
  receiver = await startOtlpReceiver();
  app = await startService({
    entry: "deep-recursion.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "deep-recursion",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_METRICS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
    },
  });
});
after(async () => {
  await app.stop();
  await receiver.close();
});

it("lets the application catch a stack overflow in nested spans and contexts, and goes on serving and exporting", async () => {
  for (let round = 0; round < 3; round++)
    for (const path of ["/spans", "/contexts"]) {
      const res = await fetch(`${app.url}${path}`).then(
        async (r) => `${r.status} ${await r.text()}`,
        () => `cut off: ${app.stderr.slice(0, 3).join("\n")}`,
      );
      assert.equal(res, "200 caught RangeError", `${path}, round ${round}`);
    }
  const res = await fetch(`${app.url}/after`);
  assert.equal(await res.text(), "ok");
  const spans = await receiver.waitForServerSpan("/spans");
  await receiver.waitForServerSpan("/contexts");
  await receiver.waitForServerSpan("/after");
  const levels = receiver.spans.filter(
    (s) => s.name === "level" && s.traceId === spans.traceId,
  );
  assert.ok(levels.length > 100, `${levels.length} level spans`);
  assert.equal(
    levels.filter((s) => s.parentSpanId === spans.spanId).length,
    1,
    "one level under the request, the others each under the one before",
  );
});
