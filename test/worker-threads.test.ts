// Threadline and threads: the application's worker threads, which inherit
// its --import and NODE_OPTIONS, and Threadline's own export worker.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

describe("worker threads", () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  const env = (name: string, extra: Record<string, string> = {}) => ({
    OTEL_SERVICE_NAME: name,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    OTEL_BLRP_SCHEDULE_DELAY: "50",
    OTEL_METRIC_EXPORT_INTERVAL: "200",
    ...extra,
  });
  /** The service.instance.id of everything a service sent. */
  const instances = (name: string) =>
    new Set(
      [...receiver.spans, ...receiver.logs, ...receiver.metrics]
        .filter((x) => x.resource["service.name"] === name)
        .map((x) => x.resource["service.instance.id"]),
    );

  it("starts no Threadline in the export worker when NODE_OPTIONS preloads it", async () => {
    const name = "node-options-export-worker";
    const app = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      env: env(name, {
        NODE_OPTIONS:
          "--require ./preload-probe.cjs --import @threadline/node/register",
        THREADLINE_EXPORT_THREAD: "worker",
      }),
    });
    try {
      assert.equal((await fetch(`${app.url}/hello`)).status, 200);
      await waitFor(
        () =>
          receiver.spans.some((s) => s.resource["service.name"] === name) &&
          receiver.metrics.filter((m) => m.resource["service.name"] === name)
            .length > 20,
        { what: "spans and a few metric exports" },
      );
    } finally {
      await app.stop();
    }
    // Threadline in the export worker started an export worker of its
    // own, which did the same, one thread after another.
    assert.deepEqual(
      app.stderr.filter((l) => l.startsWith("preloaded in thread")),
      ["preloaded in thread 0"],
    );
    assert.equal(instances(name).size, 1, "one SDK exported");
  });

  it("reports a worker thread's spans, logs and metrics as the process's one instance, the process's metrics once", async () => {
    const name = "worker-job";
    const app = await startService({
      entry: "worker-job.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: env(name),
    });
    const ofService = <T extends { resource: Record<string, unknown> }>(
      list: T[],
    ) => list.filter((x) => x.resource["service.name"] === name);
    try {
      const job = (await (await fetch(`${app.url}/job`)).json()) as {
        threadId: number;
        traceId: string;
      };
      assert.ok(job.threadId > 0, "the job ran on a worker thread");
      const resize = await waitFor(
        () => ofService(receiver.spans).find((s) => s.name === "resize"),
        { what: "the worker's span" },
      );
      assert.equal(resize.traceId, job.traceId);
      const request = await waitFor(
        () => ofService(receiver.spans).find((s) => s.kind === 2),
        { what: "the main thread's server span" },
      );
      assert.equal(
        resize.resource["service.instance.id"],
        request.resource["service.instance.id"],
        "one instance",
      );
      const log = await waitFor(
        () => ofService(receiver.logs).find((l) => l.traceId === job.traceId),
        { what: "the worker's log record, correlated" },
      );
      assert.equal(log.body, "resized");
      const onThread = (metric: string, thread: number | undefined) =>
        ofService(receiver.metrics).some(
          (m) =>
            m.name === metric &&
            m.points.some((p) => p.attributes["thread.id"] === thread),
        );
      // Each thread's own series: the worker's labelled with its thread.
      await waitFor(
        () =>
          onThread("v8js.memory.heap.used", undefined) &&
          onThread("v8js.memory.heap.used", job.threadId) &&
          onThread("nodejs.eventloop.utilization", job.threadId) &&
          onThread("otel.sdk.span.ended", job.threadId) &&
          onThread("process.memory.usage", undefined),
        { what: "both threads' metrics" },
      );
    } finally {
      await app.stop();
    }
    assert.equal(instances(name).size, 1, "one instance");
    // The process's memory and CPU time, from the main thread alone.
    for (const m of ofService(receiver.metrics))
      if (m.name.startsWith("process."))
        for (const p of m.points)
          assert.equal(p.attributes["thread.id"], undefined, m.name);
    assert.deepEqual(
      app.stderr.filter((l) => l.includes("threadline")),
      [],
      "no warnings",
    );
  });

  // A worker's batches wait the whole schedule delay: only the end can send them.
  const atEnd = (name: string, extra: Record<string, string> = {}) =>
    env(name, {
      OTEL_BSP_SCHEDULE_DELAY: "60000",
      OTEL_BLRP_SCHEDULE_DELAY: "60000",
      SPANS: "300",
      ...extra,
    });
  const count = (name: string) => ({
    spans: receiver.spans.filter((s) => s.resource["service.name"] === name)
      .length,
    logs: receiver.logs.filter((l) => l.resource["service.name"] === name)
      .length,
  });
  /** Runs worker-exit.mjs to its end, SIGTERM sent once its worker is done. */
  const runToEnd = async (env: Record<string, string>) => {
    const app = await startService({
      entry: "worker-exit.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env,
      ready: env["EXIT"] === "signal" ? /listening on (\d+)/ : false,
    });
    const end = await Promise.race([
      env["EXIT"] === "signal" ? app.stop("SIGTERM") : app.exited,
      // Past its shutdown timeout, which is the process's to keep.
      new Promise<"alive">((r) =>
        setTimeout(
          () => r("alive"),
          15_000 + Number(env["THREADLINE_SHUTDOWN_TIMEOUT"] ?? 0),
        ).unref(),
      ),
    ]);
    if (end === "alive") await app.stop("SIGKILL");
    assert.notEqual(end, "alive", "the process ended");
    return { app, end: end as Awaited<typeof app.exited> };
  };

  const ends = {
    signal: "SIGTERM",
    "process-exit": "process.exit() in the main thread",
    natural: "a natural exit, the worker still running",
    terminate: "worker.terminate() ended it",
  } as const;
  for (const [exit, what] of Object.entries(ends))
    it(`sends the spans and log lines a worker thread ended just before ${what}`, async () => {
      const name = `worker-end-${exit}`;
      const { end } = await runToEnd(atEnd(name, { EXIT: exit }));
      assert.deepEqual(
        end,
        exit === "signal"
          ? { code: null, signal: "SIGTERM" }
          : { code: 0, signal: null },
      );
      assert.deepEqual(count(name), { spans: 300, logs: 300 });
    });

  for (const [exit, what] of Object.entries(ends))
    it(`sends a worker thread's span still open at its end (${what}), marked unfinished`, async () => {
      const name = `worker-open-${exit}`;
      await runToEnd(atEnd(name, { EXIT: exit, OPEN: "1", SPANS: "3" }));
      const open = receiver.spans.filter(
        (s) =>
          s.resource["service.name"] === name && s.name === "job in progress",
      );
      assert.equal(open.length, 1);
      assert.equal(
        open[0]!.attributes["threadline.unfinished"],
        exit === "terminate" ? "terminate" : "exit",
      );
      assert.equal(open[0]!.status.code, 2);
    });

  it("sends each span and log line a worker thread ended just before SIGTERM or a natural exit once", async () => {
    // With no watch list to read (a Collector on another host), the
    // worker's Threadline has sent nothing before the end, and its exporter
    // was made by the end's own flush. That one started the requests it
    // then handed over, and the worker's thread, running on, sent them
    // too: the batches arrived twice in about two ends in five (one in
    // four natural exits). So the end is repeated, one service at a time:
    // several ending side by side showed it far less often.
    const ends = 12;
    const twice: string[] = [];
    for (let run = 0; run < ends; run++) {
      const exit = run % 3 === 2 ? "natural" : "signal";
      const name = `worker-once-${exit}-${run}`;
      const { end } = await runToEnd(
        atEnd(name, { EXIT: exit, THREADLINE_WATCH_URL: "none" }),
      );
      assert.deepEqual(
        end,
        exit === "signal"
          ? { code: null, signal: "SIGTERM" }
          : { code: 0, signal: null },
      );
      // What an ended service wrote has been read once its connections closed.
      await waitFor(() => receiver.openConnections === 0, {
        what: "the service's connections to close",
      });
      const spans = receiver.spans.filter(
        (s) => s.resource["service.name"] === name,
      );
      const logs = receiver.logs.filter(
        (l) => l.resource["service.name"] === name,
      );
      assert.equal(new Set(spans.map((s) => s.spanId)).size, 300, name);
      assert.equal(new Set(logs.map((l) => l.attributes["i"])).size, 300);
      if (spans.length !== 300 || logs.length !== 300)
        twice.push(`${name}: ${spans.length} spans, ${logs.length} logs`);
    }
    assert.deepEqual(twice, [], "each span and log line exactly once");
  });

  it("sends a worker thread's batches when the main thread's shutdown() is followed by process.exit()", async () => {
    const name = "worker-end-shutdown";
    const app = await startService({
      entry: "worker-exit.mjs",
      cwd: fixtures,
      env: atEnd(name, { EXIT: "shutdown" }),
      ready: false,
    });
    assert.equal((await app.exited).code, 0);
    assert.deepEqual(count(name), { spans: 300, logs: 300 });
  });

  it("sends a worker thread's batches at process.exit() with export on a worker thread of its own", async () => {
    const name = "worker-end-export-worker";
    await runToEnd(
      atEnd(name, { EXIT: "process-exit", THREADLINE_EXPORT_THREAD: "worker" }),
    );
    assert.deepEqual(count(name), { spans: 300, logs: 300 });
  });

  it("still exits promptly with worker threads to flush when the Collector hangs", async () => {
    receiver.setResponder(() => "hang");
    try {
      for (const exit of Object.keys(ends)) {
        const { end } = await runToEnd(
          atEnd("worker-end-hang", {
            EXIT: exit,
            THREADLINE_SHUTDOWN_TIMEOUT: "300",
          }),
        );
        assert.equal(end.code ?? end.signal, exit === "signal" ? "SIGTERM" : 0);
      }
    } finally {
      receiver.setResponder(undefined);
    }
  });

  it("does not wait at exit or worker.terminate() for a worker thread whose event loop is held", async () => {
    for (const exit of Object.keys(ends)) {
      const started = Date.now();
      const { end } = await runToEnd(
        atEnd("worker-end-held", {
          EXIT: exit,
          BUSY: "1",
          THREADLINE_SHUTDOWN_TIMEOUT: "20000",
        }),
      );
      assert.equal(end.code ?? end.signal, exit === "signal" ? "SIGTERM" : 0);
      // The held worker cannot send anything: waiting out the 20 s
      // deadline for it would only hold the process's end.
      assert.ok(Date.now() - started < 10_000, exit);
    }
  });

  it("sends the batches of many worker threads asked at once, however long the last takes to answer", async () => {
    // 32 threads woken together on a small machine: the last ones pick the
    // request up well after the first. The deadline is well past the
    // default 3 s, which a machine busy with the rest of the suite can
    // spend on starting the threads alone; a quiet one ends in a second or
    // two, as soon as the last has answered.
    const terminated = await runToEnd(
      atEnd("worker-end-many-terminate", {
        EXIT: "terminate",
        WORKERS: "32",
        SPANS: "10",
        THREADLINE_SHUTDOWN_TIMEOUT: "30000",
      }),
    );
    assert.equal(terminated.end.code, 0);
    assert.deepEqual(count("worker-end-many-terminate"), {
      spans: 320,
      logs: 320,
    });
    const exited = await runToEnd(
      atEnd("worker-end-many-exit", {
        EXIT: "process-exit",
        WORKERS: "24",
        SPANS: "10",
        THREADLINE_SHUTDOWN_TIMEOUT: "30000",
      }),
    );
    assert.equal(exited.end.code, 0);
    assert.deepEqual(count("worker-end-many-exit"), { spans: 240, logs: 240 });
  });

  // Piscina's default (atomics: 'sync') blocks an idle worker's thread in
  // Atomics.wait between tasks: its event loop turns only during a task.
  for (const [end, what] of [
    ["exit", "process.exit()"],
    ["force-flush", "forceFlush()"],
  ] as const)
    it(`does not wait out the deadline at ${what} for a pool worker that took the request during a task, then went back to Atomics.wait`, async () => {
      const name = `worker-pool-${end}`;
      // A slow Collector: the task is over before it answers.
      receiver.setResponder(() => ({ delayMs: 400 }));
      try {
        const app = await startService({
          entry: "worker-pool.mjs",
          cwd: fixtures,
          env: env(name, {
            OTEL_BSP_SCHEDULE_DELAY: "60000",
            OTEL_BLRP_SCHEDULE_DELAY: "60000",
            // Metric exports every 200 ms would keep a 400 ms Collector
            // busy past any deadline, workers or not.
            OTEL_METRICS_EXPORTER: "none",
            END: end,
            SPANS: "50",
            TASK_MS: "300",
            THREADLINE_SHUTDOWN_TIMEOUT: "8000",
          }),
          ready: false,
        });
        assert.equal((await app.exited).code, 0);
        const took = (what: string) =>
          Number(
            app.stdout
              .find((l) => l.startsWith(`${what} took`))
              ?.match(/(\d+) ms/)?.[1],
          );
        if (end === "exit") {
          // The worker sent its batch at once, blocking its own thread.
          assert.ok(took("exit") < 4000, `exit took ${took("exit")} ms`);
          await waitFor(() => count(name).spans === 100, {
            what: "both tasks' spans",
          });
          assert.deepEqual(count(name), { spans: 100, logs: 100 });
        } else {
          assert.ok(
            took("forceFlush") < 4000,
            `forceFlush took ${took("forceFlush")} ms`,
          );
          assert.ok(took("exit") < 4000, `exit took ${took("exit")} ms`);
        }
      } finally {
        receiver.setResponder(undefined);
      }
    });

  it("has the workers a terminated worker started flush, and forgets them: they ended with it", async () => {
    const name = "worker-nested";
    const app = await startService({
      entry: "worker-nested.mjs",
      cwd: fixtures,
      env: env(name, {
        OTEL_BSP_SCHEDULE_DELAY: "60000",
        PAIRS: "3",
        SPANS: "10",
      }),
      ready: false,
    });
    assert.equal((await app.exited).code, 0);
    assert.equal(count(name).spans, 30);
    // Waiting for the ended workers to answer would take 250 ms each time.
    const { forceFlush } = JSON.parse(app.stdout.at(-1)!) as {
      forceFlush: number[];
    };
    for (const ms of forceFlush) assert.ok(ms < 90, String(forceFlush));
  });

  it("serves the health and Prometheus endpoints and raises alarms from the main thread alone", async () => {
    const name = "worker-endpoints";
    const dir = mkdtempSync(join(tmpdir(), "threadline-threads-"));
    const rules = join(dir, "alarms.json");
    writeFileSync(
      rules,
      JSON.stringify({
        rules: [
          {
            name: "event_loop_delay",
            kind: "event_loop_delay",
            percentile: 99,
            aboveSeconds: 0.3,
            for: "0s",
            severity: "major",
          },
        ],
      }),
    );
    const webhook = await startRecordingServer();
    const [healthPort, prometheusPort] = [await freePort(), await freePort()];
    const app = await startService({
      entry: "worker-job.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: env(name, {
        THREADLINE_HEALTH_PORT: String(healthPort),
        OTEL_METRICS_EXPORTER: "otlp,prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT: String(prometheusPort),
        THREADLINE_ALARMS_FILE: rules,
        THREADLINE_ALARMS_INTERVAL: "250",
        THREADLINE_ALARM_WEBHOOK_URL: `${webhook.url}/alarms`,
      }),
    });
    const raises = () =>
      webhook.requests
        .map((r) => JSON.parse(r.body) as { action: string })
        .filter((e) => e.action === "raise");
    try {
      // A job that holds the worker's loop: the service's is free.
      const job = (await (await fetch(`${app.url}/job?hold=900`)).json()) as {
        threadId: number;
      };
      assert.ok(job.threadId > 0);
      // Then the main thread's loop, which the alarm is about.
      await (await fetch(`${app.url}/block?ms=900`)).text();
      await waitFor(() => raises().length > 0, { what: "the alarm raised" });
      assert.equal(
        (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status,
        200,
      );
      const scraped = await (
        await fetch(`http://127.0.0.1:${prometheusPort}/metrics`)
      ).text();
      assert.match(scraped, /^process_memory_usage_bytes/m);
    } finally {
      await app.stop();
      await webhook.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(raises().length, 1, "the worker's held loop raised nothing");
    assert.deepEqual(
      // The alarm is cleared as the service stops, which it says too.
      app.stderr.filter(
        (l) => l.includes("threadline") && !/alarm (raised|cleared)/.test(l),
      ),
      [],
      "no warnings (no port taken twice)",
    );
  });
});
