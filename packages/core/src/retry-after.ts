// Retry-After (RFC 9110 §10.2.3), as seconds or an HTTP date. A module of
// its own, importing nothing, so the export worker can take it without the
// rest of core.

/**
 * Whether an answer says the request failed in a way a client tries again
 * after: too many requests, or a server error.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * How long a `Retry-After` value asks to wait, in ms; undefined when it is
 * neither form. A date already past asks for no wait (0), as "0" does; an
 * empty value asks for nothing, though Number() reads it as 0.
 */
export function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
