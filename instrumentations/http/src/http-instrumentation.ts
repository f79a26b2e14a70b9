// node:http and node:https, servers and clients.
//
// Server: `emit` on http.Server and https.Server prototypes is wrapped so the
// 'request' listener runs inside the request's context (the only way to
// make the handler's own work, its logs and its outgoing calls belong to
// the request). Everything else passes straight through. The caller's trust
// is computed once per connection and kept on the socket; the span ends on
// the response's 'close', which Node emits exactly once whether the
// response finished or the client went away, so keep-alive connections and
// errors leave nothing open.
//
// Client: http.request is not patched. Node publishes every ClientRequest
// on the `http.client.request.created` diagnostics channel before any of
// it reaches its connection, synchronously in the caller's context, which
// is what a client span and header injection need (a header block Node
// has written by then is edited: see HeaderBlock), with the port the
// request connects to, which Node hands its agent just before (see
// watchAgentPorts); it also covers callers that captured http.request
// before we started.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { Duplex } from "node:stream";
import type {
  ClientRequest,
  IncomingMessage,
  Server,
  ServerResponse,
} from "node:http";
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type TextMapGetter,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import {
  absoluteFormTarget,
  blockKeeps,
  contextWithRouteHolder,
  customerIdOf,
  diag,
  EgressPolicy,
  getCustomerFromContext,
  InboundTrust,
  isTracingSuppressed,
  isValidCustomerId,
  MAX_CUSTOMER_ID_LENGTH,
  normalizeMethod,
  prepareHeaderWriter,
  finishClientCall,
  recordClientError,
  recordClientIncomplete,
  recordClientResponse,
  recordProtocolVersion,
  recordRateLimitHeaders,
  redactQuery,
  semconv,
  setCustomerInContext,
  GuardedHeaderNames,
  headerPairs,
  httpServerOutcomes,
  hostAndPort,
  judgeNamedHost,
  judgeRelay,
  judgeUntracedRequest,
  ownSymbolNamed,
  parseHostAndPort,
  sameHost,
  type HostAndPort,
  UNKNOWN_PROXY_VIA,
  startClientSpan,
  withoutHeaderLines,
  type Instrumentation,
  type RouteHolder,
  EMPTY_CONTEXT,
  UNTRACED_SERVER,
  type ClientCall,
  type ClientEgress,
  type ClientRequestInfo,
  lazyInstruments,
  SECONDS_BUCKETS,
  lateLoadProblem,
  replaceMethod,
  AttributeSets,
  trustedCarrierGetter,
  errorTypeOf,
  relayingProxy,
} from "@threadline/core";
import { expressRoute, hookExpressLayers } from "./express-routes.ts";
import { subscribeFastifyRoutes } from "./fastify-routes.ts";

/** Options of {@link HttpInstrumentation}. */
export interface HttpInstrumentationConfig {
  /** @default the global tracer provider */
  tracerProvider?: TracerProvider;
  /**
   * Who may send baggage, and whose X-Forwarded-For names the client.
   * @default non-edge, loopback and private callers and proxies trusted
   */
  inbound?: InboundTrust;
  /** Where baggage may go, and which hosts are third parties. @default loopback and private hosts internal */
  egress?: EgressPolicy;
  /** Request header carrying the customer id when no trusted baggage does. @default 'x-customer-id' */
  customerHeader?: string;
  /**
   * Takes the customer id from a request; replaces `customerHeader`. It
   * must answer synchronously: a string, an integer (taken as its decimal
   * digits) or undefined; anything else (a promise) is no id, with a
   * warning.
   */
  customerFromRequest?: (req: IncomingMessage) => string | number | undefined;
  /**
   * Incoming paths not to trace (health checks, metrics scrapes): exact
   * paths, or prefixes ending in `*` such as `/internal/*`.
   * @default []
   */
  ignoreIncomingPaths?: readonly string[];
}

const NAME = "@threadline/instrumentation-http";
const VERSION = "0.1.0";

const TRUST = Symbol("threadline.http.trust");
/** Whether the socket's peer is a trusted proxy, once a request of it sent X-Forwarded-For. */
const PROXY = Symbol("threadline.http.proxy");
/** Whether the socket is a caller's on a unix socket the server listens on, which has no address. */
const UNIX = Symbol("threadline.http.unix");
const STATE = Symbol("threadline.http.state");
const CLIENT_SPAN = Symbol("threadline.http.client-span");
const CLIENT_CALL = Symbol("threadline.http.client-call");
/** A client request as its egress class judged it, until it is sent or over. */
const CLIENT_EGRESS = Symbol("threadline.http.client-egress");
const THIRD_PARTY = Symbol("threadline.http.third-party");
/** Header names (lower case) a client request no longer lets the application set. */
const GUARDED = Symbol("threadline.http.guarded");
const RELAYED_BY = Symbol("threadline.http.relayed-by");
const WRAPPED = Symbol("threadline.http.wrapped");

/** `emit`, marked as one of ours (WRAPPED), so that a prototype is wrapped once. */
function markWrapped<F extends object>(emit: F): F {
  Object.defineProperty(emit, WRAPPED, { value: true });
  return emit;
}
/** The context a server request and its response emit their events in. */
const REQUEST_CONTEXT = Symbol("threadline.http.request-context");
// Emitted by the self-check on a throw-away server to prove the wrapper runs.
const PROBE = Symbol("threadline.http.probe");

/** Published by Node as any `net.Server` (http, https) starts to listen. */
const LISTEN_CHANNEL = "tracing:net.server.listen:asyncStart";

/**
 * Whether the application (or anything else) has loaded a builtin, read
 * without loading it. Where Node does not say, it counts as loaded, so the
 * module is then instrumented eagerly as it always could be.
 */
function builtinLoaded(name: string): boolean {
  const list = (process as { moduleLoadList?: readonly string[] })
    .moduleLoadList;
  return !Array.isArray(list) || list.includes(`NativeModule ${name}`);
}

type TrustedSocket = {
  [TRUST]?: boolean;
  [PROXY]?: boolean;
  [UNIX]?: boolean;
  remoteAddress?: string;
  remotePort?: number;
  encrypted?: boolean;
};
type Emit = (
  this: unknown,
  event: string | symbol,
  ...args: unknown[]
) => boolean;

interface ServerState extends RouteHolder {
  span: Span;
  /** performance.now() when the request arrived. */
  start: number;
  /** http.request.method as recorded on the span (`_OTHER` for unknown methods). */
  method: string;
  scheme: "http" | "https";
  /** network.protocol.version: the request's HTTP version ("1.1"). */
  version: string;
  /** Until the response closes; see onResponseClose. */
  req: IncomingMessage | undefined;
  /**
   * The response (an upgrade's socket) holding this state, until the
   * request is finished; for the process's end to finish it instead.
   */
  holder: StatefulResponse | UpgradedSocket | undefined;
  upgrade: boolean;
  /** Its neighbours in the list of requests in progress (see endUnfinished). */
  newer: ServerState | undefined;
  older: ServerState | undefined;
  /** The context the request's listeners run in. */
  ctx: Context;
  /** A listener threw: its exception is the span's status, whatever ends it. */
  threw: boolean;
}

// The requests in progress, oldest to newest: two links in each request's
// state rather than a Set, so that keeping track costs a request no
// allocation, and a finished one is taken out in constant time.
let oldestOpen: ServerState | undefined;
let newestOpen: ServerState | undefined;

function trackOpen(state: ServerState): void {
  state.older = newestOpen;
  if (newestOpen === undefined) oldestOpen = state;
  else newestOpen.newer = state;
  newestOpen = state;
}

function untrackOpen(state: ServerState): void {
  const { newer, older } = state;
  if (newer === undefined) {
    if (newestOpen !== state) return; // never tracked, or already out
    newestOpen = older;
  } else newer.older = older;
  if (older === undefined) oldestOpen = newer;
  else older.newer = newer;
  state.newer = undefined;
  state.older = undefined;
}

/**
 * The request whose listener an exception just left, until the exception
 * reaches the process's `uncaughtExceptionMonitor` (onUncaught), where it
 * is recorded on the request's span: the request's context is no longer
 * the active one there.
 */
let thrownFrom: ServerState | undefined;

function listenerThrew(state: ServerState): void {
  state.threw = true;
  state.span.setStatus({ code: SpanStatusCode.ERROR });
  thrownFrom = state;
  // Caught on its way (by code that emits "request" itself), the exception
  // never reaches the monitor, and a later one is not this request's.
  setImmediate(forgetThrown).unref();
}

function forgetThrown(): void {
  thrownFrom = undefined;
}

function onUncaught(err: unknown): void {
  const state = thrownFrom;
  if (state === undefined) return;
  thrownFrom = undefined;
  try {
    state.span.recordException(err as Error);
    state.span.setStatus({
      code: SpanStatusCode.ERROR,
      message: (err as Error)?.message,
    });
  } catch {
    // Never adds an error of ours to the application's.
  }
}

type StatefulResponse = ServerResponse & { [STATE]?: ServerState };
/** The socket of an upgrade request, until its handshake is answered. */
type UpgradedSocket = Duplex & { [STATE]?: ServerState };
type TracedClientRequest = ClientRequest & {
  /** The proxy a socket handed to the request before it was judged relays through. */
  [RELAYED_BY]?: NonNullable<ClientRequestInfo["via"]>;
  [CLIENT_SPAN]?: Span;
  [CLIENT_CALL]?: ClientCall;
  [CLIENT_EGRESS]?: ClientEgress;
  [THIRD_PARTY]?: boolean;
  [GUARDED]?: ReadonlySet<string>;
};

// Marked: at the edge, only a trusted carrier's baggage names a customer.
const trustedGetter = trustedCarrierGetter<IncomingMessage["headers"]>({
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
});
// Untrusted callers' baggage is never read, so it cannot plant a customer id.
const untrustedGetter: TextMapGetter<IncomingMessage["headers"]> = {
  get: (carrier, key) => (key === "baggage" ? undefined : carrier[key]),
  keys: (carrier) => Object.keys(carrier).filter((k) => k !== "baggage"),
};

/**
 * Given its headers as an array, `http.request()` writes the request's
 * header block at once, and `setHeader` no longer works; the block is sent
 * with the first write, and until then, it is a string to edit. Given an
 * `Expect` header (curl sends one with an upload, and a handler forwarding
 * its caller's headers copies it), the block is sent at once as well: it
 * waits whole at the head of the request's queued output until Node gives
 * the request its socket, after the request is made, and it is edited
 * there too.
 */
type HeaderBlock = {
  _header?: unknown;
  _headerSent?: unknown;
  outputData?: unknown;
  outputSize?: unknown;
};

/**
 * The queued output a request's header block heads, when the block was
 * sent at once (see HeaderBlock) and the request has no socket to have
 * written any of it to.
 */
function queuedBlock(req: ClientRequest): { data: string } | undefined {
  const r = req as unknown as HeaderBlock;
  const header = r._header;
  if (
    r._headerSent !== true ||
    typeof header !== "string" ||
    (req.socket !== null && req.socket !== undefined) ||
    !Array.isArray(r.outputData)
  )
    return undefined;
  const first = (r.outputData as unknown[])[0] as
    { data?: unknown } | undefined;
  return typeof first?.data === "string" && first.data.startsWith(header)
    ? (first as { data: string })
    : undefined;
}

/** A request's header block, written and not yet sent, where it can be edited. */
function unsentBlock(req: ClientRequest): string | undefined {
  const r = req as unknown as HeaderBlock;
  if (typeof r._header !== "string") return undefined;
  return r._headerSent === false || queuedBlock(req) !== undefined
    ? r._header
    : undefined;
}

/** Puts `edited` in place of the unsent header block `block`, queued too if it is. */
function rewriteBlock(req: ClientRequest, block: string, edited: string): void {
  const queued = queuedBlock(req);
  (req as unknown as HeaderBlock)._header = edited;
  if (queued === undefined) return;
  queued.data = `${edited}${queued.data.slice(block.length)}`;
  const r = req as unknown as HeaderBlock;
  if (typeof r.outputSize === "number")
    r.outputSize += edited.length - block.length;
}

/**
 * A request whose header block was written where it cannot be edited
 * (kept otherwise than Node 22 and 24 keep it): if the block carries
 * `name` other than as `value` (at all when undefined), or cannot be
 * read, the request is destroyed rather than let the header go.
 */
function refuseUneditable(
  req: ClientRequest,
  name: string,
  value: string | undefined,
): void {
  const header = (req as unknown as HeaderBlock)._header;
  if (
    req.destroyed ||
    (typeof header === "string" && blockKeeps(header, name, value))
  )
    return;
  diag.warnCollapsed(
    "http-client-block",
    `an outgoing request was destroyed before it was sent: its ${name} header could not be taken out of its header block`,
  );
  req.destroy();
}

const clientHeaders = prepareHeaderWriter<ClientRequest>({
  set: (req, name, value) => {
    if (!req.headersSent) {
      req.setHeader(name, value);
      return;
    }
    const block = unsentBlock(req);
    if (block?.endsWith("\r\n\r\n") && !/[\r\n]/.test(value))
      rewriteBlock(
        req,
        block,
        `${withoutHeaderLines(block, name).slice(0, -2)}${name}: ${value}\r\n\r\n`,
      );
  },
  remove: (req, name) => {
    if (!req.headersSent) {
      if (req.hasHeader(name)) req.removeHeader(name);
      return;
    }
    const block = unsentBlock(req);
    if (block === undefined) refuseUneditable(req, name, undefined);
    else rewriteBlock(req, block, withoutHeaderLines(block, name));
  },
  removeUnless: (req, name, value) => {
    if (!req.headersSent) {
      const set = req.getHeader(name);
      if (
        set === undefined ||
        ((typeof set === "string" || typeof set === "number") &&
          String(set) === value)
      )
        return;
      req.removeHeader(name);
      return;
    }
    const block = unsentBlock(req);
    if (block === undefined) refuseUneditable(req, name, value);
    else if (!blockKeeps(block, name, value))
      rewriteBlock(req, block, withoutHeaderLines(block, name));
  },
});

/**
 * Keeps what the propagators wrote on a request, and the headers that must
 * not leave for its host, out of reach of the application once the request
 * is made: a `setHeader`, `setHeaders` or `appendHeader` of one of the
 * names the request carries under GUARDED is ignored. A handler that
 * forwards its own request's headers would otherwise send a stale
 * `traceparent` (orphaning our client span) and its caller's `baggage`,
 * customer id included, in place of ours. The names in `judged` (the Host
 * header, the customer header) are among those names too, but set, and
 * then `onJudged` judges the request with the header as it is now, as it
 * would have been judged had the request been made with it. One wrapper on
 * the prototype, installed at enable, rather than closures per request: a
 * traced request pays one property store, and every setHeader or
 * appendHeader call (Node's own, as a request is made, included) one
 * property read more.
 */
function guardClientHeaders(
  proto: Record<string, unknown>,
  restore: Array<() => void>,
  judged: ReadonlySet<string>,
  onJudged: (request: TracedClientRequest, name: string) => void,
): void {
  type SetHeader = (
    this: TracedClientRequest,
    name: string,
    value: unknown,
  ) => unknown;
  for (const method of ["setHeader", "appendHeader"])
    replaceMethod<SetHeader>(
      proto,
      method,
      (original) =>
        function (this: TracedClientRequest, name, value) {
          const names = this[GUARDED];
          if (names !== undefined) {
            const lower = String(name).toLowerCase();
            if (names.has(lower)) {
              if (!judged.has(lower)) return this;
              const result = original.call(this, name, value);
              onJudged(this, lower);
              return result;
            }
          }
          return original.call(this, name, value);
        },
      restore,
    );
}

/**
 * Trailers are headers sent after the body (`addTrailers`, on a chunked
 * request): a request's lose what its headers do, the guarded names its
 * destination may not get as the application set them (GUARDED; the Host
 * header is no trailer's business and goes as it is). A name `keeps` says
 * yes to is kept: the customer header, as its value is judged. Given as
 * an object or as an array of name-value pairs, as Node takes them.
 */
function guardClientTrailers(
  proto: Record<string, unknown>,
  restore: Array<() => void>,
  keeps: (
    request: TracedClientRequest,
    name: string,
    value: unknown,
  ) => boolean,
): void {
  type AddTrailers = (this: TracedClientRequest, headers: unknown) => unknown;
  replaceMethod<AddTrailers>(
    proto,
    "addTrailers",
    (original) =>
      function (this: TracedClientRequest, headers) {
        const names = this[GUARDED];
        if (
          names === undefined ||
          typeof headers !== "object" ||
          headers === null
        )
          return original.call(this, headers);
        const kept = (name: unknown, value: unknown) => {
          const lower = String(name).toLowerCase();
          return (
            lower === "host" || !names.has(lower) || keeps(this, lower, value)
          );
        };
        if (Array.isArray(headers))
          return original.call(
            this,
            headers.filter(
              (pair: unknown) =>
                !Array.isArray(pair) || kept(pair[0], pair[1] as unknown),
            ),
          );
        const given = headers as Record<string, unknown>;
        const filtered: Record<string, unknown> = {};
        for (const name of Object.keys(given))
          if (kept(name, given[name])) filtered[name] = given[name];
        return original.call(this, filtered);
      },
    restore,
  );
}

// Node keeps the authority a request was made for (host, and port when not
// the default) under a symbol of its own; found once, on the first request
// that has no Host header.
let authorityKey: symbol | undefined;

/** The `host[:port]` a request was made for, where Node tells. */
function authorityOf(request: ClientRequest): string | undefined {
  authorityKey ??= ownSymbolNamed(request, "kAuthority");
  if (authorityKey === undefined) return undefined;
  const authority = (request as unknown as Record<symbol, unknown>)[
    authorityKey
  ];
  return typeof authority === "string" ? authority : undefined;
}

// The request Node last handed an agent, with the port it worked out for
// it: the request's own, else the default port its options or its agent
// give. Nothing on the request keeps a default port its options gave, and
// the Host header leaves the port out when it is the default one (as may
// an application's own); Node hands the request to its agent just before
// it publishes it. Two stores per request, no allocation.
let handedRequest: object | undefined;
let handedPort: unknown;

/**
 * Keeps the port of each request handed to an agent of Node's kind (their
 * `addRequest`, which every `http.Agent` and `https.Agent` inherits), for
 * the request's judging to take.
 */
function watchAgentPorts(
  proto: Record<string, unknown>,
  restore: Array<() => void>,
): void {
  type AddRequest = (this: unknown, ...args: unknown[]) => unknown;
  replaceMethod<AddRequest>(
    proto,
    "addRequest",
    (original) =>
      function (
        this: unknown,
        req: object,
        options: unknown,
        port: unknown, // the legacy addRequest(req, host, port)
      ): unknown {
        handedRequest = req;
        handedPort =
          typeof options === "object" && options !== null
            ? (options as { port?: unknown }).port
            : port;
        return Reflect.apply(original, this, arguments as unknown as unknown[]);
      } as AddRequest,
    restore,
  );
  restore.push(() => {
    handedRequest = undefined;
  });
}

/**
 * Where each plain-HTTP socket handed to a request went before the first
 * request on it: to a proxy, when it had carried bytes already (a CONNECT
 * or SOCKS handshake its agent made), or nowhere but its destination
 * (null). Kept for the requests a kept-alive socket carries after the
 * first, when the bytes it carried are theirs.
 */
const relays = new WeakMap<object, ClientRequestInfo["via"] | null>();

/** The proxy a plain-HTTP socket relays through, if it does (see `relays`). */
function relayOf(socket: object): ClientRequestInfo["via"] | undefined {
  let via = relays.get(socket);
  if (via === undefined) {
    // Over TLS the proxy reads nothing; TLS's own handshake is no relay's.
    via =
      (socket as { encrypted?: unknown }).encrypted === true
        ? null
        : (relayingProxy(socket) ?? null);
    relays.set(socket, via);
  }
  return via ?? undefined;
}

/**
 * Has `onHanded` told of each socket handed to a request (by its agent, or
 * its `createConnection`), before the request writes anything to it.
 */
function watchHandedSockets(
  proto: Record<string, unknown>,
  restore: Array<() => void>,
  onHanded: (request: TracedClientRequest, socket: object) => void,
): void {
  type OnSocket = (this: TracedClientRequest, ...args: unknown[]) => unknown;
  replaceMethod<OnSocket>(
    proto,
    "onSocket",
    (original) =>
      function (
        this: TracedClientRequest,
        socket: unknown,
        err: unknown,
      ): unknown {
        if (
          err == null &&
          typeof socket === "object" &&
          socket !== null &&
          this.protocol === "http:"
        )
          onHanded(this, socket);
        return Reflect.apply(original, this, arguments as unknown as unknown[]);
      } as OnSocket,
    restore,
  );
}

/**
 * The port a request connects to: the one Node handed its agent, else one
 * its authority states (Node 24 keeps it; Node 22 writes it into the Host
 * header, which is read when it names the host connected to). Undefined
 * where that cannot be told (a default port given another way), which
 * meets any rule for its host.
 */
function connectedPort(request: TracedClientRequest): number | undefined {
  let port: number;
  if (handedRequest === request) {
    handedRequest = undefined;
    port = Number(handedPort);
  } else {
    const stated = parseHostAndPort(
      authorityOf(request as ClientRequest) ?? hostHeaderValue(request),
      0,
    );
    if (stated.address === undefined || !sameHost(stated.address, request.host))
      return undefined;
    port = stated.port;
  }
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** A request's Host header, as set or written (its authority when it has none). */
function hostHeaderValue(request: TracedClientRequest): string | undefined {
  // One set as a string, nearly every request's: no list made.
  const set = request.getHeader("host");
  if (typeof set === "string") return set;
  const values = hostHeaderValues(request);
  // Several (set as an array, or appended to): the first naming another
  // host than the one connected to, which a gateway may route on.
  return (
    values.find(
      (v) => !sameHost(parseHostAndPort(v, 0).address ?? v, request.host),
    ) ?? values[0]
  );
}

/** Each Host header a request has, as set or written (its authority when it has none). */
function hostHeaderValues(request: TracedClientRequest): string[] {
  const set = request.getHeader("host");
  if (Array.isArray(set)) return set.map(String);
  if (set !== undefined) return [String(set)];
  const block = unsentBlock(request as ClientRequest);
  const written =
    block === undefined
      ? undefined
      : /\r\nhost:[ \t]*([^\r]*)/i.exec(block)?.[1]?.trim();
  const host = written ?? authorityOf(request as ClientRequest);
  return host === undefined ? [] : [host];
}

/** The host and port the request's Host header names (its authority when it has none). */
function hostHeaderOf(
  request: TracedClientRequest,
  scheme: "http" | "https",
): HostAndPort {
  return hostAndPort(hostHeaderValue(request), scheme === "https" ? 443 : 80);
}

// Node's http.Agent keeps the proxy it reaches through NODE_USE_ENV_PROXY,
// --use-env-proxy or its proxyEnv option under a symbol of its own (the
// proxy's URL, NO_PROXY entries, and where to connect); found once.
let proxyConfigKey: symbol | undefined;

/**
 * The proxy an absolute-form request made for its destination's own host
 * goes through. Node's env proxy rewrites a request's path so when its
 * agent has one; another agent doing the same (a proxy agent package) goes
 * to a proxy that cannot be named.
 */
function proxyOfAgent(agent: unknown): NonNullable<ClientRequestInfo["via"]> {
  if (typeof agent !== "object" || agent === null) return UNKNOWN_PROXY_VIA;
  proxyConfigKey ??= ownSymbolNamed(agent, "kProxyConfig");
  if (proxyConfigKey === undefined) return UNKNOWN_PROXY_VIA;
  const config = (agent as Record<symbol, unknown>)[proxyConfigKey] as
    | { proxyConnectionOptions?: { host?: unknown; port?: unknown } }
    | null
    | undefined;
  const to = config?.proxyConnectionOptions;
  return typeof to?.host === "string" && typeof to.port === "number"
    ? { host: to.host, port: to.port }
    : UNKNOWN_PROXY_VIA;
}

/**
 * Where a request goes, connecting to `port`. Sent to a forward proxy, its
 * path names the destination (`http://host/path`, or `host:port` to open a
 * tunnel), and `request.host` is the proxy.
 */
function destinationOf(
  request: TracedClientRequest,
  scheme: "http" | "https",
  port: number | undefined,
): Pick<
  ClientRequestInfo,
  "scheme" | "host" | "port" | "path" | "via" | "named"
> {
  const path = request.path;
  if (request.method === "CONNECT") {
    const target = parseHostAndPort(path, scheme === "https" ? 443 : 80);
    return {
      scheme,
      host: target.address ?? request.host,
      port: target.port,
      path: "",
      via: { host: request.host, port },
    };
  }
  const target = absoluteFormTarget(path);
  if (target !== undefined)
    return {
      ...target,
      via: sameHost(target.host, request.host)
        ? proxyOfAgent((request as { agent?: unknown }).agent)
        : { host: request.host, port },
    };
  // The Host header says only which host the request names, not the port
  // it connects to: Node leaves a default port out of it.
  const named = hostHeaderOf(request, scheme);
  if (named.address === undefined || sameHost(named.address, request.host))
    return { scheme, host: request.host, port, path };
  // The Host header names another host than the one connected to (an
  // egress gateway routing on it, say): judged by both.
  return {
    scheme,
    host: request.host,
    port,
    path,
    named: { host: named.address, port: named.port },
  };
}

/**
 * A request target's path and query: an absolute-form target
 * (`GET http://host/path`, as proxies are sent) without its scheme and host.
 */
function originForm(url: string | undefined): string {
  if (url === undefined) return "/";
  if (url.charCodeAt(0) === 0x2f) return url; // "/": nearly every request
  const scheme = url.indexOf("://");
  if (scheme === -1) return url;
  const slash = url.indexOf("/", scheme + 3);
  return slash === -1 ? "/" : url.slice(slash);
}

export class HttpInstrumentation implements Instrumentation {
  readonly name = NAME;
  readonly #config: HttpInstrumentationConfig;
  readonly #inbound: InboundTrust;
  readonly #egress: EgressPolicy;
  readonly #customerHeader: string;
  #tracer: Tracer | undefined;
  #enabled = false;
  #probeHits = 0;
  /** Express was loaded before Threadline: its route templates are partial. */
  #expressLate = false;
  readonly #restore: Array<() => void> = [];
  /** The headers a request keeps from late changes (see guardClientHeaders). */
  readonly #guarded: GuardedHeaderNames;
  /** Those of them that are set late, and then judged. */
  readonly #judged: ReadonlySet<string>;
  readonly #ignoredExact: ReadonlySet<string>;
  readonly #ignoredPrefixes: readonly string[];

  constructor(config: HttpInstrumentationConfig = {}) {
    this.#config = config;
    this.#inbound = config.inbound ?? new InboundTrust();
    this.#egress =
      config.egress ??
      new EgressPolicy(
        config.customerHeader === undefined
          ? {}
          : { customerHeader: config.customerHeader },
      );
    // Guarded so that one set late is seen (guardClientHeaders).
    this.#judged = new Set(["host", this.#egress.customerHeader]);
    this.#guarded = new GuardedHeaderNames(this.#egress.privateHeaders, [
      ...this.#judged,
    ]);
    this.#customerHeader = (
      config.customerHeader ?? "x-customer-id"
    ).toLowerCase();
    const ignored = config.ignoreIncomingPaths ?? [];
    this.#ignoredExact = new Set(ignored.filter((p) => !p.endsWith("*")));
    this.#ignoredPrefixes = ignored
      .filter((p) => p.endsWith("*"))
      .map((p) => p.slice(0, -1));
  }

  #ignored(url: string | undefined): boolean {
    if (this.#ignoredExact.size === 0 && this.#ignoredPrefixes.length === 0)
      return false;
    const u = originForm(url);
    const q = u.indexOf("?");
    const path = q === -1 ? u : u.slice(0, q);
    if (this.#ignoredExact.has(path)) return true;
    for (const p of this.#ignoredPrefixes) if (path.startsWith(p)) return true;
    return false;
  }

  #getTracer(): Tracer {
    this.#tracer ??= (
      this.#config.tracerProvider ?? trace.getTracerProvider()
    ).getTracer(NAME, VERSION);
    return this.#tracer;
  }

  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    this.#tracer = undefined;
    const http = process.getBuiltinModule("node:http");
    this.#wrapServer(
      http.Server.prototype as unknown as Record<string, unknown>,
      "http",
    );
    this.#wrapHttpsWhenLoaded();
    this.#bindEvents(
      http.IncomingMessage.prototype as unknown as Record<string, unknown>,
    );
    this.#bindEvents(
      http.ServerResponse.prototype as unknown as Record<string, unknown>,
    );
    process.on("uncaughtExceptionMonitor", onUncaught);
    this.#restore.push(() =>
      process.removeListener("uncaughtExceptionMonitor", onUncaught),
    );
    const express = hookExpressLayers();
    this.#restore.push(express.unhook);
    this.#expressLate = express.late;
    this.#restore.push(subscribeFastifyRoutes(fastifyRouteHolder));
    guardClientHeaders(
      http.ClientRequest.prototype as unknown as Record<string, unknown>,
      this.#restore,
      this.#judged,
      (request, name) =>
        name === "host"
          ? this.#onLateHost(request)
          : this.#onLateCustomer(request, name),
    );
    watchAgentPorts(
      http.Agent.prototype as unknown as Record<string, unknown>,
      this.#restore,
    );
    watchHandedSockets(
      http.ClientRequest.prototype as unknown as Record<string, unknown>,
      this.#restore,
      (request, socket) => this.#onSocket(request, socket),
    );
    guardClientTrailers(
      http.ClientRequest.prototype as unknown as Record<string, unknown>,
      this.#restore,
      (request, name, value) => {
        if (name !== this.#egress.customerHeader) return false;
        const judged = request[CLIENT_EGRESS];
        return (
          judged?.egress.baggage === true &&
          judged.customer !== undefined &&
          value === judged.customer
        );
      },
    );
    const created = (msg: unknown) =>
      this.#onClientCreated((msg as { request: TracedClientRequest }).request);
    const response = (msg: unknown) =>
      this.#onClientResponse(
        msg as { request: TracedClientRequest; response: IncomingMessage },
      );
    const error = (msg: unknown) =>
      this.#onClientError(
        msg as { request: TracedClientRequest; error: unknown },
      );
    subscribe("http.client.request.created", created);
    subscribe("http.client.response.finish", response);
    subscribe("http.client.request.error", error);
    this.#restore.push(() => {
      unsubscribe("http.client.request.created", created);
      unsubscribe("http.client.response.finish", response);
      unsubscribe("http.client.request.error", error);
    });
  }

  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    for (const undo of this.#restore.splice(0)) undo();
  }

  selfCheck(): string[] {
    if (!this.#enabled) return [];
    const problems: string[] = [];
    if (this.#expressLate) problems.push(lateLoadProblem("express"));
    for (const name of ["http", "https"] as const) {
      // An https never loaded has nothing to check yet (see enable()); one
      // loaded but waiting for a server to listen is wrapped now.
      if (name === "https" && !this.#wrapHttpsIfLoaded()) continue;
      const mod = process.getBuiltinModule(`node:${name}`);
      const before = this.#probeHits;
      try {
        const server = new (
          mod.Server as unknown as new () => { emit(event: symbol): boolean }
        )();
        server.emit(PROBE);
      } catch {
        // a failing probe counts as not reached
      }
      if (this.#probeHits === before) {
        problems.push(
          `incoming ${name} requests are not traced: ${name}.Server.prototype.emit was replaced after Threadline started`,
        );
      }
    }
    return problems;
  }

  /**
   * A server request's and its response's events run in the request's
   * context, whatever set them off: with pipelining, one request's
   * `res.end()` finishes the next one's queued response, and a body's later
   * chunks arrive in the connection's context. Listeners (pino-http's
   * "request completed" line, an upload's `data` handler) then log and call
   * out for the request they belong to. One wrapper on each prototype; a
   * request's emit that is already in its context costs a comparison.
   */
  #bindEvents(proto: Record<string, unknown>): void {
    if ((proto["emit"] as { [WRAPPED]?: boolean })[WRAPPED] === true) return;
    replaceMethod<Emit>(
      proto,
      "emit",
      (original) =>
        markWrapped(function threadlineBoundEmit(this: {
          [REQUEST_CONTEXT]?: Context;
        }): boolean {
          const ctx = this[REQUEST_CONTEXT];
          const args = arguments as unknown as Parameters<Emit>;
          if (ctx === undefined || context.active() === ctx)
            return Reflect.apply(original, this, args);
          return context.with(ctx, () => Reflect.apply(original, this, args));
        } as Emit),
      this.#restore,
    );
  }

  /**
   * https servers are traced by the same wrapper on `https.Server`, but
   * node:https loads node:tls and its secure-context machinery, about 4 MB
   * of memory in a service that serves and calls plain http only. So the
   * module is only taken once the application has loaded it: now, or when a
   * server first starts listening after that (every https server listens
   * before its first request; Node publishes the listen before anything
   * else happens, so that request is traced too).
   */
  #wrapHttpsWhenLoaded(): void {
    if (this.#wrapHttpsIfLoaded()) return;
    subscribe(LISTEN_CHANNEL, this.#onListen);
    // unsubscribe() of a handler no longer subscribed does nothing.
    this.#restore.push(() => unsubscribe(LISTEN_CHANNEL, this.#onListen));
  }

  readonly #onListen = () => void this.#wrapHttpsIfLoaded();

  /** Wraps `https.Server` if node:https is loaded (once; then stops waiting for it). */
  #wrapHttpsIfLoaded(): boolean {
    if (!builtinLoaded("https")) return false;
    unsubscribe(LISTEN_CHANNEL, this.#onListen);
    this.#wrapServer(
      process.getBuiltinModule("node:https").Server
        .prototype as unknown as Record<string, unknown>,
      "https",
    );
    return true;
  }

  #wrapServer(proto: Record<string, unknown>, scheme: "http" | "https"): void {
    if ((proto["emit"] as { [WRAPPED]?: boolean })[WRAPPED] === true) return;
    const self = this;
    replaceMethod<Emit>(
      proto,
      "emit",
      (original) =>
        markWrapped(function threadlineEmit(
          this: Server,
          event: string | symbol,
          req?: unknown,
          res?: unknown,
        ): boolean {
          // checkContinue and checkExpectation stand in for "request" when the
          // application listens for them (Expect: headers); an upgrade's
          // second argument is the socket.
          if (
            (event === "request" ||
              event === "checkContinue" ||
              event === "checkExpectation" ||
              event === "upgrade") &&
            self.#enabled &&
            req !== undefined &&
            res !== undefined
          )
            return self.#handleRequest(
              this,
              original,
              arguments as unknown as unknown[],
              req as IncomingMessage,
              res as StatefulResponse | UpgradedSocket,
              scheme,
              event === "upgrade",
            );
          if (event === PROBE) {
            self.#probeHits++;
            return false;
          }
          return original.apply(
            this,
            arguments as unknown as [string | symbol, ...unknown[]],
          );
        } as Emit),
      this.#restore,
    );
  }

  /**
   * The customer id the request itself names: the application's own
   * `customerFromRequest` (it authenticates), else the customer header, read
   * at the edge and from trusted callers only. An internal service must not
   * take from an untrusted caller in a header what it refuses in baggage.
   */
  #customerOf(req: IncomingMessage, trusted: boolean): string | undefined {
    const fn = this.#config.customerFromRequest;
    if (fn !== undefined) {
      let id: unknown;
      try {
        id = fn(req);
      } catch (err) {
        diag.warnCollapsed(
          "customer-source",
          `customerFromRequest threw: ${(err as Error).message}; the request has no customer id`,
        );
        return undefined;
      }
      if (id === undefined || id === "") return undefined;
      return typeof id === "string"
        ? checkedCustomerId(id)
        : sourcedCustomerId(id);
    }
    if (!trusted && !this.#inbound.edge) return undefined;
    const v = req.headers[this.#customerHeader];
    return typeof v === "string" ? v : undefined;
  }

  /**
   * A request (`res`, its response), or an upgrade request (a WebSocket
   * handshake, `res` its socket): its SERVER span starts and the listeners
   * run in its context. An upgrade's span covers the handshake, ending when
   * the application answers on the socket (the status line it writes) or
   * the socket closes unanswered, so the handshake's own work (checking a
   * token, loading a session) belongs to the request and its customer.
   */
  #handleRequest(
    server: Server,
    original: Emit,
    args: unknown[],
    req: IncomingMessage,
    res: StatefulResponse | UpgradedSocket,
    scheme: "http" | "https",
    upgrade: boolean,
  ): boolean {
    // Already traced: a checkContinue listener handing on to "request".
    if (res[STATE] !== undefined)
      return original.apply(server, args as [string | symbol, ...unknown[]]);
    if (
      // Injected in process (Fastify's injectWS emits an upgrade request
      // that is a plain object): no connection, no caller to judge.
      req.socket === undefined ||
      req.socket === null ||
      this.#ignored(req.url) ||
      (server as unknown as Record<symbol, unknown>)[UNTRACED_SERVER] === true
    )
      return emitUntraced(server, original, args, req, res, upgrade);
    let state: ServerState;
    try {
      state = this.#startServer(server, req, scheme);
      res[STATE] = state;
      state.holder = res;
      state.upgrade = upgrade;
      trackOpen(state);
      (req as { [REQUEST_CONTEXT]?: Context })[REQUEST_CONTEXT] = state.ctx;
      if (upgrade) {
        watchHandshake(res as UpgradedSocket);
      } else {
        (res as { [REQUEST_CONTEXT]?: Context })[REQUEST_CONTEXT] = state.ctx;
        res.on("close", onResponseClose);
      }
    } catch (err) {
      diag.warnCollapsed(
        "http-server",
        `could not trace an incoming request: ${(err as Error).message}`,
      );
      return original.apply(server, args as [string | symbol, ...unknown[]]);
    }
    // Let through, not caught and thrown again: Node's report of a crash
    // quotes the line of the last throw, which would be this one instead of
    // the application's.
    let returned = false;
    try {
      // A closure rather than the arguments handed on: spreading an
      // arguments object through the context API's layers takes V8's slow
      // path, three times per request.
      const result = context.with(state.ctx, () =>
        original.apply(server, args as [string | symbol, ...unknown[]]),
      );
      returned = true;
      return result;
    } finally {
      if (!returned) listenerThrew(state);
    }
  }

  /** Starts a request's SERVER span, in the context its headers and caller give it. */
  #startServer(
    server: Server,
    req: IncomingMessage,
    scheme: "http" | "https",
  ): ServerState {
    const socket = req.socket as unknown as TrustedSocket;
    let trusted = socket[TRUST];
    if (trusted === undefined) {
      socket[UNIX] = socket.remoteAddress === undefined && onUnixSocket(server);
      trusted = this.#inbound.trusts(socket.remoteAddress, socket[UNIX]);
      socket[TRUST] = trusted;
    }
    const headers = req.headers;
    let ctx = propagation.extract(
      EMPTY_CONTEXT,
      headers,
      trusted ? trustedGetter : untrustedGetter,
    );
    // A caller that is not trusted would choose the trace id and whether it
    // is sampled: linked to, its trace is left its own.
    let caller: SpanContext | undefined;
    if (!trusted && this.#inbound.linkUntrusted) {
      caller = trace.getSpanContext(ctx);
      if (caller !== undefined) ctx = trace.deleteSpan(ctx);
    }
    if (getCustomerFromContext(ctx) === undefined) {
      const customer = this.#customerOf(req, trusted);
      if (customer !== undefined) ctx = setCustomerInContext(ctx, customer);
    }
    const { method, original: methodOriginal } = normalizeMethod(req.method);
    const url = originForm(req.url);
    const q = url.indexOf("?");
    const { address, port } = hostAndPort(
      headers.host,
      scheme === "https" ? 443 : 80,
    );
    // A request without X-Forwarded-For costs nothing more; with one,
    // whether its peer is a proxy is judged once per connection.
    let client = socket.remoteAddress;
    const forwarded = headers["x-forwarded-for"];
    if (typeof forwarded === "string") {
      let proxy = socket[PROXY];
      if (proxy === undefined) {
        proxy = this.#inbound.trustsProxy(client, socket[UNIX]);
        socket[PROXY] = proxy;
      }
      if (proxy) client = this.#inbound.forwardedClient(forwarded, client);
    }
    // Literal keys (the semantic conventions' names): computed ones make V8
    // define each property through the runtime.
    const attributes: Attributes = {
      "http.request.method": method,
      "url.path": q === -1 ? url : url.slice(0, q),
      "url.scheme": scheme,
      "server.address": address,
      "server.port": port,
      "network.peer.address": socket.remoteAddress,
      "network.peer.port": socket.remotePort,
      "client.address": client,
      "network.protocol.version": req.httpVersion,
    };
    // Set only when sent (service-to-service calls often send none): an
    // undefined value would send the span's start down its careful,
    // key-by-key attribute copy.
    const userAgent = headers["user-agent"];
    if (userAgent !== undefined)
      attributes[semconv.ATTR_USER_AGENT_ORIGINAL] = userAgent;
    if (q !== -1)
      attributes[semconv.ATTR_URL_QUERY] = redactQuery(url.slice(q + 1));
    if (methodOriginal !== undefined)
      attributes[semconv.ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = methodOriginal;
    const name = method === "_OTHER" ? "HTTP" : method;
    const span = this.#getTracer().startSpan(
      name,
      caller === undefined
        ? { kind: SpanKind.SERVER, attributes }
        : {
            kind: SpanKind.SERVER,
            attributes,
            links: [{ context: caller }],
          },
      ctx,
    );
    const state: ServerState = {
      route: undefined,
      span,
      req,
      method,
      start: performance.now(),
      scheme,
      version: req.httpVersion,
      holder: undefined,
      upgrade: false,
      newer: undefined,
      older: undefined,
      ctx,
      threw: false,
    };
    state.ctx = contextWithRouteHolder(trace.setSpan(ctx, span), state);
    return state;
  }

  /**
   * The process is ending with these requests in progress: each is
   * recorded as the failure it is (an `aborted` error, with its route and
   * the status code if one was sent) in `http.server.request.duration` and
   * on its span, which is left for the SDK to end with the other open
   * spans, marked with `reason`. Without this, a crash or a redeploy would
   * take the requests it failed out of the request and error-rate metrics.
   * A response already answered in full (see handedOver) is no failure:
   * only its 'close' was still to come, and it is finished as that would.
   */
  endUnfinished(_reason: string, message: string): number {
    let n = 0;
    for (let state = oldestOpen; state !== undefined; state = oldestOpen) {
      untrackOpen(state);
      const holder = state.holder;
      if (holder !== undefined) holder[STATE] = undefined;
      const route = state.route ?? expressRoute(state.req);
      const res = holder as StatefulResponse;
      // An answered one is finished as its 'close' would have; the others
      // are left open for the SDK to end with the rest.
      if (!state.upgrade && handedOver(res))
        finishServer(state, route, res.statusCode, undefined);
      else
        recordServer(
          state,
          route,
          state.upgrade ? undefined : statusSent(res),
          message,
        );
      n++;
    }
    return n;
  }

  #onClientCreated(request: TracedClientRequest): void {
    if (!this.#enabled) return;
    try {
      const ctx = context.active();
      const info: ClientRequestInfo = {
        method: request.method,
        ...destinationOf(
          request,
          request.protocol === "https:" ? "https" : "http",
          connectedPort(request),
        ),
      };
      info.via ??= request[RELAYED_BY];
      if (isTracingSuppressed(ctx)) {
        const judged = judgeUntracedRequest(
          this.#egress,
          ctx,
          info,
          request as ClientRequest,
          clientHeaders,
        );
        request[CLIENT_EGRESS] = judged;
        request[GUARDED] = this.#guarded.for(judged.egress.baggage, false);
        return;
      }
      const started = startClientSpan(
        this.#getTracer(),
        this.#egress,
        ctx,
        info,
        request as ClientRequest,
        clientHeaders,
      );
      request[CLIENT_SPAN] = started.span;
      request[CLIENT_CALL] = started.call;
      request[CLIENT_EGRESS] = started;
      if (started.egress.thirdParty !== undefined) request[THIRD_PARTY] = true;
      request[GUARDED] = this.#guarded.for(started.egress.baggage);
      request.on("close", onClientClose);
    } catch (err) {
      diag.warnCollapsed(
        "http-client",
        `could not trace an outgoing request: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A Host header set after the request was made, before it was sent,
   * naming another host than the one connected to (an egress gateway
   * routing on it): judged by that host too, as one given when the request
   * was made. Baggage and the private headers go unless it is internal, and
   * a third party it names is the one the call is to. (The span keeps the
   * `server.port` it was started with.) A request made with tracing
   * suppressed has no span, and is judged all the same.
   */
  #onLateHost(request: TracedClientRequest): void {
    try {
      const judged = request[CLIENT_EGRESS];
      if (judged === undefined) return;
      const scheme = request.protocol === "https:" ? "https" : "http";
      const span = request[CLIENT_SPAN];
      const attributes: Attributes = {};
      // Every host it names, when it is set several times: which one a
      // gateway routes on is its own affair.
      let named = false;
      for (const value of hostHeaderValues(request)) {
        const { address, port } = hostAndPort(
          value,
          scheme === "https" ? 443 : 80,
        );
        if (address === undefined || sameHost(address, request.host)) continue;
        named = true;
        judgeNamedHost(
          this.#egress,
          judged,
          { host: address, port },
          attributes,
          request[CLIENT_CALL]?.attributes,
          request as ClientRequest,
          clientHeaders.remove,
        );
      }
      if (!named) return;
      span?.setAttributes(attributes);
      if (!judged.egress.baggage)
        request[GUARDED] = this.#guarded.for(false, span !== undefined);
      if (judged.egress.thirdParty !== undefined) request[THIRD_PARTY] = true;
    } catch (err) {
      diag.warnCollapsed(
        "http-client",
        `could not judge a request's Host header: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A socket handed to a request that relays through a proxy (a tunnel its
   * agent opened, as proxy agent packages do, plain HTTP in clear to the
   * proxy): the request keeps its baggage and private headers only if the
   * proxy is internal too. Nothing of the request is written yet.
   */
  #onSocket(request: TracedClientRequest, socket: object): void {
    try {
      const via = relayOf(socket);
      if (via === undefined) return;
      const judged = request[CLIENT_EGRESS];
      // A kept-alive socket is handed over as the request is made, before
      // it is judged: it is judged with the proxy then.
      if (judged === undefined) {
        request[RELAYED_BY] = via;
        return;
      }
      if (
        judgeRelay(
          this.#egress,
          judged,
          via,
          request as ClientRequest,
          clientHeaders.remove,
        )
      )
        request[GUARDED] = this.#guarded.for(
          false,
          request[CLIENT_SPAN] !== undefined,
        );
    } catch (err) {
      diag.warnCollapsed(
        "http-client",
        `could not judge the socket an outgoing request was given: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A customer header set after the request was made, before it was sent:
   * kept only as the one a request made with it would keep, naming the
   * customer of the context the request was made in, to an internal host.
   */
  #onLateCustomer(request: TracedClientRequest, name: string): void {
    try {
      const judged = request[CLIENT_EGRESS];
      clientHeaders.removeUnless(
        request as ClientRequest,
        name,
        judged?.egress.baggage === true ? judged.customer : undefined,
      );
    } catch (err) {
      diag.warnCollapsed(
        "http-client",
        `could not judge a request's customer header: ${(err as Error).message}`,
      );
    }
  }

  #onClientResponse({
    request,
    response,
  }: {
    request: TracedClientRequest;
    response: IncomingMessage;
  }): void {
    const span = request[CLIENT_SPAN];
    if (span === undefined) return;
    const call = request[CLIENT_CALL];
    recordProtocolVersion(span, response.httpVersion, call);
    if (response.statusCode !== undefined)
      recordClientResponse(span, response.statusCode, call);
    if (request[THIRD_PARTY] === true)
      recordRateLimitHeaders(span, headerPairs(response.headers), call);
  }

  #onClientError({
    request,
    error,
  }: {
    request: TracedClientRequest;
    error: unknown;
  }): void {
    const span = request[CLIENT_SPAN];
    if (span === undefined) return;
    request[CLIENT_SPAN] = undefined;
    request[CLIENT_EGRESS] = undefined;
    const call = request[CLIENT_CALL];
    request[CLIENT_CALL] = undefined;
    recordClientError(span, error, call);
    span.end();
    finishClientCall(call);
  }
}

/**
 * A string `customerFromRequest` returned, when it is a customer id; when
 * not, every request the application names that way loses its customer, and
 * it is told why, once. The warning does not quote it: a string that fails
 * is as likely as not a person's name or e-mail address.
 */
function checkedCustomerId(id: string): string | undefined {
  const length = id.length;
  if (isValidCustomerId(id)) return id;
  if (length > MAX_CUSTOMER_ID_LENGTH)
    diag.warnOnce(
      "customer-source-length",
      `customerFromRequest returned an id of ${length} characters; a customer id has at most ${MAX_CUSTOMER_ID_LENGTH}: these requests have no customer id`,
    );
  else
    diag.warnOnce(
      "customer-source-characters",
      "customerFromRequest returned a string with characters a customer id cannot hold (it is printable ASCII without spaces, quotes, commas, semicolons or backslashes; two copies of a header arrive joined with a comma): these requests have no customer id",
    );
  return undefined;
}

/**
 * A customer id `customerFromRequest` returned as something other than a
 * string: an integer (a database key) as its decimal digits, as long as
 * they are no more than a customer id can hold; anything
 * else, a promise above all (the request's context is made before an
 * asynchronous lookup could answer), is no id, and said so once.
 */
function sourcedCustomerId(id: unknown): string | undefined {
  if (typeof id === "bigint") return checkedCustomerId(String(id));
  const integer = customerIdOf(id);
  if (integer !== undefined) return integer;
  if (id === null) return undefined;
  if (typeof (id as { then?: unknown }).then === "function") {
    // Dropped here, its rejection would be ours to leave unhandled.
    Promise.resolve(id).catch(() => {});
    diag.warnOnce(
      "customer-source-promise",
      "customerFromRequest returned a promise; it must return the customer id synchronously, as a string (or undefined): these requests have no customer id",
    );
    return undefined;
  }
  diag.warnOnce(
    "customer-source-type",
    `customerFromRequest returned ${typeof id === "number" ? `the number ${id}` : `a value of type ${typeof id}`}; it must return the customer id as a string (or undefined): these requests have no customer id`,
  );
  return undefined;
}

/**
 * Whether `server` listens on a unix socket, which only this host can
 * reach, its file's permissions saying who. A Windows named pipe, the
 * same call there, also takes callers from other hosts.
 */
function onUnixSocket(server: Server): boolean {
  return process.platform !== "win32" && typeof server.address() === "string";
}

/**
 * A request not traced (an ignored path, a server of Threadline's own, one
 * injected with no connection) belongs to no request: its listener, and its
 * and its response's events, run in the empty context. Left to the context
 * that set them off, they ran in another request's on a pipelined
 * connection, whose answer lets the next one's go, and logged with its trace
 * and customer.
 */
function emitUntraced(
  server: Server,
  original: Emit,
  args: unknown[],
  req: IncomingMessage,
  res: ServerResponse | Duplex,
  upgrade: boolean,
): boolean {
  (req as { [REQUEST_CONTEXT]?: Context })[REQUEST_CONTEXT] = EMPTY_CONTEXT;
  if (!upgrade)
    (res as { [REQUEST_CONTEXT]?: Context })[REQUEST_CONTEXT] = EMPTY_CONTEXT;
  return context.with(EMPTY_CONTEXT, () =>
    original.apply(server, args as [string | symbol, ...unknown[]]),
  );
}

/**
 * The span state of a traced response, whose route a Fastify route names.
 * An upgrade request Fastify routes (as @fastify/websocket does) is answered
 * through a response made for it on its socket, which holds the state.
 */
function fastifyRouteHolder(res: object): RouteHolder | undefined {
  const response = res as StatefulResponse;
  const state = response[STATE];
  if (state !== undefined) return state;
  const held = (response.socket as UpgradedSocket | null | undefined)?.[STATE];
  return held !== undefined && held.req === response.req ? held : undefined;
}

/**
 * The status code of a response whose header block reached its
 * connection. `headersSent` says only that the block was made: with
 * `writeHead()` alone it waits for the first write, and a pipelined
 * request's answer, ended while an earlier one is still being written,
 * waits in the response (`_headerSent` set, but no socket yet) until its
 * turn. A client gone by then never saw that status. Two property reads on
 * a response that did not finish; nothing more on one that did.
 */
function statusSent(res: ServerResponse): number | undefined {
  if (res.writableFinished) return statusWritten(res);
  const sent = (res as unknown as HeaderBlock)._headerSent;
  const reached =
    typeof sent === "boolean"
      ? sent && res.socket !== null && res.socket !== undefined
      : res.headersSent;
  return reached ? statusWritten(res) : undefined;
}

/**
 * The status a response's written header block holds: `statusCode` may
 * have been set again since (an error handler's `res.status(500)` after
 * the headers went), which changes nothing that was sent.
 */
function statusWritten(res: ServerResponse): number {
  const header = (res as unknown as HeaderBlock)._header;
  // "HTTP/1.1 200 OK\r\n..."
  if (typeof header === "string" && header.startsWith("HTTP/1.")) {
    const code = Number(header.slice(9, 12));
    if (code >= 100 && code <= 999) return code;
  }
  return res.statusCode;
}

/**
 * Whether a response was ended and all of it handed to its connection,
 * which sends it even if the process exits now: nothing left in the
 * response (a pipelined one waiting for its turn) or in its socket's
 * buffer (a body larger than the connection took at once), on a socket
 * not already destroyed. `writableFinished` waits on Node 24 for the
 * write's callback, which an exit in the same tick comes before.
 */
function handedOver(res: ServerResponse | undefined): boolean {
  return (
    res !== undefined &&
    res.writableEnded &&
    res.writableLength === 0 &&
    res.socket?.destroyed !== true
  );
}

/**
 * The error the server destroyed a response with (`res.destroy(err)`, a
 * stream piped into it that failed), when it did; not the connection's
 * own end (the client gone, a pipelined response dropped with it).
 */
function destroyedWith(res: ServerResponse): Error | undefined {
  const err = (res as { errored?: unknown }).errored;
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  return code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "ERR_STREAM_PREMATURE_CLOSE"
    ? undefined
    : err;
}

/**
 * The error Node closed a request's connection with while its handler ran
 * (its `requestTimeout` passed, a malformed body): Node answers it with
 * 408 or 400 itself, with no response of the application's.
 */
function connectionFailure(
  req: IncomingMessage | undefined,
): Error | undefined {
  const err = (req?.socket as { errored?: unknown } | null | undefined)
    ?.errored;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return err instanceof Error &&
    typeof code === "string" &&
    (code === "ERR_HTTP_REQUEST_TIMEOUT" || code.startsWith("HPE_"))
    ? err
    : undefined;
}

function onResponseClose(this: StatefulResponse): void {
  const state = this[STATE];
  if (state === undefined) return;
  this[STATE] = undefined;
  const destroyed = this.writableFinished ? undefined : destroyedWith(this);
  const failed =
    this.writableFinished || destroyed !== undefined
      ? undefined
      : connectionFailure(state.req);
  finishServer(
    state,
    state.route ?? expressRoute(state.req),
    statusSent(this),
    this.writableFinished
      ? undefined
      : destroyed !== undefined
        ? `the server ended the response: ${destroyed.message}`
        : failed !== undefined
          ? `the connection failed: ${failed.message}`
          : "the connection closed before the response was complete",
    destroyed ?? failed,
  );
}

/**
 * Ends a request's SERVER span and records its duration (see recordServer).
 */
function finishServer(
  state: ServerState,
  route: string | undefined,
  status: number | undefined,
  abortedBecause: string | undefined,
  failure?: Error,
): void {
  untrackOpen(state);
  recordServer(state, route, status, abortedBecause, failure);
  state.span.end();
}

/**
 * Records a request's duration, and on its span its status code
 * (undefined when none was sent), its route, and why it ended early if it
 * did (an error typed `aborted`; 5xx are errors too).
 */
function recordServer(
  state: ServerState,
  route: string | undefined,
  status: number | undefined,
  abortedBecause: string | undefined,
  failure?: Error,
): void {
  const span = state.span;
  // The request's context (which holds this state) is captured by the
  // socket's async resources created while responding, such as the
  // keep-alive timer, and lives on until the connection's next request:
  // letting go of the request here keeps it out of that.
  state.req = undefined;
  state.holder = undefined;
  if (status !== undefined)
    span.setAttribute(semconv.ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (route !== undefined) {
    span.setAttribute(semconv.ATTR_HTTP_ROUTE, route);
    span.updateName(
      `${state.method === "_OTHER" ? "HTTP" : state.method} ${route}`,
    );
  }
  const error =
    failure !== undefined
      ? errorTypeOf(failure)
      : abortedBecause !== undefined
        ? "aborted"
        : status !== undefined && status >= 500
          ? String(status)
          : undefined;
  if (failure !== undefined && !state.threw) span.recordException(failure);
  if (error !== undefined) {
    span.setAttribute(semconv.ATTR_ERROR_TYPE, error);
    // The application's own exception says more than how the request ended.
    if (!state.threw)
      span.setStatus(
        abortedBecause === undefined
          ? { code: SpanStatusCode.ERROR }
          : { code: SpanStatusCode.ERROR, message: abortedBecause },
      );
  }
  // Counted apart from the histogram, whose overflow series has no status
  // code (see core's http-server-outcomes.ts). A response the client left
  // after its status was sent did not fail, though its error is `aborted`.
  httpServerOutcomes.requests++;
  if (
    failure !== undefined ||
    (status === undefined ? error !== undefined : status >= 500)
  )
    httpServerOutcomes.failed++;
  serverDuration().record(
    (performance.now() - state.start) / 1000,
    serverDurationSets.get(
      state.method,
      state.scheme,
      status,
      route,
      error,
      state.version,
    ),
    // Its exemplar is this request's span, wherever it ends from (the
    // process's end, an upgraded socket's close).
    state.ctx,
  );
}

/**
 * Ends an upgrade request's span when the application answers its
 * handshake: the status line of the first bytes it writes to the socket
 * (101 when it switches protocols, anything else when it refuses), or the
 * socket closing before any answer.
 */
function watchHandshake(socket: UpgradedSocket): void {
  const target = socket as unknown as Record<string, unknown>;
  const restore: Array<() => void> = [];
  for (const name of ["write", "end"]) {
    const own = Object.prototype.hasOwnProperty.call(target, name);
    const original = target[name] as (...args: unknown[]) => unknown;
    target[name] = function threadlineHandshakeAnswer(
      this: UpgradedSocket,
      chunk: unknown,
    ): unknown {
      for (const undo of restore) undo();
      endHandshake(socket, statusOf(chunk));
      return original.apply(this, arguments as unknown as unknown[]);
    };
    restore.push(() => {
      if (own) target[name] = original;
      else delete target[name];
    });
  }
  socket.once("close", () => {
    for (const undo of restore) undo();
    endHandshake(socket, undefined);
  });
}

/** The status code in the status line `chunk` starts with, if it does. */
function statusOf(chunk: unknown): number | undefined {
  const head =
    typeof chunk === "string"
      ? chunk.slice(0, 16)
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
            .subarray(0, 16)
            .toString("latin1")
        : "";
  const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
  return m === null ? undefined : Number(m[1]);
}

function endHandshake(
  socket: UpgradedSocket,
  status: number | undefined,
): void {
  const state = socket[STATE];
  if (state === undefined) return;
  socket[STATE] = undefined;
  finishServer(
    state,
    state.route,
    status,
    status === undefined
      ? "the connection closed before the handshake was answered"
      : undefined,
  );
}

const serverDurationSets = new AttributeSets(
  (
    method: string,
    scheme: string,
    status: number | undefined,
    route: string | undefined,
    error: string | undefined,
    version: string,
  ) => {
    const attributes: Attributes = {
      "http.request.method": method,
      "url.scheme": scheme,
      "network.protocol.version": version,
    };
    if (status !== undefined)
      attributes[semconv.ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
    if (route !== undefined) attributes[semconv.ATTR_HTTP_ROUTE] = route;
    if (error !== undefined) attributes[semconv.ATTR_ERROR_TYPE] = error;
    return attributes;
  },
);

const serverDuration = lazyInstruments(NAME, (m) =>
  m.createHistogram("http.server.request.duration", {
    unit: "s",
    description: "Duration of HTTP server requests.",
    advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
  }),
);

function onClientClose(this: TracedClientRequest): void {
  const span = this[CLIENT_SPAN];
  if (span === undefined) return;
  this[CLIENT_SPAN] = undefined;
  this[CLIENT_EGRESS] = undefined;
  const call = this[CLIENT_CALL];
  this[CLIENT_CALL] = undefined;
  // null until a response comes (not undefined): one that fails after
  // shutdown() has no #onClientError to end its span first.
  const res = (this as ClientRequest & { res?: IncomingMessage | null }).res;
  // Node publishes no response for an upgrade or a CONNECT (a 101, a
  // proxy's 407): its status is read here.
  if (
    res !== null &&
    res !== undefined &&
    (this as { upgradeOrConnect?: unknown }).upgradeOrConnect === true &&
    typeof res.statusCode === "number"
  ) {
    recordProtocolVersion(span, res.httpVersion, call);
    recordClientResponse(span, res.statusCode, call);
  }
  if (res?.complete !== true)
    recordClientIncomplete(
      span,
      "the request ended before a complete response",
      call,
    );
  span.end();
  finishClientCall(call);
}
