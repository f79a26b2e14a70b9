// Settings that would be taken and then do nothing: each is warned about at
// start, by name, so the service is not believed to have what it lacks.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { exitWithin, startService } from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** Threadline's warnings when started with these options and variables. */
async function warningsOf(
  options: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<string[]> {
  const app = await startService({
    entry: "init-options.mjs",
    cwd: fixtures,
    ready: false,
    env: {
      INIT_OPTIONS: JSON.stringify(options),
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      ...env,
    },
  });
  const { code } = await exitWithin(app, "the service");
  assert.equal(code, 0, app.stderr.join("\n"));
  return app.stderr.filter((l) => l.startsWith("threadline warn:"));
}

it("warns of a health endpoint given a host but no port", async () => {
  const off = "the health endpoint is off";
  assert.deepEqual(await warningsOf({ health: { host: "127.0.0.1" } }), [
    `threadline warn: init()'s health option gives no port, nor does THREADLINE_HEALTH_PORT; ${off}`,
  ]);
  assert.deepEqual(
    await warningsOf({}, { THREADLINE_HEALTH_HOST: "0.0.0.0" }),
    [
      `threadline warn: THREADLINE_HEALTH_HOST is set but THREADLINE_HEALTH_PORT is not; ${off}`,
    ],
  );
  // A port from either place is all it needs.
  assert.deepEqual(
    await warningsOf(
      { health: { host: "127.0.0.1" } },
      { THREADLINE_HEALTH_PORT: "0" },
    ),
    [],
  );
});

it("warns of a PagerDuty URL with no routing key to send with", async () => {
  const warning =
    "threadline warn: THREADLINE_ALARM_PAGERDUTY_URL (the pagerDutyUrl option) is set without THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY (the pagerDutyRoutingKey option); alarms are not sent to PagerDuty";
  const url = "http://127.0.0.1:9/v2/enqueue";
  assert.deepEqual(
    await warningsOf({}, { THREADLINE_ALARM_PAGERDUTY_URL: url }),
    [warning],
  );
  assert.deepEqual(await warningsOf({ alarms: { pagerDutyUrl: url } }), [
    warning,
  ]);
  assert.deepEqual(
    await warningsOf(
      {},
      {
        THREADLINE_ALARM_PAGERDUTY_URL: url,
        THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY: "R0UT1NGKEY",
      },
    ),
    [],
  );
});
