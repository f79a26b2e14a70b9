// A notification under way never holds a process that is done: a batch job
// whose alarm goes to a receiver that never answers ends when its work does.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  startService,
  waitFor,
  writeRulesFile,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

it("ends a job on time while its alarm's notification waits for an answer", async () => {
  const held: IncomingMessage[] = [];
  // Takes each notification and never answers it.
  const receiver = createServer((req) => held.push(req));
  await new Promise<void>((resolve) =>
    receiver.listen(0, "127.0.0.1", resolve),
  );
  const port = (receiver.address() as AddressInfo).port;
  const rules = writeRulesFile({
    defaults: false,
    rules: [
      {
        name: "event_loop_delay",
        kind: "event_loop_delay",
        percentile: 99,
        aboveSeconds: 0.1,
        for: "0s",
        severity: "major",
      },
    ],
  });
  const rulesFile = rules.path;
  const job = await startService({
    entry: "alarming-job.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    ready: false,
    env: {
      OTEL_SERVICE_NAME: "nightly",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      THREADLINE_ALARMS_FILE: rulesFile,
      THREADLINE_ALARMS_INTERVAL: "200",
      THREADLINE_ALARM_WEBHOOK_URL: `http://127.0.0.1:${port}/alarms`,
    },
  });
  try {
    const t0 = performance.now();
    await waitFor(() => held.length > 0, {
      what: "the alarm's notification at the receiver",
    });
    const done = await waitFor(
      () => job.stdout.find((l) => l.startsWith("done after")),
      { what: "the job's work to end" },
    );
    const exit = await exitWithin(job, "the job", 15_000);
    const ranFor = performance.now() - t0;
    assert.equal(exit.code, 0);
    const workMs = Number(/(\d+)/.exec(done)![1]);
    // The work's own time, the start and a little: not the wait for an
    // answer (5 s and more).
    assert.ok(
      ranFor < workMs + 1500,
      `ran for ${Math.round(ranFor)} ms, its work ${workMs} ms`,
    );
  } finally {
    await job.stop().catch(() => {});
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    rules.remove();
  }
});
