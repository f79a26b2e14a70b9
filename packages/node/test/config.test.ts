import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { selfSignedCertificate } from "@threadline/test-support";
import {
  fillFromPm2Env,
  resolveConfig,
  type InitOptions,
} from "../src/config.ts";
import { MISTYPED_OPTIONS } from "./mistyped-options.ts";

const pems = (() => {
  const ca = selfSignedCertificate("collector-ca");
  const client = selfSignedCertificate("orders");
  return {
    ca,
    logsCa: selfSignedCertificate("logs-ca"),
    client,
    caDer: new X509Certificate(ca.cert).raw,
    keyDer: createPrivateKey(client.key).export({
      type: "pkcs8",
      format: "der",
    }),
  };
})();

describe("resolveConfig", () => {
  it("has the documented defaults", () => {
    const { config, warnings } = resolveConfig({}, {});
    assert.deepEqual(warnings, []);
    assert.equal(config.disabled, false);
    assert.equal(config.serviceName, "unknown_service:node");
    assert.equal(config.traces.url, "http://localhost:4318/v1/traces");
    assert.equal(config.logs.url, "http://localhost:4318/v1/logs");
    assert.equal(config.traces.protocol, "http/protobuf");
    assert.equal(config.traces.compression, "none");
    assert.equal(config.traces.timeoutMs, 10000);
    assert.deepEqual(config.traces.batch, {
      scheduleDelayMs: 1000,
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
    });
    assert.deepEqual(config.sampler, {
      name: "parentbased_always_on",
      ratio: 1,
    });
    assert.deepEqual(config.propagators, ["tracecontext", "baggage"]);
    assert.equal(config.edge, false);
    assert.equal(config.customerHeader, "x-customer-id");
    assert.equal(config.logFields, "otel");
    assert.equal(config.shutdownTimeoutMs, 3000);
    assert.deepEqual(config.instrumentations, {
      http: true,
      undici: true,
      pino: true,
      pg: true,
      amqplib: true,
    });
    assert.deepEqual(config.pg, {
      recordParameters: false,
      sqlCommenter: false,
    });
    assert.deepEqual(config.amqp, {
      consumerContext: "continue",
      trustMessageBaggage: true,
      externalExchanges: [],
    });
  });

  it("reads the standard OTEL_* variables as the specification defines them", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_SERVICE_NAME: "orders",
        OTEL_RESOURCE_ATTRIBUTES:
          "service.name=ignored,deployment.environment.name=prod,team=a%20b",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:9999/custom/path",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=secret,x-tenant=t%201",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-tenant=t2",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
        OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
        OTEL_PROPAGATORS: "tracecontext",
        OTEL_BSP_SCHEDULE_DELAY: "200",
        OTEL_BSP_MAX_QUEUE_SIZE: "100",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "500",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_SDK_DISABLED: "TRUE",
      },
    );
    // A batch larger than the queue could never fill: lowered, and said.
    assert.deepEqual(warnings, [
      "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=500 is larger than OTEL_BSP_MAX_QUEUE_SIZE; using 100",
    ]);
    assert.equal(config.disabled, true);
    assert.equal(config.serviceName, "orders");
    assert.deepEqual(config.resourceAttributes, {
      "service.name": "ignored",
      "deployment.environment.name": "prod",
      team: "a b",
    });
    assert.equal(config.traces.url, "http://collector:4318/v1/traces");
    assert.equal(config.logs.url, "http://logs:9999/custom/path");
    assert.deepEqual(config.traces.headers, {
      "api-key": "secret",
      "x-tenant": "t2",
    });
    assert.deepEqual(config.logs.headers, {
      "api-key": "secret",
      "x-tenant": "t 1",
    });
    assert.equal(config.traces.protocol, "http/json");
    assert.equal(config.logs.protocol, "http/protobuf");
    assert.equal(config.traces.compression, "gzip");
    assert.equal(config.traces.timeoutMs, 2500);
    assert.deepEqual(config.sampler, {
      name: "parentbased_traceidratio",
      ratio: 0.25,
    });
    assert.deepEqual(config.propagators, ["tracecontext"]);
    assert.deepEqual(config.traces.batch, {
      scheduleDelayMs: 200,
      maxQueueSize: 100,
      maxExportBatchSize: 100,
    });
    assert.equal(config.logs.enabled, false);
    assert.equal(config.traces.enabled, true);
  });

  it("lowers a batch size larger than its queue quietly where nobody set it, or its signal is not exported", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_BSP_MAX_QUEUE_SIZE: "100",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_BLRP_MAX_QUEUE_SIZE: "10",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: "50",
      },
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.traces.batch.maxExportBatchSize, 100);
    assert.equal(config.logs.batch.maxExportBatchSize, 10);
  });

  it("prints an endpoint that does not parse without what its user info holds", () => {
    for (const endpoint of [
      "http://user:se/cret@127.0.0.1:4318",
      "http://user:se#cret@127.0.0.1:4318",
      "http://user:se?cret@127.0.0.1:4318",
      "htp://user:secret@127.0.0.1:4318/?token=secret",
    ]) {
      const { warnings } = resolveConfig(
        {},
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
      );
      assert.equal(warnings.length, 1, endpoint);
      assert.doesNotMatch(warnings[0]!, /cret|user/, endpoint);
      assert.match(warnings[0]!, /127\.0\.0\.1:4318/, endpoint);
    }
  });

  it("lets init() options win over the environment", () => {
    const { config } = resolveConfig(
      {
        serviceName: "from-code",
        endpoint: "http://code:4318",
        sampleRatio: 0.5,
        edge: true,
        customerHeader: "X-Tenant-Customer",
      },
      {
        OTEL_SERVICE_NAME: "from-env",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://env:1/v1/traces",
        THREADLINE_EDGE: "false",
      },
    );
    assert.equal(config.serviceName, "from-code");
    assert.equal(config.traces.url, "http://code:4318/v1/traces");
    assert.deepEqual(config.sampler, {
      name: "parentbased_traceidratio",
      ratio: 0.5,
    });
    assert.equal(config.edge, true);
    assert.equal(config.customerHeader, "x-tenant-customer");
  });

  it("runs the alarms init() gives whatever THREADLINE_ALARMS says", () => {
    const env = { THREADLINE_ALARMS: "false" };
    assert.equal(resolveConfig({}, env).config.alarms, undefined);
    assert.equal(
      resolveConfig({ alarms: { intervalMs: 500 } }, env).config.alarms
        ?.intervalMs,
      500,
    );
    assert.equal(
      resolveConfig({ alarms: false }, { THREADLINE_ALARMS: "true" }).config
        .alarms,
      undefined,
    );
  });

  it("holds numeric init() options to their variables' bounds, reading the variable in place of one it cannot use", () => {
    const { config, warnings } = resolveConfig(
      {
        watchUrl: "http://127.0.0.1:1/watch",
        watchIntervalMs: 50,
        alarms: { intervalMs: Number.NaN },
        shutdownTimeoutMs: -1,
        prometheus: { port: 70_000 },
      },
      { THREADLINE_ALARMS_INTERVAL: "2000" },
    );
    assert.equal(config.watch?.intervalMs, 5000);
    assert.equal(config.alarms?.intervalMs, 2000);
    assert.equal(config.shutdownTimeoutMs, 3000);
    assert.equal(config.prometheus?.port, 9464);
    assert.deepEqual(warnings, [
      "shutdownTimeoutMs -1 is not an integer from 0 to 2147483647; using 3000",
      "prometheus.port 70000 is not an integer from 0 to 65535; using 9464",
      "alarms.intervalMs NaN is not an integer from 100 to 2147483647; using THREADLINE_ALARMS_INTERVAL",
      "watchIntervalMs 50 is not an integer from 100 to 2147483647; using 5000",
    ]);
  });

  it("reads a watch list's file: URL in any of its spellings, and a path", () => {
    for (const raw of [
      "file:/srv/watch.json",
      "file:///srv/watch.json",
      "FILE:/srv/watch.json",
      "file://localhost/srv/watch.json",
      "/srv/watch.json",
    ]) {
      const { config, warnings } = resolveConfig(
        {},
        { THREADLINE_WATCH_URL: raw },
      );
      assert.deepEqual(warnings, [], raw);
      assert.equal(config.watch?.url, "file:///srv/watch.json", raw);
    }
  });

  it("reads the watch list next to the first signal exported to loopback: traces, logs, metrics", () => {
    const watchOf = (env: Record<string, string>) =>
      resolveConfig({}, env).config.watch?.url;
    const remote = "https://collector.example:4318";
    assert.equal(
      watchOf({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:1111/v1/traces",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://127.0.0.1:2222/v1/logs",
      }),
      "http://127.0.0.1:1111/threadline/v1/watch",
    );
    for (const env of [
      { OTEL_TRACES_EXPORTER: "none" },
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${remote}/v1/traces` },
    ] as Array<Record<string, string>>)
      assert.equal(
        watchOf({
          ...env,
          OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://127.0.0.1:2222/v1/logs",
        }),
        "http://127.0.0.1:2222/threadline/v1/watch",
      );
    assert.equal(
      watchOf({
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://[::1]:3333/v1/metrics",
      }),
      "http://[::1]:3333/threadline/v1/watch",
    );
    assert.equal(
      watchOf({
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
      }),
      undefined,
    );
    assert.equal(watchOf({ OTEL_EXPORTER_OTLP_ENDPOINT: remote }), undefined);
    // A token in the endpoint's query is the local receiver's.
    assert.equal(
      watchOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4444?token=t" }),
      "http://127.0.0.1:4444/threadline/v1/watch?token=t",
    );
  });

  it("reads THREADLINE_EDGE that is neither true nor false as true, with a warning", () => {
    for (const value of ["1", "yes", "on", "TRUE"]) {
      const { config, warnings } = resolveConfig(
        {},
        { THREADLINE_EDGE: value },
      );
      assert.equal(config.edge, true, value);
      assert.equal(
        warnings.some((w) => w.startsWith("THREADLINE_EDGE=")),
        value !== "TRUE",
        value,
      );
    }
    assert.equal(
      resolveConfig({}, { THREADLINE_EDGE: "False" }).config.edge,
      false,
    );
  });

  it("reads THREADLINE_AMQP_TRUST_BAGGAGE that is neither true nor false as false, with a warning", () => {
    for (const value of ["0", "no", "off", "FALSE"]) {
      const { config, warnings } = resolveConfig(
        {},
        { THREADLINE_AMQP_TRUST_BAGGAGE: value },
      );
      assert.equal(config.amqp.trustMessageBaggage, false, value);
      assert.deepEqual(
        warnings.filter((w) => w.startsWith("THREADLINE_AMQP_TRUST_BAGGAGE=")),
        value === "FALSE"
          ? []
          : [
              `THREADLINE_AMQP_TRUST_BAGGAGE=${JSON.stringify(value)} is not true or false; using false`,
            ],
        value,
      );
    }
    assert.equal(
      resolveConfig({}, { THREADLINE_AMQP_TRUST_BAGGAGE: "True" }).config.amqp
        .trustMessageBaggage,
      true,
    );
  });

  it("keeps THREADLINE_LOG_REDACT on for a yes/no word other than false, with a warning, rather than take it for a pino path", () => {
    for (const value of ["off", "0", "No", "none", "disabled", "yes", "on"]) {
      const { config, warnings } = resolveConfig(
        {},
        { THREADLINE_LOG_REDACT: value },
      );
      assert.deepEqual(config.logRedact, [], value);
      assert.deepEqual(
        warnings,
        [
          `THREADLINE_LOG_REDACT=${JSON.stringify(value)} is not true, false or a list of pino paths; redaction stays on (false turns it off)`,
        ],
        value,
      );
    }
    const { config, warnings } = resolveConfig(
      { logRedact: "off" as unknown as string[] },
      {},
    );
    assert.deepEqual(config.logRedact, []);
    assert.deepEqual(warnings, [
      'logRedact "off" is not true, false or a list of pino paths; redaction stays on (false turns it off)',
    ]);
    assert.deepEqual(
      resolveConfig({}, { THREADLINE_LOG_REDACT: "nonepath,req.body.ssn" })
        .config.logRedact,
      ["nonepath", "req.body.ssn"],
    );
    assert.equal(
      resolveConfig({}, { THREADLINE_LOG_REDACT: "False" }).config.logRedact,
      false,
    );
  });

  it("takes service.name from init()'s resource attributes over the environment's", () => {
    const env = {
      OTEL_SERVICE_NAME: "from-env",
      OTEL_RESOURCE_ATTRIBUTES: "service.name=from-env-attributes",
    };
    const named = (options: Parameters<typeof resolveConfig>[0]) =>
      resolveConfig(options, env).config.serviceName;
    assert.equal(
      named({ resourceAttributes: { "service.name": "from-code" } }),
      "from-code",
    );
    assert.equal(
      named({
        serviceName: "named",
        resourceAttributes: { "service.name": "from-code" },
      }),
      "named",
    );
    assert.equal(named({ resourceAttributes: { team: "a" } }), "from-env");
  });

  it("takes an empty service name, wherever it is given, for none, and says so once", () => {
    const named = (
      options: Parameters<typeof resolveConfig>[0],
      env: Record<string, string>,
    ) => {
      const { config, warnings } = resolveConfig(options, env);
      return {
        name: config.serviceName,
        warnings: warnings.filter((w) => w.includes("service")),
      };
    };
    assert.deepEqual(
      named({}, { OTEL_RESOURCE_ATTRIBUTES: "service.name=,team=a" }),
      {
        name: "unknown_service:node",
        warnings: [
          `OTEL_RESOURCE_ATTRIBUTES' service.name is empty; using "unknown_service:node"`,
        ],
      },
    );
    assert.deepEqual(
      named({ serviceName: " " }, { OTEL_SERVICE_NAME: "env" }),
      {
        name: "env",
        warnings: [`serviceName is empty; using "env"`],
      },
    );
    assert.deepEqual(
      named(
        { resourceAttributes: { "service.name": "" } },
        { OTEL_RESOURCE_ATTRIBUTES: "service.name=from-env-attributes" },
      ),
      {
        name: "from-env-attributes",
        warnings: [
          `resourceAttributes' service.name is empty; using "from-env-attributes"`,
        ],
      },
    );
    assert.deepEqual(
      named(
        { serviceName: "", resourceAttributes: { "service.name": "" } },
        { OTEL_SERVICE_NAME: "", OTEL_RESOURCE_ATTRIBUTES: "service.name=" },
      ),
      {
        name: "unknown_service:node",
        warnings: [
          `serviceName, resourceAttributes' service.name, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES' service.name are empty; using "unknown_service:node"`,
        ],
      },
    );
    // One given after a name is never read.
    assert.deepEqual(
      named(
        { serviceName: "named" },
        { OTEL_RESOURCE_ATTRIBUTES: "service.name=" },
      ),
      { name: "named", warnings: [] },
    );
  });

  it("puts the signal's path before the endpoint's query, and prints no credential of a bad one", () => {
    const { config } = resolveConfig(
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: "https://gw:4318/otlp/?tenant=a#x" },
    );
    assert.equal(config.traces.url, "https://gw:4318/otlp/v1/traces?tenant=a");
    assert.equal(config.logs.url, "https://gw:4318/otlp/v1/logs?tenant=a");
    assert.equal(
      config.metrics.url,
      "https://gw:4318/otlp/v1/metrics?tenant=a",
    );
    for (const endpoint of [
      "collector.example:4318/?api-key=SECRET1",
      "user:SECRET1@collector.example:4318",
      "ftp://user:SECRET1@collector.example/#SECRET1",
    ]) {
      const { config, warnings } = resolveConfig(
        {},
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
      );
      assert.equal(config.traces.url, "http://localhost:4318/v1/traces");
      const warning =
        warnings.find((w) => w.includes("not an http(s) URL")) ?? "";
      assert.ok(warning.includes("collector.example"), warning);
      assert.ok(!warning.includes("SECRET1"), warning);
    }
  });

  it("reads the environment in place of an option that is not usable, as for a mistyped one", () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:4318/x",
      THREADLINE_CUSTOMER_HEADER: "x-tenant-customer",
      THREADLINE_WATCH_URL: "http://watch.internal/list",
    };
    const { config, warnings } = resolveConfig(
      {
        endpoint: "user:SECRET1@collector:4318",
        customerHeader: "x customer",
        watchUrl: "ftp://watch.internal/list",
      },
      env,
    );
    assert.equal(config.traces.url, "http://traces:4318/x");
    assert.equal(config.logs.url, "http://collector:4318/v1/logs");
    assert.equal(config.customerHeader, "x-tenant-customer");
    assert.equal(config.watch?.url, "http://watch.internal/list");
    assert.deepEqual(warnings, [
      'endpoint "collector:4318" is not an http(s) URL; using OTEL_EXPORTER_OTLP_ENDPOINT',
      'customerHeader "x customer" is not a valid header name; using THREADLINE_CUSTOMER_HEADER',
      "watchUrl is not an http(s) URL or a file; using THREADLINE_WATCH_URL",
    ]);
    // With no variable: the defaults, and where each signal's own applies, that.
    const alone = resolveConfig(
      { endpoint: "collector:4318", customerHeader: "x customer" },
      { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:4318/l" },
    );
    assert.equal(alone.config.traces.url, "http://localhost:4318/v1/traces");
    assert.equal(alone.config.logs.url, "http://logs:4318/l");
    assert.equal(alone.config.customerHeader, "x-customer-id");
    assert.deepEqual(alone.warnings, [
      'endpoint "collector:4318" is not an http(s) URL; using the OTEL_EXPORTER_OTLP_<signal>_ENDPOINT variables',
      'customerHeader "x customer" is not a valid header name; using x-customer-id',
    ]);
  });

  it("percent-decodes OTEL_RESOURCE_ATTRIBUTES' keys as well as its values", () => {
    const { config, warnings } = resolveConfig(
      {},
      { OTEL_RESOURCE_ATTRIBUTES: "a%2Eb=c,k%3Dv%2C=x%2Cy" },
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.resourceAttributes["a.b"], "c");
    assert.equal(config.resourceAttributes["k=v,"], "x,y");
    const bad = resolveConfig(
      {},
      { OTEL_RESOURCE_ATTRIBUTES: "team=a,bad%zzkey=1" },
    );
    assert.equal(bad.config.resourceAttributes["team"], undefined);
    assert.deepEqual(bad.warnings, [
      'OTEL_RESOURCE_ATTRIBUTES entry "bad%zzkey" is not valid percent-encoding; it was ignored',
      "OTEL_RESOURCE_ATTRIBUTES was ignored whole",
    ]);
  });

  it("warns and falls back on unusable values, never throws", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "not a url",
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
        OTEL_TRACES_SAMPLER: "jaeger_remote",
        OTEL_BSP_MAX_QUEUE_SIZE: "-3",
        OTEL_SDK_DISABLED: "yes",
        OTEL_PROPAGATORS: "b3,tracecontext",
        THREADLINE_LOG_FIELDS: "json",
        THREADLINE_EXPORT_THREAD: "both",
        OTEL_NODE_DISABLED_INSTRUMENTATIONS: "http,nosuch",
      },
    );
    assert.equal(config.traces.url, "http://localhost:4318/v1/traces");
    assert.equal(config.traces.protocol, "http/protobuf");
    assert.equal(config.sampler.name, "parentbased_always_on");
    assert.equal(config.traces.batch.maxQueueSize, 2048);
    assert.equal(config.disabled, false);
    assert.deepEqual(config.propagators, ["tracecontext"]);
    assert.equal(config.logFields, "otel");
    assert.equal(config.exportThread, "main");
    assert.ok(warnings.some((w) => w.includes("THREADLINE_EXPORT_THREAD")));
    assert.equal(config.instrumentations.http, false);
    assert.equal(warnings.length, 9, warnings.join("\n"));
  });

  it("takes an invalid signal value as unset, falling back to the general one", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_EXPORTER_OTLP_PROTOCOL: "HTTP/JSON",
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "grpc",
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "zip",
        OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "abc",
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "0",
      },
    );
    assert.equal(config.logs.protocol, "http/json");
    assert.equal(config.traces.compression, "gzip");
    assert.equal(config.traces.timeoutMs, 2500);
    assert.equal(config.metrics.timeoutMs, 0, "0: no time limit");
    assert.deepEqual(
      warnings.map((w) => w.split("=")[0]),
      [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
      ],
      warnings.join("\n"),
    );
  });

  it("names the general variable a refused signal value falls back to only when it is set, and the default otherwise", () => {
    const signalOnly = {
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "5s",
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "zstd",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
    };
    const unset = resolveConfig({}, signalOnly);
    assert.equal(unset.config.traces.timeoutMs, 10_000);
    assert.equal(unset.config.traces.compression, "none");
    assert.equal(unset.config.traces.protocol, "http/protobuf");
    assert.deepEqual(
      unset.warnings.map((w) => w.replace(/^[^;]*; /, "")),
      [
        "using none",
        "using http/protobuf, so the endpoint must be the Collector's OTLP/HTTP one (port 4318 by default; 4317 is gRPC's)",
        "using 10000",
      ],
      unset.warnings.join("\n"),
    );
    const set = resolveConfig(
      {},
      {
        ...signalOnly,
        OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      },
    );
    assert.equal(set.config.traces.timeoutMs, 2500);
    assert.equal(set.config.traces.compression, "gzip");
    assert.equal(set.config.traces.protocol, "http/json");
    assert.deepEqual(
      set.warnings.map((w) => w.replace(/^[^;]*; /, "")),
      [
        "using OTEL_EXPORTER_OTLP_COMPRESSION",
        "using OTEL_EXPORTER_OTLP_PROTOCOL, so the endpoint must be the Collector's OTLP/HTTP one (port 4318 by default; 4317 is gRPC's)",
        "using OTEL_EXPORTER_OTLP_TIMEOUT",
      ],
      set.warnings.join("\n"),
    );
  });

  it("bounds an export by the shorter of the exporter's and the processor's timeouts", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_EXPORTER_OTLP_TIMEOUT: "5000",
        OTEL_BSP_EXPORT_TIMEOUT: "300",
        OTEL_BLRP_EXPORT_TIMEOUT: "0",
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "0",
        OTEL_METRIC_EXPORT_TIMEOUT: "20000",
      },
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.traces.timeoutMs, 300);
    assert.equal(config.logs.timeoutMs, 5000, "0: the processor sets no bound");
    assert.equal(config.metrics.timeoutMs, 20000);
  });

  it("reads the files OTEL_EXPORTER_OTLP_CERTIFICATE and the client's variables name", () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-config-tls-"));
    try {
      const file = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      const { config, warnings } = resolveConfig(
        {},
        {
          OTEL_EXPORTER_OTLP_CERTIFICATE: file("ca.pem", pems.ca.cert),
          OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: file(
            "logs-ca.pem",
            pems.logsCa.cert,
          ),
          OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: file(
            "client.pem",
            pems.client.cert,
          ),
          OTEL_EXPORTER_OTLP_CLIENT_KEY: file("client.key", pems.client.key),
          OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: join(dir, "missing.key"),
        },
      );
      assert.deepEqual(config.traces.tls, {
        ca: pems.ca.cert,
        cert: pems.client.cert,
        key: pems.client.key,
      });
      assert.equal(config.logs.tls.ca, pems.logsCa.cert);
      // The metrics key cannot be read: the general one serves in its place.
      assert.deepEqual(config.metrics.tls, config.traces.tls);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0]!,
        /^OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: could not read .*ENOENT.*; using OTEL_EXPORTER_OTLP_CLIENT_KEY$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves out, with OpenSSL's reason, a TLS file that can be read but not used", () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-config-tls-"));
    try {
      const file = (name: string, text: string | Buffer) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      const { config, warnings } = resolveConfig(
        {},
        {
          // Not PEM: OpenSSL would read no certificate from it, and trust none.
          OTEL_EXPORTER_OTLP_CERTIFICATE: file("ca.der", pems.caDer),
          OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: file("ca.pem", pems.ca.cert),
          OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: file(
            "client.pem",
            pems.client.cert,
          ),
          OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: file("client.der", pems.keyDer),
          OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY: file("other.key", pems.ca.key),
          OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: file(
            "client.key",
            pems.client.key,
          ),
        },
      );
      assert.deepEqual(config.traces.tls, {});
      assert.deepEqual(config.logs.tls, { ca: pems.ca.cert });
      assert.deepEqual(config.metrics.tls, {
        cert: pems.client.cert,
        key: pems.client.key,
      });
      assert.deepEqual(
        warnings.map((w) => w.replaceAll(dir, "<dir>")),
        [
          'OTEL_EXPORTER_OTLP_CERTIFICATE: "<dir>/ca.der" cannot be used (it holds no PEM certificate); it was ignored',
          'OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: "<dir>/client.der" cannot be used (error:1E08010C:DECODER routines::unsupported: the key must be PEM, without a passphrase); no client certificate is sent',
          "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY cannot be used together (error:05800074:x509 certificate routines::key values mismatch); no client certificate is sent",
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says once that a general client certificate came without its key", () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-config-tls-"));
    try {
      writeFileSync(join(dir, "client.pem"), pems.client.cert);
      writeFileSync(join(dir, "client.key"), pems.client.key);
      const { config, warnings } = resolveConfig(
        {},
        {
          OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: join(dir, "client.pem"),
          OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: join(dir, "client.key"),
        },
      );
      assert.deepEqual(config.traces.tls, {
        cert: pems.client.cert,
        key: pems.client.key,
      });
      assert.deepEqual(config.logs.tls, {});
      assert.deepEqual(warnings, [
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set without OTEL_EXPORTER_OTLP_CLIENT_KEY, which goes with it; no client certificate is sent",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says what it leaves out of an exporter list and a temporality it does not know", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_TRACES_EXPORTER: "otlp,console",
        OTEL_METRICS_EXPORTER: "prometheus,zipkin",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "Deltas",
      },
    );
    assert.equal(config.traces.enabled, true);
    assert.equal(config.metrics.enabled, false);
    assert.equal(config.metricsTemporality, "cumulative");
    assert.deepEqual(warnings, [
      'OTEL_TRACES_EXPORTER: "console" is not supported; it was ignored',
      'OTEL_METRICS_EXPORTER: "zipkin" is not supported; it was ignored',
      'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="deltas" is not cumulative, delta or lowmemory; using cumulative',
    ]);
  });

  it("takes the exemplar filters the specification names, and answers another", () => {
    const of = (v: string) =>
      resolveConfig({}, { OTEL_METRICS_EXEMPLAR_FILTER: v });
    assert.equal(resolveConfig({}, {}).config.exemplarFilter, "trace_based");
    assert.equal(of("ALWAYS_OFF").config.exemplarFilter, "always_off");
    assert.equal(of("always_on").config.exemplarFilter, "always_on");
    const { config, warnings } = of("sometimes");
    assert.equal(config.exemplarFilter, "trace_based");
    assert.deepEqual(warnings, [
      'OTEL_METRICS_EXEMPLAR_FILTER="sometimes" is not trace_based, always_on or always_off; using trace_based',
    ]);
  });

  it("answers a request for exponential histograms, which it does not send", () => {
    const name = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";
    assert.deepEqual(
      resolveConfig({}, { [name]: "explicit_bucket_histogram" }).warnings,
      [],
    );
    assert.deepEqual(
      resolveConfig({}, { [name]: "base2_exponential_bucket_histogram" })
        .warnings,
      [
        `${name}="base2_exponential_bucket_histogram" is not supported; histograms are sent with explicit buckets`,
      ],
    );
  });

  it("takes the temporality preferences the specification names, in any case", () => {
    const of = (v: string | undefined) =>
      resolveConfig(
        {},
        v === undefined
          ? {}
          : { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: v },
      );
    assert.equal(of(undefined).config.metricsTemporality, "cumulative");
    for (const [v, want] of [
      ["Delta", "delta"],
      ["LOWMEMORY", "lowmemory"],
      [" cumulative ", "cumulative"],
    ] as const) {
      const { config, warnings } = of(v);
      assert.equal(config.metricsTemporality, want, v);
      assert.deepEqual(warnings, [], v);
    }
  });

  it("refuses integers past 2^31-1, which a timer would turn into 1 ms", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_METRIC_EXPORT_INTERVAL: "3000000000",
        OTEL_BSP_SCHEDULE_DELAY: "2147483648",
        THREADLINE_WATCH_INTERVAL: "2147483648",
        OTEL_EXPORTER_PROMETHEUS_PORT: "70000",
        OTEL_METRICS_EXPORTER: "prometheus",
      },
    );
    assert.equal(config.metrics.batch.scheduleDelayMs, 15_000);
    assert.equal(config.traces.batch.scheduleDelayMs, 1000);
    assert.equal(config.prometheus?.port, 9464);
    assert.equal(warnings.length, 4, warnings.join("\n"));
  });

  it("takes an init() option of another type as not given, saying so once by name, and reads its variable in its place", () => {
    const env = {
      OTEL_SERVICE_NAME: "from-env",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      THREADLINE_IGNORE_PATHS: "/livez",
      THREADLINE_CUSTOMER_HEADER: "x-tenant",
      THREADLINE_WATCH_URL: "none",
    };
    const { config, warnings } = resolveConfig(
      MISTYPED_OPTIONS as InitOptions,
      env,
    );
    for (const option of Object.keys(MISTYPED_OPTIONS))
      assert.equal(
        warnings.filter((w) => w.startsWith(`${option} `)).length,
        1,
        `${option} in\n${warnings.join("\n")}`,
      );
    assert.equal(warnings.length, Object.keys(MISTYPED_OPTIONS).length);
    assert.ok(
      warnings.includes(
        "endpoint is a number, not a string or a URL; using OTEL_EXPORTER_OTLP_ENDPOINT",
      ),
      warnings.join("\n"),
    );
    assert.ok(
      warnings.includes(
        "ignoreIncomingPaths is an object, not a list of strings or a comma-separated string; using THREADLINE_IGNORE_PATHS",
      ),
      warnings.join("\n"),
    );
    // All as if none were given, but the safety switches, which fail safe
    // as their variables do.
    const expected = resolveConfig({}, env).config;
    assert.deepEqual(config, {
      ...expected,
      edge: true,
      amqp: { ...expected.amqp, trustMessageBaggage: false },
    });
    assert.equal(config.traces.url, "http://collector:4318/v1/traces");
    assert.deepEqual(config.ignoreIncomingPaths, ["/livez"]);
  });

  it("checks the fields of init()'s prometheus, health and alarms options as the options themselves", () => {
    const { config, warnings } = resolveConfig(
      {
        prometheus: { host: 5, port: "9000" },
        health: { host: ["::"], port: 8081 },
        alarms: {
          rulesFile: 5,
          intervalMs: "20000",
          webhookUrl: {},
          slackWebhookUrl: true,
          pagerDutyRoutingKey: 5,
          pagerDutyUrl: 5,
        },
      } as unknown as InitOptions,
      { THREADLINE_ALARM_WEBHOOK_URL: "http://hooks:1/alarm" },
    );
    assert.deepEqual(config.prometheus, { host: "localhost", port: 9464 });
    assert.deepEqual(config.health, { host: "127.0.0.1", port: 8081 });
    assert.deepEqual(config.alarms, {
      rulesFile: undefined,
      intervalMs: 10_000,
      webhookUrl: "http://hooks:1/alarm",
      slackWebhookUrl: undefined,
      pagerDutyRoutingKey: undefined,
      pagerDutyUrl: undefined,
    });
    assert.deepEqual(warnings, [
      "prometheus.host is a number, not a string; using localhost",
      "alarms.rulesFile is a number, not a file path or a file: URL; it was ignored",
      "alarms.webhookUrl is an object, not a string or a URL; using THREADLINE_ALARM_WEBHOOK_URL",
      "alarms.slackWebhookUrl is a boolean, not a string or a URL; it was ignored",
      "alarms.pagerDutyRoutingKey is a number, not a string; it was ignored",
      "alarms.pagerDutyUrl is a number, not a string or a URL; it was ignored",
      "health.host is an array, not a string; using 127.0.0.1",
      'prometheus.port "9000" is not an integer from 0 to 65535; using 9464',
      'alarms.intervalMs "20000" is not an integer from 100 to 2147483647; using 10000',
    ]);
  });

  it("takes the values of other types init() has always used: URL objects, a port's digits, numbers and booleans as text", () => {
    const dir = mkdtempSync(join(tmpdir(), "threadline-config-"));
    try {
      const rules = join(dir, "rules.json");
      const { config, warnings } = resolveConfig(
        {
          serviceName: 42,
          endpoint: new URL("http://collector.internal:4318"),
          headers: { "x-tenant": 42, "x-debug": true },
          thirdParties: { "api.example.com": 7 },
          health: { port: "8081" },
          alarms: {
            rulesFile: pathToFileURL(rules),
            webhookUrl: new URL("http://hooks.internal/alarm"),
            slackWebhookUrl: new URL("https://hooks.slack.com/services/T/B/x"),
            pagerDutyRoutingKey: "key",
            pagerDutyUrl: new URL("https://events.pagerduty.example/v2"),
          },
          watchUrl: new URL("http://watch.internal/list"),
          watchHeaders: { "x-tenant": 42, "x-debug": false },
        } as unknown as InitOptions,
        {},
      );
      assert.deepEqual(warnings, []);
      assert.equal(config.serviceName, "42");
      for (const signal of [config.traces, config.logs, config.metrics])
        assert.equal(
          signal.url,
          `http://collector.internal:4318/v1/${signal === config.traces ? "traces" : signal === config.logs ? "logs" : "metrics"}`,
        );
      assert.deepEqual(config.traces.headers, {
        "x-tenant": "42",
        "x-debug": "true",
      });
      assert.deepEqual(config.thirdParties, { "api.example.com": "7" });
      assert.deepEqual(config.health, { host: "127.0.0.1", port: 8081 });
      assert.equal(config.alarms?.rulesFile, rules);
      assert.equal(config.alarms?.webhookUrl, "http://hooks.internal/alarm");
      assert.equal(
        config.alarms?.slackWebhookUrl,
        "https://hooks.slack.com/services/T/B/x",
      );
      assert.equal(
        config.alarms?.pagerDutyUrl,
        "https://events.pagerduty.example/v2",
      );
      assert.equal(config.watch?.url, "http://watch.internal/list");
      assert.deepEqual(config.watch?.headers, {
        "x-tenant": "42",
        "x-debug": "false",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Only whole decimal digits make a port, and a number that is no
    // finite one makes no header.
    const { config, warnings } = resolveConfig(
      {
        health: { port: "80a" },
        headers: { "x-nan": Number.NaN },
      } as unknown as InitOptions,
      {},
    );
    assert.equal(config.health, undefined);
    assert.deepEqual(config.traces.headers, {});
    assert.deepEqual(warnings, [
      'headers\' "x-nan" is a number, not a string, a number or a boolean; it was ignored',
      'health.port "80a" is not an integer from 0 to 65535; the health endpoint is off',
    ]);
  });

  it("takes OTEL_TRACES_SAMPLER_ARG as a decimal number only, and says so of anything else", () => {
    const sampler = (arg: string) =>
      resolveConfig(
        {},
        {
          OTEL_TRACES_SAMPLER: "traceidratio",
          OTEL_TRACES_SAMPLER_ARG: arg,
        },
      );
    assert.equal(sampler(" .5 ").config.sampler.ratio, 0.5);
    assert.equal(sampler("1e-2").config.sampler.ratio, 0.01);
    assert.equal(sampler("0").config.sampler.ratio, 0);
    for (const v of ["0x0", "0b1", "0o0", "1/2", "half"]) {
      const { config, warnings } = sampler(v);
      assert.equal(config.sampler.ratio, 1, v);
      assert.deepEqual(warnings, [
        `OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(v)} is not between 0 and 1; using 1`,
      ]);
    }
  });

  it("takes THREADLINE_HEALTH_PORT as decimal digits only, and says so of anything else", () => {
    assert.deepEqual(
      resolveConfig({}, { THREADLINE_HEALTH_PORT: " 9221 " }).config.health,
      { host: "127.0.0.1", port: 9221 },
    );
    for (const v of ["0x2405", "1e3", "9221.0", "-1", "65536"]) {
      const { config, warnings } = resolveConfig(
        {},
        { THREADLINE_HEALTH_PORT: v },
      );
      assert.equal(config.health, undefined, v);
      assert.deepEqual(warnings, [
        `THREADLINE_HEALTH_PORT=${JSON.stringify(v)} is not an integer from 0 to 65535; the health endpoint is off`,
      ]);
    }
  });

  it("takes every integer variable as decimal digits only, and says so of anything else", () => {
    for (const [name, fallback] of [
      ["OTEL_BSP_MAX_QUEUE_SIZE", 2048],
      ["OTEL_ATTRIBUTE_COUNT_LIMIT", 128],
      ["THREADLINE_SHUTDOWN_TIMEOUT", 3000],
    ] as const)
      for (const v of ["0x10", "1e3", "16.0", "0b11"]) {
        const { warnings } = resolveConfig({}, { [name]: v });
        assert.equal(warnings.length, 1, `${name}=${v}`);
        assert.match(
          warnings[0]!,
          new RegExp(
            `^${name}="${v.replace(".", "\\.")}" is not an integer from \\d+ to \\d+; using ${fallback}$`,
          ),
        );
      }
    const { config, warnings } = resolveConfig(
      {},
      { OTEL_BSP_MAX_QUEUE_SIZE: " 16 ", THREADLINE_SHUTDOWN_TIMEOUT: "1000" },
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.shutdownTimeoutMs, 1000);
  });

  it("takes a list option as the comma-separated text of its variable", () => {
    const { config, warnings } = resolveConfig(
      {
        disabledInstrumentations: "http, PG" as unknown as string[],
        ignoreIncomingPaths: "/health, /internal/*" as unknown as string[],
        amqpExternalExchanges: "partners,," as unknown as string[],
        logRedact: "req.body.ssn" as unknown as string[],
        trustedCallers: "10.0.0.0/8",
      },
      {},
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.instrumentations.http, false);
    assert.equal(config.instrumentations.pg, false);
    assert.equal(config.instrumentations.pino, true);
    assert.deepEqual(config.ignoreIncomingPaths, ["/health", "/internal/*"]);
    assert.deepEqual(config.amqp.externalExchanges, ["partners"]);
    assert.deepEqual(config.logRedact, ["req.body.ssn"]);
    assert.equal(config.trustedCallers, "10.0.0.0/8");
  });

  it("warns of an external exchange written as a pattern, which names are not", () => {
    const { config, warnings } = resolveConfig(
      {},
      { THREADLINE_AMQP_EXTERNAL_EXCHANGES: "partners,partner-*" },
    );
    assert.deepEqual(config.amqp.externalExchanges, ["partners", "partner-*"]);
    assert.deepEqual(warnings, [
      'THREADLINE_AMQP_EXTERNAL_EXCHANGES: exchanges are named exactly, not by patterns: "partner-*" covers only an exchange of that very name',
    ]);
  });

  it("warns of an ignored path that never matches a request's path, or matches only with a slash after it", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        THREADLINE_IGNORE_PATHS:
          "/livez,health,/a/*/b,/health/,/internal/*,/,*,metrics*",
      },
    );
    assert.deepEqual(config.ignoreIncomingPaths, [
      "/livez",
      "health",
      "/a/*/b",
      "/health/",
      "/internal/*",
      "/",
      "*",
      "metrics*",
    ]);
    assert.deepEqual(warnings, [
      'THREADLINE_IGNORE_PATHS: "health" never matches: a request\'s path starts with /',
      'THREADLINE_IGNORE_PATHS: "/a/*/b" matches only a path of that very text: * stands for the rest of a path only at the end',
      'THREADLINE_IGNORE_PATHS: "/health/" matches /health/ alone, not /health: paths are matched exactly',
      'THREADLINE_IGNORE_PATHS: "metrics*" never matches: a request\'s path starts with /',
    ]);
    assert.deepEqual(
      resolveConfig({ ignoreIncomingPaths: ["health"] }, {}).warnings,
      [
        'THREADLINE_IGNORE_PATHS: "health" never matches: a request\'s path starts with /',
      ],
    );
  });

  it("takes a map option as the key=value text of its variable, and leaves out an entry of another type", () => {
    const { config, warnings } = resolveConfig(
      {
        headers: "Api-Key=s3cret%20key" as unknown as Record<string, string>,
        watchHeaders: { authorization: [42], "x-ok": "1" } as unknown as Record<
          string,
          string
        >,
        resourceAttributes: "team=a,bad=%ZZ" as unknown as Record<
          string,
          string
        >,
        thirdParties: "api.stripe.com=stripe" as unknown as Record<
          string,
          string
        >,
        watchUrl: "http://127.0.0.1:1/watch",
      },
      {},
    );
    assert.equal(config.traces.headers["api-key"], "s3cret key");
    assert.deepEqual(config.watch?.headers, { "x-ok": "1" });
    // Dropped whole, as the variable is.
    assert.equal(config.resourceAttributes["team"], undefined);
    assert.equal(config.thirdParties, "api.stripe.com=stripe");
    assert.deepEqual(warnings, [
      'resourceAttributes entry "bad" is not valid percent-encoding; it was ignored',
      "resourceAttributes was ignored whole",
      'watchHeaders\' "authorization" is an array, not a string, a number or a boolean; it was ignored',
    ]);
  });

  it("takes init() options that are no object as none, with a warning", () => {
    const env = { OTEL_SERVICE_NAME: "from-env" };
    for (const given of [null, "orders", 5, ["serviceName"]]) {
      const { config, warnings } = resolveConfig(given as InitOptions, env);
      assert.deepEqual(config, resolveConfig({}, env).config);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0]!, /^init\(\) takes an object of options, not /);
    }
    // An option given as null is one not given, as `??` reads it.
    assert.deepEqual(
      resolveConfig(
        { endpoint: null, shutdownTimeoutMs: null, edge: null } as never,
        env,
      ).warnings,
      [],
    );
  });

  it("keeps the default propagators when none named is known", () => {
    const { config, warnings } = resolveConfig({}, { OTEL_PROPAGATORS: "b3" });
    assert.deepEqual(config.propagators, ["tracecontext", "baggage"]);
    assert.equal(warnings.length, 1);
    assert.deepEqual(
      resolveConfig({}, { OTEL_PROPAGATORS: "none" }).config.propagators,
      [],
    );
  });

  it("names the unknown instrumentations of an enabled list", () => {
    const { config, warnings } = resolveConfig(
      {},
      { OTEL_NODE_ENABLED_INSTRUMENTATIONS: "htpp,pino" },
    );
    assert.equal(config.instrumentations.pino, true);
    assert.equal(config.instrumentations.http, false);
    assert.deepEqual(warnings.length, 1);
    assert.match(warnings[0]!, /"htpp"/);
  });

  it("leaves out export headers HTTP cannot carry, and keeps the rest", () => {
    const { config, warnings } = resolveConfig(
      {},
      {
        OTEL_EXPORTER_OTLP_HEADERS:
          "authorization=Basic%20abc,bad header=1,x-euro=%E2%82%AC,x-ok=1",
      },
    );
    assert.deepEqual(config.traces.headers, {
      authorization: "Basic abc",
      "x-ok": "1",
    });
    // Said once, under the variable's name, though every signal uses it.
    assert.deepEqual(warnings, [
      'OTEL_EXPORTER_OTLP_HEADERS: "(an invalid name)" is not a valid HTTP header; it was ignored',
      'OTEL_EXPORTER_OTLP_HEADERS: "x-euro" is not a valid HTTP header; it was ignored',
    ]);
  });

  it("lets a signal's and init()'s export headers replace the general ones whatever their case", () => {
    const { config, warnings } = resolveConfig(
      { headers: { "X-Team": "code" } },
      {
        OTEL_EXPORTER_OTLP_HEADERS:
          "Authorization=Bearer%20general,x-team=env,User-Agent=mine,Content-Type=application/json",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "authorization=Bearer%20traces",
      },
    );
    assert.deepEqual(config.traces.headers, {
      authorization: "Bearer traces",
      "x-team": "code",
      "user-agent": "mine",
    });
    assert.equal(config.logs.headers["authorization"], "Bearer general");
    // The exporter names its body's type itself.
    assert.deepEqual(warnings, [
      'OTEL_EXPORTER_OTLP_HEADERS: "Content-Type" is set by the exporter for each request; it was ignored',
    ]);
  });

  it("drops OTEL_RESOURCE_ATTRIBUTES whole when an entry cannot be decoded", () => {
    const { config, warnings } = resolveConfig(
      {},
      { OTEL_RESOURCE_ATTRIBUTES: "team=a,bad=%ZZ,service.name=x" },
    );
    assert.equal(config.resourceAttributes["team"], undefined);
    assert.equal(config.serviceName, "unknown_service:node");
    assert.equal(warnings.length, 2, warnings.join("\n"));
  });

  it("never repeats header values in warnings", () => {
    const { warnings } = resolveConfig(
      {},
      {
        OTEL_EXPORTER_OTLP_HEADERS:
          "authorization=Bearer%zzsecret,=orphan-secret",
      },
    );
    assert.equal(warnings.length, 2);
    for (const w of warnings) assert.ok(!w.includes("secret"), w);
  });
});

describe("fillFromPm2Env", () => {
  it("fills in only the OTEL_ and THREADLINE_ variables the environment lacks", () => {
    const env: Record<string, string | undefined> = {
      OTEL_SERVICE_NAME: "set",
      pm2_env: JSON.stringify({
        name: "orders",
        NODE_ENV: "production",
        OTEL_SERVICE_NAME: "from-pm2",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        THREADLINE_HEALTH_PORT: 9477,
        THREADLINE_RUNTIME_METRICS: false,
        OTEL_RESOURCE_ATTRIBUTES: { not: "text" },
        env: { OTEL_LOG_LEVEL: "debug" },
      }),
    };
    fillFromPm2Env(env);
    const { pm2_env: _, ...rest } = env;
    assert.deepEqual(rest, {
      OTEL_SERVICE_NAME: "set",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      THREADLINE_HEALTH_PORT: "9477",
      THREADLINE_RUNTIME_METRICS: "false",
    });
  });

  it("leaves the environment as it is when pm2_env is not a JSON object", () => {
    for (const raw of ["{not json", "[1]", "null", '"OTEL_SERVICE_NAME"']) {
      const env: Record<string, string | undefined> = { pm2_env: raw };
      fillFromPm2Env(env);
      assert.deepEqual(env, { pm2_env: raw });
    }
  });
});
