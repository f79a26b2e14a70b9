// TextMapPropagators for W3C Trace Context and W3C Baggage.
//
// They are registered as the global propagator so user code and third-party
// instrumentations see standard behaviour. The baggage propagator also moves
// the customer id between the `customer.id` baggage entry and its own
// context slot (see customer.ts). Which callers may send baggage, and which
// hosts may receive it, is decided by the caller of inject/extract through
// the getter and setter (see trust.ts), not here.
import {
  baggageEntryMetadataFromString,
  context,
  propagation,
  trace,
  type BaggageEntry,
  type Context,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from "@opentelemetry/api";
import {
  CUSTOMER_ID,
  getCustomerFromContext,
  isValidCustomerId,
  setCustomerInContext,
} from "./customer.ts";
import {
  WATCH_BAGGAGE,
  WATCH_KEY,
  parseCarriedWatch,
  watchLevelName,
  watchList,
  watchOf,
  watchUntilProperty,
  type CarriedWatch,
} from "./watch.ts";
import {
  parseBaggage,
  serializeBaggage,
  type BaggageMember,
} from "./baggage.ts";
import {
  formatTraceparent,
  isPropagatable,
  parseTraceparent,
  W3CTraceState,
} from "./trace-context.ts";

// Same key as @opentelemetry/core's suppressTracing(), so contexts marked by
// upstream code (e.g. an exporter) are honoured without depending on it.
// One array each, for every fields() call: callers (copiedHeaderNames)
// cache on them. Never to be changed.
const TRACE_CONTEXT_FIELDS = ["traceparent", "tracestate"];
export const BAGGAGE_FIELDS = ["baggage"];

const SUPPRESS_TRACING_KEY = Symbol.for(
  "OpenTelemetry SDK Context Key SUPPRESS_TRACING",
);

/** Whether tracing is suppressed in `ctx` (exporter traffic and the like). */
export function isTracingSuppressed(ctx: Context): boolean {
  return ctx.getValue(SUPPRESS_TRACING_KEY) === true;
}

/** `ctx` with tracing suppressed: Threadline's own traffic (health probes, notifications). */
export function suppressTracing(ctx: Context): Context {
  return ctx.setValue(SUPPRESS_TRACING_KEY, true);
}

/** What `fn` returns, run with tracing suppressed: a call of Threadline's own. */
export function untraced<T>(fn: () => T): T {
  return context.with(suppressTracing(context.active()), fn);
}

function single(value: string | string[] | undefined): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  // Several traceparent headers make the request's trace ambiguous: invalid.
  return value.length === 1 ? value[0] : undefined;
}

function joined(value: string | string[] | undefined): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  return value.join(",");
}

/** W3C Trace Context: `traceparent` and `tracestate`. */
export class TraceContextPropagator implements TextMapPropagator {
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const sc = trace.getSpanContext(ctx);
    if (!isPropagatable(sc) || isTracingSuppressed(ctx)) return;
    setter.set(
      carrier,
      "traceparent",
      formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags),
    );
    const state = sc.traceState?.serialize();
    if (state) setter.set(carrier, "tracestate", state);
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const parent = parseTraceparent(single(getter.get(carrier, "traceparent")));
    if (parent === undefined) return ctx;
    const traceState = W3CTraceState.fromHeader(
      joined(getter.get(carrier, "tracestate")),
    );
    return trace.setSpanContext(ctx, {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.traceFlags,
      isRemote: true,
      ...(traceState === undefined ? {} : { traceState }),
    });
  }

  fields(): string[] {
    return TRACE_CONTEXT_FIELDS;
  }
}

/**
 * Marks a getter of Threadline's own that reads a carrier from a trusted
 * source (a trusted caller's request, a queue's message): at the edge, only
 * baggage read through one names the customer (see BaggagePropagator).
 */
export const TRUSTED_CARRIER: unique symbol = Symbol.for(
  "threadline.trusted-carrier",
) as never;

/** `getter`, marked as reading trusted carriers (see {@link TRUSTED_CARRIER}). */
export function trustedCarrierGetter<T>(
  getter: TextMapGetter<T>,
): TextMapGetter<T> {
  return Object.assign(getter, { [TRUSTED_CARRIER]: true });
}

/**
 * W3C Baggage, with the customer id kept in its own context slot as well,
 * and a watched request's decision (watch.ts) carried in `threadline.watch`.
 * At the edge (`edge`), baggage extracted through a getter not marked
 * {@link TRUSTED_CARRIER} (the application's own `propagation.extract()` of
 * a request's headers, another library's instrumentation) names no
 * customer and carries no watch: the edge's callers are not trusted, and
 * what they send would be taken, and sent on to every internal service.
 */
export class BaggagePropagator implements TextMapPropagator {
  readonly #edge: boolean;

  constructor(options: { edge?: boolean } = {}) {
    this.#edge = options.edge === true;
  }

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    if (isTracingSuppressed(ctx)) return;
    const customer = getCustomerFromContext(ctx);
    const baggage = propagation.getBaggage(ctx);
    const watch = watchList.active ? watchOf(ctx) : undefined;
    if (customer === undefined && baggage === undefined && watch === undefined)
      return;
    const members: BaggageMember[] = [];
    if (customer !== undefined)
      members.push({ key: CUSTOMER_ID, value: customer });
    if (watch !== undefined)
      members.push({
        key: WATCH_BAGGAGE,
        value: watchLevelName(watch.level),
        metadata: watchUntilProperty(watch),
      });
    if (baggage !== undefined) {
      for (const [key, entry] of baggage.getAllEntries()) {
        if (key === CUSTOMER_ID && customer !== undefined) continue;
        if (key === WATCH_BAGGAGE) continue;
        const metadata = entry.metadata?.toString();
        members.push(
          metadata
            ? { key, value: entry.value, metadata }
            : { key, value: entry.value },
        );
      }
    }
    const header = serializeBaggage(members);
    if (header.length > 0) setter.set(carrier, "baggage", header);
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const members = parseBaggage(joined(getter.get(carrier, "baggage")));
    if (members.length === 0) return ctx;
    // No prototype: `__proto__` is a key like any other.
    const entries: Record<string, BaggageEntry> = Object.create(null) as Record<
      string,
      BaggageEntry
    >;
    let result = ctx;
    let customer: string | undefined;
    let watch: BaggageMember | undefined;
    const trusted =
      !this.#edge ||
      (getter as { [TRUSTED_CARRIER]?: unknown })[TRUSTED_CARRIER] === true;
    for (const m of members) {
      if (!trusted && (m.key === CUSTOMER_ID || m.key === WATCH_BAGGAGE))
        continue;
      if (m.key === CUSTOMER_ID) {
        if (!isValidCustomerId(m.value)) continue;
        customer = m.value;
        result = setCustomerInContext(result, m.value);
      } else if (m.key === WATCH_BAGGAGE) {
        // Kept in its own slot only; inject writes it again while it applies.
        watch = m;
        continue;
      }
      entries[m.key] =
        m.metadata === undefined
          ? { value: m.value }
          : {
              value: m.value,
              metadata: baggageEntryMetadataFromString(m.metadata),
            };
    }
    // For the customer it came with only, and until its end (see watch.ts).
    const carried: CarriedWatch | undefined =
      watch === undefined
        ? undefined
        : parseCarriedWatch(watch.value, watch.metadata, customer);
    if (carried !== undefined) {
      result = result.setValue(WATCH_KEY, carried);
      watchList.noteCarried(carried.until);
    }
    return propagation.setBaggage(result, propagation.createBaggage(entries));
  }

  fields(): string[] {
    return BAGGAGE_FIELDS;
  }
}
