// Two replicas of one service raise the same alarm: each notification says
// which instance it came from, and one replica's recovery clears its own
// alarm only (PagerDuty's incident for the other stays open). A replica
// that stops, or a job that ends on its own, clears what it still has
// open: no one would clear it after.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

interface WebhookEvent {
  action: string;
  service: string;
  instance: string;
  instanceStopped?: boolean;
  alarm: { id: string; reason: string; severity: string };
}
interface PagerDutyEvent {
  event_action: string;
  dedup_key: string;
  payload?: { custom_details: { instance: string } };
}

it("tells each replica's alarms apart in the webhook, Slack and PagerDuty", async () => {
  const receiver = await startRecordingServer(() => ({
    status: 202,
    body: { status: "success" },
  }));
  const start = (instance: string) =>
    startService({
      entry: "toggle-cache.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "orders",
        OTEL_RESOURCE_ATTRIBUTES: `service.instance.id=${instance}`,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        THREADLINE_WATCH_URL: "none",
        THREADLINE_ALARMS_INTERVAL: "100",
        THREADLINE_ALARM_WEBHOOK_URL: `${receiver.url}/hook`,
        THREADLINE_ALARM_SLACK_WEBHOOK_URL: `${receiver.url}/slack`,
        THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY: "R0UT1NGKEY",
        THREADLINE_ALARM_PAGERDUTY_URL: `${receiver.url}/v2/enqueue`,
      },
    });
  const services: RunningService[] = [];
  try {
    services.push(await start("orders-a"), await start("orders-b"));
    const sent = (path: string) =>
      receiver.requests
        .filter((r) => r.path === path)
        .map((r) => JSON.parse(r.body) as unknown);
    await waitFor(() => sent("/v2/enqueue").length === 2, {
      what: "both replicas' triggers",
    });
    // A recovers; B's cache is still down.
    await (await fetch(`${services[0]!.url}/heal`)).text();
    await waitFor(
      () =>
        (sent("/v2/enqueue") as PagerDutyEvent[]).some(
          (e) => e.event_action === "resolve",
        ),
      { what: "A's resolve" },
    );
    await waitFor(
      () => sent("/hook").length === 3 && sent("/slack").length === 3,
      { what: "A's clear at the webhook and Slack" },
    );
    const webhook = (sent("/hook") as WebhookEvent[]).map(
      (e) => `${e.action} ${e.service} ${e.instance} ${e.alarm.id}`,
    );
    assert.deepEqual(webhook.slice(0, 2).sort(), [
      "raise orders orders-a dependency_unhealthy:cache",
      "raise orders orders-b dependency_unhealthy:cache",
    ]);
    assert.equal(
      webhook[2],
      "clear orders orders-a dependency_unhealthy:cache",
    );
    const pagerduty = sent("/v2/enqueue") as PagerDutyEvent[];
    const triggers = pagerduty.filter((e) => e.event_action === "trigger");
    assert.deepEqual(triggers.map((e) => e.dedup_key).sort(), [
      "orders/orders-a/dependency_unhealthy:cache",
      "orders/orders-b/dependency_unhealthy:cache",
    ]);
    for (const t of triggers)
      assert.ok(t.dedup_key.includes(t.payload!.custom_details.instance));
    assert.deepEqual(
      pagerduty
        .filter((e) => e.event_action === "resolve")
        .map((e) => e.dedup_key),
      ["orders/orders-a/dependency_unhealthy:cache"],
    );
    const slack = (sent("/slack") as Array<{ text: string }>).map(
      (m) => m.text,
    );
    assert.equal(
      slack.filter((t) =>
        /CRITICAL dependency_unhealthy on orders instance orders-a \(cache\)/.test(
          t,
        ),
      ).length,
      1,
    );
    assert.equal(
      slack.filter((t) =>
        /CRITICAL dependency_unhealthy on orders instance orders-b \(cache\)/.test(
          t,
        ),
      ).length,
      1,
    );
    assert.match(
      slack[2]!,
      /CLEARED dependency_unhealthy on orders instance orders-a \(cache\)/,
    );

    // B stops with its cache still down: its alarm ends with it.
    await services[1]!.stop();
    await waitFor(
      () =>
        sent("/hook").length === 4 &&
        sent("/slack").length === 4 &&
        sent("/v2/enqueue").length === 4,
      { what: "B's clear at the webhook, Slack and PagerDuty" },
    );
    const stopped = (sent("/hook") as WebhookEvent[])[3]!;
    assert.equal(
      `${stopped.action} ${stopped.instance} ${stopped.alarm.id} ${stopped.alarm.severity}`,
      "clear orders-b dependency_unhealthy:cache cleared",
    );
    assert.equal(stopped.alarm.reason, "the instance stopped (SIGTERM)");
    assert.equal(stopped.instanceStopped, true);
    assert.deepEqual((sent("/v2/enqueue") as PagerDutyEvent[]).at(-1), {
      routing_key: "R0UT1NGKEY",
      event_action: "resolve",
      dedup_key: "orders/orders-b/dependency_unhealthy:cache",
    });
    assert.match(
      (sent("/slack") as Array<{ text: string }>).at(-1)!.text,
      /CLEARED dependency_unhealthy on orders instance orders-b \(cache\): the instance stopped \(SIGTERM\)$/,
    );
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await receiver.close();
  }
});

it("clears the alarms still active at shutdown(), and exports the clear's log line", async () => {
  const webhook = await startRecordingServer();
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "shutdown-on-sigterm.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "orders",
      OTEL_RESOURCE_ATTRIBUTES: "service.instance.id=orders-c",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_INTERVAL: "100",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/hook`,
      CACHE_DOWN: "1",
    },
  });
  try {
    const events = () =>
      webhook.requests.map((r) => JSON.parse(r.body) as WebhookEvent);
    await waitFor(() => events().some((e) => e.action === "raise"), {
      what: "the raise",
    });
    // The service's own SIGTERM handler calls shutdown() and exits.
    svc.child.kill("SIGTERM");
    const exit = await exitWithin(svc, "the service after SIGTERM");
    assert.equal(exit.code, 0, svc.stderr.join("\n"));
    // Delivered before the process ended, not after.
    assert.deepEqual(
      events().map((e) => `${e.action} ${e.instance} ${e.alarm.reason}`),
      [
        "raise orders-c cache is unhealthy: connection refused",
        "clear orders-c the instance stopped (shutdown)",
      ],
    );
    const cleared = receiver.logs.find(
      (l) => l.attributes["event.name"] === "alarm.cleared",
    );
    assert.equal(
      cleared?.attributes["alarm.reason"],
      "the instance stopped (shutdown)",
    );
    assert.match(
      svc.stderr.join("\n"),
      /alarm cleared: dependency_unhealthy \(cache\): the instance stopped \(shutdown\)/,
    );
  } finally {
    await svc.stop("SIGKILL");
    await webhook.close();
    await receiver.close();
  }
});

it("clears the alarms still active when the process ends on its own, as a batch job does", async () => {
  const webhook = await startRecordingServer();
  const receiver = await startOtlpReceiver();
  const job = await startService({
    entry: "unhealthy-job.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    ready: false,
    env: {
      OTEL_SERVICE_NAME: "nightly",
      OTEL_RESOURCE_ATTRIBUTES: "service.instance.id=nightly-1",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_INTERVAL: "100",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/hook`,
      WORK_MS: "1000",
    },
  });
  try {
    const exit = await exitWithin(job, "the job");
    assert.equal(exit.code, 0, job.stderr.join("\n"));
    assert.ok(job.stdout.includes("work done"));
    // Delivered before the process ended, not after.
    const events = webhook.requests.map(
      (r) => JSON.parse(r.body) as WebhookEvent,
    );
    assert.deepEqual(
      events.map(
        (e) =>
          `${e.action} ${e.instance} ${e.alarm.reason}${e.instanceStopped === true ? " (stopped)" : ""}`,
      ),
      [
        "raise nightly-1 cache is unhealthy: connection refused",
        "clear nightly-1 the instance stopped (exit) (stopped)",
      ],
    );
    const cleared = receiver.logs.find(
      (l) => l.attributes["event.name"] === "alarm.cleared",
    );
    assert.equal(
      cleared?.attributes["alarm.reason"],
      "the instance stopped (exit)",
    );
  } finally {
    await job.stop("SIGKILL");
    await webhook.close();
    await receiver.close();
  }
});
