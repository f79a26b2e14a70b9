// The route of the server request being handled ("/orders/:id"), set by a
// framework adapter or by the application, read by the HTTP instrumentation
// when the response ends to name the span `METHOD /route`.
import { context, createContextKey, type Context } from "@opentelemetry/api";

const ROUTE_SLOT: symbol = createContextKey("threadline.http.server.route");

/** Mutable per-request holder placed in the request's context by the HTTP instrumentation. */
export interface RouteHolder {
  route: string | undefined;
}

/** A copy of `ctx` carrying `holder`. */
export function contextWithRouteHolder(
  ctx: Context,
  holder: RouteHolder,
): Context {
  return ctx.setValue(ROUTE_SLOT, holder);
}

/**
 * Names the route of the HTTP request being served, as a template
 * (`/orders/:id`, never the concrete path), so its server span is named
 * `POST /orders/:id` and request metrics group by route. Express and Fastify
 * routes are read automatically (a name set here wins); call this from plain
 * `node:http` handlers or other frameworks. Outside a request it does nothing.
 *
 * @example
 * if (req.method === 'GET' && /^\/orders\/\d+$/.test(url)) setHttpRoute('/orders/:id');
 */
export function setHttpRoute(route: string): void {
  const holder = context.active().getValue(ROUTE_SLOT) as
    RouteHolder | undefined;
  if (
    holder !== undefined &&
    typeof route === "string" &&
    route.length > 0 &&
    route.length <= 256
  )
    holder.route = route;
}
