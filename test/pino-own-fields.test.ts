// The fields of an application's pino line named like pino's own (pid,
// hostname, time, level) and like the correlation (trace_id) are exported
// as attributes unless the logger (or Threadline) wrote them: what the
// logger writes follows from its options.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { startOtlpReceiver, startService } from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

it("exports an application's fields named like pino's own as attributes when the logger writes none of its own", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const svc = await startService({
      entry: "pino-own-fields.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "pino-own-fields",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 6,
      "the log records",
    );
    const record = (body: string) => {
      const found = logs.find((l) => l.body === body);
      assert.ok(found, `no record "${body}"`);
      return found;
    };
    assert.deepEqual(record("spawned worker").attributes, {
      pid: 4242,
      hostname: "db-7",
    });
    assert.deepEqual(record("nested").attributes, {
      pid: 4243,
      hostname: "db-8",
      spec: { cpus: 2 },
    });
    const query = record("query done");
    assert.deepEqual(query.attributes, { time: 153, trace_id: "legacy-abc" });
    assert.equal(query.timeUnixNano, 0n, "no time from the application's");
    assert.equal(record("granted").attributes["level"], "admin");
    const plain = record("plain");
    assert.deepEqual(plain.attributes, { order: 1 });
    assert.ok(plain.timeUnixNano > 0n);
    const inSpan = record("in a span");
    assert.match(inSpan.traceId, /^[0-9a-f]{32}$/);
    assert.deepEqual(inSpan.attributes, {});
  } finally {
    await receiver.close();
  }
});

for (const fields of ["otel", "ecs"] as const)
  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`exports an application's own trace and span ids in a span as attributes (${fields} names, ${protocol})`, async () => {
      const receiver = await startOtlpReceiver();
      try {
        const svc = await startService({
          entry: "pino-own-fields.mjs",
          cwd: fixtures,
          ready: false,
          env: {
            OTEL_SERVICE_NAME: "pino-own-ids",
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
            OTEL_BLRP_SCHEDULE_DELAY: "50",
            OTEL_METRICS_EXPORTER: "none",
            THREADLINE_LOG_FIELDS: fields,
          },
        });
        assert.equal((await svc.exited).code, 0, svc.stderr.join("\n"));
        const logs = await receiver.waitForLogs(
          (l) => l.length >= 9,
          "the log records",
        );
        const record = (body: string) => {
          const found = logs.find((l) => l.body === body);
          assert.ok(found, `no record "${body}"`);
          assert.match(found.traceId, /^[0-9a-f]{32}$/);
          return found.attributes;
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
