// The contenders of the overhead benchmark: how each agent is loaded into a
// bench service and pointed at the local sink.
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const services = fileURLToPath(new URL("../services/", import.meta.url));

export interface Contender {
  name: string;
  label: string;
  execArgv: string[];
  env: (sink: string) => Record<string, string>;
}

export const contenders: Contender[] = [
  { name: "none", label: "no agent", execArgv: [], env: () => ({}) },
  {
    name: "threadline-100",
    label: "Threadline, 100% sampling",
    execArgv: ["-r", "@threadline/node/register"],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_SERVICE_NAME: "bench",
    }),
  },
  {
    // Not a product setting: splits Threadline's cost into instrumentation
    // (contexts, spans, propagation, log correlation) and export.
    name: "threadline-no-export",
    label: "Threadline, 100% sampling, exporters off (instrumentation alone)",
    execArgv: ["-r", "@threadline/node/register"],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_SERVICE_NAME: "bench",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
    }),
  },
  {
    name: "threadline-10",
    label: "Threadline, 10% sampling",
    execArgv: ["-r", "@threadline/node/register"],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_SERVICE_NAME: "bench",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.1",
    }),
  },
  {
    name: "otel",
    label: "OpenTelemetry sdk-node (http, pg, amqplib, pino; OTLP proto)",
    execArgv: ["-r", join(services, "otel-upstream.cjs")],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_SERVICE_NAME: "bench",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_LOGS_EXPORTER: "otlp",
      OTEL_METRICS_EXPORTER: "none",
    }),
  },
  {
    // How most services start upstream today: zero-code, every
    // instrumentation the package bundles (the setup ANCHORS.md measured).
    name: "otel-auto",
    label:
      "OpenTelemetry zero-code (auto-instrumentations-node/register; OTLP proto)",
    execArgv: ["-r", "@opentelemetry/auto-instrumentations-node/register"],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_SERVICE_NAME: "bench",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_LOGS_EXPORTER: "otlp",
      OTEL_METRICS_EXPORTER: "none",
      // No cloud detectors: they would ask metadata addresses off this machine.
      OTEL_NODE_RESOURCE_DETECTORS: "env,host,os,process,serviceinstance",
    }),
  },
  {
    name: "dd-trace",
    label: "dd-trace",
    execArgv: ["-r", "dd-trace/init"],
    env: (sink) => ({
      DD_TRACE_AGENT_URL: sink,
      DD_SERVICE: "bench",
      DD_TRACE_SAMPLE_RATE: "1",
      DD_LOGS_INJECTION: "true",
      DD_RUNTIME_METRICS_ENABLED: "false",
      DD_TRACE_STARTUP_LOGS: "false",
      DD_REMOTE_CONFIGURATION_ENABLED: "false",
      DD_INSTRUMENTATION_TELEMETRY_ENABLED: "false",
      DD_PROFILING_ENABLED: "false",
      DD_DOGSTATSD_URL: "udp://127.0.0.1:9",
    }),
  },
  {
    name: "elastic",
    label: "elastic-apm-node",
    execArgv: ["-r", "elastic-apm-node/start"],
    env: (sink) => ({
      ELASTIC_APM_SERVER_URL: sink,
      ELASTIC_APM_SERVICE_NAME: "bench",
      ELASTIC_APM_TRANSACTION_SAMPLE_RATE: "1",
      ELASTIC_APM_CENTRAL_CONFIG: "false",
      ELASTIC_APM_CLOUD_PROVIDER: "none",
      ELASTIC_APM_METRICS_INTERVAL: "0s",
      ELASTIC_APM_LOG_LEVEL: "off",
    }),
  },
];
