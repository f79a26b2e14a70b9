// A watch ends for work that outlives it. A worker retries a watched
// customer's job from a queue every half second, republishing it from the
// context it came with, and so with the watch decision it carried; once the
// watch has expired, its tries are logged and traced as anyone else's.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const DEBUG = 5; // OTLP severity number of pino's debug
const INFO = 9;
const WATCH_MS = 3000;

describe("a watch carried by a retried job", () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-watch-"));
  const list = join(dir, "watch.json");
  let receiver: OtlpReceiver;
  const services: RunningService[] = [];

  before(async () => {
    const amqpUrl = await testBroker();
    writeFileSync(list, JSON.stringify({ watch: [] }));
    receiver = await startOtlpReceiver();
    const queue = `jobs-${randomBytes(4).toString("hex")}`;
    for (const role of ["worker", "shop"])
      services.push(
        await startService({
          entry: "watch-retry.mjs",
          cwd: fixtures,
          execArgv: ["--import", "@threadline/node/register"],
          env: {
            OTEL_SERVICE_NAME: role,
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            OTEL_BSP_SCHEDULE_DELAY: "50",
            OTEL_BLRP_SCHEDULE_DELAY: "50",
            THREADLINE_WATCH_URL: list,
            THREADLINE_WATCH_INTERVAL: "100",
            AMQP_URL: amqpUrl,
            QUEUE: queue,
            ROLE: role,
            RETRY_MS: "500",
            TRIES: "16",
            ...(role === "shop" ? { THREADLINE_EDGE: "true" } : {}),
          },
        }),
      );
  });

  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.close();
    await stopTestServers();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stops debug logs and watch marks at the watch's end, though the job goes on", async () => {
    const until = Date.now() + WATCH_MS;
    writeFileSync(
      list,
      JSON.stringify({
        watch: [{ customer: "c-42", until: new Date(until).toISOString() }],
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    const res = await fetch(`${services[1]!.url}/order`, {
      headers: { "x-customer-id": "c-42" },
    });
    assert.equal(await res.text(), "ok");

    const ms = (t: bigint) => Number(t / 1_000_000n);
    const worker = (x: { resource: Record<string, unknown> }) =>
      x.resource["service.name"] === "worker";
    // Tries go on for a good while after the end.
    await waitFor(
      () =>
        receiver.logs.filter(
          (l) =>
            worker(l) &&
            l.severityNumber === INFO &&
            ms(l.timeUnixNano) > until + 2000,
        ).length >= 3,
      { what: "the worker's tries after the watch ended" },
    );
    await new Promise((r) => setTimeout(r, 300));
    const lines = receiver.logs.filter(worker);
    assert.ok(
      lines.some(
        (l) => l.severityNumber === DEBUG && ms(l.timeUnixNano) < until,
      ),
      "the job was watched while the watch lasted",
    );
    // A second's grace: the decision's end is kept in whole seconds.
    const late = (t: bigint) => ms(t) >= until + 1000;
    assert.deepEqual(
      lines
        .filter((l) => l.severityNumber === DEBUG && late(l.timeUnixNano))
        .map((l) => l.attributes["attempt"]),
      [],
    );
    const spans = receiver.spans.filter(worker);
    assert.ok(spans.some((s) => s.attributes["threadline.watch"] === "debug"));
    assert.deepEqual(
      spans
        .filter(
          (s) =>
            late(s.startTimeUnixNano) &&
            s.attributes["threadline.watch"] !== undefined,
        )
        .map((s) => s.name),
      [],
    );
  });
});
