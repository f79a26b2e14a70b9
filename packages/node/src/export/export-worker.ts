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

// What was taken in is said once the batches waiting on the port are
// handled and the event loop turns, not batch by batch: the application's
// thread hands over no more until then, so a flood cannot keep this thread
// in its message handler, away from the Collector's answers.
const taken = { traces: 0, logs: 0 };
let saying: NodeJS.Immediate | undefined;
function sayTaken(): void {
  saying = undefined;
  exporter.add("traces", "taken", taken.traces);
  exporter.add("logs", "taken", taken.logs);
  taken.traces = taken.logs = 0;
}

port.on("message", (msg: ToWorker) => {
  exporter.handle(msg);
  if (msg.t === "traces" || msg.t === "logs") {
    taken[msg.t] += msg.count;
    saying ??= setImmediate(sayTaken);
  }
});
