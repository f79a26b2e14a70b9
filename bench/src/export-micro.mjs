// The export pipeline's throughput: spans started, ended, batched, encoded
// as OTLP protobuf and sent to the sink, per second, for Threadline or for
// upstream OpenTelemetry's BatchSpanProcessor with its OTLP protobuf exporter.
// Both queues hold every span: on a busy machine the producer can run ahead
// of the sends, and a full queue drops spans, which would make the two do
// different work; the count of spans sent checks that they did the same.
import { trace } from "@opentelemetry/api";

const SPANS = 100_000;
const tick = () => new Promise((r) => setImmediate(r));
const attributes = {
  "http.request.method": "GET",
  "url.path": "/orders/17",
  "http.response.status_code": 200,
  "customer.id": "c-42",
};

async function produce(tracer) {
  for (let i = 0; i < SPANS; i += 256) {
    for (let j = 0; j < Math.min(256, SPANS - i); j++)
      tracer.startSpan("GET /orders/:id", { attributes }).end();
    await tick();
  }
}

async function threadline() {
  process.env["OTEL_BSP_MAX_QUEUE_SIZE"] = String(SPANS);
  const { init } = await import("@threadline/node");
  const sdk = init({ serviceName: "bench", exportLogs: false });
  const t0 = performance.now();
  await produce(trace.getTracer("bench"));
  await sdk.forceFlush();
  const stats = sdk.stats();
  if (stats.traces.exported !== SPANS)
    throw new Error(
      `exported ${stats.traces.exported} of ${SPANS}: ${JSON.stringify(stats.traces.dropped)}`,
    );
  return SPANS / ((performance.now() - t0) / 1000);
}

async function upstream() {
  const { TracerProvider, BatchSpanProcessor } =
    await import("@opentelemetry/sdk-trace");
  const { OTLPTraceExporter } =
    await import("@opentelemetry/exporter-trace-otlp-proto");
  let exported = 0;
  const exporter = new OTLPTraceExporter();
  const counting = {
    export: (spans, done) =>
      exporter.export(spans, (r) => {
        if (r.code === 0) exported += spans.length;
        done(r);
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.(),
  };
  const processor = new BatchSpanProcessor({
    exporter: counting,
    maxQueueSize: SPANS,
    maxExportBatchSize: 512,
    scheduledDelayMillis: 1000,
  });
  const provider = new TracerProvider({ spanProcessors: [processor] });
  const t0 = performance.now();
  await produce(provider.getTracer("bench"));
  await provider.forceFlush();
  if (exported !== SPANS) throw new Error(`exported ${exported} of ${SPANS}`);
  await provider.shutdown();
  return SPANS / ((performance.now() - t0) / 1000);
}

const rate =
  process.env.WHO === "upstream" ? await upstream() : await threadline();
console.log(Math.round(rate));
