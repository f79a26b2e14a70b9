// pino correlation and OTLP capture, in one process with the SDK started
// after the loggers were created (the hardest case).
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import pino from "pino";
import { trace } from "@opentelemetry/api";
import { startOtlpReceiver, type OtlpReceiver } from "@threadline/test-support";
import { init, withCustomer, type ThreadlineHandle } from "@threadline/node";

const lines: Array<Record<string, unknown>> = [];
const sink = {
  write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>),
};
// Created before Threadline starts.
const early = pino({ level: "trace" }, sink);
const earlyChild = early.child({ component: "billing" });

let receiver: OtlpReceiver;
let threadline: ThreadlineHandle;

async function start(logFields: "otel" | "ecs"): Promise<void> {
  threadline = init({
    serviceName: "pino-test",
    endpoint: receiver.url,
    logFields,
    ignoreIncomingPaths: ["/v1/*"],
  });
}

before(async () => {
  receiver = await startOtlpReceiver();
  process.env["OTEL_BSP_SCHEDULE_DELAY"] = "20";
  process.env["OTEL_BLRP_SCHEDULE_DELAY"] = "20";
  await start("otel");
});

after(async () => {
  await threadline.shutdown();
  await receiver.close();
});

beforeEach(() => {
  lines.length = 0;
  receiver.clear();
});

const tracer = () => trace.getTracer("pino-test");

describe("pino correlation", () => {
  it("adds trace_id, span_id and customer.id to loggers created before init, children included", () => {
    let ids = { traceId: "", spanId: "" };
    withCustomer("c-42", () =>
      tracer().startActiveSpan("work", (span) => {
        ids = span.spanContext();
        early.info("root logger");
        earlyChild.warn({ amount: 3 }, "child logger");
        span.end();
      }),
    );
    assert.equal(lines.length, 2);
    for (const line of lines) {
      assert.equal(line["trace_id"], ids.traceId);
      assert.equal(line["span_id"], ids.spanId);
      assert.equal(line["customer.id"], "c-42");
    }
    assert.equal(lines[1]!["component"], "billing");
    assert.equal(lines[1]!["amount"], 3);
  });

  it("adds nothing outside a request and leaves the logger's bindings as they were", () => {
    tracer().startActiveSpan("work", (span) => {
      earlyChild.info("inside");
      span.end();
    });
    earlyChild.info("outside");
    assert.equal(lines[1]!["trace_id"], undefined);
    assert.equal(lines[1]!["customer.id"], undefined);
    assert.equal(lines[1]!["component"], "billing");
  });

  it("correlates loggers created after init the same way", () => {
    const late = pino({}, sink).child({ a: 1 });
    tracer().startActiveSpan("work", (span) => {
      late.info("late logger");
      assert.equal(lines.at(-1)!["span_id"], span.spanContext().spanId);
      span.end();
    });
  });
});

describe("log export", () => {
  it("exports each line as a structured record, parsed off the main thread", async () => {
    let traceId = "";
    withCustomer("c-7", () =>
      tracer().startActiveSpan("job", (span) => {
        traceId = span.spanContext().traceId;
        earlyChild.error(
          { err: new TypeError("card declined"), order: { id: 9 } },
          "payment failed",
        );
        earlyChild.debug("details");
        span.end();
      }),
    );
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 2,
      "two records",
    );
    const failed = logs.find((l) => l.body === "payment failed")!;
    assert.equal(failed.severityNumber, 17);
    assert.equal(failed.severityText, "error");
    assert.equal(failed.traceId, traceId);
    assert.equal(failed.attributes["customer.id"], "c-7");
    assert.equal(failed.attributes["component"], "billing");
    assert.deepEqual(failed.attributes["order"], { id: 9 });
    assert.equal(failed.attributes["exception.type"], "TypeError");
    assert.equal(failed.attributes["exception.message"], "card declined");
    assert.equal(
      failed.attributes["trace_id"],
      undefined,
      "correlation fields become record fields, not attributes",
    );
    assert.ok(failed.timeUnixNano > 0n);
    const debug = logs.find((l) => l.body === "details")!;
    assert.equal(debug.severityNumber, 5);
  });

  it("honours a custom messageKey", async () => {
    const custom = pino({ messageKey: "message" }, sink);
    custom.info("with another key");
    const logs = await receiver.waitForLogs((l) => l.length >= 1, "one record");
    assert.equal(logs[0]!.body, "with another key");
  });
});

describe("ECS field names", () => {
  before(async () => {
    await threadline.shutdown();
    await start("ecs");
  });

  it("writes trace.id and span.id", () => {
    tracer().startActiveSpan("work", (span) => {
      early.info("ecs");
      span.end();
    });
    assert.match(String(lines[0]!["trace.id"]), /^[0-9a-f]{32}$/);
    assert.match(String(lines[0]!["span.id"]), /^[0-9a-f]{16}$/);
    assert.equal(lines[0]!["trace_id"], undefined);
  });
});
