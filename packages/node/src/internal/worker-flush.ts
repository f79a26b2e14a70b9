// What a worker thread's Threadline holds, sent before the thread is gone.
//
// A Threadline in a worker batches like any other (OTEL_BSP_SCHEDULE_DELAY),
// and nothing of the process's end waits for its batches: SIGTERM and
// process.exit() are the main thread's, a natural exit tears down the
// unref'd workers still running, and worker.terminate() (worker pools end
// idle workers with it) stops a worker at once. So the process's owner
// leaves a registry in shared memory in worker_threads' environment data
// (copied by every Worker as it starts); each Threadline worker takes a slot
// in it, and waits on its slot with Atomics.waitAsync, which never holds its
// thread alive and costs nothing until woken (a message event would cost a
// fresh worker some 20 ms of loading on the first request).
//
// To flush, a thread writes a request into the slots of every registered
// worker (or of the one being terminated and the workers it started, which
// end with it), wakes them, and waits for each to mark that it received the
// request, then that it flushed: asynchronously, or in an 'exit' handler
// blocked in Atomics.wait while the workers, on threads of their own, send
// their batches. A worker holding nothing answers at once. At the
// process's end a worker flushes synchronously, as the main thread does at
// process.exit(): worker pools such as piscina (atomics: 'sync', their
// default) block an idle worker's thread in Atomics.wait between tasks, and
// a worker that took the request during a task would never finish an
// asynchronous flush once back there. Otherwise it flushes asynchronously
// and shows it is at it every PROGRESS_MS.
//
// A worker that neither picks the request up nor, having picked it up,
// shows progress is not waited for once QUIET_MS passed without any
// receipt, progress or flush of the workers asked (or a receipt anywhere in
// the registry: many workers woken together share two cores): its event
// loop is held, by a runaway job or a pool's Atomics.wait, and it could not
// send anything anyway. A worker leaves its slot at its exit; one that never
// ran its exit (terminated, out of memory, or ended with the worker that
// started it) is taken out by the thread that started that worker, which
// sees it end through the `worker_threads` diagnostics channel: every slot
// records the nearest Threadline thread it descends from.
//
// Cost: 5 KB of shared memory per process; per worker thread, one slot, one
// pending Atomics.waitAsync and one 'exit' listener. Nothing per request,
// and an exit with no worker registered reads the slots and returns.
import type { Worker } from "node:worker_threads";
import { diag } from "@threadline/core";
import { workerThreads } from "./process-owner.ts";

const KEY = "threadline.worker-flush";
/** The thread id of the nearest thread running Threadline, for the workers it starts. */
const PARENT_KEY = "threadline.worker-flush.parent";

/**
 * How long a request waits for workers that show no sign of life: none of
 * those asked picked it up, progressed or finished in that time. Dozens of
 * workers woken together on two cores, each sending as it picks the
 * request up, can leave 100 ms between one pick-up and the next on Node
 * 22.15: at 100 ms the 32-worker test lost 60 to 110 of its 320 spans in
 * two runs of five there, none in six at 250 ms.
 */
const QUIET_MS = 250;
/** How often a worker flushing asynchronously shows it is still at it. */
const PROGRESS_MS = 25;
/** Workers that can be registered at once; more are not flushed. */
const CAPACITY = 128;

// Int32 slots: the last request's id, a counter bumped (and notified) at
// every receipt, flush and leave, a count of receipts, then one record per
// worker, then (as 64-bit integers) each record's deadline.
const LAST_REQUEST = 0;
const CHANGES = 1;
const RECEIPTS = 2;
const RECORDS = 4;
// A record: its thread's id (0: free); the nearest Threadline thread it
// descends from (0: the main thread); the last request asked of it (it waits
// on this slot), the last final one and the last one to be flushed
// synchronously; the last request it received, the last one it finished;
// a counter it bumps while it flushes asynchronously.
const THREAD = 0;
const PARENT = 1;
const ASKED = 2;
const ASKED_FINAL = 3;
const ASKED_SYNC = 4;
const RECEIVED = 5;
const FLUSHED = 6;
const PROGRESS = 7;
const RECORD_SIZE = 8;
const INT32_SLOTS = RECORDS + CAPACITY * RECORD_SIZE;

interface FlushRequest {
  id: number;
  deadline: number;
  /** Whether the workers flush synchronously (at the process's end). */
  sync: boolean;
  /** Only these threads; every registered one when undefined. */
  threads: readonly number[] | undefined;
}

/** What a flush asks of the workers. */
export interface FlushAsk {
  /** The last flush of these workers: what it cannot send is dropped, counted. */
  final: boolean;
  /**
   * The process is ending: each worker flushes blocking its own thread,
   * relying on nothing of its event loop afterwards.
   */
  sync: boolean;
}

/** A worker's own pipeline, as a flush request uses it. */
export interface OwnPipeline {
  /** Sends what it holds, within `timeoutMs`. Never rejects. */
  forceFlush(timeoutMs: number, final: boolean): Promise<void>;
  /** Sends what it holds, blocking the thread, within `timeoutMs`. For the process's end. */
  flushSync(timeoutMs: number): void;
  /** Whether it holds nothing to send. */
  holdsNothing(): boolean;
}

/** Raises slot `at` of `s` to `value` (never lowers it). */
function raise(s: Int32Array, at: number, value: number): void {
  for (;;) {
    const was = Atomics.load(s, at);
    if (was >= value || Atomics.compareExchange(s, at, was, value) === was)
      return;
  }
}

export class WorkerFlush {
  readonly #slots: Int32Array;
  readonly #deadlines: BigInt64Array;
  readonly #release: (() => void) | undefined;
  /** The nearest thread running Threadline this thread descends from. */
  readonly #parent: number;
  /** This thread's record, once joined. */
  #record = -1;
  #onExit: (() => void) | undefined;
  readonly #onWorker = (message: unknown) => {
    const worker = (message as { worker: Worker }).worker;
    const thread = worker.threadId;
    worker.once("exit", () => this.#forget(thread));
  };

  /**
   * The registry of the process: the one another thread's Threadline left
   * for this thread, or a new one that workers started from now on find,
   * when `owner`.
   */
  constructor(owner: boolean) {
    process
      .getBuiltinModule("node:diagnostics_channel")
      .subscribe("worker_threads", this.#onWorker);
    const w = workerThreads();
    const parent: unknown = w.getEnvironmentData(PARENT_KEY);
    this.#parent = typeof parent === "number" ? parent : 0;
    w.setEnvironmentData(PARENT_KEY, w.threadId);
    const inherited: unknown = w.getEnvironmentData(KEY);
    if (!owner && inherited instanceof SharedArrayBuffer) {
      this.#slots = new Int32Array(inherited, 0, INT32_SLOTS);
      this.#deadlines = new BigInt64Array(inherited, INT32_SLOTS * 4);
      this.#release = undefined;
      return;
    }
    const shared = new SharedArrayBuffer(INT32_SLOTS * 4 + CAPACITY * 8);
    this.#slots = new Int32Array(shared, 0, INT32_SLOTS);
    this.#deadlines = new BigInt64Array(shared, INT32_SLOTS * 4);
    w.setEnvironmentData(KEY, shared);
    this.#release = () => {
      if (w.getEnvironmentData(KEY) === shared)
        w.setEnvironmentData(KEY, undefined);
    };
  }

  /**
   * Registers this worker thread's Threadline: flush requests flush
   * `pipeline`. Left at the thread's exit, or by {@link close}.
   */
  join(pipeline: OwnPipeline): void {
    const w = workerThreads();
    if (w.isMainThread || this.#record >= 0) return;
    const s = this.#slots;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      if (Atomics.compareExchange(s, r + THREAD, 0, w.threadId) !== 0) continue;
      Atomics.store(s, r + PARENT, this.#parent);
      // Requests made before this thread held anything are answered.
      const last = Atomics.load(s, LAST_REQUEST);
      Atomics.store(s, r + RECEIVED, last);
      Atomics.store(s, r + FLUSHED, last);
      this.#record = r;
      break;
    }
    const r = this.#record;
    if (r < 0) {
      diag.warnOnce(
        "worker-flush-full",
        `more than ${CAPACITY} worker threads run Threadline at once: thread ${w.threadId} is not flushed at the process's end or at its terminate()`,
      );
      return;
    }
    const listen = (): void => {
      for (;;) {
        if (this.#record !== r) return;
        const asked = Atomics.load(s, r + ASKED);
        // Armed before answering: a request made meanwhile wakes it again.
        const next = Atomics.waitAsync(s, r + ASKED, asked);
        if (asked > Atomics.load(s, r + RECEIVED))
          this.#answer(r, asked, pipeline);
        if (next.async) {
          void next.value.then(listen);
          return;
        }
      }
    };
    listen();
    this.#onExit = () => this.#leave();
    process.on("exit", this.#onExit);
  }

  /**
   * Asks every registered worker (or only `thread`, and the workers it
   * started) to flush and returns the request to wait on, or undefined when
   * there is none to ask.
   */
  request(
    timeoutMs: number,
    ask: FlushAsk,
    thread?: number,
  ): FlushRequest | undefined {
    const threads = thread === undefined ? undefined : this.#lineage(thread);
    if (threads === undefined ? !this.#anyRegistered() : threads.length === 0)
      return undefined;
    const s = this.#slots;
    const req: FlushRequest = {
      id: Atomics.add(s, LAST_REQUEST, 1) + 1,
      // Whole milliseconds: the deadline is shared as a 64-bit integer, and
      // a budget worked out from performance.now() has fractions.
      deadline: Date.now() + Math.ceil(timeoutMs),
      sync: ask.sync,
      threads,
    };
    const deadline = BigInt(req.deadline);
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      const t = Atomics.load(s, r + THREAD);
      if (t === 0 || r === this.#record) continue;
      if (threads !== undefined && !threads.includes(t)) continue;
      // What the worker reads once woken, written before the wake.
      const k = (r - RECORDS) / RECORD_SIZE;
      for (;;) {
        const was = Atomics.load(this.#deadlines, k);
        if (
          was >= deadline ||
          Atomics.compareExchange(this.#deadlines, k, was, deadline) === was
        )
          break;
      }
      if (ask.final) raise(s, r + ASKED_FINAL, req.id);
      if (ask.sync) raise(s, r + ASKED_SYNC, req.id);
      raise(s, r + ASKED, req.id);
      Atomics.notify(s, r + ASKED);
    }
    return req;
  }

  /** Blocks until the workers asked by `req` flushed, or its deadline. */
  waitSync(req: FlushRequest | undefined): void {
    if (req === undefined) return;
    const watch = this.#watch();
    for (;;) {
      const seen = Atomics.load(this.#slots, CHANGES);
      const wake = this.#nextWake(req, watch);
      if (wake === undefined) return;
      Atomics.wait(this.#slots, CHANGES, seen, wake);
    }
  }

  /** Resolves once the workers asked by `req` flushed, or at its deadline. */
  async wait(req: FlushRequest | undefined): Promise<void> {
    if (req === undefined) return;
    const watch = this.#watch();
    // Atomics.waitAsync does not keep the event loop alive; this does.
    const alive = setTimeout(() => {}, req.deadline - Date.now() + 10);
    try {
      for (;;) {
        const seen = Atomics.load(this.#slots, CHANGES);
        const wake = this.#nextWake(req, watch);
        if (wake === undefined) return;
        const result = Atomics.waitAsync(this.#slots, CHANGES, seen, wake);
        if (result.async) await result.value;
      }
    } finally {
      clearTimeout(alive);
    }
  }

  /** Asks every registered worker to flush; resolves when done or after `timeoutMs`. */
  flush(timeoutMs: number, ask: FlushAsk): Promise<void> {
    return this.wait(this.request(timeoutMs, ask));
  }

  /**
   * Has `worker.terminate()` of a registered worker first let it flush,
   * within `timeoutMs`: the promise it returns settles that much later at
   * most, a few milliseconds when the Collector answers and the worker's
   * batch is small, at once when it holds nothing. Returns the undo.
   */
  flushOnTerminate(timeoutMs: number): () => void {
    const proto = workerThreads().Worker.prototype;
    const original = proto.terminate;
    const registry = this;
    const terminate = function (this: Worker, ...args: unknown[]) {
      // Its thread's event loop runs until the terminate: no need to block it.
      const req = registry.request(
        timeoutMs,
        { final: true, sync: false },
        this.threadId,
      );
      if (req === undefined)
        return Reflect.apply(original, this, args) as Promise<number>;
      return registry
        .wait(req)
        .then(() => Reflect.apply(original, this, args) as Promise<number>);
    };
    proto.terminate = terminate;
    return () => {
      if (proto.terminate === terminate) proto.terminate = original;
    };
  }

  /** Leaves the registry, and gives it up if this thread made it. */
  close(): void {
    process
      .getBuiltinModule("node:diagnostics_channel")
      .unsubscribe("worker_threads", this.#onWorker);
    this.#leave();
    this.#release?.();
  }

  /** Runs the request this worker was woken for, and every one before it. */
  #answer(r: number, asked: number, pipeline: OwnPipeline): void {
    const s = this.#slots;
    const from = Atomics.load(s, r + RECEIVED);
    raise(s, r + RECEIVED, asked);
    Atomics.add(s, RECEIPTS, 1);
    this.#changed();
    const final = Atomics.load(s, r + ASKED_FINAL) > from;
    const sync = Atomics.load(s, r + ASKED_SYNC) > from;
    const deadline = Atomics.load(this.#deadlines, (r - RECORDS) / RECORD_SIZE);
    const timeoutMs = Math.max(0, Number(deadline) - Date.now());
    // A record left meanwhile may be another thread's by now.
    const done = () => {
      if (this.#record !== r) return;
      raise(s, r + FLUSHED, asked);
      this.#changed();
    };
    if (pipeline.holdsNothing()) {
      done();
    } else if (sync) {
      pipeline.flushSync(timeoutMs);
      done();
    } else {
      const progress = setInterval(() => {
        if (this.#record === r) Atomics.add(s, r + PROGRESS, 1);
      }, PROGRESS_MS);
      progress.unref();
      void pipeline.forceFlush(timeoutMs, final).finally(() => {
        clearInterval(progress);
        done();
      });
    }
  }

  #leave(): void {
    if (this.#onExit !== undefined)
      process.removeListener("exit", this.#onExit);
    this.#onExit = undefined;
    const r = this.#record;
    if (r < 0) return;
    this.#record = -1;
    const s = this.#slots;
    // Lets this thread's waiter go.
    Atomics.notify(s, r + ASKED);
    Atomics.store(s, r + PARENT, 0);
    Atomics.store(s, r + THREAD, 0);
    this.#changed();
  }

  /**
   * The records of a worker that ended without leaving its own, and of
   * every worker it started: they ended with it, without their exit.
   */
  #forget(thread: number): void {
    const s = this.#slots;
    const gone = [thread];
    let freed = false;
    for (let more = true; more;) {
      more = false;
      for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
        const t = Atomics.load(s, r + THREAD);
        if (t === 0 || r === this.#record) continue;
        if (!gone.includes(t) && !gone.includes(Atomics.load(s, r + PARENT)))
          continue;
        Atomics.store(s, r + PARENT, 0);
        if (Atomics.compareExchange(s, r + THREAD, t, 0) !== t) continue;
        freed = true;
        if (!gone.includes(t)) {
          gone.push(t);
          more = true;
        }
      }
    }
    if (freed) this.#changed();
  }

  /** The registered threads among `thread` and the workers it started, theirs included. */
  #lineage(thread: number): number[] {
    const s = this.#slots;
    const line = [thread];
    const registered: number[] = [];
    for (let more = true; more;) {
      more = false;
      for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
        const t = Atomics.load(s, r + THREAD);
        if (t === 0 || r === this.#record || registered.includes(t)) continue;
        if (t !== thread && !line.includes(Atomics.load(s, r + PARENT)))
          continue;
        registered.push(t);
        if (t !== thread) line.push(t);
        more = true;
      }
    }
    return registered;
  }

  #anyRegistered(): boolean {
    const s = this.#slots;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE)
      if (Atomics.load(s, r + THREAD) !== 0 && r !== this.#record) return true;
    return false;
  }

  /** What a wait watches for signs of life, from its start. */
  #watch(): { signs: number; at: number } {
    return { signs: Number.NaN, at: Date.now() };
  }

  /**
   * Milliseconds to wait for the next change, or undefined when nothing is
   * left to wait for: every worker asked has flushed, or the others have
   * shown no sign of life for QUIET_MS (a worker flushing synchronously is
   * waited for: its flush ends by the deadline), or the deadline passed.
   */
  #nextWake(
    req: FlushRequest,
    watch: { signs: number; at: number },
  ): number | undefined {
    const now = Date.now();
    if (now >= req.deadline) return undefined;
    const s = this.#slots;
    let signs = Atomics.load(s, RECEIPTS);
    let flushing = false;
    let quiet = false;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      const t = Atomics.load(s, r + THREAD);
      if (t === 0 || r === this.#record) continue;
      if (req.threads !== undefined && !req.threads.includes(t)) continue;
      const received = Atomics.load(s, r + RECEIVED);
      const flushed = Atomics.load(s, r + FLUSHED);
      signs += t + received + flushed + Atomics.load(s, r + PROGRESS);
      if (flushed >= req.id) continue;
      if (req.sync && received >= req.id) flushing = true;
      else quiet = true;
    }
    if (signs !== watch.signs) {
      watch.signs = signs;
      watch.at = now;
    }
    const quietBy = watch.at + QUIET_MS;
    if (quiet && now < quietBy) return Math.min(quietBy, req.deadline) - now;
    return flushing ? req.deadline - now : undefined;
  }

  #changed(): void {
    Atomics.add(this.#slots, CHANGES, 1);
    Atomics.notify(this.#slots, CHANGES);
  }
}
