// pino correlation and OTLP capture, in one process with the SDK started
// after the loggers were created (the hardest case).
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import pino from "pino";
import { trace } from "@opentelemetry/api";
import { startOtlpReceiver, type OtlpReceiver } from "@threadline/test-support";
import { init, withCustomer, type ThreadlineHandle } from "@threadline/node";
import { watchList } from "@threadline/core";

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
    // The receiver runs in this process: its OTLP and watch-list paths are not traced.
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
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

  it("keeps each logger's bindings and each span's ids when lines interleave", () => {
    const seen: Array<[string, string]> = [];
    withCustomer("c-7", () =>
      tracer().startActiveSpan("outer", (outer) => {
        for (let i = 0; i < 3; i++) {
          early.info("root");
          earlyChild.info("child");
          seen.push(["", outer.spanContext().spanId]);
          seen.push(["billing", outer.spanContext().spanId]);
        }
        tracer().startActiveSpan("inner", (inner) => {
          earlyChild.info("child");
          earlyChild.info("child");
          early.info("root");
          seen.push(["billing", inner.spanContext().spanId]);
          seen.push(["billing", inner.spanContext().spanId]);
          seen.push(["", inner.spanContext().spanId]);
          inner.end();
        });
        earlyChild.info("child");
        seen.push(["billing", outer.spanContext().spanId]);
        outer.end();
      }),
    );
    assert.deepEqual(
      lines.map((l) => [l["component"] ?? "", l["span_id"]]),
      seen,
    );
    assert.ok(lines.every((l) => l["customer.id"] === "c-7"));
    // Nothing of the span is left on the logger once it is over.
    early.info("outside");
    assert.equal(lines.at(-1)!["span_id"], undefined);
  });

  it("correlates loggers created after init the same way", () => {
    const late = pino({}, sink).child({ a: 1 });
    tracer().startActiveSpan("work", (span) => {
      late.info("late logger");
      assert.equal(lines.at(-1)!["span_id"], span.spanContext().spanId);
      span.end();
    });
  });

  it("lets a binding or a field the application names the same way win", () => {
    const bound = early.child({ "customer.id": "from-binding" });
    let ids = { traceId: "", spanId: "" };
    withCustomer("c-9", () =>
      tracer().startActiveSpan("work", (span) => {
        ids = span.spanContext();
        bound.info({ span_id: "from-line" }, "named alike");
        bound.info("bound only");
        span.end();
      }),
    );
    assert.equal(lines[0]!["customer.id"], "from-binding");
    assert.equal(lines[0]!["span_id"], "from-line");
    assert.equal(lines[0]!["trace_id"], ids.traceId);
    assert.equal(lines[1]!["customer.id"], "from-binding");
    assert.equal(lines[1]!["span_id"], ids.spanId);
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

  it("reads severity from syslog's level names, lower numbers the worse", async () => {
    const syslog = pino(
      {
        customLevels: {
          emerg: 0,
          alert: 1,
          crit: 2,
          err: 3,
          warning: 4,
          notice: 5,
          info: 6,
          debug: 7,
        },
        useOnlyCustomLevels: true,
        levelComparison: "DESC",
        level: "debug",
      },
      sink,
    ) as unknown as Record<string, (m: string) => void>;
    for (const name of ["emerg", "crit", "err", "warning", "notice", "debug"])
      syslog[name]!(name);
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 6,
      "six records",
    );
    assert.deepEqual(
      Object.fromEntries(logs.map((l) => [l.body, l.severityNumber])),
      { emerg: 22, crit: 18, err: 17, warning: 13, notice: 10, debug: 5 },
    );
  });

  it("honours a custom messageKey", async () => {
    const custom = pino({ messageKey: "message" }, sink);
    custom.info("with another key");
    const logs = await receiver.waitForLogs((l) => l.length >= 1, "one record");
    assert.equal(logs[0]!.body, "with another key");
  });
});

describe("watched customers", () => {
  const watch = (level: 10 | 20) =>
    watchList.replace([
      { customer: "c-42", until: Date.now() + 60_000, level },
    ]);

  it("logs below the logger's level for a watched customer's requests only", () => {
    const logger = pino({ level: "info" }, sink);
    const child = logger.child({ component: "billing" });
    const lines42: unknown[] = [];
    watch(20);
    try {
      withCustomer("c-42", () => {
        logger.debug("watched debug");
        child.debug({ cart: 3 }, "watched child debug");
        logger.trace("not at trace");
        assert.equal(logger.isLevelEnabled("debug"), true);
        assert.equal(logger.isLevelEnabled("trace"), false);
        lines42.push(...lines);
      });
      withCustomer("c-7", () => {
        logger.debug("someone else");
        assert.equal(logger.isLevelEnabled("debug"), false);
      });
      logger.debug("outside any request");
    } finally {
      watchList.replace([]);
    }
    withCustomer("c-42", () => logger.debug("after the watch"));
    assert.deepEqual(
      lines.map((l) => [l["msg"], l["level"], l["customer.id"]]),
      [
        ["watched debug", 20, "c-42"],
        ["watched child debug", 20, "c-42"],
      ],
    );
    assert.equal(lines[1]!["component"], "billing");
    assert.equal(lines[1]!["cart"], 3);
    assert.equal(lines42.length, 2);
  });

  it("turns on every level down to the watch level, warn included, for a logger set to error", () => {
    const logger = pino({ level: "error" }, sink);
    watch(20);
    try {
      withCustomer("c-42", () => {
        logger.debug("d");
        logger.info("i");
        logger.warn("w");
        logger.error("e");
        assert.equal(logger.isLevelEnabled("warn"), true);
      });
    } finally {
      watchList.replace([]);
    }
    assert.deepEqual(
      lines.map((l) => [l["msg"], l["level"]]),
      [
        ["d", 20],
        ["i", 30],
        ["w", 40],
        ["e", 50],
      ],
    );
  });

  it("never turns on a logger the application switched off", () => {
    const silent = pino({ level: "silent" }, sink);
    const disabled = pino({ enabled: false }, sink);
    watch(20);
    try {
      withCustomer("c-42", () => {
        silent.debug("silent debug");
        silent.error("silent error");
        disabled.info("disabled info");
        assert.equal(silent.isLevelEnabled("debug"), false);
      });
    } finally {
      watchList.replace([]);
    }
    assert.deepEqual(lines, []);
  });

  it("answers isLevelEnabled as pino does for a level the logger has no method for", () => {
    const custom = pino(
      {
        level: "mid",
        customLevels: { low: 5, mid: 25, high: 55 },
        useOnlyCustomLevels: true,
      },
      sink,
    );
    const logger = pino({ level: "info" }, sink);
    // An application's helper that logs at a level named at run time.
    const logAt = (l: object, level: string, msg: string) => {
      if ((l as typeof logger).isLevelEnabled(level))
        (l as unknown as Record<string, (m: string) => void>)[level]!(msg);
    };
    const unwatched = ["trace", "debug", "info", "low", "mid"].map((level) =>
      custom.isLevelEnabled(level),
    );
    watch(10);
    try {
      withCustomer("c-42", () => {
        assert.deepEqual(
          ["trace", "debug", "info", "low", "mid"].map((level) =>
            custom.isLevelEnabled(level),
          ),
          unwatched,
        );
        assert.equal(custom.isLevelEnabled("debug"), false);
        for (const level of ["trace", "debug", "info", "low", "mid"]) {
          logAt(custom, level, `custom ${level}`);
          logAt(logger, level, `standard ${level}`);
        }
        assert.equal(logger.isLevelEnabled("debug"), true);
        assert.equal(logger.isLevelEnabled("low"), false);
      });
    } finally {
      watchList.replace([]);
    }
    assert.deepEqual(
      lines.map((l) => l["msg"]),
      ["standard trace", "standard debug", "standard info", "custom mid"],
    );
  });

  it("turns on trace lines when asked, and leaves loggers with a level of their own alone", () => {
    const logger = pino({ level: "warn" }, sink);
    const verbose = pino({ level: "debug" }, sink);
    watch(10);
    try {
      withCustomer("c-42", () => {
        logger.trace("watched trace");
        logger.info("watched info");
        verbose.debug("own debug");
      });
      withCustomer("c-7", () => verbose.debug("own debug, other customer"));
    } finally {
      watchList.replace([]);
    }
    assert.deepEqual(
      lines.map((l) => l["msg"]),
      [
        "watched trace",
        "watched info",
        "own debug",
        "own debug, other customer",
      ],
    );
  });
});

// Loggers created after start get the default redaction: see
// test/data-protection.test.ts (pino is imported here before start).
describe("default redaction", () => {
  beforeEach(() => (lines.length = 0));

  it("leaves loggers with a redact option of their own, and loggers created before start, alone", () => {
    const own = pino({ redact: ["order"] }, sink);
    own.info({ order: 17, password: "visible by choice" });
    assert.equal(lines.at(-1)!["order"], "[Redacted]");
    assert.equal(lines.at(-1)!["password"], "visible by choice");
    early.info({ password: "created before start" });
    assert.equal(lines.at(-1)!["password"], "created before start");
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
