// What a worker thread's Threadline holds, sent before the thread is gone.
//
// A Threadline in a worker batches like any other (OTEL_BSP_SCHEDULE_DELAY),
// and nothing of the process's end waits for its batches: SIGTERM and
// process.exit() are the main thread's, a natural exit tears down the
// unref'd workers still running, and worker.terminate() (worker pools end
// idle workers with it) stops a worker at once. So the process's owner leaves a registry
// in shared memory in worker_threads' environment data (copied by every
// Worker as it starts); each Threadline worker takes a slot in it and
// listens on a BroadcastChannel, unref'd so that it never holds its thread
// alive. To flush, a thread posts a request on the channel and waits for
// every registered worker (or the one being terminated) to mark in shared memory that it received the
// request, then that its pipeline flushed: asynchronously, or in an 'exit'
// handler blocked in Atomics.wait while the workers, on threads of their
// own, send their batches. A worker that has not picked the request up
// within RECEIPT_MS (its event loop held by a runaway job) is not waited
// for: it could not send anything anyway. A worker leaves its slot at its
// exit; one that never ran its exit (terminated, out of memory) is taken
// out by the thread that started it, which sees it end through the
// `worker_threads` diagnostics channel.
//
// Cost: 1.5 KB of shared memory per process; per worker thread, one slot,
// one channel and one 'exit' listener. Nothing per request, and an exit with no worker
// registered reads the slots and returns.
import type { BroadcastChannel, Worker } from "node:worker_threads";

const KEY = "threadline.worker-flush";
const CHANNEL = "threadline.worker-flush";

/** How long a worker has to pick a request up before it is not waited for. */
const RECEIPT_MS = 100;
/** Workers that can be registered at once; more are not flushed. */
const CAPACITY = 128;

// Int32 slots: the last request's id, a counter bumped (and notified) at
// every change, then one record per worker.
const LAST_REQUEST = 0;
const CHANGES = 1;
const RECORDS = 2;
// A record: its thread's id (0: free), the last request it received, the
// last one it finished.
const THREAD = 0;
const RECEIVED = 1;
const FLUSHED = 2;
const RECORD_SIZE = 3;

interface FlushRequest {
  id: number;
  deadline: number;
  final: boolean;
  /** Only this worker; every registered one when undefined. */
  thread: number | undefined;
}

/** A worker's flush: its pipeline's, until `timeoutMs`. Never rejects. */
export type FlushOwn = (timeoutMs: number, final: boolean) => Promise<void>;

function workerThreads() {
  return process.getBuiltinModule("node:worker_threads");
}

export class WorkerFlush {
  readonly #slots: Int32Array;
  readonly #release: (() => void) | undefined;
  #channel: BroadcastChannel | undefined;
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
    const inherited: unknown = w.getEnvironmentData(KEY);
    if (!owner && inherited instanceof SharedArrayBuffer) {
      this.#slots = new Int32Array(inherited);
      this.#release = undefined;
      return;
    }
    const shared = new SharedArrayBuffer(
      (RECORDS + CAPACITY * RECORD_SIZE) * 4,
    );
    this.#slots = new Int32Array(shared);
    w.setEnvironmentData(KEY, shared);
    this.#release = () => {
      if (w.getEnvironmentData(KEY) === shared)
        w.setEnvironmentData(KEY, undefined);
    };
  }

  /**
   * Registers this worker thread's Threadline: flush requests run `flush`.
   * Left at the thread's exit, or by {@link close}.
   */
  join(flush: FlushOwn): void {
    const w = workerThreads();
    if (w.isMainThread || this.#record >= 0) return;
    const s = this.#slots;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      if (Atomics.compareExchange(s, r + THREAD, 0, w.threadId) !== 0) continue;
      // Requests posted before the channel below existed never reach it.
      const last = Atomics.load(s, LAST_REQUEST);
      Atomics.store(s, r + RECEIVED, last);
      Atomics.store(s, r + FLUSHED, last);
      this.#record = r;
      break;
    }
    if (this.#record < 0) return;
    const channel = this.#openChannel();
    channel.onmessage = (event: unknown) => {
      const req = (event as { data: FlushRequest }).data;
      const r = this.#record;
      if (r < 0 || (req.thread !== undefined && req.thread !== w.threadId))
        return;
      this.#mark(r + RECEIVED, req.id);
      // A record left meanwhile may be another thread's by now.
      const done = () => {
        if (this.#record === r) this.#mark(r + FLUSHED, req.id);
      };
      flush(Math.max(0, req.deadline - Date.now()), req.final).then(done, done);
    };
    // A message listener may ref a channel again.
    channel.unref();
    this.#onExit = () => this.#leave();
    process.on("exit", this.#onExit);
  }

  /**
   * Asks every registered worker (or only `thread`) to flush and returns
   * the request to wait on, or undefined when there is none to ask.
   */
  request(
    timeoutMs: number,
    final: boolean,
    thread?: number,
  ): FlushRequest | undefined {
    if (!this.#anyRegistered(thread)) return undefined;
    const req: FlushRequest = {
      id: Atomics.add(this.#slots, LAST_REQUEST, 1) + 1,
      deadline: Date.now() + timeoutMs,
      final,
      thread,
    };
    this.#openChannel().postMessage(req);
    return req;
  }

  /** Blocks until the workers asked by `req` flushed, or its deadline. */
  waitSync(req: FlushRequest | undefined): void {
    if (req === undefined) return;
    const receiptBy = Date.now() + RECEIPT_MS;
    for (;;) {
      const seen = Atomics.load(this.#slots, CHANGES);
      const wake = this.#nextWake(req, receiptBy);
      if (wake === undefined) return;
      Atomics.wait(this.#slots, CHANGES, seen, wake);
    }
  }

  /** Resolves once the workers asked by `req` flushed, or at its deadline. */
  async wait(req: FlushRequest | undefined): Promise<void> {
    if (req === undefined) return;
    const receiptBy = Date.now() + RECEIPT_MS;
    // Atomics.waitAsync does not keep the event loop alive; this does.
    const alive = setTimeout(() => {}, req.deadline - Date.now() + 10);
    try {
      for (;;) {
        const seen = Atomics.load(this.#slots, CHANGES);
        const wake = this.#nextWake(req, receiptBy);
        if (wake === undefined) return;
        const result = Atomics.waitAsync(this.#slots, CHANGES, seen, wake);
        if (result.async) await result.value;
      }
    } finally {
      clearTimeout(alive);
    }
  }

  /** Asks every registered worker to flush; resolves when done or after `timeoutMs`. */
  flush(timeoutMs: number, final: boolean): Promise<void> {
    return this.wait(this.request(timeoutMs, final));
  }

  /**
   * Has `worker.terminate()` of a registered worker first let it flush,
   * within `timeoutMs`: the promise it returns settles that much later at
   * most, a few milliseconds when the Collector answers and the worker's
   * batch is small. Returns the undo.
   */
  flushOnTerminate(timeoutMs: number): () => void {
    const proto = workerThreads().Worker.prototype;
    const original = proto.terminate;
    const registry = this;
    const terminate = function (this: Worker, ...args: unknown[]) {
      const req = registry.request(timeoutMs, true, this.threadId);
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
    this.#channel?.close();
    this.#channel = undefined;
    this.#release?.();
  }

  #openChannel(): BroadcastChannel {
    if (this.#channel === undefined) {
      this.#channel = new (workerThreads().BroadcastChannel)(CHANNEL);
      this.#channel.unref();
    }
    return this.#channel;
  }

  #leave(): void {
    if (this.#onExit !== undefined)
      process.removeListener("exit", this.#onExit);
    this.#onExit = undefined;
    const r = this.#record;
    if (r < 0) return;
    this.#record = -1;
    this.#channel?.close();
    this.#channel = undefined;
    Atomics.store(this.#slots, r + THREAD, 0);
    this.#changed();
  }

  /** The record of a worker that ended without leaving it. */
  #forget(thread: number): void {
    const s = this.#slots;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE)
      if (Atomics.compareExchange(s, r + THREAD, thread, 0) === thread) {
        this.#changed();
        return;
      }
  }

  #anyRegistered(thread: number | undefined): boolean {
    const s = this.#slots;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      const t = Atomics.load(s, r + THREAD);
      if (
        t !== 0 &&
        r !== this.#record &&
        (thread === undefined || t === thread)
      )
        return true;
    }
    return false;
  }

  /**
   * Milliseconds to wait for the next change, or undefined when nothing is
   * left to wait for: every worker asked has flushed, or did not pick the
   * request up in time, or the deadline passed.
   */
  #nextWake(req: FlushRequest, receiptBy: number): number | undefined {
    const now = Date.now();
    if (now >= req.deadline) return undefined;
    const s = this.#slots;
    let waiting = false;
    let unreceived = false;
    for (let r = RECORDS; r < s.length; r += RECORD_SIZE) {
      const t = Atomics.load(s, r + THREAD);
      if (t === 0 || r === this.#record) continue;
      if (req.thread !== undefined && t !== req.thread) continue;
      if (Atomics.load(s, r + FLUSHED) >= req.id) continue;
      if (Atomics.load(s, r + RECEIVED) >= req.id) waiting = true;
      else if (now < receiptBy) unreceived = true;
    }
    if (unreceived) return Math.min(receiptBy, req.deadline) - now;
    return waiting ? req.deadline - now : undefined;
  }

  /** Raises slot `at` to `id` (never lowers it) and wakes the waiters. */
  #mark(at: number, id: number): void {
    const s = this.#slots;
    for (;;) {
      const was = Atomics.load(s, at);
      if (was >= id || Atomics.compareExchange(s, at, was, id) === was) break;
    }
    this.#changed();
  }

  #changed(): void {
    Atomics.add(this.#slots, CHANGES, 1);
    Atomics.notify(this.#slots, CHANGES);
  }
}
