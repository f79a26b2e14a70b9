// Upstream OpenTelemetry as its documentation sets it up: sdk-node with the
// contrib http, pg, amqplib and pino instrumentations and the OTLP protobuf
// exporters for traces and logs. Loaded with `node -r ./otel-upstream.cjs`.
const { NodeSDK } = require("@opentelemetry/sdk-node");
const {
  OTLPTraceExporter,
} = require("@opentelemetry/exporter-trace-otlp-proto");
const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-proto");
const { BatchLogRecordProcessor } = require("@opentelemetry/sdk-logs");
const { HttpInstrumentation } = require("@opentelemetry/instrumentation-http");
const { PgInstrumentation } = require("@opentelemetry/instrumentation-pg");
const {
  AmqplibInstrumentation,
} = require("@opentelemetry/instrumentation-amqplib");
const { PinoInstrumentation } = require("@opentelemetry/instrumentation-pino");

const sdk = new NodeSDK({
  traceExporter: new OTLPTraceExporter(),
  logRecordProcessors: [new BatchLogRecordProcessor(new OTLPLogExporter())],
  instrumentations: [
    new HttpInstrumentation(),
    new PgInstrumentation(),
    new AmqplibInstrumentation(),
    new PinoInstrumentation(),
  ],
});
sdk.start();
process.on("SIGTERM", () => {
  sdk.shutdown().finally(() => process.exit(0));
});
