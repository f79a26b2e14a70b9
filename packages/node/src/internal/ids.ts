// Trace and span ids from a pool of cryptographically random bytes, turned
// into hex a short stretch at a time: an id is then a slice of one string,
// which V8 makes without copying, instead of a call into native code per id.
//
// A slice keeps the whole string it was cut from alive, and the string in
// use is alive at every young-generation collection, as are those the
// spans in flight were cut from. Each such collection copies them, and V8
// grows the young generation (by megabytes of resident memory) as the
// bytes its collections copy add up: with the whole pool as one 16 KB
// string, those strings were the largest thing an instrumented service kept
// alive across collections. Stretches of 256 bytes (512 characters) keep
// that to a few hundred bytes, for a few nanoseconds more per id.
import { randomFillSync } from "node:crypto";

/** Random bytes per refill (one call into the crypto library). */
const POOL_BYTES = 8192;
/** Bytes turned into hex at a time; an id takes 8 or 16 of them. */
const STRETCH_BYTES = 256;
const pool = Buffer.allocUnsafe(POOL_BYTES);
/** Next unused byte of `pool`; at the end, the pool is refilled. */
let next = POOL_BYTES;
let hex = "";
/** Next unused hex character of `hex`. */
let at = 0;

function take(chars: number): string {
  if (at + chars > hex.length) {
    if (next === POOL_BYTES) {
      randomFillSync(pool);
      next = 0;
    }
    hex = pool.toString("hex", next, next + STRETCH_BYTES);
    next += STRETCH_BYTES;
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
