import assert from "node:assert/strict";
import { it } from "node:test";
import { health } from "@threadline/core";
import { startRecordingServer, waitFor } from "@threadline/test-support";
import { AlarmEngine } from "../src/alarms/engine.ts";
import { pagerDutyNotifier } from "../src/alarms/notifiers.ts";
import { MeterProvider } from "../src/metrics/meter-provider.ts";

it("sends PagerDuty's trigger again after a 503, and its resolve after it", async () => {
  // PagerDuty is briefly unavailable: its first answer is a 503.
  const pagerduty = await startRecordingServer((r) =>
    pagerduty.requests[0] === r
      ? { status: 503, body: { status: "unavailable" } }
      : { status: 202, body: { status: "success" } },
  );
  const engine = new AlarmEngine({
    rules: [
      {
        name: "dependency_unhealthy",
        kind: "health",
        component: "search-index",
        when: "unhealthy",
        forMs: 0,
        severity: "critical",
      },
    ],
    intervalMs: 60_000,
    service: "search",
    instance: "i-1",
    meterProvider: new MeterProvider(),
    metricsCollected: false,
    notifiers: [pagerDutyNotifier("R0UT1NGKEY", `${pagerduty.url}/v2/enqueue`)],
    log: () => {},
  });
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("search-index", () => ({ status }));
  try {
    await engine.evaluate();
    // The trigger's first send is answered 503; the index is back at once.
    await waitFor(() => pagerduty.requests.length === 1, {
      what: "the first trigger",
    });
    status = "healthy";
    await engine.evaluate();
    const actions = await waitFor(
      () =>
        pagerduty.requests.length >= 3 &&
        pagerduty.requests.map(
          (r) => (JSON.parse(r.body) as { event_action: string }).event_action,
        ),
      { what: "the trigger sent again, then the resolve" },
    );
    // The incident opens and is resolved: none is left open for good.
    assert.deepEqual(actions, ["trigger", "trigger", "resolve"]);
  } finally {
    remove();
    await engine.stop();
    await pagerduty.close();
  }
});
