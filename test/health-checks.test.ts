// The health endpoint and the alarms against checks that misbehave: the
// endpoint answers whatever a check returns, and the service lives on.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, startService } from "@threadline/test-support";

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
  return { svc, healthUrl: `http://127.0.0.1:${port}` };
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
