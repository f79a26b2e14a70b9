// Collects every metric on an interval (OTEL_METRIC_EXPORT_INTERVAL) and
// hands the snapshot to the export pipeline; once more, synchronously, when
// the process ends. The timer never keeps the process alive. It is the one
// collector that may ask for delta temporality (the Prometheus endpoint is
// cumulative by nature).
import { diag } from "@threadline/core";
import type { Attributes, MetricData } from "@threadline/otlp";
import type { ExportPipeline } from "../export/pipeline.ts";
import type { TemporalityPreference } from "./instruments.ts";
import { Reader, type MeterProvider } from "./meter-provider.ts";

export class MetricReader {
  readonly #provider: MeterProvider;
  readonly #pipeline: ExportPipeline;
  readonly #pointAttributes: Attributes | undefined;
  readonly #temporality: TemporalityPreference;
  /** The export's own windows of what callbacks report since the last collection. */
  readonly #reader = new Reader("OTLP export");
  #timer: NodeJS.Timeout | undefined;
  /** Set by start(); a reader never started (metrics export off) collects nothing. */
  #started = false;

  /**
   * `pointAttributes` are added to every point exported (a worker thread's
   * `thread.id`); `temporality` is the OTLP export's preference.
   */
  constructor(
    provider: MeterProvider,
    pipeline: ExportPipeline,
    options: {
      pointAttributes?: Attributes | undefined;
      temporality?: TemporalityPreference;
    } = {},
  ) {
    this.#provider = provider;
    this.#pipeline = pipeline;
    this.#pointAttributes = options.pointAttributes;
    this.#temporality = options.temporality ?? "cumulative";
  }

  start(intervalMs: number): void {
    this.#started = true;
    this.#timer = setInterval(() => void this.exportNow(), intervalMs);
    this.#timer.unref();
  }

  /**
   * Collects and hands the snapshot over; `deadline` (performance.now()
   * time) bounds the wait for asynchronous callbacks below the callback
   * timeout (shutdown's, within its own).
   */
  async exportNow(deadline?: number): Promise<void> {
    if (!this.#started) return;
    try {
      this.#pipeline.exportMetrics(
        this.#labelled(
          await this.#provider.collect(
            this.#temporality,
            this.#reader,
            deadline,
          ),
        ),
      );
    } catch (err) {
      diag.warnCollapsed(
        "metrics-collect",
        `could not collect metrics: ${(err as Error).message}`,
      );
    }
  }

  exportSync(): void {
    if (!this.#started) return;
    try {
      this.#pipeline.exportMetrics(
        this.#labelled(
          this.#provider.collectSync(this.#temporality, this.#reader),
        ),
      );
    } catch (err) {
      diag.warnCollapsed(
        "metrics-collect",
        `could not collect metrics: ${(err as Error).message}`,
      );
    }
  }

  #labelled(metrics: MetricData[]): MetricData[] {
    const extra = this.#pointAttributes;
    if (extra === undefined) return metrics;
    return metrics.map(
      (m) =>
        ({
          ...m,
          points: m.points.map((p) => ({
            ...p,
            attributes: { ...p.attributes, ...extra },
          })),
        }) as MetricData,
    );
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
