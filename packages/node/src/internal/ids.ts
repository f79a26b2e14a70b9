// Trace and span ids from a pool of cryptographically random bytes, turned
// into hex once per refill: an id is then a slice of one long string, which
// V8 makes without copying, instead of a call into native code per id.
import { randomFillSync } from "node:crypto";

/** Random bytes per refill; an id takes 8 or 16 of them. */
const POOL_BYTES = 8192;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let hex = "";
/** Next unused hex character of `hex`. */
let at = 0;

function take(chars: number): string {
  if (at + chars > hex.length) {
    randomFillSync(pool);
    hex = pool.toString("hex");
    at = 0;
  }
  const id = hex.slice(at, at + chars);
  at += chars;
  return id;
}

/**
 * Whether a fresh id is all zeros (invalid, so drawn again). The pool's
 * digits are hex by construction, so this is the only check, and it ends at
 * the first non-zero digit: core's isValidTraceId reads every character
 * (ten times the cost of the id here), and comparing a slice with a string
 * goes through the runtime.
 */
function allZero(id: string): boolean {
  for (let i = 0; i < id.length; i++)
    if (id.charCodeAt(i) !== 0x30) return false;
  return true;
}

/** A new random 16-byte trace id, as 32 lowercase hex characters. */
export function newTraceId(): string {
  let id = take(32);
  while (allZero(id)) id = take(32);
  return id;
}

/** A new random 8-byte span id, as 16 lowercase hex characters. */
export function newSpanId(): string {
  let id = take(16);
  while (allZero(id)) id = take(16);
  return id;
}
