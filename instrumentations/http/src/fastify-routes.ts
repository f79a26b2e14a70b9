// The route template of a Fastify request.
//
// Fastify 5 publishes each request on the `fastify.request.handler` tracing
// channel as it calls the route's handler; the `start` event carries the
// route as registered (`routeOptions.url`: the prefixes of the plugins it was
// registered in included, parameters as `:name`) and the reply, whose raw
// ServerResponse is the one the server span is kept on. So nothing is
// patched and Fastify is never loaded: an application without Fastify
// publishes nothing there and pays nothing, and one with it pays the message
// Fastify builds for its subscribers. A request no route matched goes to
// Fastify's 404 handler, which publishes nothing, and keeps no route.
// Fastify 4 publishes no requests: its routes are named with setHttpRoute().
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { ServerResponse } from "node:http";

// https://fastify.dev/docs/latest/Reference/Hooks/#diagnostics-channel-hooks
const HANDLER_START = "tracing:fastify.request.handler:start";

interface HandlerStart {
  reply?: { raw?: unknown };
  route?: { url?: unknown };
}

/**
 * Calls `onRoute` with the response and route template of each Fastify
 * request as its handler is called; returns the unsubscribe.
 */
export function subscribeFastifyRoutes(
  onRoute: (res: ServerResponse, route: string) => void,
): () => void {
  const onStart = (message: unknown): void => {
    if (typeof message !== "object" || message === null) return;
    const { reply, route } = message as HandlerStart;
    const url = route?.url;
    const res = reply?.raw;
    if (typeof url === "string" && typeof res === "object" && res !== null)
      onRoute(res as ServerResponse, url);
  };
  subscribe(HANDLER_START, onStart);
  return () => unsubscribe(HANDLER_START, onStart);
}
