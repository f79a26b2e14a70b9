// Cluster workers started the way pm2's cluster mode starts them: by a
// primary that runs no Threadline, with the --import in the workers' node
// options and, under pm2, the app's settings in the pm2_env variable.
import assert from "node:assert/strict";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  stopTestServers,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

after(() => stopTestServers());

it("takes its settings from pm2's pm2_env when the environment lacks them, and keeps those it has", async () => {
  const receiver = await startOtlpReceiver();
  const settings = {
    OTEL_SERVICE_NAME: "pm2-orders",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    // pm2 passes a number in the ecosystem file's env as a number.
    OTEL_BSP_SCHEDULE_DELAY: 50,
    OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=file",
  };
  // The shape pm2 gives it: the app's variables at the top level, beside
  // pm2's own fields and again under env.
  const pm2Env = {
    name: "orders",
    exec_mode: "cluster_mode",
    instances: 2,
    node_args: ["--import", "@threadline/node/register"],
    pm_id: 0,
    ...settings,
    env: settings,
  };
  const svc = await startService({
    entry: "pm2-like-cluster.cjs",
    cwd: fixtures,
    env: {
      PM2_LIKE_ENV: JSON.stringify(pm2Env),
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=outer",
    },
  });
  try {
    const res = await fetch(`${svc.url}/orders`);
    assert.equal(res.status, 200);
    const spans = await receiver.waitForSpans(
      (s) => s.some((span) => span.kind === 2),
      "the worker's server span, exported where pm2_env says",
    );
    const server = spans.find((span) => span.kind === 2)!;
    assert.equal(server.resource["service.name"], "pm2-orders");
    assert.equal(server.resource["deployment.environment.name"], "outer");
  } finally {
    await svc.stop();
    await receiver.close();
  }
});
