// The route template of a Fastify request.
//
// The route is the one registered (`routeOptions.url`: the prefixes of the
// plugins it was registered in included, parameters as `:name`), kept on the
// holder of the response's span state. Nothing is patched and Fastify is never
// loaded; Fastify's diagnostics channels bring both:
//
// - `fastify.initialization` hands over each instance as it is created, and it
//   gets an `onRequest` hook. Hooks run in the order they were added, so it
//   comes before the application's: a request a hook answers (an `onRequest`
//   check refusing the caller, a `preHandler` cache hit) or schema validation
//   rejects is named too. Fastify 5 and 4 publish the instance; 4 has
//   `routeOptions` from 4.10. It is one more hook call per request in Fastify
//   apps, which reads the route only for a traced request with none yet; an
//   application without Fastify publishes nothing there and pays nothing.
// - `tracing:fastify.request.handler:start`, published as the route's handler
//   is called (Fastify 5), names the requests of instances created before
//   Threadline started, whose handlers are reached.
//
// A request no route matched goes to Fastify's 404 handler, whose route is
// undefined, and keeps no route.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { RouteHolder } from "@threadline/core";

// https://fastify.dev/docs/latest/Reference/Hooks/#diagnostics-channel-hooks
const INITIALIZATION = "fastify.initialization";
const HANDLER_START = "tracing:fastify.request.handler:start";

type Hook = (request: Request, reply: Reply, done: () => void) => void;

interface Initialization {
  fastify?: { addHook?: (name: string, hook: Hook) => unknown };
}

interface HandlerStart {
  reply?: Reply;
  route?: { url?: unknown };
}

interface Request {
  routeOptions?: { url?: unknown };
}

interface Reply {
  raw?: unknown;
}

/**
 * Names Fastify requests: `holderOf` gives the route holder of a traced
 * response, whose route is set unless the application named it first.
 * Returns the unsubscribe; instances already given the hook keep it, and it
 * finds no holder once the instrumentation is disabled.
 */
export function subscribeFastifyRoutes(
  holderOf: (res: object) => RouteHolder | undefined,
): () => void {
  // Before any hook of the application runs.
  const onRequest: Hook = (request, reply, done) => {
    try {
      const res = reply.raw;
      if (typeof res === "object" && res !== null) {
        const holder = holderOf(res);
        if (holder !== undefined && holder.route === undefined) {
          const url = request.routeOptions?.url;
          if (typeof url === "string") holder.route = url;
        }
      }
    } catch {
      // Fastify's shapes changed: the request keeps no route.
    }
    done();
  };
  const onInitialization = (message: unknown): void => {
    const fastify = (message as Initialization | null)?.fastify;
    if (typeof fastify?.addHook !== "function") return;
    try {
      fastify.addHook("onRequest", onRequest);
    } catch {
      // A Fastify that refuses the hook is served unnamed.
    }
  };
  const onHandlerStart = (message: unknown): void => {
    if (typeof message !== "object" || message === null) return;
    const { reply, route } = message as HandlerStart;
    const url = route?.url;
    const res = reply?.raw;
    if (typeof url !== "string" || typeof res !== "object" || res === null)
      return;
    const holder = holderOf(res);
    if (holder !== undefined) holder.route ??= url;
  };
  subscribe(INITIALIZATION, onInitialization);
  subscribe(HANDLER_START, onHandlerStart);
  return () => {
    unsubscribe(INITIALIZATION, onInitialization);
    unsubscribe(HANDLER_START, onHandlerStart);
  };
}
