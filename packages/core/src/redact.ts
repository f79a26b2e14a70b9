// What must never be recorded: secrets in URL query strings. Keys that look
// like credentials keep their name, their value becomes REDACTED, so the
// shape of the request stays visible.

const SECRET_KEY =
  /(pass|pwd|secret|token|key|auth|sig|session|credential|code|jwt|bearer|cookie)/i;

/** Replacement written instead of a secret value. */
export const REDACTED = "REDACTED";

/**
 * How many URLs or query strings deep, one inside another's value, secrets
 * are looked for (an OAuth `redirect_uri` whose callback carries a `next`).
 */
const MAX_NESTING = 2;

/** A value that may hold a `key=value` pair once decoded. */
const HOLDS_PAIR = /=|%3d/i;

/**
 * Redacts the values of secret-looking keys in a raw query string (without
 * `?`), and in the query part of a value that is itself a URL or query
 * string (`redirect_uri=https%3A%2F%2Fx%2Fcb%3Fcode%3D...`).
 */
export function redactQuery(query: string): string {
  return redactQueryAt(query, 0);
}

function redactQueryAt(query: string, depth: number): string {
  if (query.length === 0) return query;
  let changed = false;
  const parts = query.split("&");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    let key = part.slice(0, eq);
    try {
      key = decodeURIComponent(key.replace(/\+/g, " "));
    } catch {
      // keep the raw key for the test below
    }
    if (SECRET_KEY.test(key)) {
      if (eq < part.length - 1) {
        parts[i] = `${part.slice(0, eq)}=${REDACTED}`;
        changed = true;
      }
      continue;
    }
    const value = part.slice(eq + 1);
    if (depth < MAX_NESTING && HOLDS_PAIR.test(value)) {
      const nested = redactNested(value, depth + 1);
      if (nested !== undefined) {
        parts[i] = `${part.slice(0, eq)}=${nested}`;
        changed = true;
      }
    }
  }
  return changed ? parts.join("&") : query;
}

/**
 * A query value decoded, its query part (after a `?`, else all of it, up
 * to a `#`) redacted, and encoded again; undefined when nothing in it was
 * redacted, so the value stays as it came.
 */
function redactNested(value: string, depth: number): string | undefined {
  const decoded = decodeLoosely(value.replace(/\+/g, " "));
  const start = decoded.indexOf("?") + 1;
  const hash = decoded.indexOf("#", start);
  const end = hash === -1 ? decoded.length : hash;
  const query = decoded.slice(start, end);
  const redacted = redactQueryAt(query, depth);
  if (redacted === query) return undefined;
  return encodeURIComponent(
    decoded.slice(0, start) + redacted + decoded.slice(end),
  );
}

/**
 * decodeURIComponent that keeps an escape it cannot decode (`%ZZ`, a cut
 * UTF-8 sequence) as written instead of throwing, so the rest is read.
 */
function decodeLoosely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        // Byte by byte: ASCII decodes, a broken sequence stays escaped.
        return run.replace(/%[0-7][0-9a-f]/gi, (byte) =>
          decodeURIComponent(byte),
        );
      }
    });
  }
}

/** Redacts user info and secret query values in a full URL string. */
export function redactUrl(url: string): string {
  let out = url;
  const scheme = out.indexOf("://");
  if (scheme !== -1) {
    const at = out.indexOf("@", scheme + 3);
    const slash = out.indexOf("/", scheme + 3);
    if (at !== -1 && (slash === -1 || at < slash))
      out = `${out.slice(0, scheme + 3)}${REDACTED}:${REDACTED}@${out.slice(at + 1)}`;
  }
  const q = out.indexOf("?");
  if (q === -1) return out;
  const hash = out.indexOf("#", q);
  const query = hash === -1 ? out.slice(q + 1) : out.slice(q + 1, hash);
  return `${out.slice(0, q + 1)}${redactQuery(query)}${hash === -1 ? "" : out.slice(hash)}`;
}
