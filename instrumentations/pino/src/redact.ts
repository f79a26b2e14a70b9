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
 */
function copyOf(o: Fields): Fields {
  return Object.create(
    Object.getPrototypeOf(o) as object | null,
    Object.getOwnPropertyDescriptors(o),
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
      value = key === "headers" ? redactHeaders(v) : redactNested(v);
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
  return function redacted(this: unknown, value: unknown): unknown {
    const out = serialize.call(this, value);
    return isObject(out) ? redactNested(out) : out;
  };
}

/** Options with every serializer wrapped by {@link redactingSerializer}. */
export function withRedactingSerializers<T>(options: T): T {
  const serializers = (options as { serializers?: unknown } | undefined)
    ?.serializers;
  if (!isObject(serializers)) return options;
  const wrapped: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(serializers))
    wrapped[key] =
      typeof s === "function"
        ? redactingSerializer(s as (v: unknown) => unknown)
        : s;
  return { ...options, serializers: wrapped };
}
