// Alarms of an instrumented service, end to end: holding the event loop
// raises the event-loop alarm and letting it go clears it; stopping
// PostgreSQL raises the dependency alarm and starting it clears it. Each
// raise and clear reaches a generic webhook, Slack and PagerDuty (local
// receivers that check the requests against those APIs' documented
// formats) and is a structured log record over OTLP.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startPostgres,
  startRecordingServer,
  startService,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
  type RecordedRequest,
  type RecordingServer,
  type RunningPostgres,
  type RunningService,
  freePort,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const ROUTING_KEY = "R0UT1NGKEY0123456789abcdefghijkl"; // 32 characters, as PagerDuty's

interface WebhookEvent {
  action: "raise" | "clear";
  service: string;
  alarm: {
    id: string;
    name: string;
    severity: string;
    source: string;
    reason: string;
    raisedAt: string;
    clearedAt?: string;
  };
}

/** Slack incoming webhooks: JSON with a non-empty `text`; blocks well formed. */
function checkSlack(r: RecordedRequest): { text: string } {
  assert.equal(r.method, "POST");
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(r.body) as {
    text: unknown;
    blocks?: Array<{ type: string }>;
  };
  assert.equal(typeof body.text, "string");
  assert.ok((body.text as string).length > 0);
  for (const b of body.blocks ?? [])
    assert.ok(["section", "context"].includes(b.type));
  return body as { text: string };
}

/** PagerDuty Events API v2 (POST /v2/enqueue). */
function checkPagerDuty(r: RecordedRequest): Record<string, unknown> {
  assert.equal(r.method, "POST");
  assert.equal(r.path, "/v2/enqueue");
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(body["routing_key"], ROUTING_KEY);
  assert.ok(["trigger", "resolve"].includes(body["event_action"] as string));
  assert.equal(typeof body["dedup_key"], "string");
  assert.ok((body["dedup_key"] as string).length <= 255);
  if (body["event_action"] === "trigger") {
    const p = body["payload"] as Record<string, unknown>;
    assert.equal(typeof p["summary"], "string");
    assert.ok((p["summary"] as string).length <= 1024);
    assert.equal(typeof p["source"], "string");
    assert.ok(
      ["critical", "error", "warning", "info"].includes(
        p["severity"] as string,
      ),
    );
    assert.ok(!Number.isNaN(Date.parse(p["timestamp"] as string)));
  } else {
    assert.equal(body["payload"], undefined);
  }
  return body;
}

let postgres: RunningPostgres;
let receiver: OtlpReceiver;
let webhook: RecordingServer;
let slack: RecordingServer;
let pagerduty: RecordingServer;
let svc: RunningService;
let healthUrl: string;
const dir = mkdtempSync(join(tmpdir(), "threadline-alarms-"));

before(async () => {
  postgres = await startPostgres();
  receiver = await startOtlpReceiver();
  webhook = await startRecordingServer();
  slack = await startRecordingServer(() => ({ body: "ok" }));
  pagerduty = await startRecordingServer(() => ({
    status: 202,
    body: { status: "success", message: "Event processed" },
  }));
  const rules = join(dir, "alarms.json");
  // The service's own file: a tighter event-loop rule, the other defaults kept.
  writeFileSync(
    rules,
    JSON.stringify({
      rules: [
        {
          name: "event_loop_delay",
          kind: "event_loop_delay",
          percentile: 99,
          aboveSeconds: 0.3,
          for: "0s",
          severity: "major",
          description: "event loop held",
        },
        {
          // A histogram's mean since the last evaluation.
          name: "slow_requests",
          kind: "metric",
          metric: "http.server.request.duration",
          above: 0.5,
          severity: "minor",
        },
      ],
    }),
  );
  const port = await freePort();
  healthUrl = `http://127.0.0.1:${port}`;
  svc = await startService({
    entry: "health-service.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "alarm-demo",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      OTEL_METRIC_EXPORT_INTERVAL: "250",
      DATABASE_URL: postgres.url,
      AMQP_URL: await testBroker(),
      THREADLINE_HEALTH_PORT: String(port),
      THREADLINE_ALARMS_FILE: rules,
      THREADLINE_ALARMS_INTERVAL: "250",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
      THREADLINE_ALARM_SLACK_WEBHOOK_URL: `${slack.url}/services/T000/B000/XXXX`,
      THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      THREADLINE_ALARM_PAGERDUTY_URL: `${pagerduty.url}/v2/enqueue`,
    },
  });
});

after(async () => {
  await svc?.stop();
  await Promise.all([
    receiver?.close(),
    webhook?.close(),
    slack?.close(),
    pagerduty?.close(),
  ]);
  await postgres?.stop();
  await stopTestServers();
  rmSync(dir, { recursive: true, force: true });
});

const events = () =>
  webhook.requests.map((r) => JSON.parse(r.body) as WebhookEvent);

async function event(
  action: "raise" | "clear",
  name: string,
): Promise<WebhookEvent> {
  return waitFor(
    () => events().find((e) => e.action === action && e.alarm.name === name),
    { what: `the webhook's ${action} of ${name}` },
  );
}

it("raises the event-loop alarm while the loop is held, and clears it after", async () => {
  await (await fetch(`${svc.url}/block?ms=900`)).text();
  const raised = await event("raise", "event_loop_delay");
  assert.equal(raised.service, "alarm-demo");
  assert.equal(raised.alarm.severity, "major");
  assert.match(
    raised.alarm.reason,
    /event-loop delay p99 \d+ ms \(limit 300 ms\)/,
  );

  assert.equal(
    (await fetch(`${healthUrl}/alarms/no-such-alarm/ack`, { method: "POST" }))
      .status,
    404,
  );

  const slow = await event("raise", "slow_requests");
  assert.equal(slow.alarm.severity, "minor");
  const mean =
    /http\.server\.request\.duration is ([\d.]+) \(limit 0\.5\)/.exec(
      slow.alarm.reason,
    );
  assert.ok(mean !== null && Number(mean[1]) >= 0.9, slow.alarm.reason);
  // No requests say nothing of their speed; a fast one clears the alarm.
  await (await fetch(`${svc.url}/`)).text();
  await event("clear", "slow_requests");
  const cleared = await event("clear", "event_loop_delay");
  assert.equal(cleared.alarm.severity, "cleared");
  assert.ok(
    Date.parse(cleared.alarm.clearedAt!) >= Date.parse(raised.alarm.raisedAt),
  );
  assert.equal(
    events().filter((e) => e.alarm.name === "event_loop_delay").length,
    2,
    "one raise, one clear: de-duplicated",
  );

  const slackTexts = await waitFor(
    () => {
      const t = slack.requests.map((r) => checkSlack(r).text);
      return t.some((x) => x.includes("CLEARED event_loop_delay")) && t;
    },
    { what: "Slack's two messages" },
  );
  assert.ok(
    slackTexts.some((t) => /MAJOR event_loop_delay on alarm-demo/.test(t)),
  );

  // slow_requests pages too, in whichever order the two land.
  const pd = await waitFor(
    () => {
      const b = pagerduty.requests
        .map(checkPagerDuty)
        .filter((x) => String(x["dedup_key"]).includes("event_loop_delay"));
      return b.some((x) => x["event_action"] === "resolve") && b;
    },
    { what: "PagerDuty's trigger and resolve of the event-loop alarm" },
  );
  const trigger = pd.find((b) => b["event_action"] === "trigger")!;
  const resolve = pd.find((b) => b["event_action"] === "resolve")!;
  assert.equal(trigger["dedup_key"], resolve["dedup_key"]);
  assert.equal(
    (trigger["payload"] as Record<string, unknown>)["severity"],
    "error",
  );

  // Each raise and clear is a structured log record.
  const logs = await receiver.waitForLogs(
    (l) =>
      l.filter((r) => String(r.attributes["alarm.name"]) === "event_loop_delay")
        .length >= 2,
    "the alarm's log records",
  );
  const names = logs
    .filter((r) => r.attributes["alarm.name"] === "event_loop_delay")
    .map((r) => r.attributes["event.name"]);
  assert.deepEqual(names, ["alarm.raised", "alarm.cleared"]);
});

it("raises the dependency alarm while PostgreSQL is down, and clears it when it is back", async () => {
  postgres.pause();
  const raised = await event("raise", "dependency_unhealthy");
  assert.equal(raised.alarm.severity, "critical");
  assert.equal(
    raised.alarm.source,
    `postgresql 127.0.0.1:${postgres.port}/postgres`,
  );
  const ready = await fetch(`${healthUrl}/readyz`);
  assert.equal(ready.status, 503);
  await ready.text();
  // Fleets see it as a metric too (threadline_health_status == 2).
  await waitFor(
    () =>
      receiver.metrics.some(
        (m) =>
          m.name === "threadline.health.status" &&
          m.points.some(
            (p) =>
              p.attributes["threadline.component"] === raised.alarm.source &&
              p.value === 2,
          ),
      ),
    { what: "threadline.health.status 2 for PostgreSQL" },
  );
  // Active while it lasts, and acknowledgeable.
  const id = `dependency_unhealthy:${raised.alarm.source}`;
  const ack = await fetch(`${healthUrl}/alarms/${encodeURIComponent(id)}/ack`, {
    method: "POST",
  });
  assert.equal(ack.status, 200);
  const listed = (await (await fetch(`${healthUrl}/alarms`)).json()) as {
    active: Array<{
      id: string;
      severity: string;
      acknowledged: boolean;
      reason: string;
      latestReason: string;
      raisedAt: string;
      latestAt: string;
    }>;
  };
  const active = listed.active.find((a) => a.id === id);
  assert.equal(active?.severity, "critical");
  assert.equal(active?.acknowledged, true);
  // How it stands at the latest evaluation, beside why it was raised.
  assert.equal(active?.reason, raised.alarm.reason);
  assert.match(
    active?.latestReason ?? "",
    new RegExp(`^${raised.alarm.source.replace(/[.]/g, "\\.")} is unhealthy`),
  );
  assert.ok(Date.parse(active!.latestAt) >= Date.parse(active!.raisedAt));
  postgres.resume();
  const cleared = await event("clear", "dependency_unhealthy");
  assert.equal(cleared.alarm.source, raised.alarm.source);
  const pd = await waitFor(
    () => {
      const b = pagerduty.requests
        .map(checkPagerDuty)
        .filter((x) => String(x["dedup_key"]).includes("dependency_unhealthy"));
      return b.length >= 2 && b;
    },
    { what: "PagerDuty's trigger and resolve of the dependency alarm" },
  );
  assert.deepEqual(
    pd.map((b) => b["event_action"]),
    ["trigger", "resolve"],
  );
  assert.equal(
    (pd[0]!["payload"] as Record<string, unknown>)["severity"],
    "critical",
  );
});
