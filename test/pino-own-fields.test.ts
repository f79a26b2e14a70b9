// The fields of an application's pino line named like pino's own (pid,
// hostname, time, level) and like the correlation (trace_id) are exported
// as attributes unless the logger (or Threadline) wrote them: what the
// logger writes follows from its options.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** Runs fixture `entry` to its end, exporting its logs to `receiver`; its stdout. */
async function runFixture(
  receiver: OtlpReceiver,
  entry: string,
  env: Record<string, string>,
  execArgv: string[] = [],
): Promise<string[]> {
  const svc = await startService({
    entry,
    cwd: fixtures,
    execArgv,
    ready: false,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      OTEL_METRICS_EXPORTER: "none",
      ...env,
    },
  });
  assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
  return svc.stdout;
}

/** Waits for `n` log records; then finds one by its body. */
async function recordsOf(receiver: OtlpReceiver, n: number) {
  const logs = await receiver.waitForLogs(
    (l) => l.length >= n,
    "the log records",
  );
  return (body: string) => {
    const found = logs.find((l) => l.body === body);
    assert.ok(found, `no record "${body}"`);
    return found;
  };
}

/**
 * The records both own-fields fixtures write: the application's fields
 * named like pino's, from loggers that write none of those themselves.
 */
function assertApplicationFields(
  record: Awaited<ReturnType<typeof recordsOf>>,
): void {
  assert.deepEqual(record("spawned worker").attributes, {
    pid: 4242,
    hostname: "db-7",
  });
  const query = record("query done");
  assert.deepEqual(query.attributes, { time: 153, trace_id: "legacy-abc" });
  assert.equal(query.timeUnixNano, 0n, "no time from the application's");
  assert.equal(record("granted").attributes["level"], "admin");
  const plain = record("plain");
  assert.deepEqual(plain.attributes, { order: 1 });
  assert.ok(plain.timeUnixNano > 0n);
}

it("exports an application's fields named like pino's own as attributes when the logger writes none of its own", async () => {
  const receiver = await startOtlpReceiver();
  try {
    await runFixture(receiver, "pino-own-fields.mjs", {
      OTEL_SERVICE_NAME: "pino-own-fields",
    });
    const record = await recordsOf(receiver, 6);
    assertApplicationFields(record);
    assert.deepEqual(record("nested").attributes, {
      pid: 4243,
      hostname: "db-8",
      spec: { cpus: 2 },
    });
    const inSpan = record("in a span");
    assert.match(inSpan.traceId, /^[0-9a-f]{32}$/);
    assert.deepEqual(inSpan.attributes, {});
  } finally {
    await receiver.close();
  }
});

it("exports them the same from loggers made by a pino loaded before start", async () => {
  const receiver = await startOtlpReceiver();
  try {
    await runFixture(receiver, "pino-own-fields-late.cjs", {
      OTEL_SERVICE_NAME: "pino-own-fields-late",
    });
    const record = await recordsOf(receiver, 5);
    assertApplicationFields(record);
    assert.deepEqual(record("child spawned").attributes, {
      job: "sync",
      pid: 4243,
      hostname: "db-8",
    });
    assert.match(record("plain").traceId, /^[0-9a-f]{32}$/);
  } finally {
    await receiver.close();
  }
});

for (const fields of ["otel", "ecs"] as const)
  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`exports an application's own trace and span ids in a span as attributes (${fields} names, ${protocol})`, async () => {
      const receiver = await startOtlpReceiver();
      try {
        await runFixture(receiver, "pino-own-fields.mjs", {
          OTEL_SERVICE_NAME: "pino-own-ids",
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          THREADLINE_LOG_FIELDS: fields,
        });
        const found = await recordsOf(receiver, 9);
        const record = (body: string) => {
          const r = found(body);
          assert.match(r.traceId, /^[0-9a-f]{32}$/);
          return r.attributes;
        };
        assert.deepEqual(record("in a span"), {});
        assert.deepEqual(record("ecs names"), {
          "trace.id": "upstream-abc",
          "span.id": "upstream-def",
          trace_flags: "01",
        });
        assert.deepEqual(record("otel names"), {
          trace_id: "upstream-ghi",
          span_id: "upstream-jkl",
          trace_flags: 1,
        });
        assert.deepEqual(record("both, nested"), {
          "trace.id": "upstream-abc",
          trace_id: "upstream-ghi",
          hop: { n: 1 },
        });
      } finally {
        await receiver.close();
      }
    });

// A logger's time function is the application's: pino calls it once when the
// logger is made and once per line, and a function with state (a sequence
// number, a clock of its own) must see exactly those calls under Threadline,
// which tells from pino's standard functions, or from the first line a
// logger writes, whether the line's time is pino's.
it("writes a stateful time function's lines as plain pino does, and takes the record time from pino's time field", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const run = (execArgv: string[]) =>
      runFixture(
        receiver,
        "pino-time-function.mjs",
        { OTEL_SERVICE_NAME: "pino-time-function" },
        execArgv,
      );
    const plain = await run([]);
    assert.equal(plain.length, 4, plain.join("\n"));
    assert.deepEqual(
      await run(["--import", "@threadline/node/register"]),
      plain,
    );
    const record = await recordsOf(receiver, 6);
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

// A time the logger writes as a string is the record's only when it says
// which moment it is, as an RFC 3339 date-time does; any other string is
// read differently by different readers (or not at all), so the record
// has no time (receivers use the observed time) and the attribute keeps
// what was written.
it("takes a string time as the record's time only as an RFC 3339 date-time, keeping any other as written", async () => {
  const receiver = await startOtlpReceiver();
  try {
    await runFixture(
      receiver,
      "pino-string-times.mjs",
      { OTEL_SERVICE_NAME: "pino-string-times" },
      ["--import", "@threadline/node/register"],
    );
    const record = await recordsOf(receiver, 6);
    const now = BigInt(Date.now()) * 1_000_000n;
    const iso = record("iso time");
    assert.ok(
      now - iso.timeUnixNano < 60_000_000_000n &&
        iso.timeUnixNano - now < 1_000_000_000n,
      String(iso.timeUnixNano),
    );
    assert.deepEqual(iso.attributes, {});
    assert.equal(
      record("offset").timeUnixNano,
      BigInt(Date.UTC(2026, 11, 6, 12, 30, 53, 123)) * 1_000_000n,
    );
    assert.deepEqual(record("offset").attributes, {});
    for (const [body, time] of [
      ["en-GB", "06/12/2026, 12:33:50"],
      ["log4j", "2026-12-06 12:30:53,123"],
    ] as const) {
      assert.equal(record(body).timeUnixNano, 0n, body);
      assert.deepEqual(record(body).attributes, { time }, body);
    }
  } finally {
    await receiver.close();
  }
});

/** The epoch nanoseconds of an RFC 3339 date-time in UTC, every digit of its fraction. */
function epochNanos(time: string): bigint {
  const [, whole, fraction = ""] = /^(.*?)(?:\.(\d+))?Z$/.exec(time)!;
  return (
    BigInt(Date.parse(`${whole}Z`)) * 1_000_000n +
    BigInt(fraction.padEnd(9, "0").slice(0, 9))
  );
}

// OTLP times are nanoseconds; a time logged with more digits than the
// milliseconds keeps them, as near as the export's fractional milliseconds
// (a double) hold them: a double's step among today's epoch milliseconds
// is 2^-12 ms, 244 ns, so the nearest is at most 122 ns off.
for (const protocol of ["http/protobuf", "http/json"] as const)
  it(`keeps a string time's digits past the milliseconds (${protocol})`, async () => {
    const receiver = await startOtlpReceiver();
    try {
      const stdout = await runFixture(
        receiver,
        "pino-string-times.mjs",
        {
          OTEL_SERVICE_NAME: "pino-nanoseconds",
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        },
        ["--import", "@threadline/node/register"],
      );
      const record = await recordsOf(receiver, 6);
      const written = (JSON.parse(stdout[0]!) as { time: string }).time;
      assert.match(written, /\.\d{9}Z$/);
      for (const [body, time] of [
        ["nanoseconds", "2026-12-06T12:29:54.328835423Z"],
        ["iso time, nanoseconds", written],
      ] as const) {
        const off = record(body).timeUnixNano - epochNanos(time);
        assert.ok(off <= 122n && off >= -122n, `${body}: ${off} ns off`);
      }
    } finally {
      await receiver.close();
    }
  });
