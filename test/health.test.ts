// The health endpoint of an instrumented service against a real PostgreSQL
// that is stopped and started again, a real RabbitMQ and a check of the
// application's own.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startPostgres,
  startService,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
  type RunningPostgres,
  type RunningService,
  freePort,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

interface Component {
  name: string;
  status: string;
  reason?: string;
  details?: Record<string, unknown>;
}
interface Report {
  status: string;
  service: string;
  components: Component[];
}

let postgres: RunningPostgres;
let receiver: OtlpReceiver;
let svc: RunningService;
let healthUrl: string;

before(async () => {
  postgres = await startPostgres();
  receiver = await startOtlpReceiver();
  const port = await freePort();
  healthUrl = `http://127.0.0.1:${port}`;
  svc = await startService({
    entry: "health-service.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "health-demo",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      DATABASE_URL: postgres.url,
      AMQP_URL: await testBroker(),
      THREADLINE_HEALTH_PORT: String(port),
      OTEL_BSP_SCHEDULE_DELAY: "50",
    },
  });
});

after(async () => {
  await svc?.stop();
  await receiver?.close();
  await postgres?.stop();
  await stopTestServers();
});

async function ready(): Promise<{ code: number; report: Report }> {
  const res = await fetch(`${healthUrl}/readyz`);
  return { code: res.status, report: (await res.json()) as Report };
}

const component = (r: Report, prefix: string) =>
  r.components.find((c) => c.name.startsWith(prefix));

it("reports each dependency, the exporter and the application's own check", async () => {
  const live = await fetch(`${healthUrl}/livez`);
  assert.equal(live.status, 200);
  assert.deepEqual(await live.json(), {
    status: "alive",
    service: "health-demo",
  });
  const { code, report } = await ready();
  assert.equal(code, 200);
  assert.equal(report.status, "degraded", "the cache is still warming up");
  const names = report.components.map((c) => c.name).sort();
  assert.deepEqual(names, [
    "cache",
    "exporter",
    `postgresql 127.0.0.1:${postgres.port}/postgres`,
    names.find((n) => n.startsWith("rabbitmq 127.0.0.1:"))!,
  ]);
  assert.equal(component(report, "postgresql")!.status, "healthy");
  assert.equal(component(report, "rabbitmq")!.status, "healthy");
  assert.equal(component(report, "exporter")!.status, "healthy");
  assert.deepEqual(component(report, "cache"), {
    name: "cache",
    status: "degraded",
    reason: "still warming up",
    durationMs: component(report, "cache")!["durationMs" as never],
  });
  assert.doesNotMatch(JSON.stringify(report), /postgres:\/\/|password/);
  await (await fetch(`${svc.url}/warm`)).text();
  assert.equal((await ready()).report.status, "healthy");
});

it("turns unready while PostgreSQL is down, and ready again when it is back", async () => {
  postgres.pause();
  const down = await waitFor(
    async () => {
      const r = await ready();
      return r.code === 503 && r;
    },
    { what: "readiness to turn unhealthy" },
  );
  assert.equal(down.report.status, "unhealthy");
  const pgc = component(down.report, "postgresql")!;
  assert.equal(pgc.status, "unhealthy");
  assert.match(pgc.reason ?? "", /ECONNREFUSED|terminat|connect/i);
  assert.equal(component(down.report, "rabbitmq")!.status, "healthy");
  assert.equal(
    (await fetch(`${healthUrl}/livez`)).status,
    200,
    "alive all the same",
  );
  postgres.resume();
  const back = await waitFor(
    async () => {
      const r = await ready();
      return r.code === 200 && r;
    },
    { what: "readiness to recover" },
  );
  assert.equal(component(back.report, "postgresql")!.status, "healthy");
  // Health probes are not traced: only the fixture's own query made a span.
  const own = await receiver.waitForSpans(
    (s) => s.some((x) => x.attributes["db.query.text"] === "SELECT now()"),
    "the fixture's start-up query",
  );
  assert.deepEqual(
    own
      .filter((x) => x.attributes["db.system.name"] === "postgresql")
      .map((x) => x.attributes["db.query.text"]),
    ["SELECT now()"],
  );
});
