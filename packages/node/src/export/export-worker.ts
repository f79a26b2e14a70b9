// The export worker thread (THREADLINE_EXPORT_THREAD=worker, and the 'exit'
// flush): an exporter fed through the worker's port.
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { Exporter } from "./exporter.ts";
import type { ToWorker, WorkerSettings } from "./protocol.ts";

const port = parentPort!;
// What the exporter has to say goes through a port of its own, which the
// application's thread can read while it blocks in the exit's flush.
const { diagPort, ...settings } = workerData as WorkerSettings & {
  diagPort: MessagePort;
};
const exporter = new Exporter(settings, (msg) =>
  (msg.t === "diag" ? diagPort : port).postMessage(msg),
);
port.on("message", (msg: ToWorker) => exporter.handle(msg));
