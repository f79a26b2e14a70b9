// The recording span. It is also the export record (it implements the OTLP
// encoder's SpanData), so ending a span copies nothing: the object goes
// into the batch queue as it is. Attributes live in a plain object whose
// shape V8 shares between spans built the same way.
import {
  SpanStatusCode,
  type Attributes as ApiAttributes,
  type AttributeValue,
  type Exception,
  type Link,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  type TimeInput,
} from "@opentelemetry/api";
import type {
  AnyValue,
  ApiSpanKind,
  Scope,
  SpanData,
  SpanEventData,
  SpanLinkData,
} from "@threadline/otlp";
import { diag, isValidSpanId, isValidTraceId } from "@threadline/core";
import { now, toEpochMs } from "../internal/clock.ts";
import type { SpanLimits } from "../config.ts";
import { truncate } from "../internal/truncate.ts";
import { isAttributeValue } from "../internal/attribute-value.ts";

/** Receives spans when they end (the export pipeline). */
export interface SpanSink {
  onEnd(span: RecordingSpan): void;
  /**
   * Hands the ended spans it holds on for export, and says how many may
   * end before the next call without filling its queue: for ending many
   * at once (see RecordingSpan.endOpenSpans).
   */
  drainSpans(): number;
}

/** What all spans of one tracer share. */
export interface SpanShared {
  readonly scope: Scope;
  readonly limits: SpanLimits;
  readonly sink: SpanSink;
}

type MutableAttributes = Record<string, AnyValue>;

function limitValue(v: AttributeValue, max: number): AnyValue {
  if (typeof v === "string") return v.length > max ? truncate(v, max) : v;
  if (Array.isArray(v))
    return v.map((x) =>
      typeof x === "string" && x.length > max ? truncate(x, max) : x,
    ) as AnyValue;
  return v as AnyValue;
}

/** Copies `src` into `dst` under the count and length limits; returns how many were dropped. */
function copyAttributes(
  dst: MutableAttributes,
  src: ApiAttributes,
  countLimit: number,
  lengthLimit: number,
  count: number,
): { count: number; dropped: number } {
  // JavaScript callers pass null for none, and what is no object is none
  // (a string would give an attribute per character).
  if (typeof src !== "object" || src === null) return { count, dropped: 0 };
  let dropped = 0;
  for (const key in src) {
    const v = src[key];
    if (!isAttributeValue(v) || key.length === 0) continue;
    if (!(key in dst)) {
      if (count >= countLimit) {
        dropped++;
        continue;
      }
      count++;
    }
    dst[key] = limitValue(v, lengthLimit);
  }
  return { count, dropped };
}

/**
 * The ids of a span a link's context names, in lower case, if OTLP can
 * carry them: a trace id of 32 and a span id of 16 hex digits in either
 * case (as @opentelemetry/api's checks take them), neither all zeros; else
 * undefined. Ids of any other length make the Collector refuse the whole
 * request the span goes in, and others than hex digits that too in
 * OTLP/JSON.
 */
function linkedIds(
  c: SpanContext | undefined,
): { traceId: string; spanId: string } | undefined {
  if (typeof c?.traceId !== "string" || typeof c.spanId !== "string")
    return undefined;
  const traceId = c.traceId.toLowerCase();
  const spanId = c.spanId.toLowerCase();
  return isValidTraceId(traceId) && isValidSpanId(spanId)
    ? { traceId, spanId }
    : undefined;
}

/**
 * A link's trace state as its header text. From JavaScript it may be no
 * TraceState at all (the header's text itself, say): then it is none.
 */
function traceStateOf(c: SpanContext): string | undefined {
  const text: unknown =
    typeof c.traceState?.serialize === "function"
      ? c.traceState.serialize()
      : undefined;
  return typeof text === "string" && text !== "" ? text : undefined;
}

/**
 * A span name given as no string, as its text: OTLP carries a name as a
 * string alone, and another JSON type in OTLP/JSON had the Collector
 * refuse the span's whole batch.
 */
function nameText(name: unknown): string {
  diag.warnOnce(
    "span-name",
    `a span was given a name that is not a string (${typeof name}); its text is the name`,
  );
  try {
    return String(name);
  } catch {
    // An object without a prototype, whose String() throws.
    return "";
  }
}

const RELEASED: MutableAttributes = Object.freeze({}) as MutableAttributes;

/**
 * Why a span still open was ended by Threadline rather than by its code:
 * the value of its `threadline.unfinished` attribute.
 */
export type UnfinishedReason =
  "exit" | "crash" | "SIGTERM" | "SIGINT" | "shutdown" | "terminate";

/**
 * The most open spans the process's end can find. Spans the application
 * starts and never ends would otherwise be held for good; past this many,
 * the oldest is let go (it is still a span, only no longer ended at the
 * end). A thousand requests in flight with three spans open each fit.
 */
export const MAX_OPEN_TRACKED = 4096;

/**
 * A property of what was thrown, undefined when reading it throws: a
 * getter's, a Proxy's or an Error.prepareStackTrace's own error must not
 * reach the application through recordException.
 */
function propertyOf(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

export class RecordingSpan implements Span, SpanData {
  readonly scope: Scope;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly parentIsRemote: boolean;
  readonly traceFlags: number;
  name: string;
  readonly kind: ApiSpanKind;
  readonly startTime: number;
  endTime = 0;
  attributes: MutableAttributes;
  droppedAttributesCount = 0;
  events: SpanEventData[] | undefined = undefined;
  droppedEventsCount = 0;
  links: SpanLinkData[] | undefined = undefined;
  droppedLinksCount = 0;
  statusCode = 0;
  statusMessage: string | undefined = undefined;
  /** The customer this span was started for, if any. */
  readonly customerId: string | undefined;

  readonly #context: SpanContext;
  readonly #shared: SpanShared;
  #attributeCount = 0;
  #ended = false;
  // The list of open spans, newest first (see endOpenSpans): two links
  // on the span itself, so that keeping it allocates nothing.
  #newer: RecordingSpan | undefined = undefined;
  #older: RecordingSpan | undefined = undefined;
  #tracked = false;

  static #newest: RecordingSpan | undefined = undefined;
  static #oldest: RecordingSpan | undefined = undefined;
  static #openCount = 0;

  /** How many open spans the process's end would end now. */
  static get openCount(): number {
    return RecordingSpan.#openCount;
  }

  /**
   * Ends every span still open: the process is ending (or Threadline is
   * shut down) and their code will never end them, so they would be lost,
   * though they are what was happening when the service stopped. Each is
   * marked with an error status saying why and the `threadline.unfinished`
   * attribute; `message` says what ended the process. Oldest first, the
   * requests that waited longest, and handed on for export as often as
   * their sink's queue needs, so that they do not fill it. Returns how
   * many.
   */
  static endOpenSpans(reason: UnfinishedReason, message: string): number {
    let n = 0;
    let room = 0;
    for (
      let span = RecordingSpan.#oldest;
      span !== undefined;
      span = RecordingSpan.#oldest
    ) {
      if (room === 0) room = span.#shared.sink.drainSpans();
      room--;
      span.setAttribute("threadline.unfinished", reason);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      // An OK its code set stays (OK is final); the attribute still tells.
      span.end();
      n++;
    }
    return n;
  }

  #track(): void {
    const newest = RecordingSpan.#newest;
    this.#older = newest;
    if (newest === undefined) RecordingSpan.#oldest = this;
    else newest.#newer = this;
    RecordingSpan.#newest = this;
    this.#tracked = true;
    if (++RecordingSpan.#openCount > MAX_OPEN_TRACKED)
      RecordingSpan.#oldest!.#untrack();
  }

  #untrack(): void {
    const newer = this.#newer;
    const older = this.#older;
    if (newer === undefined) RecordingSpan.#newest = older;
    else newer.#older = older;
    if (older === undefined) RecordingSpan.#oldest = newer;
    else older.#newer = newer;
    this.#newer = undefined;
    this.#older = undefined;
    this.#tracked = false;
    RecordingSpan.#openCount--;
  }

  constructor(
    shared: SpanShared,
    context: SpanContext,
    parent: SpanContext | undefined,
    name: string,
    kind: SpanKind,
    startTime: TimeInput | undefined,
    attributes: ApiAttributes | undefined,
    links: Link[] | undefined,
    customerId: string | undefined,
  ) {
    this.#shared = shared;
    this.#context = context;
    this.scope = shared.scope;
    this.traceId = context.traceId;
    this.spanId = context.spanId;
    this.traceFlags = context.traceFlags;
    this.parentSpanId = parent?.spanId;
    this.parentIsRemote = parent?.isRemote === true;
    this.name = typeof name === "string" ? name : nameText(name);
    this.kind = kind as number as ApiSpanKind;
    this.startTime = startTime === undefined ? now() : toEpochMs(startTime);
    this.customerId = customerId;
    const adopted =
      attributes === undefined
        ? undefined
        : this.#adopt(attributes, customerId);
    if (adopted !== undefined) {
      this.attributes = adopted;
    } else {
      this.attributes = {};
      if (customerId !== undefined) {
        this.attributes["customer.id"] = customerId;
        this.#attributeCount = 1;
      }
      if (attributes !== undefined) this.setAttributes(attributes);
    }
    if (links !== undefined) this.addLinks(links);
    this.#track();
  }

  /**
   * Takes a copy of the start attributes whole when every entry can be kept
   * as it is: a plain object of strings within the length limit, numbers
   * and booleans, with room for the customer id under the count limit.
   * Spreading a plain object lets V8 copy its whole shape at once, three
   * times faster than copying key by key. Undefined, having counted
   * nothing, when the careful path must run instead; both give the same
   * attributes.
   */
  #adopt(
    src: ApiAttributes,
    customerId: string | undefined,
  ): MutableAttributes | undefined {
    if (src === null || Object.getPrototypeOf(src) !== Object.prototype)
      return undefined;
    const limits = this.#shared.limits;
    const copy = { ...src } as MutableAttributes;
    let count = 0;
    for (const key in copy) {
      const v = copy[key];
      if (
        key.length === 0 ||
        (typeof v === "string"
          ? v.length > limits.attributeValueLengthLimit
          : typeof v !== "number" && typeof v !== "boolean")
      )
        return undefined;
      count++;
    }
    // The attributes' own customer.id, if they have one, wins, as on the
    // careful path.
    if (customerId !== undefined && !("customer.id" in copy)) {
      copy["customer.id"] = customerId;
      count++;
    }
    if (count > limits.attributeCountLimit) return undefined;
    this.#attributeCount = count;
    return copy;
  }

  get traceState(): string | undefined {
    return this.#context.traceState?.serialize() || undefined;
  }

  spanContext(): SpanContext {
    return this.#context;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (
      this.#ended ||
      typeof key !== "string" ||
      key.length === 0 ||
      !isAttributeValue(value)
    )
      return this;
    const limits = this.#shared.limits;
    if (!(key in this.attributes)) {
      if (this.#attributeCount >= limits.attributeCountLimit) {
        this.droppedAttributesCount++;
        return this;
      }
      this.#attributeCount++;
    }
    this.attributes[key] = limitValue(value, limits.attributeValueLengthLimit);
    return this;
  }

  setAttributes(attributes: ApiAttributes): this {
    if (this.#ended) return this;
    const limits = this.#shared.limits;
    const r = copyAttributes(
      this.attributes,
      attributes,
      limits.attributeCountLimit,
      limits.attributeValueLengthLimit,
      this.#attributeCount,
    );
    this.#attributeCount = r.count;
    this.droppedAttributesCount += r.dropped;
    return this;
  }

  addEvent(
    name: string,
    attributesOrTime?: ApiAttributes | TimeInput,
    time?: TimeInput,
  ): this {
    if (this.#ended) return this;
    const limits = this.#shared.limits;
    if ((this.events?.length ?? 0) >= limits.eventCountLimit) {
      this.droppedEventsCount++;
      return this;
    }
    let attributes: ApiAttributes | undefined;
    let at = time;
    if (
      attributesOrTime instanceof Date ||
      typeof attributesOrTime === "number" ||
      Array.isArray(attributesOrTime)
    ) {
      at = attributesOrTime as TimeInput;
    } else {
      attributes = attributesOrTime as ApiAttributes | undefined;
    }
    let copied: MutableAttributes | undefined;
    let dropped = 0;
    if (attributes !== undefined) {
      copied = {};
      dropped = copyAttributes(
        copied,
        attributes,
        limits.attributePerEventCountLimit,
        limits.attributeValueLengthLimit,
        0,
      ).dropped;
    }
    (this.events ??= []).push({
      name: String(name),
      time: toEpochMs(at),
      attributes: copied,
      droppedAttributesCount: dropped,
    });
    return this;
  }

  addLink(link: Link): this {
    if (this.#ended) return this;
    // Links come from the application, to spans of any origin: checked
    // here, not at export, where one bad id would cost the whole batch.
    const to = (link as Link | undefined)?.context;
    const ids = linkedIds(to);
    if (to === undefined || ids === undefined) {
      this.droppedLinksCount++;
      diag.warnOnce(
        "span-link",
        `span ${JSON.stringify(this.name)} was given a link to no valid span context (a trace id of 32 and a span id of 16 hex digits, not all zeros); the link is left out and counted in the span's droppedLinksCount`,
      );
      return this;
    }
    const limits = this.#shared.limits;
    if ((this.links?.length ?? 0) >= limits.linkCountLimit) {
      this.droppedLinksCount++;
      return this;
    }
    let copied: MutableAttributes | undefined;
    let dropped = 0;
    if (link.attributes !== undefined) {
      copied = {};
      dropped = copyAttributes(
        copied,
        link.attributes,
        limits.attributePerLinkCountLimit,
        limits.attributeValueLengthLimit,
        0,
      ).dropped;
    }
    (this.links ??= []).push({
      traceId: ids.traceId,
      spanId: ids.spanId,
      traceState: traceStateOf(to),
      traceFlags: to.traceFlags,
      attributes: copied,
      droppedAttributesCount: dropped,
    });
    return this;
  }

  addLinks(links: Link[]): this {
    // What is no list holds no link (and iterating it could throw).
    if (!Array.isArray(links)) return this;
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.#ended) return this;
    // OK is final; UNSET never overrides (OpenTelemetry trace API, "Set
    // Status"), nor does a code the API has not, or no status at all: one
    // such code, written as it came, cost the whole batch its export.
    const code = (status as SpanStatus | null | undefined)?.code;
    if (
      this.statusCode === SpanStatusCode.OK ||
      (code !== SpanStatusCode.OK && code !== SpanStatusCode.ERROR)
    )
      return this;
    this.statusCode = code;
    this.statusMessage =
      code === SpanStatusCode.ERROR && typeof status.message === "string"
        ? status.message
        : undefined;
    return this;
  }

  updateName(name: string): this {
    if (!this.#ended)
      this.name = typeof name === "string" ? name : nameText(name);
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#tracked) this.#untrack();
    let end = endTime === undefined ? now() : toEpochMs(endTime);
    if (end < this.startTime) end = this.startTime;
    this.endTime = end;
    this.#shared.sink.onEnd(this);
  }

  isRecording(): boolean {
    return !this.#ended;
  }

  /**
   * Lets go of the attributes, events and links once an ended span has been
   * encoded. A span stays reachable from its context, and a request's
   * context from the socket's async resources until the connection's next
   * request; its data need not.
   */
  release(): void {
    if (!this.#ended) return;
    this.attributes = RELEASED;
    this.events = undefined;
    this.links = undefined;
  }

  /** Whether end() was called. */
  get ended(): boolean {
    return this.#ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: ApiAttributes = {};
    if (typeof exception === "string") {
      attributes["exception.message"] = exception;
    } else if (exception !== null && typeof exception === "object") {
      const name = propertyOf(exception, "name");
      const code = propertyOf(exception, "code");
      const message = propertyOf(exception, "message");
      const stack = propertyOf(exception, "stack");
      const type =
        typeof name === "string"
          ? name
          : typeof code === "string" || typeof code === "number"
            ? String(code)
            : undefined;
      if (type !== undefined) attributes["exception.type"] = type;
      if (typeof message === "string")
        attributes["exception.message"] = message;
      if (typeof stack === "string") attributes["exception.stacktrace"] = stack;
    }
    this.addEvent("exception", attributes, time);
  }
}
