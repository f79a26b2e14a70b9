// What OpenTelemetry allows as an attribute value, for spans and metrics
// alike.
import type { AttributeValue } from "@opentelemetry/api";

/**
 * A string, number or boolean, or an array of them (null and undefined
 * elements too). Anything else (a BigInt, an object, a function) has no
 * encoding, and a BigInt or a circular object would make a metric series'
 * key throw into the application: spans and measurements leave it out.
 */
export function isAttributeValue(v: unknown): v is AttributeValue {
  switch (typeof v) {
    case "string":
    case "number":
    case "boolean":
      return true;
    case "object":
      if (!Array.isArray(v)) return false;
      for (const x of v as unknown[])
        if (
          x != null &&
          typeof x !== "string" &&
          typeof x !== "number" &&
          typeof x !== "boolean"
        )
          return false;
      return true;
    default:
      return false;
  }
}
