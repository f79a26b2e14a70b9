// The client module for a URL, taken when it is first needed. Not an ESM
// import: the namespace of node:http reads its lazy getters, which load
// undici and http2 (about 13 MB), and node:https loads TLS, which a service
// exporting over plain HTTP never needs.
import type * as http from "node:http";

/** node:https for https: URLs, node:http for any other. */
export function httpClientFor(
  url: URL,
): Pick<typeof http, "Agent" | "request"> {
  return process.getBuiltinModule(
    url.protocol === "https:" ? "node:https" : "node:http",
  );
}
