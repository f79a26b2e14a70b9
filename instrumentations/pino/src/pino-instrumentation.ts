// pino: trace and customer correlation on every line, and capture of the
// lines for OTLP export.
//
// pino builds each line in one method shared by every logger through the
// prototype chain (`[asJson]` in lib/proto.js). Wrapping that one method
// reaches every logger, including ones created before Threadline started
// and children of any depth, without touching their options. Correlation
// fields are a cached JSON fragment appended to the line's time, which
// pino writes as it is right after the level: no object is built or merged
// per line, nothing is written to the logger, and a context's fragment is
// built once. The finished line is handed to the sink as it is; parsing it
// for OTLP happens a batch at a time, outside requests.
import {
  context,
  INVALID_TRACEID as INVALID_TRACE_ID,
  trace,
  type Context,
  type Span,
} from "@opentelemetry/api";
import {
  diag,
  getCustomerFromContext,
  hookModule,
  lateLoadProblem,
  OwnField,
  replaceMethod,
  watchLevelOf,
  watchList,
  type Instrumentation,
  type LogRecordSink,
} from "@threadline/core";
import {
  DEFAULT_REDACT_PATHS,
  redactSecrets,
  withRedactingSerializers,
} from "./redact.ts";

/** Options of {@link PinoInstrumentation}. */
export interface PinoInstrumentationConfig {
  /** Receives every line written inside or outside a request (for OTLP export). */
  sink?: LogRecordSink;
  /**
   * Field names: `otel` writes `trace_id`/`span_id`, `ecs` writes `trace.id`/`span.id`.
   * The customer id is always `customer.id`.
   * @default 'otel'
   */
  fields?: "otel" | "ecs";
  /**
   * Paths redacted in loggers created after start that set no `redact`
   * option of their own (pino's redact syntax); `false` turns it off.
   * @default DEFAULT_REDACT_PATHS
   */
  redact?: readonly string[] | false;
}

export { DEFAULT_REDACT_PATHS } from "./redact.ts";

/** Set on loggers (and so inherited by their children) that get the default redaction. */
const DEFAULT_REDACTION = Symbol("threadline.redact");
/**
 * Set on loggers made after start (and so inherited by their children):
 * which of pino's own fields their lines begin with (OwnField bits).
 */
const OWN_FIELDS = Symbol("threadline.ownFields");
/**
 * A bit of OWN_FIELDS beside the OwnField ones, never handed to the sink:
 * the logger's time function is the application's, and whether it writes
 * pino's time field is learnt from the first line it times.
 */
const TIME_UNSEEN = 1 << 30;

const NAME = "@threadline/instrumentation-pino";

type PinoFactory = (...args: unknown[]) => unknown;
type LogMethod = (this: unknown, ...args: unknown[]) => void;
/** What is needed from pino's lib/tools.js to build level methods. */
interface PinoTools {
  genLog: (level: number, hook: unknown) => LogMethod;
  noop: unknown;
}
const HOOKS = Symbol.for("pino.hooks");
/** Text with something in it besides whitespace. */
const NOT_BLANK = /\S/;
/**
 * pino's standard levels a watched request turns on (down to its watch
 * level): all of them, for a logger set above `warn` as for one at `info`.
 */
const WATCHABLE: ReadonlyArray<readonly [string, number]> = [
  ["fatal", 60],
  ["error", 50],
  ["warn", 40],
  ["info", 30],
  ["debug", 20],
  ["trace", 10],
];

type AsJson = (
  this: PinoLogger,
  obj: unknown,
  msg: unknown,
  num: number,
  time: string,
) => string;
interface PinoLogger {
  levels?: { labels?: Record<number, string> };
  [key: symbol]: unknown;
}

/**
 * Severity by a level's name where the name says it (syslog's, in any
 * order pino is told to compare levels), else by pino's default scale.
 */
const SEVERITY_BY_NAME: ReadonlyMap<string, number> = new Map([
  ["trace", 1],
  ["debug", 5],
  ["info", 9],
  ["notice", 10],
  ["warn", 13],
  ["warning", 13],
  ["error", 17],
  ["err", 17],
  ["crit", 18],
  ["critical", 18],
  ["alert", 21],
  ["fatal", 21],
  ["emerg", 22],
  ["emergency", 22],
]);

function severityOf(level: number, label: string | undefined): number {
  return (
    (label === undefined ? undefined : SEVERITY_BY_NAME.get(label)) ??
    severityNumber(level)
  );
}

/**
 * A logger switched off (`level: "silent"`, `enabled: false`): a watch
 * asks for more of what a logger writes, never for a logger to write.
 */
function switchedOff(logger: unknown): boolean {
  return (logger as { levelVal?: unknown }).levelVal === Infinity;
}

function severityNumber(level: number): number {
  if (level < 20) return 1; // TRACE
  if (level < 30) return 5; // DEBUG
  if (level < 40) return 9; // INFO
  if (level < 50) return 13; // WARN
  if (level < 60) return 17; // ERROR
  return 21; // FATAL
}

function symbolNamed(proto: object, description: string): symbol | undefined {
  for (
    let o: object | null = proto;
    o !== null;
    o = Object.getPrototypeOf(o) as object | null
  ) {
    for (const s of Object.getOwnPropertySymbols(o))
      if (s.description === description) return s;
  }
  return undefined;
}

/**
 * `s`, flattened: V8 turns a concatenation into one flat string in place
 * the first time a character is read from it (later reads find it flat),
 * and a line built on a flat string is written faster than one built on
 * a concatenation, which is walked piece by piece for every line.
 */
function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}

/**
 * Which of pino's own fields (OwnField bits) the lines of `logger`, just
 * made, begin with, as its options made it: the level under `level`
 * unless a level formatter names it otherwise, the time under `time`
 * unless `timestamp` is off or writes another key, `pid` and `hostname`
 * where `base` (through a bindings formatter) has them. A field of one of
 * these names that the logger does not write is the application's.
 * Children inherit it: their bindings are the application's.
 *
 * Only pino's own time functions (`standardTimes`) are asked here: they
 * keep no state. A function of the application's may (a sequence number),
 * and pino calls it once when the logger is made and once per line; one
 * more call would change what the application's lines say, so its field
 * is read from the first line it times (TIME_UNSEEN, see emitRecord).
 */
function ownFieldsOf(
  logger: PinoLogger,
  standardTimes: ReadonlySet<unknown>,
): number {
  const own = (description: string): unknown => {
    const s = symbolNamed(logger, description);
    return s === undefined ? undefined : logger[s];
  };
  let fields = 0;
  const levels = own("pino.lsCache");
  const first =
    typeof levels === "object" && levels !== null
      ? Object.values(levels)[0]
      : undefined;
  if (typeof first === "string" && first.startsWith('{"level":'))
    fields |= OwnField.level;
  const time = own("pino.time");
  if (standardTimes.has(time)) {
    if ((time as () => string)().startsWith(',"time":'))
      fields |= OwnField.time;
  } else if (typeof time === "function") fields |= TIME_UNSEEN;
  const chindings = own("pino.chindings");
  if (typeof chindings === "string" && chindings.length > 1)
    try {
      const base = JSON.parse(`{${chindings.slice(1)}}`) as object;
      if (Object.hasOwn(base, "pid")) fields |= OwnField.pid;
      if (Object.hasOwn(base, "hostname")) fields |= OwnField.hostname;
    } catch {
      // not JSON: nothing of it is taken as pino's
    }
  return fields;
}

/**
 * `logger`, with V8 told to keep its properties fast. pino() gives a
 * logger more properties, one at a time, than V8 keeps in fast mode on an
 * ordinary object, so a root logger is a hash table and every property
 * pino reads while writing a line (its stream, time, chindings, level
 * cache, ...) is a dictionary lookup; plain pino's root loggers measure
 * about an eighth slower than their children, which are fresh objects
 * with few properties of their own. V8 turns an object that becomes a
 * prototype back into fast mode once code reads through it, so the logger
 * is given a throwaway heir. Nothing about the logger changes but its
 * speed.
 */
function keepFast(logger: unknown): unknown {
  if (typeof logger === "object" && logger !== null) Object.create(logger);
  return logger;
}

export class PinoInstrumentation implements Instrumentation {
  readonly name = NAME;
  #sink: LogRecordSink | undefined;
  readonly #redact: readonly string[] | false;
  readonly #traceKey: string;
  readonly #spanKey: string;
  #enabled = false;
  #unhook: (() => void) | undefined;
  readonly #restore: Array<() => void> = [];
  #late: string[] = [];
  /** The newest copy of pino's tools loaded (each pino copy loads its own before its proto). */
  #tools: PinoTools | undefined;
  // One-entry cache: consecutive lines mostly come from the same context.
  #lastContext: Context | undefined;
  #lastSpan: Span | undefined;
  #lastFragment = "";
  /** OwnField.customer when the last context's fragment has its customer, else 0. */
  #lastCustomer = 0;
  /** That customer. */
  #lastCustomerId: string | undefined;
  /** pino's own asJson behind each copy's patched one. */
  readonly #unpatched = new WeakMap<AsJson, AsJson>();

  constructor(config: PinoInstrumentationConfig = {}) {
    this.#sink = config.sink;
    this.#redact = config.redact ?? DEFAULT_REDACT_PATHS;
    const ecs = config.fields === "ecs";
    this.#traceKey = ecs ? "trace.id" : "trace_id";
    this.#spanKey = ecs ? "span.id" : "span_id";
  }

  /** Replaces the sink (or removes it with `undefined`). */
  setSink(sink: LogRecordSink | undefined): void {
    this.#sink = sink;
  }

  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    enabledInstance = this;
    // First: the prototype's patch needs the tools of the same pino copy.
    const tools = hookModule({
      module: "pino",
      file: "lib/tools.js",
      onLoad: (exports) => {
        const t = exports as Partial<PinoTools> | null;
        if (typeof t?.genLog === "function" && t.noop !== undefined)
          this.#tools = t as PinoTools;
        return undefined;
      },
    });
    const { late, unhook } = hookModule({
      module: "pino",
      file: "lib/proto.js",
      onLoad: (exports) => {
        if (typeof exports === "function")
          this.#patch(
            Object.getPrototypeOf((exports as () => object)()) as Record<
              symbol,
              unknown
            >,
          );
        return undefined;
      },
    });
    this.#late = late;
    const factory = hookModule({
      module: "pino",
      file: "pino.js",
      onLoad: (exports) =>
        typeof exports === "function"
          ? this.#factoryFor(exports as PinoFactory)
          : undefined,
    });
    this.#unhook = () => {
      unhook();
      tools.unhook();
      factory.unhook();
    };
  }

  /**
   * Wraps pino() so that the loggers it makes keep fast properties (see
   * {@link keepFast}) and, unless redaction is off, loggers that choose no
   * redaction get the paths: the defaults by the one-pass redaction of
   * redact.ts (marked on the logger, applied in asJson) when the paths
   * include them all, the others by pino's `redact`.
   */
  /** This instance's wrapper of pino's `original` factory, made once. */
  #factoryFor(original: PinoFactory): PinoFactory {
    let wrapped = this.#factories.get(original);
    if (wrapped === undefined) {
      wrapped = this.#wrapFactory(original, this.#redact);
      this.#factories.set(original, wrapped);
    }
    return wrapped;
  }

  readonly #factories = new WeakMap<PinoFactory, PinoFactory>();

  #wrapFactory(
    original: PinoFactory,
    paths: readonly string[] | false,
  ): PinoFactory {
    const self = this;
    const withRedaction =
      paths === false ? original : this.#withDefaultRedaction(original, paths);
    const standardTimes = new Set(
      Object.values(
        (original as { stdTimeFunctions?: object }).stdTimeFunctions ?? {},
      ),
    );
    const wrapped = function pino(this: unknown, ...args: unknown[]): unknown {
      if (!self.#enabled) {
        // The application's pino() from before a shutdown() and init()
        // again: the instrumentation started since makes its loggers,
        // redaction and all.
        const now = enabledInstance;
        return now === undefined || now === self
          ? original.apply(this, args)
          : now.#factoryFor(original).apply(this, args);
      }
      const logger = withRedaction.apply(this, args);
      if (typeof logger === "object" && logger !== null)
        (logger as PinoLogger)[OWN_FIELDS] = ownFieldsOf(
          logger as PinoLogger,
          standardTimes,
        );
      self.#exportAfterStreamWrite(logger);
      return keepFast(logger);
    } as PinoFactory;
    // pino's statics (destination, transport, symbols, ...), and the ESM/TS names.
    for (const key of Object.keys(original))
      (wrapped as unknown as Record<string, unknown>)[key] = (
        original as unknown as Record<string, unknown>
      )[key];
    (wrapped as unknown as Record<string, unknown>)["default"] = wrapped;
    (wrapped as unknown as Record<string, unknown>)["pino"] = wrapped;
    return wrapped;
  }

  /**
   * A logger with a `hooks.streamWrite` (pino's place to scrub the
   * finished line) has its lines exported as the hook left them: pino
   * calls the hook on what asJson returns, so this logger (and its
   * children, which inherit both) gets an asJson of its own that keeps
   * the record's details for a wrapper of the hook, which hands the sink
   * the hook's result (nothing, when the hook dropped the line). Loggers without the hook are left as they are and
   * pay nothing.
   */
  #exportAfterStreamWrite(logger: unknown): void {
    if (typeof logger !== "object" || logger === null) return;
    const target = logger as PinoLogger;
    const hooks = target[HOOKS] as { streamWrite?: unknown } | undefined;
    const hook = hooks?.streamWrite;
    const asJsonSym = symbolNamed(target, "pino.asJson");
    if (typeof hook !== "function" || asJsonSym === undefined) return;
    const patched = target[asJsonSym] as AsJson;
    const original = this.#unpatched.get(patched);
    if (original === undefined) return;
    const messageKeySym = symbolNamed(target, "pino.messageKey");
    const self = this;
    /** The line asJson just made, waiting for the hook: who made it, at what level and time, in which span, whether with its customer. */
    let pending:
      | {
          logger: PinoLogger;
          num: number;
          time: string;
          span: Span | undefined;
          customer: number;
        }
      | undefined;
    target[asJsonSym] = function threadlineAsJsonBeforeHook(
      this: PinoLogger,
      obj,
      msg,
      num,
      time,
    ): string {
      pending = undefined;
      if (!self.#enabled || self.#sink === undefined)
        return patched.call(this, obj, msg, num, time);
      // As the shared asJson does (see #patch), but the sink waits for the hook.
      const line = self.#correlated(this, original, obj, msg, num, time);
      pending = {
        logger: this,
        num,
        time,
        span: self.#lastSpan,
        customer: self.#lastCustomer,
      };
      return line;
    } satisfies AsJson;
    target[HOOKS] = {
      ...hooks,
      streamWrite: function threadlineStreamWrite(
        this: unknown,
        line: string,
      ): unknown {
        const made = pending;
        pending = undefined;
        const out = (hook as (s: string) => unknown).call(this, line);
        const sink = self.#sink;
        // A line the hook emptied (pino writes nothing of it, or a blank
        // line) is one the application dropped: it is not exported either.
        if (
          made !== undefined &&
          sink !== undefined &&
          typeof out === "string" &&
          NOT_BLANK.test(out)
        )
          emitRecord(
            sink,
            out,
            made.logger,
            made.num,
            made.time,
            (messageKeySym === undefined
              ? undefined
              : (made.logger[messageKeySym] as string | undefined)) ?? "msg",
            made.span,
            made.customer,
          );
        return out;
      },
    };
  }

  /**
   * pino() giving loggers that choose no redaction the paths. The defaults
   * stay in the one pass even beside paths of the operator's own: only
   * there do header names match in any case, and pino's redaction of all
   * of them would cost every line four times over.
   */
  #withDefaultRedaction(
    original: PinoFactory,
    paths: readonly string[],
  ): PinoFactory {
    const onePass = DEFAULT_REDACT_PATHS.every((p) => paths.includes(p));
    let redact = {
      paths: onePass
        ? paths.filter((p) => !DEFAULT_REDACT_PATHS.includes(p))
        : [...paths],
    };
    let pathsChecked = false;
    const withRedact = (args: unknown[]): unknown[] => {
      const first = args[0];
      if (redact.paths.length === 0) return [...args];
      if (first === undefined || first === null)
        return [{ redact }, ...args.slice(1)];
      if (typeof (first as { write?: unknown }).write === "function")
        return [{ redact }, ...args];
      if (typeof first === "object")
        return [{ ...first, redact }, ...args.slice(1)];
      // pino("/var/log/app.log"): a destination named by its path.
      if (typeof first === "string") return [{ redact }, ...args];
      return [...args];
    };
    const make = (self: unknown, args: unknown[]): unknown => {
      args = withRedact(args);
      if (!onePass) return original.apply(self, args);
      // Serializers run inside pino, after the line's fields are redacted:
      // their output is redacted as it comes out.
      const first = args[0];
      if (typeof first === "object" && first !== null && !("write" in first))
        args[0] = withRedactingSerializers(first);
      const logger = original.apply(self, args);
      if (typeof logger === "object" && logger !== null)
        (logger as Record<symbol, unknown>)[DEFAULT_REDACTION] = true;
      return logger;
    };
    return function pino(this: unknown, ...args: unknown[]): unknown {
      const first = args[0];
      // `redact: undefined` (an unset variable's split) or `null` is no
      // choice: pino redacts nothing for either.
      const chosen =
        typeof first === "object" &&
        first !== null &&
        typeof (first as { write?: unknown }).write !== "function" &&
        (first as { redact?: unknown }).redact != null;
      if (chosen) return original.apply(this, args);
      try {
        return make(this, args);
      } catch (err) {
        // A path pino cannot read must not stop the application making
        // its loggers: ask pino which paths it refuses, once, and leave
        // those out.
        if (pathsChecked || redact.paths.length === 0) throw err;
        pathsChecked = true;
        const refused = redact.paths.filter((p) => {
          try {
            original({ redact: { paths: [p] } }, { write() {} });
            return false;
          } catch {
            return true;
          }
        });
        if (refused.length === 0) throw err;
        diag.warn(
          `pino refused the redaction paths ${refused.map((p) => JSON.stringify(p)).join(", ")} (THREADLINE_LOG_REDACT); the others are redacted`,
        );
        redact = { paths: redact.paths.filter((p) => !refused.includes(p)) };
        return make(this, args);
      }
    } as PinoFactory;
  }

  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    if (enabledInstance === this) enabledInstance = undefined;
    this.#unhook?.();
    this.#unhook = undefined;
    for (const undo of this.#restore.splice(0)) undo();
  }

  selfCheck(): string[] {
    return this.#late.length > 0
      ? [
          lateLoadProblem(
            "pino",
            "its lines carry trace ids, but the pino() the application already holds makes loggers without secret redaction (THREADLINE_LOG_REDACT) whose lines are exported before their streamWrite hook, and loggers made before now write no debug lines for a watched customer",
          ),
        ]
      : [];
  }

  /**
   * The span and JSON fragment of a context, kept for the last context
   * seen: a request's lines share one context object (contexts are
   * immutable), so consecutive lines skip the lookups.
   */
  #correlate(ctx: Context): void {
    let span = trace.getSpan(ctx);
    if (span !== undefined && span.spanContext().traceId === INVALID_TRACE_ID)
      span = undefined;
    const customer = getCustomerFromContext(ctx);
    let f = "";
    if (span !== undefined) {
      const sc = span.spanContext();
      f = `,"${this.#traceKey}":"${sc.traceId}","${this.#spanKey}":"${sc.spanId}"`;
    }
    // Customer ids are validated to need no JSON escaping (see isValidCustomerId).
    if (customer !== undefined) f += `,"customer.id":"${customer}"`;
    this.#lastContext = ctx;
    this.#lastSpan = span;
    this.#lastFragment = flat(f);
    this.#lastCustomer = customer === undefined ? 0 : OwnField.customer;
    this.#lastCustomerId = customer;
  }

  #patch(proto: Record<string | symbol, unknown>): void {
    const asJsonSym = symbolNamed(proto, "pino.asJson");
    if (asJsonSym === undefined || typeof proto[asJsonSym] !== "function")
      return;
    // The message key lives on logger instances, not on the shared prototype.
    const original = proto[asJsonSym] as AsJson;
    const self = this;
    let messageKeySym: symbol | undefined;
    const asJson: AsJson = function threadlineAsJson(obj, msg, num, time) {
      if (!self.#enabled) return original.call(this, obj, msg, num, time);
      const line = self.#correlated(this, original, obj, msg, num, time);
      const sink = self.#sink;
      if (sink !== undefined) {
        messageKeySym ??= symbolNamed(this, "pino.messageKey");
        const messageKey =
          messageKeySym === undefined
            ? "msg"
            : ((this[messageKeySym] as string | undefined) ?? "msg");
        emitRecord(
          sink,
          line,
          this,
          num,
          time,
          messageKey,
          self.#lastSpan,
          self.#lastCustomer,
        );
      }
      return line;
    };
    replaceMethod(proto, asJsonSym, () => asJson, this.#restore);
    this.#unpatched.set(asJson, original);
    this.#patchLevels(proto);
    this.#patchChild(proto);
  }

  /**
   * The line pino's own asJson makes of a call, its fields redacted when
   * the logger took the default redaction, with the trace and customer of
   * the active context written in.
   */
  #correlated(
    logger: PinoLogger,
    original: AsJson,
    obj: unknown,
    msg: unknown,
    num: number,
    time: string,
  ): string {
    if (typeof obj === "object" && logger[DEFAULT_REDACTION] === true)
      obj = redactSecrets(obj as Record<string, unknown>);
    const ctx = context.active();
    if (ctx !== this.#lastContext) this.#correlate(ctx);
    const fragment = this.#lastFragment;
    // The line's own customer.id would come after ours, and a reader of
    // the JSON (jq, a log shipper) keeps the last: kept as the exported
    // record keeps it, under log.customer.id when it names another.
    const customer = this.#lastCustomerId;
    if (
      customer !== undefined &&
      typeof obj === "object" &&
      obj !== null &&
      (obj as Record<string, unknown>)["customer.id"] !== undefined &&
      Object.getPrototypeOf(obj) === Object.prototype
    )
      obj = ownCustomerKept(obj as Record<string, unknown>, customer);
    // pino writes the time as it is given, right after the level and
    // before the bindings and the line's own fields: a field the
    // application names the same way comes later and wins.
    return original.call(
      logger,
      obj,
      msg,
      num,
      fragment === "" ? time : time + fragment,
    );
  }

  /**
   * Bindings given to child() or setBindings() pass the same redaction as
   * a line's fields, and so do child()'s own serializers and formatters.
   */
  #patchChild(proto: Record<string | symbol, unknown>): void {
    const self = this;
    for (const key of ["child", "setBindings"] as const) {
      const original = proto[key];
      if (typeof original !== "function") continue;
      const wrapped = function (
        this: PinoLogger,
        bindings: unknown,
        ...rest: unknown[]
      ): unknown {
        if (
          self.#enabled &&
          this[DEFAULT_REDACTION] === true &&
          typeof bindings === "object" &&
          bindings !== null
        ) {
          bindings = redactSecrets(bindings as Record<string, unknown>);
          if (rest.length > 0) rest[0] = withRedactingSerializers(rest[0]);
        }
        return (original as (...a: unknown[]) => unknown).call(
          this,
          bindings,
          ...rest,
        );
      };
      replaceMethod(proto, key, () => wrapped, this.#restore);
    }
  }

  /**
   * Lets a watched request log below the logger's level. pino gives every
   * disabled level method the same no-op function when a level is set;
   * those of the six standard levels are replaced by a gate that, only while
   * someone is watched, looks up the request's watch level and calls the
   * real method pino would have built. Others' requests pay one field test
   * per disabled call; enabled levels are untouched.
   */
  #patchLevels(proto: Record<symbol, unknown>): void {
    const tools = this.#tools;
    const setLevelSym = symbolNamed(proto, "pino.setLevel");
    const onlyCustomSym = symbolNamed(proto, "pino.useOnlyCustomLevels");
    const named = proto as unknown as Record<string, unknown>;
    const originalIsEnabled = named["isLevelEnabled"];
    if (
      tools === undefined ||
      setLevelSym === undefined ||
      typeof proto[setLevelSym] !== "function" ||
      typeof originalIsEnabled !== "function"
    )
      return;
    const self = this;
    /** Each gate's level: isLevelEnabled answers for what the gate would do. */
    const gates = new WeakMap<LogMethod, number>();
    const makeGate = (level: number, hook: unknown): LogMethod => {
      const real = tools.genLog(level, hook);
      const g = function threadlineWatchedLevel(this: unknown, ...args) {
        if (!watchList.active || !self.#enabled) return;
        const w = watchLevelOf(context.active());
        if (w !== undefined && w <= level) real.apply(this, args);
      } satisfies LogMethod;
      gates.set(g, level);
      return g;
    };
    // Loggers without a logMethod hook (nearly all) share one gate per level.
    const shared = new Map<string, LogMethod>();
    const gate = (name: string, level: number, hook: unknown) => {
      if (hook !== undefined) return makeGate(level, hook);
      let g = shared.get(name);
      if (g === undefined) shared.set(name, (g = makeGate(level, undefined)));
      return g;
    };
    const originalSetLevel = proto[setLevelSym] as (
      this: PinoLogger,
      level: unknown,
    ) => void;
    const setLevel = function threadlineSetLevel(
      this: PinoLogger,
      level: unknown,
    ): void {
      originalSetLevel.call(this, level);
      if (!self.#enabled || (onlyCustomSym && this[onlyCustomSym] === true))
        return;
      if (switchedOff(this)) return;
      const target = this as unknown as Record<string, unknown>;
      const hook = (this[HOOKS] as { logMethod?: unknown } | undefined)
        ?.logMethod;
      for (const [name, value] of WATCHABLE)
        if (target[name] === tools.noop) target[name] = gate(name, value, hook);
    };
    const isLevelEnabled = function threadlineIsLevelEnabled(
      this: unknown,
      logLevel: string,
    ): boolean {
      if ((originalIsEnabled as (l: string) => boolean).call(this, logLevel))
        return true;
      if (!watchList.active || !self.#enabled) return false;
      // Only a level whose method is a gate logs for a watched request: a
      // level the logger does not have (a logger with only custom levels
      // has no `debug`), a switched-off logger's, or one of a logger with
      // only custom levels (left without gates) stays as pino answers it.
      const method = (this as Record<string, unknown>)[logLevel];
      const value =
        typeof method === "function"
          ? gates.get(method as LogMethod)
          : undefined;
      if (value === undefined) return false;
      const w = watchLevelOf(context.active());
      return w !== undefined && w <= value;
    };
    replaceMethod(proto, setLevelSym, () => setLevel, this.#restore);
    replaceMethod(proto, "isLevelEnabled", () => isLevelEnabled, this.#restore);
  }
}

/**
 * Hands the sink a line and what it takes with it; never throws into
 * logging. `time` is what the logger's time function gave the line.
 */
function emitRecord(
  sink: LogRecordSink,
  line: string,
  logger: PinoLogger,
  num: number,
  time: string,
  messageKey: string,
  span: Span | undefined,
  customer: number,
): void {
  const sc = span?.spanContext();
  const label = logger.levels?.labels?.[num];
  let ownFields =
    (logger[OWN_FIELDS] as number | undefined) ?? lateOwnFields(logger);
  if (ownFields !== undefined && ownFields >= TIME_UNSEEN)
    ownFields = timeSeen(logger, ownFields, time);
  try {
    sink.emit(
      line,
      severityOf(num, label),
      label,
      sc?.traceId,
      sc?.spanId,
      sc?.traceFlags ?? 0,
      messageKey,
      ownFields === undefined ? undefined : ownFields | customer,
    );
  } catch {
    // exporting must never break logging
  }
}

/**
 * The OwnField bits of a logger made by a pino() Threadline did not wrap (a
 * pino loaded before start), read from its root logger as pino() would
 * have, and kept there for it and its children. Its time function is
 * judged by the first line it times, as an application's is: no standard
 * functions are known to tell it by. Undefined for what is not a pino
 * logger.
 */
function lateOwnFields(logger: PinoLogger): number | undefined {
  const chindings = symbolNamed(logger, "pino.chindings");
  if (chindings === undefined) return undefined;
  // A child is made with its parent as its prototype, and each logger has
  // chindings of its own: the root is the last of the chain that has.
  let root: object = logger;
  for (
    let o = Object.getPrototypeOf(logger) as object | null;
    o !== null;
    o = Object.getPrototypeOf(o) as object | null
  )
    if (Object.hasOwn(o, chindings)) root = o;
  const fields = ownFieldsOf(root as PinoLogger, NO_STANDARD_TIMES);
  (root as PinoLogger)[OWN_FIELDS] = fields;
  return fields;
}

const NO_STANDARD_TIMES: ReadonlySet<unknown> = new Set();

/**
 * The OwnField bits of a logger whose time function is the application's,
 * now that it has timed a line: pino's time field if the line's time is
 * written under `time`. Kept where pino() put them, for the logger and its
 * children alike, so a logger learns this once.
 */
function timeSeen(logger: PinoLogger, fields: number, time: unknown): number {
  const seen =
    (fields & ~TIME_UNSEEN) |
    (typeof time === "string" && time.startsWith(',"time":')
      ? OwnField.time
      : 0);
  let holder: object | null = logger;
  while (holder !== null && !Object.hasOwn(holder, OWN_FIELDS))
    holder = Object.getPrototypeOf(holder) as object | null;
  if (holder !== null) (holder as PinoLogger)[OWN_FIELDS] = seen;
  return seen;
}

/** The instrumentation enabled now, if any (see the factory's wrapper). */
let enabledInstance: PinoInstrumentation | undefined;

/**
 * A line's fields without their `customer.id` (pino leaves out a field
 * whose value is undefined), under `log.customer.id` when it names
 * another customer than the context's `customer`.
 */
function ownCustomerKept(
  obj: Record<string, unknown>,
  customer: string,
): Record<string, unknown> {
  const given = obj["customer.id"];
  return given === customer
    ? { ...obj, "customer.id": undefined }
    : { ...obj, "customer.id": undefined, "log.customer.id": given };
}
