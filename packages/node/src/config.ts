// Resolves the SDK's settings from init() options and the environment.
//
// Precedence: an init() option wins over an environment variable, which
// wins over the default. Standard OTEL_* variables mean what the
// OpenTelemetry specification says; THREADLINE_* are our own. A value that
// cannot be used produces a warning (returned, written once by the caller)
// and the default, never an exception: a typo in a variable must not take
// a service down.
import { fileURLToPath, pathToFileURL } from "node:url";
import { printableUrl, takeUserInfo, WATCH_PATH } from "@threadline/core";
import type { IncomingMessage } from "node:http";
import type { LogLimits } from "./export/json-record.ts";
import type {
  ExemplarFilter,
  TemporalityPreference,
} from "./metrics/instruments.ts";

/**
 * Where the customer id of an edge request comes from: called as the
 * request arrives, it answers synchronously with a string, an integer
 * (taken as its decimal digits) or undefined.
 */
export type CustomerSource = (
  req: IncomingMessage,
) => string | number | undefined;

/** OTLP transport encoding. */
export type OtlpProtocol = "http/protobuf" | "http/json";

/** Options for {@link init}. Every field is optional; see the README's configuration table. */
export interface InitOptions {
  /**
   * `service.name`.
   * @default resourceAttributes' `service.name`, else OTEL_SERVICE_NAME, else
   * OTEL_RESOURCE_ATTRIBUTES' `service.name`, else `unknown_service:node`;
   * an empty name counts as none
   */
  serviceName?: string;
  /** Extra resource attributes, merged over OTEL_RESOURCE_ATTRIBUTES. */
  resourceAttributes?: Record<string, string | number | boolean>;
  /** OTLP/HTTP base URL (a URL object is taken too); `/v1/traces` and `/v1/logs` are appended. @default 'http://localhost:4318' */
  endpoint?: string;
  /** Headers sent with every export (e.g. an API key); a number or a boolean is sent as its text. */
  headers?: Record<string, string>;
  /** @default 'http/protobuf' */
  protocol?: OtlpProtocol;
  /** Share of new traces to record, 0..1 (parent-based). @default OTEL_TRACES_SAMPLER, else 1 */
  sampleRatio?: number;
  /** Whether this service faces untrusted callers (drops all inbound baggage). @default false */
  edge?: boolean;
  /** Callers whose baggage is accepted. @default 'loopback,private' */
  trustedCallers?: string | string[];
  /**
   * A `traceparent` from a caller that is not trusted (every caller of an
   * edge service): its request's span continues the caller's trace, which
   * follows the caller's sampled flag, or starts a trace of its own, linked
   * to the caller's and sampled by this service's sampler. @default 'continue'
   */
  untrustedTraceparent?: "continue" | "link";
  /**
   * Proxies (load balancers) whose X-Forwarded-For names the client
   * recorded as `client.address`, edge or not. @default 'loopback,private'
   */
  trustedProxies?: string | string[];
  /** Hosts that receive baggage, added to loopback and private addresses. */
  internalHosts?: string | string[];
  /** Third-party APIs, host pattern to provider name: `{ 'api.stripe.com': 'stripe' }`. */
  thirdParties?: Record<string, string>;
  /** Request header carrying the customer id at the edge. @default 'x-customer-id' */
  customerHeader?: string;
  /**
   * Takes the customer id from a request at the edge; overrides
   * `customerHeader`. It must return the id synchronously, as a string or an
   * integer (or undefined for none); a promise is no id, with a warning.
   */
  customerFromRequest?: CustomerSource;
  /** Field names for trace correlation in log lines. @default 'otel' (trace_id, span_id) */
  logFields?: "otel" | "ecs";
  /**
   * Redaction for pino loggers created after start that set none: `true`
   * for the defaults, `false` for none, or extra paths added to the defaults.
   * @default true
   */
  logRedact?: boolean | string[];
  /** Export pino log records over OTLP. @default true */
  exportLogs?: boolean;
  /** Export spans. @default true */
  exportTraces?: boolean;
  /** Export metrics over OTLP. @default true */
  exportMetrics?: boolean;
  /** Longest wait for buffered telemetry at shutdown and exit, ms. @default 3000 */
  shutdownTimeoutMs?: number;
  /**
   * Where export runs: 'main' (the application's thread, asynchronously, a
   * batch at a time) or 'worker' (a worker thread: about 20 MB more memory,
   * parsing log lines and network I/O off the application's thread).
   * @default 'main'
   */
  exportThread?: "main" | "worker";
  /** Names of instrumentations to leave off: 'http', 'undici', 'pino', 'pg', 'amqplib'. */
  disabledInstrumentations?: string[];
  /** Incoming paths not to trace: exact, or prefixes ending in `*`. @default [] */
  ignoreIncomingPaths?: string[];
  /** Run the start-up self-check. @default true */
  selfCheck?: boolean;
  /** Event-loop, GC, memory and CPU metrics. @default true */
  runtimeMetrics?: boolean;
  /** Host CPU utilisation, memory and load average. @default false */
  hostMetrics?: boolean;
  /**
   * A Prometheus scrape endpoint (GET /metrics). Off unless given here or
   * `OTEL_METRICS_EXPORTER` lists `prometheus`.
   */
  prometheus?: { host?: string; port?: number } | false;
  /** Alarms: off with false; otherwise where rules come from and where alarms go. */
  alarms?:
    | false
    | {
        rulesFile?: string;
        intervalMs?: number;
        webhookUrl?: string;
        slackWebhookUrl?: string;
        pagerDutyRoutingKey?: string;
        pagerDutyUrl?: string;
      };
  /**
   * The health endpoint (GET /livez, /readyz). Off unless a port is given
   * here or in THREADLINE_HEALTH_PORT (a host alone is warned about).
   */
  health?: { host?: string; port?: number } | false;
  /** PostgreSQL: record bound parameter values (may hold personal data). @default false */
  pgRecordParameters?: boolean;
  /** PostgreSQL: append sqlcommenter comments (traceparent, service) to statements. @default false */
  pgSqlCommenter?: boolean;
  /** RabbitMQ: consumer spans continue the producer's trace, or start one linked to it. @default 'continue' */
  amqpConsumerContext?: "continue" | "link";
  /** RabbitMQ: read baggage (the customer id) from message headers. @default true */
  amqpTrustMessageBaggage?: boolean;
  /** RabbitMQ: exchanges consumed outside the system; their messages carry no baggage. */
  amqpExternalExchanges?: string[];
  /**
   * Where the watch list is read (an http(s) URL, a file path or `file:` URL),
   * or `false` for none. @default the local `threadline dev` when exporting to a loopback endpoint
   */
  watchUrl?: string | false;
  /** How often the watch list is read, ms. @default 5000 */
  watchIntervalMs?: number;
  /** Headers sent when reading the watch list (credentials). */
  watchHeaders?: Record<string, string>;
}

export interface WatchSettings {
  /** http(s) URL or `file:` URL of the watch-list document. */
  url: string;
  intervalMs: number;
  headers: Record<string, string>;
  /** Derived rather than configured: absence is normal, so failures are not warned about. */
  quiet: boolean;
}

export interface BatchSettings {
  scheduleDelayMs: number;
  maxQueueSize: number;
  maxExportBatchSize: number;
}

/** PEM text for an https: endpoint, read from the files the variables name. */
export interface TlsFiles {
  /** Certificates trusted for the endpoint, in place of the system's. */
  ca?: string;
  /** The client's certificate and key, for mutual TLS (both or neither). */
  cert?: string;
  key?: string;
}

export interface SignalExportSettings {
  enabled: boolean;
  url: string;
  headers: Record<string, string>;
  protocol: OtlpProtocol;
  compression: "gzip" | "none";
  /** The most one export request may take; 0: no limit. */
  timeoutMs: number;
  tls: TlsFiles;
  batch: BatchSettings;
}

export interface SpanLimits {
  attributeCountLimit: number;
  attributeValueLengthLimit: number;
  eventCountLimit: number;
  linkCountLimit: number;
  attributePerEventCountLimit: number;
  attributePerLinkCountLimit: number;
}

export type SamplerName =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio";

export interface ResolvedConfig {
  disabled: boolean;
  serviceName: string;
  resourceAttributes: Record<string, string | number | boolean>;
  traces: SignalExportSettings;
  logs: SignalExportSettings;
  metrics: SignalExportSettings;
  /** OTLP metrics' temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE). */
  metricsTemporality: TemporalityPreference;
  /** OTEL_METRICS_EXEMPLAR_FILTER. */
  exemplarFilter: ExemplarFilter;
  sampler: { name: SamplerName; ratio: number };
  propagators: Array<"tracecontext" | "baggage">;
  spanLimits: SpanLimits;
  logLimits: LogLimits;
  edge: boolean;
  trustedCallers: string | string[];
  untrustedTraceparent: "continue" | "link";
  trustedProxies: string | string[];
  internalHosts: string | string[];
  thirdParties: string | Record<string, string>;
  /**
   * Where each of the four trust lists above was read from (the init()
   * option or the variable), for warnings about their entries to name it.
   */
  trustSources: Record<TrustList, string>;
  customerHeader: string;
  customerFromRequest: CustomerSource | undefined;
  ignoreIncomingPaths: string[];
  logFields: "otel" | "ecs";
  /** Extra redaction paths added to the defaults, or false for no redaction. */
  logRedact: false | string[];
  shutdownTimeoutMs: number;
  exportMaxBytes: number;
  exportMaxRetryMs: number;
  exportThread: "main" | "worker";
  instrumentations: {
    http: boolean;
    undici: boolean;
    pino: boolean;
    pg: boolean;
    amqplib: boolean;
  };
  pg: { recordParameters: boolean; sqlCommenter: boolean };
  amqp: {
    consumerContext: "continue" | "link";
    trustMessageBaggage: boolean;
    externalExchanges: string[];
  };
  selfCheck: boolean;
  runtimeMetrics: boolean;
  hostMetrics: boolean;
  prometheus: { host: string; port: number } | undefined;
  health: { host: string; port: number } | undefined;
  alarms: AlarmSettings | undefined;
  watch: WatchSettings | undefined;
  logLevel: string | undefined;
}

type Env = Record<string, string | undefined>;

const DEFAULT_ENDPOINT = "http://localhost:4318";
const MAX_INT = 2 ** 31 - 1;
const INSTRUMENTATION_NAMES = [
  "http",
  "undici",
  "pino",
  "pg",
  "amqplib",
] as const;

class Reader {
  readonly warnings: string[] = [];
  readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }

  str(name: string): string | undefined {
    const v = this.env[name];
    if (v === undefined) return undefined;
    const t = v.trim();
    return t === "" ? undefined : t;
  }

  /**
   * Files read so far, by path (their text, or why they could not be
   * read), with what each check found: the general variables serve every
   * signal.
   */
  readonly #files = new Map<
    string,
    {
      text?: string;
      unread?: string;
      checked: Map<FileCheck, string | undefined>;
    }
  >();

  /**
   * The text of the file the variable names; undefined, with a warning
   * ending in `otherwise`, when it cannot be read or `check` finds it
   * cannot be used. Each file is read once, and checked once by each check.
   */
  file(
    name: string,
    check?: FileCheck,
    otherwise = "it was ignored",
  ): string | undefined {
    const path = this.str(name);
    if (path === undefined) return undefined;
    let file = this.#files.get(path);
    if (file === undefined) {
      file = { checked: new Map() };
      try {
        file.text = process
          .getBuiltinModule("node:fs")
          .readFileSync(path, "utf8");
      } catch (err) {
        file.unread =
          (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      this.#files.set(path, file);
    }
    let warning: string | undefined;
    if (file.text === undefined)
      warning = `${name}: could not read ${JSON.stringify(path)} (${file.unread}); ${otherwise}`;
    else if (check !== undefined) {
      if (!file.checked.has(check)) file.checked.set(check, check(file.text));
      const problem = file.checked.get(check);
      if (problem !== undefined)
        warning = `${name}: ${JSON.stringify(path)} cannot be used (${problem}); ${otherwise}`;
    }
    if (warning === undefined) return file.text;
    // Given once per signal for a general variable: resolveConfig keeps one.
    this.warnings.push(warning);
    return undefined;
  }

  /** Header lists checked so far, by name: the general one serves every signal. */
  readonly #headerLists = new Map<string, Record<string, string>>();

  /**
   * The header list of the variable `name`, or `given` (an init() option
   * of that name), checked once however many settings it serves, so that
   * a bad entry is said once, under the name it was given by.
   */
  headers(
    name: string,
    given?: Readonly<Record<string, string>>,
  ): Record<string, string> {
    let list = this.#headerLists.get(name);
    if (list === undefined) {
      const raw =
        given ?? parseKeyValueList(this.str(name) ?? "", name, this.warnings);
      list = checkedHeaders(raw, name, this.warnings);
      this.#headerLists.set(name, list);
    }
    return list;
  }

  /** `invalid` is what a value other than true or false gives (a safety switch fails safe). */
  bool(name: string, fallback: boolean, invalid = fallback): boolean {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const l = v.toLowerCase();
    if (l === "true") return true;
    if (l === "false") return false;
    this.warnings.push(
      `${name}=${JSON.stringify(v)} is not true or false; using ${invalid}`,
    );
    return invalid;
  }

  /**
   * An integer from `min` to `max`; the specification's integers end at
   * 2^31-1, which is also the longest delay a Node timer keeps (a longer
   * one fires after 1 ms).
   */
  int(name: string, fallback: number, min = 0, max = MAX_INT): number {
    return this.#int(name, min, max, `using ${fallback}`) ?? fallback;
  }

  /**
   * An init() option held to the bounds of its variable, `name`: one that
   * is not an integer in them counts as not given, with a warning, and the
   * variable is read in its place.
   */
  intOption(
    option: string,
    value: unknown,
    name: string,
    fallback: number,
    min = 0,
    max = MAX_INT,
  ): number {
    if (value === undefined || value === null)
      return this.int(name, fallback, min, max);
    if (
      Number.isInteger(value) &&
      (value as number) >= min &&
      (value as number) <= max
    )
      return value as number;
    this.warnings.push(
      `${option} ${shown(value)} is not an integer from ${min} to ${max}; using ${this.str(name) === undefined ? fallback : name}`,
    );
    return this.int(name, fallback, min, max);
  }

  /**
   * An init() option as `read` takes it, or, for a value `read` refuses,
   * undefined with a warning: the option counts as not given, and its
   * variable `name` is read in its place, else the default `fallback`
   * applies. Null counts as not given, as `??` reads it. A value of
   * another type must not throw later, where it is used: that would turn
   * all telemetry off for one mistyped option.
   */
  option<T>(
    option: string,
    value: unknown,
    read: (value: unknown) => T | undefined,
    expected: string,
    name?: string,
    fallback?: string,
  ): T | undefined {
    if (value === undefined || value === null) return undefined;
    const v = read(value);
    if (v === undefined)
      this.warnings.push(
        `${option} is ${describe(value)}, not ${expected}; ${this.#instead(name, fallback)}`,
      );
    return v;
  }

  /** One of `choices` (in any case, as its variable), as {@link option}. */
  choiceOption<const T extends string>(
    option: string,
    value: unknown,
    choices: readonly T[],
    name: string,
    fallback: T,
  ): T | undefined {
    if (value === undefined || value === null) return undefined;
    const v = typeof value === "string" ? value.trim().toLowerCase() : "";
    if ((choices as readonly string[]).includes(v)) return v as T;
    // A choice is no secret: the value refused is worth seeing.
    const given =
      typeof value === "string" ? JSON.stringify(value) : describe(value);
    this.warnings.push(
      `${option} is ${given}, not ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}; ${this.#instead(name, fallback)}`,
    );
    return undefined;
  }

  /**
   * A map option (headers, attributes, third parties): an object, or the
   * `key=value,...` text its variable takes, read as the variable is (and,
   * with `resource`, as OTEL_RESOURCE_ATTRIBUTES is: keys percent-decoded
   * too, and dropped whole for an entry that cannot be decoded). An entry of another type than `entry` takes is left
   * out, with a warning naming its key, never its value: headers carry
   * credentials.
   */
  mapOption<V>(
    option: string,
    value: unknown,
    name: string | undefined,
    entry: (v: unknown) => V | undefined,
    expected: string,
    resource = false,
  ): Record<string, V | string> | undefined {
    if (typeof value === "string") {
      const problems: string[] = [];
      const map = parseKeyValueList(value, option, problems, resource);
      this.warnings.push(...problems);
      if (!resource || problems.length === 0) return map;
      this.warnings.push(`${option} was ignored whole`);
      return undefined;
    }
    const map = this.option(
      option,
      value,
      (v) => (isObject(v) ? v : undefined),
      "an object or a key=value list",
      name,
    );
    if (map === undefined) return undefined;
    const out: Record<string, V> = {};
    for (const [key, v] of Object.entries(map)) {
      const taken = entry(v);
      if (taken !== undefined) out[key] = taken;
      else
        this.warnings.push(
          `${option}' ${JSON.stringify(key)} is ${describe(v)}, not ${expected}; it was ignored`,
        );
    }
    return out;
  }

  /** What a warning of an option says is used in its place. */
  /**
   * Undefined, with a warning that the init() option `option` (its value
   * as `problem` says) is not used: its variable `name` is read in its
   * place, else `fallback` applies, as for a value {@link option} refuses.
   */
  refuse(
    option: string,
    problem: string,
    name?: string,
    fallback?: string,
  ): undefined {
    this.warnings.push(
      `${option} ${problem}; ${this.#instead(name, fallback)}`,
    );
    return undefined;
  }

  #instead(name: string | undefined, fallback: string | undefined): string {
    if (name !== undefined && this.str(name) !== undefined)
      return `using ${name}`;
    return fallback === undefined ? "it was ignored" : `using ${fallback}`;
  }

  #int(
    name: string,
    min: number,
    max: number,
    otherwise: string,
  ): number | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    const n = decimalInteger(v);
    if (n === undefined || n < min || n > max) {
      this.warnings.push(
        `${name}=${JSON.stringify(v)} is not an integer from ${min} to ${max}; ${otherwise}`,
      );
      return undefined;
    }
    return n;
  }

  /** One of `choices` (case-insensitive), or `fallback` with a warning. */
  choice<const T extends string>(
    name: string,
    choices: readonly T[],
    fallback: T,
  ): T {
    return this.choiceOf([name], choices, fallback);
  }

  /**
   * The first valid integer among `names` (a signal's variable, then the
   * general one): an invalid value counts as not set.
   */
  intOf(names: string[], fallback: number, min = 0): number {
    for (const [i, name] of names.entries()) {
      const n = this.#int(
        name,
        min,
        MAX_INT,
        `using ${this.#nextSet(names, i) ?? fallback}`,
      );
      if (n !== undefined) return n;
    }
    return fallback;
  }

  /** The first of `names` after the `i`th that is set: the one a refused value falls back to. */
  #nextSet(names: string[], i: number): string | undefined {
    return names.slice(i + 1).find((n) => this.str(n) !== undefined);
  }

  /**
   * The first valid choice among `names` (case-insensitive), as intOf;
   * `consequence` adds what falling back means for a refused value.
   */
  choiceOf<const T extends string>(
    names: string[],
    choices: readonly T[],
    fallback: T,
    consequence?: (refused: string) => string,
  ): T {
    for (const [i, name] of names.entries()) {
      const v = this.str(name)?.toLowerCase();
      if (v === undefined) continue;
      if ((choices as readonly string[]).includes(v)) return v as T;
      this.warnings.push(
        `${name}=${JSON.stringify(v)} is not ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}; using ${this.#nextSet(names, i) ?? fallback}${consequence?.(v) ?? ""}`,
      );
    }
    return fallback;
  }
}

/** The kind of a value, for a warning: never the value, which may be a credential. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" ? "an object" : `a ${type}`;
}

/** A number or a choice refused, as given; another kind of value, as its kind. */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean")
    return String(value);
  return `(${describe(value)})`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isString = (v: unknown): v is string => typeof v === "string";
const asString = (v: unknown) => (isString(v) ? v : undefined);
const asBoolean = (v: unknown) => (typeof v === "boolean" ? v : undefined);

/**
 * A URL option: its text, or a URL object's href. new URL() took either
 * where the option was used, and a URL built from parts (a host and port
 * read from settings) is what a caller holds.
 */
const asUrl = (v: unknown) =>
  isString(v) ? v : v instanceof URL ? v.href : undefined;

/**
 * A value used as text (a header's, a name): a string, or a finite number
 * or a boolean as its text, as HTTP sends one and String() made a service
 * name of one. A tenant id read from JSON settings is often a number.
 */
const asText = (v: unknown) =>
  isString(v)
    ? v
    : (typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean"
      ? String(v)
      : undefined;

/**
 * A port's number, or its decimal digits as its variable takes them: a
 * port read from another setting arrives as text, and health.port took it
 * (the other integer options never did). Digits only, as Number() would
 * read 0x2405 or 1e3 as some other port than the one meant.
 */
function portOf(v: unknown): number | undefined {
  if (typeof v === "string") return decimalInteger(v);
  return Number.isInteger(v) ? (v as number) : undefined;
}

/**
 * `text` as an integer in decimal digits, spaces around them allowed;
 * undefined for anything else: Number() reads 0x10, 1e3 and 0b11 as
 * numbers the setting's writer is unlikely to have meant.
 */
function decimalInteger(text: string): number | undefined {
  return /^\s*-?\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** Split as the list variables are: by commas, each entry trimmed, empty ones left out. */
function splitList(raw: string): string[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A list option: an array of strings, or the comma-separated text its variable takes. */
function asList(v: unknown): string[] | undefined {
  if (typeof v === "string") return splitList(v);
  return Array.isArray(v) && v.every(isString) ? v : undefined;
}

/** As {@link asList}, the text left for the reader that takes it (the trust lists parse their own). */
function asListOrText(v: unknown): string | string[] | undefined {
  return typeof v === "string" ? v : asList(v);
}

/**
 * Parses `k=v,k2=v2` with percent-decoded values (OTEL_EXPORTER_OTLP_HEADERS),
 * and with `decodeKeys` percent-decoded keys too (OTEL_RESOURCE_ATTRIBUTES,
 * where a key may hold an encoded `,` or `=`; a header's name has no `%`).
 */
export function parseKeyValueList(
  raw: string,
  name: string,
  warnings: string[],
  decodeKeys = false,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of raw.split(",")) {
    if (item.trim() === "") continue;
    const eq = item.indexOf("=");
    const key = eq === -1 ? "" : item.slice(0, eq).trim();
    if (key === "") {
      // Never echo the item: header lists carry credentials.
      warnings.push(
        `${name} has an entry without ${eq === -1 ? "`=`" : "a key"}; it was ignored`,
      );
      continue;
    }
    try {
      const value = decodeURIComponent(item.slice(eq + 1).trim());
      out[decodeKeys ? decodeURIComponent(key) : key] = value;
    } catch {
      warnings.push(
        `${name} entry "${key}" is not valid percent-encoding; it was ignored`,
      );
    }
  }
  return out;
}

type SignalName = "traces" | "logs" | "metrics";

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// What an HTTP/1.1 field value may hold (as node:http checks it).
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Headers each request gets from the exporter (or the watch list's poll),
 * which knows its body and its connection. (A Host of the user's is sent
 * in place of the URL's, for a proxy's routing.)
 */
const EXPORTER_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "transfer-encoding",
  "connection",
]);

/**
 * A header list with its names lower-cased (HTTP compares them whatever
 * the case, and a later list replaces an earlier one's header that way),
 * keeping only headers HTTP can carry: one bad entry would otherwise fail
 * every export request, and with it all the telemetry. What is left out is
 * said under `name`, the variable or option the list came from.
 */
function checkedHeaders(
  list: Readonly<Record<string, string>>,
  name: string,
  warnings: string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [header, value] of Object.entries(list)) {
    if (!HEADER_NAME.test(header) || !HEADER_VALUE.test(value)) {
      // Never echo the value: header lists carry credentials.
      warnings.push(
        `${name}: "${HEADER_NAME.test(header) ? header : "(an invalid name)"}" is not a valid HTTP header; it was ignored`,
      );
      continue;
    }
    const key = header.toLowerCase();
    if (EXPORTER_HEADERS.has(key)) {
      warnings.push(
        `${name}: "${header}" is set by the exporter for each request; it was ignored`,
      );
      continue;
    }
    out[key] = value;
  }
  return out;
}

/**
 * The external exchanges, as given: names are matched exactly, so one
 * written as a pattern ("partner-*") is warned of, as it would let baggage
 * go to the exchanges it was meant to cover.
 */
function exchangeNames(r: Reader, names: string[]): string[] {
  for (const name of names)
    if (/[*#?]/.test(name))
      r.warnings.push(
        `THREADLINE_AMQP_EXTERNAL_EXCHANGES: exchanges are named exactly, not by patterns: ${JSON.stringify(name)} covers only an exchange of that very name`,
      );
  return names;
}

/**
 * The incoming paths not traced, as given: matched against a request's
 * path exactly, or as a prefix ending in *, so an entry no request's path
 * can match is warned of rather than left to trace what it was meant to
 * leave out.
 */
function ignoredPaths(r: Reader, paths: string[]): string[] {
  const warn = (path: string, why: string) =>
    r.warnings.push(`THREADLINE_IGNORE_PATHS: ${JSON.stringify(path)} ${why}`);
  for (const path of paths)
    if (!path.startsWith("/") && path !== "*")
      warn(path, "never matches: a request's path starts with /");
    else if (path.slice(0, -1).includes("*"))
      warn(
        path,
        "matches only a path of that very text: * stands for the rest of a path only at the end",
      );
    else if (path.length > 1 && path.endsWith("/"))
      warn(
        path,
        `matches ${path} alone, not ${path.slice(0, -1)}: paths are matched exactly`,
      );
  return paths;
}

function signalUrl(
  r: Reader,
  signal: SignalName,
  option: string | undefined,
): string {
  const specific = r.str(`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`);
  if (option === undefined && specific !== undefined) {
    if (isHttpUrl(specific)) return specific;
    r.warnings.push(
      `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT is not an http(s) URL; using the general endpoint`,
    );
  }
  let base = option ?? r.str("OTEL_EXPORTER_OTLP_ENDPOINT") ?? DEFAULT_ENDPOINT;
  if (!isHttpUrl(base)) {
    r.warnings.push(
      `the OTLP endpoint ${JSON.stringify(printableUrl(base))} is not an http(s) URL; using ${DEFAULT_ENDPOINT}`,
    );
    base = DEFAULT_ENDPOINT;
  }
  // The signal's path goes after the base's path, before its query (a
  // tenant or token some Collectors' gateways take there).
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/${signal}`;
  url.hash = "";
  return url.href;
}

/**
 * An http(s) URL's user name and password moved into the `authorization:
 * Basic` header node:https would send for them, and the URL without them,
 * so that a plain-http endpoint gets the same header and no warning that
 * prints the URL can print them. An authorization header of the user's
 * wins, as it does in node:https.
 */
function userInfoAsHeader(
  href: string,
  headers: Record<string, string>,
): { url: string; headers: Record<string, string> } {
  const url = new URL(href);
  const basic = takeUserInfo(url);
  if (basic === undefined) return { url: href, headers };
  return { url: url.href, headers: { authorization: basic, ...headers } };
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

function protocolOf(
  r: Reader,
  signal: string,
  option: OtlpProtocol | undefined,
): OtlpProtocol {
  if (option !== undefined) return option;
  return r.choiceOf(
    [`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    ["http/protobuf", "http/json"],
    "http/protobuf",
    // The endpoint is most likely gRPC's too, and HTTP sent there fails.
    (refused) =>
      refused === "grpc"
        ? ", so the endpoint must be the Collector's OTLP/HTTP one (port 4318 by default; 4317 is gRPC's)"
        : "",
  );
}

function signalSettings(
  r: Reader,
  signal: SignalName,
  options: InitOptions,
): SignalExportSettings {
  const S = signal.toUpperCase();
  const exporterVar = `OTEL_${S}_EXPORTER`;
  const option =
    signal === "traces"
      ? options.exportTraces
      : signal === "logs"
        ? options.exportLogs
        : options.exportMetrics;
  let enabled = option ?? true;
  const exporter = r.str(exporterVar);
  if (exporter !== undefined && option === undefined) {
    const list = exporter.split(",").map((s) => s.trim().toLowerCase());
    const known = signal === "metrics" ? ["otlp", "prometheus"] : ["otlp"];
    if (list.includes("none")) enabled = false;
    else if (signal === "metrics" && list.includes("prometheus"))
      enabled = list.includes("otlp");
    else if (!list.includes("otlp"))
      r.warnings.push(
        `${exporterVar}=${JSON.stringify(exporter)}: only ${known.join(", ")} and none are supported; using otlp`,
      );
    // Named beside one that is used: say what is left out all the same.
    const unknown = list.filter((e) => e !== "none" && !known.includes(e));
    if (
      unknown.length > 0 &&
      (list.includes("otlp") || list.includes("prometheus"))
    )
      r.warnings.push(
        `${exporterVar}: ${unknown.map((e) => JSON.stringify(e)).join(", ")} ${unknown.length === 1 ? "is" : "are"} not supported; ${unknown.length === 1 ? "it was" : "they were"} ignored`,
      );
  }
  // The general list, then the signal's, then init()'s, each replacing
  // the headers of the same name before it.
  const headers = {
    ...r.headers("OTEL_EXPORTER_OTLP_HEADERS"),
    ...r.headers(`OTEL_EXPORTER_OTLP_${S}_HEADERS`),
    ...(options.headers && r.headers("init()'s headers", options.headers)),
  };
  const endpoint = userInfoAsHeader(
    signalUrl(r, signal, options.endpoint),
    headers,
  );
  const compression = r.choiceOf(
    [`OTEL_EXPORTER_OTLP_${S}_COMPRESSION`, "OTEL_EXPORTER_OTLP_COMPRESSION"],
    ["gzip", "none"],
    "none",
  );
  // Metrics are collected on an interval rather than batched: they read
  // no batch settings, and keep the defaults' sizes, unused.
  let maxQueueSize = 2048;
  let maxExportBatchSize = 512;
  let scheduleDelayMs: number;
  if (signal === "metrics") {
    scheduleDelayMs = r.int("OTEL_METRIC_EXPORT_INTERVAL", 15_000, 100);
  } else {
    const prefix = signal === "traces" ? "OTEL_BSP" : "OTEL_BLRP";
    maxQueueSize = r.int(`${prefix}_MAX_QUEUE_SIZE`, maxQueueSize, 1);
    maxExportBatchSize = r.int(
      `${prefix}_MAX_EXPORT_BATCH_SIZE`,
      maxExportBatchSize,
      1,
    );
    if (maxExportBatchSize > maxQueueSize) {
      // Said only of a batch size that was set, for a signal exported.
      if (enabled && r.str(`${prefix}_MAX_EXPORT_BATCH_SIZE`) !== undefined)
        r.warnings.push(
          `${prefix}_MAX_EXPORT_BATCH_SIZE=${maxExportBatchSize} is larger than ${prefix}_MAX_QUEUE_SIZE; using ${maxQueueSize}`,
        );
      maxExportBatchSize = maxQueueSize;
    }
    scheduleDelayMs = r.int(`${prefix}_SCHEDULE_DELAY`, 1000, 0);
  }
  return {
    enabled,
    url: endpoint.url,
    headers: endpoint.headers,
    protocol: protocolOf(r, S, options.protocol),
    compression,
    timeoutMs: exportTimeoutOf(r, signal),
    tls: tlsFilesOf(r, S),
    batch: {
      scheduleDelayMs,
      maxQueueSize,
      maxExportBatchSize,
    },
  };
}

/**
 * The exporter's timeout, and the batch processor's (or the metric
 * reader's) export timeout: each bounds one export, so the shorter wins;
 * 0 sets no bound, as the specification reads it.
 */
function exportTimeoutOf(r: Reader, signal: SignalName): number {
  const S = signal.toUpperCase();
  const otlp = r.intOf(
    [`OTEL_EXPORTER_OTLP_${S}_TIMEOUT`, "OTEL_EXPORTER_OTLP_TIMEOUT"],
    10_000,
    0,
  );
  const processorVar =
    signal === "traces"
      ? "OTEL_BSP_EXPORT_TIMEOUT"
      : signal === "logs"
        ? "OTEL_BLRP_EXPORT_TIMEOUT"
        : "OTEL_METRIC_EXPORT_TIMEOUT";
  // Only when set: its default (30 s) is longer than the exporter's, and
  // would cap an exporter told to wait as long as it takes.
  const processor = r.int(processorVar, 0, 0);
  if (otlp === 0) return processor;
  if (processor === 0) return otlp;
  return Math.min(otlp, processor);
}

/**
 * OTEL_EXPORTER_OTLP[_<SIGNAL>]_CERTIFICATE, _CLIENT_KEY and
 * _CLIENT_CERTIFICATE: files read and checked once, here. A file that
 * cannot be read, or that TLS cannot use, is left out with a warning, a
 * signal's own for the general variable's, as other settings fall back
 * (with none, the export meets the endpoint with the system's trust, and
 * fails there if that is not enough): node:https would otherwise throw on
 * every request, and every export would be dropped without one connection.
 */
function tlsFilesOf(r: Reader, S: string): TlsFiles {
  // The signal's file, or when it cannot be read or used, the general one.
  const read = (
    suffix: string,
    check: FileCheck,
    otherwise?: string,
  ): { name: string; text: string | undefined } | undefined => {
    const names = [
      `OTEL_EXPORTER_OTLP_${S}_${suffix}`,
      `OTEL_EXPORTER_OTLP_${suffix}`,
    ].filter((n) => r.str(n) !== undefined);
    for (const [i, name] of names.entries()) {
      const next = names[i + 1];
      const text = r.file(
        name,
        check,
        next === undefined ? otherwise : `using ${next}`,
      );
      if (text !== undefined || next === undefined) return { name, text };
    }
    return undefined;
  };
  const tls: TlsFiles = {};
  const ca = read("CERTIFICATE", caProblem)?.text;
  if (ca !== undefined) tls.ca = ca;
  const noClient = "no client certificate is sent";
  const cert = read("CLIENT_CERTIFICATE", certificateProblem, noClient);
  const key = read("CLIENT_KEY", keyProblem, noClient);
  if (cert?.text !== undefined && key?.text !== undefined) {
    const problem = tlsProblem({ cert: cert.text, key: key.text });
    if (problem === undefined) {
      tls.cert = cert.text;
      tls.key = key.text;
    } else
      r.warnings.push(
        `${cert.name} and ${key.name} cannot be used together (${problem}); ${noClient}`,
      );
  } else if ((cert === undefined) !== (key === undefined)) {
    // One of them named alone; a file named but unusable was warned about.
    // Said in the same words for each signal a general variable reaches,
    // so that resolveConfig keeps one.
    const given = (cert ?? key)!;
    const missing = cert === undefined ? "CLIENT_CERTIFICATE" : "CLIENT_KEY";
    if (given.text !== undefined)
      r.warnings.push(
        `${given.name} is set without OTEL_EXPORTER_OTLP_${missing}, which goes with it; ${noClient}`,
      );
  }
  return tls;
}

/** What makes a file's text unusable, in OpenSSL's words; undefined when nothing does. */
type FileCheck = (text: string) => string | undefined;

/** What node:tls makes of these options: undefined, or why it refuses them. */
function tlsProblem(options: {
  ca?: string;
  cert?: string;
  key?: string;
}): string | undefined {
  try {
    process.getBuiltinModule("node:tls").createSecureContext(options);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const PEM_CERTIFICATE =
  /-----BEGIN (?:TRUSTED )?CERTIFICATE-----[\s\S]*?-----END (?:TRUSTED )?CERTIFICATE-----/g;

// OpenSSL trusts what certificates it can read in a CA file and says
// nothing of the rest: a file of none would trust nothing, silently.
const caProblem: FileCheck = (text) => {
  const certificates = text.match(PEM_CERTIFICATE);
  if (certificates === null) return "it holds no PEM certificate";
  const { X509Certificate } = process.getBuiltinModule("node:crypto");
  try {
    for (const pem of certificates) new X509Certificate(pem);
  } catch (err) {
    return (err as Error).message;
  }
  return tlsProblem({ ca: text });
};

const certificateProblem: FileCheck = (text) => tlsProblem({ cert: text });

// OpenSSL's words for a key with a passphrase ("bad decrypt") or in DER
// ("unsupported") do not say what it wants instead.
const keyProblem: FileCheck = (text) => {
  const problem = tlsProblem({ key: text });
  return problem === undefined
    ? undefined
    : `${problem}: the key must be PEM, without a passphrase`;
};

/** Histograms go with explicit buckets; a request for exponential ones is answered. */
function histogramAggregationCheck(r: Reader): void {
  const name = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";
  const v = r.str(name)?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "explicit_bucket_histogram") return;
  r.warnings.push(
    `${name}=${JSON.stringify(v)} is not supported; histograms are sent with explicit buckets`,
  );
}

function samplerSettings(
  r: Reader,
  options: InitOptions,
): { name: SamplerName; ratio: number } {
  if (options.sampleRatio !== undefined)
    return { name: "parentbased_traceidratio", ratio: options.sampleRatio };
  const name = (
    r.str("OTEL_TRACES_SAMPLER") ?? "parentbased_always_on"
  ).toLowerCase();
  const known: SamplerName[] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
  ];
  if (!known.includes(name as SamplerName)) {
    r.warnings.push(
      `OTEL_TRACES_SAMPLER=${JSON.stringify(name)} is not supported; using parentbased_always_on`,
    );
    return { name: "parentbased_always_on", ratio: 1 };
  }
  let ratio = 1;
  if (name.endsWith("traceidratio")) {
    const arg = r.str("OTEL_TRACES_SAMPLER_ARG");
    // Decimal only: Number() would take "0x0" or "0b1" as well.
    const n =
      arg === undefined ? 1 : DECIMAL.test(arg) ? Number(arg) : Number.NaN;
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else
      r.warnings.push(
        `OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(arg)} is not between 0 and 1; using 1`,
      );
  }
  return { name: name as SamplerName, ratio };
}

const DECIMAL = /^\s*(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;

function propagatorSettings(r: Reader): Array<"tracecontext" | "baggage"> {
  const raw = r.str("OTEL_PROPAGATORS");
  if (raw === undefined) return ["tracecontext", "baggage"];
  const out: Array<"tracecontext" | "baggage"> = [];
  for (const p of raw.split(",").map((s) => s.trim().toLowerCase())) {
    if (p === "tracecontext" || p === "baggage") {
      if (!out.includes(p)) out.push(p);
    } else if (p === "none") {
      return [];
    } else if (p !== "") {
      r.warnings.push(
        `OTEL_PROPAGATORS: "${p}" is not supported (tracecontext, baggage, none); it was ignored`,
      );
    }
  }
  // Nothing usable named: the default, not silence across every hop.
  return out.length === 0 ? ["tracecontext", "baggage"] : out;
}

function serviceNameOf(
  r: Reader,
  options: InitOptions,
  attrs: Record<string, string>,
): string {
  // Code over the environment, as for every option; in each, the name
  // given as such over the one among the resource attributes. An empty
  // name counts as none, and is said: telemetry filed under "" belongs to
  // no service a backend lists, and a variable set from one that is not
  // (OTEL_SERVICE_NAME=$NAME) leaves the service unknown_service:node.
  const fromCode = options.resourceAttributes?.["service.name"];
  const given: Array<[string, unknown]> = [
    ["serviceName", options.serviceName],
    ["resourceAttributes' service.name", fromCode],
    ["OTEL_SERVICE_NAME", r.env["OTEL_SERVICE_NAME"]?.trim()],
    ["OTEL_RESOURCE_ATTRIBUTES' service.name", attrs["service.name"]],
  ];
  const empty: string[] = [];
  let name = "unknown_service:node";
  for (const [where, value] of given) {
    if (value === undefined || value === null) continue;
    if (String(value).trim() === "") {
      empty.push(where);
      continue;
    }
    name = String(value);
    break;
  }
  if (empty.length > 0) {
    const list =
      empty.length === 1
        ? empty[0]
        : `${empty.slice(0, -1).join(", ")} and ${empty.at(-1)}`;
    r.warnings.push(
      `${list} ${empty.length === 1 ? "is" : "are"} empty; using ${JSON.stringify(name)}`,
    );
  }
  return name;
}

function logRedactOf(
  r: Reader,
  option: boolean | string[] | undefined,
): false | string[] {
  if (option !== undefined)
    return option === false ? false : option === true ? [] : option;
  const text = r.str("THREADLINE_LOG_REDACT") ?? "true";
  return redactionOf(
    text,
    `THREADLINE_LOG_REDACT=${JSON.stringify(text)}`,
    r.warnings,
  );
}

/** Words meant as a yes or a no, which no pino path is meant to be. */
const YES_NO = [
  "0",
  "1",
  "no",
  "yes",
  "off",
  "on",
  "none",
  "disabled",
  "enabled",
];

/**
 * THREADLINE_LOG_REDACT's text: true, false, or paths added to the
 * defaults. Another yes or no (off, 0) would be a path that matches
 * nothing: redaction stays on, the safe side, and `given` is warned of.
 */
function redactionOf(
  text: string,
  given: string,
  warnings: string[],
): false | string[] {
  const v = text.trim().toLowerCase();
  if (v === "true") return [];
  if (v === "false") return false;
  if (YES_NO.includes(v)) {
    warnings.push(
      `${given} is not true, false or a list of pino paths; redaction stays on (false turns it off)`,
    );
    return [];
  }
  return splitList(text);
}

function consumerContextOf(r: Reader): "continue" | "link" {
  const v = r.str("THREADLINE_AMQP_CONSUMER_CONTEXT")?.toLowerCase();
  if (v === undefined || v === "continue") return "continue";
  if (v === "link") return "link";
  r.warnings.push(
    `THREADLINE_AMQP_CONSUMER_CONTEXT=${JSON.stringify(v)} is not continue or link; using continue`,
  );
  return "continue";
}

const LIST = "a list of strings or a comma-separated string";

/**
 * init()'s options, each of the type it takes or left out. init() is
 * called from JavaScript too, and from settings read at run time: a value
 * of another type (a string for a list, a number for a URL) would throw
 * where it is used, and take all telemetry down with it. It counts as not
 * given, with a warning, and its variable is read in its place, as for an
 * integer out of bounds (those are checked where read, by intOption). A
 * list also takes the comma-separated text of its variable.
 */
/**
 * The `endpoint` option, when it is an http(s) URL. Another one counts as
 * not given, as a value of another type does: the endpoint variables apply.
 */
function endpointOption(r: Reader, value: unknown): string | undefined {
  const endpoint = r.option(
    "endpoint",
    value,
    asUrl,
    "a string or a URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    DEFAULT_ENDPOINT,
  );
  if (endpoint === undefined || isHttpUrl(endpoint)) return endpoint;
  const bySignal = (["TRACES", "LOGS", "METRICS"] as const).some(
    (signal) => r.str(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`) !== undefined,
  );
  return r.refuse(
    "endpoint",
    `${JSON.stringify(printableUrl(endpoint))} is not an http(s) URL`,
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    bySignal
      ? "the OTEL_EXPORTER_OTLP_<signal>_ENDPOINT variables"
      : DEFAULT_ENDPOINT,
  );
}

/** The `customerHeader` option, when it is a header's name; else as not given. */
function headerNameOption(
  r: Reader,
  name: string | undefined,
): string | undefined {
  if (name === undefined || HEADER_NAME.test(name)) return name;
  return r.refuse(
    "customerHeader",
    `${JSON.stringify(name)} is not a valid header name`,
    "THREADLINE_CUSTOMER_HEADER",
    "x-customer-id",
  );
}

/** The `watchUrl` option, when it names a list that can be read (or none); else as not given. */
function watchUrlOption(
  r: Reader,
  raw: string | false | undefined,
): string | false | undefined {
  if (raw === undefined || raw === false || raw === "" || isNone(raw))
    return raw;
  if (watchTarget(raw) !== undefined) return raw;
  return r.refuse(
    "watchUrl",
    "is not an http(s) URL or a file",
    "THREADLINE_WATCH_URL",
  );
}

function checkedOptions(r: Reader, given: unknown): InitOptions {
  if (!isObject(given)) {
    r.warnings.push(
      `init() takes an object of options, not ${describe(given)}; using the environment's settings`,
    );
    return {};
  }
  const o = given as Record<keyof InitOptions, unknown>;
  const bool = (option: keyof InitOptions, name: string, fallback: string) =>
    r.option(option, o[option], asBoolean, "true or false", name, fallback);
  // A safety switch fails safe, as its variable does: a value meant to
  // say yes or no must not leave a service trusting what it should not.
  const safety = (option: keyof InitOptions, safe: boolean) =>
    o[option] === undefined || o[option] === null
      ? undefined
      : (r.option(
          option,
          o[option],
          asBoolean,
          "true or false",
          undefined,
          String(safe),
        ) ?? safe);
  const list = (option: keyof InitOptions, name: string) =>
    r.option(option, o[option], asList, LIST, name);
  const listener = (
    option: "prometheus" | "health",
    hostVariable: string,
    host: string,
  ) => {
    const v = r.option(
      option,
      o[option],
      (v) => (v === false || isObject(v) ? v : undefined),
      "false or an object ({ host, port })",
    );
    if (v === undefined || v === false) return v;
    return {
      host: r.option(
        `${option}.host`,
        v["host"],
        asString,
        "a string",
        hostVariable,
        host,
      ),
      // Held to its variable's bounds where read.
      port: v["port"] as number | undefined,
    };
  };
  const alarms = r.option(
    "alarms",
    o.alarms,
    (v) => (v === false || isObject(v) ? v : undefined),
    "false or an object",
  );
  const alarmString = (
    field: string,
    name: string,
    read: (v: unknown) => string | undefined = asString,
    expected = "a string",
  ) =>
    alarms === undefined || alarms === false
      ? undefined
      : r.option(`alarms.${field}`, alarms[field], read, expected, name);
  const alarmUrl = (field: string, name: string) =>
    alarmString(field, name, asUrl, "a string or a URL");
  // Said as intOption says an integer out of bounds.
  const ratio = o.sampleRatio;
  const sampleRatio =
    typeof ratio === "number" && ratio >= 0 && ratio <= 1 ? ratio : undefined;
  if (sampleRatio === undefined && ratio !== undefined && ratio !== null)
    r.warnings.push(
      `sampleRatio ${shown(ratio)} is not a number from 0 to 1; using ${r.str("OTEL_TRACES_SAMPLER") === undefined ? "parentbased_always_on" : "OTEL_TRACES_SAMPLER"}`,
    );
  // Every option, so that one added to InitOptions cannot go unchecked.
  const checked: {
    [K in keyof Required<InitOptions>]: InitOptions[K] | undefined;
  } = {
    serviceName: r.option("serviceName", o.serviceName, asText, "a string"),
    resourceAttributes: r.mapOption(
      "resourceAttributes",
      o.resourceAttributes,
      undefined,
      (v) =>
        typeof v === "string" || typeof v === "number" || typeof v === "boolean"
          ? v
          : undefined,
      "a string, a number or a boolean",
      true,
    ),
    endpoint: endpointOption(r, o.endpoint),
    headers: r.mapOption(
      "headers",
      o.headers,
      undefined,
      asText,
      "a string, a number or a boolean",
    ),
    protocol: r.choiceOption(
      "protocol",
      o.protocol,
      ["http/protobuf", "http/json"],
      "OTEL_EXPORTER_OTLP_PROTOCOL",
      "http/protobuf",
    ),
    sampleRatio,
    edge: safety("edge", true),
    trustedCallers: r.option(
      "trustedCallers",
      o.trustedCallers,
      asListOrText,
      LIST,
      "THREADLINE_TRUSTED_CALLERS",
      "loopback,private",
    ),
    untrustedTraceparent: r.choiceOption(
      "untrustedTraceparent",
      o.untrustedTraceparent,
      ["continue", "link"],
      "THREADLINE_UNTRUSTED_TRACEPARENT",
      "continue",
    ),
    trustedProxies: r.option(
      "trustedProxies",
      o.trustedProxies,
      asListOrText,
      LIST,
      "THREADLINE_TRUSTED_PROXIES",
      "loopback,private",
    ),
    internalHosts: r.option(
      "internalHosts",
      o.internalHosts,
      asListOrText,
      LIST,
      "THREADLINE_INTERNAL_HOSTS",
    ),
    // Its text is the variable's, which the egress policy reads itself.
    thirdParties:
      typeof o.thirdParties === "string"
        ? (o.thirdParties as unknown as Record<string, string>)
        : r.mapOption(
            "thirdParties",
            o.thirdParties,
            "THREADLINE_THIRD_PARTIES",
            asText,
            "a string, a number or a boolean",
          ),
    customerHeader: headerNameOption(
      r,
      r.option(
        "customerHeader",
        o.customerHeader,
        asString,
        "a string",
        "THREADLINE_CUSTOMER_HEADER",
        "x-customer-id",
      ),
    ),
    customerFromRequest: r.option(
      "customerFromRequest",
      o.customerFromRequest,
      (v) => (typeof v === "function" ? (v as CustomerSource) : undefined),
      "a function",
      undefined,
      "the customer header",
    ),
    logFields: r.choiceOption(
      "logFields",
      o.logFields,
      ["otel", "ecs"],
      "THREADLINE_LOG_FIELDS",
      "otel",
    ),
    logRedact: r.option(
      "logRedact",
      o.logRedact,
      (v) =>
        typeof v === "boolean"
          ? v
          : typeof v === "string"
            ? redactionOf(v, `logRedact ${JSON.stringify(v)}`, r.warnings)
            : asList(v),
      `true, false or ${LIST}`,
      "THREADLINE_LOG_REDACT",
      "true",
    ),
    exportLogs: bool("exportLogs", "OTEL_LOGS_EXPORTER", "true"),
    exportTraces: bool("exportTraces", "OTEL_TRACES_EXPORTER", "true"),
    exportMetrics: bool("exportMetrics", "OTEL_METRICS_EXPORTER", "true"),
    shutdownTimeoutMs: o.shutdownTimeoutMs as number | undefined,
    exportThread: r.choiceOption(
      "exportThread",
      o.exportThread,
      ["main", "worker"],
      "THREADLINE_EXPORT_THREAD",
      "main",
    ),
    disabledInstrumentations: list(
      "disabledInstrumentations",
      "OTEL_NODE_DISABLED_INSTRUMENTATIONS",
    ),
    ignoreIncomingPaths: list("ignoreIncomingPaths", "THREADLINE_IGNORE_PATHS"),
    selfCheck: bool("selfCheck", "THREADLINE_SELF_CHECK", "true"),
    runtimeMetrics: bool(
      "runtimeMetrics",
      "THREADLINE_RUNTIME_METRICS",
      "true",
    ),
    hostMetrics: bool("hostMetrics", "THREADLINE_HOST_METRICS", "false"),
    prometheus: listener(
      "prometheus",
      "OTEL_EXPORTER_PROMETHEUS_HOST",
      "localhost",
    ),
    alarms:
      alarms === undefined || alarms === false
        ? alarms
        : {
            // A file: URL as the path it names, as readFileSync took it.
            rulesFile: alarmString(
              "rulesFile",
              "THREADLINE_ALARMS_FILE",
              (v) =>
                v instanceof URL && v.protocol === "file:"
                  ? fileURLToPath(v)
                  : asString(v),
              "a file path or a file: URL",
            ),
            intervalMs: alarms["intervalMs"] as number | undefined,
            webhookUrl: alarmUrl("webhookUrl", "THREADLINE_ALARM_WEBHOOK_URL"),
            slackWebhookUrl: alarmUrl(
              "slackWebhookUrl",
              "THREADLINE_ALARM_SLACK_WEBHOOK_URL",
            ),
            pagerDutyRoutingKey: alarmString(
              "pagerDutyRoutingKey",
              "THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY",
            ),
            pagerDutyUrl: alarmUrl(
              "pagerDutyUrl",
              "THREADLINE_ALARM_PAGERDUTY_URL",
            ),
          },
    health: listener("health", "THREADLINE_HEALTH_HOST", "127.0.0.1"),
    pgRecordParameters: bool(
      "pgRecordParameters",
      "THREADLINE_PG_PARAMETERS",
      "false",
    ),
    pgSqlCommenter: bool(
      "pgSqlCommenter",
      "THREADLINE_PG_SQLCOMMENTER",
      "false",
    ),
    amqpConsumerContext: r.choiceOption(
      "amqpConsumerContext",
      o.amqpConsumerContext,
      ["continue", "link"],
      "THREADLINE_AMQP_CONSUMER_CONTEXT",
      "continue",
    ),
    amqpTrustMessageBaggage: safety("amqpTrustMessageBaggage", false),
    amqpExternalExchanges: list(
      "amqpExternalExchanges",
      "THREADLINE_AMQP_EXTERNAL_EXCHANGES",
    ),
    watchUrl: watchUrlOption(
      r,
      r.option(
        "watchUrl",
        o.watchUrl,
        (v) => (v === false ? v : asUrl(v)),
        "a URL, a file path or false",
        "THREADLINE_WATCH_URL",
      ),
    ),
    watchIntervalMs: o.watchIntervalMs as number | undefined,
    watchHeaders: r.mapOption(
      "watchHeaders",
      o.watchHeaders,
      undefined,
      asText,
      "a string, a number or a boolean",
    ),
  };
  return checked;
}

/**
 * pm2's cluster mode hands each worker its app's `env` only as JSON in the
 * `pm2_env` variable (the variables at its top level, as pm2's own
 * container script reads them), and copies them into the environment only
 * once the app's script runs: after `--import`, so after this reads its
 * settings. Fills in the OTEL_ and THREADLINE_ variables the environment
 * lacks from there: a variable set in the environment is never replaced,
 * and nothing else is read from it, so that no pm2 field can reach a
 * setting and nothing runs differently outside pm2.
 */
export function fillFromPm2Env(env: Env): void {
  const raw = env["pm2_env"];
  if (raw === undefined) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return;
  }
  if (!isObject(parsed)) return;
  for (const [name, value] of Object.entries(parsed)) {
    if (!name.startsWith("OTEL_") && !name.startsWith("THREADLINE_")) continue;
    if (env[name] !== undefined) continue;
    // As pm2's copy into process.env: a number or boolean as its text.
    if (
      typeof value === "string" ||
      typeof value === "number" ||
      typeof value === "boolean"
    )
      env[name] = String(value);
  }
}

/** The trust lists, each an init() option with a variable of its own. */
type TrustList =
  "trustedCallers" | "trustedProxies" | "internalHosts" | "thirdParties";

const TRUST_VARIABLES: Record<TrustList, string> = {
  trustedCallers: "THREADLINE_TRUSTED_CALLERS",
  trustedProxies: "THREADLINE_TRUSTED_PROXIES",
  internalHosts: "THREADLINE_INTERNAL_HOSTS",
  thirdParties: "THREADLINE_THIRD_PARTIES",
};

/** Names the option where one was given, else the variable: what an entry's warning calls its list. */
function trustSourcesOf(options: InitOptions): Record<TrustList, string> {
  const sources = { ...TRUST_VARIABLES };
  for (const list of Object.keys(sources) as TrustList[])
    if (options[list] !== undefined) sources[list] = `the ${list} option`;
  return sources;
}

/** Resolves the settings; `warnings` lists unusable values that fell back to defaults. */
export function resolveConfig(
  given: InitOptions = {},
  env: Env = process.env,
): { config: ResolvedConfig; warnings: string[] } {
  const r = new Reader(env);
  const options = checkedOptions(r, given);
  // A value that cannot be decoded is dropped whole, as the specification
  // asks: half a resource would describe a different service.
  const attrWarnings: string[] = [];
  let envAttrs = parseKeyValueList(
    r.str("OTEL_RESOURCE_ATTRIBUTES") ?? "",
    "OTEL_RESOURCE_ATTRIBUTES",
    attrWarnings,
    true,
  );
  if (attrWarnings.length > 0) {
    r.warnings.push(
      ...attrWarnings,
      "OTEL_RESOURCE_ATTRIBUTES was ignored whole",
    );
    envAttrs = {};
  }
  const countLimit = r.int("OTEL_ATTRIBUTE_COUNT_LIMIT", 128, 0);
  // The specification leaves value length unlimited by default; we cap it
  // so one hostile header or query cannot bloat every span it touches.
  const lengthLimit = r.int("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", 8192, 0);
  const disabledList =
    options.disabledInstrumentations ??
    splitList(r.str("OTEL_NODE_DISABLED_INSTRUMENTATIONS") ?? "");
  const enabledEnv = r.str("OTEL_NODE_ENABLED_INSTRUMENTATIONS");
  const disabled = new Set(
    disabledList.map((s) => s.trim().toLowerCase()).filter(Boolean),
  );
  for (const name of disabled) {
    if (!(INSTRUMENTATION_NAMES as readonly string[]).includes(name))
      r.warnings.push(`unknown instrumentation "${name}" in the disabled list`);
  }
  const enabledOnly =
    enabledEnv === undefined
      ? undefined
      : new Set(splitList(enabledEnv).map((s) => s.toLowerCase()));
  for (const name of enabledOnly ?? []) {
    if (!(INSTRUMENTATION_NAMES as readonly string[]).includes(name))
      r.warnings.push(
        `unknown instrumentation "${name}" in OTEL_NODE_ENABLED_INSTRUMENTATIONS (known: ${INSTRUMENTATION_NAMES.join(", ")})`,
      );
  }
  const on = (name: string) =>
    !disabled.has(name) && (enabledOnly === undefined || enabledOnly.has(name));

  const exportThread =
    options.exportThread ??
    r.choice("THREADLINE_EXPORT_THREAD", ["main", "worker"], "main");
  const logFields =
    options.logFields ??
    r.choice("THREADLINE_LOG_FIELDS", ["otel", "ecs"], "otel");
  let customerHeader = (
    options.customerHeader ??
    r.str("THREADLINE_CUSTOMER_HEADER") ??
    "x-customer-id"
  ).toLowerCase();
  if (!HEADER_NAME.test(customerHeader)) {
    r.warnings.push(
      `customer header ${JSON.stringify(customerHeader)} is not a valid header name; using x-customer-id`,
    );
    customerHeader = "x-customer-id";
  }

  const config: ResolvedConfig = {
    disabled: r.bool("OTEL_SDK_DISABLED", false),
    serviceName: serviceNameOf(r, options, envAttrs),
    resourceAttributes: { ...envAttrs, ...options.resourceAttributes },
    traces: signalSettings(r, "traces", options),
    logs: signalSettings(r, "logs", options),
    metrics: signalSettings(r, "metrics", options),
    metricsTemporality: r.choice(
      "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
      ["cumulative", "delta", "lowmemory"],
      "cumulative",
    ),
    exemplarFilter: r.choice(
      "OTEL_METRICS_EXEMPLAR_FILTER",
      ["trace_based", "always_on", "always_off"],
      "trace_based",
    ),
    sampler: samplerSettings(r, options),
    propagators: propagatorSettings(r),
    logLimits: {
      attributeCountLimit: r.int(
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        countLimit,
        0,
      ),
      attributeValueLengthLimit: r.int(
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        lengthLimit,
        0,
      ),
    },
    spanLimits: {
      attributeCountLimit: r.int(
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        countLimit,
        0,
      ),
      attributeValueLengthLimit: r.int(
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        lengthLimit,
        0,
      ),
      eventCountLimit: r.int("OTEL_SPAN_EVENT_COUNT_LIMIT", 128, 0),
      linkCountLimit: r.int("OTEL_SPAN_LINK_COUNT_LIMIT", 128, 0),
      attributePerEventCountLimit: r.int(
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        128,
        0,
      ),
      attributePerLinkCountLimit: r.int(
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        128,
        0,
      ),
    },
    // A value meant to say yes (1, yes, on) must not leave an edge service
    // reading its callers' baggage: anything but true or false is true.
    edge: options.edge ?? r.bool("THREADLINE_EDGE", false, true),
    trustedCallers:
      options.trustedCallers ??
      r.str("THREADLINE_TRUSTED_CALLERS") ??
      "loopback,private",
    untrustedTraceparent:
      options.untrustedTraceparent ??
      r.choice(
        "THREADLINE_UNTRUSTED_TRACEPARENT",
        ["continue", "link"],
        "continue",
      ),
    trustedProxies:
      options.trustedProxies ??
      r.str("THREADLINE_TRUSTED_PROXIES") ??
      "loopback,private",
    internalHosts:
      options.internalHosts ?? r.str("THREADLINE_INTERNAL_HOSTS") ?? "",
    thirdParties:
      options.thirdParties ?? r.str("THREADLINE_THIRD_PARTIES") ?? "",
    trustSources: trustSourcesOf(options),
    customerHeader,
    customerFromRequest: options.customerFromRequest,
    ignoreIncomingPaths: ignoredPaths(
      r,
      options.ignoreIncomingPaths ??
        splitList(r.str("THREADLINE_IGNORE_PATHS") ?? ""),
    ),
    logFields,
    logRedact: logRedactOf(r, options.logRedact),
    shutdownTimeoutMs: r.intOption(
      "shutdownTimeoutMs",
      options.shutdownTimeoutMs,
      "THREADLINE_SHUTDOWN_TIMEOUT",
      3000,
    ),
    exportMaxBytes: r.int(
      "THREADLINE_EXPORT_MAX_BYTES",
      16 * 1024 * 1024,
      1024,
    ),
    exportMaxRetryMs: r.int("THREADLINE_EXPORT_MAX_RETRY_TIME", 60_000, 0),
    exportThread,
    instrumentations: {
      http: on("http"),
      undici: on("undici"),
      pino: on("pino"),
      pg: on("pg"),
      amqplib: on("amqplib"),
    },
    pg: {
      recordParameters:
        options.pgRecordParameters ?? r.bool("THREADLINE_PG_PARAMETERS", false),
      sqlCommenter:
        options.pgSqlCommenter ?? r.bool("THREADLINE_PG_SQLCOMMENTER", false),
    },
    amqp: {
      consumerContext: options.amqpConsumerContext ?? consumerContextOf(r),
      // A value meant to say no (0, no, off) must not leave a consumer
      // taking customer ids from whoever publishes: anything but true or
      // false is false.
      trustMessageBaggage:
        options.amqpTrustMessageBaggage ??
        r.bool("THREADLINE_AMQP_TRUST_BAGGAGE", true, false),
      externalExchanges: exchangeNames(
        r,
        options.amqpExternalExchanges ??
          splitList(r.str("THREADLINE_AMQP_EXTERNAL_EXCHANGES") ?? ""),
      ),
    },
    selfCheck: options.selfCheck ?? r.bool("THREADLINE_SELF_CHECK", true),
    runtimeMetrics:
      options.runtimeMetrics ?? r.bool("THREADLINE_RUNTIME_METRICS", true),
    hostMetrics:
      options.hostMetrics ?? r.bool("THREADLINE_HOST_METRICS", false),
    prometheus: prometheusOf(r, options),
    health: healthOf(r, options),
    alarms: alarmsOf(r, options),
    watch: undefined,
    logLevel: r.str("OTEL_LOG_LEVEL"),
  };
  config.watch = watchSettings(r, options, [
    config.traces,
    config.logs,
    config.metrics,
  ]);
  histogramAggregationCheck(r);
  // Settings read once per signal would otherwise warn twice.
  return { config, warnings: [...new Set(r.warnings)] };
}

function isLoopbackHost(host: string): boolean {
  return (
    host === "localhost" ||
    host === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  );
}

const isNone = (raw: string) => raw.toLowerCase() === "none";

/** Where a watch list given as `raw` is read: an http(s) URL or a file. */
function watchTarget(raw: string): URL | undefined {
  let url: URL;
  try {
    // `file:/srv/watch.json` is a URL too, though it has no `//`; a
    // Windows path (`C:\watch.json`) has neither.
    url = /^(?:[a-z][a-z0-9+.-]*:\/\/|file:)/i.test(raw)
      ? new URL(raw)
      : pathToFileURL(raw);
  } catch {
    return undefined;
  }
  return ["http:", "https:", "file:"].includes(url.protocol) ? url : undefined;
}

function watchSettings(
  r: Reader,
  options: InitOptions,
  /** In the order their endpoints are looked at for a default. */
  signals: readonly SignalExportSettings[],
): WatchSettings | undefined {
  const intervalMs = r.intOption(
    "watchIntervalMs",
    options.watchIntervalMs,
    "THREADLINE_WATCH_INTERVAL",
    5000,
    100,
  );
  const headers = {
    ...r.headers("THREADLINE_WATCH_HEADERS"),
    ...(options.watchHeaders &&
      r.headers("init()'s watchHeaders", options.watchHeaders)),
  };
  const raw = options.watchUrl ?? r.str("THREADLINE_WATCH_URL");
  if (raw === false || (raw !== undefined && isNone(raw))) return undefined;
  if (raw !== undefined && raw !== "") {
    const url = watchTarget(raw);
    if (url === undefined) {
      r.warnings.push(
        "THREADLINE_WATCH_URL is not an http(s) URL or a file; no watch list is read",
      );
      return undefined;
    }
    return {
      ...(url.protocol === "file:"
        ? { url: url.href, headers }
        : userInfoAsHeader(url.href, headers)),
      intervalMs,
      quiet: false,
    };
  }
  // Exporting to a local receiver: that may be `threadline dev`, which serves
  // the list next to its OTLP endpoints. A Collector there answers 404. Any
  // signal exported there will do: a service may send its logs alone (the
  // watch list's debug lines are what it is read for) or its traces alone.
  const local = signals.find(
    (s) => s.enabled && isLoopbackHost(new URL(s.url).hostname),
  );
  if (local === undefined) return undefined;
  // The endpoint's query goes along, as to each signal's URL: a token
  // given as `?token=` is `threadline dev`'s as much as its OTLP's.
  const url = new URL(WATCH_PATH, local.url);
  url.search = new URL(local.url).search;
  return {
    url: url.href,
    intervalMs,
    headers: { ...local.headers, ...headers },
    quiet: true,
  };
}

function prometheusOf(
  r: Reader,
  options: InitOptions,
): { host: string; port: number } | undefined {
  if (options.prometheus === false) return undefined;
  const listed = splitList(r.str("OTEL_METRICS_EXPORTER") ?? "").some(
    (s) => s.toLowerCase() === "prometheus",
  );
  if (options.prometheus === undefined && !listed) return undefined;
  return {
    host:
      options.prometheus?.host ??
      r.str("OTEL_EXPORTER_PROMETHEUS_HOST") ??
      "localhost",
    port: r.intOption(
      "prometheus.port",
      options.prometheus?.port,
      "OTEL_EXPORTER_PROMETHEUS_PORT",
      9464,
      0,
      65535,
    ),
  };
}

function healthOf(
  r: Reader,
  options: InitOptions,
): { host: string; port: number } | undefined {
  if (options.health === false) return undefined;
  const raw: unknown = options.health?.port;
  let given = portOf(raw);
  if (
    raw !== undefined &&
    raw !== null &&
    !(given !== undefined && given >= 0 && given <= 65535)
  ) {
    // As intOption, with no default: the variable's port, or none.
    const variable = r.str("THREADLINE_HEALTH_PORT") !== undefined;
    r.warnings.push(
      `health.port ${shown(raw)} is not an integer from 0 to 65535; ${variable ? "using THREADLINE_HEALTH_PORT" : "the health endpoint is off"}`,
    );
    if (!variable) return undefined;
    given = undefined;
  }
  const port = given ?? r.str("THREADLINE_HEALTH_PORT");
  if (port === undefined) {
    // The endpoint has no port of its own: a host alone, or init()'s
    // health option, was meant to turn it on, and would do nothing.
    if (options.health !== undefined)
      r.warnings.push(
        "init()'s health option gives no port, nor does THREADLINE_HEALTH_PORT; the health endpoint is off",
      );
    else if (r.str("THREADLINE_HEALTH_HOST") !== undefined)
      r.warnings.push(
        "THREADLINE_HEALTH_HOST is set but THREADLINE_HEALTH_PORT is not; the health endpoint is off",
      );
    return undefined;
  }
  const n = portOf(port);
  if (n === undefined || n < 0 || n > 65535) {
    r.warnings.push(
      `THREADLINE_HEALTH_PORT=${JSON.stringify(port)} is not an integer from 0 to 65535; the health endpoint is off`,
    );
    return undefined;
  }
  return {
    host:
      options.health?.host ?? r.str("THREADLINE_HEALTH_HOST") ?? "127.0.0.1",
    port: n,
  };
}

export interface AlarmSettings {
  rulesFile: string | undefined;
  intervalMs: number;
  webhookUrl: string | undefined;
  slackWebhookUrl: string | undefined;
  pagerDutyRoutingKey: string | undefined;
  pagerDutyUrl: string | undefined;
}

function alarmsOf(r: Reader, options: InitOptions): AlarmSettings | undefined {
  // init()'s options win over the environment: alarms given there run
  // whatever THREADLINE_ALARMS says.
  if (
    options.alarms === false ||
    (options.alarms === undefined && !r.bool("THREADLINE_ALARMS", true))
  )
    return undefined;
  const o = options.alarms ?? {};
  return {
    rulesFile: o.rulesFile ?? r.str("THREADLINE_ALARMS_FILE"),
    intervalMs: r.intOption(
      "alarms.intervalMs",
      o.intervalMs,
      "THREADLINE_ALARMS_INTERVAL",
      10_000,
      100,
    ),
    webhookUrl: o.webhookUrl ?? r.str("THREADLINE_ALARM_WEBHOOK_URL"),
    slackWebhookUrl:
      o.slackWebhookUrl ?? r.str("THREADLINE_ALARM_SLACK_WEBHOOK_URL"),
    pagerDutyRoutingKey:
      o.pagerDutyRoutingKey ?? r.str("THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY"),
    pagerDutyUrl: o.pagerDutyUrl ?? r.str("THREADLINE_ALARM_PAGERDUTY_URL"),
  };
}
