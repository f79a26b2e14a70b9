// The optional Prometheus scrape endpoint of an instrumented service, read
// the way Prometheus reads it; the scrape itself is not traced.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  freePort,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

it("serves request and runtime metrics in the Prometheus text format, next to OTLP", async () => {
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const svc = await startService({
    entry: "hello.cjs",
    cwd: fixtures,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "hello",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "otlp,prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
      OTEL_METRIC_EXPORT_INTERVAL: "300",
      THREADLINE_HOST_METRICS: "true",
      OTEL_BSP_SCHEDULE_DELAY: "50",
    },
  });
  try {
    for (let i = 0; i < 3; i++) await (await fetch(svc.url)).text();
    const text = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get("content-type") ?? "", /version=0\.0\.4/);
        const body = await res.text();
        return (
          body.includes("http_server_request_duration_seconds_count") && body
        );
      },
      { what: "the request histogram on /metrics" },
    );
    assert.match(
      text,
      /^# TYPE http_server_request_duration_seconds histogram$/m,
    );
    assert.match(
      text,
      /^http_server_request_duration_seconds_count\{http_request_method="GET",url_scheme="http",http_response_status_code="200"\} 3$/m,
    );
    assert.match(
      text,
      /^http_server_request_duration_seconds_bucket\{.*le="\+Inf"\} 3$/m,
    );
    assert.match(text, /^# TYPE process_cpu_time_seconds_total counter$/m);
    assert.match(text, /^process_memory_usage_bytes \d+$/m);
    // Host metrics, asked for with THREADLINE_HOST_METRICS.
    assert.match(
      text,
      /^system_memory_usage_bytes\{system_memory_state="free"\} \d+$/m,
    );
    assert.match(text, /^system_cpu_load_average_1m [\d.e-]+$/m);
    assert.match(
      text,
      /^nodejs_eventloop_delay_seconds\{nodejs_eventloop_delay_percentile="p99"\} [\d.e-]+$/m,
    );
    // Scrapes are not requests of the service: three, not more, and no span.
    const again = await (
      await fetch(`http://127.0.0.1:${port}/metrics`)
    ).text();
    assert.match(
      again,
      /^http_server_request_duration_seconds_count\{[^}]*\} 3$/m,
    );
    await receiver.waitForSpans((s) => s.length >= 3, "the three requests");
    assert.equal(receiver.spans.length, 3);
    // OTLP export carries on beside it.
    await waitFor(
      () =>
        receiver.metrics.some((m) => m.name === "http.server.request.duration"),
      { what: "the request histogram over OTLP" },
    );
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("answers a scrape, exports and shuts down while an asynchronous callback never settles", async () => {
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const svc = await startService({
    entry: "stuck-callback.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "stuck",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_METRICS_EXPORTER: "otlp,prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
      OTEL_METRIC_EXPORT_INTERVAL: "300",
      OTEL_METRIC_EXPORT_TIMEOUT: "500",
    },
  });
  try {
    // Retried until the endpoint listens; each scrape may take 5 s at most.
    const text = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
          signal: AbortSignal.timeout(5000),
        });
        assert.equal(res.status, 200);
        return res.text();
      },
      { what: "a scrape of /metrics" },
    );
    assert.match(text, /^workers 4$/m);
    assert.doesNotMatch(text, /^queue_depth/m);
    // The interval's exports carry on, each with what did answer.
    await waitFor(
      () => receiver.metrics.filter((m) => m.name === "workers").length >= 2,
      { what: "two exports of workers over OTLP" },
    );
    await waitFor(
      () =>
        svc.stderr.find((l) =>
          /did not finish within 500 ms.*queue\.depth/.test(l),
        ),
      { what: "a warning naming queue.depth" },
    );
    const shutdown = await fetch(`${svc.url}/shutdown`, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(await shutdown.text(), "shut down");
  } finally {
    await svc.stop();
    await receiver.close();
  }
});
