// The optional Prometheus scrape endpoint of an instrumented service, read
// the way Prometheus reads it; the scrape itself is not traced.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  freePort,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const rulesFile = fileURLToPath(
  new URL("../collector-config/prometheus-rules.yaml", import.meta.url),
);

after(() => stopTestServers());

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
      /^http_server_request_duration_seconds_count\{http_request_method="GET",url_scheme="http",network_protocol_version="1.1",http_response_status_code="200",otel_scope_name="@threadline\/instrumentation-http"\} 3$/m,
    );
    assert.match(
      text,
      /^http_server_request_duration_seconds_bucket\{.*le="\+Inf"\} 3$/m,
    );
    // The buckets the HTTP conventions advise, 5 ms to 10 s.
    for (const le of ["0.005", "10"])
      assert.match(
        text,
        new RegExp(
          `^http_server_request_duration_seconds_bucket\\{.*le="${le}"\\} \\d+$`,
          "m",
        ),
      );
    assert.match(text, /^# TYPE process_cpu_time_seconds_total counter$/m);
    assert.match(
      text,
      /^process_memory_usage_bytes\{otel_scope_name="@threadline\/node\/runtime",otel_scope_version="[^"]+"\} \d+$/m,
    );
    // Host metrics, asked for with THREADLINE_HOST_METRICS.
    assert.match(
      text,
      /^system_memory_usage_bytes\{system_memory_state="free",otel_scope_name="@threadline\/node\/host",otel_scope_version="[^"]+"\} \d+$/m,
    );
    assert.match(text, /^system_cpu_load_average_1m\{[^}]*\} [\d.e-]+$/m);
    assert.match(
      text,
      /^nodejs_eventloop_delay_seconds\{nodejs_eventloop_delay_percentile="p99",[^}]*\} [\d.e-]+$/m,
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

it("serves the resource as target_info and each series' instrumentation scope as labels", async () => {
  const port = await freePort();
  const svc = await startService({
    entry: "scoped-counter.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "orders",
      OTEL_RESOURCE_ATTRIBUTES:
        "service.instance.id=orders-1,deployment.environment.name=prod,k8s.pod.name=orders-7f9",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
    },
  });
  try {
    await (await fetch(svc.url)).text();
    const text = await waitFor(
      async () => {
        const body = await (
          await fetch(`http://127.0.0.1:${port}/metrics`)
        ).text();
        return (
          body.includes("http_server_request_duration_seconds_count") && body
        );
      },
      { what: "the request histogram on /metrics" },
    );
    // One target_info, its labels the resource's attributes, sanitised.
    const target = text.split("\n").filter((l) => /target_info/.test(l));
    assert.equal(target.length, 3, target.join("\n"));
    assert.deepEqual(target.slice(0, 2), [
      "# HELP target_info Target metadata",
      "# TYPE target_info gauge",
    ]);
    const labels = Object.fromEntries(
      [...target[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    assert.match(target[2]!, /^target_info\{.*\} 1$/);
    assert.equal(labels["service_name"], "orders");
    assert.equal(labels["service_instance_id"], "orders-1");
    assert.equal(labels["deployment_environment_name"], "prod");
    assert.equal(labels["k8s_pod_name"], "orders-7f9");
    assert.equal(labels["telemetry_sdk_language"], "nodejs");
    // Every series names its scope; the application's attribute that would
    // make the scope's label a second time is left out.
    assert.match(
      text,
      /^shop_orders_total\{shop_tier="gold",otel_scope_name="shop",otel_scope_version="2\.1\.0"\} 3$/m,
    );
    assert.match(
      text,
      /^http_server_request_duration_seconds_count\{[^}]*otel_scope_name="@threadline\/instrumentation-http"[,}].* 1$/m,
    );
    for (const line of text.split("\n"))
      if (
        line !== "" &&
        !line.startsWith("#") &&
        !line.startsWith("target_info")
      )
        assert.match(line, /[{,]otel_scope_name="[^"]+"[,}]/, line);
  } finally {
    await svc.stop();
  }
});

it("serves every scope's series of a metric name under one type, and only the first type's when scopes disagree", async () => {
  const port = await freePort();
  const svc = await startService({
    entry: "shared-metric-names.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "shared",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
    },
  });
  try {
    const text = await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
      { what: "a scrape of /metrics" },
    );
    const family = (name: string) =>
      text.split("\n").filter((l) => l.includes(name));
    assert.deepEqual(family("app_requests_total"), [
      "# HELP app_requests_total Requests handled",
      "# TYPE app_requests_total counter",
      'app_requests_total{route="/a",otel_scope_name="shop",otel_scope_version="1.0.0"} 1',
      'app_requests_total{route="/a",otel_scope_name="billing"} 2',
    ]);
    // A name cannot hold a histogram and a gauge: the first made is served.
    const jobs = family("app_jobs");
    assert.equal(jobs[0], "# TYPE app_jobs histogram");
    assert.deepEqual(
      jobs.filter((l) => !l.startsWith("#")).map((l) => l.split("{")[0]),
      [...Array(16).fill("app_jobs_bucket"), "app_jobs_sum", "app_jobs_count"],
    );
    assert.doesNotMatch(text, /billing"\} 4$/m);
    const warning = await waitFor(
      () => {
        const lines = svc.stderr.filter((l) => /app\.jobs/.test(l));
        return lines.length > 0 && lines;
      },
      { what: "a warning about app.jobs" },
    );
    assert.equal(warning.length, 1, warning.join("\n"));
    assert.match(warning[0]!, /billing/);
    assert.match(warning[0]!, /shop/);
  } finally {
    await svc.stop();
  }
});

/**
 * The fixture whose asynchronous callback never settles, exporting to a
 * receiver of its own and scraped on a port of its own, with `env` added;
 * `scrape` is retried until the endpoint listens, each try 5 s at most.
 */
async function startStuck(env: Record<string, string>) {
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
      ...env,
    },
  });
  const scrape = (headers: Record<string, string>) =>
    waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
          headers,
          signal: AbortSignal.timeout(5000),
        });
        assert.equal(res.status, 200);
        return res.text();
      },
      { what: "a scrape of /metrics" },
    );
  return { receiver, svc, scrape };
}

it("lets a job that awaits forceFlush() and shutdown() run on to its end while an asynchronous callback never settles", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const job = await startService({
      entry: "stuck-callback-job.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "stuck-job",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        THREADLINE_SHUTDOWN_TIMEOUT: "1000",
      },
    });
    const { code } = await job.exited;
    // Not 13 ("unsettled top-level await"), the job's last lines unrun.
    assert.equal(code, 0, job.stderr.join("\n"));
    const flushed = job.stdout.find((l) => l.startsWith("flushed after"));
    assert.ok(flushed, job.stdout.join("\n"));
    // Within THREADLINE_SHUTDOWN_TIMEOUT's bound, not the callback timeout's 10 s.
    assert.ok(Number(/(\d+) ms/.exec(flushed)![1]) < 5000, flushed);
    assert.ok(job.stdout.includes("shut down"), job.stdout.join("\n"));
    await receiver.waitForSpans(
      (s) => s.some((x) => x.name === "job"),
      "the job's span",
    );
  } finally {
    await receiver.close();
  }
});

it("answers a scrape, exports and shuts down while an asynchronous callback never settles", async () => {
  const { receiver, svc, scrape } = await startStuck({
    OTEL_METRIC_EXPORT_INTERVAL: "300",
    OTEL_METRIC_EXPORT_TIMEOUT: "500",
  });
  try {
    const text = await scrape({});
    assert.match(text, /^workers\{otel_scope_name="fixture"\} 4$/m);
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

it("answers a scrape within the scraper's timeout, and shuts down within THREADLINE_SHUTDOWN_TIMEOUT, while an asynchronous callback never settles", async () => {
  // The export timeout is the default 10 s, as long as Prometheus's
  // default scrape timeout: the scrape and the shutdown wait less.
  const { receiver, svc, scrape } = await startStuck({
    THREADLINE_SHUTDOWN_TIMEOUT: "1000",
  });
  try {
    // A scraper that waits 1 s gets an answer, with what did answer.
    const text = await scrape({ "x-prometheus-scrape-timeout-seconds": "1" });
    assert.match(text, /^workers\{otel_scope_name="fixture"\} 4$/m);
    assert.doesNotMatch(text, /^queue_depth/m);
    const shutdown = await fetch(`${svc.url}/shutdown`, {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(await shutdown.text(), "shut down");
    // Its last export went, with what did answer.
    assert.ok(
      receiver.metrics.some((m) => m.name === "workers"),
      "workers exported at shutdown",
    );
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("answers HEAD /metrics as GET without the body, says which port 0 took, and names the health endpoint when both want one port", async () => {
  const svc = await startService({
    entry: "hello.cjs",
    cwd: fixtures,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "hello",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: "0",
      OTEL_LOG_LEVEL: "info",
    },
  });
  try {
    const said = await waitFor(
      () =>
        svc.stderr
          .map((l) =>
            /Prometheus endpoint.*(http:\/\/127\.0\.0\.1:(\d+)\/metrics)/.exec(
              l,
            ),
          )
          .find((m) => m !== null),
      { what: "the port the Prometheus endpoint took" },
    );
    const url = said[1]!;
    const get = await fetch(url);
    assert.equal(get.status, 200);
    const body = await get.text();
    assert.match(body, /^# TYPE process_cpu_time_seconds_total counter$/m);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(
      head.headers.get("content-type"),
      get.headers.get("content-type"),
    );
    assert.equal(await head.text(), "");
  } finally {
    await svc.stop();
  }
  const port = await freePort();
  const both = await startService({
    entry: "hello.cjs",
    cwd: fixtures,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "hello",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
      THREADLINE_HEALTH_PORT: String(port),
    },
  });
  try {
    const warning = await waitFor(
      () => both.stderr.find((l) => /EADDRINUSE/.test(l)),
      { what: "a warning about the port" },
    );
    assert.doesNotMatch(warning, /another process/);
    assert.match(
      warning,
      /the port is the (health|Prometheus) endpoint's \((THREADLINE_HEALTH_PORT|OTEL_EXPORTER_PROMETHEUS_PORT)\)/,
    );
  } finally {
    await both.stop();
  }
});

/**
 * The metric selectors of a PromQL expression (`name{…}` and `name[…]`)
 * with the labels they match on, and the labels it groups by.
 */
function selectors(expr: string): {
  metrics: Map<string, Set<string>>;
  by: string[];
} {
  const metrics = new Map<string, Set<string>>();
  for (const m of expr.matchAll(/\b([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*\[/g))
    if (m[2] === undefined) metrics.set(m[1]!, new Set());
  for (const m of expr.matchAll(/\b([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const labels = metrics.get(m[1]!) ?? new Set<string>();
    // `label!=""` asks that a series have the label (an error's): no
    // series needs it for the rule to be right.
    for (const l of m[2]!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g))
      if (!(l[2] === "!=" && l[3] === "")) labels.add(l[1]!);
    metrics.set(m[1]!, labels);
  }
  const by = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!.split(",").map((l) => l.trim()),
  );
  return { metrics, by };
}

it("the Prometheus alerting rules name metrics and labels that services' /metrics serve", async () => {
  const receiver = await startOtlpReceiver();
  const [databaseUrl, amqpUrl] = await Promise.all([
    testDatabase(),
    testBroker(),
  ]);
  const ports = {
    gateway: await freePort(),
    orders: await freePort(),
    worker: await freePort(),
  };
  const prometheus = (port: number) => ({
    OTEL_METRICS_EXPORTER: "otlp,prometheus",
    OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
    OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
  });
  const shop = await startShop({
    otlpEndpoint: receiver.url,
    databaseUrl,
    amqpUrl,
    env: {
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_METRIC_EXPORT_INTERVAL: "300",
      THREADLINE_ALARMS_INTERVAL: "200",
    },
    services: {
      gateway: prometheus(ports.gateway),
      orders: prometheus(ports.orders),
      worker: prometheus(ports.worker),
    },
  });
  try {
    // One order charged, one declined by the provider (the worker nacks it).
    for (const quantity of [1, 30]) {
      const res = await fetch(`${shop.gateway.url}/orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ item: "lamp", quantity }),
      });
      assert.equal(res.status, 201);
    }
    const scrape = async () =>
      (
        await Promise.all(
          Object.values(ports).map(async (port) =>
            (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
          ),
        )
      ).join("\n");
    const text = await waitFor(
      async () => {
        const t = await scrape();
        return (
          /^messaging_client_consumed_messages_total\{[^}]*"nack"/m.test(t) &&
          /^otel_sdk_exporter_span_exported_total/m.test(t) &&
          /^threadline_health_status\w*\{threadline_component="postgresql/m.test(
            t,
          ) &&
          t
        );
      },
      { what: "a nacked message, exported spans and a pool's health" },
    );
    // Each series line: its family (histogram series by their base name
    // too) and the label names it carries.
    const labelsOf = new Map<string, Set<string>>();
    for (const line of text.split("\n")) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
      if (m === null) continue;
      const names = [m[1]!, m[1]!.replace(/_(bucket|count|sum)$/, "")];
      const labels = [...(m[2] ?? "").matchAll(/(\w+)="/g)].map((l) => l[1]!);
      for (const n of names) {
        const set = labelsOf.get(n) ?? new Set<string>();
        for (const l of labels) set.add(l);
        labelsOf.set(n, set);
      }
    }
    const rules = [
      ...readFileSync(rulesFile, "utf8").matchAll(
        /- alert: (\w+)\n\s+expr: (\|\n(?:\s{10,}.*\n)+|.*\n)/g,
      ),
    ];
    assert.ok(rules.length >= 7, `${rules.length} rules read`);
    // Labels of the scrape target, which Prometheus adds itself.
    const targetLabels = new Set(["job", "instance", "le"]);
    for (const [, alert, expr] of rules) {
      const { metrics, by } = selectors(expr!);
      assert.ok(metrics.size > 0, `${alert}: no metric found in ${expr}`);
      for (const [metric, labels] of metrics) {
        if (metric === "up") continue; // Prometheus's own, per target
        const served = labelsOf.get(metric);
        assert.ok(served, `${alert}: no ${metric} on /metrics`);
        for (const label of [...labels, ...by])
          if (!targetLabels.has(label))
            assert.ok(
              served.has(label),
              `${alert}: ${metric} has no label ${label}`,
            );
      }
    }
  } finally {
    await shop.stop();
    await receiver.close();
  }
});

/**
 * An alerting rule of the rules file by its name: its keys, a block
 * scalar's (`|`) lines joined.
 */
function alertRule(name: string): Record<string, string> {
  const text = readFileSync(rulesFile, "utf8");
  const start = text.indexOf(`- alert: ${name}\n`);
  assert.ok(start >= 0, `no alert ${name}`);
  const end = text.indexOf("- alert:", start + 1);
  const block = text.slice(start + 2, end < 0 ? undefined : end);
  const rule: Record<string, string> = {};
  let key: string | undefined;
  for (const line of block.split("\n")) {
    const m = /^\s{0,8}(\w+):\s*(.*)$/.exec(line);
    if (m !== null && !/^\s{10}/.test(line)) {
      key = m[1]!;
      rule[key] = m[2] === "|" ? "" : m[2]!;
    } else if (key !== undefined && /^\s{10}/.test(line))
      rule[key] += `${line.trim()}\n`;
  }
  return rule;
}

/** Whether a series' labels meet a selector's matchers (`{a="x",b!=""}`), a missing label being "". */
function meets(labels: Record<string, string>, matchers: string): boolean {
  for (const [, name, op, value] of matchers.matchAll(
    /(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g,
  )) {
    const v = labels[name!] ?? "";
    const ok =
      op === "="
        ? v === value
        : op === "!="
          ? v !== value
          : new RegExp(`^(?:${value})$`).test(v) === (op === "=~");
    if (!ok) return false;
  }
  return true;
}

it("ThreadlineHttp5xxRatio counts as failures what http_5xx_ratio does, per instance over its 2 m window, with no for on top", async () => {
  const rule = alertRule("ThreadlineHttp5xxRatio");
  const expr = rule["expr"]!;
  // The series a service serves for requests answered 200, 500 and 503,
  // a stream the client left after its 200, and a request it left before
  // any answer.
  const port = await freePort();
  const svc = await startService({
    entry: "status-service.cjs",
    cwd: fixtures,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "statuses",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
    },
  });
  try {
    for (const path of ["/200", "/500", "/503"])
      await (await fetch(`${svc.url}${path}`)).text();
    await new Promise<void>((resolve) => {
      const req = http.get(`${svc.url}/stream`, (res) =>
        res.once("data", () => {
          req.destroy();
          resolve();
        }),
      );
      req.on("error", () => {});
    });
    const hang = http.get(`${svc.url}/hang`);
    hang.on("error", () => {});
    await waitFor(() => svc.stdout.includes("hanging"), {
      what: "the hanging request",
    });
    hang.destroy();
    await waitFor(
      () =>
        svc.stdout.includes("stream closed") &&
        svc.stdout.includes("hang closed"),
      { what: "both requests closed" },
    );
    const series = await waitFor(
      async () => {
        const text = await (
          await fetch(`http://127.0.0.1:${port}/metrics`)
        ).text();
        const lines = text
          .split("\n")
          .filter((l) =>
            l.startsWith("http_server_request_duration_seconds_count{"),
          );
        return lines.length === 5 && lines;
      },
      { what: "five series of the request histogram" },
    );
    const labelsOf = (line: string) =>
      Object.fromEntries(
        [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
      );
    const outcome = (l: Record<string, string>) =>
      `${l["http_response_status_code"] ?? "none"} ${l["error_type"] ?? ""}`.trim();
    assert.deepEqual(series.map(labelsOf).map(outcome).sort(), [
      "200",
      "200 aborted",
      "500 500",
      "503 503",
      "none aborted",
    ]);
    // The failures' selectors are those with matchers; the requests' has none.
    const selectors = [
      ...expr.matchAll(
        /\bhttp_server_request_duration_seconds_count\s*(?:\{([^}]*)\})?\s*\[/g,
      ),
    ].map((m) => m[1] ?? "");
    const failures = selectors.filter((m) => m.trim() !== "");
    assert.ok(failures.length > 0, expr);
    assert.ok(
      selectors.some((m) => m.trim() === ""),
      expr,
    );
    const failed = series
      .map(labelsOf)
      .filter((l) => failures.some((m) => meets(l, m)))
      .map(outcome)
      .sort();
    assert.deepEqual(failed, ["500 500", "503 503", "none aborted"]);
  } finally {
    await svc.stop();
  }
  // rules.ts: more than 5% of at least 20 requests within the rule's 2 m,
  // which is its window, raised at once (no `for` after it), held 30 s.
  assert.match(expr, /\) > 0\.05\s+and\s/);
  assert.match(expr, /\) >= 20\s*$/);
  for (const [, range] of expr.matchAll(/\[([^\]]*)\]/g))
    assert.equal(range, "2m");
  assert.ok(
    rule["for"] === undefined || /^0[smh]?$/.test(rule["for"]),
    `for: ${rule["for"]}`,
  );
  assert.equal(rule["keep_firing_for"], "30s");
  // Each process judges its own requests: so does the rule, per instance.
  const by = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].map((m) => m[1]);
  assert.ok(by.length > 0);
  for (const b of by) assert.equal(b, "job, instance");
});
