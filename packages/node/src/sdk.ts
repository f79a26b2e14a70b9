// init(): composes the SDK from its parts and registers it globally.
//
// Order matters: the context manager, tracer provider and propagator are
// registered before instrumentations are enabled, so the first request
// already sees them. Exit handling makes sure buffered telemetry leaves the
// process: 'beforeExit' flushes asynchronously, once, only when alarms are
// to be cleared or there is no export worker (unless the application
// listens to it too, which would then be called again), 'exit' (a natural
// exit, process.exit()) flushes synchronously through the export worker,
// no timer of the application's running meanwhile, once the application's
// own 'exit' listeners have run (what they log goes too), and SIGTERM/SIGINT
// flush before the default behaviour (termination) is restored, unless the
// application handles the signal itself or the process is PID 1, which the
// signal does not end. In the thread that owns the
// process, the exit and the signals also have the Threadline of every
// worker thread flush, which the process's end would otherwise tear down
// with its batches (internal/worker-flush.ts).
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  context,
  metrics,
  diag as apiDiag,
  DiagLogLevel,
  propagation,
  trace,
  type TextMapPropagator,
} from "@opentelemetry/api";
import {
  BaggagePropagator,
  CompositePropagator,
  diag,
  EgressPolicy,
  InboundTrust,
  TraceContextPropagator,
  type Instrumentation,
} from "@threadline/core";
import { AmqplibInstrumentation } from "@threadline/instrumentation-amqplib";
import { HttpInstrumentation } from "@threadline/instrumentation-http";
import { PgInstrumentation } from "@threadline/instrumentation-pg";
import {
  DEFAULT_REDACT_PATHS,
  PinoInstrumentation,
} from "@threadline/instrumentation-pino";
import { UndiciInstrumentation } from "@threadline/instrumentation-undici";
import {
  fillFromPm2Env,
  resolveConfig,
  type InitOptions,
  type ResolvedConfig,
} from "./config.ts";
import { ExportPipeline, type PipelineStats } from "./export/pipeline.ts";
import { AlsContextManager } from "./internal/context-manager.ts";
import { ownProcess, processOwner } from "./internal/process-owner.ts";
import { keepTickShape } from "./internal/tick-shape.ts";
import { WorkerFlush, type FlushAsk } from "./internal/worker-flush.ts";
import { buildResource } from "./resource.ts";
import {
  loadedPastHooks,
  PAST_HOOKS_RECHECK_MS,
  selfCheck,
} from "./self-check.ts";
import { MeterProvider } from "./metrics/meter-provider.ts";
import { MetricReader } from "./metrics/reader.ts";
import { startAlarms } from "./alarms/start.ts";
import type { AlarmEngine } from "./alarms/engine.ts";
import { registerExporterHealth, startHealthEndpoint } from "./health.ts";
import { startPrometheusEndpoint } from "./metrics/prometheus.ts";
import {
  registerHostMetrics,
  registerRuntimeMetrics,
} from "./metrics/runtime.ts";
import { registerSdkMetrics } from "./metrics/sdk-metrics.ts";
import { samplerFromConfig, watchAware } from "./trace/sampler.ts";
import { followWatchList } from "./watch.ts";
import { TracerProvider } from "./trace/tracer-provider.ts";
import {
  endUnfinished,
  hasUnfinished,
  watchCrashes,
} from "./trace/unfinished.ts";
import { VERSION } from "./version.ts";

/** What {@link init} returns. */
export interface ThreadlineHandle {
  /** Whether telemetry is on (false when OTEL_SDK_DISABLED=true). */
  readonly enabled: boolean;
  /**
   * Sends everything buffered now, and the metrics as they stand; resolves
   * once that is delivered (what ends meanwhile is not waited for) or
   * THREADLINE_SHUTDOWN_TIMEOUT passed. Never rejects.
   */
  forceFlush(): Promise<void>;
  /** Flushes, stops the instrumentations and unregisters the SDK. Never rejects. */
  shutdown(): Promise<void>;
  /** Where every span and log record went: created, exported, dropped by reason, pending. */
  stats(): PipelineStats;
}

const EMPTY_SIGNAL = {
  created: 0,
  exported: 0,
  dropped: {
    queueFull: 0,
    retriesExhausted: 0,
    rejected: 0,
    shutdownDeadline: 0,
  },
  pending: 0,
  pendingBytes: 0,
};
const EMPTY_STATS: PipelineStats = {
  traces: EMPTY_SIGNAL,
  logs: EMPTY_SIGNAL,
  metrics: EMPTY_SIGNAL,
};

// The Threadline of this thread, whichever copy of this package started
// it. One process can hold two copies (operations' --import from one
// installation, the application's own init() from its node_modules), and a
// variable of this module would be one copy's alone: the second would start
// again, and every call be traced and exported twice. A worker thread has
// a globalThis of its own, and starts its Threadline as before.
const ACTIVE = Symbol.for("threadline.node.active");

interface Active {
  readonly handle: ThreadlineHandle;
  /** The copy of this package that started it. */
  readonly from: string;
}

// This copy's package folder; in a CommonJS bundle, where import.meta is
// empty (and init() must still start, and say it is bundled), the script
// the bundle is.
const HERE = ((): string => {
  try {
    return new URL("..", import.meta.url).href;
  } catch {
    return pathToFileURL(process.argv[1] || process.cwd()).href;
  }
})();
const slots = globalThis as Record<symbol, Active | undefined>;

function active(): Active | undefined {
  return slots[ACTIVE];
}

function setActive(handle: ThreadlineHandle): ThreadlineHandle {
  slots[ACTIVE] = { handle, from: HERE };
  return handle;
}

function clearActive(handle: ThreadlineHandle): void {
  if (slots[ACTIVE]?.handle === handle) slots[ACTIVE] = undefined;
}

function disabledHandle(): ThreadlineHandle {
  const handle: ThreadlineHandle = {
    enabled: false,
    forceFlush: async () => {},
    shutdown: async () => clearActive(handle),
    stats: () => structuredClone(EMPTY_STATS),
  };
  return handle;
}

function routeApiDiagnostics(): void {
  // Upstream OpenTelemetry code logs through the API's diag; send it to ours.
  apiDiag.setLogger(
    {
      error: (m) => diag.error(m),
      warn: (m) => diag.warn(m),
      info: (m) => diag.info(m),
      debug: (m) => diag.debug(m),
      verbose: (m) => diag.debug(m),
    },
    diag.enabled("debug")
      ? DiagLogLevel.DEBUG
      : diag.enabled("info")
        ? DiagLogLevel.INFO
        : DiagLogLevel.WARN,
  );
}

function propagatorFor(config: ResolvedConfig): TextMapPropagator {
  const list: TextMapPropagator[] = [];
  for (const p of config.propagators)
    list.push(
      p === "tracecontext"
        ? new TraceContextPropagator()
        : new BaggagePropagator({ edge: config.edge }),
    );
  return new CompositePropagator(list);
}

interface ExitHooks {
  remove(): void;
}

/** Signal listeners of signal-exit's copies (v4 and v3 each count theirs). */
function signalExitListeners(): number {
  const v4 = (globalThis as Record<symbol, { count?: unknown } | undefined>)[
    Symbol.for("signal-exit emitter")
  ]?.count;
  const v3 = (
    process as unknown as {
      __signal_exit_emitter__?: { count?: unknown };
    }
  ).__signal_exit_emitter__?.count;
  return (typeof v4 === "number" ? v4 : 0) + (typeof v3 === "number" ? v3 : 0);
}

/** A signal as process.kill() takes it (a name, a number, or none: SIGTERM), by its name. */
function signalName(signal: string | number | undefined): string | undefined {
  if (signal === undefined) return "SIGTERM";
  if (typeof signal === "string") return signal;
  const signals = process.getBuiltinModule("node:os").constants.signals;
  return Object.keys(signals).find(
    (name) => signals[name as keyof typeof signals] === signal,
  );
}

/**
 * `done`, with the process kept alive for it up to `ms`: what it waits on
 * (an observable callback's promise that holds nothing on the event loop,
 * a deadline on an unref'd timer) may not, and a process whose loop runs
 * dry while the application awaits a flush or a shutdown exits with code
 * 13, the rest of its code never run.
 */
async function keepingAlive<T>(done: Promise<T>, ms: number): Promise<T> {
  const hold = setTimeout(() => {}, ms);
  try {
    return await done;
  } finally {
    clearTimeout(hold);
  }
}

/** A flush of the workers' batches, their threads going on. */
const FLUSH: FlushAsk = { final: false, sync: false };
/**
 * The last, at the process's end: each worker flushes blocking its thread,
 * whose event loop may never turn again (a pool's idle worker waits in
 * Atomics.wait between tasks).
 */
const END: FlushAsk = { final: true, sync: true };

/**
 * The least the exit's flush gets when earlier flushes waited the whole
 * timeout: what was recorded since has one attempt, which a Collector that
 * answers at once takes.
 */
const LAST_ATTEMPT_MS = 100;

/** How long shutdown() lets the endpoints finish the answers under way. */
const ENDPOINT_GRACE_MS = 500;

function installExitHooks(
  pipeline: ExportPipeline,
  reader: MetricReader,
  timeoutMs: number,
  workers: WorkerFlush | undefined,
  instrumentations: readonly Instrumentation[],
  alarms: AlarmEngine | undefined,
): ExitHooks {
  // Spans and logs decide whether the exit flushes again; metrics go once, at the end.
  let lastFlushed = -1;
  // One timeout for the whole ending: the waits of the flushes at a
  // signal and at beforeExit count against it, and the exit's flush has
  // what is left. Only waiting counts: work the application does between
  // them (an unref'd timer's job, say) takes nothing from it.
  let waited = 0;
  let waitingSince: number | undefined;
  const left = () =>
    Math.max(
      0,
      Math.round(
        timeoutMs -
          waited -
          (waitingSince === undefined ? 0 : performance.now() - waitingSince),
      ),
    );
  const waitOn = (flush: Promise<unknown>) => {
    const since = performance.now();
    waitingSince = since;
    void flush.finally(() => {
      waited += performance.now() - since;
      if (waitingSince === since) waitingSince = undefined;
    });
  };
  let finalMetricsSent = false;
  const finalMetrics = () => {
    if (finalMetricsSent) return;
    finalMetricsSent = true;
    // The last: the interval must not add exports for the final flush to
    // wait for (it waits for everything), were the Collector slower than it.
    reader.stop();
    reader.exportSync();
  };
  const pendingWork = () => {
    const s = pipeline.stats();
    return (
      s.traces.created + s.logs.created !== lastFlushed ||
      s.traces.pending + s.logs.pending + s.metrics.pending > 0
    );
  };
  // The signal the application handled last, until the loop next runs dry.
  let handled: NodeJS.Signals | undefined;
  // That signal, once the application raised it again (process.kill()).
  let raisedAgain: NodeJS.Signals | undefined;
  const originalKill = process.kill;
  const kill = function (
    this: NodeJS.Process,
    pid: number,
    signal?: string | number,
  ): true {
    if (
      handled !== undefined &&
      (pid === process.pid || pid === 0) &&
      signalName(signal) === handled
    )
      raisedAgain = handled;
    return Reflect.apply(originalKill, this, arguments) as true;
  };
  /** The application's own listeners of `signal` (not ours, not signal-exit's). */
  const handlers = (signal: NodeJS.Signals) =>
    process.listenerCount(signal) - 1 - signalExitListeners();
  const onBeforeExit = () => {
    // A handler that cleaned up and raised the signal again, to die of it
    // ("clean up, then die by the signal"; terminus does so), leaves it
    // caught by our listener but unread: Node's signal handles keep
    // nothing alive, and the process would end with code 0, as if it had
    // succeeded. One more turn of the loop reads it, and the signal ends
    // the process below. Only when it was raised again (a handler that
    // only closed its server, `process.once`'s gone since, raised
    // nothing: one more turn would only emit beforeExit again, and run
    // the application's listener here twice) and no handler of the
    // application's is left for it (raised again, it would be handled
    // again).
    if (handled !== undefined) {
      const signal = handled;
      const raised = raisedAgain === signal;
      handled = undefined;
      raisedAgain = undefined;
      if (raised && handlers(signal) === 0) {
        setImmediate(() => {});
        return;
      }
    }
    // An asynchronous flush gives the event loop work, and Node emits
    // beforeExit again once it is done: a listener of the application's
    // (ending a pool, say) would run twice. With one, the exit's
    // synchronous flush sends everything instead.
    if (process.listenerCount("beforeExit") > 1) return;
    // Once: the loop had run dry, and what ended since did so because the
    // flush held it (an unref'd timer firing meanwhile, say). Were that a
    // reason for another flush, such a timer would keep the process alive
    // for as long as the Collector is slower than it; the exit's
    // synchronous flush sends it instead.
    if (finalMetricsSent) return;
    // The exit's flush, which blocks the thread, sends it all, and no
    // timer of the application's runs meanwhile: an unref'd one (a
    // watchdog's process.exit(4), say) never fires without Threadline, and
    // would fire were the loop held for an asynchronous flush. Only what
    // needs the event loop is waited for here: the alarms' clears, sent
    // from this thread, and an export with no worker thread to hand it
    // to (a bundle's, or one under Node's permission model without
    // --allow-worker).
    if ((alarms?.active().length ?? 0) === 0 && pipeline.canFlushSync()) return;
    finalMetrics();
    const budget = left();
    // The process ends once the loop runs dry again: its alarms end with
    // it, as at a signal, or they would stay open at every receiver for
    // good. Before the flush, which sends their log lines.
    const cleared = alarms?.end("exit", budget);
    const s = pipeline.stats();
    lastFlushed = s.traces.created + s.logs.created;
    if (budget > 0)
      waitOn(Promise.all([pipeline.forceFlush(budget, true), cleared]));
  };
  const crashes = watchCrashes();
  let exitFlushed = false;
  const onExit = () => {
    if (exitFlushed) return;
    exitFlushed = true;
    // Held first: ending the spans still open hands the queue on, and an
    // exporter free to send would start requests the flush below takes
    // back as undelivered and sends again. What the process was doing
    // goes with the rest.
    pipeline.hold();
    const crash = crashes.crash;
    const ended = endUnfinished(
      crash === undefined ? "exit" : "crash",
      crash,
      instrumentations,
    );
    const budget = Math.max(left(), Math.min(timeoutMs, LAST_ATTEMPT_MS));
    // Worker threads still run until the exit handlers return, and flush
    // on their own threads while this one flushes and waits.
    const asked = workers?.request(budget, END);
    const first = !finalMetricsSent;
    finalMetrics();
    // Sent at beforeExit already: the requests cut off since are not in them.
    if (!first && ended > 0) reader.exportSync();
    if (first || pendingWork()) pipeline.flushSync(budget, timeoutMs);
    workers?.waitSync(asked);
    diag.flush();
  };
  const signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT"];
  // Set once a signal nobody handles has started the process's end.
  let ending = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // signal-exit (write-file-atomic, proper-lockfile, restore-cursor, ...)
    // listens too, and re-raises only when it is alone: it does not
    // handle the signal, it waits for whoever does.
    // As PID 1 of its namespace (a container's `node` without --init) the
    // process is its namespace's init, and the kernel drops a signal whose
    // action is the default: without Threadline, a signal nobody handles
    // leaves it serving. So would the re-raise below, with its metrics
    // stopped, its export held and its requests marked cut off; it is
    // flushed alongside instead, as a signal the application handles.
    if (handlers(signal) > 0 || process.pid === 1) {
      // The application handles this signal; flush alongside, it decides when to exit.
      handled = signal;
      const budget = left();
      waitOn(
        Promise.all([
          pipeline.forceFlush(budget, false),
          workers?.flush(budget, FLUSH),
        ]),
      );
      return;
    }
    // Nobody handles it: the process ends once this flush is done. A
    // second signal (Ctrl-C again) joins it: the process ends of the
    // first when it is done, within the same timeout. A flush of its own
    // would wait again for what the first waits for, and say again what
    // could not be sent, as if twice as much were lost.
    if (ending) return;
    ending = true;
    finalMetrics();
    const budget = left();
    const since = performance.now();
    // Before the flush, which sends their log lines.
    const cleared = alarms?.end(signal, budget);
    const flushed = Promise.all([
      pipeline.forceFlush(budget, true),
      workers?.flush(budget, END),
      cleared,
    ]);
    // Counted as the others: a process.exit() while it waits (a library's
    // own shutdown, a timer, an uncaught exception) leaves the exit's
    // flush what is left of the one timeout, not a whole one again.
    waitOn(flushed);
    void flushed.finally(() => {
      // The requests still in flight end with the process. Only now: the
      // server went on serving while the flush ran, and a request that
      // finished meanwhile is not one the signal cut off.
      if (
        endUnfinished(
          signal as "SIGTERM" | "SIGINT",
          undefined,
          instrumentations,
        ) > 0
      ) {
        // The final metrics went before the flush; the requests cut off
        // only now are counted in these, sent by the flush alone (held,
        // or the exporter would start them here as well).
        pipeline.hold();
        reader.exportSync();
        const rest = budget - (performance.now() - since);
        pipeline.flushSync(Math.max(rest, LAST_ATTEMPT_MS), timeoutMs);
      }
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    });
  };
  // The exit's flush comes after the application's own 'exit' listeners,
  // so that what they log and end is sent too. Threadline starts first,
  // and a listener of its own would run before theirs: process.emit is
  // wrapped instead, which Node calls for 'exit' at process.exit(), a
  // natural exit and an uncaught exception alike. process.exit() called
  // from a listener ends the process inside that emit, through
  // process.reallyExit, which flushes first. Should another wrapper of
  // process.emit take ours out of the chain, the listener flushes as
  // before.
  const proc = process as NodeJS.Process & {
    reallyExit?: (code?: number) => never;
  };
  let removed = false;
  let emitting = false;
  const originalEmit = proc.emit;
  // Every event of the process goes through it (a child's IPC messages
  // too): its arguments are handed on as they came, nothing copied.
  const emit = function (
    this: NodeJS.Process,
    event: string | symbol,
  ): boolean {
    if (event !== "exit" || removed)
      return Reflect.apply(originalEmit, this, arguments) as boolean;
    emitting = true;
    try {
      return Reflect.apply(originalEmit, this, arguments) as boolean;
    } finally {
      onExit();
    }
  } as typeof process.emit;
  const originalReallyExit = proc.reallyExit;
  const reallyExit =
    typeof originalReallyExit === "function"
      ? function (this: NodeJS.Process, code?: number): never {
          if (!removed) onExit();
          return originalReallyExit.call(this, code);
        }
      : undefined;
  const onExitListener = () => {
    if (!emitting) onExit();
  };
  process.on("beforeExit", onBeforeExit);
  process.on("exit", onExitListener);
  proc.emit = emit;
  process.kill = kill;
  if (reallyExit !== undefined) proc.reallyExit = reallyExit;
  // First, so that it sees every other listener still there: Node takes a
  // `once` listener off before calling it, and one ahead of ours would not
  // be counted, and the application's graceful shutdown cut short.
  for (const s of signals) process.prependListener(s, onSignal);
  return {
    remove() {
      crashes.remove();
      process.removeListener("beforeExit", onBeforeExit);
      process.removeListener("exit", onExitListener);
      removed = true;
      if (proc.emit === emit) proc.emit = originalEmit;
      if (reallyExit !== undefined && proc.reallyExit === reallyExit)
        proc.reallyExit = originalReallyExit;
      if (process.kill === kill) process.kill = originalKill;
      for (const s of signals) process.removeListener(s, onSignal);
    },
  };
}

/**
 * Starts Threadline in this process: tracing of incoming and outgoing HTTP
 * and fetch calls, customer context, pino correlation, and OTLP export.
 * Call it before anything else, or use `node --import @threadline/node/register`.
 * Settings come from `options`, then the environment (see the README). A
 * second call, from this copy of the package or another in the same
 * thread, returns the first handle and changes nothing. Never throws.
 *
 * @example
 * import { init } from '@threadline/node';
 * const threadline = init({ serviceName: 'orders', thirdParties: { 'api.stripe.com': 'stripe' } });
 */
export function init(options: InitOptions = {}): ThreadlineHandle {
  const first = active();
  if (first !== undefined) {
    // Null, or a value that is no object, carries no options to name.
    const given: object =
      typeof options === "object" && options !== null ? options : {};
    const ignored = Object.keys(given).filter(
      (k) => given[k as keyof typeof given] !== undefined,
    );
    const by =
      first.from === HERE
        ? ""
        : ` (first by another copy of @threadline/node, at ${fileURLToPath(first.from)})`;
    diag.warnOnce(
      "init-twice",
      `init() was called more than once${by}; the first configuration stays in effect` +
        (ignored.length > 0
          ? `, and the options given were ignored: ${ignored.join(", ")}`
          : ""),
    );
    return first.handle;
  }
  try {
    return start(options);
  } catch (err) {
    diag.error(
      `could not start: ${(err as Error).message}; the application runs without telemetry`,
    );
    return setActive(disabledHandle());
  }
}

/** The oldest Node this runs on (package.json's engines). */
const OLDEST_NODE = [22, 15] as const;

/**
 * Why Threadline cannot run on this Node, if it cannot: an older one lacks
 * what it hooks (Node 20 publishes no `http.client.request.created`, so
 * outgoing requests would go untraced and carry no trace context, their
 * traces broken at this service without a word).
 */
export function unsupportedNode(
  version = process.versions.node,
): string | undefined {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const [oldMajor, oldMinor] = OLDEST_NODE;
  return major > oldMajor || (major === oldMajor && minor >= oldMinor)
    ? undefined
    : `Threadline needs Node ${oldMajor}.${oldMinor} or later, and this is Node ${version}; the application runs without telemetry`;
}

function start(options: InitOptions): ThreadlineHandle {
  const unsupported = unsupportedNode();
  if (unsupported !== undefined) {
    diag.warn(unsupported);
    return setActive(disabledHandle());
  }
  fillFromPm2Env(process.env);
  const { config, warnings } = resolveConfig(options);
  if (config.logLevel !== undefined && !diag.setLevel(config.logLevel)) {
    warnings.push(
      `OTEL_LOG_LEVEL=${JSON.stringify(config.logLevel)} is not a known level; using warn`,
    );
  }
  for (const w of warnings) diag.warn(w);
  if (config.disabled) return setActive(disabledHandle());
  keepTickShape();
  routeApiDiagnostics();

  // In a worker thread under another thread's Threadline, this one reports
  // as the same instance and leaves the whole process's part to it.
  const owner = processOwner();
  const ownsProcess = owner.instanceId === undefined;
  const resource = buildResource(config, owner.instanceId);
  const disown = ownsProcess
    ? ownProcess(String(resource["service.instance.id"]))
    : undefined;
  const pipeline = new ExportPipeline(config, resource, {
    name: "@threadline/instrumentation-pino",
    version: VERSION,
  });
  // Filled once the trust settings are read; the ends below ask them for
  // their work still in progress.
  const instrumentations: Instrumentation[] = [];
  // Worker threads' batches, sent before the process's end or a
  // worker.terminate() tears their thread down.
  const workers = new WorkerFlush(ownsProcess);
  workers.join({
    // A final flush that is not synchronous is a worker.terminate()'s.
    forceFlush: (timeoutMs, final) => {
      if (final) endUnfinished("terminate", undefined, instrumentations);
      return pipeline.forceFlush(timeoutMs, final);
    },
    // Only at the process's end.
    flushSync: (timeoutMs) => {
      endUnfinished("exit", undefined, instrumentations);
      pipeline.flushSync(timeoutMs);
    },
    holdsNothing: () => {
      const s = pipeline.stats();
      return (
        s.traces.pending + s.logs.pending + s.metrics.pending === 0 &&
        !hasUnfinished()
      );
    },
  });
  const stopFlushOnTerminate = workers.flushOnTerminate(
    config.shutdownTimeoutMs,
  );
  const processWorkers = ownsProcess ? workers : undefined;
  const provider = new TracerProvider(
    watchAware(samplerFromConfig(config.sampler.name, config.sampler.ratio)),
    config.spanLimits,
    pipeline,
  );

  if (!context.setGlobalContextManager(new AlsContextManager())) {
    diag.warn(
      "another context manager was already registered (a second OpenTelemetry SDK?); Threadline uses it as it is",
    );
  }
  if (!trace.setGlobalTracerProvider(provider)) {
    diag.warn(
      "another tracer provider was already registered (a second OpenTelemetry SDK?); spans may go elsewhere",
    );
  }
  propagation.setGlobalPropagator(propagatorFor(config));

  const inbound = new InboundTrust({
    edge: config.edge,
    trustedCallers: config.trustedCallers,
    linkUntrusted: config.untrustedTraceparent === "link",
    trustedProxies: config.trustedProxies,
  });
  const egress = new EgressPolicy({
    internalHosts: config.internalHosts,
    thirdParties: config.thirdParties,
    customerHeader: config.customerHeader,
  });
  for (const bad of inbound.errors)
    diag.warn(
      `${config.trustSources.trustedCallers} entry "${bad}" is not loopback, private, an IP address or a CIDR block (callers are matched by address, host names are not resolved); ignored`,
    );
  for (const bad of inbound.proxyErrors)
    diag.warn(
      `${config.trustSources.trustedProxies} entry "${bad}" is not loopback, private, an IP address or a CIDR block (proxies are matched by address, host names are not resolved); ignored`,
    );
  for (const bad of egress.internalHostErrors)
    diag.warn(
      `${config.trustSources.internalHosts} entry "${bad}" is not loopback, private, a host name, *.domain, an IP address or a CIDR block; ignored`,
    );
  for (const bad of egress.thirdPartyErrors)
    diag.warn(
      `${config.trustSources.thirdParties} entry "${bad}" is not host=name with a host name, *.domain, an IP address or a CIDR block, and an optional :port (calls are judged by host: paths and other wildcards cannot match); ignored, so calls there are not kept from baggage as a third party's`,
    );

  let pino: PinoInstrumentation | undefined;
  if (config.instrumentations.http) {
    instrumentations.push(
      new HttpInstrumentation({
        tracerProvider: provider,
        inbound,
        egress,
        customerHeader: config.customerHeader,
        ignoreIncomingPaths: config.ignoreIncomingPaths,
        ...(config.customerFromRequest === undefined
          ? {}
          : { customerFromRequest: config.customerFromRequest }),
      }),
    );
  }
  if (config.instrumentations.undici)
    instrumentations.push(
      new UndiciInstrumentation({ tracerProvider: provider, egress }),
    );
  if (config.instrumentations.pino) {
    pino = new PinoInstrumentation({
      redact:
        config.logRedact === false
          ? false
          : [...DEFAULT_REDACT_PATHS, ...config.logRedact],
      fields: config.logFields,
      ...(config.logs.enabled ? { sink: pipeline } : {}),
    });
    instrumentations.push(pino);
  }
  if (config.instrumentations.pg) {
    instrumentations.push(
      new PgInstrumentation({
        tracerProvider: provider,
        recordParameters: config.pg.recordParameters,
        sqlCommenter: config.pg.sqlCommenter,
        serviceName: config.serviceName,
      }),
    );
  }
  if (config.instrumentations.amqplib) {
    instrumentations.push(
      new AmqplibInstrumentation({
        tracerProvider: provider,
        consumerContext: config.amqp.consumerContext,
        trustMessageBaggage: config.amqp.trustMessageBaggage,
        externalExchanges: config.amqp.externalExchanges,
        privateHeaders: egress.privateHeaders,
        customerHeader: egress.customerHeader,
      }),
    );
  }
  for (const i of instrumentations) {
    try {
      i.enable();
    } catch (err) {
      diag.warn(`${i.name} could not be enabled: ${(err as Error).message}`);
    }
  }

  // An asynchronous callback gets the time one export may take: one that
  // never settles must not hold up every later export, scrape and shutdown.
  const meterProvider = new MeterProvider({
    exemplarFilter: config.exemplarFilter,
    ...(config.metrics.timeoutMs > 0
      ? { callbackTimeoutMs: config.metrics.timeoutMs }
      : {}),
  });
  if (!metrics.setGlobalMeterProvider(meterProvider)) {
    diag.warn(
      "another meter provider was already registered (a second OpenTelemetry SDK?); metrics may go elsewhere",
    );
  }
  registerSdkMetrics(
    meterProvider.getMeter("@threadline/node", VERSION),
    pipeline,
  );
  // The process's endpoints and alarms: once, from the thread that owns
  // it. A worker's would want the same ports, and would raise alarms on a
  // thread that may hold its event loop by design.
  const prometheusAt = ownsProcess ? config.prometheus : undefined;
  const healthAt = ownsProcess ? config.health : undefined;
  const alarmSettings = ownsProcess ? config.alarms : undefined;
  const metricsWanted = config.metrics.enabled || prometheusAt !== undefined;
  const prometheus =
    prometheusAt === undefined
      ? undefined
      : startPrometheusEndpoint(
          meterProvider,
          resource,
          prometheusAt.host,
          prometheusAt.port,
        );
  const stopExporterHealth = registerExporterHealth(
    pipeline,
    config.exportMaxBytes,
  );
  const serviceName = String(resource["service.name"] ?? "unknown");
  const alarms =
    alarmSettings === undefined
      ? undefined
      : startAlarms(
          alarmSettings,
          serviceName,
          String(resource["service.instance.id"]),
          meterProvider,
          pipeline,
        );
  const healthEndpoint =
    healthAt === undefined
      ? undefined
      : startHealthEndpoint(healthAt.host, healthAt.port, serviceName, alarms);
  // Alarm rules on metrics read them whether or not they are exported.
  const metricsRead = metricsWanted || alarms?.readsMetrics === true;
  const stopRuntimeMetrics =
    metricsRead && config.runtimeMetrics
      ? registerRuntimeMetrics(
          meterProvider.getMeter("@threadline/node/runtime", VERSION),
          { processWide: ownsProcess },
        )
      : undefined;
  const stopHostMetrics =
    metricsRead && config.hostMetrics && ownsProcess
      ? registerHostMetrics(
          meterProvider.getMeter("@threadline/node/host", VERSION),
        )
      : undefined;
  const reader = new MetricReader(meterProvider, pipeline, {
    pointAttributes: owner.metricAttributes,
    temporality: config.metricsTemporality,
  });
  if (config.metrics.enabled)
    reader.start(config.metrics.batch.scheduleDelayMs);
  const hooks = installExitHooks(
    pipeline,
    reader,
    config.shutdownTimeoutMs,
    processWorkers,
    instrumentations,
    alarms,
  );
  const stopWatching =
    config.watch === undefined
      ? undefined
      : followWatchList(pipeline, config.watch);
  /** The one shutdown, once asked for. */
  let shuttingDown: Promise<void> | undefined;
  if (config.selfCheck) {
    // Once, naming the modules found first: a later look may find more.
    const warnPastHooks = () => {
      const problem = loadedPastHooks();
      if (problem !== undefined)
        diag.warnOnce("self-check:past-hooks", `self-check: ${problem}`);
    };
    setImmediate(() => {
      if (shuttingDown !== undefined) return;
      for (const problem of selfCheck({
        instrumentations,
        httpEnabled: config.instrumentations.http,
      })) {
        diag.warnOnce(`self-check:${problem}`, `self-check: ${problem}`);
      }
      warnPastHooks();
    }).unref();
    setTimeout(() => {
      if (shuttingDown === undefined) warnPastHooks();
    }, PAST_HOOKS_RECHECK_MS).unref();
  }

  const handle: ThreadlineHandle = {
    enabled: true,
    async forceFlush() {
      // The reader collects only when metrics export is on; asynchronous
      // callbacks get half the flush's time, as at shutdown.
      if (shuttingDown === undefined)
        await keepingAlive(
          reader.exportNow(performance.now() + config.shutdownTimeoutMs / 2),
          config.shutdownTimeoutMs,
        );
      await Promise.all([
        pipeline.forceFlush(config.shutdownTimeoutMs),
        processWorkers?.flush(config.shutdownTimeoutMs, FLUSH),
      ]);
    },
    shutdown() {
      // Every caller waits for the one shutdown: a second call returning at
      // once would let its caller exit before anything was sent.
      shuttingDown ??= shutdown();
      return shuttingDown;
    },
    stats: () => pipeline.stats(),
  };
  const shutdown = async (): Promise<void> => {
    const started = performance.now();
    reader.stop();
    // A scrape or a probe under way gets a moment to be answered; one that
    // takes longer (a check that hangs, a request never finished) is cut
    // off, so a client holding a connection never holds the shutdown. The
    // grace runs alongside the flush below, within the same timeout.
    const grace = Math.min(ENDPOINT_GRACE_MS, config.shutdownTimeoutMs);
    const endpointsClosed = Promise.all([
      prometheus?.then((s) => s?.close(grace)),
      healthEndpoint?.then((s) => s?.close(grace)),
    ]);
    // Cleared now, so their log lines go with the last export; sent while
    // it runs, within the same timeout.
    const cleared = alarms?.end("shutdown", config.shutdownTimeoutMs);
    stopExporterHealth();
    stopWatching?.();
    for (const i of instrumentations) i.disable();
    // Nothing is exported after this: spans still open would be lost.
    endUnfinished("shutdown", undefined, instrumentations);
    // Asynchronous callbacks get half the shutdown's time at most (not the
    // metric export timeout, 10 s by default), the rest left to send.
    await keepingAlive(
      reader.exportNow(started + config.shutdownTimeoutMs / 2),
      config.shutdownTimeoutMs,
    );
    // Only after the last export: stopped first, the runtime and host
    // probes would leave it without this interval's values.
    stopRuntimeMetrics?.();
    stopHostMetrics?.();
    const left = Math.max(
      0,
      config.shutdownTimeoutMs - (performance.now() - started),
    );
    await Promise.all([
      pipeline.shutdown(left, config.shutdownTimeoutMs),
      processWorkers?.flush(left, FLUSH),
      cleared,
      endpointsClosed,
    ]);
    // Only now: a process.exit() while the flush above ran still sends
    // what is left, synchronously.
    hooks.remove();
    stopFlushOnTerminate();
    workers.close();
    disown?.();
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
    apiDiag.disable();
    diag.flush();
    clearActive(handle);
  };
  return setActive(handle);
}
