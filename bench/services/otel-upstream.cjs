// Upstream OpenTelemetry as its documentation sets it up: sdk-node with the
// contrib http, pg, amqplib and pino instrumentations, traces and logs
// exported over OTLP/HTTP protobuf (chosen by the contender's OTEL_*
// variables, the way sdk-node reads them). Loaded with `node -r`.
const { NodeSDK } = require("@opentelemetry/sdk-node");
const { HttpInstrumentation } = require("@opentelemetry/instrumentation-http");
const { PgInstrumentation } = require("@opentelemetry/instrumentation-pg");
const {
  AmqplibInstrumentation,
} = require("@opentelemetry/instrumentation-amqplib");
const { PinoInstrumentation } = require("@opentelemetry/instrumentation-pino");

const sdk = new NodeSDK({
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
