// The customer id lives in its own context slot rather than only inside the
// Baggage object: every span start and every log line reads it, and one
// Map lookup on the context is cheaper than walking baggage entries. The
// baggage propagator moves it in and out of the `customer.id` baggage entry
// at the process boundary.
import { context, createContextKey, type Context } from "@opentelemetry/api";

/** Context key holding the current customer id (a string). */
export const CUSTOMER_KEY: symbol = createContextKey("threadline.customer.id");

/** Name of the W3C baggage entry, span attribute and log field that carry the customer id. */
export const CUSTOMER_ID = "customer.id";

/** Longest customer id accepted; longer values are ignored, never truncated. */
export const MAX_CUSTOMER_ID_LENGTH = 128;

/**
 * Whether `value` can be used as a customer id: a non-empty string of at most
 * 128 printable ASCII characters without spaces, commas, semicolons, quotes
 * or backslashes, so it travels unchanged in baggage and log lines.
 */
export function isValidCustomerId(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const n = value.length;
  if (n === 0 || n > MAX_CUSTOMER_ID_LENGTH) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    // printable ASCII minus space, '"', ',', ';', '\'
    if (
      c <= 0x20 ||
      c >= 0x7f ||
      c === 0x22 ||
      c === 0x2c ||
      c === 0x3b ||
      c === 0x5c
    )
      return false;
  }
  return true;
}

/** The customer id carried by `ctx`, if any. */
export function getCustomerFromContext(ctx: Context): string | undefined {
  return ctx.getValue(CUSTOMER_KEY) as string | undefined;
}

/** A copy of `ctx` carrying `customerId`; `ctx` itself when the id is invalid. */
export function setCustomerInContext(
  ctx: Context,
  customerId: string,
): Context {
  return isValidCustomerId(customerId)
    ? ctx.setValue(CUSTOMER_KEY, customerId)
    : ctx;
}

/**
 * The customer id of the active context: the one taken at the edge of the
 * system, carried here in baggage, or set with {@link withCustomer}.
 *
 * @example
 * app.get('/orders', (req, res) => {
 *   const customer = getCustomerId(); // 'c-42'
 * });
 */
export function getCustomerId(): string | undefined {
  return context.active().getValue(CUSTOMER_KEY) as string | undefined;
}

/**
 * Runs `fn` with `customerId` as the current customer: spans started and
 * lines logged inside carry it, and calls to internal services carry it on.
 * An invalid id (see {@link isValidCustomerId}) leaves the context unchanged.
 *
 * @example
 * await withCustomer('c-42', () => processNightlyInvoice(invoice));
 */
export function withCustomer<R>(customerId: string, fn: () => R): R {
  return context.with(setCustomerInContext(context.active(), customerId), fn);
}
