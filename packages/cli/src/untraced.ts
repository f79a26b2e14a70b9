// The CLI's own traffic is no service's: a developer whose shell loads
// Threadline into every Node process (NODE_OPTIONS) loads it here too, and
// the viewer would then trace each OTLP request it receives, and each of
// its own API calls, export those spans to itself, and trace that export
// in turn, for as long as it runs.
import type { Server } from "node:http";
import { context } from "@opentelemetry/api";
import { suppressTracing, UNTRACED_SERVER } from "@threadline/core";

/** `server`, which the http instrumentation leaves untraced. */
export function untracedServer<S extends Server>(server: S): S {
  (server as unknown as Record<symbol, unknown>)[UNTRACED_SERVER] = true;
  return server;
}

/** fetch, which the undici instrumentation leaves untraced. */
export function untracedFetch(
  input: string | URL,
  init?: RequestInit,
): Promise<Response> {
  return context.with(suppressTracing(context.active()), () =>
    fetch(input, init),
  );
}
