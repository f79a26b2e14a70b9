// Trace and span ids from a pool of cryptographically random bytes, so an
// id costs one slice of a buffer to hex instead of a system call.
import { randomFillSync } from "node:crypto";

const POOL_SIZE = 8192;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

function take(n: number): string {
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString("hex", offset, offset + n);
  offset += n;
  return hex;
}

const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** A new random 16-byte trace id, as 32 lowercase hex characters. */
export function newTraceId(): string {
  let id = take(16);
  while (id === ZERO_TRACE) id = take(16);
  return id;
}

/** A new random 8-byte span id, as 16 lowercase hex characters. */
export function newSpanId(): string {
  let id = take(8);
  while (id === ZERO_SPAN) id = take(8);
  return id;
}
