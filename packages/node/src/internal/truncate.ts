// Cutting strings to the attribute length limit.

/**
 * `s` cut to at most `max` UTF-16 units, never between the halves of a
 * surrogate pair: half a character is not Unicode, and an OTLP/JSON
 * receiver may refuse the whole request for it.
 */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max;
  if (end > 0) {
    const c = s.charCodeAt(end - 1);
    if (c >= 0xd800 && c <= 0xdbff) end--;
  }
  return s.slice(0, end);
}
