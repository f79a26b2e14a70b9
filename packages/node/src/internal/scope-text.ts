/**
 * A tracer's or meter's name, version or schema URL as its scope is
 * exported, from JavaScript that gave no string (`getTracer()`, a version
 * as a number): its text, and none for undefined, null or what has no
 * text (an object without a prototype). Exported as they were given, they
 * failed the encoding of every batch their spans or metrics went in.
 */
export function scopeText(value: unknown): string {
  if (value === undefined || value === null) return "";
  try {
    return String(value);
  } catch {
    return "";
  }
}
