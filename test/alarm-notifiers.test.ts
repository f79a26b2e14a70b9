// Alarm settings as users get them wrong: a Slack webhook pasted without
// its scheme is refused at start, by its variable's name, and its token
// never reaches the service's output; a rules file with a misspelt key is
// refused, naming it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startRecordingServer,
  startService,
  waitFor,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

it("names a Slack webhook URL without a scheme by its variable, never printing its token", async () => {
  const webhook = await startRecordingServer();
  const dir = mkdtempSync(join(tmpdir(), "threadline-alarm-settings-"));
  const rulesFile = join(dir, "alarms.json");
  writeFileSync(
    rulesFile,
    JSON.stringify({
      rules: [
        {
          name: "cache_down",
          kind: "health",
          component: "cache",
          duration: "5m",
        },
      ],
    }),
  );
  const svc = await startService({
    entry: "unhealthy-cache.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "cache-user",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_INTERVAL: "100",
      THREADLINE_ALARMS_FILE: rulesFile,
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
      THREADLINE_ALARM_SLACK_WEBHOOK_URL:
        "hooks.slack.com/services/T0001/B0002/SECRETxxTOKEN",
    },
  });
  try {
    // The same raise goes to every notifier at once: the webhook's copy
    // means Slack's was tried (or skipped) too.
    await waitFor(
      () => webhook.requests.some((r) => r.body.includes('"raise"')),
      { what: "the dependency alarm at the webhook" },
    );
  } finally {
    await svc.stop();
    await webhook.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const stderr = svc.stderr.join("\n");
  assert.doesNotMatch(stderr, /SECRETxxTOKEN/);
  assert.match(
    stderr,
    /THREADLINE_ALARM_SLACK_WEBHOOK_URL \(the slackWebhookUrl option\) is not an http\(s\) URL; alarms are not sent to Slack/,
  );
  // The defaults raised the alarm above; the file's rule was not used.
  assert.ok(
    stderr.includes(
      `alarm rules in ${rulesFile} were not used (the defaults are): rule 1 (cache_down): "duration" is not a key of health rules`,
    ),
    stderr,
  );
});
