// amqplib (RabbitMQ), promise and callback APIs.
//
// Producer: every publish, sendToQueue and confirm-channel publish of both
// APIs ends in Channel.prototype.sendMessage (lib/channel.js), or on a
// closed channel in the one amqplib gives it, so one
// wrapper makes the PRODUCER span, and traceparent, tracestate and baggage
// are appended to the headers table of the frame amqplib encodes
// (header-splice.ts; into a copy of the message headers when amqplib was
// loaded before us, or when the application set one of those headers
// itself). On a confirm channel the span
// ends when the broker confirms (or nacks) the message. ConfirmChannel's
// publish, wrapped in both APIs, tells us the publish is a confirmed one and
// where amqplib queues its callback: at the end of `unconfirmed` as the
// publish began. amqplib 0.10 queues it before sendMessage, 1.x and later
// after (so a callback found there during sendMessage is the previous
// publish's); the callback is taken over once publish has returned. A
// mandatory message the broker returns comes back before its confirm, and
// makes that confirm a failure.
//
// Consumer: consume() wraps the application's callback, which then runs in
// a CONSUMER span continuing the producer's trace (or, in link mode, a new
// trace linked to it). Baggage and the customer id are restored in both
// modes: only the parent span differs. get() does the same for pulled
// messages. The span stays open until the message is settled: every ack,
// nack and reject of both APIs goes through Channel.prototype.sendImmediately
// as a Basic.Ack/Nack/Reject frame, so one wrapper sees the outcome,
// including multiple=true and ackAll/nackAll, and so does recover()'s
// Basic.Recover, which hands every unacknowledged message back. A consume()
// callback (or a get() callback given a message) that settles its message
// and fails afterwards fails the delivery: a span settled while its
// callback runs, or while the promise it returned is pending, ends when the
// callback has finished. A channel that closes
// settles what it still held and ends what still waited for a callback.
//
// A connection is opened outside the caller's context (lib/connect.js):
// its socket would otherwise keep the context of the request that opened
// it, and everything the broker does by itself later (a consumer
// cancelled, a channel or the connection closed) would run as that
// request's, with its customer, in its ended trace. The open callback, and
// so the promise, is still the caller's, and so is the callback of every
// other call of the callback API that waits for the broker's answer: bound
// as it is handed over, since the socket's context cannot tell an answer
// from what the broker does by itself.
//
// Message headers come from other programs: the getter accepts only
// strings (or byte strings), the parsers validate, and nothing here throws
// into amqplib.
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import {
  CUSTOMER_KEY,
  WATCH_KEY,
  getCustomerFromContext,
  GuardedHeaderNames,
  diag,
  connectInEmptyContext,
  hookModule,
  inCallerContext,
  isTracingSuppressed,
  lateLoadProblem,
  parseTraceparent,
  percentDecoded,
  replaceMethod,
  type Instrumentation,
  EMPTY_CONTEXT,
  HealthChecks,
  type HealthResult,
  lazyInstruments,
  SECONDS_BUCKETS,
  AttributeSets,
  errorTypeOf,
  trustedCarrierGetter,
} from "@threadline/core";
import {
  MAX_TABLE,
  spliceHeaders,
  type HeaderEntries,
  type SpliceRefusal,
} from "./header-splice.ts";
import { contentHeaderSize, tableSize } from "./frame-size.ts";

/** Options of {@link AmqplibInstrumentation}. */
export interface AmqplibInstrumentationConfig {
  /** @default the global tracer provider */
  tracerProvider?: TracerProvider;
  /**
   * `continue`: the consumer span is a child of the producer span (one
   * trace end to end). `link`: the consumer starts a new trace with a link to
   * the producer. Baggage and the customer id travel in both.
   * @default 'continue'
   */
  consumerContext?: "continue" | "link";
  /**
   * Read baggage (and so the customer id) from message headers. Turn off
   * when untrusted publishers can reach your queues.
   * @default true
   */
  trustMessageBaggage?: boolean;
  /**
   * Exchanges consumed outside the system: messages published there carry
   * no baggage. `amq.default` (or `""`) names the default exchange, which
   * `sendToQueue` publishes on.
   */
  externalExchanges?: readonly string[];
  /**
   * Headers never published to an external exchange, in any case (the
   * customer header an application forwards, say); baggage never is either.
   */
  privateHeaders?: readonly string[];
  /**
   * The header the customer id arrives in at the edge. A copy the
   * application sets on a message never goes to an external exchange, and
   * goes to an internal one only when it names the customer of the
   * publishing context: the services that consume it may read it as their
   * callers' word, so a copy forwarded from an anonymous caller would
   * plant that caller's customer id downstream.
   * @default 'x-customer-id'
   */
  customerHeader?: string;
}

const NAME = "@threadline/instrumentation-amqplib";
const VERSION = "0.1.0";

// AMQP 0-9-1 method ids (class << 16 | method) of the settlement frames.
const BASIC_ACK = (60 << 16) | 80;
const BASIC_REJECT = (60 << 16) | 90;
const BASIC_NACK = (60 << 16) | 120;
/**
 * basic.recover: the broker takes back every message the channel has not
 * acknowledged and delivers it again under a new delivery tag; the old
 * tags are dead.
 */
const BASIC_RECOVER = (60 << 16) | 110;

/**
 * On a channel: the spans of its deliveries not settled yet, by delivery
 * tag, in the order of their tags (see register).
 */
const PENDING = Symbol("threadline.amqp.pending");
/** On a channel: the highest delivery tag in PENDING so far. */
const LAST_TAG = Symbol("threadline.amqp.last-tag");
/**
 * On a channel: deliveries whose consume() or get() callback returned a
 * promise that has not settled yet, and whether their message has been.
 */
const FINISHING = Symbol("threadline.amqp.finishing");
/**
 * On a confirm channel, during its publish: `null` until sendMessage has
 * sent the message, then the publish (when it made a span).
 */
const CONFIRMING = Symbol("threadline.amqp.confirming");
/**
 * A confirmed publish, from its sendMessage to the end of the confirm
 * channel's publish (synchronous): its span, and the sent-message
 * attributes its message is counted with at the broker's answer, failed if
 * it is not a confirm.
 */
interface ConfirmingPublish {
  span: Span;
  sent: Attributes;
}
const CLOSE_HOOKED = Symbol("threadline.amqp.close-hooked");
const RETURN_HOOKED = Symbol("threadline.amqp.return-hooked");
/** A channel's return listener, and the instrumentation it reports to. */
interface ReturnHook {
  readonly owner: object;
  readonly listener: (message: unknown) => void;
}
/**
 * On a confirm channel: publish spans the broker has not confirmed yet,
 * each with the attributes its message is counted with once answered.
 */
const PUBLISHING = Symbol("threadline.amqp.publishing");
/** On a channel once its connection is watched: the watching instrumentation's connection set. */
const WATCHED = Symbol("threadline.amqp.watched");
/**
 * On a connection: the broker as its channels' spans name it
 * (server.address, server.port).
 */
const SERVER = Symbol("threadline.amqp.server");
/**
 * On a connection made through the connect() seen: the user and virtual
 * host it logged in as, what a reconnect to any node of the broker shares.
 */
const LOGIN = Symbol("threadline.amqp.login");
interface Broker {
  address: string | undefined;
  port: number | undefined;
}

/** What this instrumentation reads of an amqplib message. */
export interface AmqpMessage {
  fields: {
    deliveryTag: number;
    redelivered?: boolean;
    exchange?: string;
    routingKey?: string;
    consumerTag?: string;
  };
  properties: {
    headers?: Record<string, unknown>;
    messageId?: unknown;
    correlationId?: unknown;
  };
  content: Buffer;
}

interface ConnectionLike {
  /** Negotiated with the broker; the largest frame it takes. */
  frameMax?: number;
  on?(event: string, listener: (arg?: unknown) => void): unknown;
  stream?: { remoteAddress?: string; remotePort?: number };
  [SERVER]?: Broker;
  [LOGIN]?: string;
}

interface ChannelLike {
  connection?: ConnectionLike;
  unconfirmed?: unknown[];
  [PENDING]?: Map<number, Span>;
  [LAST_TAG]?: number;
  [FINISHING]?: Map<Span, boolean>;
  [CONFIRMING]?: ConfirmingPublish | null;
  [CLOSE_HOOKED]?: () => void;
  [RETURN_HOOKED]?: ReturnHook;
  [PUBLISHING]?: Map<Span, Attributes>;
  [WATCHED]?: object;
  listenerCount?(event: string, listener: unknown): number;
  removeListener?(event: string, listener: (message: unknown) => void): unknown;
  once?(event: string, listener: () => void): unknown;
  prependOnceListener?(event: string, listener: () => void): unknown;
  prependListener?(
    event: string,
    listener: (message: unknown) => void,
  ): unknown;
}

// amqplib methods are called on channel objects; `this` is typed where it is used.
type AnyFn = (this: ChannelLike, ...args: unknown[]) => unknown;

const headerSetter: TextMapSetter<Record<string, unknown>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};
const entrySetter: TextMapSetter<HeaderEntries> = {
  set: (carrier, key, value) => {
    carrier.push(key, value);
  },
};

type EncodeProperties = (
  id: number,
  channel: number,
  size: number,
  fields: unknown,
) => Buffer;

/**
 * The trace headers of the publish under way, set by the sendMessage
 * wrapper just before amqplib encodes the message and taken by the
 * encoder's wrapper (see header-splice.ts). A publish is synchronous from
 * one to the other, so one slot serves every channel.
 */
let pendingHeaders: HeaderEntries | undefined;
/** The frame size of the connection that publish goes on. */
let pendingFrameMax = Infinity;
/** Where each amqplib copy is installed, for those whose encoder appends pendingHeaders. */
const splicing = new Set<string>();

/** The directory of the package a hooked file (`lib/...`) belongs to. */
function packageRoot(filename: string, file: string): string {
  return filename.slice(0, filename.length - file.length);
}

function wrapEncodeProperties(original: EncodeProperties): EncodeProperties {
  return function threadlineEncodeProperties(
    this: unknown,
    id: number,
    channel: number,
    size: number,
    fields: unknown,
  ): Buffer {
    const entries = pendingHeaders;
    pendingHeaders = undefined;
    const frame = original.call(this, id, channel, size, fields);
    if (entries === undefined) return frame;
    let refused: SpliceRefusal;
    try {
      const spliced = spliceHeaders(frame, entries, pendingFrameMax);
      if (typeof spliced !== "string") return spliced;
      refused = spliced;
    } catch {
      refused = "unexpected frame";
    }
    // The message goes as the application made it, without trace headers.
    warnRefused(refused, pendingFrameMax);
    return frame;
  };
}

function warnRefused(refused: SpliceRefusal, frameMax: number): void {
  diag.warnCollapsed(
    `amqp-headers-${refused}`,
    refused === "frame full"
      ? `a message went without trace headers: with them its properties would not fit in one frame of the connection (${frameMax} bytes)`
      : refused === "table full"
        ? "a message went without trace headers: its headers table is full (64 KiB)"
        : "could not add trace headers to a message: amqplib's content header was not the expected AMQP 0-9-1 frame",
  );
}

/**
 * The broker a connect() call names, read as amqplib reads its URL (a
 * string, or an object of its parts; `amqp://localhost` when none):
 * undefined without a host name, and then the connection's peer address
 * names it. A default port is the protocol's.
 */
function brokerOf(url: unknown): Broker | undefined {
  try {
    let protocol: string;
    let host: unknown;
    let port: unknown;
    if (url !== null && typeof url === "object") {
      const parts = url as {
        protocol?: unknown;
        hostname?: unknown;
        port?: unknown;
      };
      protocol = `${typeof parts.protocol === "string" && parts.protocol !== "" ? parts.protocol : "amqp"}:`;
      host = parts.hostname;
      port = parts.port;
    } else {
      const parsed = new URL(
        typeof url === "string" && url !== "" ? url : "amqp://localhost",
      );
      protocol = parsed.protocol;
      host = parsed.hostname.replace(/^\[|\]$/g, "");
      port = parsed.port;
    }
    if (typeof host !== "string" || host === "") return undefined;
    const n = Number(port);
    return {
      address: host,
      port:
        Number.isInteger(n) && n > 0 ? n : protocol === "amqps:" ? 5671 : 5672,
    };
  } catch {
    // amqplib refuses such a URL itself.
    return undefined;
  }
}

/**
 * The user and virtual host connect() logs in with, read from its
 * arguments as amqplib reads them; undefined when they cannot be read.
 */
function loginOf(url: unknown, socketOptions: unknown): string | undefined {
  try {
    let vhost: unknown;
    let user: unknown;
    if (url !== null && typeof url === "object") {
      const parts = url as {
        vhost?: unknown;
        username?: unknown;
        password?: unknown;
      };
      vhost = parts.vhost;
      user =
        parts.username === undefined && parts.password === undefined
          ? "guest"
          : (parts.username ?? "");
    } else {
      const parsed = new URL(
        typeof url === "string" && url !== "" ? url : "amqp://localhost",
      );
      vhost = parsed.pathname.slice(1);
      user =
        parsed.username === "" && parsed.password === ""
          ? "guest"
          : percentDecoded(parsed.username);
    }
    const credentials = (socketOptions as { credentials?: unknown } | null)
      ?.credentials as { username?: unknown; mechanism?: unknown } | undefined;
    if (credentials !== undefined && credentials !== null)
      user = credentials.username ?? `(${String(credentials.mechanism)})`;
    if (typeof vhost !== "string" || typeof user !== "string") return undefined;
    return `${user}@${vhost === "" ? "/" : percentDecoded(vhost)}`;
  } catch {
    return undefined;
  }
}

/** The frame size the channel's connection negotiated; Infinity when unknown. */
function frameMaxOf(channel: ChannelLike): number {
  const frameMax = channel.connection?.frameMax;
  return typeof frameMax === "number" && frameMax > 0 ? frameMax : Infinity;
}

/**
 * Whether the application's headers hold one that must not go as it is
 * (`drop`, lower case, against the names in any case): the message's
 * headers are then copied without it. The customer header, `judged` (lower
 * case, in `drop` too) on an internal exchange, may go as it is: looked at
 * only when the message carries one (see customerKey).
 */
function carriesDropped(
  given: unknown,
  drop: ReadonlySet<string>,
  judged: string | undefined,
  ctx: Context,
): boolean {
  if (typeof given !== "object" || given === null) return false;
  for (const key in given as Record<string, unknown>) {
    const name = key.toLowerCase();
    if (
      drop.has(name) &&
      (name !== judged ||
        customerKey(given as Record<string, unknown>, judged, ctx) !== key)
    )
      return true;
  }
  return false;
}

/**
 * The key of the customer header (`name`, lower case, matched in any case)
 * that goes on a message to an internal exchange: the only one, naming the
 * customer of `ctx`, as the http client keeps it for an internal host. Any
 * other value, or more than one, goes nowhere; undefined then.
 */
function customerKey(
  given: unknown,
  name: string | undefined,
  ctx: Context,
): string | undefined {
  if (name === undefined || typeof given !== "object" || given === null)
    return undefined;
  const customer = getCustomerFromContext(ctx);
  if (customer === undefined) return undefined;
  let found: string | undefined;
  for (const key in given as Record<string, unknown>) {
    if (key.toLowerCase() !== name) continue;
    if (
      found !== undefined ||
      customerText((given as Record<string, unknown>)[key]) !== customer
    )
      return undefined;
    found = key;
  }
  return found;
}

/**
 * A customer header's value as it names a customer: an integer id (which
 * withCustomer takes) set as a number names it by its digits, as the http
 * client compares one.
 */
function customerText(v: unknown): string | undefined {
  return typeof v === "number" ? String(v) : headerValue(v);
}

function headerValue(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  return undefined;
}

// Marked: at the edge, only a trusted carrier's baggage names a customer.
const trustedGetter = trustedCarrierGetter<Record<string, unknown>>({
  get: (carrier, key) => headerValue(carrier[key]),
  keys: (carrier) => Object.keys(carrier),
});
const untrustedGetter: TextMapGetter<Record<string, unknown>> = {
  get: (carrier, key) =>
    key === "baggage" ? undefined : headerValue(carrier[key]),
  keys: (carrier) => Object.keys(carrier).filter((k) => k !== "baggage"),
};

const messageContexts = new WeakMap<object, Context>();

/**
 * The delivery whose consume() or get() callback is running, and whether
 * its message was settled in it: the span then ends when the callback
 * returns (or its promise settles), with what it threw. Two variables
 * rather than a registry: a synchronous handler costs no lookup.
 */
let calling: Span | undefined;
let callingSettled = false;

/**
 * Runs `fn` in the context of a message received from RabbitMQ: its trace,
 * its baggage and its customer id. Consumers of `consume()` already run
 * there; use this after `await channel.get()`, whose continuation runs in
 * the caller's context.
 */
export function withMessageContext<R>(message: object, fn: () => R): R {
  const ctx = messageContexts.get(message);
  return ctx === undefined ? fn() : context.with(ctx, fn);
}

/**
 * Header carrying the publish time (epoch ms) to consumers, for the
 * publish-to-delivery latency. Not set on external exchanges.
 */
export const SENT_AT_HEADER = "threadline-sent-at";

/**
 * The message's headers as amqplib will encode them, in a plain object of
 * our own for the trace headers to go into, without those in `drop`
 * (lower case; matched in any case) but the customer header `judged` when
 * it may go (see customerKey, asked only when the message carries one).
 * amqplib hands sendMessage an object whose prototype is the application's
 * `headers` option, and its encoder walks the whole chain, so the copy
 * walks it too: copying only own properties would drop every header the
 * application set.
 */
function copyHeaders(
  given: unknown,
  drop: ReadonlySet<string>,
  judged: string | undefined,
  ctx: Context,
): Record<string, unknown> {
  // Without a prototype, as amqplib makes its own: V8 keeps such an object
  // in dictionary mode, and amqplib's encoder then reads it the generic way.
  // A fast-mode object sends that encoder's optimized code into a loop of
  // deoptimizations on every publish.
  const headers = Object.create(null) as Record<string, unknown>;
  if (typeof given !== "object" || given === null) return headers;
  const from = given as Record<string, unknown>;
  let looked = false;
  let keep: string | undefined;
  for (const key in from) {
    const name = key.toLowerCase();
    if (drop.has(name)) {
      if (name !== judged) continue;
      if (!looked) {
        keep = customerKey(from, judged, ctx);
        looked = true;
      }
      if (key !== keep) continue;
    }
    headers[key] = from[key];
  }
  return headers;
}

/** What a delivery's metrics need when it is settled. */
interface Delivery {
  start: number;
  /** The consumer span's context, which its measurements link to. */
  ctx: Context;
  operation: ConsumerOperation;
  exchange: string;
  /** As the metrics name it (queueSeries). */
  queue: string;
  redelivered: boolean;
}

/**
 * A consumer span's messaging.operation.name, which its metrics carry too:
 * the AMQP method that brought the message.
 */
type ConsumerOperation = "consume" | "get";
const deliveries = new WeakMap<Span, Delivery>();

const meters = lazyInstruments(NAME, (m) => ({
  sent: m.createCounter("messaging.client.sent.messages", {
    unit: "{message}",
    description: "Messages published, per exchange.",
  }),
  consumed: m.createCounter("messaging.client.consumed.messages", {
    unit: "{message}",
    description:
      "Messages delivered, per queue and settlement (ack, nack, reject, auto, recovered, channel_closed) and whether redelivered.",
  }),
  process: m.createHistogram("messaging.process.duration", {
    unit: "s",
    description: "From delivery to settlement, per queue.",
    advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
  }),
  latency: m.createHistogram("threadline.messaging.delivery.latency", {
    unit: "s",
    description:
      "From publish to delivery, per queue (publisher and consumer clocks).",
    advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
  }),
}));

// The metrics' attribute sets never take the routing key: it often carries
// an id (`order.42.created`), which would make a series per message and
// soon send every new one, other exchanges' too, to the overflow series.
// The semantic conventions leave it to the spans.
const sentSets = new AttributeSets(
  (destination: string, errorType: string | undefined) => {
    const attributes: Attributes = {
      "messaging.system": "rabbitmq",
      "messaging.operation.name": "publish",
      "messaging.destination.name": destination,
    };
    if (errorType !== undefined) attributes["error.type"] = errorType;
    return attributes;
  },
);

const deliverySets = new AttributeSets(
  (
    operation: ConsumerOperation,
    exchange: string,
    queue: string,
    redelivered: boolean,
  ) => ({
    "messaging.system": "rabbitmq",
    "messaging.operation.name": operation,
    "messaging.destination.name": exchange,
    "messaging.destination.subscription.name": queue,
    "messaging.rabbitmq.message.redelivered": redelivered,
  }),
);

const consumedSets = new AttributeSets(
  (
    operation: ConsumerOperation,
    exchange: string,
    queue: string,
    redelivered: boolean,
    outcome: string,
  ) => ({
    "messaging.system": "rabbitmq",
    "messaging.operation.name": operation,
    "messaging.destination.name": exchange,
    "messaging.destination.subscription.name": queue,
    "messaging.rabbitmq.message.redelivered": redelivered,
    "messaging.rabbitmq.settlement": outcome,
  }),
);

/**
 * A queue as the metrics name it. A queue declared without a name gets
 * one from the broker, `amq.gen-` and something unique, and such queues
 * come and go (an exclusive reply queue per call, an anonymous queue
 * declared again at every reconnect): a series each would soon send every
 * new queue, the service's own ones too, to the overflow series. Only the
 * broker may declare a name under `amq.`, so the prefix tells them apart.
 * The spans keep the name; the conventions give metrics no attribute
 * saying a destination is anonymous.
 */
function queueSeries(queue: string): string {
  return queue.startsWith("amq.gen-") ? "amq.gen-*" : queue;
}

const latencySets = new AttributeSets(
  (operation: ConsumerOperation, queue: string) => ({
    "messaging.system": "rabbitmq",
    "messaging.operation.name": operation,
    "messaging.destination.subscription.name": queue,
  }),
);

function settleAttributes(
  span: Span,
  outcome: string,
  requeue: boolean | undefined,
): void {
  const delivery = deliveries.get(span);
  if (delivery !== undefined) {
    deliveries.delete(span);
    const m = meters();
    const { operation, exchange, queue, redelivered, ctx } = delivery;
    m.consumed.add(
      1,
      consumedSets.get(operation, exchange, queue, redelivered, outcome),
    );
    // In the delivery's own span, whatever context settles it (a batch
    // acked later from a timer, or from another request): its exemplar
    // links the processing time to the delivery it measured.
    if (outcome !== "auto")
      m.process.record(
        (performance.now() - delivery.start) / 1000,
        deliverySets.get(operation, exchange, queue, redelivered, undefined),
        ctx,
      );
  }
  span.setAttribute("messaging.rabbitmq.settlement", outcome);
  if (requeue !== undefined)
    span.setAttribute("messaging.rabbitmq.requeue", requeue);
  if ((outcome === "nack" || outcome === "reject") && requeue === false) {
    span.setAttribute("error.type", outcome);
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: `message ${outcome === "nack" ? "nacked" : "rejected"} without requeue`,
    });
  }
}

const AsyncFunctionPrototype = Object.getPrototypeOf(async () => {}) as object;

/**
 * Whether `fn` is an async function, or one bound from it with
 * Function.prototype.bind (`consume(q, this.handle.bind(this))`): either
 * way the promise it returns reaches nobody else. A bound function keeps no
 * reference to its target, but it has its target's prototype and is named
 * "bound <name>" (ECMAScript BoundFunctionCreate); an ordinary function has
 * both only if it was given them on purpose. Read once per consume(). Code
 * compiled to generators (TypeScript below ES2017) and other wrappers, whose
 * promise may be anyone's, do not count.
 */
function isAsyncCallback(fn: AnyFn): boolean {
  if (process.getBuiltinModule("node:util").types.isAsyncFunction(fn))
    return true;
  try {
    // A Proxy's traps run here: never let one throw into consume().
    if (Object.getPrototypeOf(fn) !== AsyncFunctionPrototype) return false;
    const name: unknown = fn.name;
    return typeof name === "string" && name.startsWith("bound ");
  } catch {
    return false;
  }
}

/**
 * The exchange a message names, as spans and metrics name it: the default
 * exchange is `""` to amqplib (`sendToQueue` publishes there) and
 * `amq.default` to the conventions and the broker's own tools.
 */
function destinationOf(exchange: unknown): string {
  return typeof exchange === "string" && exchange !== ""
    ? exchange
    : "amq.default";
}

/**
 * Records a failure of the publish or the delivery a span stands for, with
 * the `error.type` the conventions ask of a failed operation (the one its
 * sent-message point takes).
 */
function markFailed(
  span: Span,
  err: unknown,
  errorType: string = errorTypeOf(err),
): void {
  span.recordException(err as Error);
  span.setAttribute("error.type", errorType);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: (err as Error)?.message,
  });
}

/**
 * The exchanges declared external, as publishes name them. The default
 * exchange is `""` to amqplib (`sendToQueue` publishes there) and
 * `amq.default` to spans, metrics and RabbitMQ's own tools: either name
 * declares it, once, here (a comma-separated variable cannot give an empty
 * name), so a publish still looks its exchange up as it is.
 */
function externalExchangeNames(names: readonly string[]): ReadonlySet<string> {
  const external = new Set(names);
  if (external.has("amq.default") || external.has("")) {
    external.add("");
    external.add("amq.default");
  }
  return external;
}

export class AmqplibInstrumentation implements Instrumentation {
  readonly name = NAME;
  readonly #config: AmqplibInstrumentationConfig;
  readonly #external: ReadonlySet<string>;
  /** The customer header, lower case (see customerKey). */
  readonly #customerHeader: string;
  #tracer: Tracer | undefined;
  #enabled = false;
  readonly #unhooks: Array<() => void> = [];
  readonly #restore: Array<() => void> = [];
  #late: string[] = [];

  /**
   * Headers a message's copy leaves out: those no call sends as the
   * application copied them (as HTTP: baggage always, consumers trusting
   * message baggage, and the fields of the configured propagators, which
   * ours write), our sent-at header, the customer header (judged on an
   * internal exchange), and on an external exchange the private ones.
   * Without the tracecontext propagator, traceparent and tracestate are the
   * application's, which carries its trace context itself.
   */
  readonly #dropped: GuardedHeaderNames;

  constructor(config: AmqplibInstrumentationConfig = {}) {
    this.#config = config;
    this.#external = externalExchangeNames(config.externalExchanges ?? []);
    this.#customerHeader = (
      config.customerHeader ?? "x-customer-id"
    ).toLowerCase();
    this.#dropped = new GuardedHeaderNames(config.privateHeaders ?? [], [
      SENT_AT_HEADER,
      this.#customerHeader,
    ]);
  }

  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    this.#tracer = (
      this.#config.tracerProvider ?? trace.getTracerProvider()
    ).getTracer(NAME, VERSION);
    // Before the first publish can need it: connection.js keeps the
    // encoder it finds here when it loads (just after this file).
    const defs = hookModule({
      module: "amqplib",
      file: "lib/defs.js",
      onLoad: (exports, info) => {
        const d = exports as { encodeProperties?: unknown };
        if (info.late || typeof d.encodeProperties !== "function")
          return undefined;
        d.encodeProperties = wrapEncodeProperties(
          d.encodeProperties as EncodeProperties,
        );
        splicing.add(packageRoot(info.filename, "lib/defs.js"));
        return undefined;
      },
    });
    // Before the APIs load: each keeps the connect() it finds here.
    const connect = hookModule({
      module: "amqplib",
      file: "lib/connect.js",
      onLoad: (exports) => {
        const c = exports as { connect?: unknown };
        if (typeof c.connect === "function")
          this.#patch(c as Record<string, unknown>, "connect", (o) =>
            this.#wrapConnect(o),
          );
        return undefined;
      },
    });
    const base = hookModule({
      module: "amqplib",
      file: "lib/channel.js",
      onLoad: (exports, info) => {
        const proto = (
          exports as { Channel?: { prototype: Record<string, unknown> } }
        ).Channel?.prototype;
        if (proto === undefined) return undefined;
        const splice = splicing.has(
          packageRoot(info.filename, "lib/channel.js"),
        );
        this.#patch(proto, "sendMessage", (o) =>
          this.#wrapSendMessage(o, splice),
        );
        this.#patch(proto, "sendImmediately", (o) =>
          this.#wrapSendImmediately(o),
        );
        this.#patch(proto, "allocate", (o) => this.#wrapAllocate(o));
        for (const key of ["toClosing", "toClosed"])
          this.#patch(proto, key, (o) => this.#wrapClosing(o));
        return undefined;
      },
    });
    const models = ["lib/channel_model.js", "lib/callback_model.js"].map(
      (file) =>
        hookModule({
          module: "amqplib",
          file,
          onLoad: (exports) => {
            const proto = (
              exports as { Channel?: { prototype: Record<string, unknown> } }
            ).Channel?.prototype;
            if (proto === undefined) return undefined;
            this.#patch(proto, "consume", (o) => this.#wrapConsume(o));
            this.#patch(proto, "get", (o) =>
              this.#wrapGet(o, file === "lib/callback_model.js"),
            );
            const confirm = (
              exports as {
                ConfirmChannel?: { prototype: Record<string, unknown> };
              }
            ).ConfirmChannel?.prototype;
            if (confirm !== undefined)
              this.#patch(confirm, "publish", (o) =>
                this.#wrapConfirmPublish(o),
              );
            if (file === "lib/callback_model.js") {
              // Every RPC of a callback channel but get() (wrapped above)
              // goes through _rpc, whose callback the broker's reply
              // frame calls: open (so createChannel and
              // createConfirmChannel), the declarations, bindings, checks,
              // consume, cancel, prefetch and recover. A channel's and a
              // connection's close and updateSecret wait for their own
              // answer frames.
              this.#patch(proto, "_rpc", (o) => this.#wrapAnswered(o, 3));
              this.#patch(proto, "close", (o) => this.#wrapAnswered(o, 0));
              const model = (
                exports as {
                  CallbackModel?: { prototype: Record<string, unknown> };
                }
              ).CallbackModel?.prototype;
              if (model !== undefined) {
                this.#patch(model, "close", (o) => this.#wrapAnswered(o, 0));
                this.#patch(model, "updateSecret", (o) =>
                  this.#wrapAnswered(o, 2),
                );
              }
            }
            return undefined;
          },
        }),
    );
    this.#unhooks.push(defs.unhook);
    for (const h of [connect, base, ...models]) {
      this.#late.push(...h.late);
      this.#unhooks.push(h.unhook);
    }
  }

  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    for (const u of this.#unhooks.splice(0)) u();
    for (const r of this.#restore.splice(0)) r();
    this.#checks.clear();
    this.#failed.clear();
  }

  readonly #connections = new WeakSet<object>();
  /** The connections' checks still registered. */
  readonly #checks = new HealthChecks();
  /**
   * Per login (user and virtual host; the address for a connection whose
   * connect() was not seen), the removals of checks of connections that
   * failed.
   */
  readonly #failed = new Map<string, Array<() => void>>();

  /**
   * Registers a health check for a connection the first time one of its
   * channels opens (or, on a channel opened before Threadline started,
   * publishes, consumes or fetches): unhealthy once it closed or failed,
   * degraded while the broker blocks publishing (a resource alarm on the
   * broker). A failed connection's check stays until the application uses
   * a new connection as the same user to the same virtual host, wherever
   * it reaches the broker: a reconnect ends the outage, to another node of
   * the cluster or another of its name's addresses as much as to the same
   * one, and a drop without one keeps it reported. A connection made
   * before Threadline started has no login to read, and gives way to one
   * to the same address.
   */
  #watchConnection(channel: ChannelLike): void {
    // Tested on every publish: a field of the channel is cheaper to read
    // than the set of connections.
    if (channel[WATCHED] === this.#connections) return;
    const conn = channel.connection;
    if (conn === undefined || typeof conn.on !== "function") return;
    channel[WATCHED] = this.#connections;
    // Once per connection, read by its channels' spans: the URL's host
    // when connect() was seen, else the peer address.
    conn[SERVER] ??= {
      address: conn.stream?.remoteAddress,
      port: conn.stream?.remotePort,
    };
    if (this.#connections.has(conn)) return;
    this.#connections.add(conn);
    const s = conn.stream;
    const base = `rabbitmq ${s?.remoteAddress ?? "broker"}:${s?.remotePort ?? 5672}`;
    const login =
      conn[LOGIN] === undefined ? `address ${base}` : `login ${conn[LOGIN]}`;
    const failed = this.#failed.get(login);
    if (failed !== undefined) {
      this.#failed.delete(login);
      for (const u of failed) u();
    }
    let state: HealthResult = { status: "healthy" };
    conn.on("blocked", (reason) => {
      state = {
        status: "degraded",
        reason: `the broker blocks publishing: ${String(reason)}`,
      };
    });
    conn.on("unblocked", () => {
      if (state.status === "degraded") state = { status: "healthy" };
    });
    conn.on("error", (err) => {
      state = {
        status: "unhealthy",
        reason: (err as Error)?.message ?? "connection error",
      };
    });
    conn.on("close", (err) => {
      // Closed by the application: no longer a dependency to report.
      if (err === undefined) return unregister();
      state = {
        status: "unhealthy",
        reason: `the connection closed: ${(err as Error)?.message ?? String(err)}`,
      };
      const failed = this.#failed.get(login);
      if (failed === undefined) this.#failed.set(login, [unregister]);
      else failed.push(unregister);
    });
    const unregister = this.#checks.register(base, () => state);
  }

  selfCheck(): string[] {
    return this.#late.length > 0 ? [lateLoadProblem("amqplib")] : [];
  }

  #patch(
    proto: Record<string, unknown>,
    key: string,
    wrap: (original: AnyFn) => AnyFn,
  ): void {
    if (typeof proto[key] !== "function") return;
    replaceMethod(proto, key, wrap, this.#restore);
  }

  /**
   * Channel opening, in both APIs (lib/channel.js): the connection is
   * watched from its first channel, whatever the channel is used for. A
   * worker that only fetches with get() publishes and consumes nothing,
   * and depends on its connection all the same. Once per channel, never
   * per message.
   */
  #wrapAllocate(original: AnyFn): AnyFn {
    const self = this;
    return function threadlineAllocate(
      this: ChannelLike,
      ...args: unknown[]
    ): unknown {
      const result = original.apply(this, args);
      if (self.#enabled) self.#watchConnection(this);
      return result;
    };
  }

  /** connect(url, socketOptions, openCallback): the socket in the empty context. */
  #wrapConnect(original: AnyFn): AnyFn {
    const self = this;
    return function threadlineConnect(
      this: ChannelLike,
      url: unknown,
      socketOptions: unknown,
      openCallback: unknown,
    ): unknown {
      if (!self.#enabled || typeof openCallback !== "function")
        return original.call(this, url, socketOptions, openCallback);
      // The host the application named, which the socket no longer knows,
      // and who it logs in as, which the connection does not keep.
      const broker = brokerOf(url);
      const login = loginOf(url, socketOptions);
      const opened = openCallback as (
        this: unknown,
        ...a: unknown[]
      ) => unknown;
      return connectInEmptyContext(
        original,
        this,
        [url, socketOptions],
        broker === undefined && login === undefined
          ? opened
          : function (this: unknown, err: unknown, conn: unknown): unknown {
              if (conn !== null && typeof conn === "object") {
                if (broker !== undefined)
                  (conn as ConnectionLike)[SERVER] = broker;
                if (login !== undefined)
                  (conn as ConnectionLike)[LOGIN] = login;
              }
              return opened.call(this, err, conn);
            },
        "amqp.connect",
      );
    };
  }

  /**
   * A callback API operation whose callback, argument `at`, amqplib calls
   * when the broker's answer arrives, on the connection's socket: the
   * callback goes back to the context of the code that asked, as a Node.js
   * callback API's would (and as a promise's continuation does). Only
   * these: what the broker does by itself (a cancel, a channel's or the
   * connection's error and close) stays no request's.
   */
  #wrapAnswered(original: AnyFn, at: number): AnyFn {
    const self = this;
    return function threadlineAnswered(
      this: ChannelLike,
      ...args: unknown[]
    ): unknown {
      const cb = args[at];
      if (self.#enabled && typeof cb === "function")
        args[at] = inCallerContext(
          cb as (...a: unknown[]) => unknown,
          "amqp.answer",
        );
      return original.apply(this, args);
    };
  }

  // ---- producer -------------------------------------------------------

  #wrapSendMessage(original: AnyFn, spliceable: boolean): AnyFn {
    const self = this;
    let splice = spliceable;
    return function threadlineSendMessage(
      this: ChannelLike,
      fields: unknown,
      properties: unknown,
      content: unknown,
    ): unknown {
      if (!self.#enabled)
        return original.call(this, fields, properties, content);
      self.#watchConnection(this);
      const ctx = context.active();
      if (isTracingSuppressed(ctx)) {
        self.#dropCopied(
          ctx,
          fields as Record<string, unknown>,
          properties as Record<string, unknown>,
        );
        return original.call(this, fields, properties, content);
      }
      let span: Span | undefined;
      try {
        span = self.#startPublish(
          this,
          ctx,
          fields as Record<string, unknown>,
          properties as Record<string, unknown>,
          content,
          splice,
        );
      } catch (err) {
        diag.warnCollapsed(
          "amqp-publish",
          `could not trace a publish: ${(err as Error).message}`,
        );
      }
      const f = fields as Record<string, unknown>;
      const destination = destinationOf(f["exchange"]);
      try {
        const result = original.call(this, fields, properties, content);
        if (pendingHeaders !== undefined) {
          // The encoder this channel's connection uses is not the wrapped
          // one: from now on its messages get the headers copied in.
          splice = false;
          diag.warnCollapsed(
            "amqp-headers",
            "a message went without trace headers (amqplib's encoder was loaded in an unexpected way); later ones will have them",
          );
        }
        const sent = sentSets.get(
          destination,
          undefined,
          undefined,
          undefined,
          undefined,
        );
        if (span !== undefined && this[CONFIRMING] === null) {
          // A confirmed publish's span ends, and its message is counted,
          // at the broker's answer.
          this[CONFIRMING] = { span, sent };
        } else {
          span?.end();
          meters().sent.add(1, sent);
          if (span !== undefined && f["mandatory"] === true)
            self.#hookReturns(this);
        }
        return result;
      } catch (err) {
        const errorType = errorTypeOf(err);
        meters().sent.add(
          1,
          sentSets.get(destination, errorType, undefined, undefined, undefined),
        );
        // Never the confirm callback's: amqplib 0.10 leaves the one it
        // queued for this message to answer the next one's confirm.
        if (span !== undefined) {
          markFailed(span, err, errorType);
          span.end();
        }
        throw err;
      } finally {
        pendingHeaders = undefined;
      }
    };
  }

  /**
   * Once per channel that published a traced message the broker may
   * return (basic.return: a mandatory message no queue took), known by its
   * traceparent header, which names its publish span. On a confirm channel
   * the return comes before the confirm, which alone would record a
   * success: the publish span waiting for it fails, `returned`. On a
   * channel without confirms the publish span has ended and its send was
   * counted: the return gets a span of its own, an error, the child of
   * that publish and so in the request's trace, with its customer. Ahead
   * of the application's listeners, which see the message as they would
   * without it; amqplib emits the event whether anyone listens or not.
   */
  #hookReturns(channel: ChannelLike): void {
    const hook = channel[RETURN_HOOKED];
    if (
      (hook?.owner === this && listening(channel, "return", hook.listener)) ||
      typeof channel.prependListener !== "function"
    )
      return;
    // A listener of an instrumentation shut down since reports to nothing.
    if (hook !== undefined) channel.removeListener?.("return", hook.listener);
    const listener = (message: unknown) => {
      try {
        const m = message as AmqpMessage | null;
        const spanId = parseTraceparent(
          headerValue(m?.properties?.headers?.["traceparent"]),
        )?.spanId;
        if (spanId === undefined) return;
        const replyText = (m!.fields as { replyText?: unknown }).replyText;
        const reply = typeof replyText === "string" ? replyText : "returned";
        const publishing = channel[PUBLISHING];
        if (publishing !== undefined)
          for (const span of publishing.keys())
            if (span.spanContext().spanId === spanId) {
              returned.set(span, reply);
              return;
            }
        if (this.#enabled) this.#returnedSpan(channel, m!, reply, spanId);
      } catch {
        // never let bookkeeping break the application's listeners
      }
    };
    channel[RETURN_HOOKED] = { owner: this, listener };
    channel.prependListener("return", listener);
  }

  /** The span of a message returned after its publish span ended. */
  #returnedSpan(
    channel: ChannelLike,
    message: AmqpMessage,
    reply: string,
    spanId: string,
  ): void {
    // Its own message, with the headers this process gave it: the
    // traceparent is the publish span's only as the propagators read it
    // (without tracecontext, the application's own header goes as it is).
    const ctx = propagation.extract(
      EMPTY_CONTEXT,
      message.properties.headers!,
      trustedGetter,
    );
    if (trace.getSpanContext(ctx)?.spanId !== spanId) return;
    const f = message.fields as { exchange?: unknown; routingKey?: unknown };
    const destination = destinationOf(f.exchange);
    const server = channel.connection?.[SERVER];
    const span = this.#tracer!.startSpan(
      `return ${destination}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          "messaging.system": "rabbitmq",
          "messaging.operation.name": "return",
          "messaging.destination.name": destination,
          "messaging.rabbitmq.destination.routing_key":
            typeof f.routingKey === "string" ? f.routingKey : undefined,
          "messaging.message.body.size": Buffer.isBuffer(message.content)
            ? message.content.length
            : undefined,
          "server.address": server?.address,
          "server.port": server?.port,
          "messaging.rabbitmq.settlement": "returned",
          "error.type": "returned",
        },
      },
      ctx,
    );
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: `the broker returned the message: ${reply}`,
    });
    span.end();
  }

  /**
   * A channel that closes (closed by the application, by the broker, or
   * with its connection) gets a sendMessage of its own from amqplib, which
   * throws IllegalOperationError (lib/channel.js, invalidateSend), in front
   * of the prototype's we wrap: a publish on it left no span and no failed
   * send. The channel's own one is wrapped as amqplib sets it, before the
   * channel's "close" listeners run. Only at the close: publishes on an
   * open channel go through the prototype's as before.
   */
  #wrapClosing(original: AnyFn): AnyFn {
    const self = this;
    return function threadlineToClosing(
      this: ChannelLike,
      ...args: unknown[]
    ): unknown {
      if (!Object.hasOwn(this, "sendMessage")) {
        let send = (this as { sendMessage?: unknown }).sendMessage;
        Object.defineProperty(this, "sendMessage", {
          configurable: true,
          enumerable: true,
          get: () => send,
          set: (value: unknown) => {
            // Nothing is sent: the headers need no copy either way.
            send =
              typeof value === "function"
                ? self.#wrapSendMessage(value as AnyFn, true)
                : value;
          },
        });
      }
      return original.apply(this, args);
    };
  }

  /**
   * A publish made with tracing suppressed carries no trace headers of
   * ours, and none the application copied that a traced one would not
   * send either (the customer header included, judged as on a traced
   * one): suppression says what to trace, not whom to trust, and
   * consumers trust message baggage.
   */
  #dropCopied(
    ctx: Context,
    fields: Record<string, unknown>,
    properties: Record<string, unknown>,
  ): void {
    try {
      const exchange =
        typeof fields["exchange"] === "string" ? fields["exchange"] : "";
      const external = this.#external.has(exchange);
      const drop = this.#dropped.for(!external);
      const judged = external ? undefined : this.#customerHeader;
      const given = properties["headers"];
      if (carriesDropped(given, drop, judged, ctx))
        properties["headers"] = copyHeaders(given, drop, judged, ctx);
    } catch (err) {
      diag.warnCollapsed(
        "amqp-publish",
        `could not check an untraced publish's headers: ${(err as Error).message}`,
      );
    }
  }

  #startPublish(
    channel: ChannelLike,
    ctx: Context,
    fields: Record<string, unknown>,
    properties: Record<string, unknown>,
    content: unknown,
    splice: boolean,
  ): Span {
    const exchange =
      typeof fields["exchange"] === "string" ? fields["exchange"] : "";
    const routingKey =
      typeof fields["routingKey"] === "string" ? fields["routingKey"] : "";
    const destination = destinationOf(exchange);
    // Worked out once per connection (#watchConnection): nothing to build here.
    const server = channel.connection?.[SERVER];
    const attributes: Attributes = {
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": destination,
      "messaging.rabbitmq.destination.routing_key": routingKey,
      "messaging.message.body.size": Buffer.isBuffer(content)
        ? content.length
        : undefined,
      "server.address": server?.address,
      "server.port": server?.port,
    };
    if (typeof properties["messageId"] === "string")
      attributes["messaging.message.id"] = properties["messageId"];
    if (typeof properties["correlationId"] === "string")
      attributes["messaging.message.conversation_id"] =
        properties["correlationId"];
    const span = this.#tracer!.startSpan(
      `publish ${destination}`,
      { kind: SpanKind.PRODUCER, attributes },
      ctx,
    );
    const external = this.#external.has(exchange);
    let injectCtx = trace.setSpan(ctx, span);
    if (external) {
      injectCtx = propagation
        .deleteBaggage(injectCtx)
        .deleteValue(CUSTOMER_KEY)
        .deleteValue(WATCH_KEY);
    }
    const given = properties["headers"];
    // The trace context and baggage are the publishing context's, whatever
    // was copied: a copied baggage header would carry an untrusted caller's
    // customer id to every consumer, which trust message baggage. (A trace
    // context no propagator of ours writes stays the application's.) So is
    // the customer header, on an internal exchange, or it goes.
    const drop = this.#dropped.for(!external);
    const judged = external ? undefined : this.#customerHeader;
    if (splice && !carriesDropped(given, drop, judged, ctx)) {
      // Written into the frame as amqplib encodes it; the application's
      // headers object is left as it is.
      const entries: HeaderEntries = [];
      propagation.inject(injectCtx, entries, entrySetter);
      if (!external) entries.push(SENT_AT_HEADER, Date.now());
      pendingHeaders = entries;
      pendingFrameMax = frameMaxOf(channel);
    } else {
      const headers = copyHeaders(given, drop, judged, ctx);
      propagation.inject(injectCtx, headers, headerSetter);
      if (!external) headers[SENT_AT_HEADER] = Date.now();
      // amqplib encodes this copy without checking its size: checked here,
      // as the splice checks the frame it makes.
      const table = tableSize(headers);
      const frameMax = frameMaxOf(channel);
      const refused: SpliceRefusal | undefined =
        table > MAX_TABLE
          ? "table full"
          : contentHeaderSize(properties, table) > frameMax
            ? "frame full"
            : undefined;
      if (refused === undefined) {
        properties["headers"] = headers;
      } else {
        warnRefused(refused, frameMax);
        // Still without the copied trace headers, baggage and (on an
        // external exchange) private headers.
        properties["headers"] = copyHeaders(given, drop, judged, ctx);
      }
    }
    return span;
  }

  /**
   * ConfirmChannel's publish (promise and callback APIs): its callback goes
   * at the end of `unconfirmed` as it began, before or after sendMessage
   * by amqplib's version, and is taken over when publish returns, for the
   * span sendMessage left open (none when the publish threw or was not
   * traced: the callback is then amqplib's as it was).
   */
  #wrapConfirmPublish(original: AnyFn): AnyFn {
    const self = this;
    return function threadlineConfirmPublish(
      this: ChannelLike,
      exchange: unknown,
      routingKey: unknown,
      content: unknown,
      options: unknown,
      cb: unknown,
    ): unknown {
      if (!self.#enabled)
        return original.call(this, exchange, routingKey, content, options, cb);
      const slot = Array.isArray(this.unconfirmed)
        ? this.unconfirmed.length
        : -1;
      this[CONFIRMING] = null;
      let sent = false;
      try {
        const result = original.call(
          this,
          exchange,
          routingKey,
          content,
          options,
          cb,
        );
        sent = true;
        return result;
      } finally {
        // Set by sendMessage during the call, which the compiler cannot see.
        const publish = this[CONFIRMING] as
          ConfirmingPublish | null | undefined;
        this[CONFIRMING] = undefined;
        if (publish) {
          awaitConfirm(this, publish.span, slot, publish.sent);
          self.#hookReturns(this);
        }
        // Untraced (tracing suppressed, say): the callback still goes back to
        // its publisher. Not after a throw, which 0.10 answers with the
        // next publish's confirm.
        else if (sent && typeof cb === "function") answerInCaller(this, slot);
      }
    };
  }

  // ---- consumer -------------------------------------------------------

  #messageContext(message: AmqpMessage): {
    parent: Context;
    link: Context | undefined;
  } {
    const headers = message.properties?.headers ?? {};
    const getter =
      this.#config.trustMessageBaggage === false
        ? untrustedGetter
        : trustedGetter;
    const extracted = propagation.extract(EMPTY_CONTEXT, headers, getter);
    if (this.#config.consumerContext !== "link")
      return { parent: extracted, link: undefined };
    const remote =
      trace.getSpanContext(extracted) === undefined ? undefined : extracted;
    return { parent: trace.deleteSpan(extracted), link: remote };
  }

  /** Starts a CONSUMER span for a delivered or fetched message; returns its context. */
  #startConsumer(
    channel: ChannelLike,
    message: AmqpMessage,
    queue: string,
    seriesQueue: string,
    operation: "process" | "receive",
    noAck: boolean,
    startTime: number | undefined,
  ): { span: Span; ctx: Context } {
    const { parent, link } = this.#messageContext(message);
    const f = message.fields;
    const props = message.properties ?? {};
    const exchange = destinationOf(f.exchange);
    const operationName: ConsumerOperation =
      operation === "process" ? "consume" : "get";
    const server = channel.connection?.[SERVER];
    const attributes: Attributes = {
      "messaging.system": "rabbitmq",
      "messaging.operation.type": operation,
      "messaging.operation.name": operationName,
      "messaging.destination.name": exchange,
      "messaging.destination.subscription.name": queue,
      "messaging.rabbitmq.destination.routing_key": f.routingKey,
      "messaging.rabbitmq.message.delivery_tag": f.deliveryTag,
      "messaging.rabbitmq.message.redelivered": f.redelivered === true,
      "messaging.message.body.size": Buffer.isBuffer(message.content)
        ? message.content.length
        : undefined,
      "server.address": server?.address,
      "server.port": server?.port,
    };
    if (typeof props.messageId === "string")
      attributes["messaging.message.id"] = props.messageId;
    if (typeof props.correlationId === "string")
      attributes["messaging.message.conversation_id"] = props.correlationId;
    const linkContext =
      link === undefined ? undefined : trace.getSpanContext(link);
    const span = this.#tracer!.startSpan(
      `${operation} ${queue}`,
      {
        kind: SpanKind.CONSUMER,
        attributes,
        ...(linkContext === undefined
          ? {}
          : { links: [{ context: linkContext }] }),
        ...(startTime === undefined ? {} : { startTime }),
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    messageContexts.set(message, ctx);
    deliveries.set(span, {
      start: performance.now(),
      ctx,
      operation: operationName,
      exchange,
      queue: seriesQueue,
      redelivered: f.redelivered === true,
    });
    const sentAt = (props.headers as Record<string, unknown> | undefined)?.[
      SENT_AT_HEADER
    ];
    // A publisher whose baggage is not trusted may be no service of ours,
    // and a time before the epoch is none a clock gave: either would put
    // any latency it liked into the histogram.
    if (
      this.#config.trustMessageBaggage !== false &&
      typeof sentAt === "number" &&
      Number.isFinite(sentAt) &&
      sentAt >= 0
    )
      meters().latency.record(
        Math.max(0, Date.now() - sentAt) / 1000,
        latencySets.get(
          operationName,
          seriesQueue,
          undefined,
          undefined,
          undefined,
        ),
        ctx,
      );
    if (noAck) {
      settleAttributes(span, "auto", undefined);
    } else {
      register(channel, f.deliveryTag, span);
      hookClose(channel);
    }
    return { span, ctx };
  }

  #wrapConsume(original: AnyFn): AnyFn {
    const self = this;
    return function threadlineConsume(
      this: ChannelLike,
      queue: unknown,
      callback: unknown,
      options: unknown,
      ...rest: unknown[]
    ): unknown {
      if (!self.#enabled || typeof callback !== "function")
        return original.call(this, queue, callback, options, ...rest);
      const channel = this;
      self.#watchConnection(channel);
      // Truthy, as amqplib reads it.
      const noAck = !!(options as { noAck?: unknown } | undefined)?.noAck;
      const queueName = typeof queue === "string" ? queue : "";
      const seriesQueue = queueSeries(queueName);
      const userCallback = callback as (msg: unknown) => unknown;
      const passOn = isAsyncCallback(callback as AnyFn);
      const wrapped = function (
        this: unknown,
        message: AmqpMessage | null,
      ): unknown {
        if (message === null || !self.#enabled)
          return userCallback.call(this, message);
        let started: { span: Span; ctx: Context } | undefined;
        try {
          started = self.#startConsumer(
            channel,
            message,
            queueName,
            seriesQueue,
            "process",
            noAck,
            undefined,
          );
        } catch (err) {
          diag.warnCollapsed(
            "amqp-consume",
            `could not trace a delivery: ${(err as Error).message}`,
          );
          return userCallback.call(this, message);
        }
        return callHandler(
          channel,
          started,
          noAck,
          passOn,
          userCallback,
          this,
          [message],
        );
      };
      return original.call(this, queue, wrapped, options, ...rest);
    };
  }

  #wrapGet(original: AnyFn, callbackApi: boolean): AnyFn {
    const self = this;
    return function threadlineGet(
      this: ChannelLike,
      queue: unknown,
      options: unknown,
      cb?: unknown,
    ): unknown {
      if (!self.#enabled) return original.call(this, queue, options, cb);
      const channel = this;
      self.#watchConnection(channel);
      const start = performance.timeOrigin + performance.now();
      const noAck = !!(options as { noAck?: unknown } | undefined)?.noAck;
      const queueName = typeof queue === "string" ? queue : "";
      const seriesQueue = queueSeries(queueName);
      const onMessage = (
        msg: unknown,
      ): { span: Span; ctx: Context } | undefined => {
        if (!msg || typeof msg !== "object") return undefined;
        try {
          return self.#startConsumer(
            channel,
            msg as AmqpMessage,
            queueName,
            seriesQueue,
            "receive",
            noAck,
            start,
          );
        } catch (err) {
          diag.warnCollapsed(
            "amqp-get",
            `could not trace a fetched message: ${(err as Error).message}`,
          );
          return undefined;
        }
      };
      if (callbackApi) {
        if (typeof cb !== "function")
          return original.call(this, queue, options, cb);
        const userCb = cb as (err: unknown, msg: unknown) => unknown;
        const passOn = isAsyncCallback(userCb);
        // Called from the connection's socket: with no message, back in
        // the caller's context; with one, as a consume() callback is.
        return original.call(
          this,
          queue,
          options,
          inCallerContext(function (this: unknown, err: unknown, msg: unknown) {
            const started = err ? undefined : onMessage(msg);
            return started === undefined
              ? userCb.call(this, err, msg)
              : callHandler(channel, started, noAck, passOn, userCb, this, [
                  err,
                  msg,
                ]);
          }, "amqp.get"),
        );
      }
      return (original.call(this, queue, options) as Promise<unknown>).then(
        (msg) => {
          const started = onMessage(msg);
          if (noAck) started?.span.end();
          return msg;
        },
      );
    };
  }

  // ---- settlement -----------------------------------------------------

  #wrapSendImmediately(original: AnyFn): AnyFn {
    return function threadlineSendImmediately(
      this: ChannelLike,
      method: unknown,
      fields: unknown,
    ): unknown {
      const pending = this[PENDING];
      if (
        pending !== undefined &&
        pending.size > 0 &&
        (method === BASIC_ACK ||
          method === BASIC_NACK ||
          method === BASIC_REJECT ||
          method === BASIC_RECOVER)
      ) {
        try {
          settle(
            this,
            pending,
            method,
            fields as {
              deliveryTag?: number;
              multiple?: boolean;
              requeue?: boolean;
            },
          );
        } catch {
          // never let bookkeeping break an ack
        }
      }
      return original.call(this, method, fields);
    };
  }
}

/**
 * Calls the handler of a delivery (a consume() callback, or a get() callback
 * given a message) in the message's context, and ends the delivery's span
 * as the handler finishes, with what it threw or rejected with.
 */
function callHandler(
  channel: ChannelLike,
  started: { span: Span; ctx: Context },
  noAck: boolean,
  passOn: boolean,
  handler: (...args: unknown[]) => unknown,
  thisArg: unknown,
  args: unknown[],
): unknown {
  const { span, ctx } = started;
  const outer = calling;
  const outerSettled = callingSettled;
  calling = span;
  callingSettled = false;
  let result: unknown;
  try {
    result = context.with(ctx, handler, thisArg, ...args);
  } catch (err) {
    calling = outer;
    callingSettled = outerSettled;
    markFailed(span, err);
    // Ended now, settled or not: amqplib makes the exception the
    // channel's error, and the connection's when the channel has no
    // listener, which ends an application that does not listen for it
    // either, and the exit's flush sends only ended spans. A
    // settlement or close later still counts the delivery.
    span.end();
    throw err;
  }
  const settled = noAck || callingSettled;
  calling = outer;
  callingSettled = outerSettled;
  // An async handler's failure is the delivery's, acknowledged or not:
  // the span ends when both the message and the promise are settled.
  // Watching the promise makes it handled, and amqplib ignores it: an
  // async function's promise (bound or not) reached nobody else, so its
  // rejection is passed on, unhandled as it was. Any other promise the
  // application may handle itself, and one passed on would then be an unhandled
  // rejection of ours, which ends the process by Node's default.
  if (
    result !== null &&
    typeof result === "object" &&
    typeof (result as Promise<unknown>).then === "function"
  ) {
    // A noAck delivery is settled already: like an acknowledged one,
    // it ends when its channel closes should the promise never settle.
    const finishing = (channel[FINISHING] ??= new Map());
    finishing.set(span, settled);
    if (noAck) hookClose(channel);
    const finish = (): void => {
      const settledNow = finishing.get(span);
      finishing.delete(span);
      if (settledNow === true) span.end();
    };
    void (result as Promise<unknown>).then(finish, (err: unknown) => {
      // Not on a span its channel's close has ended.
      if (finishing.has(span)) markFailed(span, err);
      finish();
      if (passOn) throw err;
    });
  } else if (settled) {
    span.end();
  }
  return result;
}

/**
 * Whether `listener` still listens for `event` on `channel`: an
 * application's removeAllListeners() takes ours with its own.
 */
function listening(
  channel: ChannelLike,
  event: string,
  listener: unknown,
): boolean {
  return (
    typeof channel.listenerCount !== "function" ||
    channel.listenerCount(event, listener) > 0
  );
}

/**
 * Once per channel: when it closes, the deliveries it still held are
 * settled as closed, and the publishes the broker never confirmed end as
 * failed, closed. Ahead of amqplib's own listener, which answers the
 * waiting confirm callbacks with an error as a nack would be (0.10 only
 * up to the first one the broker answered out of order, 1.x and later
 * every one).
 */
function hookClose(channel: ChannelLike): void {
  const hooked = channel[CLOSE_HOOKED];
  if (
    (hooked !== undefined && listening(channel, "close", hooked)) ||
    typeof channel.prependOnceListener !== "function"
  )
    return;
  const listener = () => {
    // Settled, their callbacks' promises still pending: they may never
    // settle.
    const finishing = channel[FINISHING];
    if (finishing !== undefined) {
      for (const [s, settled] of finishing) if (settled) s.end();
      finishing.clear();
    }
    const pending = channel[PENDING];
    if (pending !== undefined) {
      for (const s of pending.values()) {
        settleAttributes(s, "channel_closed", undefined);
        if (s === calling) callingSettled = true;
        else s.end();
      }
      pending.clear();
    }
    const publishing = channel[PUBLISHING];
    if (publishing !== undefined) {
      for (const [s, sent] of publishing)
        failPublish(
          s,
          sent,
          "channel_closed",
          "the channel closed before the broker confirmed the message",
        );
      publishing.clear();
    }
  };
  channel[CLOSE_HOOKED] = listener;
  channel.prependOnceListener("close", listener);
}

/**
 * Ends a confirmed publish's span when the broker answers, through the
 * confirm callback amqplib queued for it at `slot`, which also goes back to
 * the publisher's context.
 */
function awaitConfirm(
  channel: ChannelLike,
  span: Span,
  slot: number,
  sent: Attributes,
): void {
  const unconfirmed = channel.unconfirmed;
  if (!Array.isArray(unconfirmed) || slot < 0 || slot >= unconfirmed.length) {
    // No callback to answer it: nothing would end the span.
    span.end();
    meters().sent.add(1, sent);
    return;
  }
  const original = unconfirmed[slot];
  const publishing = (channel[PUBLISHING] ??= new Map());
  publishing.set(span, sent);
  hookClose(channel);
  // The broker's answer arrives on the connection's socket: the
  // application's callback goes back to the publisher's context.
  const answer = confirmInCaller(original);
  unconfirmed[slot] = (err: unknown, ok: unknown) => {
    // Not when the span already ended: the channel closed first.
    if (publishing.delete(span)) {
      const returnedFor = returned.get(span);
      returned.delete(span);
      if (err)
        failPublish(
          span,
          sent,
          "nack",
          "the broker did not confirm the message",
        );
      else if (returnedFor !== undefined)
        failPublish(
          span,
          sent,
          "returned",
          `the broker returned the message: ${returnedFor}`,
        );
      else {
        meters().sent.add(1, sent);
        span.setAttribute("messaging.rabbitmq.settlement", "confirmed");
        span.end();
      }
    }
    return answer?.(err, ok);
  };
}

/**
 * Confirmed publishes the broker returned (a mandatory message no queue
 * took), until their confirm: the broker's reply text.
 */
const returned = new WeakMap<Span, string>();

/** A publish's confirm callback, bound to the publisher's context; undefined for none. */
function confirmInCaller(
  original: unknown,
): ((err: unknown, ok: unknown) => unknown) | undefined {
  return typeof original === "function"
    ? inCallerContext(
        original as (e: unknown, o: unknown) => unknown,
        "amqp.confirm",
      )
    : undefined;
}

/** Sends the confirm callback amqplib queued at `slot` back to the publisher's context. */
function answerInCaller(channel: ChannelLike, slot: number): void {
  const unconfirmed = channel.unconfirmed;
  if (!Array.isArray(unconfirmed)) return;
  const answer = confirmInCaller(unconfirmed[slot]);
  if (answer !== undefined) unconfirmed[slot] = answer;
}

/**
 * Ends a confirmed publish's span as failed, settled `how` (its error type
 * too), and counts its send so.
 */
function failPublish(
  span: Span,
  sent: Attributes,
  how: string,
  message: string,
): void {
  meters().sent.add(1, failedSend(sent, how));
  span.setAttribute("messaging.rabbitmq.settlement", how);
  span.setAttribute("error.type", how);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.end();
}

/** The attributes of a send counted with `sent`'s, failed with `errorType`. */
function failedSend(sent: Attributes, errorType: string): Attributes {
  return sentSets.get(
    sent["messaging.destination.name"] as string,
    errorType,
    undefined,
    undefined,
    undefined,
  );
}

/**
 * Notes a delivery as pending, keeping the map in the order of its tags,
 * which a multiple acknowledgement stops at. The broker numbers a
 * channel's deliveries in the order it sends them, and they come in that
 * order, but the promise API's get() hands its message over a microtask
 * after amqplib read it: deliveries read from the socket after it have
 * been noted by then.
 */
function register(channel: ChannelLike, tag: number, span: Span): void {
  let pending = channel[PENDING];
  if (pending === undefined) {
    pending = new Map();
    channel[PENDING] = pending;
  }
  if (tag > (channel[LAST_TAG] ?? 0)) {
    channel[LAST_TAG] = tag;
    pending.set(tag, span);
    return;
  }
  const later: Array<[number, Span]> = [];
  for (const entry of pending) if (entry[0] > tag) later.push(entry);
  for (const [t] of later) pending.delete(t);
  pending.set(tag, span);
  for (const [t, s] of later) pending.set(t, s);
}

function settle(
  channel: ChannelLike,
  pending: Map<number, Span>,
  method: number,
  fields: { deliveryTag?: number; multiple?: boolean; requeue?: unknown },
): void {
  const outcome =
    method === BASIC_ACK
      ? "ack"
      : method === BASIC_NACK
        ? "nack"
        : method === BASIC_REJECT
          ? "reject"
          : "recovered";
  // Read as amqplib's encoder reads it: absent is a requeue, and after
  // that any falsy value (null, 0) is none, as the broker is told.
  const requeue =
    method === BASIC_ACK
      ? undefined
      : fields.requeue === undefined || Boolean(fields.requeue);
  const tag = fields.deliveryTag ?? 0;
  const finishing = channel[FINISHING];
  // A recover is seen as its frame goes, after the RPCs queued before it:
  // what was settled before then was settled, everything else is handed
  // back and comes again under new tags.
  if (fields.multiple === true || method === BASIC_RECOVER) {
    for (const [t, span] of pending) {
      if (tag !== 0 && t > tag) break;
      settleAttributes(span, outcome, requeue);
      endSettled(span, finishing);
      pending.delete(t);
    }
    return;
  }
  const span = pending.get(tag);
  if (span === undefined) return;
  pending.delete(tag);
  settleAttributes(span, outcome, requeue);
  endSettled(span, finishing);
}

/**
 * Ends a settled delivery's span, unless its consume() or get() callback
 * has not finished: what it throws or rejects with afterwards is the
 * delivery's failure too, so the callback's end ends the span then.
 */
function endSettled(
  span: Span,
  finishing: Map<Span, boolean> | undefined,
): void {
  if (span === calling) callingSettled = true;
  else if (finishing?.has(span) === true) finishing.set(span, true);
  else span.end();
}
