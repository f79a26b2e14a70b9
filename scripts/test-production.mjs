// The production-path tier (`npm run test:production`): builds or reuses the
// Collector (ocb) and Jaeger v2 (Go modules) and the Elasticsearch
// distribution (Maven Central), checks every shipped configuration with
// `validate` (and docker-compose.yml with `docker compose config`), starts
// Elasticsearch, Jaeger on Elasticsearch storage, the gateway and an agent
// Collector on free loopback ports, and runs the end-to-end tests in test/production/ against them (with PostgreSQL and
// RabbitMQ from the usual test runner), then the CLI's Elasticsearch
// backend against an Elasticsearch of its own. Builds are cached between
// runs, so only the first run pays for them.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { freePort } from "@threadline/test-support";
import {
  CONFIGS as COLLECTOR_CONFIGS,
  ensureCollector,
  startCollector,
  validateConfig,
} from "./backends/collector.mjs";
import { repoRoot } from "./backends/common.mjs";
import { ensureCompose, validateComposeFile } from "./backends/compose.mjs";
import {
  ensureElasticsearch,
  startElasticsearch,
} from "./backends/elasticsearch.mjs";
import {
  CONFIGS as JAEGER_CONFIGS,
  ensureJaeger,
  startJaeger,
  validateJaegerConfig,
} from "./backends/jaeger.mjs";

const config = (f) => join(repoRoot, "collector-config", f);
const TAIL_PERCENT = "10";

function timed(what, fn) {
  const t0 = Date.now();
  const result = fn();
  console.log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

timed("Collector (ocb build or cache)", () => ensureCollector());
timed("Jaeger (Go build or cache)", () => ensureJaeger());
timed("Elasticsearch (Maven Central or cache)", () => ensureElasticsearch());
timed("Docker Compose (Go build or cache)", () => ensureCompose());
for (const c of COLLECTOR_CONFIGS) {
  validateConfig(c);
  console.log(`otelcol validate ${c.slice(repoRoot.length + 1)}: ok`);
}
for (const c of JAEGER_CONFIGS) {
  validateJaegerConfig(c);
  console.log(`jaeger validate ${c.slice(repoRoot.length + 1)}: ok`);
}
validateComposeFile();
console.log("docker compose config docker-compose.yml: ok");

const ports = {};
for (const name of [
  "es",
  "jaegerOtlpGrpc",
  "jaegerOtlpHttp",
  "jaegerQuery",
  "jaegerQueryGrpc",
  "jaegerHealth",
  "jaegerMetrics",
  "gatewayGrpc",
  "gatewayHttp",
  "gatewayHealth",
  "gatewayMetrics",
  "agentGrpc",
  "agentHttp",
  "agentHealth",
  "agentMetrics",
])
  ports[name] = await freePort();
const at = (p) => `127.0.0.1:${p}`;

const running = [];
let status = 1;
try {
  const es = await startElasticsearch({ port: ports.es });
  running.push(es);
  const env = {
    THREADLINE_JAEGER_OTLP_GRPC_ENDPOINT: at(ports.jaegerOtlpGrpc),
    THREADLINE_JAEGER_OTLP_HTTP_ENDPOINT: at(ports.jaegerOtlpHttp),
    THREADLINE_JAEGER_QUERY_HTTP_ENDPOINT: at(ports.jaegerQuery),
    THREADLINE_JAEGER_QUERY_GRPC_ENDPOINT: at(ports.jaegerQueryGrpc),
    THREADLINE_JAEGER_HEALTH_ENDPOINT: at(ports.jaegerHealth),
    THREADLINE_JAEGER_METRICS_PORT: String(ports.jaegerMetrics),
    THREADLINE_JAEGER_ES_URL: es.url,
    THREADLINE_GATEWAY_OTLP_GRPC_ENDPOINT: at(ports.gatewayGrpc),
    THREADLINE_GATEWAY_OTLP_HTTP_ENDPOINT: at(ports.gatewayHttp),
    THREADLINE_GATEWAY_HEALTH_ENDPOINT: at(ports.gatewayHealth),
    THREADLINE_GATEWAY_METRICS_PORT: String(ports.gatewayMetrics),
    THREADLINE_JAEGER_OTLP_ENDPOINT: at(ports.jaegerOtlpGrpc),
    THREADLINE_ES_ENDPOINT: es.url,
    // Short waits so the test sees decisions in seconds, not the defaults' 10 s.
    THREADLINE_ES_FLUSH_TIMEOUT: "1s",
    // A logs queue the test's lines outgrow while Elasticsearch is stopped,
    // so the gateway refuses some and the agent has to send them again.
    THREADLINE_ES_LOGS_QUEUE_SIZE: "2048",
    THREADLINE_TAIL_DECISION_WAIT: "3s",
    THREADLINE_TAIL_LATENCY_THRESHOLD_MS: "800",
    THREADLINE_TAIL_SAMPLE_PERCENT: TAIL_PERCENT,
    THREADLINE_TAIL_WATCH_CUSTOMERS: "[c-1007, c-2001]",
    THREADLINE_AGENT_OTLP_GRPC_ENDPOINT: at(ports.agentGrpc),
    THREADLINE_AGENT_OTLP_HTTP_ENDPOINT: at(ports.agentHttp),
    THREADLINE_AGENT_HEALTH_ENDPOINT: at(ports.agentHealth),
    THREADLINE_AGENT_METRICS_PORT: String(ports.agentMetrics),
    THREADLINE_GATEWAY_ENDPOINTS: at(ports.gatewayGrpc),
  };
  running.push(
    await startJaeger({
      config: config("jaeger-elasticsearch.yaml"),
      env,
      queryUrl: `http://${at(ports.jaegerQuery)}`,
    }),
  );
  running.push(
    await startCollector({
      config: config("gateway.yaml"),
      env,
      healthUrl: `http://${at(ports.gatewayHealth)}/`,
      name: "gateway",
    }),
  );
  running.push(
    await startCollector({
      config: config("agent.yaml"),
      env,
      healthUrl: `http://${at(ports.agentHealth)}/`,
      name: "agent",
    }),
  );
  console.log(
    `production path up: agent ${at(ports.agentHttp)} -> gateway ${at(ports.gatewayGrpc)} -> Jaeger ${at(ports.jaegerQuery)} + Elasticsearch ${es.url}`,
  );
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, "scripts", "run-tests.mjs"),
      join(repoRoot, "test", "production", "production-path.e2e.ts"),
    ],
    {
      stdio: "inherit",
      env: {
        ...process.env,
        THREADLINE_E2E_AGENT_URL: `http://${at(ports.agentHttp)}`,
        THREADLINE_E2E_JAEGER_URL: `http://${at(ports.jaegerQuery)}`,
        THREADLINE_E2E_JAEGER_GRPC_URL: `grpc://${at(ports.jaegerQueryGrpc)}`,
        THREADLINE_E2E_ELASTICSEARCH_URL: es.url,
        // Its process group, which the test stops and continues.
        THREADLINE_E2E_ELASTICSEARCH_PID: String(es.pid),
        THREADLINE_E2E_TAIL_PERCENT: TAIL_PERCENT,
        THREADLINE_E2E_LISTED_CUSTOMERS: "c-1007,c-2001",
      },
    },
  );
  status = await new Promise((resolve) =>
    child.on("close", (code) => resolve(code ?? 1)),
  );
  if (status !== 0)
    for (const r of running.slice(1))
      console.error(`--- ${r.name} (last lines)\n${r.output().slice(-3000)}`);
} catch (err) {
  console.error(`the production path did not start: ${err.message}`);
} finally {
  for (const r of running.reverse()) await r.stop().catch(() => {});
}
// The CLI's Elasticsearch backend against many more documents than one
// request returns: on an Elasticsearch of its own, so nothing the path
// above stored changes what it finds.
if (status === 0) {
  const child = spawn(
    process.execPath,
    [
      "--test",
      "--test-reporter=spec",
      join(repoRoot, "test", "production", "elasticsearch-backend.e2e.ts"),
    ],
    { stdio: "inherit" },
  );
  status = await new Promise((resolve) =>
    child.on("close", (code) => resolve(code ?? 1)),
  );
}
process.exit(status);
