import assert from "node:assert/strict";
import { it } from "node:test";
import { BatchQueue } from "../src/export/batch-queue.ts";

it("hands items on in batches and drops the newest when full", async () => {
  const batches: number[][] = [];
  let dropped = 0;
  const q = new BatchQueue<number>(
    { scheduleDelayMs: 10_000, maxQueueSize: 5, maxExportBatchSize: 2 },
    (b) => batches.push(b),
    () => dropped++,
  );
  for (let i = 0; i < 7; i++) q.push(i);
  assert.equal(dropped, 2);
  assert.equal(q.size, 5);
  q.drain();
  assert.deepEqual(batches, [[0, 1], [2, 3], [4]]);
  q.stop();
});

it("exports a full batch on the next turn of the event loop, not inside push()", async () => {
  const batches: number[][] = [];
  const q = new BatchQueue<number>(
    { scheduleDelayMs: 10_000, maxQueueSize: 10, maxExportBatchSize: 2 },
    (b) => batches.push(b),
    () => {},
  );
  q.push(1);
  q.push(2);
  assert.equal(batches.length, 0);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [[1, 2]]);
  q.stop();
});

it("exports a partial batch after the schedule delay", async () => {
  const batches: number[][] = [];
  const q = new BatchQueue<number>(
    { scheduleDelayMs: 20, maxQueueSize: 10, maxExportBatchSize: 5 },
    (b) => batches.push(b),
    () => {},
  );
  q.push(1);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(batches, [[1]]);
  q.stop();
});
