// What must never be recorded: secrets in URL query strings. Keys that look
// like credentials keep their name, their value becomes REDACTED, so the
// shape of the request stays visible.

const SECRET_KEY =
  /(pass|pwd|secret|token|key|auth|sig|session|credential|code|jwt|bearer|cookie)/i;

/** Replacement written instead of a secret value. */
export const REDACTED = "REDACTED";

/** Redacts the values of secret-looking keys in a raw query string (without `?`). */
export function redactQuery(query: string): string {
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
    if (SECRET_KEY.test(key) && eq < part.length - 1) {
      parts[i] = `${part.slice(0, eq)}=${REDACTED}`;
      changed = true;
    }
  }
  return changed ? parts.join("&") : query;
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
