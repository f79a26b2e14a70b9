// The pool export bodies are made in: memory goes back only once, only
// from the pool, and within its bounds.
import assert from "node:assert/strict";
import { it } from "node:test";
import { BodyPool } from "../src/export/body-pool.ts";

it("hands out a body of the size asked for, in memory given back by an earlier one", () => {
  const pool = new BodyPool();
  const first = pool.acquire(20_000);
  assert.equal(first.length, 20_000);
  const memory = first.buffer;
  pool.release(first);
  assert.equal(pool.freeBytes, memory.byteLength);
  const second = pool.acquire(30_000);
  assert.equal(second.length, 30_000);
  assert.equal(second.buffer, memory, "the same size class reuses it");
  assert.equal(pool.freeBytes, 0);
  const other = pool.acquire(30_000);
  assert.notEqual(
    other.buffer,
    memory,
    "memory in use is never handed out twice",
  );
});

it("takes a body back once: a second release cannot hand its memory to two bodies", () => {
  const pool = new BodyPool();
  const body = pool.acquire(100);
  pool.release(body);
  pool.release(body);
  const a = pool.acquire(100);
  const b = pool.acquire(100);
  assert.equal(a.buffer, body.buffer);
  assert.notEqual(b.buffer, a.buffer);
  // Released again, or as another view, while `a` holds its memory.
  pool.release(body);
  pool.release(Buffer.from(a.buffer, 0, 100));
  assert.equal(pool.freeBytes, 0);
  assert.notEqual(pool.acquire(100).buffer, a.buffer);
  pool.release(a);
  assert.equal(pool.acquire(100).buffer, a.buffer);
});

it("leaves alone memory it did not make", () => {
  const pool = new BodyPool();
  const foreign = Buffer.allocUnsafeSlow(16 * 1024);
  pool.release(foreign);
  pool.release(new Uint8Array(32 * 1024));
  assert.equal(pool.freeBytes, 0);
  assert.notEqual(pool.acquire(100).buffer, foreign.buffer);
});

it("keeps a few buffers per size and never a very large one", () => {
  const pool = new BodyPool();
  const bodies = Array.from({ length: 10 }, () => pool.acquire(1000));
  for (const b of bodies) pool.release(b);
  assert.equal(pool.freeBytes, 4 * 16 * 1024);
  const huge = pool.acquire(5 * 1024 * 1024);
  assert.equal(huge.length, 5 * 1024 * 1024);
  pool.release(huge);
  assert.equal(pool.freeBytes, 4 * 16 * 1024);
  const big = Array.from({ length: 4 }, () => pool.acquire(3 * 1024 * 1024));
  for (const b of big) pool.release(b);
  assert.ok(pool.freeBytes <= 8 * 1024 * 1024, `${pool.freeBytes} bytes kept`);
});
