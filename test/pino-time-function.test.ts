// A logger's time function is the application's: pino calls it once when the
// logger is made and once per line, and a function with state (a sequence
// number, a clock of its own) must see exactly those calls under Threadline,
// which tells from pino's standard functions, or from the first line a
// logger writes, whether the line's time is pino's.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { startOtlpReceiver, startService } from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

it("writes a stateful time function's lines as plain pino does, and takes the record time from pino's time field", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const run = async (execArgv: string[]) => {
      const svc = await startService({
        entry: "pino-time-function.mjs",
        cwd: fixtures,
        execArgv,
        ready: false,
        env: {
          OTEL_SERVICE_NAME: "pino-time-function",
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_BLRP_SCHEDULE_DELAY: "50",
          OTEL_METRICS_EXPORTER: "none",
        },
      });
      assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
      return svc.stdout;
    };
    const plain = await run([]);
    assert.equal(plain.length, 4, plain.join("\n"));
    assert.deepEqual(
      await run(["--import", "@threadline/node/register"]),
      plain,
    );
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 6,
      "the log records",
    );
    const record = (body: string) => {
      const found = logs.find((l) => l.body === body);
      assert.ok(found, `no record "${body}"`);
      return found;
    };
    assert.deepEqual(record("first").attributes, { seq: 2 });
    assert.equal(record("first").timeUnixNano, 0n);
    assert.deepEqual(record("second").attributes, { seq: 3, part: 2 });
    assert.equal(
      record("own clock, child").timeUnixNano,
      1_700_000_000_002n * 1_000_000n,
    );
    assert.deepEqual(record("own clock, child").attributes, { part: 1 });
    assert.equal(
      record("own clock").timeUnixNano,
      1_700_000_000_003n * 1_000_000n,
    );
    assert.deepEqual(record("own clock").attributes, {});
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const body of ["iso time", "unix time"]) {
      const { timeUnixNano, attributes } = record(body);
      assert.ok(
        now - timeUnixNano < 60_000_000_000n &&
          timeUnixNano - now < 1_000_000_000n,
        `${body}: ${timeUnixNano}`,
      );
      assert.deepEqual(attributes, {});
    }
  } finally {
    await receiver.close();
  }
});
