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
  /** The handlers it runs with; all when absent. */
  handlers?: readonly string[];
}

/**
 * Microseconds of busy waiting per request for the yardstick: about what
 * keeping 0.80 of no-agent throughput leaves the application's thread on
 * the realistic handler, if that thread sets the pace (see the profile
 * section of the report).
 */
export const BUSY_WAIT_US = 30;
/** The yardstick's contender name. */
export const YARDSTICK = `busy-wait-${BUSY_WAIT_US}`;

/** Threadline loaded one line, exporting to the sink, with `settings` on top. */
function threadline(
  name: string,
  label: string,
  settings: Record<string, string> = {},
): Contender {
  return {
    name,
    label,
    execArgv: ["-r", "@threadline/node/register"],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_SERVICE_NAME: "bench",
      ...settings,
    }),
  };
}

/** Upstream OpenTelemetry loaded by `preload`, its exporters chosen by OTEL_* variables. */
function upstream(
  name: string,
  label: string,
  preload: string,
  settings: Record<string, string> = {},
): Contender {
  return {
    name,
    label,
    execArgv: ["-r", preload],
    env: (sink) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_SERVICE_NAME: "bench",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_LOGS_EXPORTER: "otlp",
      OTEL_METRICS_EXPORTER: "none",
      ...settings,
    }),
  };
}

export const contenders: Contender[] = [
  { name: "none", label: "no agent", execArgv: [], env: () => ({}) },
  threadline("threadline-100", "Threadline, 100% sampling"),
  // Not an agent: what a known amount of the application thread's time per
  // request costs on this machine, to read the agents' figures against.
  {
    name: YARDSTICK,
    label: `no agent, ${BUSY_WAIT_US} µs of busy waiting at the start of each request (a yardstick, not an agent)`,
    execArgv: ["-r", join(services, "busy-wait.cjs")],
    env: () => ({ BUSY_WAIT_US: String(BUSY_WAIT_US) }),
    handlers: ["realistic"],
  },
  // Not a product setting: splits Threadline's cost into instrumentation
  // (contexts, spans, propagation, log correlation) and export.
  threadline(
    "threadline-no-export",
    "Threadline, 100% sampling, exporters off (instrumentation alone)",
    {
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
    },
  ),
  // Not the default: export (log parsing, sending) on a worker thread, which
  // costs a second V8 isolate's memory; measured to weigh the two.
  threadline(
    "threadline-worker",
    "Threadline, 100% sampling, export on a worker thread (THREADLINE_EXPORT_THREAD=worker)",
    { THREADLINE_EXPORT_THREAD: "worker" },
  ),
  threadline("threadline-10", "Threadline, 10% sampling", {
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.1",
  }),
  upstream(
    "otel",
    "OpenTelemetry sdk-node (http, pg, amqplib, pino; OTLP proto)",
    join(services, "otel-upstream.cjs"),
  ),
  // How most services start upstream today: zero-code, every
  // instrumentation the package bundles.
  upstream(
    "otel-auto",
    "OpenTelemetry zero-code (auto-instrumentations-node/register; OTLP proto)",
    "@opentelemetry/auto-instrumentations-node/register",
    // No cloud detectors: they would ask metadata addresses off this machine.
    { OTEL_NODE_RESOURCE_DETECTORS: "env,host,os,process,serviceinstance" },
  ),
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
