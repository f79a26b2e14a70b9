// Export that behaves: flushed on SIGTERM, SIGINT, process.exit() and a
// natural exit; never keeps the process alive; standard OTLP settings honoured.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  selfSignedCertificate,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
  type OtlpReceiver,
  type Responder,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

describe("export", () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  // A long schedule delay: nothing leaves before shutdown unless a batch fills.
  const env = (name: string, extra: Record<string, string> = {}) => ({
    OTEL_SERVICE_NAME: name,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "60000",
    OTEL_BLRP_SCHEDULE_DELAY: "60000",
    ...extra,
  });
  /** Starts a fixture that runs to its end by itself. */
  const startFixture = (
    entry: string,
    env: Record<string, string>,
    execArgv: string[] = [],
  ) => startService({ entry, cwd: fixtures, ready: false, env, execArgv });
  /** Runs a fixture to its end, which must be a clean one. */
  const runFixture = async (entry: string, env: Record<string, string>) => {
    const app = await startFixture(entry, env);
    assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
    return app;
  };
  const ofService = <T extends { resource: Record<string, unknown> }>(
    items: T[],
    name: string,
  ) => items.filter((x) => x.resource["service.name"] === name);
  /** The requests `name`'s request-duration histogram counted (delta). */
  const requestsCounted = (name: string) =>
    ofService(receiver.metrics, name)
      .filter((m) => m.name === "http.server.request.duration")
      .flatMap((m) => m.points)
      .reduce((n, p) => n + Number(p.count ?? 0), 0);
  /**
   * Runs huge-line.mjs (300 short lines, a warning HUGE characters long,
   * 10 more) as `name` with `extra`, and checks that the 310 short ones
   * were all sent, in order.
   */
  const aroundHugeLine = async (
    name: string,
    extra: Record<string, string>,
  ) => {
    const app = await runFixture(
      "huge-line.mjs",
      env(name, {
        BEFORE: "300",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
        ...extra,
      }),
    );
    assert.deepEqual(
      ofService(receiver.logs, name).map((l) => l.attributes["i"]),
      Array.from({ length: 310 }, (_, i) => i),
      app.stderr.join("\n"),
    );
    return app;
  };
  /** The one line of `stderr` that `about` finds, which must read as `said`. */
  const saidOnce = (stderr: string[], about: RegExp, said: RegExp) => {
    const lines = stderr.filter((l) => about.test(l));
    assert.equal(lines.length, 1, stderr.join("\n"));
    assert.match(lines[0]!, said);
  };
  const count = (name: string) => ({
    spans: ofService(receiver.spans, name).length,
    logs: ofService(receiver.logs, name).length,
  });

  // Export runs on the application's thread by default, on a worker thread
  // when asked; the count also proves the exporter's own requests untraced.
  const threads = [
    ["main", ""],
    ["worker", " (export on a worker thread)"],
  ] as const;

  for (const exit of ["process-exit", "natural", "signal"] as const)
    it(`sends each span and metric point once at the process's end (${exit}), not again what the end's own flush had started to send`, async () => {
      const name = `exit-once-${exit}`;
      const app = await startFixture(
        "exit-once.mjs",
        env(name, {
          EXIT: exit,
          OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "delta",
          OTEL_METRIC_EXPORT_INTERVAL: "60000",
        }),
      );
      await app.exited;
      const spans = receiver.spans.filter(
        (s) => s.resource["service.name"] === name,
      );
      const names = spans.map((s) => s.name).sort();
      assert.deepEqual(
        new Set(spans.map((s) => s.spanId)).size,
        spans.length,
        `spans sent twice: ${names.join(", ")}`,
      );
      // A signal the application does not handle ends the process as the
      // signal does, with no 'exit' for listeners.
      for (const n of ["left-open", "before-the-end"])
        assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
      if (exit !== "signal")
        assert.ok(names.includes("in-exit-listener"), names.join(", "));
      // Each request once in the delta duration histogram, the one the end
      // cut off included.
      const requests = requestsCounted(name);
      assert.equal(requests, 2);
    });

  for (const [thread, on] of threads)
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      it(`flushes every span and log line on ${signal}, then dies of the signal${on}`, async () => {
        const name = `burst-${signal}-${thread}`;
        const app = await startService({
          entry: "burst.mjs",
          cwd: fixtures,
          ready: /listening on (\d+)/,
          env: env(name, {
            SPANS: "1500",
            THREADLINE_EXPORT_THREAD: thread,
            // The exporter reads it (fetch) and answers 404s: none of that may become a span.
            THREADLINE_WATCH_URL: `${receiver.url}/watch.json`,
            THREADLINE_WATCH_INTERVAL: "100",
          }),
        });
        await waitFor(
          () => receiver.attempts.some((r) => r.path === "/watch.json"),
          {
            what: "a read of the watch list",
          },
        );
        const { signal: died } = await app.stop(signal);
        assert.equal(died, signal);
        assert.deepEqual(count(name), { spans: 1500, logs: 1500 });
      });
    }

  it("leaves SIGTERM to a once listener the application installed before Threadline started", async () => {
    const app = await startService({
      entry: "graceful-once.mjs",
      cwd: fixtures,
      env: env("graceful-once", {}),
    });
    const { code, signal } = await app.stop("SIGTERM", 10_000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    assert.ok(
      app.stdout.includes("app finished cleanly"),
      app.stdout.join("\n"),
    );
  });

  it("flushes on SIGTERM and dies of it while a dependency listens through signal-exit", async () => {
    const name = "burst-signal-exit";
    const app = await startService({
      entry: "burst.mjs",
      cwd: fixtures,
      ready: /listening on (\d+)/,
      env: env(name, { SPANS: "300", SIGNAL_EXIT: "1" }),
    });
    // signal-exit waits for another listener to act: were Threadline to
    // wait too, the process would live on until SIGKILL.
    const { signal: died } = await app.stop("SIGTERM", 10_000);
    assert.equal(died, "SIGTERM");
    assert.deepEqual(count(name), { spans: 300, logs: 300 });
  });

  // "Clean up, then die of the signal": the handler closes the server and
  // raises the signal again, which nobody handles then, with the event loop
  // empty. A shell or a Kubernetes Job must see the signal, not success.
  for (const [signal, beforeExit] of [
    ["SIGTERM", false],
    ["SIGINT", false],
    ["SIGTERM", true],
  ] as const)
    it(`flushes and dies of ${signal} when the application's handler closes its server and raises it again${beforeExit ? ", with a beforeExit listener of its own" : ""}`, async () => {
      const name = `reraise-${signal}${beforeExit ? "-before-exit" : ""}`;
      // Idle when the signal comes: what it served has been sent.
      const app = await startService({
        entry: "reraise.mjs",
        cwd: fixtures,
        env: env(name, {
          OTEL_BSP_SCHEDULE_DELAY: "100",
          OTEL_BLRP_SCHEDULE_DELAY: "100",
          ...(beforeExit ? { BEFORE_EXIT: "1" } : {}),
        }),
      });
      for (let i = 0; i < 3; i++) await (await fetch(`${app.url}/${i}`)).text();
      await waitFor(
        () => {
          const n = count(name);
          return n.spans === 3 && n.logs === 3 ? true : undefined;
        },
        { what: "the requests' spans and log lines" },
      );
      const ended = await app.stop(signal, 10_000);
      assert.deepEqual(ended, { code: null, signal }, app.stderr.join("\n"));
      assert.deepEqual(count(name), { spans: 3, logs: 3 });
      // Without Threadline the signal ends it before the loop runs dry: the
      // one more turn that reads the signal is no second beforeExit.
      assert.ok(
        app.stdout.filter((l) => l === "before exit").length <= 1,
        app.stdout.join("\n"),
      );
      // The last metrics, sent by the signal's flush before it died.
      const requests = requestsCounted(name);
      assert.equal(requests, 3);
    });

  it("runs the application's beforeExit listener once after a SIGTERM handler that only closes its server", async () => {
    const name = "once-sigterm-before-exit";
    const app = await startService({
      entry: "reraise.mjs",
      cwd: fixtures,
      env: env(name, { BEFORE_EXIT: "1", NO_RERAISE: "1" }),
    });
    await (await fetch(`${app.url}/0`)).text();
    const ended = await app.stop("SIGTERM", 10_000);
    assert.deepEqual(ended, { code: 0, signal: null }, app.stderr.join("\n"));
    assert.deepEqual(
      app.stdout.filter((l) => l === "before exit"),
      ["before exit"],
      app.stdout.join("\n"),
    );
  });

  // Ctrl-C twice, or Ctrl-C while a natural exit's flush waits: one end
  // of the process, whose loss is said once. A second SIGINT ends the
  // process as the first does.
  const ends = {
    twice: "a second SIGINT comes during the first one's flush",
    natural: "SIGINT comes during a natural exit's flush",
  } as const;
  for (const [thread, on] of threads)
    for (const [end, when] of Object.entries(ends))
      it(`says once what the end could not send when ${when}, and ends within the one timeout${on}`, async () => {
        receiver.setResponder(() => "hang");
        try {
          const app = await startService({
            entry: "burst.mjs",
            cwd: fixtures,
            ready: /listening on (\d+)/,
            env: env(`sigint-${end}-${thread}`, {
              SPANS: "20",
              THREADLINE_EXPORT_THREAD: thread,
              THREADLINE_SHUTDOWN_TIMEOUT: "1500",
              ...(end === "natural" ? { EXIT: "natural" } : {}),
            }),
          });
          const since = performance.now();
          if (end === "twice") {
            app.child.kill("SIGINT");
            await new Promise((resolve) => setTimeout(resolve, 500));
          } else {
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
          app.child.kill("SIGINT");
          const ended = await exitWithin(app, "the process ended");
          const tookMs = performance.now() - since;
          // A natural exit's flush blocks the thread, and ends the
          // process as it was ending, the signal unread.
          assert.deepEqual(
            ended,
            end === "natural"
              ? { code: 0, signal: null }
              : { code: null, signal: "SIGINT" },
            app.stderr.join("\n"),
          );
          const said = app.stderr.filter((l) => l.includes(" at exit: "));
          assert.equal(said.length, 1, app.stderr.join("\n"));
          assert.match(
            said[0]!,
            /^threadline warn: dropped 20 spans, 20 log records(, \d+ metric points)? at exit: not delivered within \d+ ms/,
          );
          // Within the one timeout the first flush started.
          assert.ok(tookMs < 2500, `ended after ${tookMs} ms`);
        } finally {
          receiver.setResponder(undefined);
        }
      });

  for (const [thread, on] of threads)
    it(`spends THREADLINE_SHUTDOWN_TIMEOUT once when process.exit() comes during the flush of a SIGTERM nobody handles${on}`, async () => {
      receiver.setResponder(() => "hang");
      try {
        const app = await startService({
          entry: "burst.mjs",
          cwd: fixtures,
          ready: /listening on (\d+)/,
          env: env(`signal-then-exit-${thread}`, {
            SPANS: "20",
            THREADLINE_EXPORT_THREAD: thread,
            THREADLINE_SHUTDOWN_TIMEOUT: "1500",
            EXIT: "signal-then-exit",
            EXIT_AFTER_MS: "1200",
          }),
        });
        // The fixture signals itself as it says it is ready.
        const since = performance.now();
        const { code } = await exitWithin(app, "the process ended");
        const tookMs = performance.now() - since;
        assert.equal(code, 0, app.stderr.join("\n"));
        const said = app.stderr.filter((l) => l.includes(" at exit: "));
        assert.equal(said.length, 1, app.stderr.join("\n"));
        assert.match(
          said[0]!,
          /^threadline warn: dropped 20 spans, 20 log records(, \d+ metric points)? at exit: not delivered within \d+ ms/,
        );
        // The exit's flush has the 300 ms the signal's did not wait; a
        // whole timeout of its own would end it at about 2700 ms.
        assert.ok(tookMs >= 1200, `ended after ${tookMs} ms`);
        assert.ok(tookMs < 2300, `ended after ${tookMs} ms`);
      } finally {
        receiver.setResponder(undefined);
      }
    });

  it("delivers everything when shutdown() is called twice, spans that end during it included", async () => {
    const name = "shutdown-twice";
    const app = await startFixture("shutdown-twice.mjs", env(name));
    const { code } = await app.exited;
    assert.equal(code, 0);
    assert.equal(count(name).spans, 220);
  });

  it("starts again after shutdown(), delivering both starts' lines, without calling its own modules late", async () => {
    const name = "restart";
    const app = await startFixture("restart.mjs", env(name));
    const { code } = await app.exited;
    assert.equal(code, 0);
    assert.equal(count(name).logs, 2);
    // The pino() loaded under the first start redacts under the second.
    const said = [
      ...app.stdout,
      ...ofService(receiver.logs, name).map((l) =>
        JSON.stringify(l, (_, v: unknown) =>
          typeof v === "bigint" ? String(v) : v,
        ),
      ),
    ].join("\n");
    assert.ok(!/first-secret|second-secret/.test(said), said);
    assert.ok(
      !app.stderr.some((l) => l.includes("loaded before Threadline started")),
      app.stderr.join("\n"),
    );
  });

  it("sends large spans and log lines in batches that fit its byte budget, losing none", async () => {
    const name = "big-lines";
    // 150 spans and lines of 40 KB within a second: 6 MB of each, over
    // a 4 MB budget if they waited to be sent as one batch.
    const app = await startFixture(
      "big-lines.mjs",
      env(name, {
        LINES: "150",
        THREADLINE_EXPORT_MAX_BYTES: String(4 * 1024 * 1024),
        OTEL_BSP_SCHEDULE_DELAY: "1000",
        OTEL_BLRP_SCHEDULE_DELAY: "1000",
      }),
    );
    const { code } = await app.exited;
    assert.equal(code, 0);
    assert.deepEqual(
      count(name),
      { spans: 150, logs: 150 },
      app.stderr.join("\n"),
    );
  });

  it("sends the lines logged with one larger than the byte budget, dropping that one alone and saying so", async () => {
    const name = "huge-line";
    const budget = 1024 * 1024;
    // 300 lines of under 100 bytes and a 2 MB one, all in the time one
    // batch waits, with a 1 MB budget (its batches close at 256 KB).
    const app = await aroundHugeLine(name, {
      HUGE: String(2 * budget),
      THREADLINE_EXPORT_MAX_BYTES: String(budget),
    });
    assert.ok(
      app.stderr.some((l) =>
        /dropped a log line of \d+ bytes, more than the whole export buffer/.test(
          l,
        ),
      ),
      app.stderr.join("\n"),
    );
  });

  for (const [thread, on] of threads)
    it(`drops a log line larger than the byte budget as it is logged, unparsed, and sends the lines around it${on}`, async () => {
      const name = `budget-line-${thread}`;
      // A 16 MiB line, over the default 16 MiB budget with its fields.
      const app = await aroundHugeLine(name, {
        HUGE: String(16 * 1024 * 1024),
        THREADLINE_EXPORT_THREAD: thread,
      });
      // Said by the pipeline as the line came, not by the exporter once it
      // had parsed and encoded it ("a log record of").
      saidOnce(
        app.stderr,
        /dropped a log/,
        /dropped a log line of \d+ bytes, more than the whole export buffer \(16777216 bytes, THREADLINE_EXPORT_MAX_BYTES\)/,
      );
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends the spans ended with one larger than the byte budget, dropping that one alone and saying so (${protocol})`, async () => {
      const name = `huge-span-${protocol}`;
      // 300 ordinary spans, one whose array attribute takes it past the
      // 1 MB budget, 300 more: as many as two batches of 512 hold.
      const app = await runFixture(
        "huge-span.mjs",
        env(name, {
          BEFORE: "300",
          HUGE: "300000",
          AFTER: "300",
          THREADLINE_EXPORT_MAX_BYTES: String(1024 * 1024),
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_LOGS_EXPORTER: "none",
          OTEL_METRICS_EXPORTER: "none",
        }),
      );
      assert.deepEqual(
        ofService(receiver.spans, name)
          .map((s) => s.name)
          .sort(),
        Array.from({ length: 600 }, (_, i) => `ordinary-${i}`).sort(),
        app.stderr.join("\n"),
      );
      saidOnce(
        app.stderr,
        /dropped .*span/,
        /dropped a span of \d+ bytes, more than the whole export buffer \(1048576 bytes, THREADLINE_EXPORT_MAX_BYTES\)/,
      );
    });

  it("sends the last interval's runtime metrics with the export at shutdown()", async () => {
    const app = await startFixture(
      "work-then-shutdown.mjs",
      env("runtime-at-shutdown", {
        OTEL_METRIC_EXPORT_INTERVAL: "60000",
        WORK_MS: "300",
      }),
    );
    assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
    const before = (JSON.parse(app.stdout.at(-1)!) as { user: number }).user;
    const ours = receiver.metrics.filter(
      (m) => m.resource["service.name"] === "runtime-at-shutdown",
    );
    const cpu = ours.find((m) => m.name === "process.cpu.time");
    const user = cpu?.points.find(
      (p) => p.attributes["cpu.mode"] === "user",
    )?.value;
    assert.ok(
      user !== undefined && user >= before,
      `process.cpu.time user ${user} s, ${before} s used before shutdown()`,
    );
    assert.ok(ours.some((m) => m.name === "process.memory.usage"));
  });

  it("counts and says what a shutdown could not send, spans that ended during it included", async () => {
    receiver.setResponder(() => "hang");
    try {
      const app = await startFixture(
        "programmatic-stats.mjs",
        env("shutdown-hang", {
          SPANS: "50",
          IN_FLIGHT: "5",
          THREADLINE_SHUTDOWN_TIMEOUT: "700",
        }),
      );
      await app.exited;
      const stats = JSON.parse(app.stdout.at(-1)!) as {
        traces: {
          created: number;
          exported: number;
          pending: number;
          dropped: { shutdownDeadline: number };
        };
      };
      assert.deepEqual(
        {
          created: stats.traces.created,
          exported: stats.traces.exported,
          lost: stats.traces.dropped.shutdownDeadline,
          pending: stats.traces.pending,
        },
        { created: 55, exported: 0, lost: 55, pending: 0 },
      );
      assert.ok(
        app.stderr.some((l) =>
          /dropped 55 spans.* at exit: not delivered within 700 ms/.test(l),
        ),
        app.stderr.join("\n"),
      );
    } finally {
      receiver.setResponder(undefined);
    }
  });

  const exits = {
    natural: "a natural exit",
    "process-exit": "process.exit()",
    throw: "an uncaught exception, each item once",
  } as const;
  for (const [thread, on] of threads)
    for (const exit of ["natural", "process-exit", "throw"] as const) {
      it(`flushes on ${exits[exit]}${on}`, async () => {
        const name = `burst-${exit}-${thread}`;
        // More than two full batches: some leave before the exit, some at it.
        const app = await startFixture(
          "burst.mjs",
          env(name, {
            SPANS: "1300",
            EXIT: exit,
            BEFORE_EXIT: "1",
            THREADLINE_EXPORT_THREAD: thread,
          }),
        );
        const { code } = await app.exited;
        assert.equal(code, exit === "throw" ? 1 : 0);
        assert.deepEqual(count(name), { spans: 1300, logs: 1300 });
        if (exit === "natural")
          assert.deepEqual(
            app.stdout.filter((l) => l.includes("app beforeExit")),
            ["app beforeExit #1"],
            "the application's beforeExit listener runs once, as without Threadline",
          );
      });
    }

  // Node's permission model without --allow-worker: no worker thread can
  // start, neither the export's nor the one process.exit() hands to.
  const noWorkers = ["--permission", "--allow-fs-read=*"];
  for (const [thread, on] of threads) {
    it(`sends everything at a natural exit under Node's permission model without --allow-worker${on}`, async () => {
      const name = `permission-natural-${thread}`;
      const app = await startFixture(
        "burst.mjs",
        env(name, {
          SPANS: "20",
          EXIT: "natural",
          THREADLINE_EXPORT_THREAD: thread,
        }),
        noWorkers,
      );
      const { code } = await exitWithin(app, "the process exited");
      assert.equal(code, 0, app.stderr.join("\n"));
      assert.deepEqual(count(name), { spans: 20, logs: 20 });
      const said = app.stderr.join("\n");
      assert.doesNotMatch(said, /not exported|dropped/);
      if (thread === "worker")
        assert.match(
          said,
          /THREADLINE_EXPORT_THREAD=worker is not possible: Node's permission model allows no worker thread \(--allow-worker\); exporting on the application's thread/,
        );
    });

    it(`says what process.exit() drops under Node's permission model without --allow-worker, as nothing can be sent then${on}`, async () => {
      const name = `permission-exit-${thread}`;
      const app = await startFixture(
        "burst.mjs",
        env(name, {
          SPANS: "20",
          EXIT: "process-exit",
          THREADLINE_EXPORT_THREAD: thread,
        }),
        noWorkers,
      );
      const { code } = await exitWithin(app, "the process exited");
      assert.equal(code, 0, app.stderr.join("\n"));
      assert.match(
        app.stderr.join("\n"),
        /dropped 20 spans, 20 log records[^\n]* at exit: nothing more can be sent after process.exit\(\) without a worker thread, and Node's permission model allows no worker thread \(--allow-worker\)/,
      );
    });
  }

  it("exports on the application's thread, and says so, when the export worker cannot start", async () => {
    const name = "worker-cannot-start";
    const app = await startFixture(
      "burst.mjs",
      env(name, {
        SPANS: "20",
        EXIT: "natural",
        THREADLINE_EXPORT_THREAD: "worker",
      }),
      ["--require", "./no-worker-threads.cjs"],
    );
    const { code } = await exitWithin(app, "the process exited");
    assert.equal(code, 0, app.stderr.join("\n"));
    assert.deepEqual(count(name), { spans: 20, logs: 20 });
    assert.match(
      app.stderr.join("\n"),
      /THREADLINE_EXPORT_THREAD=worker is not possible: the export worker could not start \(worker threads are not available here\); exporting on the application's thread/,
    );
  });

  const listenerExits = {
    natural: 0,
    "process-exit": 3,
    throw: 1,
    "exit-in-listener": 5,
  } as const;
  for (const [thread, on] of threads)
    for (const [exit, expected] of Object.entries(listenerExits)) {
      it(`sends what the application's own exit listener logs and ends, on ${exit}${on}`, async () => {
        const name = `exit-listener-${exit}-${thread}`;
        const app = await startFixture(
          "exit-listener.mjs",
          env(name, { EXIT: exit, THREADLINE_EXPORT_THREAD: thread }),
        );
        const { code } = await app.exited;
        assert.equal(code, expected);
        assert.ok(
          app.stdout.some((l) => l.includes('"msg":"exiting"')),
          "the listener ran",
        );
        const logs = receiver.logs.filter(
          (l) => l.resource["service.name"] === name,
        );
        assert.deepEqual(
          logs.map((l) => [l.body, l.attributes["code"]]),
          [
            ["working", undefined],
            ["exiting", expected === 5 ? 0 : expected],
          ],
        );
        const spans = receiver.spans.filter(
          (s) => s.resource["service.name"] === name,
        );
        assert.deepEqual(
          spans.map((s) => s.name),
          ["exiting"],
        );
        assert.equal(logs[1]!.traceId, spans[0]!.traceId);
      });
    }

  it("never keeps the process alive when the Collector is unreachable or hangs", async () => {
    receiver.setResponder(() => "hang");
    try {
      // The watch list is read all the while (from next to a loopback
      // endpoint by default, or from the file given): that must not hold it either.
      for (const [endpoint, watch] of [
        ["http://127.0.0.1:9", undefined],
        [receiver.url, undefined],
        [receiver.url, join(fixtures, "no-such-watch-list.json")],
      ] as const) {
        const app = await startFixture(
          "burst.mjs",
          env("stuck", {
            SPANS: "10",
            EXIT: "natural",
            OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
            THREADLINE_SHUTDOWN_TIMEOUT: "300",
            THREADLINE_WATCH_INTERVAL: "100",
            ...(watch === undefined ? {} : { THREADLINE_WATCH_URL: watch }),
          }),
        );
        const result = await exitWithin(
          app,
          `the process exited (collector ${endpoint})`,
        );
        assert.equal(result.code, 0);
        // What could not go is said, and why: the time to send it ran out
        // (a Collector that hangs), or the last attempt failed first.
        assert.match(
          app.stderr.join("\n"),
          endpoint === "http://127.0.0.1:9"
            ? /dropped 10 spans, 10 log records[^\n]* at exit: the last attempt failed \(the Collector could not be reached/
            : /dropped 10 spans, 10 log records[^\n]* at exit: not delivered within 300 ms/,
        );
      }
    } finally {
      receiver.setResponder(undefined);
    }
  });

  for (const [thread, on] of threads)
    it(`exits as the application would without Threadline, running none of its unref'd timers while a Collector that does not answer is waited for${on}`, async () => {
      receiver.setResponder(() => ({ delayMs: 30_000 }));
      try {
        const app = await startFixture(
          "exit-watchdog.mjs",
          env(`exit-watchdog-${thread}`, {
            THREADLINE_EXPORT_THREAD: thread,
            THREADLINE_SHUTDOWN_TIMEOUT: "1500",
          }),
        );
        const result = await exitWithin(app, "the process exited");
        assert.deepEqual(
          result,
          { code: 0, signal: null },
          app.stdout.join("\n"),
        );
        assert.ok(!app.stdout.includes("watchdog fired"));
      } finally {
        receiver.setResponder(undefined);
      }
    });

  for (const [thread, on] of threads)
    it(`sends everything at a natural exit while the Collector is slow, and the unref'd timer of the application never runs meanwhile${on}`, async () => {
      // Were the loop held for the flush, the timer would end spans, each
      // a reason for another flush, for as long as the Collector is slower.
      receiver.setResponder(() => ({ delayMs: 200 }));
      try {
        const name = `unref-poller-${thread}`;
        // No watch list: its first read's connection, on the application's
        // thread with the export, holds the loop until it connects, which
        // takes the timer's 50 ms on a busy machine.
        const app = await startFixture(
          "unref-poller.mjs",
          env(name, {
            SPANS: "10",
            THREADLINE_EXPORT_THREAD: thread,
            THREADLINE_WATCH_URL: "none",
          }),
        );
        const result = await exitWithin(app, "the process exited");
        assert.equal(result.code, 0);
        const { ended } = JSON.parse(app.stdout.at(-1)!) as { ended: number };
        assert.equal(ended, 10, "the timer ran while the exit flushed");
        assert.equal(
          receiver.spans.filter((s) => s.resource["service.name"] === name)
            .length,
          10,
        );
      } finally {
        receiver.setResponder(undefined);
      }
    });

  it("waits THREADLINE_SHUTDOWN_TIMEOUT once at a natural exit", async () => {
    receiver.setResponder(() => ({ delayMs: 30_000 }));
    try {
      const app = await startFixture(
        "unref-poller.mjs",
        env("unref-poller-timeout", {
          SPANS: "10",
          THREADLINE_SHUTDOWN_TIMEOUT: "1500",
        }),
      );
      // Said by the application's exit listener, which runs before the flush.
      await waitFor(() => app.stdout.some((l) => l.includes('"ended"')), {
        what: "the application's exit",
        intervalMs: 5,
      });
      const since = performance.now();
      await exitWithin(app, "the process exited");
      const tookMs = performance.now() - since;
      assert.ok(tookMs >= 1400, `waited the timeout (${tookMs} ms)`);
      // Twice the timeout, were it waited twice.
      assert.ok(tookMs < 2500, `and no more than once (${tookMs} ms)`);
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("gives the exit's flush the timeout the earlier flushes did not wait, however long the work between took", async () => {
    // The application's SIGTERM handler finishes a job that outlasts the
    // timeout, and exits once it is done; the job's spans, left for the
    // exit's flush, must still go to a Collector that answers within what
    // the signal's flush did not wait.
    receiver.setResponder(() => ({ delayMs: 400 }));
    try {
      const name = "graceful-job";
      const app = await startService({
        entry: "graceful-once.mjs",
        cwd: fixtures,
        env: env(name, {
          JOB_MS: "1500",
          JOB_SPANS: "20",
          THREADLINE_SHUTDOWN_TIMEOUT: "1000",
        }),
      });
      const { code } = await app.stop("SIGTERM", 15_000);
      assert.equal(code, 0);
      assert.equal(
        receiver.spans.filter(
          (s) =>
            s.resource["service.name"] === name && s.name.startsWith("job-"),
        ).length,
        20,
        app.stderr.join("\n"),
      );
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("spends THREADLINE_SHUTDOWN_TIMEOUT once when the application's own SIGTERM handler ends the process", async () => {
    receiver.setResponder(() => ({ delayMs: 30_000 }));
    try {
      const app = await startService({
        entry: "graceful-once.mjs",
        cwd: fixtures,
        env: env("graceful-once", { THREADLINE_SHUTDOWN_TIMEOUT: "1500" }),
      });
      // A span waiting for export, for the flushes to wait on.
      await fetch(app.url);
      const since = performance.now();
      const { code } = await app.stop("SIGTERM", 15_000);
      const tookMs = performance.now() - since;
      assert.equal(code, 0);
      assert.ok(app.stdout.includes("app finished cleanly"));
      // The signal's flush waits the timeout; beforeExit's, after the
      // application is done, has none of it left.
      assert.ok(tookMs >= 1500, `waited the timeout (${tookMs} ms)`);
      assert.ok(tookMs < 2700, `and no more than once (${tookMs} ms)`);
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("sends OTEL_EXPORTER_OTLP_HEADERS, gzip-compressed when asked, and never prints them", async () => {
    const name = "headers";
    receiver.setResponder((req) =>
      req.headers["api-key"] === "s3cret-value" ? undefined : { status: 401 },
    );
    try {
      const app = await startFixture(
        "burst.mjs",
        env(name, {
          SPANS: "5",
          EXIT: "natural",
          // A signal's own list replaces the general one's header, in any
          // letter case: the key goes once.
          OTEL_EXPORTER_OTLP_HEADERS: "Api-Key=an-old-key",
          OTEL_EXPORTER_OTLP_TRACES_HEADERS: "api-key=s3cret-value",
          OTEL_EXPORTER_OTLP_LOGS_HEADERS: "API-KEY=s3cret-value",
          OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
        }),
      );
      await app.exited;
      assert.deepEqual(count(name), { spans: 5, logs: 5 });
      const req = receiver.requests.find(
        (r) => r.path === "/v1/traces" && r.headers["api-key"],
      );
      assert.equal(req?.headers["content-encoding"], "gzip");
      assert.match(
        String(req?.headers["user-agent"]),
        /^Threadline-Node\/\S+ /,
      );

      // A rejected key: warnings say what failed, never the key.
      receiver.setResponder(() => ({ status: 401 }));
      const refused = await startFixture(
        "burst.mjs",
        env("refused", {
          SPANS: "5",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_HEADERS: "api-key=s3cret-value",
        }),
      );
      await refused.exited;
      assert.ok(
        refused.stderr.some((l) => l.includes("HTTP 401")),
        refused.stderr.join("\n"),
      );
      assert.ok(!refused.stderr.join("\n").includes("s3cret"));
      // process.exit(): sent from a worker thread the exit then stops; the
      // refusal is still said, once.
      const exited = await startFixture(
        "burst.mjs",
        env("refused-exit", {
          SPANS: "5",
          EXIT: "process-exit",
          OTEL_EXPORTER_OTLP_HEADERS: "api-key=s3cret-value",
        }),
      );
      await exited.exited;
      const said = exited.stderr.join("\n");
      for (const what of ["5 spans", "5 log records"])
        assert.equal(
          said.split(`dropped ${what}: `).length - 1,
          1,
          `${what} refused, said once:\n${said}`,
        );
      assert.match(said, /dropped 5 spans: \S+ refused them \(HTTP 401\b/);
      assert.ok(!said.includes("at exit: the Collector refused them"), said);
      assert.ok(!said.includes("s3cret"));
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("checks each header list once, under its variable's name", async () => {
    const app = await startFixture(
      "burst.mjs",
      env("header-lists", {
        SPANS: "1",
        EXIT: "natural",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_HEADERS:
          "noeq,=v,bad header=s3cret,Content-Type=text/plain,x-ok=1",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-euro=%E2%82%AC",
      }),
    );
    await app.exited;
    const about = app.stderr.filter((l) => /headers/i.test(l));
    assert.deepEqual(
      about,
      [
        "threadline warn: OTEL_EXPORTER_OTLP_HEADERS has an entry without `=`; it was ignored",
        "threadline warn: OTEL_EXPORTER_OTLP_HEADERS has an entry without a key; it was ignored",
        'threadline warn: OTEL_EXPORTER_OTLP_HEADERS: "(an invalid name)" is not a valid HTTP header; it was ignored',
        'threadline warn: OTEL_EXPORTER_OTLP_HEADERS: "Content-Type" is set by the exporter for each request; it was ignored',
        'threadline warn: OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-euro" is not a valid HTTP header; it was ignored',
      ],
      app.stderr.join("\n"),
    );
    assert.ok(!app.stderr.join("\n").includes("s3cret"));
  });

  it("says once that an export batch larger than its queue was lowered to the queue's size", async () => {
    const name = "batch-over-queue";
    const app = await startFixture(
      "burst.mjs",
      env(name, {
        SPANS: "25",
        EXIT: "natural",
        OTEL_BSP_MAX_QUEUE_SIZE: "10",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "100",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: "5000",
      }),
    );
    await app.exited;
    assert.deepEqual(
      app.stderr.filter((l) => /BATCH_SIZE/.test(l)),
      [
        "threadline warn: OTEL_BSP_MAX_EXPORT_BATCH_SIZE=100 is larger than OTEL_BSP_MAX_QUEUE_SIZE; using 10",
        "threadline warn: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=5000 is larger than OTEL_BLRP_MAX_QUEUE_SIZE; using 2048",
      ],
      app.stderr.join("\n"),
    );
  });

  it("sends the endpoint's user name and password as Basic authorization over http and https alike, and never prints them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-export-basic-"));
    const server = selfSignedCertificate("collector", "IP:127.0.0.1");
    writeFileSync(join(dir, "collector.pem"), server.cert);
    const secure = await startOtlpReceiver({ tls: server });
    // Percent-encoded in the URL, sent decoded, as node:https sends them.
    const withCredentials = (url: string) =>
      url.replace("://", "://orders:p%40ss%3As3cret@");
    const expected = `Basic ${Buffer.from("orders:p@ss:s3cret").toString("base64")}`;
    const authorized: Responder = (req) =>
      req.headers.authorization === expected ? undefined : { status: 401 };
    try {
      for (const collector of [receiver, secure]) {
        const name = `basic-${new URL(collector.url).protocol.slice(0, -1)}`;
        collector.setResponder(authorized);
        const app = await startFixture(
          "burst.mjs",
          env(name, {
            SPANS: "5",
            EXIT: "natural",
            OTEL_EXPORTER_OTLP_ENDPOINT: withCredentials(collector.url),
            OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, "collector.pem"),
          }),
        );
        await app.exited;
        const of = (items: Array<{ resource: Record<string, unknown> }>) =>
          items.filter((i) => i.resource["service.name"] === name).length;
        assert.deepEqual(
          { spans: of(collector.spans), logs: of(collector.logs) },
          { spans: 5, logs: 5 },
          app.stderr.join("\n"),
        );
        assert.ok(!app.stderr.join("\n").includes("s3cret"));
      }

      // A header of the user's wins over the URL's; refused, the warnings
      // name the Collector and never the credentials.
      const sent = new Set<unknown>();
      receiver.setResponder((req) => {
        sent.add(req.headers.authorization);
        return { status: 401 };
      });
      const refused = await startFixture(
        "burst.mjs",
        env("basic-refused", {
          SPANS: "5",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_ENDPOINT: withCredentials(receiver.url),
          OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20a-token",
        }),
      );
      await refused.exited;
      assert.deepEqual([...sent], ["Bearer a-token"]);
      const said = refused.stderr.join("\n");
      assert.ok(said.includes(`${receiver.url}/v1/traces refused`), said);
      assert.ok(!/s3cret|p%40ss|p@ss|orders:|a-token/.test(said), said);
    } finally {
      receiver.setResponder(undefined);
      await secure.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [thread, on] of threads)
    it(`exports over https to a Collector with its own CA, with the client certificate it asks for${on}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "threadline-export-tls-"));
      // The files the variables name.
      const selfSigned = (name: string, san: string) => {
        const made = selfSignedCertificate(name, san);
        writeFileSync(join(dir, `${name}.key`), made.key);
        writeFileSync(join(dir, `${name}.pem`), made.cert);
        return made;
      };
      const server = selfSigned("collector", "IP:127.0.0.1");
      const client = selfSigned("orders", "DNS:orders");
      const secure = await startOtlpReceiver({
        tls: { ...server, clientCa: client.cert },
      });
      try {
        const app = await startFixture(
          "burst.mjs",
          env("tls", {
            SPANS: "5",
            EXIT: "natural",
            OTEL_EXPORTER_OTLP_ENDPOINT: secure.url,
            OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, "collector.pem"),
            OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: join(dir, "orders.pem"),
            OTEL_EXPORTER_OTLP_CLIENT_KEY: join(dir, "orders.key"),
            THREADLINE_EXPORT_THREAD: thread,
          }),
        );
        await app.exited;
        assert.deepEqual(
          {
            spans: secure.spans.length,
            logs: secure.logs.length,
          },
          { spans: 5, logs: 5 },
          app.stderr.join("\n"),
        );
        // Without the CA: told why, and what would make it trusted.
        const untrusted = await startFixture(
          "burst.mjs",
          env("tls-untrusted", {
            SPANS: "5",
            EXIT: "natural",
            OTEL_EXPORTER_OTLP_ENDPOINT: secure.url,
            THREADLINE_SHUTDOWN_TIMEOUT: "3000",
            THREADLINE_EXPORT_THREAD: thread,
          }),
        );
        await untrusted.exited;
        assert.ok(
          untrusted.stderr.some((l) =>
            /not trusted here \(OTEL_EXPORTER_OTLP_CERTIFICATE names the CA to trust\)/.test(
              l,
            ),
          ),
          untrusted.stderr.join("\n"),
        );
      } finally {
        await secure.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

  it("leaves out a client key TLS cannot use, and says so at start-up, rather than drop every export unsent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-export-tls-key-"));
    const server = selfSignedCertificate("collector", "IP:127.0.0.1");
    const client = selfSignedCertificate("orders", "DNS:orders");
    writeFileSync(join(dir, "collector.pem"), server.cert);
    writeFileSync(join(dir, "orders.pem"), client.cert);
    // The right key, but protected by a passphrase no variable gives.
    writeFileSync(
      join(dir, "orders.key"),
      createPrivateKey(client.key).export({
        type: "pkcs8",
        format: "pem",
        cipher: "aes-256-cbc",
        passphrase: "s3cret",
      }),
    );
    const secure = await startOtlpReceiver({
      tls: { ...server, clientCa: client.cert },
    });
    try {
      const app = await startFixture(
        "burst.mjs",
        env("tls-encrypted-key", {
          SPANS: "5",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_ENDPOINT: secure.url,
          OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, "collector.pem"),
          OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: join(dir, "orders.pem"),
          OTEL_EXPORTER_OTLP_CLIENT_KEY: join(dir, "orders.key"),
          THREADLINE_SHUTDOWN_TIMEOUT: "300",
        }),
      );
      await app.exited;
      const said = app.stderr.join("\n");
      // Once for the three signals, naming the variable and OpenSSL's reason.
      assert.equal(
        app.stderr.filter((l) => l.includes("OTEL_EXPORTER_OTLP_CLIENT_KEY"))
          .length,
        1,
        said,
      );
      assert.match(
        said,
        /threadline warn: OTEL_EXPORTER_OTLP_CLIENT_KEY: ".*orders\.key" cannot be used \(error:[0-9A-F]+:.*bad decrypt: the key must be PEM, without a passphrase\); no client certificate is sent/,
      );
      // The Collector asks for a certificate it is not given: the export
      // fails there, and nothing says the Collector refused data it never got.
      assert.ok(!said.includes("refused them"), said);
      assert.equal(secure.spans.length, 0);
    } finally {
      await secure.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("falls back to the general TLS variable when a signal's own names a file that cannot be read or used", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-export-tls-fallback-"));
    const server = selfSignedCertificate("collector", "IP:127.0.0.1");
    const client = selfSignedCertificate("orders", "DNS:orders");
    writeFileSync(join(dir, "collector.pem"), server.cert);
    writeFileSync(join(dir, "orders.pem"), client.cert);
    writeFileSync(join(dir, "orders.key"), client.key);
    writeFileSync(join(dir, "not-a-key.pem"), client.cert);
    const secure = await startOtlpReceiver({
      tls: { ...server, clientCa: client.cert },
    });
    try {
      const app = await startFixture(
        "burst.mjs",
        env("tls-fallback", {
          SPANS: "5",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_ENDPOINT: secure.url,
          OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, "collector.pem"),
          OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: join(dir, "orders.pem"),
          OTEL_EXPORTER_OTLP_CLIENT_KEY: join(dir, "orders.key"),
          OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: join(dir, "missing.pem"),
          OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: join(
            dir,
            "missing.pem",
          ),
          OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY: join(dir, "not-a-key.pem"),
          THREADLINE_SHUTDOWN_TIMEOUT: "1000",
        }),
      );
      await app.exited;
      const said = app.stderr.join("\n");
      assert.deepEqual(
        { spans: secure.spans.length, logs: secure.logs.length },
        { spans: 5, logs: 5 },
        said,
      );
      assert.deepEqual(
        app.stderr
          .filter((l) => l.includes("TLS") || l.includes("_CERTIFICATE"))
          .map((l) => l.replaceAll(dir, "<dir>")),
        [
          'threadline warn: OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: could not read "<dir>/missing.pem" (ENOENT); using OTEL_EXPORTER_OTLP_CERTIFICATE',
          'threadline warn: OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: could not read "<dir>/missing.pem" (ENOENT); using OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE',
        ],
      );
      assert.match(
        said,
        /OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY: ".*not-a-key\.pem" cannot be used \(.*\); using OTEL_EXPORTER_OTLP_CLIENT_KEY/,
      );
    } finally {
      await secure.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports the metric points a Collector rejected in an OTLP/JSON partial success", async () => {
    receiver.setResponder((req) =>
      req.url === "/v1/metrics"
        ? {
            status: 200,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              partialSuccess: {
                rejectedDataPoints: "3",
                errorMessage: "too old",
              },
            }),
          }
        : undefined,
    );
    try {
      const app = await startFixture(
        "burst.mjs",
        env("partial-json", {
          SPANS: "5",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        }),
      );
      await app.exited;
      assert.ok(
        app.stderr.some((l) =>
          /rejected 3 of \d+ metric points: too old/.test(l),
        ),
        app.stderr.join("\n"),
      );
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("counts no more rejected than it sent, from a protobuf partial success, with its reason", async () => {
    // partial_success { rejected_spans: 1000, error_message: "too old" }
    const reason = Buffer.from("too old");
    const body = Buffer.concat([
      Buffer.from([
        0x0a,
        5 + reason.length,
        0x08,
        0xe8,
        0x07,
        0x12,
        reason.length,
      ]),
      reason,
    ]);
    receiver.setResponder((req) =>
      req.url === "/v1/traces"
        ? {
            status: 200,
            headers: { "content-type": "application/x-protobuf" },
            body,
          }
        : undefined,
    );
    try {
      const app = await startFixture(
        "programmatic-stats.mjs",
        env("partial-proto", { SPANS: "5" }),
      );
      await app.exited;
      const stats = JSON.parse(app.stdout.at(-1)!) as {
        traces: { exported: number; dropped: { rejected: number } };
      };
      assert.equal(stats.traces.exported, 0);
      assert.equal(stats.traces.dropped.rejected, 5);
      assert.ok(
        app.stderr.some((l) => /rejected 5 of 5 spans: too old/.test(l)),
        app.stderr.join("\n"),
      );
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("says once what shutdown() dropped after retrying", async () => {
    receiver.setResponder(() => "hang");
    try {
      const app = await startFixture(
        "programmatic-stats.mjs",
        env("retried-at-shutdown", {
          SPANS: "1",
          // Still retried when shutdown() starts; its retries run out in it.
          FORCE_FLUSH: "1",
          OTEL_LOGS_EXPORTER: "none",
          OTEL_METRICS_EXPORTER: "none",
          OTEL_EXPORTER_OTLP_TIMEOUT: "300",
          THREADLINE_EXPORT_MAX_RETRY_TIME: "900",
          THREADLINE_SHUTDOWN_TIMEOUT: "5000",
        }),
      );
      await app.exited;
      const stats = JSON.parse(app.stdout.at(-1)!) as {
        traces: { dropped: { retriesExhausted: number } };
      };
      assert.equal(stats.traces.dropped.retriesExhausted, 1);
      const said = app.stderr.join("\n");
      assert.equal(
        said.split("dropped 1 spans").length - 1,
        1,
        `one loss, said once:\n${said}`,
      );
      assert.match(
        said,
        /dropped 1 spans (after retrying for 1 s|at exit: the last attempt failed)/,
      );
    } finally {
      receiver.setResponder(undefined);
    }
  });

  for (const [thread, on] of threads)
    for (const protocol of ["http/json", "http/protobuf"] as const)
      it(`says a partial success's reason as it says a refusal's, never the request's secrets (${protocol})${on}`, async () => {
        // A Collector may quote the request back, and a reason is its
        // text: a newline and a colour make a line of their own on stderr.
        const reason =
          "bad header authorization=Bearer sekrit-token-123 from sk-123456" +
          "\n\u001b[31mthreadline warn: all spans were exported\u001b[0m " +
          "x".repeat(5000);
        const text = Buffer.from(reason);
        // partial_success { rejected_spans: 3, error_message: reason }
        const varint = (n: number): number[] =>
          n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...varint(n >> 7)];
        const inner = [0x08, 3, 0x12, ...varint(text.length)];
        const proto = Buffer.concat([
          Buffer.from([0x0a, ...varint(inner.length + text.length), ...inner]),
          text,
        ]);
        receiver.setResponder((req) =>
          req.url === "/v1/traces"
            ? protocol === "http/json"
              ? {
                  status: 200,
                  headers: { "content-type": "application/json" },
                  body: JSON.stringify({
                    partialSuccess: { rejectedSpans: 3, errorMessage: reason },
                  }),
                }
              : {
                  status: 200,
                  headers: { "content-type": "application/x-protobuf" },
                  body: proto,
                }
            : undefined,
        );
        try {
          const app = await startFixture(
            "burst.mjs",
            env(`partial-secrets-${thread}`, {
              SPANS: "5",
              EXIT: "natural",
              OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
              OTEL_EXPORTER_OTLP_HEADERS:
                "authorization=Bearer sekrit-token-123,x-api-key=sk-123456",
              THREADLINE_EXPORT_THREAD: thread,
            }),
          );
          await app.exited;
          const said = app.stderr.join("\n");
          const warning = app.stderr.filter((l) => l.includes("rejected 3"));
          assert.equal(warning.length, 1, said);
          assert.match(
            warning[0]!,
            /^threadline warn: the Collector rejected 3 of 5 spans: bad header authorization=\*\*\* from \*\*\* \[31mthreadline warn: all spans were exported \[0m x+\.\.\.$/,
          );
          assert.ok(warning[0]!.length < 400, `${warning[0]!.length} chars`);
          assert.doesNotMatch(said, /sekrit|sk-123456|\u001b/);
          assert.ok(
            !app.stderr.some((l) => l.startsWith("threadline warn: all spans")),
            said,
          );
        } finally {
          receiver.setResponder(undefined);
        }
      });

  it("sends each signal to its own endpoint when per-signal endpoints are set", async () => {
    const logsReceiver = await startOtlpReceiver();
    try {
      const app = await startFixture(
        "burst.mjs",
        env("split", {
          SPANS: "3",
          EXIT: "natural",
          OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${logsReceiver.url}/v1/logs`,
        }),
      );
      await app.exited;
      assert.deepEqual(count("split"), { spans: 3, logs: 0 });
      assert.equal(logsReceiver.logs.length, 3);
      assert.equal(logsReceiver.spans.length, 0);
    } finally {
      await logsReceiver.close();
    }
  });

  it("propagates trace context but records nothing when sampling is off", async () => {
    const target = await startRecordingServer();
    try {
      const app = await startFixture(
        "sampled-out.mjs",
        env("unsampled", {
          OTEL_TRACES_SAMPLER: "always_off",
          TARGET_URL: target.url,
        }),
      );
      await app.exited;
      assert.match(
        String(target.requests[0]?.headers["traceparent"]),
        /^00-[0-9a-f]{32}-[0-9a-f]{16}-02$/,
      );
      assert.equal(count("unsampled").spans, 0);
    } finally {
      await target.close();
    }
  });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends a span given a time OTLP cannot carry with the current time instead, and the rest of its batch (${protocol})`, async () => {
      const name = `bad-times-${protocol}`;
      const from = BigInt(Date.now() - 1000) * 1_000_000n;
      const app = await startFixture(
        "bad-times.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
      const to = BigInt(Date.now() + 1000) * 1_000_000n;
      const spans = receiver.spans.filter(
        (s) => s.resource["service.name"] === name,
      );
      assert.deepEqual(
        spans.map((s) => s.name).sort(),
        [
          ...Array.from({ length: 10 }, (_, i) => `good-${i}`),
          "bad-event-time",
          "bad-end-time",
          "bad-start-time",
          "nan-hrtime-end",
          "microseconds-end",
          "before-1970",
        ].sort(),
        app.stderr.join("\n"),
      );
      for (const s of spans) {
        const times = [
          s.startTimeUnixNano,
          s.endTimeUnixNano,
          ...s.events.map((e) => e.timeUnixNano),
        ];
        assert.ok(
          times.every((t) => t >= from && t <= to),
          `${s.name}: ${times.join(", ")} not within ${from} to ${to}`,
        );
        assert.ok(s.endTimeUnixNano >= s.startTimeUnixNano, s.name);
      }
      assert.equal(
        spans.find((s) => s.name === "bad-event-time")?.events.length,
        1,
      );
      // Said once, whatever the number of such times.
      assert.equal(
        app.stderr.filter((l) => /given a time OTLP cannot carry/.test(l))
          .length,
        1,
        app.stderr.join("\n"),
      );
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`leaves out a link to no valid span context, counted as dropped, and sends its span and the rest of the batch (${protocol})`, async () => {
      // The receiver refuses a request with an id it cannot read, as the
      // Collector does: one such link lost every span sent with it.
      const name = `bad-links-${protocol}`;
      const app = await startFixture(
        "bad-links.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
      const spans = receiver.spans.filter(
        (s) => s.resource["service.name"] === name,
      );
      assert.deepEqual(
        spans.map((s) => s.name).sort(),
        [
          ...Array.from({ length: 10 }, (_, i) => `good-${i}`),
          "bad-links",
          "bad-added-links",
        ].sort(),
        `${receiver.errors.join("; ")}\n${app.stderr.join("\n")}`,
      );
      for (const n of ["bad-links", "bad-added-links"]) {
        const s = spans.find((x) => x.name === n)!;
        assert.deepEqual(
          s.links,
          [
            {
              traceId: "1af7651916cd43dd8448eb211c80319c",
              spanId: "c7ad6b7169203331",
              attributes: { why: "batch" },
            },
          ],
          n,
        );
        assert.equal(s.droppedLinksCount, 2, n);
      }
      // Said once, naming the first span.
      const said = app.stderr.filter((l) => /link to no valid span/.test(l));
      assert.equal(said.length, 1, app.stderr.join("\n"));
      assert.match(said[0]!, /span "bad-links"/);
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends a span given a status or kind OpenTelemetry has not without it, and the rest of its batch (${protocol})`, async () => {
      // A negative code was written as a varint left unfinished, a malformed
      // request the Collector refuses whole; Infinity never finished writing.
      const name = `bad-status-kind-${protocol}`;
      const app = await startFixture(
        "bad-status-kind.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      const { code } = await exitWithin(app, "the process exited");
      assert.equal(code, 0, app.stderr.join("\n"));
      assert.deepEqual(app.stdout, ["thrown: []"]);
      const spans = receiver.spans.filter(
        (s) => s.resource["service.name"] === name,
      );
      const bad = [-1, 3, 2.5, "error", Infinity, NaN];
      assert.deepEqual(
        spans.map((s) => s.name).sort(),
        [
          ...Array.from({ length: 10 }, (_, i) => `good-${i}`),
          ...bad.map((c) => `status-${String(c)}`),
          "status-undefined",
          "status-null",
          "status-2",
          ...[-1, 9, 1.5, "server", Infinity, NaN].map((k) => `kind-${k}`),
          "error-after-bad",
        ].sort(),
        `${receiver.errors.join("; ")}\n${app.stderr.join("\n")}`,
      );
      const of = (n: string) => spans.find((s) => s.name === n)!;
      // A bare number is no status either.
      for (const c of [...bad, undefined, null, 2])
        assert.equal(of(`status-${String(c)}`).status.code, 0, String(c));
      assert.deepEqual(of("error-after-bad").status, {
        code: 2,
        message: "real",
      });
      for (const s of spans) assert.equal(s.kind, 1, `${s.name} is INTERNAL`);
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends what a log line nests deeper than OTLP maps go as its JSON text (${protocol})`, async () => {
      const name = `deep-log-${protocol}`;
      const app = await startFixture(
        "deep-log.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
      const [log] = receiver.logs.filter(
        (l) => l.resource["service.name"] === name,
      );
      assert.equal(log?.body, "deep", app.stderr.join("\n"));
      // Maps down to the ninth level, whose value is the rest as JSON text.
      let got = log.attributes["payload"];
      let sent: unknown = { leaf: "customer-42", n: 7 };
      for (let i = 12; i >= 1; i--) sent = { [`l${i}`]: sent };
      for (let i = 1; i <= 9; i++) {
        got = (got as Record<string, unknown>)[`l${i}`];
        sent = (sent as Record<string, unknown>)[`l${i}`];
      }
      assert.equal(typeof got, "string", JSON.stringify(log.attributes));
      assert.deepEqual(JSON.parse(got as string), sent);
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends a log line of megabytes with its fields, an object too large to parse at export as its JSON text, and one nested thousands of levels deep (${protocol})`, async () => {
      const name = `large-log-${protocol}`;
      const items = 40_000;
      // Deeper than a call per level can go, not too deep for pino.
      const depth = 3000;
      const app = await runFixture(
        "large-log.mjs",
        env(name, {
          ITEMS: String(items),
          DEPTH: String(depth),
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        }),
      );
      const logs = ofService(receiver.logs, name);
      assert.deepEqual(
        logs.map((l) => l.body),
        ["large", "ordinary", "deep"],
        app.stderr.join("\n"),
      );
      const [large, ordinary, deep] = logs;
      const attributes = large!.attributes;
      assert.equal(attributes["customer.id"], "c-42");
      assert.match(large!.traceId ?? "", /^[0-9a-f]{32}$/);
      assert.equal(large!.traceId, ordinary!.traceId);
      // The small objects beside it are maps, and the error is read.
      assert.deepEqual(attributes["order"], { id: 7, lines: 3 });
      assert.equal(attributes["exception.type"], "Error");
      assert.equal(attributes["exception.message"], "boom");
      // The body, all of it, as the text pino wrote.
      const body = attributes["body"];
      assert.equal(typeof body, "string");
      assert.deepEqual(JSON.parse(body as string), {
        items: Array.from({ length: items }, (_, i) => ({
          id: i,
          name: `product "${i}"`,
          price: i * 3,
        })),
      });
      assert.deepEqual(ordinary!.attributes["after"], true);
      // Maps as deep as OTLP's go, then the rest as its JSON text.
      let nested: unknown = deep!.attributes["body"];
      let levels = 0;
      while (Array.isArray(nested)) {
        nested = nested[0];
        levels++;
      }
      assert.ok(levels > 0 && levels < 20, String(levels));
      assert.equal(
        nested,
        `${"[".repeat(depth - levels)}"z"${"]".repeat(depth - levels)}`,
      );
    });

  it("keeps the customer a line was logged for, whatever customer.id the application logs with it", async () => {
    const name = "claimed-customer";
    const app = await runFixture("claimed-customer.mjs", env(name));
    // On stdout too, where a reader of the JSON keeps a key's last value.
    const claimed = app.stdout
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l["msg"] === "claimed");
    assert.equal(claimed?.["customer.id"], "c-42", JSON.stringify(claimed));
    assert.equal(claimed?.["log.customer.id"], "victim");
    assert.equal(claimed?.["order"], 7);
    assert.deepEqual(
      ofService(receiver.logs, name).map((l) => [
        l.body,
        l.attributes["customer.id"],
        l.attributes["log.customer.id"],
      ]),
      [
        ["claimed", "c-42", "victim"],
        ["bound", "c-42", "victim"],
        ["own", "c-9", undefined],
      ],
    );
  });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`sends a log line's field named __proto__ as an attribute of that name (${protocol})`, async () => {
      const name = `proto-log-${protocol}`;
      const app = await startFixture(
        "proto-log.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
      const logs = receiver.logs.filter(
        (l) => l.resource["service.name"] === name,
      );
      const record = (body: string) => {
        const found = logs.find((l) => l.body === body);
        assert.ok(found, `no record "${body}"`);
        return found.attributes;
      };
      // Own properties, as the receiver reads each key it was sent.
      const own = (o: unknown) =>
        Object.fromEntries(
          Object.keys(o as object).map((k) => [
            k,
            (o as Record<string, unknown>)[k],
          ]),
        );
      const top = record("top-level proto");
      assert.deepEqual(Object.keys(top), ["__proto__", "user"]);
      assert.deepEqual(own(top["__proto__"]), { injected: "yes", level: 60 });
      assert.equal(top["user"], "u1");
      const nested = record("nested proto")["body"];
      assert.deepEqual(Object.keys(nested as object), ["__proto__", "a"]);
      assert.deepEqual(own((nested as Record<string, unknown>)["__proto__"]), {
        x: 1,
      });
      const str = record("proto string");
      assert.deepEqual(Object.keys(str), ["__proto__", "b"]);
      assert.equal(str["__proto__"], "str");
    });

  it('sends a sum that overflowed to Infinity in OTLP/JSON as "Infinity", and the runtime metrics of each export after it', async () => {
    // The receiver refuses a metrics request with a double it cannot
    // read (a null), as the Collector does.
    const name = "counter-overflow";
    const app = await startFixture(
      "counter-overflow.mjs",
      env(name, {
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_METRIC_EXPORT_INTERVAL: "200",
        RUN_MS: "1200",
      }),
    );
    assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
    const ours = receiver.metrics.filter(
      (m) => m.resource["service.name"] === name,
    );
    const overflow = ours.filter((m) => m.name === "overflow.total");
    const memory = ours.filter((m) => m.name === "process.memory.usage");
    assert.ok(
      overflow.length >= 3 && memory.length === overflow.length,
      `${overflow.length} exports of the counter, ${memory.length} of the memory usage arrived: ${receiver.errors.join("; ")}`,
    );
    assert.deepEqual(
      overflow.map((m) => m.points.map((p) => p.value)),
      overflow.map(() => [Infinity]),
    );
  });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`exports every metric beside an instrument made with a description or unit that is no string, makes one of a name that is not an instrument name record nothing, and names spans given no string (${protocol})`, async () => {
      // The receiver refuses a request with a name, description or unit
      // that is no string, as the Collector does; protobuf could not even
      // encode one, and every export of the process failed.
      const name = `odd-instruments-${protocol}`;
      const app = await startFixture(
        "odd-instruments.mjs",
        env(name, {
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_METRIC_EXPORT_INTERVAL: "200",
          RUN_MS: "700",
        }),
      );
      assert.equal((await app.exited).code, 0, app.stderr.join("\n"));
      const said = `${receiver.errors.join("; ")}\n${app.stderr.join("\n")}`;
      const ours = receiver.metrics.filter(
        (m) => m.resource["service.name"] === name && m.scope.name === "odd",
      );
      assert.deepEqual(
        [...new Set(ours.map((m) => m.name))].sort(),
        ["cache.hits", "cache.latency", "orders.placed"],
        said,
      );
      const orders = ours.filter((m) => m.name === "orders.placed");
      const hits = ours.filter((m) => m.name === "cache.hits");
      // Each export carries both counters, the last at exit included.
      assert.ok(orders.length >= 2, said);
      assert.deepEqual(
        hits.map((m) => m.points[0]?.value),
        orders.map((m) => 2 * m.points[0]!.value!),
      );
      const described = (n: string) => {
        const m = ours.find((x) => x.name === n)!;
        return [m.description, m.unit];
      };
      assert.deepEqual(described("orders.placed"), ["orders placed", ""]);
      assert.deepEqual(described("cache.hits"), ["", ""]);
      assert.deepEqual(described("cache.latency"), ["", "ms"]);
      assert.deepEqual(
        receiver.spans
          .filter((s) => s.resource["service.name"] === name)
          .map((s) => s.name)
          .sort(),
        ["[object Object]", "good", "undefined"],
        said,
      );
      const warned = (re: RegExp) =>
        app.stderr.filter((l) => re.test(l)).length;
      assert.equal(
        warned(/metric name of type undefined is not a valid instrument name/),
        1,
        said,
      );
      assert.equal(warned(/metric name "bad name!" is not a valid/), 1, said);
      assert.equal(warned(/cache\.hits was given a description/), 1, said);
      assert.equal(warned(/cache\.hits was given a unit/), 1, said);
      assert.equal(warned(/cache\.latency was given a description/), 1, said);
      assert.equal(warned(/a span was given a name that is not a string/), 1);
      assert.equal(warned(/could not encode/), 0, said);
    });

  for (const protocol of ["http/protobuf", "http/json"] as const)
    it(`exports the spans and metrics of a tracer and meter got without a name, or with numbers for name and version, as scopes named by their text (${protocol})`, async () => {
      // The receiver refuses a request with a scope name that is no
      // string, as the Collector does; protobuf could not encode one,
      // and the flush at exit threw.
      const name = `unnamed-scopes-${protocol}`;
      const app = await startFixture(
        "unnamed-scopes.mjs",
        env(name, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }),
      );
      const said = () =>
        `${receiver.errors.join("; ")}\n${app.stderr.join("\n")}`;
      assert.equal((await app.exited).code, 0, said());
      assert.deepEqual(
        receiver.spans
          .filter((s) => s.resource["service.name"] === name)
          .map((s) => [s.name, s.scope.name, s.scope.version])
          .sort(),
        [
          ["named", "named", ""],
          ["numbered", "7", "2"],
          ["unnamed", "", ""],
        ],
        said(),
      );
      assert.deepEqual(
        receiver.metrics
          .filter(
            (m) =>
              m.resource["service.name"] === name && m.name.endsWith(".total"),
          )
          .map((m) => [
            m.name,
            m.scope.name,
            m.scope.version,
            m.scope.schemaUrl,
          ])
          .sort(),
        [
          ["named.total", "named", "", ""],
          ["numbered.total", "7", "2", "3"],
          ["unnamed.total", "", "", ""],
        ],
        said(),
      );
    });

  it("exports resource attributes from OTEL_RESOURCE_ATTRIBUTES", async () => {
    const app = await startFixture(
      "burst.mjs",
      env("resource", {
        SPANS: "1",
        EXIT: "natural",
        OTEL_RESOURCE_ATTRIBUTES:
          "deployment.environment.name=staging,team=payments%20core",
      }),
    );
    await app.exited;
    const span = await waitFor(
      () =>
        receiver.spans.find((s) => s.resource["service.name"] === "resource"),
      { what: "span" },
    );
    assert.equal(span.resource["deployment.environment.name"], "staging");
    assert.equal(span.resource["team"], "payments core");
    assert.equal(span.resource["telemetry.sdk.name"], "threadline");
  });
});
