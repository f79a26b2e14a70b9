// A bounded queue that hands items on in batches: when a batch fills up
// (on the next turn of the event loop, never inside the caller's end()),
// or when the oldest item has waited `scheduleDelayMs`. A full queue drops
// the newest item and reports it; nothing here can throw into the caller.
import type { BatchSettings } from "../config.ts";

export class BatchQueue<T> {
  #items: T[] = [];
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  readonly #settings: BatchSettings;
  readonly #onBatch: (items: T[]) => void;
  readonly #onDrop: () => void;

  constructor(
    settings: BatchSettings,
    onBatch: (items: T[]) => void,
    onDrop: () => void,
  ) {
    this.#settings = settings;
    this.#onBatch = onBatch;
    this.#onDrop = onDrop;
  }

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    const items = this.#items;
    if (items.length >= this.#settings.maxQueueSize) {
      this.#onDrop();
      return;
    }
    items.push(item);
    if (items.length >= this.#settings.maxExportBatchSize) {
      this.#immediate ??= setImmediate(() => {
        this.#immediate = undefined;
        this.drain();
      });
      this.#immediate.unref?.();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.drain();
      }, this.#settings.scheduleDelayMs);
      this.#timer.unref();
    }
  }

  /** Hands every queued item on now, in batches of at most maxExportBatchSize. */
  drain(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const items = this.#items;
    if (items.length === 0) return;
    this.#items = [];
    const size = this.#settings.maxExportBatchSize;
    for (let i = 0; i < items.length; i += size)
      this.#onBatch(
        i === 0 && items.length <= size ? items : items.slice(i, i + size),
      );
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }
}
