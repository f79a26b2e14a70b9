// Runtime metrics, read at collection time (nothing on the request path):
// event-loop delay percentiles and utilisation, GC pauses by kind, heap and
// RSS, CPU time and active resources (RSS and CPU time only from the thread
// that owns the process, internal/process-owner.ts). Names follow the OpenTelemetry
// semantic conventions for Node.js, V8 and processes where they exist.
import type {
  BatchObservableResult,
  Meter,
  Observable,
} from "@opentelemetry/api";
import {
  constants,
  performance,
  PerformanceObserver,
  type EventLoopUtilization,
} from "node:perf_hooks";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { LoopDelay, type LoopDelays } from "../internal/loop-delay.ts";
import { countedSince, readerOf, type Reader } from "./meter-provider.ts";

/**
 * V8's GC kinds as perf_hooks reports them, read from its constants rather
 * than written out: the values are bit flags (a minor mark-sweep sits
 * between minor and major), and a table of guessed numbers labelled every
 * full collection "incremental". A minor mark-sweep is a young-generation
 * collection, so "minor", as the semantic conventions have no value for it.
 */
const gcType = (type: string) => Object.freeze({ "v8js.gc.type": type });
// Made once and frozen: a pause's series is then found by identity, with
// nothing allocated per collection.
const GC_KIND: Record<number, Readonly<{ "v8js.gc.type": string }>> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: gcType("minor"),
  [constants.NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP]: gcType("minor"),
  [constants.NODE_PERFORMANCE_GC_MAJOR]: gcType("major"),
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: gcType("incremental"),
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: gcType("weakcb"),
};
const OTHER_GC = gcType("other");

/** Options of {@link registerRuntimeMetrics}. */
export interface RuntimeMetricsOptions {
  /**
   * Whether to report what describes the whole process (its memory, its CPU
   * time) beside what describes this thread (its event loop, its V8 heap and
   * collections, its resources): one thread of a process reports them.
   * @default true
   */
  processWide?: boolean;
}

/** Starts the runtime probes; returns their stop. */
export function registerRuntimeMetrics(
  meter: Meter,
  options: RuntimeMetricsOptions = {},
): () => void {
  const processWide = options.processWide ?? true;
  // Each reader (the OTLP export, a Prometheus scrape, the alarm rules) has
  // windows of its own, made at its first collection: one window shared by
  // all of them was taken by whichever collected last, and an alarm rule
  // evaluated every few seconds left the export the stall-free seconds
  // since its last evaluation. A reader's first collection covers the time
  // since these probes started, which one window kept from then measures.
  const sinceStart = new LoopDelay();
  sinceStart.start();
  const eluAtStart = performance.eventLoopUtilization();
  const windows = new Map<Reader | undefined, ReaderWindow>();
  const windowOf = (reader: Reader | undefined): ReaderWindow => {
    let w = windows.get(reader);
    if (w === undefined) {
      const delay = new LoopDelay();
      delay.start();
      w = { delay, first: true, elu: eluAtStart, lastDelays: undefined };
      windows.set(reader, w);
    }
    return w;
  };

  const gcDuration = meter.createHistogram("v8js.gc.duration", {
    unit: "s",
    description: "Garbage collection pauses, by kind (v8js.gc.type).",
    // The V8 conventions' advice.
    advice: { explicitBucketBoundaries: [0.01, 0.1, 1, 10] },
  });
  // A perf_hooks observer, though its entry per collection keeps about
  // 11 KB more alive through each young collection of a busy service. V8's
  // GC profiler (node:v8's GCProfiler), drained each second instead, kept
  // close to 1 MB of native memory per start and stop for good: 100 MB
  // in under two minutes.
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      gcDuration.record(e.duration / 1000, GC_KIND[kind ?? 0] ?? OTHER_GC);
    }
  });
  gc.observe({ entryTypes: ["gc"] });

  const loopDelay = meter.createObservableGauge("nodejs.eventloop.delay", {
    unit: "s",
    description:
      "Event-loop delay since the last collection (how late a 20 ms timer ran), by percentile (nodejs.eventloop.delay.percentile: p50, p90, p99, max).",
  });
  const utilization = meter.createObservableGauge(
    "nodejs.eventloop.utilization",
    {
      unit: "1",
      description:
        "Share of time the event loop was busy since the last collection.",
    },
  );
  const heap = meter.createObservableUpDownCounter("v8js.memory.heap.used", {
    unit: "By",
    description: "V8 heap in use.",
  });
  const heapLimit = meter.createObservableUpDownCounter(
    "v8js.memory.heap.limit",
    { unit: "By", description: "V8 heap allocated (total heap size)." },
  );
  const rss = processWide
    ? meter.createObservableUpDownCounter("process.memory.usage", {
        unit: "By",
        description: "Resident set size of the process.",
      })
    : undefined;
  const cpu = processWide
    ? meter.createObservableCounter("process.cpu.time", {
        unit: "s",
        description: "CPU time of the process, by cpu.mode (user, system).",
      })
    : undefined;
  // Counted since the process started (the time origin of its threads),
  // not since Threadline did.
  if (cpu !== undefined) countedSince(cpu, performance.timeOrigin);
  const resources = meter.createObservableUpDownCounter(
    "threadline.nodejs.active_resources",
    {
      unit: "{resource}",
      description:
        "Resources keeping the event loop alive (sockets, timers, \u2026), by type.",
    },
  );

  const callback = (r: BatchObservableResult) => {
    const w = windowOf(readerOf(r));
    // The reader's own window opened just now: its first takes what came
    // before it.
    let d = w.first ? sinceStart.read() : w.delay.take();
    w.first = false;
    // Collections of one reader closer together than the loop is sampled
    // (two scrapes in quick succession) find no tick in the later one's window, which
    // reports the last window that had one rather than leave the gauge out.
    if (d.count > 0) w.lastDelays = d;
    else if (w.lastDelays !== undefined) d = w.lastDelays;
    if (d.count > 0) {
      r.observe(loopDelay, d.p50, {
        "nodejs.eventloop.delay.percentile": "p50",
      });
      r.observe(loopDelay, d.p90, {
        "nodejs.eventloop.delay.percentile": "p90",
      });
      r.observe(loopDelay, d.p99, {
        "nodejs.eventloop.delay.percentile": "p99",
      });
      r.observe(loopDelay, d.max, {
        "nodejs.eventloop.delay.percentile": "max",
      });
    }
    const now = performance.eventLoopUtilization();
    r.observe(
      utilization,
      performance.eventLoopUtilization(now, w.elu).utilization,
    );
    w.elu = now;
    const m = process.memoryUsage();
    r.observe(heap, m.heapUsed);
    r.observe(heapLimit, m.heapTotal);
    if (rss !== undefined) r.observe(rss, m.rss);
    if (cpu !== undefined) {
      const c = process.cpuUsage();
      r.observe(cpu, c.user / 1e6, { "cpu.mode": "user" });
      r.observe(cpu, c.system / 1e6, { "cpu.mode": "system" });
    }
    const byType = new Map<string, number>();
    for (const t of process.getActiveResourcesInfo())
      byType.set(t, (byType.get(t) ?? 0) + 1);
    for (const [type, n] of byType)
      r.observe(resources, n, { "nodejs.resource.type": type });
  };
  const observed: Observable[] = [loopDelay, utilization, heap, heapLimit];
  if (rss !== undefined) observed.push(rss);
  if (cpu !== undefined) observed.push(cpu);
  observed.push(resources);
  meter.addBatchObservableCallback(callback, observed);
  return () => {
    meter.removeBatchObservableCallback(callback, observed);
    gc.disconnect();
    sinceStart.stop();
    for (const w of windows.values()) w.delay.stop();
  };
}

/** What one reader's event-loop figures are measured from. */
interface ReaderWindow {
  /** The loop's delays since the reader's last collection. */
  delay: LoopDelay;
  /** Whether the reader has not collected yet. */
  first: boolean;
  /** The loop's utilisation at the reader's last collection. */
  elu: EventLoopUtilization;
  /** The reader's last delays that had a tick. */
  lastDelays: LoopDelays | undefined;
}

/** Host metrics (optional): CPU utilisation, memory, load average. */
export function registerHostMetrics(meter: Meter): () => void {
  const cpuTimes = () => {
    let idle = 0;
    let total = 0;
    for (const c of cpus()) {
      const t = c.times;
      idle += t.idle;
      total += t.user + t.nice + t.sys + t.idle + t.irq;
    }
    return { idle, total };
  };
  // Per reader, as the event loop's are (see registerRuntimeMetrics): one
  // reader's collection must not shorten another's window.
  const atStart = cpuTimes();
  const last = new Map<Reader | undefined, { idle: number; total: number }>();
  const utilization = meter.createObservableGauge("system.cpu.utilization", {
    unit: "1",
    description:
      "Share of the host's CPU time spent busy since the last collection (all cores).",
  });
  const memory = meter.createObservableUpDownCounter("system.memory.usage", {
    unit: "By",
    description: "Host memory, by system.memory.state (used, free).",
  });
  const load = meter.createObservableGauge("system.cpu.load_average.1m", {
    unit: "{thread}",
    description: "The host's 1-minute load average.",
  });
  const callback = (r: BatchObservableResult) => {
    const reader = readerOf(r);
    const before = last.get(reader) ?? atStart;
    const now = cpuTimes();
    const total = now.total - before.total;
    if (total > 0) r.observe(utilization, 1 - (now.idle - before.idle) / total);
    last.set(reader, now);
    const free = freemem();
    r.observe(memory, totalmem() - free, { "system.memory.state": "used" });
    r.observe(memory, free, { "system.memory.state": "free" });
    r.observe(load, loadavg()[0] ?? 0);
  };
  meter.addBatchObservableCallback(callback, [utilization, memory, load]);
  return () =>
    meter.removeBatchObservableCallback(callback, [utilization, memory, load]);
}
