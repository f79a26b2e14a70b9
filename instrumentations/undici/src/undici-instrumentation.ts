// fetch() and undici, through undici's diagnostics channels. Node's global
// fetch is undici, and a separately installed undici publishes on the same
// channel names, so one subscription covers both with no patching.
// `undici:request:create` runs in the caller's async context before the
// request is written, so the span's parent is right and headers can still
// be added; the span ends when the body has been read
// (`undici:request:trailers`) or the request failed. A tunnel through a
// forward proxy is recognised when it connects (`undici:client:connected`),
// before anything is written through it. A redirect fetch() follows is a
// request per hop: a redirect answer leaves the URL it points to until the
// end of that turn of the event loop, and the hop fetch creates for it in
// the meantime, in the same trace, is its resend (`redirects` below).
// fetch() never reads the body of a redirect it follows: the answer ends
// when the hop is made, or when undici 8 aborts it before it creates the
// hop; such an abort waits for the end of that turn to be told from one
// the application makes. A request undici's own handlers make again (a
// retry, a redirect the redirect interceptor follows) is created from the
// connection's callbacks, and is given the context of the request it
// repeats (`answering` below). One method is patched, an installed undici's
// dispatch(), only to note the context a request is dispatched in: a
// Pool or an Agent with a connection limit queues it for a busy
// connection, and creates it in the context of the request that freed one.
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import {
  context,
  trace,
  type Context,
  type Span,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import {
  absoluteFormTarget,
  blockKeeps,
  diag,
  EgressPolicy,
  hookModule,
  replaceMethod,
  headerPairs,
  hostAndPort,
  isTracingSuppressed,
  judgeUntracedRequest,
  prepareHeaderWriter,
  finishClientCall,
  recordClientError,
  recordClientResponse,
  recordProtocolVersion,
  recordRateLimitHeaders,
  sameHost,
  startClientSpan,
  withoutHeaderLines,
  ownSymbolNamed,
  UNKNOWN_PROXY_VIA,
  type Instrumentation,
  type ClientCall,
  type ClientRequestInfo,
  type HeaderFields,
} from "@threadline/core";
import { EnvProxy } from "./internal/env-proxy.ts";
import {
  ProxyTunnels,
  queuedOn,
  type ConnectedMessage,
} from "./internal/proxy-tunnels.ts";

/** Options of {@link UndiciInstrumentation}. */
export interface UndiciInstrumentationConfig {
  /** @default the global tracer provider */
  tracerProvider?: TracerProvider;
  /** Where baggage may go, and which hosts are third parties. @default loopback and private hosts internal */
  egress?: EgressPolicy;
}

const NAME = "@threadline/instrumentation-undici";
const VERSION = "0.1.0";
const SPAN = Symbol("threadline.undici.span");
const THIRD_PARTY = Symbol("threadline.undici.third-party");
/** Set on every request judged by its destination, traced or not. */
const JUDGED = Symbol("threadline.undici.judged");
const CALL = Symbol("threadline.undici.call");
/** Set on the hops of a redirect only: which resend of the request a hop is. */
const RESEND = Symbol("threadline.undici.resend-count");
/** Set on redirect answers only, once their headers have arrived: the hop waiting for fetch(). */
const REDIRECT = Symbol("threadline.undici.redirect");
/** The context a request was created in, traced or not. */
const CREATED_IN = Symbol("threadline.undici.created-in");
/** Set on a request answered with a status of 300 or more, or failed by the connection: what the requests made again for it are given. */
const ANSWERED = Symbol("threadline.undici.answered");

/**
 * A response's header fields as `undici:request:headers` publishes them:
 * over HTTP/1.1 the raw array (name, value, name, value...); over HTTP/2,
 * which undici 8 asks TLS servers for by default, undici 8 publishes the
 * object Node's http2 gives (lower-case names, repeated fields as arrays),
 * where undici 7 made it an array.
 */
type ResponseHeaders = HeaderFields;

/** The parts of undici's internal Request object this instrumentation reads. */
interface UndiciRequest {
  origin: string | URL;
  method: string;
  path: string;
  headers: string[] | string | undefined;
  /** The Host header the application set; null when it set none. */
  host: string | null | undefined;
  addHeader(name: string, value: string): unknown;
  [SPAN]?: Span;
  [THIRD_PARTY]?: boolean;
  [JUDGED]?: boolean;
  [CALL]?: ClientCall | undefined;
  [RESEND]?: number;
  [REDIRECT]?: PendingRedirect;
  [CREATED_IN]?: Context;
  [ANSWERED]?: Answered;
}

interface Origin {
  scheme: "http" | "https";
  host: string;
  port: number;
  /** `host[:port]`, as undici writes it in the Host header. */
  authority: string;
}

const ORIGIN_CACHE_LIMIT = 256;
const origins = new Map<string, Origin>();

function parseOrigin(origin: string | URL): Origin | undefined {
  const key = String(origin);
  let o = origins.get(key);
  if (o !== undefined) return o;
  try {
    const u = typeof origin === "string" ? new URL(origin) : origin;
    const scheme = u.protocol === "https:" ? "https" : "http";
    const host = u.hostname.startsWith("[")
      ? u.hostname.slice(1, -1)
      : u.hostname;
    o = {
      scheme,
      host,
      port: u.port === "" ? (scheme === "https" ? 443 : 80) : Number(u.port),
      authority: u.host,
    };
  } catch {
    return undefined;
  }
  if (origins.size >= ORIGIN_CACHE_LIMIT) origins.clear();
  origins.set(key, o);
  return o;
}

/** A proxy tunnel's CONNECT request: `host:port` through the proxy at the origin. */
function tunnelThrough(proxy: Origin, authority: string): ClientRequestInfo {
  const target = parseOrigin(`${proxy.scheme}://${authority}`);
  return {
    method: "CONNECT",
    scheme: proxy.scheme,
    host: target?.host ?? proxy.host,
    port: target?.port ?? proxy.port,
    path: "",
    via: { host: proxy.host, port: proxy.port },
  };
}

const envProxy = new EnvProxy();
const tunnels = new ProxyTunnels();

type Via = NonNullable<ClientRequestInfo["via"]>;

/**
 * The proxy a plain-HTTP request may cross in clear: the global
 * dispatcher's env proxy, or an open tunnel to its destination; through
 * either, when both are there and differ.
 */
function plainHttpVia(origin: Origin): Via | undefined {
  const env = envProxy.for(origin.host, origin.port);
  const tunnel = tunnels.for(origin.authority);
  if (tunnel === undefined) return env;
  return env === undefined ||
    (env.host === tunnel.host && env.port === tunnel.port)
    ? tunnel
    : UNKNOWN_PROXY_VIA;
}

/**
 * Where a request goes. A ProxyAgent that does not tunnel sends the request
 * to the proxy (the origin) with the destination in its path
 * (`http://host/path`): it is judged and recorded by that destination, and
 * gets baggage only if the proxy is internal too. So does a plain-HTTP
 * request that the global dispatcher tunnels through an env proxy, or that
 * may go through a proxy tunnel open to its destination. A Host header
 * naming another host than the origin is judged too.
 */
function destinationOf(
  origin: Origin,
  request: UndiciRequest,
): ClientRequestInfo {
  if (request.method === "CONNECT") return tunnelThrough(origin, request.path);
  const path = request.path;
  // "/": nearly every request
  const target =
    path.charCodeAt(0) === 0x2f ? undefined : absoluteFormTarget(path);
  if (target !== undefined)
    return {
      method: request.method,
      ...target,
      via: { host: origin.host, port: origin.port },
    };
  return {
    method: request.method,
    scheme: origin.scheme,
    host: origin.host,
    port: origin.port,
    path,
    // Through a proxy's tunnel, plain HTTP crosses the proxy in clear.
    via: origin.scheme === "http" ? plainHttpVia(origin) : undefined,
    // undici keeps a Host header apart from the others; a ProxyAgent sets
    // one naming the origin.
    named:
      typeof request.host === "string" && request.host !== origin.authority
        ? namedHost(request.host, origin)
        : undefined,
  };
}

/**
 * The host a Host header names when it is another than the origin (an
 * egress gateway may route on it); undefined for the origin's own.
 */
function namedHost(
  hostHeader: string,
  origin: Origin,
): ClientRequestInfo["named"] {
  const { address, port } = hostAndPort(
    hostHeader,
    origin.scheme === "https" ? 443 : 80,
  );
  return address === undefined || sameHost(address, origin.host)
    ? undefined
    : { host: address, port };
}

/**
 * The URL a request goes to, as fetch() names a redirect's next hop: its
 * path, when that is the absolute-form target a ProxyAgent sends.
 */
function targetUrl(origin: Origin, path: string): string {
  return path.charCodeAt(0) === 0x2f
    ? `${origin.scheme}://${origin.authority}${path}`
    : path;
}

// The statuses fetch() follows (https://fetch.spec.whatwg.org/#redirect-status).
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A redirect answer's next hop, waiting for fetch() to create it. */
interface PendingRedirect {
  /** The request the redirect answers. */
  readonly request: UndiciRequest;
  readonly traceId: string;
  readonly resendCount: number;
  /** Which turn of the event loop it was answered in (`turn`). */
  readonly turn: number;
  /** Set once fetch() has created the hop: it follows the redirect. */
  followed: boolean;
}

/** A redirect answer aborted in the turn it came, before fetch() made its hop, if it makes one. */
interface AbortedAnswer {
  readonly pending: PendingRedirect;
  readonly span: Span;
  readonly call: ClientCall | undefined;
  readonly error: unknown;
  readonly endTime: number;
}

/**
 * Redirects answered in this turn of the event loop, by the URL they point
 * to. fetch() creates the next hop in the promise jobs that follow the
 * answer, in the context it was called in; no request carries anything
 * that names the fetch it belongs to, so a hop is known by its URL and its
 * trace. A redirect nobody follows (`redirect: "manual"`, undici's own
 * `request()`) is forgotten at the end of the turn, so that a later call
 * to that URL is not taken for its hop. Only redirect answers add here;
 * other requests check the map's size.
 */
const redirects = new Map<string, PendingRedirect[]>();
/** The end of this turn, when redirects are waiting for it. */
let forgetting: NodeJS.Immediate | undefined;
/** Counts the ends of turns that forgot redirects. */
let turn = 0;
let abortedAnswers: AbortedAnswer[] = [];

function forgetRedirects(): void {
  redirects.clear();
  forgetting = undefined;
  turn++;
  if (abortedAnswers.length === 0) return;
  const aborted = abortedAnswers;
  abortedAnswers = [];
  for (const a of aborted) {
    // Aborted by fetch() to follow it: the answer came, the call did not fail.
    if (!a.pending.followed) recordClientError(a.span, a.error, a.call);
    a.span.end(a.endTime);
    finishClientCall(a.call);
  }
}

/** The URL a redirect answer's `Location` header points to, as fetch() will ask for it; undefined when none. */
function redirectTarget(
  request: UndiciRequest,
  headers: ResponseHeaders,
): string | undefined {
  let location: string | undefined;
  for (const [name, value] of headerPairs(headers))
    if (name.length === 8 && name.toLowerCase() === "location") {
      location = value;
      break;
    }
  const origin = parseOrigin(request.origin);
  if (location === undefined || origin === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(location, targetUrl(origin, request.path));
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  // fetch() keeps an empty query's "?" in the path it sends.
  const emptyQuery =
    u.search === "" &&
    u.href.charCodeAt(u.href.length - u.hash.length - 1) === 0x3f;
  return `${u.protocol.slice(0, -1)}://${u.host}${u.pathname}${u.search}${emptyQuery ? "?" : ""}`;
}

function rememberRedirect(
  request: UndiciRequest,
  span: Span,
  headers: ResponseHeaders,
): void {
  const target = redirectTarget(request, headers);
  if (target === undefined) return;
  const hop: PendingRedirect = {
    request,
    traceId: span.spanContext().traceId,
    resendCount: (request[RESEND] ?? 0) + 1,
    turn,
    followed: false,
  };
  request[REDIRECT] = hop;
  const waiting = redirects.get(target);
  if (waiting === undefined) redirects.set(target, [hop]);
  else waiting.push(hop);
  forgetting ??= setImmediate(forgetRedirects).unref();
}

/**
 * The resend count of a request a redirect in its trace pointed to, taken;
 * outside any trace, any redirect to its URL counts. The redirect's answer
 * ends here if it has not yet: fetch() is done with it once it makes the
 * hop, and never reads its body. undici 7 leaves the rest of that body
 * waiting where undici 8 aborts it: one larger than the connection takes
 * in unread would keep the answer open until its connection closed,
 * however long after.
 */
function takeRedirect(url: string, ctx: Context): number | undefined {
  const waiting = redirects.get(url);
  if (waiting === undefined) return undefined;
  const traceId = trace.getSpanContext(ctx)?.traceId;
  const i =
    traceId === undefined
      ? 0
      : waiting.findIndex((hop) => hop.traceId === traceId);
  if (i === -1) return undefined;
  const [hop] = waiting.splice(i, 1);
  if (waiting.length === 0) redirects.delete(url);
  hop!.followed = true;
  const answered = hop!.request;
  const span = answered[SPAN];
  if (span !== undefined) {
    answered[SPAN] = undefined;
    span.end();
    finishClientCall(answered[CALL]);
    answered[CALL] = undefined;
  }
  return hop!.resendCount;
}

/**
 * A request's answer as undici's handlers act on it: the context the
 * request was created in, and the one active where the answer arrived.
 */
interface Answered {
  readonly caller: Context;
  readonly from: Context;
}

/**
 * The answer undici's handlers are acting on. They run from the
 * connection's callbacks, in the context of whichever request opened the
 * connection, and a retry (`RetryAgent`, the retry interceptor) or a
 * redirect the redirect interceptor follows is created there, at once or
 * from a timer set there: it would go out in that request's trace, with
 * its customer's baggage. Entered where undici is about to call the
 * handlers with an answer that may be acted on so (a status of 300 or
 * more, an error of the connection), the request it repeats is known to the request created
 * later in those callbacks, or in the timers they set, and its context is
 * given to it: as long as the context is still the one the answer arrived
 * in, not one the application's code in a callback set on purpose. A 2xx
 * answer, the common case, enters nothing.
 */
const answering = new AsyncLocalStorage<Answered>();

/** Makes `request`'s answer the one undici's handlers act on, for the rest of this callback and what it sets going. */
function answer(request: UndiciRequest): void {
  const caller = request[CREATED_IN];
  if (caller === undefined) return;
  const from = context.active();
  let answered = request[ANSWERED];
  if (answered === undefined || answered.from !== from) {
    answered = { caller, from };
    request[ANSWERED] = answered;
  } else if (answering.getStore() === answered) return;
  answering.enterWith(answered);
}

/**
 * Whether undici's handlers may make a request again for `error`: one of
 * the connection or of undici (a network error, a timeout, a retried
 * status), which all carry a string code. Not the application's abort (a
 * cancel's or a signal's reason, a body destroyed, a dispatcher closed),
 * which no handler retries: it comes from the application's own code,
 * whose next steps would run with the answer entered.
 */
function mayBeRetried(error: unknown): boolean {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return (
    typeof code === "string" &&
    code !== "UND_ERR_ABORTED" &&
    code !== "UND_ERR_DESTROYED" &&
    code !== "UND_ERR_CLOSED"
  );
}

/**
 * The context a request is created in: its caller's, or for a request
 * undici's handlers make again, the context of the request it repeats.
 */
function callerContext(): Context {
  const active = context.active();
  const answered = answering.getStore();
  return answered !== undefined && answered.from === active
    ? answered.caller
    : active;
}

/**
 * The HTTP version a request goes over, as its connection negotiated it
 * (ALPN, over TLS): `2` or `1.1`. Undefined without ALPN (plain HTTP, a
 * server that offers none): undici publishes nothing of the version its
 * HTTP/1 answers come in, and the request's own is no answer's.
 */
function negotiatedVersion(socket: unknown): string | undefined {
  const alpn = (socket as { alpnProtocol?: unknown } | null | undefined)
    ?.alpnProtocol;
  return alpn === "h2" ? "2" : alpn === "http/1.1" ? "1.1" : undefined;
}

function isAbort(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === "AbortError";
}

/**
 * The reason fetch() cancels an answer's body with once the application let
 * go of the Response unread (undici's streamRegistry, 7 and 8 alike).
 */
const UNREAD_COLLECTED = "Response object has been garbage collected";

/**
 * The message of the AbortError fetch() ends the request with when its body
 * is cancelled with no reason given (`res.body.cancel()`, a `for await`
 * left early; undici 7 and 8 alike). An AbortSignal aborted with no reason
 * gives another ("This operation was aborted").
 */
const CANCELLED_WITHOUT_REASON = "The operation was aborted.";

/**
 * Whether `error`, ending an answer whose headers came with `status`, is
 * the application cancelling the rest of the body of an answer: the
 * answer came, so the call went as its status says (a 4xx or 5xx is an
 * error of that status, as when its body is read to the end). fetch() ends the
 * request with the reason the body was cancelled with, and with an
 * AbortSignal's abort reason alike, so the two are told apart by the
 * reason: one that is no Error (`reader.cancel("done")`) only the
 * application gives, and fetch()'s own AbortError for a cancel with none.
 * The AbortError or TimeoutError of the request's signal, an Error the
 * application gives as the reason, undici's body timeout and a connection
 * lost are failures.
 */
function isBodyCancelled(status: unknown, error: unknown): boolean {
  if (typeof status !== "number" || status < 200) return false;
  if (!(error instanceof Error)) return true;
  return (
    error.name === "AbortError" && error.message === CANCELLED_WITHOUT_REASON
  );
}

/**
 * The body of the answer `request()` gave, read from the request's handler
 * where that is `request()`'s own. Node's own dispatcher (the global one
 * Node installs) wrapping undici 8's handler, and most interceptors, keep
 * it in a private field.
 */
function bodyOf(request: UndiciRequest): Body | undefined {
  const body = (handlerOf(request)?.value as { res?: unknown } | undefined)
    ?.res;
  return typeof body === "object" && body !== null ? (body as Body) : undefined;
}

/**
 * The context each handler was first dispatched in, by the handler: a
 * request a Pool or an Agent with a connection limit queues is created
 * when a connection comes free, in the context of the request that freed
 * it. A handler dispatched again (a retry, a redirect followed) keeps the
 * context of its first dispatch, its caller's.
 */
const dispatchedIn = new WeakMap<object, Context>();

type DispatchFn = (this: unknown, opts: unknown, handler: unknown) => unknown;

function wrapDispatch(original: DispatchFn): DispatchFn {
  return function threadlineDispatch(this: unknown, opts, handler) {
    if (
      typeof handler === "object" &&
      handler !== null &&
      !dispatchedIn.has(handler)
    )
      dispatchedIn.set(handler, context.active());
    return original.call(this, opts, handler);
  };
}

/** The symbol undici's Request keeps its handler under, by the Request's prototype (Node's undici and the application's each have theirs). */
const handlerKeys = new WeakMap<object, symbol | null>();

/**
 * Makes the request's handler run in `ctx`, the context the request was
 * made in. undici calls it from the connection's callbacks, in the
 * context of whichever request opened the connection, and the body
 * `request()` gives (a stream) emits its data and end there: a listener
 * one customer's code adds to its answer ran as the customer of another
 * request over the same kept-alive connection, and so did the logging
 * and calls it made. Each of the handler's callbacks (`onHeaders`,
 * `onData`, `onComplete`, ...) is entered as undici calls it.
 */
function handleInContext(
  request: UndiciRequest,
  handler: { key: symbol; value: object },
  ctx: Context,
): void {
  (request as unknown as Record<symbol, unknown>)[handler.key] = new Proxy(
    handler.value,
    {
      get(target, name) {
        const v = Reflect.get(target, name) as unknown;
        if (
          typeof v !== "function" ||
          typeof name !== "string" ||
          !name.startsWith("on")
        )
          return v;
        return (...args: unknown[]) =>
          context.with(ctx, v as (...a: unknown[]) => unknown, target, ...args);
      },
    },
  );
}

/** The request's handler, and the key it is kept under. */
function handlerOf(
  request: UndiciRequest,
): { key: symbol; value: object } | undefined {
  const proto = Object.getPrototypeOf(request) as object | null;
  if (proto === null) return undefined;
  let key = handlerKeys.get(proto);
  if (key === undefined) {
    key = ownSymbolNamed(request, "handler") ?? null;
    handlerKeys.set(proto, key);
  }
  if (key === null) return undefined;
  const value = (request as unknown as Record<symbol, unknown>)[key];
  return typeof value === "object" && value !== null
    ? { key, value }
    : undefined;
}

/** The parts of a Readable `bodyOf` reads. */
interface Body {
  destroyed?: unknown;
  errored?: unknown;
}

/**
 * Whether `error`, ending an answer whose headers came with `status`, is
 * the application destroying the rest of the body `request()` gave it:
 * the answer came, so the call went as its status says.
 * undici ends the request with the same RequestAbortedError however the
 * body is destroyed, with an error or none, by the application or by the
 * request's signal (an EventEmitter's too). It does so from within the
 * body's destroy(), by when the body holds the error it was given, if any.
 * A cancel gives none (`body.destroy()`, `dump()` past its limit), one
 * that is no Error (`destroy("done")`), the AbortError Node's streams give
 * a body when a `for await` over it is left early (with no cause: the one
 * a signal makes them give has the signal's reason as cause), or undici's
 * own AbortError, from `dump()` on a body declared longer than its limit.
 * The signal's reason, an Error the application gives, undici's body
 * timeout and a connection lost, errors of their own, are failures.
 */
function isBodyDestroyed(
  status: unknown,
  error: unknown,
  request: UndiciRequest,
): boolean {
  if (typeof status !== "number" || status < 200) return false;
  if ((error as { code?: unknown } | null)?.code !== "UND_ERR_ABORTED")
    return false;
  const body = bodyOf(request);
  // undici 8 lets go of the body before its signal destroys it.
  if (body === undefined || body.destroyed !== true) return false;
  const why = body.errored;
  if (!(why instanceof Error)) return true;
  const code = (why as { code?: unknown }).code;
  return (
    why.name === "AbortError" &&
    ((code === "ABORT_ERR" && !("cause" in why)) || code === "UND_ERR_ABORT")
  );
}

/** Removes every `name` header the application set on the request. */
function removeHeader(req: UndiciRequest, name: string): void {
  const h = req.headers;
  if (Array.isArray(h)) {
    for (let i = h.length - 2; i >= 0; i -= 2)
      if (h[i]!.toLowerCase() === name) h.splice(i, 2);
  } else if (typeof h === "string" && h.toLowerCase().includes(`${name}:`)) {
    req.headers = withoutHeaderLines(h, name);
  }
}

/** Removes every `name` header the application set unless it set one, `value`. */
function removeHeaderUnless(
  req: UndiciRequest,
  name: string,
  value: string | undefined,
): void {
  const h = req.headers;
  if (Array.isArray(h)) {
    let seen = 0;
    let other = false;
    for (let i = 0; i + 1 < h.length; i += 2)
      if (h[i]!.toLowerCase() === name) {
        seen++;
        if (h[i + 1] !== value) other = true;
      }
    if (seen > 1 || other) removeHeader(req, name);
  } else if (typeof h === "string" && !blockKeeps(h, name, value)) {
    req.headers = withoutHeaderLines(h, name);
  }
}

// addHeader appends: startClientSpan has removed what the application
// copied of the headers the propagators write before they write them.
const headers = prepareHeaderWriter<UndiciRequest>({
  set: (req, name, value) => req.addHeader(name, value),
  remove: removeHeader,
  removeUnless: removeHeaderUnless,
});

export class UndiciInstrumentation implements Instrumentation {
  readonly name = NAME;
  readonly #config: UndiciInstrumentationConfig;
  readonly #egress: EgressPolicy;
  #tracer: Tracer | undefined;
  #enabled = false;
  #unsubscribe: (() => void) | undefined;

  constructor(config: UndiciInstrumentationConfig = {}) {
    this.#config = config;
    this.#egress = config.egress ?? new EgressPolicy();
  }

  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    this.#tracer = (
      this.#config.tracerProvider ?? trace.getTracerProvider()
    ).getTracer(NAME, VERSION);
    const onCreate = (m: unknown) =>
      this.#onCreate((m as { request: UndiciRequest }).request);
    // Published once a connection is chosen for the request, with its socket.
    const onSendHeaders = (m: unknown) => {
      const { request, socket } = m as {
        request: UndiciRequest;
        socket: unknown;
      };
      const span = request[SPAN];
      if (span === undefined) return;
      const version = negotiatedVersion(socket);
      if (version !== undefined)
        recordProtocolVersion(span, version, request[CALL]);
    };
    const onHeaders = (m: unknown) => {
      const { request, response } = m as {
        request: UndiciRequest;
        response: { statusCode: number; headers?: ResponseHeaders | null };
      };
      if (response.statusCode >= 300) answer(request);
      const span = request[SPAN];
      if (span === undefined) return;
      const call = request[CALL];
      recordClientResponse(span, response.statusCode, call);
      if (
        response.statusCode >= 301 &&
        response.statusCode <= 308 &&
        REDIRECT_STATUSES.has(response.statusCode) &&
        response.headers != null
      )
        rememberRedirect(request, span, response.headers);
      if (request[THIRD_PARTY] === true && response.headers != null)
        recordRateLimitHeaders(span, headerPairs(response.headers), call);
    };
    const onTrailers = (m: unknown) => {
      const { request } = m as { request: UndiciRequest };
      // Redirects are followed and statuses retried from here.
      if (request[ANSWERED] !== undefined) answer(request);
      const span = request[SPAN];
      if (span === undefined) return;
      request[SPAN] = undefined;
      span.end();
      finishClientCall(request[CALL]);
      request[CALL] = undefined;
    };
    const onError = (m: unknown) => {
      const { request, error } = m as {
        request: UndiciRequest;
        error: unknown;
      };
      if (mayBeRetried(error)) answer(request);
      const span = request[SPAN];
      if (span === undefined) return;
      request[SPAN] = undefined;
      const call = request[CALL];
      request[CALL] = undefined;
      const status = call?.attributes["http.response.status_code"];
      // The body of request()'s answer the application destroyed, a
      // redirect's included, is told from a failure only now, while the
      // body still holds why.
      if (isBodyDestroyed(status, error, request)) {
        span.end();
        finishClientCall(call);
        return;
      }
      // fetch() drops the answer to a redirect it follows unread: undici 8
      // aborts it, which fails the request whenever its body has not all
      // arrived yet (over HTTP/2 nearly always); undici 7 leaves it, and
      // the answer ends when the hop is made (`takeRedirect`). The answer
      // came, so the call did not fail. undici 8 aborts it before it
      // creates the hop, so an abort in the turn the answer came waits for
      // that turn's end; an abort of a redirect nobody follows (the
      // application's, of an answer to `redirect: "manual"` or to
      // `request()`) is a failure like any other.
      const pending = request[REDIRECT];
      if (pending !== undefined && isAbort(error)) {
        if (pending.turn === turn) {
          abortedAnswers.push({
            pending,
            span,
            call,
            error,
            endTime: performance.now(),
          });
          // Not lost should nothing else keep the process alive.
          forgetting?.ref();
          return;
        }
      }
      // An answer the application never read, cancelled when its Response
      // was collected: the call was answered (its status is recorded), and
      // ends here, as late as Threadline can know it was done with. So does
      // one whose body the application cancelled.
      if (error !== UNREAD_COLLECTED && !isBodyCancelled(status, error))
        recordClientError(span, error, call);
      span.end();
      finishClientCall(call);
    };
    const onConnected = (m: unknown) =>
      this.#onConnected(m as ConnectedMessage);
    subscribe("undici:client:connected", onConnected);
    subscribe("undici:request:create", onCreate);
    subscribe("undici:client:sendHeaders", onSendHeaders);
    subscribe("undici:request:headers", onHeaders);
    subscribe("undici:request:trailers", onTrailers);
    subscribe("undici:request:error", onError);
    // An installed undici's dispatchers (Node's own fetch() uses them when
    // given one) tell the context a request was dispatched in.
    const restore: Array<() => void> = [];
    const dispatcherBase = hookModule({
      module: "undici",
      file: "lib/dispatcher/dispatcher-base.js",
      onLoad: (exports) => {
        const proto = (exports as { prototype?: Record<string, unknown> })
          ?.prototype;
        if (proto !== undefined && typeof proto["dispatch"] === "function")
          replaceMethod(proto, "dispatch", wrapDispatch, restore);
        return undefined;
      },
    });
    this.#unsubscribe = () => {
      dispatcherBase.unhook();
      for (const undo of restore.splice(0)) undo();
      unsubscribe("undici:client:connected", onConnected);
      unsubscribe("undici:request:create", onCreate);
      unsubscribe("undici:client:sendHeaders", onSendHeaders);
      unsubscribe("undici:request:headers", onHeaders);
      unsubscribe("undici:request:trailers", onTrailers);
      unsubscribe("undici:request:error", onError);
    };
  }

  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /**
   * A tunnel through a proxy that gets no baggage: the requests created
   * before it was opened, which wait for it, lose what they would have
   * told the proxy.
   */
  #onConnected(message: ConnectedMessage): void {
    try {
      const proxy = tunnels.connected(message);
      if (
        proxy === undefined ||
        (proxy.host !== undefined &&
          this.#egress.classify(proxy.host, proxy.port).baggage)
      )
        return;
      const queued = queuedOn(message.socket);
      if (queued === undefined) {
        diag.warnCollapsed(
          "undici-tunnel-queue",
          "could not keep baggage from a proxy tunnel: this undici version does not show the requests waiting for it",
        );
        return;
      }
      for (const request of queued) {
        if (typeof request !== "object" || request === null) continue;
        const r = request as UndiciRequest;
        if (r[JUDGED] !== true) continue;
        removeHeader(r, "baggage");
        for (const name of this.#egress.privateHeaders) removeHeader(r, name);
      }
    } catch (err) {
      diag.warnCollapsed(
        "undici-tunnel",
        `could not judge a proxy tunnel: ${(err as Error).message}`,
      );
    }
  }

  #onCreate(request: UndiciRequest): void {
    try {
      const handler = handlerOf(request);
      // A request a Pool or an Agent with a connection limit queues is
      // created when a connection comes free, in the context of the
      // request that freed it: its caller's is the one it was dispatched
      // in (an installed undici's dispatchers), or the one its handler
      // keeps (request(), stream() and pipeline()'s, AsyncResources).
      const dispatched =
        handler === undefined ? undefined : dispatchedIn.get(handler.value);
      const ctx =
        dispatched ??
        (handler?.value instanceof AsyncResource
          ? handler.value.runInAsyncScope(() => context.active())
          : callerContext());
      request[CREATED_IN] = ctx;
      if (handler !== undefined) handleInContext(request, handler, ctx);
      const origin = parseOrigin(request.origin);
      if (origin === undefined) return;
      const info = destinationOf(origin, request);
      if (isTracingSuppressed(ctx)) {
        judgeUntracedRequest(this.#egress, ctx, info, request, headers);
        request[JUDGED] = true;
        return;
      }
      const resendCount =
        redirects.size === 0
          ? undefined
          : takeRedirect(targetUrl(origin, request.path), ctx);
      if (resendCount !== undefined) info.resendCount = resendCount;
      const { span, egress, call } = startClientSpan(
        this.#tracer!,
        this.#egress,
        ctx,
        info,
        request,
        headers,
      );
      request[SPAN] = span;
      request[JUDGED] = true;
      request[CALL] = call;
      if (resendCount !== undefined) request[RESEND] = resendCount;
      if (egress.thirdParty !== undefined) request[THIRD_PARTY] = true;
    } catch (err) {
      diag.warnCollapsed(
        "undici-client",
        `could not trace a fetch request: ${(err as Error).message}`,
      );
    }
  }
}
