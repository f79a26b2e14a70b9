// The standard metric settings as a backend sees them.
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: with delta each export
// carries what happened since the one before, the points of a series follow
// on from each other, and the Prometheus endpoint next to it stays
// cumulative. OTEL_METRICS_EXEMPLAR_FILTER: which requests are kept as
// exemplars of the request histogram.
import assert from "node:assert/strict";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startOtlpReceiver,
  startService,
  stopTestServers,
  waitFor,
  type OtlpReceiver,
  type ReceivedMetric,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

after(() => stopTestServers());

async function startHello(
  receiver: OtlpReceiver,
  serviceName: string,
  preference: string,
  prometheusPort?: number,
  env: Record<string, string> = {},
) {
  return startService({
    entry: "hello.cjs",
    cwd: fixtures,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: serviceName,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: preference,
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      ...env,
      ...(prometheusPort === undefined
        ? {}
        : {
            OTEL_METRICS_EXPORTER: "otlp,prometheus",
            OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
            OTEL_EXPORTER_PROMETHEUS_PORT: String(prometheusPort),
          }),
    },
  });
}

const from = (receiver: OtlpReceiver, service: string, name: string) =>
  receiver.metrics.filter(
    (m) => m.name === name && m.resource["service.name"] === service,
  );

/** Requests counted by every export of the request histogram so far. */
const requestsSeen = (metrics: readonly ReceivedMetric[]) =>
  metrics.reduce(
    (n, m) => n + m.points.reduce((k, p) => k + (p.count ?? 0), 0),
    0,
  );

it("exports counters and histograms as deltas that add up, and keeps the scrape endpoint cumulative", async () => {
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const svc = await startHello(receiver, "delta", "delta", port);
  try {
    for (let i = 0; i < 3; i++) await (await fetch(svc.url)).text();
    await waitFor(
      () =>
        requestsSeen(
          from(receiver, "delta", "http.server.request.duration"),
        ) === 3,
      { what: "three requests counted across the delta exports" },
    );
    for (let i = 0; i < 2; i++) await (await fetch(svc.url)).text();
    await waitFor(
      () =>
        requestsSeen(
          from(receiver, "delta", "http.server.request.duration"),
        ) === 5,
      { what: "five requests counted across the delta exports" },
    );
    // Quiet exports after that add nothing: no point repeats a request.
    const exportsBefore = from(receiver, "delta", "process.cpu.time").length;
    await waitFor(
      () =>
        from(receiver, "delta", "process.cpu.time").length >= exportsBefore + 3,
      { what: "three more exports" },
    );
    const requests = from(receiver, "delta", "http.server.request.duration");
    assert.equal(requestsSeen(requests), 5);
    for (const m of requests) {
      assert.equal(m.temporality, "delta");
      for (const p of m.points) {
        assert.ok(p.count! > 0, "a series with no request is left out");
        assert.equal(
          p.bucketCounts!.reduce((a, b) => a + b, 0),
          p.count,
        );
      }
    }
    // One series (GET, 200): each delta starts where the one before ended.
    const points = requests.flatMap((m) => m.points);
    assert.ok(points.length >= 2, "the requests came in two exports or more");
    for (let i = 1; i < points.length; i++)
      assert.equal(points[i]!.startTimeUnixNano, points[i - 1]!.timeUnixNano);
    // An observable counter is delta too; an up-down counter and a gauge
    // keep what they are.
    const cpu = from(receiver, "delta", "process.cpu.time");
    assert.ok(cpu.every((m) => m.temporality === "delta"));
    const cpuSeries = cpu.map((m) =>
      m.points.find((p) => p.attributes["cpu.mode"] === "user")!,
    );
    assert.ok(cpuSeries.every((p) => p.value! >= 0));
    for (let i = 1; i < cpuSeries.length; i++)
      assert.equal(
        cpuSeries[i]!.startTimeUnixNano,
        cpuSeries[i - 1]!.timeUnixNano,
      );
    const rss = from(receiver, "delta", "process.memory.usage");
    assert.ok(rss.length > 0);
    assert.ok(rss.every((m) => m.temporality === "cumulative"));
    assert.ok(rss.every((m) => m.points[0]!.value! > 1e6));
    // The scrape endpoint counts every request since the start.
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(
      text,
      /^http_server_request_duration_seconds_count\{[^}]*\} 5$/m,
    );
    assert.deepEqual(
      svc.stderr.filter((l) => /TEMPORALITY/.test(l)),
      [],
    );
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("gives each delta histogram point the min and max of its own interval", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "halving-histogram.mjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "halving",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "delta",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      COUNT: "8",
      TICK_MS: "150",
    },
  });
  try {
    await waitFor(
      () => requestsSeen(from(receiver, "halving", "halving.duration")) === 8,
      { what: "the eight measurements across the delta exports" },
    );
    const points = from(receiver, "halving", "halving.duration").flatMap(
      (m) => m.points,
    );
    assert.ok(points.length >= 3, "the measurements came in several exports");
    // 0.5, 0.25, …: each point holds a run of them, its first the largest.
    let before = 0;
    for (const p of points) {
      assert.deepEqual(
        [p.min, p.max],
        [0.5 / 2 ** (before + p.count! - 1), 0.5 / 2 ** before],
        `the point of measurements ${before + 1} to ${before + p.count!}`,
      );
      before += p.count!;
    }
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("with lowmemory, sends synchronous instruments as deltas and observable counters cumulative", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startHello(receiver, "lowmemory", "lowmemory");
  try {
    for (let i = 0; i < 2; i++) await (await fetch(svc.url)).text();
    await waitFor(
      () =>
        requestsSeen(
          from(receiver, "lowmemory", "http.server.request.duration"),
        ) === 2 && from(receiver, "lowmemory", "process.cpu.time").length >= 2,
      { what: "two requests and two CPU exports" },
    );
    const requests = from(
      receiver,
      "lowmemory",
      "http.server.request.duration",
    );
    assert.ok(requests.every((m) => m.temporality === "delta"));
    const cpu = from(receiver, "lowmemory", "process.cpu.time");
    assert.ok(cpu.every((m) => m.temporality === "cumulative"));
    // Cumulative: every export of the series starts at the same time.
    const starts = new Set(
      cpu.map(
        (m) =>
          m.points.find((p) => p.attributes["cpu.mode"] === "user")!
            .startTimeUnixNano,
      ),
    );
    assert.equal(starts.size, 1);
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("starts the process's CPU time at the process's start, cumulative and delta", async () => {
  const receiver = await startOtlpReceiver();
  const run = async (preference: string) => {
    const name = `busy-start-${preference}`;
    const svc = await startService({
      entry: "busy-start.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: preference,
        OTEL_METRIC_EXPORT_INTERVAL: "200",
        CPU_MS: "300",
      },
    });
    try {
      const first = await waitFor(
        () => from(receiver, name, "process.cpu.time")[0],
        {
          what: `${name}'s first CPU time`,
        },
      );
      const origin = Number(
        /time origin ([\d.]+)/.exec(svc.stdout.join("\n"))?.[1],
      );
      assert.equal(first.temporality, preference);
      const user = first.points.find(
        (p) => p.attributes["cpu.mode"] === "user",
      )!;
      assert.ok(user.value! >= 0.25, `${user.value} s of CPU`);
      for (const p of first.points) {
        const startMs = Number(p.startTimeUnixNano / 1000n) / 1000;
        const windowS = Number(p.timeUnixNano - p.startTimeUnixNano) / 1e9;
        // What it counts began with the process: no earlier start, and no
        // window shorter than the CPU time it reports.
        assert.ok(
          startMs <= origin + 0.001,
          `${name}: starts ${startMs - origin} ms after the process`,
        );
        assert.ok(
          windowS >= p.value!,
          `${name}: ${p.value} s of ${String(p.attributes["cpu.mode"])} CPU in ${windowS} s`,
        );
      }
    } finally {
      await svc.stop();
    }
  };
  try {
    await run("cumulative");
    await run("delta");
  } finally {
    await receiver.close();
  }
});

it("keeps requests in sampled traces as exemplars, all of them, or none, as OTEL_METRICS_EXEMPLAR_FILTER says", async () => {
  const receiver = await startOtlpReceiver();
  const run = async (filter: string | undefined) => {
    const name = `exemplars-${filter ?? "default"}`;
    const svc = await startHello(
      receiver,
      name,
      "cumulative",
      undefined,
      filter === undefined
        ? {}
        : {
            OTEL_METRICS_EXEMPLAR_FILTER: filter,
            // Nothing sampled: only always_on keeps an exemplar.
            ...(filter === "always_on"
              ? { OTEL_TRACES_SAMPLER: "always_off" }
              : {}),
          },
    );
    try {
      await (await fetch(svc.url)).text();
      const m = await waitFor(
        () =>
          from(receiver, name, "http.server.request.duration").find(
            (x) => requestsSeen([x]) === 1,
          ),
        { what: `the request counted by ${name}` },
      );
      return { exemplars: m.points[0]!.exemplars, stderr: svc.stderr };
    } finally {
      await svc.stop();
    }
  };
  try {
    const sampled = await run(undefined);
    assert.equal(sampled.exemplars.length, 1);
    assert.match(sampled.exemplars[0]!.traceId, /^[0-9a-f]{32}$/);
    const server = receiver.spans.find(
      (s) => s.resource["service.name"] === "exemplars-default" && s.kind === 2,
    );
    assert.equal(sampled.exemplars[0]!.traceId, server?.traceId);
    assert.deepEqual((await run("always_off")).exemplars, []);
    const all = await run("always_on");
    assert.equal(all.exemplars.length, 1);
    assert.equal(all.exemplars[0]!.traceId, "", "no trace was sampled");
    assert.deepEqual(
      all.stderr.filter((l) => /EXEMPLAR/.test(l)),
      [],
    );
  } finally {
    await receiver.close();
  }
});
