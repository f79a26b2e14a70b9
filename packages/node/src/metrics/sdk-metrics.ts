// The SDK's own metrics: where every span, log record and metric point
// went (exported, or dropped and why) and what is still buffered, named
// after the OpenTelemetry semantic conventions for SDK self-observability.
// They are read from the pipeline's counters at collection time: nothing is
// recorded on the hot path.
import type { Meter } from "@opentelemetry/api";
import type { ExportPipeline } from "../export/pipeline.ts";
import { DROP_REASONS } from "../export/protocol.ts";

const ERROR_TYPE: Record<string, string> = {
  queueFull: "queue_full",
  retriesExhausted: "retries_exhausted",
  rejected: "rejected",
  shutdownDeadline: "shutdown_deadline",
};

export function registerSdkMetrics(
  meter: Meter,
  pipeline: ExportPipeline,
): void {
  const ended = meter.createObservableCounter("otel.sdk.span.ended", {
    unit: "{span}",
    description: "Spans ended and handed to export.",
  });
  const spans = meter.createObservableCounter(
    "otel.sdk.exporter.span.exported",
    {
      unit: "{span}",
      description: "Spans exported, or dropped (error.type says why).",
    },
  );
  const logsCreated = meter.createObservableCounter("otel.sdk.log.created", {
    unit: "{log_record}",
    description: "Log records captured for export.",
  });
  const logs = meter.createObservableCounter("otel.sdk.exporter.log.exported", {
    unit: "{log_record}",
    description: "Log records exported, or dropped (error.type says why).",
  });
  const pending = meter.createObservableUpDownCounter(
    "threadline.sdk.export.pending",
    { unit: "{item}", description: "Items buffered for export." },
  );
  const pendingBytes = meter.createObservableUpDownCounter(
    "threadline.sdk.export.pending.size",
    { unit: "By", description: "Encoded bytes buffered for export." },
  );
  meter.addBatchObservableCallback(
    (r) => {
      const s = pipeline.stats();
      r.observe(ended, s.traces.created);
      r.observe(logsCreated, s.logs.created);
      r.observe(spans, s.traces.exported);
      r.observe(logs, s.logs.exported);
      for (const reason of DROP_REASONS) {
        r.observe(spans, s.traces.dropped[reason], {
          "error.type": ERROR_TYPE[reason],
        });
        r.observe(logs, s.logs.dropped[reason], {
          "error.type": ERROR_TYPE[reason],
        });
      }
      for (const signal of ["traces", "logs", "metrics"] as const) {
        r.observe(pending, s[signal].pending, { "otel.signal": signal });
        r.observe(pendingBytes, s[signal].pendingBytes, {
          "otel.signal": signal,
        });
      }
    },
    [ended, spans, logsCreated, logs, pending, pendingBytes],
  );
}
