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
//
// Names of HTTP headers match in any letter case: header names are
// case-insensitive, and applications log outgoing headers as they send
// them (`Authorization`, `Set-Cookie`), where Node gives incoming ones in
// lower case. pino's paths match exactly, so these cannot be paths of
// pino's; a key is lower-cased only when its length is that of such a name.

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

/** Header names whose values are secrets, in lower case. */
const SECRET_HEADERS = [
  "authorization",
  "cookie",
  "set-cookie",
  "proxy-authorization",
  "x-api-key",
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

/** Lower-case names, asked in any letter case (see the top of this file). */
class AnyCase {
  readonly #names: ReadonlySet<string>;
  /** Bit n is set when a name is n characters long. */
  readonly #lengths: number;

  constructor(names: readonly string[]) {
    this.#names = new Set(names);
    this.#lengths = names.reduce((bits, n) => bits | (1 << n.length), 0);
  }

  has(key: string): boolean {
    const n = key.length;
    return (
      n < 32 &&
      (this.#lengths & (1 << n)) !== 0 &&
      this.#names.has(key.toLowerCase())
    );
  }
}

/** The secret names that are header names too, as `*.authorization` finds them. */
const HEADER_NAMED = new AnyCase(
  [...SECRET_NAMES].filter((n) =>
    (SECRET_HEADERS as readonly string[]).includes(n),
  ),
);
const SECRET_HEADER_NAMES = new AnyCase(SECRET_HEADERS);

/** A field name whose value is a secret wherever the defaults look for one. */
function isSecretName(key: string): boolean {
  return SECRET_NAMES.has(key) || HEADER_NAMED.has(key);
}

type Fields = Record<string, unknown>;

function isObject(v: unknown): v is Fields {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A copy that keeps the prototype and every own property (symbols too), so
 * pino's serializers see a request or an error as they would the original,
 * each one a plain data property that can be replaced: the original's may
 * be read-only (frozen, or made by defineProperty) or a getter without a
 * setter. An accessor is copied as the value it gives on the original, read
 * once: V8's `stack` of an error is one, and gives nothing on any other
 * object. One that throws is copied as `[Redacted]`, as what it would have
 * given is unknown. A property holding the original holds the copy, so a
 * cycle stays one and its secret is not written again inside it.
 */
function copyOf(o: Fields): Fields {
  const descriptors = Object.getOwnPropertyDescriptors(o);
  const cycles: PropertyKey[] = [];
  for (const key of Reflect.ownKeys(descriptors)) {
    const d = descriptors[key as string]!;
    let value: unknown = d.value;
    if (d.get !== undefined || d.set !== undefined)
      try {
        value = Reflect.get(o, key);
      } catch {
        value = REDACTED;
      }
    if (value === o) cycles.push(key);
    descriptors[key as string] = {
      value,
      writable: true,
      enumerable: d.enumerable === true,
      configurable: true,
    };
  }
  const copy = Object.create(
    Object.getPrototypeOf(o) as object | null,
    descriptors,
  ) as Fields;
  for (const key of cycles) copy[key as string] = copy;
  return copy;
}

/**
 * What JSON.stringify writes for `o` under `key` when `o` has a toJSON
 * method: what the method gives, asked of the original (a copy would lack
 * the private fields a class's method reads). `o` itself otherwise.
 */
function jsonOf(o: Fields, key: string): unknown {
  const toJSON = o["toJSON"];
  return typeof toJSON === "function"
    ? (toJSON as (this: Fields, key: string) => unknown).call(o, key)
    : o;
}

/** What a key's finder gives for a key whose value stays as it is. */
const KEEP: unique symbol = Symbol("keep");

/**
 * `o` with the values `replace` gives for its keys (those `keysOf` lists)
 * written over a copy, or `o` itself when it gives {@link KEEP} for all;
 * `key` is the name `o` is written under, and `asJSON` says `o` is already
 * what a toJSON method gave. The first replacement asks for `o`'s toJSON:
 * what JSON.stringify writes is what the method gives, so that is redacted
 * instead of `o`.
 */
function redactKeys(
  o: Fields,
  key: string,
  asJSON: boolean,
  keysOf: (o: Fields) => Iterable<string>,
  replace: (o: Fields, k: string) => unknown,
): unknown {
  let out: Fields | undefined;
  for (const k of keysOf(o)) {
    const value = replace(o, k);
    if (value === KEEP) continue;
    if (out === undefined) {
      const json = asJSON ? o : jsonOf(o, key);
      if (json !== o)
        return isObject(json)
          ? redactKeys(json, key, true, keysOf, replace)
          : json;
      out = copyOf(o);
    }
    out[k] = value;
  }
  return out ?? o;
}

function headerValue(headers: Fields, h: string): unknown {
  return SECRET_HEADER_NAMES.has(h) && headers[h] !== undefined
    ? REDACTED
    : KEEP;
}

/** Secret headers replaced; `key` is the name `headers` is written under. */
function redactHeaders(headers: Fields, key: string, asJSON = false): unknown {
  return redactKeys(headers, key, asJSON, Object.keys, headerValue);
}

function nestedValue(o: Fields, k: string): unknown {
  if (isSecretName(k)) return REDACTED;
  const h = o[k];
  if (k !== "headers" || !isObject(h)) return KEEP;
  const value = redactHeaders(h, k);
  return value === h ? KEEP : value;
}

/** One level down: secret names, and secret headers under `headers`. */
function redactNested(o: Fields, key: string): unknown {
  return redactKeys(o, key, false, Object.keys, nestedValue);
}

/** A field of the line redacted: `v` itself when it holds no secret. */
function redactField(key: string, v: unknown): unknown {
  if (isSecretName(key)) return v === undefined ? v : REDACTED;
  if (!isObject(v)) return v;
  // `headers` one level down too: `*.token` reaches headers.token.
  const value = redactNested(v, "");
  if (key !== "headers") return value;
  return isObject(value) ? redactHeaders(value, "", value !== v) : value;
}

/**
 * The line's fields with the default secrets replaced by `[Redacted]`; the
 * object itself when it holds none. Never changes what it is given, and
 * never throws: logging goes on whatever the application logs.
 */
export function redactSecrets(fields: Fields): Fields {
  try {
    let out = fields;
    for (const key in fields) {
      const v = fields[key];
      // The common case first, without redactField: a field with no secret
      // name whose value is not an object.
      if (!isObject(v) && !isSecretName(key)) continue;
      const value = redactField(key, v);
      if (value === v) continue;
      if (out === fields) out = { ...fields };
      out[key] = value;
    }
    return out;
  } catch {
    return redactEachField(fields);
  }
}

/**
 * The line's fields redacted one by one, for fields where something threw
 * (a revoked proxy, a getter or a toJSON method that throws): a field that
 * cannot be read or redacted is written as `[Redacted]`, since it may hold
 * a secret, and nothing at all when the fields cannot be listed.
 */
function redactEachField(fields: Fields): Fields {
  const out: Fields = {};
  let keys: PropertyKey[];
  try {
    keys = Reflect.ownKeys(fields).filter(
      (k) => Object.getOwnPropertyDescriptor(fields, k)?.enumerable === true,
    );
  } catch {
    return out;
  }
  for (const key of keys) {
    let value: unknown;
    try {
      value =
        typeof key === "string"
          ? redactField(key, fields[key])
          : (fields as Record<PropertyKey, unknown>)[key];
    } catch {
      value = REDACTED;
    }
    // defined, not assigned: a field named __proto__ stays a field
    Object.defineProperty(out, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
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
  return redactingOutput(serialize, (o) => redactNested(o, ""));
}

/**
 * `f` with what it returns passed through `redact` when it is an object,
 * and `[Redacted]` when that throws.
 */
function redactingOutput(
  f: (value: unknown) => unknown,
  redact: (o: Fields) => unknown,
): (value: unknown) => unknown {
  return function redacted(this: unknown, value: unknown): unknown {
    const out = f.call(this, value);
    try {
      return isObject(out) ? redact(out) : out;
    } catch {
      return REDACTED;
    }
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
