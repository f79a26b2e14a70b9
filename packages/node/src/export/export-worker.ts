// The export worker thread (THREADLINE_EXPORT_THREAD=worker, and the 'exit'
// flush): an exporter fed through the worker's port.
import { parentPort, workerData } from "node:worker_threads";
import { Exporter } from "./exporter.ts";
import type { ToWorker, WorkerSettings } from "./protocol.ts";

const port = parentPort!;
const exporter = new Exporter(workerData as WorkerSettings, (msg) =>
  port.postMessage(msg),
);
port.on("message", (msg: ToWorker) => exporter.handle(msg));
