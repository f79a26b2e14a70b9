// Cluster workers started the way pm2's cluster mode starts them: by a
// primary that runs no Threadline, with the --import in the workers' node
// options and, under pm2, the app's settings in the pm2_env variable.
import assert from "node:assert/strict";
import { get } from "node:http";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startOtlpReceiver,
  startService,
  stopTestServers,
  waitFor,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

after(() => stopTestServers());

/** A GET on a connection of its own, as each scrape or probe makes. */
function getAlone(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

it("gives the Prometheus and health ports to one worker, the others saying they go without, when the primary takes neither", async () => {
  const receiver = await startOtlpReceiver();
  const prometheusPort = await freePort();
  const healthPort = await freePort();
  const svc = await startService({
    entry: "pm2-like-cluster.cjs",
    cwd: fixtures,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "otlp,prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(prometheusPort),
      THREADLINE_HEALTH_PORT: String(healthPort),
    },
  });
  try {
    const said = (what: string) =>
      svc.stderr.filter((l) => l.includes(`${what} could not listen`));
    await waitFor(
      () =>
        said("the Prometheus endpoint").length > 0 &&
        said("the health endpoint").length > 0,
      { what: "the second worker to say it goes without the ports" },
    );
    for (const [what, variable] of [
      ["the Prometheus endpoint", "OTEL_EXPORTER_PROMETHEUS_PORT"],
      ["the health endpoint", "THREADLINE_HEALTH_PORT"],
    ] as const) {
      const lines = said(what);
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0]!, /EADDRINUSE/);
      assert.match(lines[0]!, /worker/);
      assert.ok(lines[0]!.includes(variable), lines[0]);
    }
    // Each scrape on a connection of its own reaches the same worker.
    const pids = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const text = await getAlone(`http://127.0.0.1:${prometheusPort}/metrics`);
      pids.add(/process_pid="(\d+)"/.exec(text)?.[1] ?? "none");
    }
    assert.equal(pids.size, 1, `scrapes answered by ${[...pids].join(", ")}`);
    assert.notEqual([...pids][0], "none");
    for (let i = 0; i < 4; i++)
      assert.match(
        await getAlone(`http://127.0.0.1:${healthPort}/livez`),
        /"alive"/,
      );
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

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
