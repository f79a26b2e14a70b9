// Bounded queues that hand items on in batches: full batches on the next
// turn of the event loop (never inside the caller's push()), and whatever is
// left once the oldest item has waited `scheduleDelayMs`. Only full batches
// go on the early turn, so a steady stream is sent in full batches rather
// than each full batch trailed by the few items pushed after it. A full queue drops the
// newest item and reports it; nothing here can throw into the caller.
//
// BatchQueue keeps the items themselves. EncodingQueue encodes items as they
// arrive, a few at a time, and keeps only the bytes: at thousands of spans
// a second, span objects held until their batch is sent survive the
// young-generation collections, and V8 answers a high survival rate by
// growing the young generation, which is most of an agent's added memory
// under load. Encoding each span the moment it ends costs more, though: the
// encoder's code and attribute models are cold again each time, between
// requests. Holding a few (`hold`) and encoding them in a row keeps both low.
import type { BatchSettings } from "../config.ts";

abstract class Batcher<T> {
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  protected readonly settings: BatchSettings;
  readonly #onDrop: () => void;

  constructor(settings: BatchSettings, onDrop: () => void) {
    this.settings = settings;
    this.#onDrop = onDrop;
  }

  /** Items queued and not yet handed on. */
  abstract get size(): number;
  /** Queues one item. */
  protected abstract add(item: T): void;
  /** Forgets every queued item; how many there were. */
  abstract discard(): number;
  /** Whether a batch was sealed early (by its bytes) and can go now. */
  protected get ready(): boolean {
    return false;
  }
  /** Hands queued items on: every one, or only those that make full batches. */
  protected abstract flush(fullBatchesOnly: boolean): void;

  push(item: T): void {
    if (this.size >= this.settings.maxQueueSize) {
      this.#onDrop();
      return;
    }
    this.add(item);
    if (this.size >= this.settings.maxExportBatchSize || this.ready) {
      this.#immediate ??= setImmediate(() => {
        this.#immediate = undefined;
        this.flush(true);
        this.#startTimer();
      });
      this.#immediate.unref?.();
    } else {
      this.#startTimer();
    }
  }

  #startTimer(): void {
    if (this.#timer !== undefined || this.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.drain();
    }, this.settings.scheduleDelayMs);
    this.#timer.unref();
  }

  /** Hands every queued item on now, in batches of at most maxExportBatchSize. */
  drain(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.size > 0) this.flush(false);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }
}

export class BatchQueue<T> extends Batcher<T> {
  #items: T[] = [];
  readonly #onBatch: (items: T[]) => void;

  constructor(
    settings: BatchSettings,
    onBatch: (items: T[]) => void,
    onDrop: () => void,
  ) {
    super(settings, onDrop);
    this.#onBatch = onBatch;
  }

  get size(): number {
    return this.#items.length;
  }

  protected add(item: T): void {
    this.#items.push(item);
  }

  discard(): number {
    const n = this.#items.length;
    this.#items = [];
    return n;
  }

  protected flush(fullBatchesOnly: boolean): void {
    const size = this.settings.maxExportBatchSize;
    let items = this.#items;
    if (fullBatchesOnly) {
      const take = items.length - (items.length % size);
      if (take === 0) return;
      this.#items = items.slice(take);
      if (take < items.length) items = items.slice(0, take);
    } else {
      this.#items = [];
    }
    for (let i = 0; i < items.length; i += size)
      this.#onBatch(
        i === 0 && items.length <= size ? items : items.slice(i, i + size),
      );
  }
}

/** Encodes items as they arrive, a batch at a time. */
export interface BatchEncoder<T> {
  /** Items appended since the last take(). */
  readonly pending: number;
  /** Their encoded bytes. */
  readonly bytes: number;
  /** Encodes one item; throws, keeping nothing of it, when it cannot. */
  append(item: T): void;
  /** The encoded batch of everything appended since the last take(). */
  take(): Uint8Array;
  /**
   * The encoded batch of the items appended while {@link bytes} was below
   * `bytes`, keeping the rest for the next take(). Optional; asked for
   * all but the last item appended only.
   */
  takeBefore?(bytes: number): Uint8Array;
}

/** Options of {@link EncodingQueue}. */
export interface EncodingOptions<T> {
  /**
   * Items kept as they are and encoded together once this many have
   * arrived (1: each as it arrives). Only for items that stay as they
   * were pushed.
   */
  hold?: number;
  /** Called with each item once it has been encoded (or has failed to be). */
  onEncoded?: (item: T) => void;
  /**
   * A batch is sealed once its bytes reach this, whatever its count: a
   * batch of large items must still fit the exporter's byte budget (and a
   * Collector's request size limit).
   */
  maxBatchBytes?: number;
}

export class EncodingQueue<T> extends Batcher<T> {
  readonly #encoder: BatchEncoder<T>;
  readonly #onBatch: (body: Uint8Array, count: number) => void;
  readonly #onEncodeError: (err: unknown) => void;
  readonly #hold: number;
  readonly #onEncoded: ((item: T) => void) | undefined;
  readonly #maxBatchBytes: number;
  /** Items not yet encoded (fewer than `hold`). */
  #held: T[] = [];
  /** Full batches waiting for the next turn of the event loop. */
  #sealed: Array<{ body: Uint8Array; count: number }> = [];
  #sealedCount = 0;

  constructor(
    settings: BatchSettings,
    encoder: BatchEncoder<T>,
    onBatch: (body: Uint8Array, count: number) => void,
    onDrop: () => void,
    onEncodeError: (err: unknown) => void,
    options: EncodingOptions<T> = {},
  ) {
    super(settings, onDrop);
    this.#encoder = encoder;
    this.#onBatch = onBatch;
    this.#onEncodeError = onEncodeError;
    this.#hold = Math.max(
      1,
      Math.min(options.hold ?? 1, settings.maxExportBatchSize),
    );
    this.#onEncoded = options.onEncoded;
    this.#maxBatchBytes = options.maxBatchBytes ?? Infinity;
  }

  protected override get ready(): boolean {
    return this.#sealedCount > 0;
  }

  discard(): number {
    const n = this.size;
    this.#held = [];
    if (this.#encoder.pending > 0) this.#encoder.take();
    this.#sealed = [];
    this.#sealedCount = 0;
    return n;
  }

  get size(): number {
    return this.#sealedCount + this.#encoder.pending + this.#held.length;
  }

  protected add(item: T): void {
    if (this.#hold === 1) {
      this.#encode(item);
      return;
    }
    this.#held.push(item);
    if (this.#held.length >= this.#hold) this.#encodeHeld();
  }

  #encodeHeld(): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    for (const item of held) this.#encode(item);
  }

  #encode(item: T): void {
    const encoder = this.#encoder;
    const before = encoder.bytes;
    try {
      encoder.append(item);
    } catch (err) {
      this.#onEncodeError(err);
    }
    this.#onEncoded?.(item);
    const bytes = encoder.bytes;
    if (
      encoder.pending >= this.settings.maxExportBatchSize ||
      bytes >= this.#maxBatchBytes
    ) {
      // An item larger than a batch goes in a batch of its own: the items
      // before it would otherwise share its fate if the whole is more
      // than the exporter's byte budget (and dropped with it).
      if (
        before > 0 &&
        bytes - before > this.#maxBatchBytes &&
        encoder.takeBefore !== undefined
      ) {
        const count = encoder.pending - 1;
        this.#sealed.push({ body: encoder.takeBefore(before), count });
        this.#sealedCount += count;
      }
      this.#seal();
    }
  }

  #seal(): void {
    const count = this.#encoder.pending;
    if (count === 0) return;
    this.#sealed.push({ body: this.#encoder.take(), count });
    this.#sealedCount += count;
  }

  protected flush(fullBatchesOnly: boolean): void {
    // Held items complete a batch when there are enough of them.
    if (
      !fullBatchesOnly ||
      this.#encoder.pending + this.#held.length >=
        this.settings.maxExportBatchSize
    )
      this.#encodeHeld();
    if (!fullBatchesOnly) this.#seal();
    const sealed = this.#sealed;
    this.#sealed = [];
    this.#sealedCount = 0;
    for (const b of sealed) this.#onBatch(b.body, b.count);
  }
}
