// node-postgres (`pg`, `pg-pool`).
//
// Client.prototype.query is wrapped (promise, callback and submittable
// forms all pass through it, pool.query included). Pool.prototype.connect
// is wrapped so that a callback waiting for a free connection runs in the
// context of the request that asked for it: pg-pool hands connections out
// from whatever callback released one, which is another request's context,
// so without this a queued query lands in the wrong trace (the bug other
// agents shipped). The rest of that hand-over (the pool's `acquire` and
// `connect` events, its `onConnect` and `verify` hooks) runs in the waiting
// caller's context too. For pool.query() the same wrapper notes when the wait
// started, so the query span begins when the application asked, and an
// event marks when it got its connection; the application's own
// pool.connect(), awaited or with a callback, has its wait as a span of its
// own, and the client's first query starts when it is sent.
//
// Callbacks given to query() are bound to the caller's context too, so the
// customer id (in baggage) survives them, and so are the handlers pg calls
// on a submittable as its rows arrive, so its events are the caller's.
//
// Client.prototype.connect opens the connection outside the caller's
// context: its socket would otherwise keep the context of whichever request
// first needed a connection (a pool makes them lazily), and everything the
// connection does by itself later (a NOTIFY, an error of an idle pooled
// client, the server going away) would run as that request's, with its
// customer, in its ended trace. The connect and end callbacks and promises
// are still the caller's.
import { AsyncResource } from "node:async_hooks";
import { errorMonitor } from "node:events";
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import {
  diag,
  errorTypeOf,
  formatTraceparent,
  connectInEmptyContext,
  hookModule,
  inCallerContext,
  isTracingSuppressed,
  lateLoadProblem,
  replaceMethod,
  type Instrumentation,
  HealthChecks,
  type HealthResult,
  lazyInstruments,
} from "@threadline/core";
import { maskedMessage } from "./error-message.ts";
import {
  CACHED_SQL_LENGTH,
  literalsOf,
  type SqlSummary,
  summarizeSql,
} from "./sql.ts";

/** Options of {@link PgInstrumentation}. */
export interface PgInstrumentationConfig {
  /** @default the global tracer provider */
  tracerProvider?: TracerProvider;
  /**
   * Record bound parameter values as `db.query.parameter.<index>`, the first 100
   * of a statement. They may hold personal
   * data; off unless you opt in.
   * @default false
   */
  recordParameters?: boolean;
  /**
   * Append a sqlcommenter comment (`/*traceparent='...',service='...'*\/`) to
   * each statement so PostgreSQL's logs and pg_stat_activity can be joined
   * to traces. Named prepared statements get only the service, which does
   * not change between executions.
   * @default false
   */
  sqlCommenter?: boolean;
  /** The service name written by sqlCommenter. */
  serviceName?: string;
}

const NAME = "@threadline/instrumentation-pg";
const VERSION = "0.1.0";
/** On a client the pool just handed out: how long the application waited for it. */
const POOL_WAIT = Symbol("threadline.pg.pool-wait");
/**
 * On a pg-pool pending item: the context of the caller waiting for a
 * connection, for the hand-over that pg-pool runs in whichever context
 * freed one (see wrapAcquireClient).
 */
const WAITER = Symbol("threadline.pg.waiter");
/** On a client: the shapes of the statements it has run (see {@link shapeOf}). */
const SHAPES = Symbol("threadline.pg.shapes");
/**
 * On a client: each named statement's text as the application first gave
 * it. pg records it when the statement is prepared, which for a query
 * still queued behind others is after its next run by name was asked for.
 */
const NAMED = Symbol("threadline.pg.named");
/** On a pooled client: its pool, for the pool's {@link COMPLETED}. */
const POOL = Symbol("threadline.pg.pool");
/**
 * On a pool: performance.now() when a query on one of its connections last
 * had the server's answer, for the health check to tell a busy pool from
 * one whose server has stopped answering.
 */
const COMPLETED = Symbol("threadline.pg.completed");

interface PoolWait {
  /** performance.timeOrigin-based ms when the application asked for a connection. */
  start: number;
  /** ms when it got one. */
  acquired: number;
}

interface PgClientLike {
  [POOL_WAIT]?: PoolWait | undefined;
  [SHAPES]?: Map<SqlSummary, QueryShape>;
  [NAMED]?: Map<string, string>;
  [POOL]?: PoolLike;
  connectionParameters?: { host?: string; port?: number; database?: string };
  /** Statements prepared on the connection, by name. */
  connection?: { parsedStatements?: Record<string, string | undefined> };
  host?: string;
  port?: number;
  database?: string;
}

interface QueryConfig {
  text?: string;
  name?: string;
  values?: unknown[];
  submit?: unknown;
  callback?: unknown;
  /** pg-query-stream's pg-cursor, which it reads through. */
  cursor?: {
    text?: string;
    values?: unknown[];
    on?: (
      event: string | symbol,
      listener: (...args: unknown[]) => void,
    ) => unknown;
  };
  on?: (
    event: string | symbol,
    listener: (...args: unknown[]) => void,
  ) => unknown;
  /** pg-cursor's, called later with a callback pg-cursor calls from the socket. */
  read?: (...args: unknown[]) => unknown;
  close?: (...args: unknown[]) => unknown;
}

type QueryFn = (
  this: PgClientLike,
  config: unknown,
  values?: unknown,
  callback?: unknown,
) => unknown;
type ConnectFn = (this: unknown, cb?: unknown) => unknown;
/** pg's `Connection.prototype.parse(query)`: a Parse message. */
type ParseFn = (this: unknown, query: unknown, ...rest: unknown[]) => unknown;
/** The prototype of a module that exports a class. */
function prototypeOf(exports: unknown): Record<string, unknown> | undefined {
  return (exports as { prototype?: Record<string, unknown> } | null)?.prototype;
}

/** pg-pool's `_acquireClient(client, pendingItem, idleListener, isNew)`. */
type AcquireClientFn = (
  this: unknown,
  client: unknown,
  pendingItem: unknown,
  idleListener: unknown,
  isNew: unknown,
) => unknown;
/** pg-pool's `newClient(pendingItem)`. */
type NewClientFn = (this: unknown, pendingItem: unknown) => unknown;
/** A caller pg-pool queued, as it keeps it until a connection is free. */
interface PendingItem {
  [WAITER]?: AsyncResource;
}
type EndFn = (this: unknown, ...args: unknown[]) => unknown;
type Callback = (this: unknown, ...args: unknown[]) => unknown;
type PoolQueryFn = (
  this: unknown,
  text: unknown,
  values?: unknown,
  cb?: unknown,
) => unknown;

const noop = () => {};

/**
 * The statement of the pool.query() under way, from its start to the
 * pool.connect() it makes (synchronously): a query that never gets a
 * connection is still an operation, and a failed one.
 */
let poolQueryText: unknown;

const origin = performance.timeOrigin;
const nowMs = () => origin + performance.now();

function sqlcommenterValue(v: string): string {
  // sqlcommenter: URL-encode, then escape single quotes
  return encodeURIComponent(v).replace(/'/g, "\\'");
}

function withComment(text: string, comment: string): string {
  const trimmed = text.trimEnd();
  if (trimmed.endsWith(";")) return `${trimmed.slice(0, -1)} ${comment};`;
  return `${text} ${comment}`;
}

export class PgInstrumentation implements Instrumentation {
  readonly name = NAME;
  readonly #config: PgInstrumentationConfig;
  /** The sqlcommenter comment's service member, the same in every comment. */
  readonly #service: string;
  #tracer: Tracer | undefined;
  #enabled = false;
  readonly #unhooks: Array<() => void> = [];
  readonly #restore: Array<() => void> = [];
  #late: string[] = [];

  constructor(config: PgInstrumentationConfig = {}) {
    this.#config = config;
    this.#service = `service='${sqlcommenterValue(config.serviceName ?? "unknown")}'`;
  }

  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    this.#tracer = (
      this.#config.tracerProvider ?? trace.getTracerProvider()
    ).getTracer(NAME, VERSION);
    const client = hookModule({
      module: "pg",
      file: "lib/client.js",
      onLoad: (exports) => {
        const proto = prototypeOf(exports);
        this.#patch(proto, "query", (q) => this.#wrapQuery(q as QueryFn));
        this.#patch(proto, "connect", (c) =>
          this.#wrapClientConnect(c as ConnectFn),
        );
        this.#patch(proto, "end", (e) => this.#wrapClientEnd(e as ConnectFn));
        return undefined;
      },
    });
    const pool = hookModule({
      module: "pg-pool",
      file: "index.js",
      onLoad: (exports) => {
        const proto = prototypeOf(exports);
        this.#patch(proto, "connect", (c) => this.#wrapConnect(c as ConnectFn));
        this.#patch(proto, "query", (q) =>
          this.#wrapPoolQuery(q as PoolQueryFn),
        );
        this.#patch(proto, "end", (e) => this.#wrapEnd(e as EndFn));
        // Where pg-pool hands a connection to a pending caller: a free one
        // (acquire event, callback) or a new one (onConnect, connect
        // event, verify), from the code that freed or dropped one.
        this.#patch(proto, "_acquireClient", (a) =>
          wrapAcquireClient(a as AcquireClientFn),
        );
        this.#patch(proto, "newClient", (n) => wrapNewClient(n as NewClientFn));
        return undefined;
      },
    });
    // A named statement's comment goes on its Parse message (see #wrapParse).
    const connection = hookModule({
      module: "pg",
      file: "lib/connection.js",
      onLoad: (exports) => {
        const proto = prototypeOf(exports);
        if (this.#config.sqlCommenter)
          this.#patch(proto, "parse", (p) => this.#wrapParse(p as ParseFn));
        return undefined;
      },
    });
    // pg's own reading of a configuration, for pools: where one connects
    // is where its clients would, whatever the options, the connection
    // string and the environment say.
    const parameters = hookModule({
      module: "pg",
      file: "lib/connection-parameters.js",
      onLoad: (exports) => {
        if (typeof exports === "function")
          ConnectionParameters ??= exports as ConnectionParametersClass;
        return undefined;
      },
    });
    // pg's own writing of a bound value, for the texts a failed query's
    // error must not show.
    const utils = hookModule({
      module: "pg",
      file: "lib/utils.js",
      onLoad: (exports) => {
        const prepare = (exports as { prepareValue?: unknown } | null)
          ?.prepareValue;
        if (typeof prepare === "function")
          prepareValue ??= prepare as (value: unknown) => unknown;
        return undefined;
      },
    });
    this.#late = [...client.late, ...pool.late];
    this.#unhooks.push(
      client.unhook,
      pool.unhook,
      connection.unhook,
      parameters.unhook,
      utils.unhook,
    );
  }

  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    for (const u of this.#unhooks.splice(0)) u();
    for (const r of this.#restore.splice(0)) r();
    this.#checks.clear();
  }

  selfCheck(): string[] {
    return this.#late.length > 0 ? [lateLoadProblem("pg")] : [];
  }

  /** Wraps `proto[key]`, when the module has that method. */
  #patch(
    proto: Record<string, unknown> | undefined,
    key: string,
    wrap: (original: unknown) => unknown,
  ): void {
    if (proto && typeof proto[key] === "function")
      replaceMethod(proto, key, wrap, this.#restore);
  }

  /**
   * connection.parse(query): a named statement is commented here, on the
   * Parse message alone, with the service only. pg keeps the text the
   * application gave as the statement's, and refuses its name with any
   * other text: commented in query(), the statement would fail its next run
   * sent uncommented (tracing suppressed, or the instrumentation disabled),
   * and an uncommented one its next traced run.
   */
  #wrapParse(original: ParseFn): ParseFn {
    const self = this;
    return function threadlineParse(
      this: unknown,
      query: unknown,
      ...rest: unknown[]
    ): unknown {
      const q = query as { name?: unknown; text?: unknown } | null | undefined;
      if (
        self.#enabled &&
        typeof q?.name === "string" &&
        q.name !== "" &&
        typeof q.text === "string" &&
        q.text !== "" &&
        !q.text.includes("/*")
      )
        query = { ...q, text: withComment(q.text, `/*${self.#service}*/`) };
      return original.call(this, query, ...rest);
    };
  }

  /**
   * client.connect([cb]): the socket is made in the empty context, so its
   * events (and the client's, the pool's) belong to no request. The
   * callback goes back to the caller; a promise's continuation is the
   * caller's anyway.
   */
  #wrapClientConnect(original: ConnectFn): ConnectFn {
    const self = this;
    return function threadlineClientConnect(
      this: unknown,
      cb?: unknown,
    ): unknown {
      if (!self.#enabled) return original.call(this, cb);
      return connectInEmptyContext(original, this, [], cb, "pg.connect");
    };
  }

  /**
   * client.end([cb]): pg calls the callback from the connection's "end"
   * event, which runs in no request's context (see #wrapClientConnect); it
   * goes back to the caller's. A promise's continuation is the caller's
   * anyway.
   */
  #wrapClientEnd(original: ConnectFn): ConnectFn {
    const self = this;
    return function threadlineClientEnd(this: unknown, cb?: unknown): unknown {
      if (!self.#enabled || typeof cb !== "function")
        return original.call(this, cb);
      return original.call(this, inCallerContext(cb as Callback, "pg.end"));
    };
  }

  #wrapConnect(original: ConnectFn): ConnectFn {
    const self = this;
    return function threadlineConnect(this: unknown, cb?: unknown): unknown {
      if (!self.#enabled) return original.call(this, cb);
      self.#watchPool(this as PoolLike);
      const ctx = context.active();
      const pool = this as PoolLike;
      const asked = poolQueryText;
      poolQueryText = undefined;
      if (typeof cb === "function") {
        if (asked === undefined)
          return self.#connectCalledBack(original, pool, ctx, cb as Callback);
        const start = nowMs();
        // Back to this caller's async context (all of it, the application's
        // own AsyncLocalStorage values too) when pg-pool calls back from another.
        const caller = new AsyncResource("pg.pool.connect");
        return connectNoted(
          original,
          pool,
          function (
            this: unknown,
            err: unknown,
            client: unknown,
            release: unknown,
          ) {
            // pool.query()'s: its query starts when it was asked for.
            if (typeof client === "object" && client !== null)
              (client as PgClientLike)[POOL_WAIT] = {
                start,
                acquired: nowMs(),
              };
            // No client, so no query span: the failure is the wait's own
            // (pool.query() to a server that is down comes this way).
            else if (err && !isTracingSuppressed(ctx)) {
              const span = self.#connectSpan(ctx, start);
              fail(span, err);
              span.end();
              unservedQuery(pool, asked, err, start);
            }
            return caller.runInAsyncScope(
              cb as (...args: unknown[]) => unknown,
              this,
              err,
              client,
              release,
            );
          },
          caller,
        );
      }
      // Promise form: the wait is a span of its own; the awaiting code resumes in its own context.
      if (isTracingSuppressed(ctx)) return connectNoted(original, pool);
      const span = self.#connectSpan(ctx);
      const result = connectNoted(original, pool) as Promise<unknown>;
      return result.then(
        (client) => {
          span.end();
          // The wait is this span, not part of the next query.
          if (typeof client === "object" && client !== null)
            (client as PgClientLike)[POOL_WAIT] = undefined;
          return client;
        },
        (err: unknown) => {
          fail(span, err);
          span.end();
          throw err;
        },
      );
    };
  }

  /**
   * The application's own `pool.connect(cb)`, as the promise form: the
   * wait is a span of its own, and the client's first query starts when it
   * is sent, after whatever the application does with the client first.
   */
  #connectCalledBack(
    original: ConnectFn,
    pool: unknown,
    ctx: Context,
    cb: Callback,
  ): unknown {
    const span = isTracingSuppressed(ctx) ? undefined : this.#connectSpan(ctx);
    // Back to this caller's context when pg-pool calls back from another.
    const answer = inCallerContext(cb, "pg.pool.connect");
    return connectNoted(
      original,
      pool as PoolLike,
      function (
        this: unknown,
        err: unknown,
        client: unknown,
        release: unknown,
      ) {
        if (span !== undefined) {
          if (err) fail(span, err);
          span.end();
        }
        // The wait is this span, not part of the next query.
        if (typeof client === "object" && client !== null)
          (client as PgClientLike)[POOL_WAIT] = undefined;
        return answer.call(this, err, client, release);
      },
    );
  }

  /** A wait for a pooled connection, as a span of the context that asked. */
  #connectSpan(ctx: Context, startTime?: number): Span {
    return this.#tracer!.startSpan(
      "pg.pool.connect",
      {
        kind: SpanKind.INTERNAL,
        attributes: { "db.system.name": "postgresql" },
        startTime,
      },
      ctx,
    );
  }

  /**
   * pool.query(text, [values,] cb): pg-pool also calls `cb` from the
   * client's "error" event (the connection lost mid-query), which runs in
   * the socket's context; the callback is sent back to the caller's.
   */
  #wrapPoolQuery(original: PoolQueryFn): PoolQueryFn {
    const self = this;
    // Fixed parameters, not a rest array: every pool query passes here.
    return function threadlinePoolQuery(
      this: unknown,
      text: unknown,
      values?: unknown,
      cb?: unknown,
    ): unknown {
      if (!self.#enabled) return original.call(this, text, values, cb);
      if (typeof cb === "function")
        cb = inCallerContext(cb as Callback, "pg.pool.query");
      else if (typeof values === "function")
        values = inCallerContext(values as Callback, "pg.pool.query");
      poolQueryText = text ?? null;
      try {
        return original.call(this, text, values, cb);
      } finally {
        poolQueryText = undefined;
      }
    };
  }

  /** Pools seen, each with its health check's removal. */
  readonly #pools = new WeakMap<object, () => void>();

  /**
   * Registers a health check for a pool the first time it is used: a
   * `SELECT 1` through the pool, unless the pool is busy (queries waiting,
   * or every connection in use), which is degraded without a probe: one
   * would queue behind the application's queries and time out as if the
   * server were gone. Busy is no excuse for a pool that has stopped: when
   * queries have been waiting through two checks at least `timeoutMs`
   * apart and none had the server's answer in between (a server that
   * accepts connections and never answers, under load), the pool is
   * unhealthy. A probe still waiting for its connection is shared
   * by the next checks, so a slow server never has more than one waiting;
   * one whose connection does not answer in time is given up with that
   * connection (see probePool), and the next check probes afresh. The check goes
   * when the pool ends (`end()`), or at the first run after the pool was
   * dropped, or once the pool is collected (`#dropped`): with no health
   * endpoint and no alarms nothing runs it.
   */
  #watchPool(pool: PoolLike): void {
    if (typeof pool !== "object" || pool === null || this.#pools.has(pool))
      return;
    if (pool.ending === true || pool.ended === true) {
      this.#pools.set(pool, noop);
      return;
    }
    const ref = new WeakRef(pool);
    let probe: Promise<HealthResult> | undefined;
    /** When a check found queries waiting and no answer since. */
    let stalledSince: number | undefined;
    const unregister = this.#checks.register(
      `postgresql ${poolTarget(pool.options)}`,
      (timeoutMs) => {
        const p = ref.deref();
        if (p === undefined || p.ending === true || p.ended === true) {
          unregister();
          return { status: "healthy", reason: "the pool was closed" };
        }
        const busy = poolBusy(p);
        if (busy === undefined || (p.waitingCount ?? 0) === 0)
          stalledSince = undefined;
        else {
          const now = performance.now();
          if (stalledSince === undefined || (p[COMPLETED] ?? 0) > stalledSince)
            stalledSince = now;
          else if (now - stalledSince >= timeoutMs)
            return {
              status: "unhealthy",
              reason: `no query completed in ${Math.round(now - stalledSince)} ms, ${busy.reason}`,
              details: poolDetails(p),
            };
        }
        if (busy !== undefined) return busy;
        probe ??= probePool(p, timeoutMs, () => {
          probe = undefined;
        });
        return probe;
      },
    );
    this.#pools.set(pool, unregister);
    this.#dropped.register(pool, unregister, unregister);
  }

  /**
   * Removes the check of a pool the application dropped without end(),
   * once it is collected: nothing may run the checks (no health endpoint,
   * no alarms), and a job making a pool per run left one behind each time.
   */
  readonly #dropped = new FinalizationRegistry<() => void>((unregister) =>
    unregister(),
  );

  /** Every pool check registered, removed at disable(). */
  readonly #checks = new HealthChecks();

  #wrapEnd(original: EndFn): EndFn {
    const self = this;
    return function threadlineEnd(this: unknown, ...args: unknown[]): unknown {
      // Removed as the pool starts ending: its clients may take a while to
      // go, and an ending pool is no dependency to report.
      const unregister =
        typeof this === "object" && this !== null
          ? self.#pools.get(this)
          : undefined;
      if (unregister !== undefined) {
        unregister();
        self.#dropped.unregister(unregister);
      }
      return original.apply(this, args);
    };
  }

  #wrapQuery(original: QueryFn): QueryFn {
    const self = this;
    return function threadlineQuery(
      this: PgClientLike,
      config: unknown,
      values?: unknown,
      callback?: unknown,
    ): unknown {
      if (!self.#enabled || config === null || config === undefined)
        return original.call(this, config, values, callback);
      const ctx = context.active();
      if (isTracingSuppressed(ctx))
        return original.call(this, config, values, callback);
      let span: Span;
      let args: [unknown, unknown, unknown];
      let done: (err?: unknown) => void;
      try {
        ({ span, args, done } = self.#start(
          this,
          ctx,
          config,
          values,
          callback,
        ));
      } catch (err) {
        diag.warnCollapsed(
          "pg",
          `could not trace a query: ${(err as Error).message}`,
        );
        return original.call(this, config, values, callback);
      }
      const [cfg] = args;
      let [, vals, cb] = args;
      if (typeof (cfg as QueryConfig).submit === "function") {
        const submittable = cfg as QueryConfig;
        let finished = false;
        const finish = (err?: unknown) => {
          if (finished) return;
          finished = true;
          // A stream the application stopped reading early was not a failure.
          done(isAbort(err) ? undefined : err);
        };
        if (typeof submittable.on === "function") {
          submittable.on("end", () => finish());
          submittable.on("close", () => finish());
          // Watched, not handled: an "error" listener of ours would be the
          // application's handler too, and a Query or a stream it left
          // without one would fail in silence where Node throws. pg-cursor
          // emits its error only to a listener, so it gets one.
          submittable.on(
            isCursor(submittable) ? "error" : errorMonitor,
            (err: unknown) => finish(err),
          );
        }
        // A connection lost under a pg-query-stream is told to its cursor,
        // which hands it to a callback the stream was never given: the
        // stream itself neither errors nor ends.
        const inner = submittable.cursor;
        if (
          inner !== undefined &&
          (inner as unknown) !== submittable &&
          typeof inner.on === "function"
        )
          inner.on(errorMonitor, (err: unknown) => finish(err));
        // A Query with a callback reports an error to it alone, with no
        // "error" event. pg calls it from the connection's socket: it goes
        // back to the caller's context, as a plain query's callback does.
        const finishing = (given: Callback) =>
          inCallerContext(function (this: unknown, ...a: unknown[]) {
            finish(a[0] ?? undefined);
            return Reflect.apply(given, this, a);
          }, "pg.query");
        const given = submittable.callback;
        // Only the submittable's own: pg's Query sets it in its constructor.
        // One on a prototype is no report of the outcome: pg-copy-streams
        // has an empty callback() there, for pg's query_timeout to replace,
        // and calls it with no error as a COPY fails, before its "error".
        if (
          typeof given === "function" &&
          Object.hasOwn(submittable, "callback")
        )
          submittable.callback = finishing(given as Callback);
        // Without one of its own, pg makes it the function given after it
        // (`client.query(new Query(text), cb)`, and pg-pool's own callback
        // for `pool.query(new Query(text))`).
        else if (!given) {
          if (typeof vals === "function") vals = finishing(vals as Callback);
          else if (typeof cb === "function") cb = finishing(cb as Callback);
        }
        handleInCallerContext(submittable);
        bindCursorCallbacks(submittable);
        try {
          return context.with(
            trace.setSpan(ctx, span),
            original,
            this,
            cfg,
            vals,
            cb,
          );
        } catch (err) {
          finish(err);
          throw err;
        }
      }
      const userCb =
        typeof vals === "function"
          ? vals
          : typeof cb === "function"
            ? cb
            : (cfg as QueryConfig | undefined)?.callback;
      if (typeof userCb === "function") {
        // pg calls it as a method of its Query: `this` goes on through.
        // Every query pg-pool makes comes this way: two named arguments,
        // no rest array.
        const caller = new AsyncResource("pg.query");
        const bound = function (this: unknown, err: unknown, res: unknown) {
          done(err ? err : undefined);
          return caller.runInAsyncScope(
            userCb as (e: unknown, r: unknown) => unknown,
            this,
            err,
            res,
          );
        };
        // pg takes the last callback given over one in the config object.
        try {
          return typeof vals === "function"
            ? original.call(this, cfg, bound)
            : original.call(this, cfg, vals, bound);
        } catch (err) {
          done(err);
          throw err;
        }
      }
      let result: Promise<unknown>;
      try {
        result = original.call(this, cfg, vals) as Promise<unknown>;
      } catch (err) {
        // pg throws for what it cannot take (a callback that is no
        // function): the span ends with it, as the query does.
        done(err);
        throw err;
      }
      if (typeof result?.then !== "function") {
        done();
        return result;
      }
      return result.then(
        (res) => {
          done();
          return res;
        },
        (err: unknown) => {
          done(err);
          throw err;
        },
      );
    };
  }

  #start(
    client: PgClientLike,
    ctx: Context,
    config: unknown,
    values: unknown,
    callback: unknown,
  ): {
    span: Span;
    args: [unknown, unknown, unknown];
    done: (err?: unknown) => void;
  } {
    const started = performance.now();
    const cfg = (typeof config === "string" ? undefined : config) as
      QueryConfig | undefined;
    const rawText =
      typeof config === "string"
        ? config
        : (cfg?.text ?? cfg?.cursor?.text ?? namedText(client, cfg) ?? "");
    if (typeof cfg?.name === "string" && typeof cfg.text === "string")
      (client[NAMED] ??= new Map()).set(cfg.name, cfg.text);
    // A summary made afresh each time (a long statement) would only fill
    // the connection's shapes.
    const summary = summarizeSql(rawText);
    const shape =
      rawText.length <= CACHED_SQL_LENGTH
        ? shapeOf(client, summary)
        : buildShape(client, summary);
    let attributes = shape.attributes;
    if (this.#config.recordParameters) {
      const vals = boundValues(values, cfg);
      if (Array.isArray(vals)) {
        attributes = { ...attributes };
        const n = Math.min(vals.length, MAX_RECORDED_PARAMETERS);
        for (let i = 0; i < n; i++)
          attributes[`db.query.parameter.${i}`] = parameterText(vals[i]);
      }
    }
    const wait = client[POOL_WAIT];
    if (wait !== undefined) client[POOL_WAIT] = undefined;
    const span = this.#tracer!.startSpan(
      shape.name,
      { kind: SpanKind.CLIENT, attributes, startTime: wait?.start },
      ctx,
    );
    if (wait !== undefined)
      span.addEvent(
        "pg.pool.connection_acquired",
        { "db.client.connection.wait_time_ms": wait.acquired - wait.start },
        wait.acquired,
      );

    let args: [unknown, unknown, unknown] = [config, values, callback];
    // A named statement is commented as it is parsed (see #wrapParse).
    if (
      this.#config.sqlCommenter &&
      rawText.length > 0 &&
      !rawText.includes("/*") &&
      !cfg?.name
    ) {
      const sc = span.spanContext();
      const comment = `/*${this.#service},traceparent='${sqlcommenterValue(formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags))}'*/`;
      if (typeof config === "string")
        args = [withComment(config, comment), values, callback];
      else if (
        cfg !== undefined &&
        typeof cfg.submit !== "function" &&
        typeof cfg.text === "string"
      ) {
        args = [
          { ...cfg, text: withComment(cfg.text, comment) },
          values,
          callback,
        ];
      }
    }
    // Called before the application's callback, or before its promise
    // settles: whatever recording the outcome meets (an error holding
    // values pg itself could not read), the span ends and the application
    // hears from pg as it would without us.
    let ended = false;
    const done = (err?: unknown) => {
      // Once: a query pg threw for synchronously may have called back too.
      if (ended) return;
      ended = true;
      let metricAttributes = shape.metricAttributes;
      try {
        if (err !== undefined) {
          metricAttributes = withFailure(metricAttributes, err);
          fail(
            span,
            err,
            this.#config.recordParameters === true
              ? undefined
              : {
                  raw: rawText,
                  text: summary.text,
                  values: boundValues(values, cfg),
                },
          );
        }
      } catch (e) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        diag.warnCollapsed(
          "pg",
          `could not record a failed query: ${e instanceof Error ? e.message : typeof e}`,
        );
      } finally {
        span.end();
        const ended = performance.now();
        // An error the server sent is an answer too; one of the connection
        // (a read timeout, the socket lost) is not.
        const pool = client[POOL];
        if (
          pool !== undefined &&
          (err === undefined || sqlState(err) !== undefined)
        )
          pool[COMPLETED] = ended;
        // In the query's own context, for the exemplar's link: pg settles a
        // query where its caller's context is active, or its connection's. A
        // span not sampled links to nothing, so needs no context.
        operationDuration().record(
          (ended - started) / 1000,
          metricAttributes,
          (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0
            ? ROOT_CONTEXT
            : trace.setSpan(ctx, span),
        );
      }
    };
    return { span, args, done };
  }
}

/**
 * What every execution of one statement on one connection has in common,
 * built on its first execution: spans copy the attributes, the duration
 * histogram finds its series by the same object each time.
 */
interface QueryShape {
  name: string;
  attributes: Attributes;
  metricAttributes: Attributes;
}

/** Statements whose shapes a connection keeps; past it they are rebuilt. */
const SHAPE_LIMIT = 64;

function shapeOf(client: PgClientLike, summary: SqlSummary): QueryShape {
  let shapes = client[SHAPES];
  if (shapes === undefined) {
    shapes = new Map();
    client[SHAPES] = shapes;
  }
  let shape = shapes.get(summary);
  if (shape === undefined) {
    if (shapes.size >= SHAPE_LIMIT) shapes.clear();
    shape = buildShape(client, summary);
    shapes.set(summary, shape);
  }
  return shape;
}

function buildShape(client: PgClientLike, summary: SqlSummary): QueryShape {
  const params = client.connectionParameters;
  const metricAttributes = operationAttributes(
    {
      database: params?.database ?? client.database,
      host: params?.host ?? client.host,
      port: params?.port ?? client.port,
    },
    summary,
  );
  return {
    name: summary.summary ?? "postgresql",
    attributes: { ...metricAttributes, "db.query.text": summary.text },
    // Frozen: the histogram then finds the series by the object alone.
    metricAttributes: Object.freeze(metricAttributes),
  };
}

const operationDuration = lazyInstruments(NAME, (m) =>
  m.createHistogram("db.client.operation.duration", {
    unit: "s",
    description: "Duration of PostgreSQL operations, per operation and table.",
    // The database conventions' advice: most queries are far quicker than
    // the HTTP requests the default seconds buckets were made for.
    advice: {
      explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    },
  }),
);

/**
 * The failures pg and pg-pool raise themselves carry no code, only a plain
 * Error's name: each is known by its message, which holds no value.
 */
const PG_ERRORS = new Map([
  ["Query read timeout", "query_timeout"],
  ["timeout exceeded when trying to connect", "pool_timeout"],
  ["Connection terminated due to connection timeout", "connection_timeout"],
  ["timeout expired", "connection_timeout"],
  ["Connection terminated unexpectedly", "connection_lost"],
  ["Connection terminated", "connection_ended"],
  [
    "Client has encountered a connection error and is not queryable",
    "client_not_queryable",
  ],
  ["Client was closed and is not queryable", "client_not_queryable"],
  ["Cannot use a pool after calling end on the pool", "pool_ended"],
]);

/**
 * A pool.query() the pool found no connection for (refused, or none free
 * within `connectionTimeoutMillis`): a failed operation's duration, from
 * when it was asked.
 */
function unservedQuery(
  pool: PoolLike,
  query: unknown,
  err: unknown,
  start: number,
): void {
  const text =
    typeof query === "string"
      ? query
      : typeof (query as QueryConfig | null)?.text === "string"
        ? (query as QueryConfig).text!
        : "";
  const attributes = operationAttributes(
    poolAddress(pool.options),
    summarizeSql(text),
  );
  operationDuration().record(
    (nowMs() - start) / 1000,
    withFailure(attributes, err),
  );
}

/**
 * An operation's attributes on db.client.operation.duration: where, and
 * what. The summary holds keywords and names, never a literal, so it has
 * no more values than the application has statements.
 */
function operationAttributes(
  where: {
    database: string | undefined;
    host: string | undefined;
    port: number | undefined;
  },
  summary: SqlSummary,
): Attributes {
  const attributes: Attributes = {
    "db.system.name": "postgresql",
    "db.namespace": where.database,
    "server.address": where.host,
    "server.port": where.port,
  };
  if (summary.summary !== undefined)
    attributes["db.query.summary"] = summary.summary;
  if (summary.operation !== undefined)
    attributes["db.operation.name"] = summary.operation;
  if (summary.collection !== undefined)
    attributes["db.collection.name"] = summary.collection;
  return attributes;
}

function errorType(err: unknown): string {
  return errorTypeOf(err, PG_ERRORS);
}

/**
 * A failed operation's attributes on the duration histogram: its
 * error.type, and the SQLSTATE the conventions ask for there too. Both
 * split series only as far as the set of SQLSTATEs, which is fixed.
 */
function withFailure(attributes: Attributes, err: unknown): Attributes {
  const code = sqlState(err);
  return {
    ...attributes,
    ...(code === undefined ? {} : { "db.response.status_code": code }),
    "error.type": errorType(err),
  };
}

/**
 * The error's SQLSTATE, if PostgreSQL sent one: an error pg made from the
 * server's message, which always has a severity. A system error of the
 * connection has a code of five capitals too (`EPIPE`), which is no
 * SQLSTATE.
 */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; severity?: unknown } | null | undefined;
  const code = e?.code;
  return typeof code === "string" &&
    typeof e?.severity === "string" &&
    SQLSTATE.test(code)
    ? code
    : undefined;
}

/**
 * The most bound values a span records. A bulk insert may bind tens of
 * thousands; a span keeps 128 attributes by default, so text made for more
 * would be thrown away.
 */
const MAX_RECORDED_PARAMETERS = 100;

/** The values bound to a query, wherever its form gives them. */
function boundValues(values: unknown, cfg: QueryConfig | undefined): unknown {
  return Array.isArray(values) ? values : (cfg?.values ?? cfg?.cursor?.values);
}

/**
 * A bound value as `db.query.parameter.<n>` records it: as pg sends it
 * (an object's `toPostgres()`, a date in pg's format, an array as a
 * PostgreSQL array), and binary data (a bytea) by its size alone.
 */
function parameterText(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (ArrayBuffer.isView(v)) return `<${v.byteLength} bytes>`;
  let text: unknown;
  try {
    text =
      prepareValue !== undefined
        ? prepareValue(v)
        : typeof v === "object" && !(v instanceof Date)
          ? JSON.stringify(v)
          : String(v);
  } catch {
    return "[unserialisable]";
  }
  if (ArrayBuffer.isView(text)) return `<${text.byteLength} bytes>`;
  return typeof text === "string" ? text : String(text);
}

/**
 * A named statement's text: noted when given, found again when the
 * statement is run by its name alone.
 */
function namedText(
  client: PgClientLike,
  cfg: QueryConfig | undefined,
): string | undefined {
  const name = cfg?.name;
  if (typeof name !== "string") return undefined;
  return (
    client[NAMED]?.get(name) ?? client.connection?.parsedStatements?.[name]
  );
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * A pg-cursor: a read() that takes a callback. A stream (pg-query-stream)
 * has a read() of its own, with none.
 */
function isCursor(submittable: QueryConfig): boolean {
  return (
    typeof submittable.read === "function" &&
    typeof (submittable as { pipe?: unknown }).pipe !== "function"
  );
}

/**
 * What pg calls on a submittable as the server's messages for it arrive,
 * from the connection's socket, which belongs to no request (see
 * Client.prototype.connect).
 */
const HANDLERS = [
  "handleRowDescription",
  "handleDataRow",
  "handlePortalSuspended",
  "handleCommandComplete",
  "handleEmptyQuery",
  "handleError",
  "handleReadyForQuery",
  "handleCopyInResponse",
  "handleCopyData",
] as const;

/**
 * Runs each of this submittable's handlers in the context that submitted
 * it, so that what they set off (a Query's "row" and "end", a stream's
 * "data", what it is piped into, a cursor's "row") has the request's trace
 * and customer. The caller's context, not the query span's, as a plain
 * query's callback and an awaited query's continuation have: what the
 * application does with a row is its own work, and a query it makes there
 * is no child of this one.
 */
function handleInCallerContext(submittable: QueryConfig): void {
  const caller = new AsyncResource("pg.submittable");
  const handlers = submittable as Record<string, unknown>;
  for (const key of HANDLERS) {
    const handle = handlers[key];
    if (typeof handle !== "function") continue;
    handlers[key] = function (this: unknown, ...args: unknown[]): unknown {
      return caller.runInAsyncScope(handle as Callback, this, ...args);
    };
  }
}

/**
 * pg-cursor's `read(rows, cb)` and `close(cb)`, on this one cursor: their
 * callbacks are kept and called from the connection's socket, so they are
 * sent back to the context that called (its promises need nothing).
 */
function bindCursorCallbacks(cursor: QueryConfig): void {
  // A stream (pg-query-stream) has a read() of its own, with no callback.
  if (typeof (cursor as { pipe?: unknown }).pipe === "function") return;
  for (const key of ["read", "close"] as const) {
    const method = cursor[key];
    if (typeof method !== "function") continue;
    cursor[key] = function (this: unknown, ...args: unknown[]): unknown {
      const last = args.length - 1;
      const cb = args[last];
      if (typeof cb === "function")
        args[last] = inCallerContext(cb as Callback, `pg.cursor.${key}`);
      return Reflect.apply(method, this, args);
    };
  }
}

function isAbort(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown } | undefined;
  return e?.code === "ABORT_ERR" || e?.name === "AbortError";
}

/** A failed statement, as its error's message must not show it. */
interface FailedStatement {
  /** As the application gave it. */
  raw: string;
  /** Sanitised: no value, only the names and keywords it writes. */
  text: string;
  values: unknown;
}

/**
 * The error as a failed statement's span records it: its message (and the
 * stack, which opens with it) without the statement's values, bound or
 * literal, and, if PostgreSQL sent it, without any quoted part that is no
 * name of the statement's (see error-message.ts). Work done only for a
 * failure: a query that succeeds pays nothing for it.
 */
function withoutValues(err: unknown, statement: FailedStatement): Error {
  const e = err as Error;
  if (typeof e?.message !== "string" || e.message === "") return e;
  const original = e.message;
  const name = typeof e.name === "string" ? e.name : "error";
  let message: string;
  try {
    const texts = literalsOf(statement.raw);
    valueTexts(statement.values, texts);
    const code = sqlState(err);
    message = maskedMessage(
      original,
      texts,
      code === undefined ? undefined : statement.text,
      code,
    );
  } catch {
    // A value that throws as it is read (a getter, a revoked Proxy) is
    // one pg could not send either, and what it holds cannot be known:
    // nothing of the message is kept but PostgreSQL's code for it.
    const code = sqlState(err);
    return { name, message: code === undefined ? "?" : `SQLSTATE ${code}` };
  }
  if (message === original) return e;
  // The stack opens with the message as it was: that part is replaced, not
  // searched again. A stack that no longer holds it (the message changed
  // after it was taken) may hold the value somewhere else, and is dropped.
  const at = typeof e.stack === "string" ? e.stack.indexOf(original) : -1;
  return {
    name,
    message,
    ...(at === -1
      ? {}
      : {
          stack:
            e.stack!.slice(0, at) +
            message +
            e.stack!.slice(at + original.length),
        }),
  };
}

/** pg's serialisation of a bound value (`lib/utils.js`), once pg is loaded. */
let prepareValue: ((value: unknown) => unknown) | undefined;

/**
 * How deep into an array or an object bound as one value its items are
 * read: a function may raise one of them alone (`$1::jsonb ->> 'card'`).
 */
const VALUE_DEPTH = 4;
/** The most items read inside values, however large a bound document. */
const MAX_VALUE_ITEMS = 10_000;

/**
 * Adds to `texts` each bound value as pg sends it, and each item of an
 * array or an object bound as one, as pg would send that item alone.
 */
function valueTexts(values: unknown, texts: string[]): void {
  if (!Array.isArray(values)) return;
  let items = 0;
  const add = (value: unknown, depth: number): void => {
    if (value === null || value === undefined) return;
    let text: unknown;
    try {
      text =
        prepareValue !== undefined ? prepareValue(value) : parameterText(value);
    } catch {
      text = undefined;
    }
    if (typeof text === "string") texts.push(text);
    if (
      depth >= VALUE_DEPTH ||
      typeof value !== "object" ||
      value instanceof Date ||
      ArrayBuffer.isView(value) ||
      typeof (value as { toPostgres?: unknown }).toPostgres === "function"
    )
      return;
    for (const item of Array.isArray(value) ? value : Object.values(value)) {
      if (++items > MAX_VALUE_ITEMS) return;
      add(item, depth + 1);
    }
  };
  for (const value of values) add(value, 0);
}

function fail(span: Span, err: unknown, statement?: FailedStatement): void {
  const code = sqlState(err);
  if (code !== undefined) span.setAttribute("db.response.status_code", code);
  span.setAttribute("error.type", errorType(err));
  const recorded =
    statement === undefined ? (err as Error) : withoutValues(err, statement);
  span.recordException(recorded);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message:
      typeof recorded?.message === "string" ? recorded.message : undefined,
  });
}

interface PoolLike {
  [COMPLETED]?: number;
  options?: {
    host?: unknown;
    port?: unknown;
    database?: unknown;
    user?: unknown;
    connectionString?: unknown;
    max?: unknown;
  };
  ending?: boolean;
  ended?: boolean;
  /** pg-pool's callers waiting for a connection, first served first. */
  _pendingQueue?: PendingItem[];
  /** pg-pool's free connections. */
  _idle?: unknown[];
  totalCount?: number;
  idleCount?: number;
  waitingCount?: number;
  query(text: string): Promise<unknown>;
  connect(): Promise<PooledClient>;
}

/**
 * pg-pool's `connect(cb)`, leaving on the pending item it queues the
 * context of a caller that has to wait for a connection: pg-pool hands it
 * one later from the code that freed or dropped one, another request's.
 * A caller queued for an idle connection (pg-pool serves it on the next
 * tick, from this call) or given a new one carries nothing, so a free
 * connection costs no more than reading the queue's length twice.
 * `caller`, when the wrapper already made one, is used for it.
 */
function connectNoted(
  original: ConnectFn,
  pool: PoolLike,
  cb?: Callback,
  caller?: AsyncResource,
): unknown {
  const queue = pool._pendingQueue;
  const before = queue?.length;
  const result = original.call(pool, cb);
  if (
    before !== undefined &&
    queue!.length > before &&
    queue!.length > (pool._idle?.length ?? 0)
  )
    queue![queue!.length - 1]![WAITER] =
      caller ?? new AsyncResource("pg.pool.connect");
  return result;
}

/**
 * pg-pool's hand-over of a free connection to a pending item: the
 * `acquire` event, then the item's callback (a new connection's `connect`
 * event and `verify` too), in the waiting caller's context, so what a
 * listener logs or queries is that request's.
 */
function wrapAcquireClient(original: AcquireClientFn): AcquireClientFn {
  return function threadlineAcquireClient(
    this: unknown,
    client: unknown,
    pendingItem: unknown,
    idleListener: unknown,
    isNew: unknown,
  ): unknown {
    if (typeof client === "object" && client !== null)
      (client as PgClientLike)[POOL] = this as PoolLike;
    const waiter = (pendingItem as PendingItem | undefined)?.[WAITER];
    if (waiter === undefined)
      return original.call(this, client, pendingItem, idleListener, isNew);
    return waiter.runInAsyncScope(
      original,
      this,
      client,
      pendingItem,
      idleListener,
      isNew,
    );
  };
}

/**
 * pg-pool's opening of a connection for a pending item, when one was
 * dropped while callers waited: opened from the waiting caller's context,
 * its `onConnect` hook and the hand-over that follows are that caller's
 * (the socket still belongs to no request, see #wrapClientConnect).
 */
function wrapNewClient(original: NewClientFn): NewClientFn {
  return function threadlineNewClient(
    this: unknown,
    pendingItem: unknown,
  ): unknown {
    const waiter = (pendingItem as PendingItem | undefined)?.[WAITER];
    if (waiter === undefined) return original.call(this, pendingItem);
    return waiter.runInAsyncScope(original, this, pendingItem);
  };
}

interface PooledClient {
  query(text: string): Promise<unknown>;
  release(err?: Error): void;
}

/**
 * One probe of a pool: `SELECT 1` on a connection of its own, answered
 * within `timeoutMs` or not at all. A connection that takes the query and
 * gives no answer in time is one the pool must not keep: a proxy that hangs
 * or a dropped flow keeps its socket open for many minutes, and a probe
 * waiting on it would hold every later check unhealthy while the pool
 * serves the application on its other connections. So it is released with
 * an error, which has the pool drop it (pg closes the socket of a client
 * ended with a query still running). `done` is called once
 * the probe holds nothing more; a connection still being made when time is
 * up is waited for (and given back) first, so checks never pile up
 * connections behind a server that does not answer at all.
 */
function probePool(
  p: PoolLike,
  timeoutMs: number,
  done: () => void,
): Promise<HealthResult> {
  return new Promise<HealthResult>((resolve, reject) => {
    let late = false;
    let client: PooledClient | undefined;
    const timer = setTimeout(() => {
      late = true;
      const err = new Error(`no answer within ${timeoutMs} ms`);
      reject(err);
      const stuck = client;
      if (stuck === undefined) return;
      client = undefined;
      stuck.release(err);
      done();
    }, timeoutMs);
    timer.unref();
    p.connect().then(
      (c) => {
        if (late) {
          c.release();
          done();
          return;
        }
        client = c;
        c.query("SELECT 1").then(
          () => {
            if (client !== c) return;
            client = undefined;
            clearTimeout(timer);
            c.release();
            done();
            resolve(
              poolBusy(p) ?? { status: "healthy", details: poolDetails(p) },
            );
          },
          (err: unknown) => {
            if (client !== c) return;
            client = undefined;
            clearTimeout(timer);
            // As pool.query() does: a connection that failed a query goes.
            c.release(err instanceof Error ? err : new Error(String(err)));
            done();
            reject(err);
          },
        );
      },
      (err: unknown) => {
        clearTimeout(timer);
        done();
        reject(err);
      },
    );
  });
}

function poolDetails(p: PoolLike): Record<string, unknown> {
  return { total: p.totalCount, idle: p.idleCount, waiting: p.waitingCount };
}

/** Degraded while queries wait or every connection is in use, else undefined. */
function poolBusy(p: PoolLike): HealthResult | undefined {
  const waiting = p.waitingCount ?? 0;
  if (waiting > 0)
    return {
      status: "degraded",
      reason: `${waiting} queries waiting for a connection`,
      details: poolDetails(p),
    };
  // pg-pool sets max (10 unless given); a pool at it with none idle makes
  // the next query wait.
  const max = typeof p.options?.max === "number" ? p.options.max : 10;
  if ((p.idleCount ?? 0) === 0 && (p.totalCount ?? 0) >= max)
    return {
      status: "degraded",
      reason: `all ${max} connections of the pool are in use`,
      details: poolDetails(p),
    };
  return undefined;
}

/** host:port/database of a pool, never its credentials. */
function poolTarget(o: PoolLike["options"]): string {
  const { host, port, database } = poolAddress(o);
  return `${host}:${port}/${database}`;
}

type ConnectionParametersClass = new (config: unknown) => {
  host?: unknown;
  port?: unknown;
  database?: unknown;
};

/** pg's ConnectionParameters, once pg is loaded. */
let ConnectionParameters: ConnectionParametersClass | undefined;

interface PoolAddress {
  host: string;
  port: number;
  database: string;
}

/** Each pool's address, read once: its options do not change. */
const poolAddresses = new WeakMap<object, PoolAddress>();

/**
 * Where a pool connects, as pg resolves it for the pool's clients: the
 * connection string over the options over PGHOST, PGPORT, PGDATABASE and
 * pg's defaults, a port given as text read as a number, and a database
 * given nowhere named after the user.
 */
function poolAddress(o: PoolLike["options"]): PoolAddress {
  if (typeof o !== "object" || o === null) return resolveAddress(o);
  let address = poolAddresses.get(o);
  if (address === undefined) {
    address = resolveAddress(o);
    poolAddresses.set(o, address);
  }
  return address;
}

function resolveAddress(o: PoolLike["options"]): PoolAddress {
  if (ConnectionParameters !== undefined) {
    try {
      const p = new ConnectionParameters(o ?? {});
      return {
        host: typeof p.host === "string" ? p.host : "localhost",
        port: Number(p.port),
        database: typeof p.database === "string" ? p.database : "",
      };
    } catch {
      // read as below
    }
  }
  // A pg whose files are laid out otherwise (its class never seen), or a
  // configuration it would refuse: what the options say, with pg's
  // defaults. pg's own reading is not copied here; it has more sources.
  return {
    host: typeof o?.host === "string" ? o.host : "localhost",
    port: Number(o?.port) || 5432,
    database: typeof o?.database === "string" ? o.database : "",
  };
}
