// Threadline's own endpoints never hold up a shutdown: a load balancer
// keeping an idle connection to the health endpoint, a scraper's
// keep-alive to /metrics, a request sent by half and a bare connect are
// all cut off, and what the service recorded is sent before it exits.
import assert from "node:assert/strict";
import { Agent, get } from "node:http";
import { connect, type Socket } from "node:net";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  freePort,
  startOtlpReceiver,
  startService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const receiver = await startOtlpReceiver();
after(() => receiver.close());

/** A GET answered in full, its connection kept open by `agent`. */
function answered(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    }).on("error", reject);
  });
}

/** A connection that sends `text` and then nothing more. */
function holding(port: number, text: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(text);
      resolve(socket);
    });
    socket.on("error", reject);
  });
}

it("shuts down promptly while clients hold connections to the health and Prometheus endpoints, and sends what it held", async () => {
  const [healthPort, metricsPort] = [await freePort(), await freePort()];
  const svc = await startService({
    entry: "shutdown-on-sigterm.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "held",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      THREADLINE_HEALTH_PORT: String(healthPort),
      THREADLINE_WATCH_URL: "none",
      // Only the shutdown sends them.
      OTEL_BSP_SCHEDULE_DELAY: "60000",
      OTEL_BLRP_SCHEDULE_DELAY: "60000",
    },
  });
  const agent = new Agent({ keepAlive: true });
  const sockets: Socket[] = [];
  try {
    assert.equal(await (await fetch(`${svc.url}/order`)).text(), "ok");
    for (const [port, path] of [
      [healthPort, "/livez"],
      [metricsPort, "/metrics"],
    ] as const) {
      assert.equal(
        await answered(`http://127.0.0.1:${port}${path}`, agent),
        200,
      );
      sockets.push(
        await holding(port, `GET ${path} HTTP/1.1\r\nhost: x\r\n`),
        await holding(port, ""),
      );
    }
    // The keep-alive connections are the agent's, idle and open.
    assert.equal(Object.values(agent.freeSockets).flat().length, 2);

    svc.child.kill("SIGTERM");
    const exit = await exitWithin(svc, "the service after SIGTERM", 8000);
    assert.equal(exit.code, 0, svc.stderr.join("\n"));
    const took = Number(
      /shut down in (\d+) ms/.exec(svc.stdout.join("\n"))?.[1],
    );
    assert.ok(took < 2000, `shutdown took ${took} ms`);
    assert.ok(
      receiver.spans.some((s) => s.attributes["url.path"] === "/order"),
      "the request's span was sent",
    );
    assert.ok(
      receiver.logs.some((l) => l.body === "served"),
      "the request's log line was sent",
    );
  } finally {
    for (const s of sockets) s.destroy();
    agent.destroy();
    await svc.stop("SIGKILL");
  }
});

it("keeps within THREADLINE_SHUTDOWN_TIMEOUT while a client holds the health endpoint and the Collector does not answer", async () => {
  // Both take all the time they are given: the answer under way on the
  // health endpoint its grace, the export the whole timeout. One after the
  // other they would take the timeout and the grace.
  const hanging = await startOtlpReceiver();
  hanging.setResponder(() => "hang");
  const healthPort = await freePort();
  const svc = await startService({
    entry: "shutdown-on-sigterm.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "held-and-hanging",
      OTEL_EXPORTER_OTLP_ENDPOINT: hanging.url,
      OTEL_METRICS_EXPORTER: "none",
      THREADLINE_HEALTH_PORT: String(healthPort),
      THREADLINE_WATCH_URL: "none",
      THREADLINE_SHUTDOWN_TIMEOUT: "1000",
      OTEL_BSP_SCHEDULE_DELAY: "60000",
      OTEL_BLRP_SCHEDULE_DELAY: "60000",
    },
  });
  let socket: Socket | undefined;
  try {
    assert.equal(await (await fetch(`${svc.url}/order`)).text(), "ok");
    socket = await holding(healthPort, "GET /livez HTTP/1.1\r\nhost: x\r\n");
    svc.child.kill("SIGTERM");
    const exit = await exitWithin(svc, "the service after SIGTERM", 8000);
    assert.equal(exit.code, 0, svc.stderr.join("\n"));
    const took = Number(
      /shut down in (\d+) ms/.exec(svc.stdout.join("\n"))?.[1],
    );
    // The timeout, not the timeout and the grace (1500 ms).
    assert.ok(took >= 950 && took < 1350, `shutdown took ${took} ms`);
    assert.match(
      svc.stderr.join("\n"),
      /not delivered within 1000 ms \(THREADLINE_SHUTDOWN_TIMEOUT\)/,
    );
  } finally {
    socket?.destroy();
    await svc.stop("SIGKILL");
    await hanging.close();
  }
});
