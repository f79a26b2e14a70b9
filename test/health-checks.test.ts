// The health endpoint and the alarms against checks that misbehave: the
// endpoint answers whatever a check returns, and the service lives on.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

interface Report {
  status: string;
  components: Array<{
    name: string;
    status: string;
    reason?: string;
    details?: Record<string, unknown>;
  }>;
}

async function serviceWith(checks: string[], env: Record<string, string> = {}) {
  const port = await freePort();
  const svc = await startService({
    entry: "odd-checks.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "odd-checks",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_HEALTH_PORT: String(port),
      CHECKS: checks.join(","),
      ...env,
    },
  });
  const healthUrl = `http://127.0.0.1:${port}`;
  // The endpoint starts beside the application, not before it.
  await waitFor(
    () =>
      fetch(`${healthUrl}/livez`).then(
        (r) => r.ok,
        () => false,
      ),
    { what: "the health endpoint" },
  );
  return { svc, healthUrl };
}

it("answers /readyz when a check's details cannot be written as JSON, and keeps running", async () => {
  const { svc, healthUrl } = await serviceWith(["bigint", "circular", "plain"]);
  try {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${healthUrl}/readyz`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(res.status, 200);
      const report = (await res.json()) as Report;
      assert.equal(report.status, "degraded", "the circular check's status");
      const byName = new Map(report.components.map((c) => [c.name, c]));
      assert.equal(byName.get("bigint")!.status, "healthy");
      assert.match(
        String(byName.get("bigint")!.details!["unprintable"]),
        /cannot be written as JSON: .*BigInt/,
      );
      assert.equal(byName.get("circular")!.status, "degraded");
      assert.equal(byName.get("circular")!.reason, "slow");
      assert.match(
        String(byName.get("circular")!.details!["unprintable"]),
        /cannot be written as JSON: .*circular/i,
      );
      assert.deepEqual(byName.get("plain")!.details, { lag: 5 });
    }
    assert.equal(svc.child.exitCode, null, "the service is still running");
  } finally {
    await svc.stop();
  }
  assert.doesNotMatch(svc.stderr.join("\n"), /TypeError/);
});

it("counts a check that returns none of the three statuses as unhealthy, says what it returned and raises its alarm", async () => {
  const webhook = await startRecordingServer();
  const metricsPort = await freePort();
  const odd = ["false", "down", "shouting", "nothing"];
  const { svc, healthUrl } = await serviceWith(odd, {
    OTEL_METRICS_EXPORTER: "prometheus",
    OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    THREADLINE_ALARMS_INTERVAL: "100",
    THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
  });
  try {
    const res = await fetch(`${healthUrl}/readyz`);
    assert.equal(res.status, 503);
    const report = (await res.json()) as Report;
    assert.equal(report.status, "unhealthy");
    const reasons = Object.fromEntries(
      report.components
        .filter((c) => c.name !== "exporter")
        .map((c) => [c.name, `${c.status}: ${c.reason}`]),
    );
    const expected = (what: string) =>
      `unhealthy: the check returned an invalid result: ${what}, not { status: "healthy", "degraded" or "unhealthy" }`;
    assert.deepEqual(reasons, {
      false: expected("false"),
      down: expected('status "down"'),
      shouting: expected('status "UNHEALTHY"'),
      nothing: expected("undefined"),
    });
    const raised = await waitFor(
      () => {
        const names = webhook.requests
          .map(
            (r) =>
              JSON.parse(r.body) as { action: string; alarm: { id: string } },
          )
          .filter((e) => e.action === "raise")
          .map((e) => e.alarm.id)
          .sort();
        return names.length === odd.length && names;
      },
      { what: "an alarm per odd check" },
    );
    assert.deepEqual(
      raised,
      odd.map((n) => `dependency_unhealthy:${n}`).sort(),
    );
    const metrics = await (
      await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    ).text();
    for (const n of odd)
      assert.match(
        metrics,
        new RegExp(
          `threadline_health_status_ratio\\{[^}]*threadline_component="${n}"[^}]*\\} 2\\b`,
        ),
      );
    await fetch(`${healthUrl}/readyz`);
  } finally {
    await svc.stop();
    await webhook.close();
  }
  const warnings = svc.stderr.filter((l) =>
    /^threadline warn: health check /.test(l),
  );
  assert.equal(warnings.length, odd.length, warnings.join("\n"));
  assert.match(
    warnings.find((l) => l.includes("health check down"))!,
    /threadline warn: health check down: the check returned an invalid result: status "down", .* it counts as unhealthy/,
  );
});

/** A response's headers but those of the connection and the body's length. */
const headersOf = (r: Response) =>
  Object.fromEntries(
    [...r.headers].filter(
      ([k]) =>
        !["date", "connection", "keep-alive", "content-length"].includes(k),
    ),
  );

it("answers HEAD as GET without the body, OPTIONS with what a path takes (and a probe's status), and a method a path does not take with 405 and Allow", async () => {
  const { svc, healthUrl } = await serviceWith(["plain", "down"]);
  try {
    for (const path of ["/livez", "/readyz", "/health", "/alarms"]) {
      const get = await fetch(`${healthUrl}${path}`);
      await get.text();
      const head = await fetch(`${healthUrl}${path}`, { method: "HEAD" });
      assert.equal(head.status, get.status, path);
      assert.deepEqual(headersOf(head), headersOf(get), path);
      assert.equal(await head.text(), "", path);
      // A probe's OPTIONS (HAProxy's httpchk) is told what GET is: any 2xx
      // would keep an instance that is not ready in rotation.
      const options = await fetch(`${healthUrl}${path}`, {
        method: "OPTIONS",
      });
      assert.equal(options.status, path === "/alarms" ? 204 : get.status, path);
      assert.equal(options.headers.get("allow"), "GET, HEAD, OPTIONS", path);
      assert.equal(await options.text(), "", path);
      const post = await fetch(`${healthUrl}${path}`, { method: "POST" });
      assert.equal(post.status, 405, path);
      assert.equal(post.headers.get("allow"), "GET, HEAD, OPTIONS", path);
      await post.text();
    }
    for (const method of ["HEAD", "OPTIONS"])
      assert.equal(
        (await fetch(`${healthUrl}/readyz`, { method })).status,
        503,
        `the down check counts for ${method} too`,
      );
    const ack = `${healthUrl}/alarms/some-alarm/ack`;
    const get = await fetch(ack);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST, OPTIONS");
    await get.text();
    const options = await fetch(ack, { method: "OPTIONS" });
    assert.equal(options.status, 204);
    assert.equal(options.headers.get("allow"), "POST, OPTIONS");
    for (const method of ["DELETE", "OPTIONS"]) {
      const elsewhere = await fetch(`${healthUrl}/nothing`, { method });
      assert.equal(elsewhere.status, 404, method);
      await elsewhere.text();
    }
  } finally {
    await svc.stop();
  }
});

it("says alarms are off on /alarms and its acknowledgement when THREADLINE_ALARMS=false, not that there are none", async () => {
  const { svc, healthUrl } = await serviceWith(["plain"], {
    THREADLINE_ALARMS: "false",
  });
  try {
    const list = await fetch(`${healthUrl}/alarms`);
    assert.equal(list.status, 404);
    const body = (await list.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ["error", "service"]);
    assert.match(
      String(body["error"]),
      /^alarms are off \(THREADLINE_ALARMS=false/,
    );
    const ack = await fetch(`${healthUrl}/alarms/some-alarm/ack`, {
      method: "POST",
    });
    assert.equal(ack.status, 404);
    assert.match(
      ((await ack.json()) as { error: string }).error,
      /^alarms are off \(THREADLINE_ALARMS=false/,
    );
  } finally {
    await svc.stop();
  }
  // With alarms on, as by default, the lists are there, empty or not.
  const on = await serviceWith(["plain"]);
  try {
    const list = await fetch(`${on.healthUrl}/alarms`);
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), {
      service: "odd-checks",
      active: [],
      history: [],
    });
  } finally {
    await on.svc.stop();
  }
});

for (const protocol of ["http/protobuf", "http/json"])
  it(`exports the alarms' log records under the SDK's own scope, the application's pino lines under pino's (${protocol})`, async () => {
    const receiver = await startOtlpReceiver();
    const { svc } = await serviceWith(["down"], {
      OTEL_LOGS_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: protocol,
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      THREADLINE_ALARMS_INTERVAL: "100",
      PINO_LINE: "checks registered",
    });
    try {
      const logs = await receiver.waitForLogs(
        (l) =>
          l.some((r) => r.attributes["event.name"] === "alarm.raised") &&
          l.some((r) => r.body === "checks registered"),
        "the alarm's record and the application's line",
      );
      const line = logs.find((r) => r.body === "checks registered")!;
      assert.equal(line.scope.name, "@threadline/instrumentation-pino");
      const alarms = logs.filter(
        (r) => r.attributes["alarm.name"] !== undefined,
      );
      assert.ok(alarms.length > 0);
      for (const r of alarms)
        assert.deepEqual(r.scope, {
          name: "@threadline/node",
          version: line.scope.version,
        });
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });
