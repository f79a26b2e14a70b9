import assert from "node:assert/strict";
import { it } from "node:test";
import { BatchQueue, EncodingQueue } from "../src/export/batch-queue.ts";

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

it("sends only full batches early; the rest waits for the schedule delay", async () => {
  const batches: number[][] = [];
  const q = new BatchQueue<number>(
    { scheduleDelayMs: 30, maxQueueSize: 10, maxExportBatchSize: 2 },
    (b) => batches.push(b),
    () => {},
  );
  for (let i = 1; i <= 5; i++) q.push(i);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [
    [1, 2],
    [3, 4],
  ]);
  assert.equal(q.size, 1);
  await new Promise((r) => setTimeout(r, 90));
  assert.deepEqual(batches.at(-1), [5]);
  assert.equal(q.size, 0);
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

/** An encoder of small numbers, one byte each, that refuses negative ones. */
function byteEncoder() {
  const appended: number[] = [];
  return {
    pending: 0,
    get bytes() {
      return appended.length;
    },
    append(n: number) {
      if (n < 0) throw new Error("negative");
      appended.push(n);
      this.pending++;
    },
    take() {
      const body = new Uint8Array(appended.splice(0));
      this.pending = 0;
      return body;
    },
  };
}

it("encodes as items arrive, in batches of at most maxExportBatchSize, and drops what cannot be encoded", async () => {
  const encoder = byteEncoder();
  const batches: Array<[number[], number]> = [];
  const errors: unknown[] = [];
  let dropped = 0;
  const q = new EncodingQueue<number>(
    { scheduleDelayMs: 10_000, maxQueueSize: 5, maxExportBatchSize: 2 },
    encoder,
    (body, count) => batches.push([[...body], count]),
    () => dropped++,
    (err) => errors.push(err),
  );
  for (const n of [1, 2, -1, 3, 4, 5, 6]) q.push(n);
  assert.equal(errors.length, 1);
  assert.equal(dropped, 1, "the sixth item finds five queued");
  assert.equal(q.size, 5);
  assert.equal(batches.length, 0, "nothing is handed on inside push()");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [
    [[1, 2], 2],
    [[3, 4], 2],
  ]);
  assert.equal(q.size, 1, "the partial batch waits for the schedule delay");
  q.drain();
  assert.deepEqual(batches.at(-1), [[5], 1]);
  assert.equal(q.size, 0);
  q.stop();
});

it("seals a batch once its bytes reach the limit, and hands it on the next turn", async () => {
  const batches: Array<[number[], number]> = [];
  const q = new EncodingQueue<number>(
    { scheduleDelayMs: 10_000, maxQueueSize: 100, maxExportBatchSize: 50 },
    byteEncoder(),
    (body, count) => batches.push([[...body], count]),
    () => {},
    () => {},
    { maxBatchBytes: 3 },
  );
  for (const n of [1, 2, 3, 4, 5, 6, 7]) q.push(n);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [
    [[1, 2, 3], 3],
    [[4, 5, 6], 3],
  ]);
  q.drain();
  assert.deepEqual(batches.at(-1), [[7], 1]);
  q.stop();
});

it("holds items until enough have come to encode them together", async () => {
  const encoded: number[] = [];
  const encoder = byteEncoder();
  const batches: Array<[number[], number]> = [];
  const errors: unknown[] = [];
  const q = new EncodingQueue<number>(
    { scheduleDelayMs: 10_000, maxQueueSize: 100, maxExportBatchSize: 4 },
    encoder,
    (body, count) => batches.push([[...body], count]),
    () => {},
    (err) => errors.push(err),
    { hold: 3, onEncoded: (n) => encoded.push(n) },
  );
  q.push(1);
  q.push(2);
  assert.deepEqual(encoded, [], "fewer than three are held as they are");
  assert.equal(q.size, 2);
  q.push(-1);
  assert.deepEqual(encoded, [1, 2, -1], "the third encodes all three");
  assert.equal(errors.length, 1);
  for (const n of [3, 4, 5, 6]) q.push(n);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [[[1, 2, 3, 4], 4]], "held items complete a batch");
  assert.equal(q.size, 2);
  q.drain();
  assert.deepEqual(batches.at(-1), [[5, 6], 2]);
  assert.deepEqual(encoded, [1, 2, -1, 3, 4, 5, 6]);
  assert.equal(q.size, 0);
  q.stop();
});
