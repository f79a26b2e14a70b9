// The front half of export: bounded batch queues for ended spans and
// captured log lines, span encoding (one pass, straight from the span
// objects), and the hand-off to the exporter, which owns the network. The
// exporter runs on this thread (untraced), or on a worker thread when
// configured; it starts on first use and never keeps the process alive.
import type { MessagePort, Worker } from "node:worker_threads";
import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import {
  ALL_OWN_FIELDS,
  diag,
  suppressTracing,
  type LogRecordSink,
} from "@threadline/core";
import {
  MetricsEncoder,
  TraceEncoder,
  type Attributes,
  type MetricData,
} from "@threadline/otlp";
import type { ResolvedConfig } from "../config.ts";
import type { RecordingSpan, SpanSink } from "../trace/span.ts";
import { now } from "../internal/clock.ts";
import { VERSION } from "../version.ts";
import { BatchQueue, EncodingQueue } from "./batch-queue.ts";
import { bodyPool } from "./body-pool.ts";
import { Exporter } from "./exporter.ts";
import {
  ECS_NAMES,
  OWN_CUSTOMER,
  emptyStagedLog,
  LogStage,
  type StagedLog,
} from "./log-stage.ts";
import {
  CONTROL_FLUSHED,
  CONTROL_SLOTS,
  COUNTER_SLOTS,
  DROP_REASONS,
  counterIndex,
  type DropReason,
  type FromWorker,
  type LogsMessage,
  type Signal,
  type ToWorker,
  type TracesMessage,
  type WatchReadMessage,
  type WatchSourceMessage,
  type WorkerSettings,
} from "./protocol.ts";

/** Where the exporter on this thread runs: no span, no propagation, no request metrics. */
const UNTRACED = suppressTracing(ROOT_CONTEXT);

/** Where each span or log record went. */
export interface SignalStats {
  /** Finished spans / captured log records handed to the pipeline. */
  created: number;
  /** Delivered to the Collector (acknowledged). */
  exported: number;
  /** Lost, by reason. */
  dropped: Record<DropReason, number>;
  /** Still buffered or in flight. */
  pending: number;
  /** Encoded bytes buffered in the export worker (bounded by THREADLINE_EXPORT_MAX_BYTES). */
  pendingBytes: number;
}

export interface PipelineStats {
  traces: SignalStats;
  logs: SignalStats;
  /** Metric data points. */
  metrics: SignalStats;
}

/** The most bytes a batch of spans or log lines gathers before it goes. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Ended spans held before they are encoded together. On the bench services
 * (CPU profiles and peak RSS, two or three runs each): encoded one by one
 * as they ended, spans took 7.5-8.2 µs of the realistic service's main
 * thread per request; a whole batch of 512 at a time, 4.2-4.7 µs, but the
 * hello-world service's peak RSS rose from 105-113 to 116-127 MB, the held
 * spans surviving young-generation collections; 32 at a time, 5.4-5.7 µs
 * and 110-111 MB.
 */
const SPANS_HELD = 32;

/** What this thread counts itself, per signal. */
function mainCounts() {
  return {
    created: 0,
    queueFull: 0,
    rejected: 0,
    shutdownDeadline: 0,
    posted: 0,
    /** Of those posted, handed to an export worker (see #post). */
    handed: 0,
  };
}

/**
 * The export worker's environment: the application's without NODE_OPTIONS,
 * whose preloads (Threadline's register, another agent's) are no more for
 * the exporter than the command line's options are.
 */
function exportWorkerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env["NODE_OPTIONS"];
  return env;
}

/** The export worker's script once looked for; null before. */
let workerScript: URL | undefined | null = null;

/**
 * The export worker's script, beside this one; none in a bundle (no
 * export-worker.js is written beside it, and import.meta is empty in a
 * CommonJS one), where the exporter stays on this thread. Looked for when
 * a worker may be wanted, not as the module loads: with export on the
 * application's thread, only a process.exit() needs it.
 */
function workerScriptUrl(): URL | undefined {
  if (workerScript === null) {
    try {
      const url = new URL("./export-worker.js", import.meta.url);
      workerScript = process.getBuiltinModule("node:fs").existsSync(url)
        ? url
        : undefined;
    } catch {
      workerScript = undefined;
    }
  }
  return workerScript;
}
const NO_WORKER_SCRIPT =
  "there is no export-worker.js beside Threadline's code, as in a bundle";

/** Why the export worker could not start, once it could not. */
let workerFailed: string | undefined;

/**
 * Why no worker thread can take the export, or undefined when one can:
 * no script for it (a bundle), Node's permission model without
 * --allow-worker (new Worker() throws ERR_ACCESS_DENIED), or a start that
 * failed otherwise.
 */
function noWorkerReason(): string | undefined {
  if (workerScriptUrl() === undefined) return NO_WORKER_SCRIPT;
  if (process.permission?.has("worker") === false)
    return "Node's permission model allows no worker thread (--allow-worker)";
  return workerFailed;
}

function warnNoWorker(why: string): void {
  diag.warn(
    `THREADLINE_EXPORT_THREAD=worker is not possible: ${why}; exporting on the application's thread`,
  );
}

/** The warning for what an exit or shutdown could not send in time. */
function warnLost(counts: readonly number[], timeoutMs: number): void {
  warnDropped(
    counts,
    `not delivered within ${timeoutMs} ms (THREADLINE_SHUTDOWN_TIMEOUT)`,
  );
}

function warnDropped(counts: readonly number[], why: string): void {
  const what = ["spans", "log records", "metric points"];
  const lost = counts.flatMap((n, i) => (n > 0 ? [`${n} ${what[i]}`] : []));
  if (lost.length > 0) diag.warn(`dropped ${lost.join(", ")} at exit: ${why}`);
}

/**
 * Why a final flush dropped what no warning of the exporter's told, by the
 * counter that counts it. A refusal, or the retries that ran out, the
 * exporter says itself (read from the worker at exit: `#readSaid`).
 */
type FinalDrop = "shutdownDeadline" | "lastAttemptFailed";
type FinalDrops = Record<FinalDrop, number[]>;

export class ExportPipeline implements SpanSink, LogRecordSink {
  readonly #config: ResolvedConfig;
  readonly #settings: WorkerSettings;
  readonly #counters: Float64Array;
  readonly #control: Int32Array;
  readonly #encoder: TraceEncoder;
  /** Bytes at which a batch of spans or log lines is sealed (see the constructor). */
  readonly #maxBatchBytes: number;
  /**
   * The longest log line (in UTF-16 units, at most 3 bytes each) sure to be
   * within the export buffer's bytes: a longer one is measured (emit()).
   */
  readonly #surelyFits: number;
  readonly #spans: BatchQueue<RecordingSpan> | EncodingQueue<RecordingSpan>;
  readonly #logs: EncodingQueue<StagedLog>;
  /** Filled in by emit() and copied out at once by the log stage. */
  readonly #captured: StagedLog = emptyStagedLog();
  /** ECS_NAMES when the correlation is written under ECS's names. */
  readonly #names: number;
  readonly #main = {
    traces: mainCounts(),
    logs: mainCounts(),
    metrics: mainCounts(),
  };
  readonly #metricsEncoder: MetricsEncoder;
  readonly #flushWaiters = new Map<number, () => void>();
  #worker: Worker | undefined;
  /** Where the worker says what it has to say (FromWorker's diag). */
  #diagPort: MessagePort | undefined;
  /** Whether the exporter runs on this thread (exportThread 'main', or no worker thread allowed). */
  #onThread: boolean;
  /** The exporter on this thread (exportThread 'main'). */
  #exporter: Exporter | undefined;
  #onWatchRead: ((msg: WatchReadMessage) => void) | undefined;
  #watchSource: WatchSourceMessage | undefined;
  #flushId = 0;
  /** Final flushes under way: a signal's, beforeExit's, shutdown's, the exit's. */
  #finals = 0;
  /** What those flushes dropped, as far as it was said. */
  #said: FinalDrops | undefined;
  #closed = false;
  /** Set at exit: the exporter on this thread starts no request, even one made afterwards. */
  #held = false;

  constructor(
    config: ResolvedConfig,
    resource: Attributes,
    logScope: { name: string; version: string },
  ) {
    this.#config = config;
    this.#names = config.logFields === "ecs" ? ECS_NAMES : 0;
    const counters = new SharedArrayBuffer(COUNTER_SLOTS * 8);
    const control = new SharedArrayBuffer(CONTROL_SLOTS * 4);
    this.#counters = new Float64Array(counters);
    this.#control = new Int32Array(control);
    const endpoint = (s: ResolvedConfig["traces"]) => ({
      url: s.url,
      headers: s.headers,
      protocol: s.protocol,
      compression: s.compression,
      timeoutMs: s.timeoutMs,
      tls: s.tls,
    });
    this.#settings = {
      traces: endpoint(config.traces),
      logs: endpoint(config.logs),
      metrics: endpoint(config.metrics),
      resource,
      logScope,
      sdkScope: { name: "@threadline/node", version: VERSION },
      logLimits: config.logLimits,
      maxPendingBytes: config.exportMaxBytes,
      maxRetryMs: config.exportMaxRetryMs,
      counters,
      control,
    };
    // On this thread the exporter gives each body back to the pool once its
    // export is settled. A worker gets a copy of the whole ArrayBuffer a
    // body is a view of, so bodies for it are allocated to their size.
    const noWorker =
      config.exportThread === "worker" ? noWorkerReason() : undefined;
    this.#onThread = config.exportThread === "main" || noWorker !== undefined;
    if (noWorker !== undefined) warnNoWorker(noWorker);
    const allocate = this.#onThread ? bodyPool.acquire : Buffer.allocUnsafeSlow;
    // A batch of large spans or lines goes before its count is reached:
    // one batch must fit the byte budget a few times over. A buffer grown
    // past twice that (an unusually large item) is let go after its batch.
    const maxBatchBytes = Math.min(
      MAX_BATCH_BYTES,
      Math.floor(config.exportMaxBytes / 4),
    );
    const keepBytes = 2 * maxBatchBytes;
    this.#maxBatchBytes = maxBatchBytes;
    this.#surelyFits = Math.floor(config.exportMaxBytes / 3);
    this.#encoder = new TraceEncoder(resource, { allocate, keepBytes });
    this.#metricsEncoder = new MetricsEncoder(resource);
    // Protobuf spans are encoded a few at a time as they end, and then
    // only their bytes are kept (see batch-queue.ts); JSON, a debugging
    // format, is encoded a batch at a time.
    this.#spans =
      config.traces.protocol === "http/json"
        ? new BatchQueue(
            config.traces.batch,
            (batch) => this.#exportSpansJson(batch),
            () => this.#queueFull("traces"),
          )
        : new EncodingQueue<RecordingSpan>(
            config.traces.batch,
            this.#encoder,
            (body, count) => this.#postSpans(body, count),
            () => this.#queueFull("traces"),
            (err) => this.#encodeFailed(1, err),
            {
              hold: SPANS_HELD,
              onEncoded: (span) => span.release(),
              maxBatchBytes,
            },
          );
    this.#logs = new EncodingQueue(
      config.logs.batch,
      new LogStage({ allocate, keepBytes }),
      (body, count) => this.#post({ t: "logs", body, count }),
      () => this.#queueFull("logs"),
      (err) => {
        this.#main.logs.rejected++;
        diag.warnCollapsed(
          "logs-stage",
          `could not keep a log record for export: ${(err as Error).message}`,
        );
      },
      { maxBatchBytes },
    );
  }

  get tracesEnabled(): boolean {
    return this.#config.traces.enabled;
  }

  get logsEnabled(): boolean {
    return this.#config.logs.enabled;
  }

  drainSpans(): number {
    // drain() hands on every queued span, in batches: the queue is empty.
    this.#spans.drain();
    return this.#config.traces.batch.maxQueueSize;
  }

  onEnd(span: RecordingSpan): void {
    if (this.#closed || !this.#config.traces.enabled) return;
    this.#main.traces.created++;
    this.#spans.push(span);
  }

  emit(
    line: string,
    severityNumber: number,
    severityText: string | undefined,
    traceId: string | undefined,
    spanId: string | undefined,
    traceFlags: number,
    messageKey: string,
    ownFields: number = ALL_OWN_FIELDS,
    sdk = false,
  ): void {
    if (this.#closed || !this.#config.logs.enabled) return;
    this.#main.logs.created++;
    if (line.length > this.#surelyFits && this.#tooLarge(line)) return;
    const c = this.#captured;
    c.line = line;
    c.severityNumber = severityNumber;
    c.severityText = severityText;
    c.traceId = traceId;
    c.spanId = spanId;
    c.traceFlags = traceFlags;
    c.observed = now();
    c.messageKey = messageKey;
    // Which names the correlation has, for the record to tell the
    // application's fields of the other names from ours.
    c.ownFields = (ownFields & (ALL_OWN_FIELDS | OWN_CUSTOMER)) | this.#names;
    c.sdk = sdk;
    this.#logs.push(c);
    // The stage has copied the line; holding it here would keep it alive.
    c.line = "";
    c.traceId = c.spanId = undefined;
  }

  /**
   * Whether `line` is more bytes than the export buffer holds, and so
   * dropped here, counted and said, before it is staged. The exporter
   * would parse and encode it on its thread (the application's by
   * default), for up to 2 s with a line of 16 MB, to find its record too
   * large as well. One whose record would have come out within the buffer
   * (numbers and escapes encode shorter, a length limit cuts strings,
   * gzip) is dropped all the same: only parsing it would tell.
   */
  #tooLarge(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    const max = this.#config.exportMaxBytes;
    if (bytes <= max) return false;
    this.#main.logs.queueFull++;
    diag.warnCollapsed(
      "logs-too-large",
      `dropped a log line of ${bytes} bytes, more than the whole export buffer (${max} bytes, THREADLINE_EXPORT_MAX_BYTES)`,
    );
    return true;
  }

  /**
   * A log record of the SDK's own (an alarm's): exported under the SDK's
   * instrumentation scope, so a backend does not take it for the logger's.
   */
  emitOwn(line: string, severityNumber: number, severityText: string): void {
    this.emit(
      line,
      severityNumber,
      severityText,
      undefined,
      undefined,
      0,
      "msg",
      ALL_OWN_FIELDS,
      true,
    );
  }

  /** Sends one collection of metrics (data points count as the items). */
  exportMetrics(metrics: MetricData[]): void {
    if (this.#closed || !this.#config.metrics.enabled || metrics.length === 0)
      return;
    let points = 0;
    for (const m of metrics) points += m.points.length;
    this.#main.metrics.created += points;
    let body: Uint8Array | string;
    // A metric that cannot be encoded is left out alone, as a span is:
    // the rest of the collection still goes.
    let failed = 0;
    const onError = (err: unknown, metric: MetricData) => {
      failed += metric.points.length;
      this.#metricsEncodeFailed(metric.points.length, err, metric.name);
    };
    try {
      body =
        this.#config.metrics.protocol === "http/json"
          ? this.#metricsEncoder.encodeJson(metrics, onError)
          : this.#metricsEncoder.encode(metrics, onError);
    } catch (err) {
      this.#metricsEncodeFailed(points - failed, err, undefined);
      return;
    }
    if (failed > 0 && failed === points) return;
    this.#post({ t: "metrics", body, count: points - failed });
  }

  #metricsEncodeFailed(points: number, err: unknown, name: unknown): void {
    this.#main.metrics.rejected += points;
    diag.warnCollapsed(
      "metrics-encode",
      `could not encode ${typeof name === "string" ? `metric ${name}` : "metrics"}: ${(err as Error).message}`,
    );
  }

  #queueFull(signal: Signal): void {
    this.#main[signal].queueFull++;
    diag.warnCollapsed(
      `${signal}-queue-full`,
      `dropped ${signal === "traces" ? "a span" : "a log record"}: the export queue is full (${this.#config[signal].batch.maxQueueSize} items); the Collector is slower than the service`,
    );
  }

  #exportSpansJson(batch: RecordingSpan[]): void {
    let body: string;
    // A span that cannot be encoded is left out alone, as in protobuf.
    let failed = 0;
    try {
      body = this.#encoder.encodeJson(batch, (err) => {
        failed++;
        this.#encodeFailed(1, err);
      });
    } catch (err) {
      this.#encodeFailed(batch.length - failed, err);
      return;
    }
    if (failed === batch.length) return;
    const max = this.#config.exportMaxBytes;
    if (
      batch.length > 1 &&
      body.length * 3 > max &&
      Buffer.byteLength(body) > max
    ) {
      this.#exportSpansJsonInParts(batch);
      return;
    }
    this.#postSpans(body, batch.length - failed);
  }

  /**
   * A batch too large for the exporter's buffer, which would drop it whole,
   * in requests of at most maxBatchBytes as protobuf's batches are sealed:
   * a span larger than that goes alone, and is dropped alone if the buffer
   * cannot hold it either, not with the spans that ended beside it. Each
   * span is encoded again on its own to learn its size (this path only).
   */
  #exportSpansJsonInParts(batch: RecordingSpan[]): void {
    let part: RecordingSpan[] = [];
    let partBytes = 0;
    // The part's first span as a request of its own, sent as it is if it stays alone.
    let alone = "";
    const send = () => {
      if (part.length === 1) this.#postSpans(alone, 1);
      else if (part.length > 1) this.#exportSpansJson(part);
      part = [];
      partBytes = 0;
    };
    for (const span of batch) {
      // One that cannot be encoded was counted with the whole batch.
      let failed = false;
      const json = this.#encoder.encodeJson([span], () => (failed = true));
      if (failed) continue;
      const bytes = Buffer.byteLength(json);
      if (partBytes + bytes > this.#maxBatchBytes) send();
      if (part.length === 0) alone = json;
      part.push(span);
      partBytes += bytes;
    }
    send();
  }

  #encodeFailed(spans: number, err: unknown): void {
    this.#main.traces.rejected += spans;
    diag.warnCollapsed(
      "traces-encode",
      `could not encode ${spans === 1 ? "a span" : `${spans} spans`}: ${(err as Error).message}`,
    );
  }

  #postSpans(body: Uint8Array | string, count: number): void {
    this.#post({ t: "traces", body, count });
  }

  #post(msg: TracesMessage | LogsMessage): void {
    const signal = msg.t;
    const main = this.#main[signal];
    if (this.#onThread) {
      main.posted += msg.count;
      this.#inThread(msg);
      return;
    }
    // A worker takes in spans and lines as fast as it can, not as fast as
    // they come: what it has not yet taken in is held in its port, without
    // bound, and a flood of lines to parse kept it from the Collector's
    // answers. Beyond another queue's worth not yet taken in, a batch is
    // dropped, as a full queue drops.
    if (signal !== "metrics") {
      const limit = this.#config[signal].batch.maxQueueSize;
      const waiting =
        main.handed - (this.#counters[counterIndex(signal, "taken")] ?? 0);
      if (waiting > 0 && waiting + msg.count > limit) {
        main.queueFull += msg.count;
        diag.warnCollapsed(
          `${signal}-worker-full`,
          `dropped ${msg.count} ${signal === "traces" ? "spans" : "log records"}: the export worker has not yet taken in the ${waiting} handed to it before (at most the export queue's ${limit}); it is slower than the service`,
        );
        return;
      }
      main.handed += msg.count;
    }
    main.posted += msg.count;
    // Copied, never transferred: transferring detaches the ArrayBuffer, and
    // one detach in an isolate makes V8's optimized code check every
    // typed-array access for it from then on (40-50% slower Buffer loops,
    // the application's included). A batch's copy costs microseconds.
    const worker = this.#ensureWorker();
    if (worker !== undefined) worker.postMessage(msg);
    // None could start: the export went to this thread.
    else this.#inThread(msg);
  }

  /** Hands `msg` to the exporter on this thread, outside any trace. */
  #inThread(msg: ToWorker): void {
    let exporter = this.#exporter;
    if (exporter === undefined) {
      exporter = this.#exporter = new Exporter(this.#settings, (m) =>
        // Answers arrive asynchronously, as they would from a worker.
        queueMicrotask(() => this.#onWorkerMessage(m)),
      );
      // Made by the exit's own drain (nothing had been sent before, and no
      // watch list read): unheld, it would start requests for the batches
      // it is about to hand over, which this thread's event loop, running on
      // after a worker's flush, sends too.
      if (this.#held) exporter.hold();
    }
    context.with(UNTRACED, () => exporter.handle(msg));
  }

  #ensureWorker(): Worker | undefined {
    if (this.#worker !== undefined) return this.#worker;
    try {
      const { MessageChannel, Worker } = process.getBuiltinModule(
        "node:worker_threads",
      );
      const said = new MessageChannel();
      const worker = new Worker(workerScriptUrl()!, {
        workerData: { ...this.#settings, diagPort: said.port2 },
        transferList: [said.port2],
        // Never let the application's --import/-r (and so Threadline itself) load into the worker.
        execArgv: [],
        // A worker also applies the NODE_OPTIONS of its environment: one
        // naming @threadline/node/register started Threadline in here,
        // whose own export worker did the same, a thread after another.
        env: exportWorkerEnv(),
        name: "threadline-export",
        // Everything the worker allocates dies young (a payload lives until
        // its POST is answered), so a small young generation costs a few
        // more cheap scavenges and saves the megabytes V8 would otherwise
        // grow it to under load.
        resourceLimits: { maxYoungGenerationSizeMb: 4 },
      });
      // Listen first: adding a message listener refs the worker's port again.
      worker.on("message", (msg: FromWorker) => this.#onWorkerMessage(msg));
      worker.unref();
      said.port1.on("message", (msg: FromWorker) => this.#onWorkerMessage(msg));
      said.port1.unref();
      this.#diagPort = said.port1;
      worker.on("error", (err) => {
        diag.warnCollapsed(
          "worker-error",
          `the export worker failed: ${err.message}; telemetry in it was lost, a new one will start`,
        );
      });
      worker.on("exit", () => {
        if (this.#worker === worker) this.#worker = undefined;
        // What it had not taken in went with it.
        for (const s of ["traces", "logs"] as const)
          this.#main[s].handed = this.#counters[counterIndex(s, "taken")] ?? 0;
        if (this.#diagPort === said.port1) this.#diagPort = undefined;
        // What it said last, not yet handed to the listener, is not lost.
        this.#readSaid(said.port1);
        said.port1.close();
        for (const done of this.#flushWaiters.values()) done();
        this.#flushWaiters.clear();
      });
      this.#worker = worker;
      if (this.#watchSource !== undefined)
        worker.postMessage(this.#watchSource);
      return worker;
    } catch (err) {
      workerFailed = `the export worker could not start (${(err as Error).message})`;
      // Exporting on a worker thread: from now on on this one. On this
      // one already, it was wanted for process.exit(), whose warning
      // says what that drops.
      if (!this.#onThread) {
        this.#onThread = true;
        warnNoWorker(workerFailed);
        if (this.#watchSource !== undefined) this.#inThread(this.#watchSource);
      }
      return undefined;
    }
  }

  /**
   * Has the worker read the watch list from `source` periodically;
   * `onRead` gets each outcome on this thread.
   */
  startWatchSource(
    source: Omit<WatchSourceMessage, "t">,
    onRead: (msg: WatchReadMessage) => void,
  ): void {
    if (this.#closed) return;
    this.#onWatchRead = onRead;
    const running = this.#worker !== undefined;
    this.#watchSource = { t: "watch-source", ...source };
    if (this.#onThread) {
      this.#inThread(this.#watchSource);
      return;
    }
    // A worker started from now on is handed the source as it starts
    // (and this thread's exporter, should none start).
    const worker = this.#ensureWorker();
    if (running) worker?.postMessage(this.#watchSource);
  }

  /** Says at once what the worker said on `port` and is not yet read. */
  #readSaid(port: MessagePort): void {
    const { receiveMessageOnPort } = process.getBuiltinModule(
      "node:worker_threads",
    );
    for (
      let said = receiveMessageOnPort(port);
      said !== undefined;
      said = receiveMessageOnPort(port)
    )
      this.#onWorkerMessage(said.message as FromWorker);
  }

  #onWorkerMessage(msg: FromWorker): void {
    if (msg.t === "watch") {
      this.#onWatchRead?.(msg);
    } else if (msg.t === "flushed") {
      const done = this.#flushWaiters.get(msg.id);
      this.#flushWaiters.delete(msg.id);
      done?.();
    } else if (msg.t === "diag") {
      if (msg.level === "warn") diag.warnCollapsed(msg.key, msg.message);
      else diag.debug(msg.message);
    }
  }

  /** What the exit or shutdown flush has had to drop so far, per signal. */
  #finalDrops(): FinalDrops {
    const read = (reason: FinalDrop) =>
      (["traces", "logs", "metrics"] as const).map(
        (s) =>
          (this.#counters[counterIndex(s, reason)] ?? 0) +
          // This thread's own count of deadline drops (what never left
          // its queues); the rest only the exporter counts.
          (reason === "shutdownDeadline" ? this.#main[s].shutdownDeadline : 0),
      );
    return {
      shutdownDeadline: read("shutdownDeadline"),
      lastAttemptFailed: read("lastAttemptFailed"),
    };
  }

  /**
   * A final flush starts: what it drops counts from now, or, while
   * another runs (a signal during beforeExit's, the exit during a
   * signal's), from where that one's was last said. Each counting from
   * its own start, they said the same loss twice, as if twice as much
   * were lost.
   */
  #startFinal(): void {
    if (this.#finals++ === 0) this.#said = this.#finalDrops();
  }

  /**
   * Says what the final flushes dropped and why since it was last said,
   * here and at once: at exit there is no later turn of the event loop
   * for the exporter's own warnings.
   */
  #endFinal(timeoutMs: number): void {
    this.#finals--;
    const now = this.#finalDrops();
    const before = this.#said ?? now;
    this.#said = now;
    const since = (r: FinalDrop) => now[r].map((n, i) => n - before[r][i]!);
    warnLost(since("shutdownDeadline"), timeoutMs);
    warnDropped(
      since("lastAttemptFailed"),
      "the last attempt failed (the Collector could not be reached, or asked to retry later)",
    );
  }

  /**
   * Sends everything buffered; resolves once that is delivered (a final
   * flush: also what comes meanwhile) or after `timeoutMs`. Never rejects.
   */
  async forceFlush(timeoutMs: number, final = false): Promise<void> {
    if (final) this.#startFinal();
    try {
      await this.#flush(timeoutMs, final);
    } finally {
      if (final) this.#endFinal(timeoutMs);
    }
  }

  async #flush(timeoutMs: number, final: boolean): Promise<void> {
    this.#spans.drain();
    this.#logs.drain();
    const worker = this.#worker;
    const exporter = this.#exporter;
    if (worker === undefined && exporter === undefined) return;
    const id = ++this.#flushId;
    const deadline = Date.now() + timeoutMs;
    // The timer below keeps the process alive while the flush runs here.
    worker?.ref();
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs + 250);
        this.#flushWaiters.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
        const msg: ToWorker = { t: "flush", id, deadline, final };
        if (worker !== undefined) worker.postMessage(msg);
        if (exporter !== undefined) this.#inThread(msg);
      });
    } finally {
      this.#flushWaiters.delete(id);
      if (worker !== undefined && this.#worker === worker) worker.unref();
    }
  }

  /**
   * At exit: nothing more is sent from this thread, so that what is added
   * now (the last metrics, the last batches) goes to the worker once, not
   * half-sent from here first.
   */
  hold(): void {
    this.#held = true;
    this.#exporter?.hold();
  }

  /**
   * Whether {@link flushSync} can send everything, each item once: it
   * hands what is left to a worker thread, which a bundle or Node's
   * permission model may not allow, and a request this thread has under
   * way would be sent again.
   */
  canFlushSync(): boolean {
    return noWorkerReason() === undefined && !this.#exporter?.busy();
  }

  /**
   * Flushes and blocks the thread until delivered or `timeoutMs` passed.
   * Only for 'exit' handlers, where no asynchronous work can run. What is
   * dropped is said against `timeoutOfExit`, the whole exit's timeout of
   * which `timeoutMs` may be what is left.
   */
  flushSync(timeoutMs: number, timeoutOfExit = timeoutMs): void {
    this.hold();
    this.#spans.drain();
    this.#logs.drain();
    // No asynchronous I/O completes on this thread any more: what the
    // exporter here has not delivered goes to a worker thread, and this
    // thread waits for it.
    if (noWorkerReason() === undefined) {
      const undelivered = this.#exporter?.takeUndelivered() ?? [];
      if (undelivered.length > 0) {
        const worker = this.#ensureWorker();
        for (const p of undelivered) worker?.postMessage(p); // copied: a body may share its memory
      }
    }
    const worker = this.#worker;
    if (worker === undefined) {
      // Nor a worker to hand it to: what is left goes with the process.
      const why = noWorkerReason();
      if (why === undefined) return;
      const s = this.stats();
      warnDropped(
        [s.traces.pending, s.logs.pending, s.metrics.pending],
        `nothing more can be sent after process.exit() without a worker thread, and ${why}`,
      );
      return;
    }
    const id = ++this.#flushId;
    const deadline = Date.now() + timeoutMs;
    worker.postMessage({
      t: "flush",
      id,
      deadline,
      final: true,
    } satisfies ToWorker);
    // The worker runs on its own thread and reports through shared memory.
    this.#startFinal();
    let seen = Atomics.load(this.#control, CONTROL_FLUSHED);
    while (seen < id) {
      const left = deadline + 250 - Date.now();
      if (left <= 0) break;
      Atomics.wait(this.#control, CONTROL_FLUSHED, seen, left);
      seen = Atomics.load(this.#control, CONTROL_FLUSHED);
    }
    // This thread's event loop never turns again: what the worker said
    // meanwhile (why the Collector refused, or could not be reached) is
    // read here, or it would go unsaid.
    if (this.#diagPort !== undefined) this.#readSaid(this.#diagPort);
    this.#endFinal(timeoutOfExit);
    if (seen < id) {
      // The worker did not finish in time: what it still holds goes with
      // the process.
      const s = this.stats();
      warnLost(
        [s.traces.pending, s.logs.pending, s.metrics.pending],
        timeoutOfExit,
      );
    }
  }

  /**
   * Final flush, then stop accepting data and stop the worker. Waits
   * `timeoutMs`, what is left of `timeoutOfShutdown` (the setting, as the
   * warning names it) once the shutdown's other steps took their share.
   */
  async shutdown(
    timeoutMs: number,
    timeoutOfShutdown = timeoutMs,
  ): Promise<void> {
    if (this.#closed) return;
    const deadline = Date.now() + timeoutMs;
    this.#startFinal();
    try {
      await this.#flush(timeoutMs, true);
      // Spans and lines that ended while that flush ran (requests still in
      // flight in a graceful shutdown) go too, in the time left.
      const left = deadline - Date.now();
      if (
        left > 0 &&
        this.#spansOrLogsQueued("traces") + this.#spansOrLogsQueued("logs") > 0
      )
        await this.#flush(left, true);
    } finally {
      this.#closed = true;
      // What ended too late for any flush goes with the pipeline, counted.
      this.#main.traces.shutdownDeadline += this.#spans.discard();
      this.#main.logs.shutdownDeadline += this.#logs.discard();
      this.#endFinal(timeoutOfShutdown);
    }
    this.#spans.stop();
    this.#logs.stop();
    this.#exporter?.close();
    this.#exporter = undefined;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  stats(): PipelineStats {
    const signal = (s: Signal): SignalStats => {
      const main = this.#main[s];
      const read = (c: Parameters<typeof counterIndex>[1]) =>
        this.#counters[counterIndex(s, c)] ?? 0;
      const dropped = {} as Record<DropReason, number>;
      for (const reason of DROP_REASONS) dropped[reason] = read(reason);
      dropped.queueFull += main.queueFull;
      dropped.rejected += main.rejected;
      dropped.shutdownDeadline += main.shutdownDeadline;
      const accounted =
        read("exported") + DROP_REASONS.reduce((sum, r) => sum + read(r), 0);
      // Posted but not yet counted by the worker (in the message channel or buffered there).
      const pending =
        this.#spansOrLogsQueued(s) + Math.max(0, main.posted - accounted);
      return {
        created: main.created,
        exported: read("exported"),
        dropped,
        pending,
        pendingBytes: read("pendingBytes"),
      };
    };
    return {
      traces: signal("traces"),
      logs: signal("logs"),
      metrics: signal("metrics"),
    };
  }

  #spansOrLogsQueued(s: Signal): number {
    return s === "traces"
      ? this.#spans.size
      : s === "logs"
        ? this.#logs.size
        : 0;
  }
}
