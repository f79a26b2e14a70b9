// The default secret redaction, done in one pass over the line's object.
//
// pino's own `redact` option compiles every path into checks that run on
// each line, and the wildcard paths (`*.password`) walk every top-level key
// once per path: with the default list that cost four times a plain line.
// The defaults have a simple shape (a secret's name at the top level, one
// level down, or under `headers`), so one walk with set lookups covers them
// all, and a line without secrets (nearly every line) is passed on as it
// came, with nothing allocated. Paths of the user's own go to pino's
// `redact` as before.

/** What a redacted value is replaced with (pino's own default). */
export const REDACTED = "[Redacted]";

/** Field names whose values are secrets, at the top level or one down. */
const SECRET_NAMES: ReadonlySet<string> = new Set([
  "password",
  "passwd",
  "secret",
  "token",
  "accessToken",
  "access_token",
  "refreshToken",
  "apiKey",
  "api_key",
  "authorization",
  "cookie",
  "creditCard",
  "cardNumber",
]);

/** Header names whose values are secrets (Node gives header names in lower case). */
const SECRET_HEADERS = [
  "authorization",
  "cookie",
  "set-cookie",
  "proxy-authorization",
] as const;

/**
 * The pino paths the one-pass redaction covers, in pino's syntax: the
 * documented defaults of `THREADLINE_LOG_REDACT`.
 */
export const DEFAULT_REDACT_PATHS: readonly string[] = [
  ...[...SECRET_NAMES].flatMap((n) => [n, `*.${n}`]),
  ...SECRET_HEADERS.flatMap((h) => {
    const p = h.includes("-") ? `headers["${h}"]` : `headers.${h}`;
    return [p, `*.${p}`];
  }),
];

type Fields = Record<string, unknown>;

function isObject(v: unknown): v is Fields {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A copy that keeps the prototype and every own property (symbols too), so
 * pino's serializers see a request or an error as they would the original.
 * An accessor is copied as the value it gives on the original: V8's
 * `stack` of an error is one, and gives nothing on any other object.
 */
function copyOf(o: Fields): Fields {
  const descriptors = Object.getOwnPropertyDescriptors(o);
  for (const key of Reflect.ownKeys(descriptors)) {
    const d = descriptors[key as string]!;
    if (d.get === undefined && d.set === undefined) continue;
    let value: unknown;
    try {
      value = Reflect.get(o, key);
    } catch {
      continue; // left out, as a serializer reading it would fail too
    }
    descriptors[key as string] = {
      value,
      writable: true,
      enumerable: d.enumerable === true,
      configurable: true,
    };
  }
  return Object.create(
    Object.getPrototypeOf(o) as object | null,
    descriptors,
  ) as Fields;
}

function redactHeaders(headers: Fields): Fields {
  let out = headers;
  for (const h of SECRET_HEADERS) {
    if (headers[h] === undefined) continue;
    if (out === headers) out = copyOf(headers);
    out[h] = REDACTED;
  }
  return out;
}

/** One level down: secret names, and secret headers under `headers`. */
function redactNested(o: Fields): Fields {
  let out = o;
  for (const key of Object.keys(o)) {
    let value: unknown;
    if (SECRET_NAMES.has(key)) value = REDACTED;
    else if (key === "headers" && isObject(o[key])) {
      const h = o[key];
      value = redactHeaders(h);
      if (value === h) continue;
    } else continue;
    if (out === o) out = copyOf(o);
    out[key] = value;
  }
  return out;
}

/**
 * The line's fields with the default secrets replaced by `[Redacted]`; the
 * object itself when it holds none. Never changes what it is given.
 */
export function redactSecrets(fields: Fields): Fields {
  let out = fields;
  for (const key in fields) {
    const v = fields[key];
    let value: unknown;
    if (SECRET_NAMES.has(key)) {
      if (v === undefined) continue;
      value = REDACTED;
    } else if (isObject(v)) {
      // `headers` one level down too: `*.token` reaches headers.token.
      value =
        key === "headers" ? redactHeaders(redactNested(v)) : redactNested(v);
      if (value === v) continue;
    } else continue;
    if (out === fields) out = { ...fields };
    out[key] = value;
  }
  return out;
}

/**
 * A serializer whose output passes the same redaction one level down, as
 * pino's own redaction would see it: `{ req }` with pino-http's serializer
 * becomes `{ req: { headers } }` only inside pino.
 */
export function redactingSerializer(
  serialize: (value: unknown) => unknown,
): (value: unknown) => unknown {
  return redactingOutput(serialize, redactNested);
}

/** `f` with what it returns passed through `redact` when it is an object. */
function redactingOutput(
  f: (value: unknown) => unknown,
  redact: (o: Fields) => Fields,
): (value: unknown) => unknown {
  return function redacted(this: unknown, value: unknown): unknown {
    const out = f.call(this, value);
    return isObject(out) ? redact(out) : out;
  };
}

/**
 * Options whose every serializer is wrapped by {@link redactingSerializer},
 * whose `base` fields are redacted, and whose `formatters.log` and
 * `formatters.bindings` have their output redacted as a line's fields are:
 * pino's own `redact` sees all of these.
 */
export function withRedactingSerializers<T>(options: T): T {
  if (!isObject(options)) return options;
  let out: Fields = options;
  const serializers = options["serializers"];
  if (isObject(serializers)) {
    const wrapped: Record<string, unknown> = {};
    for (const [key, s] of Object.entries(serializers))
      wrapped[key] =
        typeof s === "function"
          ? redactingSerializer(s as (v: unknown) => unknown)
          : s;
    out = { ...out, serializers: wrapped };
  }
  const base = options["base"];
  if (isObject(base)) {
    const redacted = redactSecrets(base);
    if (redacted !== base) out = { ...out, base: redacted };
  }
  const formatters = options["formatters"];
  if (isObject(formatters)) {
    const wrapped: Fields = { ...formatters };
    for (const key of ["log", "bindings"] as const) {
      const f = formatters[key];
      if (typeof f === "function")
        wrapped[key] = redactingOutput(
          f as (o: unknown) => unknown,
          redactSecrets,
        );
    }
    out = { ...out, formatters: wrapped };
  }
  return out as T;
}
