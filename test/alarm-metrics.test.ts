// An alarm rule on a runtime metric fires in a service that exports no
// metrics (OTEL_METRICS_EXPORTER=none): rules read the metrics themselves.
// Rules on the request histogram count what its attributes say; the HTTP
// error ratio counts every request, past the histogram's series limit too.
import assert from "node:assert/strict";
import http from "node:http";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startRecordingServer,
  startService,
  waitFor,
  writeRulesFile,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

for (const [exporter, settings] of [
  ["none", {}],
  // Nothing scrapes the endpoint: the rule reads the metrics all the same.
  ["prometheus alone", { OTEL_METRICS_EXPORTER: "prometheus" }],
  // Exported every 60 s: too seldom for a rule of 1 s.
  [
    "otlp every 60 s",
    {
      OTEL_METRICS_EXPORTER: "otlp",
      OTEL_METRIC_EXPORT_INTERVAL: "60000",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
    },
  ],
] as const)
  it(`raises a metric rule's alarm with metrics export ${exporter}`, async () => {
    const rules = writeRulesFile({
      rules: [
        {
          name: "busy_loop",
          kind: "metric",
          metric: "nodejs.eventloop.utilization",
          above: 0.5,
          for: "1s",
          severity: "warning",
        },
      ],
    });
    const rulesFile = rules.path;
    const webhook = await startRecordingServer();
    const svc = await startService({
      entry: "busy-loop.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "busy",
        OTEL_METRICS_EXPORTER: "none",
        ...settings,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        THREADLINE_WATCH_URL: "none",
        THREADLINE_ALARMS_FILE: rulesFile,
        THREADLINE_ALARMS_INTERVAL: "500",
        THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
        BUSY_MS: "8000",
        ...(exporter === "prometheus alone"
          ? { OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()) }
          : {}),
      },
    });
    try {
      const raised = await waitFor(
        () =>
          webhook.requests
            .map(
              (r) =>
                JSON.parse(r.body) as {
                  action: string;
                  alarm: { name: string; reason: string };
                },
            )
            .find((e) => e.action === "raise" && e.alarm.name === "busy_loop"),
        { what: "the busy_loop alarm", timeoutMs: 15_000 },
      );
      assert.match(raised.alarm.reason, /nodejs\.eventloop\.utilization is /);
    } finally {
      await svc.stop();
      await webhook.close();
      rules.remove();
    }
  });

it("raises a rule on a numeric attribute whether the file writes its value as a string or a number", async () => {
  const onStatus = (name: string, status: string | number) => ({
    name,
    kind: "metric",
    metric: "http.server.request.duration",
    attributes: { "http.response.status_code": status },
    above: 0,
    for: "0s",
    severity: "minor",
  });
  const rules = writeRulesFile({
    defaults: false,
    rules: [
      onStatus("failed_written_as_text", "500"),
      onStatus("failed_written_as_number", 500),
      onStatus("not_found", 404),
    ],
  });
  const rulesFile = rules.path;
  const webhook = await startRecordingServer();
  const svc = await startService({
    entry: "status-service.cjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "failing",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_FILE: rulesFile,
      THREADLINE_ALARMS_INTERVAL: "200",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
    },
  });
  const raised = () =>
    webhook.requests
      .map(
        (r) =>
          JSON.parse(r.body) as { action: string; alarm: { name: string } },
      )
      .filter((e) => e.action === "raise")
      .map((e) => e.alarm.name)
      .sort();
  try {
    // Answers of 500 (and none of 404) until both rules on 500 have raised.
    await waitFor(
      async () => {
        await (await fetch(`${svc.url}/500`)).text();
        return raised().length >= 2;
      },
      { what: "the alarms on status 500" },
    );
    assert.deepEqual(raised(), [
      "failed_written_as_number",
      "failed_written_as_text",
    ]);
    assert.deepEqual(
      svc.stderr.filter((l) => l.includes("alarm rules")),
      [],
      "the rules file was taken as written",
    );
  } finally {
    await svc.stop();
    await webhook.close();
    rules.remove();
  }
});

it("counts a stream the client left after its 200 as no failure of http_5xx_ratio, and a 5xx as one", async () => {
  const rules = writeRulesFile({
    defaults: false,
    rules: [
      {
        name: "http_5xx_ratio",
        kind: "http_error_ratio",
        above: 0.05,
        minRequests: 10,
        for: "5s",
        severity: "major",
      },
    ],
  });
  const rulesFile = rules.path;
  const webhook = await startRecordingServer();
  const svc = await startService({
    entry: "status-service.cjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "streaming",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_FILE: rulesFile,
      THREADLINE_ALARMS_INTERVAL: "200",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
    },
  });
  const ok = async (path: string) => (await fetch(`${svc.url}${path}`)).text();
  try {
    // All within the rule's 5 s, which it judges once it has watched the
    // service that long: 20 requests, of which two answered 500.
    await ok("/200");
    // Subscribers that leave after the stream's first event.
    for (let i = 0; i < 8; i++)
      await new Promise<void>((resolve) => {
        const req = http.get(`${svc.url}/stream`, (res) => {
          assert.equal(res.statusCode, 200);
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.on("error", () => {});
      });
    await waitFor(
      () => svc.stdout.filter((l) => l === "stream closed").length === 8,
      { what: "the eight streams closed" },
    );
    for (let i = 0; i < 9; i++) await ok("/200");
    for (let i = 0; i < 2; i++) await ok("/500");
    const raised = await waitFor(
      () =>
        webhook.requests
          .map(
            (r) =>
              JSON.parse(r.body) as {
                action: string;
                alarm: { name: string; reason: string };
              },
          )
          .find((e) => e.action === "raise"),
      { what: "the http_5xx_ratio alarm" },
    );
    assert.equal(raised.alarm.name, "http_5xx_ratio");
    assert.equal(
      raised.alarm.reason,
      "10.0% of 20 requests failed (limit 5.0%)",
    );
  } finally {
    await svc.stop();
    await webhook.close();
    rules.remove();
  }
});

it("raises http_5xx_ratio for 5xx answers of routes past the request histogram's series limit", async () => {
  // The histogram holds 2000 series (CARDINALITY_LIMIT); one route's
  // requests, all answered 200, are one series each, and the routes after
  // those land in its overflow series, which has no status code.
  const limit = 2000;
  const rules = writeRulesFile({
    defaults: false,
    rules: [
      {
        name: "http_5xx_ratio",
        kind: "http_error_ratio",
        above: 0.05,
        minRequests: 20,
        for: "2s",
        severity: "major",
      },
      {
        // Raised once a request lands in the overflow series.
        name: "overflowed",
        kind: "metric",
        metric: "http.server.request.duration",
        attributes: { "otel.metric.overflow": "true" },
        above: 0,
        severity: "warning",
      },
    ],
  });
  const webhook = await startRecordingServer();
  const svc = await startService({
    entry: "many-routes.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "many-routes",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_FILE: rules.path,
      THREADLINE_ALARMS_INTERVAL: "200",
      THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
      ROUTES: String(limit + 100),
      FAIL_FROM: String(limit),
    },
  });
  const raised = () =>
    webhook.requests
      .map(
        (r) =>
          JSON.parse(r.body) as {
            action: string;
            alarm: { name: string; reason: string };
          },
      )
      .filter((e) => e.action === "raise");
  try {
    for (let i = 0; i < limit; i++) {
      const res = await fetch(`${svc.url}/r${i}`);
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(() => raised().some((e) => e.alarm.name === "overflowed"), {
      what: "a request in the overflow series",
    });
    // Then only the later routes, each answering 500.
    let i = 0;
    const failed = await waitFor(
      async () => {
        await (await fetch(`${svc.url}/r${limit + (i++ % 100)}`)).text();
        return raised().find((e) => e.alarm.name === "http_5xx_ratio");
      },
      { what: "the http_5xx_ratio alarm" },
    );
    assert.match(failed.alarm.reason, /% of \d+ requests failed/);
  } finally {
    await svc.stop();
    await webhook.close();
    rules.remove();
  }
});
