import assert from "node:assert/strict";
import { it } from "node:test";
import { AlarmEngine } from "../src/alarms/engine.ts";
import type { AlarmRule } from "../src/alarms/rules.ts";
import { MeterProvider } from "../src/metrics/meter-provider.ts";

it("judges the HTTP error ratio over the rule's time, not one evaluation", async () => {
  const meterProvider = new MeterProvider();
  const requests = meterProvider
    .getMeter("test")
    .createHistogram("http.server.request.duration");
  const rule: AlarmRule = {
    name: "http_5xx_ratio",
    kind: "http_error_ratio",
    above: 0.05,
    minRequests: 20,
    forMs: 0,
    severity: "major",
  };
  const engine = new AlarmEngine({
    rules: [rule],
    // Evaluated by hand; the interval is how far back a rule with no time looks.
    intervalMs: 60_000,
    service: "quiet",
    meterProvider,
    notifiers: [],
    log: () => {},
  });
  const evaluation = async (failures: number) => {
    for (let i = 0; i < failures; i++)
      requests.record(0.01, { "error.type": "500" });
    await engine.evaluate();
    return engine.active().map((a) => a.name);
  };
  // A quiet service where every request fails: three per evaluation.
  for (let i = 0; i < 6; i++) assert.deepEqual(await evaluation(3), []);
  assert.deepEqual(await evaluation(3), ["http_5xx_ratio"], "21 of 21 failed");
  // Still failing, still few per evaluation: the alarm stays.
  assert.deepEqual(await evaluation(2), ["http_5xx_ratio"]);
  assert.deepEqual(await evaluation(0), ["http_5xx_ratio"]);
  await engine.stop();
});
