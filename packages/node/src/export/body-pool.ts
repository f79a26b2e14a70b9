// Export request bodies in reused memory.
//
// A batch's body lives from its encoding until its POST is answered: a few
// milliseconds, enough to outlive a young-generation collection now and
// then. A promoted body's memory (outside V8's heap) is given back only by a
// full collection, which under steady load comes seldom, so dead bodies piled
// up: in the realistic bench service, ArrayBuffer memory grew to 9 MB over
// 45,000 requests, and a full collection brought it back to about 1 MB.
// Bodies made here go back to the pool once their export is settled and are
// written over by later batches, so export memory stays a few buffers,
// whatever the collector does.
//
// Only the exporter that sent a body may release it, once nothing reads it
// any more (answered, refused for good, or dropped); a body still queued,
// in flight or handed elsewhere is never released. Memory that is never
// released is simply collected, as any other buffer.

/** The smallest buffer made; smaller bodies share its size class. */
const MIN_CLASS = 16 * 1024;
/** Bodies larger than this are allocated as they come and never kept. */
const MAX_CLASS = 4 * 1024 * 1024;
/** Free buffers kept per size class. */
const PER_CLASS = 4;
/** Free buffers kept in all. */
const MAX_FREE_BYTES = 8 * 1024 * 1024;

export class BodyPool {
  /** Free buffers by size class (a power of two). */
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** The body each buffer handed out and not yet released went out as. */
  readonly #out = new WeakMap<ArrayBufferLike, Uint8Array>();
  #freeBytes = 0;

  /** Bytes held in free buffers, waiting for a body. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /**
   * A buffer of `size` bytes (its contents are whatever was there before).
   * Bound as it is handed to encoders: `pool.acquire` needs no `this`.
   */
  readonly acquire = (size: number): Buffer => {
    if (size > MAX_CLASS) return Buffer.allocUnsafeSlow(size);
    let cls = MIN_CLASS;
    while (cls < size) cls *= 2;
    let memory = this.#free.get(cls)?.pop();
    if (memory !== undefined) this.#freeBytes -= cls;
    else memory = Buffer.allocUnsafeSlow(cls).buffer as ArrayBuffer;
    const body = Buffer.from(memory, 0, size);
    this.#out.set(memory, body);
    return body;
  };

  /**
   * Takes back a body {@link acquire} handed out (that very object, not
   * another view of its memory) for later bodies; anything else, or a body
   * released already, is left alone.
   */
  release(body: Uint8Array): void {
    const memory = body.buffer;
    if (this.#out.get(memory) !== body) return;
    this.#out.delete(memory);
    const cls = memory.byteLength;
    let list = this.#free.get(cls);
    if (list === undefined) this.#free.set(cls, (list = []));
    if (list.length >= PER_CLASS || this.#freeBytes + cls > MAX_FREE_BYTES)
      return;
    list.push(memory as ArrayBuffer);
    this.#freeBytes += cls;
  }
}

/** This thread's pool: the pipeline's encoders take from it, its exporter gives back. */
export const bodyPool = new BodyPool();
