// The forward proxy fetch() sends a plain-HTTP request through when its
// global dispatcher is undici's EnvHttpProxyAgent: Node installs one for
// NODE_USE_ENV_PROXY, --use-env-proxy and http.setGlobalProxyFromEnv(), and
// applications their own. It opens a CONNECT tunnel to the destination,
// but the request inside it is plain HTTP: the proxy reads its headers.
// The request is created before its tunnel, so the proxy has to be known
// then. Costs one property read and comparison per plain-HTTP request; the
// dispatcher is examined again only when another one is installed.
import {
  absoluteFormTarget,
  ownSymbolNamed,
  UNKNOWN_PROXY_VIA,
  type ClientRequestInfo,
} from "@threadline/core";

type Via = NonNullable<ClientRequestInfo["via"]>;

const GLOBAL_DISPATCHER = Symbol.for("undici.globalDispatcher.1");

interface NoProxyEntry {
  hostname: string;
  port: number;
}

function symbolNamed(o: object, description: string): unknown {
  const key = ownSymbolNamed(o, description);
  return key === undefined ? undefined : (o as Record<symbol, unknown>)[key];
}

/** The proxy an EnvHttpProxyAgent sends plain-HTTP requests to; undefined for none. */
function httpProxyOf(dispatcher: object): Via | undefined {
  const proxied = symbolNamed(dispatcher, "http proxy agent");
  if (
    typeof proxied !== "object" ||
    proxied === null ||
    proxied === symbolNamed(dispatcher, "no proxy agent")
  )
    return undefined;
  const uri = (
    symbolNamed(proxied, "proxy agent options") as { uri?: unknown } | undefined
  )?.uri;
  const proxy = typeof uri === "string" ? absoluteFormTarget(uri) : undefined;
  return proxy === undefined
    ? UNKNOWN_PROXY_VIA
    : { host: proxy.host, port: proxy.port };
}

/** NO_PROXY as EnvHttpProxyAgent reads it. */
function noProxyEntries(): NoProxyEntry[] {
  const value = process.env["no_proxy"] ?? process.env["NO_PROXY"] ?? "";
  const entries: NoProxyEntry[] = [];
  for (const entry of value.split(/[,\s]/)) {
    if (entry === "") continue;
    const m = /^(.+):(\d+)$/.exec(entry);
    entries.push({
      hostname: (m?.[1] ?? entry).replace(/^\*?\./, "").toLowerCase(),
      port: m === null ? 0 : Number(m[2]),
    });
  }
  return entries;
}

export class EnvProxy {
  #dispatcher: unknown = undefined;
  #proxy: Via | undefined;
  #noProxy: NoProxyEntry[] = [];

  /** The proxy a plain-HTTP request to `host:port` through the global dispatcher goes through. */
  for(host: string, port: number): Via | undefined {
    const dispatcher = (globalThis as Record<symbol, unknown>)[
      GLOBAL_DISPATCHER
    ];
    if (dispatcher !== this.#dispatcher) this.#read(dispatcher);
    if (this.#proxy === undefined || this.#bypassed(host, port))
      return undefined;
    return this.#proxy;
  }

  #read(dispatcher: unknown): void {
    this.#dispatcher = dispatcher;
    this.#proxy =
      typeof dispatcher === "object" &&
      dispatcher !== null &&
      dispatcher.constructor.name === "EnvHttpProxyAgent"
        ? httpProxyOf(dispatcher)
        : undefined;
    this.#noProxy = this.#proxy === undefined ? [] : noProxyEntries();
  }

  #bypassed(host: string, port: number): boolean {
    const h = host.toLowerCase();
    for (const entry of this.#noProxy) {
      if (entry.hostname === "*") return true;
      if (entry.port !== 0 && entry.port !== port) continue;
      if (h === entry.hostname || h.endsWith(`.${entry.hostname}`)) return true;
    }
    return false;
  }
}
