// One process, one service instance, whichever of its threads Threadline
// starts in.
//
// A Worker inherits the application's --import and NODE_OPTIONS, and a
// worker's code may call init() itself, so Threadline can start in several
// threads of one process. The first to start (the main thread's, as a rule)
// owns the process: it picks the service.instance.id and alone reports and
// serves what is the whole process's (process and host metrics, the
// Prometheus and health endpoints, the alarms). It leaves the id in
// worker_threads' environment data, which every Worker copies from the
// thread that starts it, nested ones included. A Threadline in a worker finds
// it there, reports as that instance, and labels its metric points with the
// thread's `thread.id`, so that no series of two threads collide.
//
// Cost: node:worker_threads is loaded when Threadline starts (about 80 KB of
// heap, once); nothing afterwards.
import type { Attributes } from "@threadline/otlp";

const KEY = "threadline.service.instance.id";

/** What a Threadline learns of the process it starts in. */
export interface ProcessOwner {
  /** The owner's service.instance.id, when another thread owns the process. */
  readonly instanceId: string | undefined;
  /** Attributes for this thread's metric points: none in the owner. */
  readonly metricAttributes: Attributes | undefined;
}

/** node:worker_threads, loaded when first asked for. */
export function workerThreads() {
  return process.getBuiltinModule("node:worker_threads");
}

/** Whether a Threadline of another thread owns this process, and as what. */
export function processOwner(): ProcessOwner {
  const w = workerThreads();
  const id = w.getEnvironmentData(KEY);
  return typeof id === "string"
    ? { instanceId: id, metricAttributes: { "thread.id": w.threadId } }
    : { instanceId: undefined, metricAttributes: undefined };
}

/**
 * Makes this thread's Threadline the process's owner for the workers started
 * from now on. Returns the release, for its shutdown: workers started after
 * it own what they start.
 */
export function ownProcess(instanceId: string): () => void {
  const w = workerThreads();
  w.setEnvironmentData(KEY, instanceId);
  return () => {
    if (w.getEnvironmentData(KEY) === instanceId)
      w.setEnvironmentData(KEY, undefined);
  };
}
