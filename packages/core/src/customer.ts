// The customer id lives in its own context slot rather than only inside the
// Baggage object: every span start and every log line reads it, and one
// Map lookup on the context is cheaper than walking baggage entries. The
// baggage propagator moves it in and out of the `customer.id` baggage entry
// at the process boundary.
import {
  context,
  createContextKey,
  propagation,
  type Context,
} from "@opentelemetry/api";
import { diag } from "./diagnostics.ts";

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
 * The customer id `value` names: a valid string as it is, a safe integer
 * or a bigint as its decimal digits (database keys often are numbers),
 * when those are a valid id too: a bigint can have more digits than the
 * 128 characters the next service accepts. Undefined for anything else.
 */
export function customerIdOf(value: unknown): string | undefined {
  const id =
    Number.isSafeInteger(value) || typeof value === "bigint"
      ? String(value)
      : value;
  return isValidCustomerId(id) ? id : undefined;
}

/**
 * A copy of `ctx` acting for no customer: without its customer id, nor the
 * `customer.id` baggage entry it came with, which would otherwise be sent
 * on as the customer's.
 */
export function withoutCustomer(ctx: Context): Context {
  let result = ctx.deleteValue(CUSTOMER_KEY);
  const baggage = propagation.getBaggage(result);
  if (baggage?.getEntry(CUSTOMER_ID) !== undefined)
    result = propagation.setBaggage(result, baggage.removeEntry(CUSTOMER_ID));
  return result;
}

/**
 * Runs `fn` with `customerId` as the current customer: spans started and
 * lines logged inside carry it, and calls to internal services carry it on.
 * A safe integer or bigint is taken as its decimal digits. `undefined`
 * runs `fn` for no customer, and so does an invalid id (see
 * {@link isValidCustomerId}; a bigint of more than 128 digits is one),
 * with a warning once: never for the customer around it, whose work `fn`
 * is not.
 *
 * @example
 * await withCustomer('c-42', () => processNightlyInvoice(invoice));
 */
export function withCustomer<R>(
  customerId: string | number | bigint | undefined,
  fn: () => R,
): R {
  const id = customerIdOf(customerId);
  const active = context.active();
  if (id !== undefined)
    return context.with(active.setValue(CUSTOMER_KEY, id), fn);
  if (customerId !== undefined)
    diag.warnOnce(
      "with-customer-invalid",
      `withCustomer() was given ${typeof customerId === "string" ? "a string" : `a value of type ${typeof customerId}`} that is no valid customer id (1-128 printable ASCII characters without spaces, quotes, commas, semicolons or backslashes, or an integer of at most 128 digits); what it runs has no customer id`,
    );
  return context.with(withoutCustomer(active), fn);
}
