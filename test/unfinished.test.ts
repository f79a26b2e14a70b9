// The requests a service was serving when it stopped: crashed, exited,
// killed by a signal nobody handles, or shut Threadline down. Their spans
// would never end; they are sent ended, marked with why, and counted in the
// request metrics as the failures they were.
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type ReceivedPoint,
  type ReceivedSpan,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

type End = "crash" | "rejection" | "exit" | "signal" | "shutdown" | "graceful";

const CUT_BY: Record<End, string> = {
  crash: "an uncaught exception",
  rejection: "an unhandled rejection",
  exit: "process.exit()",
  signal: "a SIGTERM nobody handles",
  shutdown: "shutdown()",
  graceful: "the application's own SIGTERM handler",
};

describe("requests in flight when the service stops", () => {
  let receiver: OtlpReceiver;
  // A payment provider that takes the call and never answers.
  let provider: Server;
  let providerUrl: string;
  const held: ServerResponse[] = [];
  before(async () => {
    receiver = await startOtlpReceiver();
    provider = createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => provider.listen(0, "127.0.0.1", r));
    providerUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/charge`;
  });
  after(async () => {
    for (const res of held) res.destroy();
    provider.closeAllConnections();
    await new Promise((r) => provider.close(r));
    await receiver.close();
  });

  /**
   * Serves /quick, then stops as `end` says with /order in flight (and
   * /slow, when asked, answered while the end's flush runs).
   */
  async function stopWithOrderInFlight(
    end: End,
    more: {
      name?: string;
      openSpans?: number;
      slow?: boolean;
      /** The provider resets the payment's connection after the end. */
      reset?: boolean;
    } = {},
  ) {
    const name = more.name ?? `in-flight-${end}`;
    const app = await startService({
      entry: "in-flight.mjs",
      cwd: fixtures,
      ready: /listening on (\d+)/,
      env: {
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        // Nothing leaves before the end unless the end sends it.
        OTEL_BSP_SCHEDULE_DELAY: "60000",
        OTEL_BLRP_SCHEDULE_DELAY: "60000",
        PROVIDER_URL: providerUrl,
        END: end,
        OPEN_SPANS: String(more.openSpans ?? 0),
      },
    });
    assert.equal(await (await fetch(`${app.url}/quick`)).text(), "ok");
    const order = fetch(`${app.url}/order`).then(
      (r) => r.status,
      () => "cut off",
    );
    await waitFor(() => app.stdout.includes("in flight"), {
      what: "the order in flight",
    });
    if (end === "shutdown")
      await waitFor(() => app.stdout.includes("shut down"), {
        what: "shutdown() to finish",
      });
    const slow = more.slow
      ? fetch(`${app.url}/slow`).then((r) => r.text())
      : undefined;
    if (more.reset) {
      for (const res of held.splice(0))
        if (res.socket?.destroyed === false) res.socket.resetAndDestroy();
      // The payment's own 'close' listener runs after Threadline's.
      await waitFor(
        () =>
          app.stdout.includes("payment closed") || app.child.exitCode !== null,
        { what: "the payment's connection to close" },
      );
    }
    const exit =
      end === "signal" || end === "graceful" || end === "shutdown"
        ? await app.stop("SIGTERM", 10_000)
        : await app.exited;
    const spans = (): ReceivedSpan[] =>
      receiver.spans.filter((s) => s.resource["service.name"] === name);
    const serverSpan = (path: string) =>
      spans().find((s) => s.kind === 2 && s.attributes["url.path"] === path);
    const orderSpan = await waitFor(() => serverSpan("/order"), {
      what: `${name}'s /order span`,
    });
    const payment = spans().find(
      (s) => s.kind === 3 && s.parentSpanId === orderSpan.spanId,
    );
    /** The request duration points of `route`, as last exported. */
    const durations = (route: string): ReceivedPoint[] =>
      receiver.metrics
        .filter(
          (m) =>
            m.name === "http.server.request.duration" &&
            m.resource["service.name"] === name,
        )
        .flatMap((m) => m.points)
        .filter((p) => p.attributes["http.route"] === route);
    return {
      durations,
      exit,
      answer: await order,
      slow: await slow,
      spans: spans(),
      quick: serverSpan("/quick"),
      slowSpan: serverSpan("/slow"),
      order: orderSpan,
      payment,
      stderr: app.stderr.join("\n"),
    };
  }

  const cases: Array<{
    end: End;
    exit: { code: number | null; signal: NodeJS.Signals | null };
    unfinished: string;
    message: RegExp;
    exception?: string;
  }> = [
    {
      end: "crash",
      exit: { code: 1, signal: null },
      unfinished: "crash",
      message:
        /^unfinished when the process crashed: Error: the payment step gave up$/,
      exception: "the payment step gave up",
    },
    {
      end: "rejection",
      exit: { code: 1, signal: null },
      unfinished: "crash",
      message:
        /^unfinished when the process crashed: Error: the payment promise was dropped$/,
      exception: "the payment promise was dropped",
    },
    {
      end: "exit",
      exit: { code: 3, signal: null },
      unfinished: "exit",
      message: /^unfinished when the process exited$/,
    },
    {
      end: "signal",
      exit: { code: null, signal: "SIGTERM" },
      unfinished: "SIGTERM",
      message: /^unfinished when the process ended on SIGTERM$/,
    },
    {
      end: "shutdown",
      exit: { code: null, signal: "SIGTERM" },
      unfinished: "shutdown",
      message: /^unfinished when Threadline was shut down$/,
    },
  ];
  for (const c of cases)
    it(`sends the request cut off by ${CUT_BY[c.end]}, marked unfinished, and its call in progress`, async () => {
      const r = await stopWithOrderInFlight(c.end);
      assert.deepEqual(r.exit, c.exit, r.stderr);
      if (c.end !== "shutdown") assert.equal(r.answer, "cut off");
      for (const span of [r.order, r.payment]) {
        assert.ok(span, "the provider call's CLIENT span was sent");
        assert.equal(span.attributes["threadline.unfinished"], c.unfinished);
        assert.equal(span.status.code, 2);
        assert.match(span.status.message, c.message);
        assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano);
      }
      assert.equal(r.payment!.traceId, r.order.traceId);
      // Where the error was thrown: in a timer of the order's request.
      assert.deepEqual(
        r.order.events
          .filter((e) => e.name === "exception")
          .map((e) => e.attributes["exception.message"]),
        c.exception === undefined ? [] : [c.exception],
      );
      // Counted as the failed request it was, route and all, on the span too.
      assert.equal(r.order.name, "GET /order");
      assert.equal(r.order.attributes["http.route"], "/order");
      assert.equal(r.order.attributes["error.type"], "aborted");
      assert.equal(r.order.attributes["http.response.status_code"], undefined);
      const [point] = await waitFor(
        () =>
          r.durations("/order").length > 0 ? r.durations("/order") : undefined,
        { what: "the /order request in http.server.request.duration" },
      );
      assert.deepEqual(point!.attributes, {
        "http.request.method": "GET",
        "http.route": "/order",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "error.type": "aborted",
      });
      assert.equal(point!.count, 1);
      // A request that had finished is left as it was.
      assert.ok(r.quick, "the finished request's span was sent");
      assert.equal(r.quick.attributes["threadline.unfinished"], undefined);
      assert.equal(r.quick.status.code, 0);
    });

  it("lives on when a call left in flight by shutdown() fails afterwards", async () => {
    // After shutdown() the call's span is the SDK's to end, and Node sets
    // a request that got no answer's res to null, not undefined.
    const r = await stopWithOrderInFlight("shutdown", {
      name: "in-flight-reset",
      reset: true,
    });
    assert.deepEqual(r.exit, { code: null, signal: "SIGTERM" }, r.stderr);
    assert.doesNotMatch(r.stderr, /TypeError/);
    assert.equal(r.answer, 503);
    assert.ok(r.payment, "the provider call's CLIENT span was sent");
    assert.equal(r.payment.attributes["threadline.unfinished"], "shutdown");
  });

  it("sends every span left open, however many, oldest and newest alike, without filling the export queue", async () => {
    const r = await stopWithOrderInFlight("exit", {
      name: "in-flight-many",
      openSpans: 3000,
    });
    assert.deepEqual(r.exit, { code: 3, signal: null }, r.stderr);
    const jobs = r.spans.filter((s) => s.name.startsWith("job "));
    assert.equal(jobs.length, 3000, r.stderr);
    assert.ok(
      jobs.every((s) => s.attributes["threadline.unfinished"] === "exit"),
    );
    assert.doesNotMatch(r.stderr, /queue is full/);
  });

  it("leaves a request that finishes while an unhandled SIGTERM's flush runs as it ended", async () => {
    // A Collector slow to answer: the flush takes a second, and the
    // server goes on serving meanwhile.
    receiver.setResponder(() => ({ delayMs: 1000 }));
    try {
      const r = await stopWithOrderInFlight("signal", {
        name: "in-flight-late",
        slow: true,
      });
      assert.deepEqual(r.exit, { code: null, signal: "SIGTERM" }, r.stderr);
      assert.equal(r.slow, "slow");
      assert.ok(r.slowSpan, "the slow request's span was sent");
      assert.equal(r.slowSpan.attributes["threadline.unfinished"], undefined);
      assert.equal(r.slowSpan.status.code, 0);
      assert.equal(r.order.attributes["threadline.unfinished"], "SIGTERM");
    } finally {
      receiver.setResponder(undefined);
    }
  });

  /**
   * Asks the answer-then-exit service for /quit, which it answers as
   * `answer` says and exits in the same tick: what the client got, and the
   * request's span and request-duration point as they arrived.
   */
  async function answerThenExit(answer: "whole" | "partial" | "large") {
    const name = `answer-then-exit-${answer}`;
    const app = await startService({
      entry: "answer-then-exit.mjs",
      cwd: fixtures,
      env: {
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "60000",
        OTEL_BLRP_SCHEDULE_DELAY: "60000",
        ANSWER: answer,
      },
    });
    const got = await fetch(`${app.url}/quit`).then(
      async (r) => ({
        status: r.status,
        body: await r.text().catch(() => "cut off"),
      }),
      () => "cut off",
    );
    const exit = await app.exited;
    const span = await waitFor(
      () =>
        receiver.spans.find(
          (s) => s.resource["service.name"] === name && s.kind === 2,
        ),
      { what: `${name}'s server span` },
    );
    const point = await waitFor(
      () =>
        receiver.metrics
          .filter(
            (m) =>
              m.name === "http.server.request.duration" &&
              m.resource["service.name"] === name,
          )
          .flatMap((m) => m.points)[0],
      { what: `${name}'s request in http.server.request.duration` },
    );
    return { got, exit, span, point, stderr: app.stderr.join("\n") };
  }

  /** The duration point's attributes of a 200 to GET /quit. */
  const QUIT_200 = {
    "http.request.method": "GET",
    "http.route": "/quit",
    "url.scheme": "http",
    "network.protocol.version": "1.1",
    "http.response.status_code": 200,
  };

  it("counts a response handed whole to the connection just before process.exit() as answered", async () => {
    const r = await answerThenExit("whole");
    assert.deepEqual(r.exit, { code: 0, signal: null }, r.stderr);
    assert.deepEqual(r.got, { status: 200, body: "bye" });
    assert.equal(r.span.name, "GET /quit");
    assert.equal(r.span.status.code, 0, r.span.status.message);
    assert.equal(r.span.attributes["threadline.unfinished"], undefined);
    assert.equal(r.span.attributes["error.type"], undefined);
    assert.equal(r.span.attributes["http.response.status_code"], 200);
    assert.deepEqual(r.point.attributes, QUIT_200);
    assert.equal(r.point.count, 1);
  });

  for (const answer of ["partial", "large"] as const)
    it(`sends a response ${answer === "partial" ? "whose body was never ended" : "still being written"} at process.exit() as cut off`, async () => {
      const r = await answerThenExit(answer);
      assert.deepEqual(r.exit, { code: 0, signal: null }, r.stderr);
      // The status line went; the body did not, or not all of it.
      assert.deepEqual(r.got, { status: 200, body: "cut off" });
      assert.equal(r.span.status.code, 2);
      assert.match(
        r.span.status.message,
        /^unfinished when the process exited$/,
      );
      assert.equal(r.span.attributes["threadline.unfinished"], "exit");
      assert.equal(r.span.attributes["error.type"], "aborted");
      assert.equal(r.span.attributes["http.response.status_code"], 200);
      assert.deepEqual(r.point.attributes, {
        ...QUIT_200,
        "error.type": "aborted",
      });
    });

  it("leaves a request the application's own SIGTERM handler finishes as it ended", async () => {
    const r = await stopWithOrderInFlight("graceful");
    assert.deepEqual(r.exit, { code: 0, signal: null }, r.stderr);
    assert.equal(r.answer, 503);
    assert.equal(r.order.attributes["threadline.unfinished"], undefined);
    assert.equal(r.order.attributes["http.response.status_code"], 503);
    assert.ok(r.payment, "the provider call's CLIENT span was sent");
    assert.equal(r.payment.attributes["threadline.unfinished"], undefined);
    assert.equal(r.payment.status.code, 2, "the cut call failed");
  });
});
