// What the node:http and fetch/undici instrumentations share: method
// normalisation, client span start with egress policy and header
// injection, and recording of the response.
import {
  SpanKind,
  SpanStatusCode,
  propagation,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Span,
  type TextMapSetter,
  type Tracer,
} from "@opentelemetry/api";
import { getCustomerFromContext } from "./customer.ts";
import { lazyInstruments, SECONDS_BUCKETS } from "./instruments.ts";
import { BAGGAGE_FIELDS } from "./propagators.ts";
import { redactUrl } from "./redact.ts";
import { errorTypeOf } from "./errors.ts";
import { isRetryableStatus, retryAfterMs } from "./retry-after.ts";
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_PEER_SERVICE,
  ATTR_URL_FULL,
} from "./semconv.ts";
import { canonicalHost, type EgressClass, type EgressPolicy } from "./trust.ts";

const KNOWN_METHODS = new Set([
  "CONNECT",
  "DELETE",
  "GET",
  "HEAD",
  "OPTIONS",
  "PATCH",
  "POST",
  "PUT",
  "TRACE",
  "QUERY",
]);

/**
 * The semantic-conventions form of a method: a known method as it is,
 * anything else `_OTHER` with the method as sent for its original. Methods
 * are case-sensitive, so `patch` is not `PATCH` (a server may well refuse
 * it) and is recorded as `_OTHER`.
 */
export function normalizeMethod(method: string | undefined): {
  method: string;
  original: string | undefined;
} {
  const m = method ?? "GET";
  if (KNOWN_METHODS.has(m)) return { method: m, original: undefined };
  return { method: "_OTHER", original: m };
}

/** A raw header block (`name: value\r\n...`) without its `name` lines; `name` in lower case. */
export function withoutHeaderLines(block: string, name: string): string {
  const prefix = `${name}:`;
  return block
    .split("\r\n")
    .filter((line) => !line.toLowerCase().startsWith(prefix))
    .join("\r\n");
}

/** How an instrumentation writes headers on its kind of outgoing request. */
export interface HeaderWriter<C> {
  set(carrier: C, name: string, value: string): void;
  /** Removes a header the application set itself (`baggage` and the customer header, for non-internal hosts). */
  remove(carrier: C, name: string): void;
  /**
   * Removes every `name` header (lower case) the application set itself
   * unless it set one, `value`; all of them when `value` is undefined.
   */
  removeUnless(carrier: C, name: string, value: string | undefined): void;
}

/** A HeaderWriter with its propagation setters built once, so requests allocate nothing for them. */
export interface PreparedHeaderWriter<C> {
  readonly internal: TextMapSetter<C>;
  readonly external: TextMapSetter<C>;
  readonly remove: (carrier: C, name: string) => void;
  readonly removeUnless: (
    carrier: C,
    name: string,
    value: string | undefined,
  ) => void;
}

export function prepareHeaderWriter<C>(
  writer: HeaderWriter<C>,
): PreparedHeaderWriter<C> {
  return {
    internal: { set: (carrier, key, value) => writer.set(carrier, key, value) },
    external: {
      set: (carrier, key, value) => {
        if (key !== "baggage") writer.set(carrier, key, value);
      },
    },
    remove: (carrier, name) => writer.remove(carrier, name),
    removeUnless: (carrier, name, value) =>
      writer.removeUnless(carrier, name, value),
  };
}

/**
 * Whether a raw header block (`name: value\r\n...`) is as
 * {@link HeaderWriter.removeUnless} leaves it: without a `name` line (lower
 * case), or with one, `value`.
 */
export function blockKeeps(
  block: string,
  name: string,
  value: string | undefined,
): boolean {
  const prefix = `${name}:`;
  let seen = 0;
  for (const line of block.split("\r\n")) {
    if (!line.toLowerCase().startsWith(prefix)) continue;
    if (
      value === undefined ||
      ++seen > 1 ||
      line.slice(prefix.length).trim() !== value
    )
      return false;
  }
  return true;
}

const ABSOLUTE_FORM = /^https?:\/\//i;

/**
 * The destination an absolute-form request target names (`http://host/path`,
 * as requests to a forward proxy are sent), or undefined for any other
 * target.
 */
export function absoluteFormTarget(
  path: string,
): Pick<ClientRequestInfo, "scheme" | "host" | "port" | "path"> | undefined {
  // A scheme is case-insensitive (RFC 3986), and proxies read `HTTP://` as
  // they read `http://`. Most paths start with "/": one comparison for them.
  const first = path.charCodeAt(0);
  if ((first !== 0x68 && first !== 0x48) || !ABSOLUTE_FORM.test(path))
    return undefined;
  let url: URL;
  try {
    url = new URL(path);
  } catch {
    return undefined; // not a URL after all: an odd path, sent as it is
  }
  const scheme = url.protocol === "https:" ? "https" : "http";
  return {
    scheme,
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? (scheme === "https" ? 443 : 80) : Number(url.port),
    path: `${url.pathname}${url.search}`,
  };
}

/** Whether two names of a host are the same host (case, brackets, a trailing dot, IPv6 spellings aside). */
export function sameHost(a: string, b: string): boolean {
  return a === b || canonicalHost(a) === canonicalHost(b);
}

/** The host and port a `host[:port]` authority (a Host header, a CONNECT target) names. */
export interface HostAndPort {
  readonly address: string | undefined;
  readonly port: number;
}

// A service is mostly called under one Host header; parsing it (a search
// and a number conversion into the runtime) is kept for the next request.
let lastHost: string | undefined;
let lastFallbackPort = 0;
let lastHostAndPort: HostAndPort | undefined;

/** {@link parseHostAndPort}, the last answer kept. */
export function hostAndPort(
  host: string | undefined,
  fallbackPort: number,
): HostAndPort {
  if (
    lastHostAndPort !== undefined &&
    host === lastHost &&
    fallbackPort === lastFallbackPort
  )
    return lastHostAndPort;
  lastHost = host;
  lastFallbackPort = fallbackPort;
  return (lastHostAndPort = parseHostAndPort(host, fallbackPort));
}

/** The host and port of a `host[:port]` authority; `fallbackPort` when it names none. */
export function parseHostAndPort(
  host: string | undefined,
  fallbackPort: number,
): HostAndPort {
  if (host === undefined || host.length === 0)
    return { address: undefined, port: fallbackPort };
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    const port =
      host.charCodeAt(close + 1) === 0x3a
        ? Number(host.slice(close + 2))
        : fallbackPort;
    return {
      address: host.slice(1, close),
      port: Number.isInteger(port) ? port : fallbackPort,
    };
  }
  const colon = host.lastIndexOf(":");
  if (colon === -1) return { address: host, port: fallbackPort };
  const port = Number(host.slice(colon + 1));
  return {
    address: host.slice(0, colon),
    port: Number.isInteger(port) ? port : fallbackPort,
  };
}

/** A request's proxy when it is known to go through one that cannot be named. */
export const UNKNOWN_PROXY_VIA: NonNullable<ClientRequestInfo["via"]> =
  Object.freeze({ host: undefined, port: undefined });

/**
 * The proxy a plain (not TLS) socket handed to a client for the first time
 * was connected through, when it has carried bytes already (a CONNECT or
 * SOCKS handshake its agent made): its peer, or unknown when the socket
 * does not tell it. Undefined for a socket that has carried nothing.
 */
export function relayingProxy(
  socket: object,
): NonNullable<ClientRequestInfo["via"]> | undefined {
  const s = socket as {
    bytesRead?: unknown;
    bytesWritten?: unknown;
    remoteAddress?: unknown;
    remotePort?: unknown;
  };
  if (
    !(typeof s.bytesWritten === "number" && s.bytesWritten > 0) &&
    !(typeof s.bytesRead === "number" && s.bytesRead > 0)
  )
    return undefined;
  return typeof s.remoteAddress === "string" && typeof s.remotePort === "number"
    ? { host: s.remoteAddress, port: s.remotePort }
    : UNKNOWN_PROXY_VIA;
}

/**
 * An object's own symbol of that description: how Node and undici key
 * internals (an agent's proxy, a request's authority) that nothing public
 * tells; undefined when the version at hand has none.
 */
export function ownSymbolNamed(
  o: object,
  description: string,
): symbol | undefined {
  return Object.getOwnPropertySymbols(o).find(
    (s) => s.description === description,
  );
}

export interface ClientRequestInfo {
  method: string | undefined;
  scheme: "http" | "https";
  host: string;
  /** Undefined when the request does not tell (its Host header names another host). */
  port: number | undefined;
  /** Path and query as sent. */
  path: string;
  /**
   * The forward proxy the request goes through, which sees its headers
   * too; its host undefined when the request is known to go through a
   * proxy that cannot be named, which gets no baggage.
   */
  via?: { host: string | undefined; port: number | undefined };
  /**
   * Another host the request names in its Host header than the one it
   * connects to (an egress gateway may route on it): it gets baggage only
   * if both are internal, and is the third party if it is one.
   */
  named?: { host: string; port: number | undefined };
  /**
   * Which hop of a redirect the client follows by itself this request is
   * (1 for the second hop, 2 for the third): its
   * `http.request.resend_count`. Absent for any other request, which is
   * counted as a resend only if the same call failed just before
   * ({@link startClientSpan}).
   */
  resendCount?: number;
}

const UNKNOWN_PROXY: EgressClass = Object.freeze({
  baggage: false,
  thirdParty: undefined,
});

// Baggage carries the customer id, which no untrusted caller may plant
// downstream: a copy of it is never sent, whatever the propagators.
let knownFields: readonly string[] | undefined;
let copiedNames: readonly string[] = BAGGAGE_FIELDS;

function sameNames(
  a: readonly string[],
  b: readonly string[] | undefined,
): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Headers an outgoing request never sends as the application copied them
 * (lower case): the propagators' fields, which ours write over, and
 * `baggage` always. A trace context header no configured propagator
 * writes (`traceparent` with `OTEL_PROPAGATORS=baggage` or `none`, where a
 * mesh or a gateway carries the context) is the application's own. Worked
 * out again only when the propagators change.
 */
export function copiedHeaderNames(): readonly string[] {
  const fields = propagation.fields();
  // A propagator may hand out a new array each time (a single one, or none
  // registered): the same names keep the list.
  if (fields !== knownFields && !sameNames(fields, knownFields)) {
    knownFields = fields;
    copiedNames = Object.freeze([
      ...new Set([...BAGGAGE_FIELDS, ...fields.map((f) => f.toLowerCase())]),
    ]);
  }
  return copiedNames;
}

/**
 * An outgoing request as its egress class has judged it so far, kept so
 * that a Host header set after the request was made is judged as one
 * given when it was made ({@link judgeNamedHost}).
 */
export interface ClientEgress {
  /** The request's class: what its host, proxy and Host header make of it. */
  egress: EgressClass;
  /**
   * The customer id of the context the request was made in: the only value
   * of the customer header it may carry, and to internal hosts only.
   */
  readonly customer: string | undefined;
}

/** What a request is judged by before anything is known of it. */
const UNJUDGED: EgressClass = Object.freeze({
  baggage: true,
  thirdParty: undefined,
});

/**
 * Moves a request to the class `eg` (never more trusting than the one it
 * has): once it may carry no baggage the private headers are removed from
 * it, and a third party it is now to is written into its span's and its
 * call's attributes.
 */
function applyEgress<C>(
  policy: EgressPolicy,
  request: ClientEgress,
  eg: EgressClass,
  attributes: Attributes | undefined,
  callAttributes: Attributes | undefined,
  carrier: C,
  remove: (carrier: C, name: string) => void,
): void {
  const before = request.egress;
  request.egress = eg;
  if (before.baggage && !eg.baggage)
    for (const name of policy.privateHeaders) remove(carrier, name);
  if (eg.thirdParty === undefined || eg.thirdParty === before.thirdParty)
    return;
  if (attributes !== undefined) attributes[ATTR_PEER_SERVICE] = eg.thirdParty;
  if (callAttributes !== undefined)
    callAttributes[ATTR_PEER_SERVICE] = eg.thirdParty;
}

/**
 * Judges a request by another host its Host header names than the one it
 * connects to (an egress gateway may route on it), given when the request
 * is made or set afterwards, before it is sent: the request gets baggage
 * only if both are internal, and is the third party's call if it names
 * one. What changes goes into `attributes` (the span's, or those to set on
 * it), `callAttributes` and the carrier's headers as {@link applyEgress}
 * says.
 */
export function judgeNamedHost<C>(
  policy: EgressPolicy,
  request: ClientEgress,
  named: { host: string; port: number | undefined },
  attributes: Attributes | undefined,
  callAttributes: Attributes | undefined,
  carrier: C,
  remove: (carrier: C, name: string) => void,
): void {
  const eg = request.egress;
  const byName = policy.classify(named.host, named.port);
  if (byName.baggage && byName.thirdParty === undefined) return;
  applyEgress(
    policy,
    request,
    {
      baggage: eg.baggage && byName.baggage,
      thirdParty: byName.thirdParty ?? eg.thirdParty,
    },
    attributes,
    callAttributes,
    carrier,
    remove,
  );
}

/**
 * Judges a request again once it is known to cross a proxy nothing it was
 * made with named: a tunnel its agent opened itself (a CONNECT or SOCKS
 * handshake on the socket the agent hands over). Plain HTTP through it is
 * read by the proxy, so the request keeps its baggage and private headers
 * only if the proxy is internal too. True when they were taken out.
 */
export function judgeRelay<C>(
  policy: EgressPolicy,
  request: ClientEgress,
  via: NonNullable<ClientRequestInfo["via"]>,
  carrier: C,
  remove: (carrier: C, name: string) => void,
): boolean {
  if (!request.egress.baggage) return false;
  const proxy =
    via.host === undefined
      ? UNKNOWN_PROXY
      : policy.classify(via.host, via.port);
  if (proxy.baggage) return false;
  applyEgress(
    policy,
    request,
    { baggage: false, thirdParty: request.egress.thirdParty },
    undefined,
    undefined,
    carrier,
    remove,
  );
  return true;
}

/**
 * Judges an outgoing request by where it goes (its host, the proxy it goes
 * through, another host its Host header names) and removes what the
 * application set on it that may not go there: for a destination that
 * gets no baggage, the private headers; for one that does, the customer
 * header unless it names the customer of `ctx`, as internal services read
 * that header from their trusted callers. A handler that forwards its
 * caller's headers would otherwise hand an anonymous caller's customer id
 * to the next service, which takes it, though this one refused it. A third
 * party the request is to goes into `attributes` and `callAttributes`.
 */
function judgeClientRequest<C>(
  policy: EgressPolicy,
  ctx: Context,
  info: ClientRequestInfo,
  carrier: C,
  writer: PreparedHeaderWriter<C>,
  attributes: Attributes | undefined,
  callAttributes: Attributes | undefined,
): ClientEgress {
  let eg = policy.classify(info.host, info.port);
  // Through a proxy, baggage goes only if the proxy is internal too.
  if (eg.baggage && info.via !== undefined) {
    const proxy =
      info.via.host === undefined
        ? UNKNOWN_PROXY
        : policy.classify(info.via.host, info.via.port);
    if (!proxy.baggage) eg = proxy;
  }
  const judged: ClientEgress = {
    egress: UNJUDGED,
    customer: getCustomerFromContext(ctx),
  };
  const remove = writer.remove;
  applyEgress(policy, judged, eg, attributes, callAttributes, carrier, remove);
  if (info.named !== undefined)
    judgeNamedHost(
      policy,
      judged,
      info.named,
      attributes,
      callAttributes,
      carrier,
      remove,
    );
  if (judged.egress.baggage)
    writer.removeUnless(carrier, policy.customerHeader, judged.customer);
  return judged;
}

/**
 * An outgoing request made with tracing suppressed: it gets no span and no
 * trace headers, but is judged as a traced one is
 * ({@link judgeClientRequest}), and a copied `baggage` header never goes.
 * Suppression says what to trace, not whom to trust: a handler that
 * forwards its caller's headers under it would otherwise send them on as
 * they came, to third parties too.
 */
export function judgeUntracedRequest<C>(
  policy: EgressPolicy,
  ctx: Context,
  info: ClientRequestInfo,
  carrier: C,
  writer: PreparedHeaderWriter<C>,
): ClientEgress {
  const judged = judgeClientRequest(
    policy,
    ctx,
    info,
    carrier,
    writer,
    undefined,
    undefined,
  );
  for (const name of BAGGAGE_FIELDS) writer.remove(carrier, name);
  return judged;
}

/** A started CLIENT span, and the request as its egress class judged it. */
export interface ClientSpanStart extends ClientEgress {
  readonly span: Span;
  readonly call: ClientCall;
}

/**
 * Starts a CLIENT span for an outgoing HTTP request and writes the
 * propagation headers, honouring the egress policy: baggage (and with it
 * the customer id) only to internal hosts, through internal proxies, and
 * what the application set on the request judged as
 * {@link judgeClientRequest} says.
 */
export function startClientSpan<C>(
  tracer: Tracer,
  egress: EgressPolicy,
  ctx: Context,
  info: ClientRequestInfo,
  carrier: C,
  writer: PreparedHeaderWriter<C>,
): ClientSpanStart {
  const { method, original } = normalizeMethod(info.method);
  const defaultPort = info.scheme === "https" ? 443 : 80;
  const hostPart = info.host.includes(":") ? `[${info.host}]` : info.host;
  // Literal keys (the semantic conventions' names): computed ones make V8
  // define each property through the runtime once a collection has taken
  // the hidden classes its feedback remembers.
  const attributes: Attributes = {
    "http.request.method": method,
    "server.address": info.host,
    "server.port": info.port,
    "url.full": redactUrl(
      `${info.scheme}://${hostPart}${info.port === defaultPort || info.port === undefined ? "" : `:${info.port}`}${info.path}`,
    ),
  };
  if (info.port === undefined) delete attributes["server.port"];
  if (original !== undefined)
    attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = original;
  const callAttributes: Attributes = {
    "http.request.method": method,
    "server.address": info.host,
    "server.port": info.port,
  };
  if (info.port === undefined) delete callAttributes["server.port"];
  const judged = judgeClientRequest(
    egress,
    ctx,
    info,
    carrier,
    writer,
    attributes,
    callAttributes,
  );
  const eg = judged.egress;
  const parent = trace.getSpan(ctx);
  const attempt =
    parent === undefined
      ? ""
      : `${info.method ?? "GET"} ${attributes[ATTR_URL_FULL] as string}`;
  // A hop the client follows by itself is not the application's retry.
  const resendCount =
    info.resendCount ??
    (parent === undefined ? 0 : resendAfterFailure(parent, attempt));
  if (resendCount > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = resendCount;
  const span = tracer.startSpan(
    method === "_OTHER" ? "HTTP" : method,
    { kind: SpanKind.CLIENT, attributes },
    ctx,
  );
  // The headers the propagators write are this context's: a copy the
  // application set (forwarding its request's headers) would go beside
  // ours, or in their place where this context has none to write, such as
  // a customer id an untrusted caller sent in baggage.
  for (const name of copiedHeaderNames()) writer.remove(carrier, name);
  const spanCtx = trace.setSpan(ctx, span);
  propagation.inject(
    spanCtx,
    carrier,
    eg.baggage ? writer.internal : writer.external,
  );
  return {
    span,
    egress: eg,
    customer: judged.customer,
    call: {
      start: performance.now(),
      attributes: callAttributes,
      parent,
      context: spanCtx,
      attempt,
      resendCount,
    },
  };
}

/**
 * The header names an outgoing request or message keeps to itself, lower
 * case: those it never sends as copied ({@link copiedHeaderNames}; only
 * `baggage` with tracing suppressed, when nothing writes the others) and
 * `own`, and for a destination that gets no baggage `privateHeaders` too.
 * Worked out again only when the propagators change.
 */
export class GuardedHeaderNames {
  readonly #own: readonly string[];
  readonly #privateHeaders: readonly string[];
  #names: readonly string[] | undefined;
  #internal: ReadonlySet<string> = new Set();
  #external: ReadonlySet<string> = new Set();
  readonly #untracedInternal: ReadonlySet<string>;
  readonly #untracedExternal: ReadonlySet<string>;

  constructor(privateHeaders: readonly string[], own: readonly string[] = []) {
    this.#privateHeaders = privateHeaders.map((h) => h.toLowerCase());
    this.#own = own;
    this.#untracedInternal = new Set([...BAGGAGE_FIELDS, ...own]);
    this.#untracedExternal = new Set([
      ...this.#untracedInternal,
      ...this.#privateHeaders,
    ]);
  }

  /**
   * For a destination that gets baggage (internal), or not; for a request
   * made with tracing suppressed when `traced` is false.
   */
  for(baggage: boolean, traced = true): ReadonlySet<string> {
    if (!traced)
      return baggage ? this.#untracedInternal : this.#untracedExternal;
    const names = copiedHeaderNames();
    if (names !== this.#names) {
      this.#names = names;
      this.#internal = new Set([...names, ...this.#own]);
      this.#external = new Set([...this.#internal, ...this.#privateHeaders]);
    }
    return baggage ? this.#internal : this.#external;
  }
}

/** An outgoing request's metric attributes, filled in as it goes, and what tells its resends. */
export interface ClientCall {
  /** performance.now() when the request started. */
  readonly start: number;
  readonly attributes: Attributes;
  /** The span the request was made under, which keeps its failures; undefined outside any span. */
  readonly parent: Span | undefined;
  /**
   * The context of the request's own span, which its duration is recorded
   * in: where the end is seen (a kept-alive connection's events) another
   * request's context, the first made on that connection, is active.
   */
  readonly context: Context;
  /** The request's method and `url.full`, as a retry repeats them. */
  readonly attempt: string;
  /** Its `http.request.resend_count` (0 for a first send). */
  readonly resendCount: number;
}

const clientMetrics = lazyInstruments("@threadline/http-client", (m) => ({
  duration: m.createHistogram("http.client.request.duration", {
    unit: "s",
    description:
      "Duration of outgoing HTTP requests (http and fetch), per method, server, status and third party (peer.service).",
    advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
  }),
  remaining: m.createGauge("threadline.third_party.ratelimit.remaining", {
    unit: "{request}",
    description:
      "Requests left in a third party's rate-limit window, as its last answer said, per peer.service.",
  }),
}));

/** Records an outgoing request's duration once it is over. */
export function finishClientCall(call: ClientCall | undefined): void {
  if (call === undefined) return;
  clientMetrics().duration.record(
    (performance.now() - call.start) / 1000,
    call.attributes,
    call.context,
  );
}

// A resend is the same call made again after it failed (a network error,
// an answer cut off, 429 or a 5xx): the same method and URL within the
// same parent span, to any host. The same call made again after an answer is a call of its own
// (a poller's). Outside any span there is no operation to tell a retry
// from the next call, and nothing to hold the count: a context without a
// span may be the root context, which lives for good. Only failed calls
// are kept, each until it is made again with success, in a weak map so
// that nothing outlives the parent span, and a bounded number per span.
const failuresBySpan = new WeakMap<Span, Map<string, number>>();
const FAILURES_PER_SPAN = 64;

/** The resend count of a call made under `parent`: one more than its failed attempt's, 0 after none. */
function resendAfterFailure(parent: Span, attempt: string): number {
  const failed = failuresBySpan.get(parent)?.get(attempt);
  return failed === undefined ? 0 : failed + 1;
}

/**
 * Records how a call went, as soon as it is known: failed, so that the
 * same call made again is its resend; or answered, so that it is not.
 */
function settleAttempt(call: ClientCall | undefined, failed: boolean): void {
  const parent = call?.parent;
  if (parent === undefined) return;
  let failures = failuresBySpan.get(parent);
  if (!failed) {
    failures?.delete(call!.attempt);
    return;
  }
  if (failures === undefined) {
    failures = new Map();
    failuresBySpan.set(parent, failures);
  } else if (failures.size >= FAILURES_PER_SPAN && !failures.has(call!.attempt))
    failures.delete(failures.keys().next().value!);
  failures.set(call!.attempt, call!.resendCount);
}

/**
 * A response's header fields as a client library hands them over: the raw
 * array (name, value, name, value...), or an object (lower-case names,
 * repeated fields as arrays), as Node's http and http2 give it.
 */
export type HeaderFields =
  | ReadonlyArray<Buffer | string>
  | Readonly<Record<string, string | string[] | undefined>>;

/** Each field of a header block as a name and a value, a repeated field once per value. */
export function* headerPairs(
  headers: HeaderFields,
): Iterable<[string, string]> {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2)
      yield [String(headers[i]), String(headers[i + 1])];
    return;
  }
  const fields = headers as Readonly<
    Record<string, string | string[] | undefined>
  >;
  for (const name of Object.keys(fields)) {
    const value = fields[name];
    if (Array.isArray(value)) for (const v of value) yield [name, v];
    else if (value !== undefined) yield [name, String(value)];
  }
}

const RATE_LIMIT_HEADER = /^(x-)?rate-?limit|^retry-after$/;

/**
 * The parameters of the IETF draft's structured `RateLimit` (`r`, `t`) and
 * `RateLimit-Policy` (`q`) headers, by the field each stands for; the
 * older structured form names the fields themselves.
 */
const STRUCTURED_FIELDS: Readonly<Record<string, string>> = {
  r: "remaining",
  t: "reset",
  q: "limit",
};

/**
 * Records a third party's rate-limit headers on its CLIENT span: each as
 * `http.response.header.<name>` (the semantic conventions' form), and the
 * usual trio as numbers, `threadline.ratelimit.limit`, `.remaining` and
 * `.reset` (seconds, until then for a reset given as a Unix time),
 * whichever naming the provider uses (`X-RateLimit-*`, `RateLimit-*`,
 * `X-Rate-Limit-*`, the structured `RateLimit` header in
 * its older `limit=..., remaining=..., reset=...` form or the draft's
 * `"policy";r=...;t=...` with `RateLimit-Policy: "policy";q=...`), and
 * `Retry-After` in seconds, given as seconds or as an HTTP date.
 */
export function recordRateLimitHeaders(
  span: Span,
  headers: Iterable<[string, string]>,
  call?: ClientCall,
): void {
  const provider = call?.attributes[ATTR_PEER_SERVICE];
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase();
    if (!RATE_LIMIT_HEADER.test(name)) continue;
    span.setAttribute(`http.response.header.${name}`, [value]);
    if (name === "ratelimit" || name === "ratelimit-policy") {
      // RateLimit: limit=100, remaining=50, reset=30
      // RateLimit: "default";r=50;t=30   RateLimit-Policy: "default";q=100;w=60
      // (the first policy's, where a header lists several)
      const seen = new Set<string>();
      for (const part of value.split(/[;,]/)) {
        const [k, v] = part.trim().split("=");
        if (k === undefined || v === undefined) continue;
        const key = k.trim().toLowerCase();
        const field = STRUCTURED_FIELDS[key] ?? key;
        if (seen.has(field)) continue;
        seen.add(field);
        setRateLimitNumber(span, field, v.trim(), provider);
      }
      continue;
    }
    const field = name.replace(/^(x-)?rate-?limit-/, "");
    setRateLimitNumber(
      span,
      field === "retry-after" ? "retry-after" : field,
      value,
      provider,
    );
  }
}

function setRateLimitNumber(
  span: Span,
  field: string,
  value: string,
  provider: AttributeValue | undefined,
): void {
  if (
    field !== "limit" &&
    field !== "remaining" &&
    field !== "reset" &&
    field !== "retry-after"
  )
    return;
  // Digits alone, as Retry-After's seconds are read: Number() reads "" as
  // 0, "0x10" as 16 and "1e3" as 1000.
  const text = value.replace(/^[ \t]+|[ \t]+$/g, "");
  let n = /^\d+$/.test(text) ? Number(text) : NaN;
  // A reset of 1e9 or more is no wait of over 31 years but a Unix time in
  // seconds (GitHub's X-RateLimit-Reset): the seconds until then.
  if (field === "reset" && n >= 1e9)
    n = Math.max(0, Math.round(n - Date.now() / 1000));
  if (field === "retry-after") {
    // Seconds, or an HTTP date: the seconds until then.
    const ms = retryAfterMs(value);
    n = ms === undefined ? NaN : Number.isFinite(n) ? n : Math.round(ms / 1000);
  }
  if (!Number.isFinite(n)) return;
  span.setAttribute(
    `threadline.ratelimit.${field === "retry-after" ? "retry_after" : field}`,
    n,
  );
  if (field === "remaining" && typeof provider === "string")
    clientMetrics().remaining.record(n, { "peer.service": provider });
}

/**
 * Records the response status on a CLIENT span; 4xx and 5xx are errors. A
 * 429 or a 5xx is a failure too: the same call made again is its resend.
 */
export function recordClientResponse(
  span: Span,
  status: number,
  call?: ClientCall,
): void {
  settleAttempt(call, isRetryableStatus(status));
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (call !== undefined)
    call.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
  if (status >= 400) {
    span.setAttribute(ATTR_ERROR_TYPE, String(status));
    span.setStatus({ code: SpanStatusCode.ERROR });
    if (call !== undefined) call.attributes[ATTR_ERROR_TYPE] = String(status);
  }
}

/**
 * Records the HTTP version an outgoing request went over
 * (`network.protocol.version`, "1.1", "2") on its CLIENT span and its
 * duration metric, where the semantic conventions recommend it on both.
 */
export function recordProtocolVersion(
  span: Span,
  version: string,
  call?: ClientCall,
): void {
  span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, version);
  if (call !== undefined)
    call.attributes[ATTR_NETWORK_PROTOCOL_VERSION] = version;
}

/**
 * Records a request that ended before its answer was complete on a CLIENT
 * span, as an error typed `aborted`: a failure, as {@link recordClientError}.
 */
export function recordClientIncomplete(
  span: Span,
  message: string,
  call?: ClientCall,
): void {
  settleAttempt(call, true);
  span.setAttribute(ATTR_ERROR_TYPE, "aborted");
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  if (call !== undefined) call.attributes[ATTR_ERROR_TYPE] = "aborted";
}

/**
 * Records a failed request (network error, abort) on a CLIENT span: a
 * failure that makes the same call made again its resend.
 */
export function recordClientError(
  span: Span,
  error: unknown,
  call?: ClientCall,
): void {
  const e = error as { message?: unknown } | undefined;
  const type = errorTypeOf(error);
  settleAttempt(call, true);
  span.recordException(error as Error);
  span.setAttribute(ATTR_ERROR_TYPE, type);
  if (call !== undefined) call.attributes[ATTR_ERROR_TYPE] = type;
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: typeof e?.message === "string" ? e.message : type,
  });
}
