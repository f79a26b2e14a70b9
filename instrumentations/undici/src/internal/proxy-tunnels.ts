// The forward proxies that plain HTTP is tunnelled through by a dispatcher
// given to the request itself (a ProxyAgent, an EnvHttpProxyAgent of the
// application's own): the proxy reads what crosses its tunnel. Nothing a
// request carries names its dispatcher, and the first request to a
// destination is created before its tunnel is opened, so a tunnel is
// recognised when it connects: undici hands the destination's client the
// very socket it connected to the proxy, and `undici:client:connected`
// publishes both. The requests queued for it are then judged again, before
// any is written, and while a tunnel to a destination is open a request
// created for that destination is judged by its proxy too, whatever
// dispatcher it is given: the customer id is kept from it rather than
// risked. A dispatcher that connects through its proxy in a connector of
// its own (undici's Socks5ProxyAgent) publishes no connection to the
// proxy: its socket is known by having carried the proxy's handshake
// before undici hands it over, where one connected to the destination has
// carried nothing yet, and the proxy by the socket's peer address. Costs a
// weak-map entry per connection, and per plain-HTTP request a size check
// while no tunnel is open.
import {
  ownSymbolNamed,
  relayingProxy,
  UNKNOWN_PROXY_VIA,
} from "@threadline/core";
import type { ClientRequestInfo } from "@threadline/core";

type Via = NonNullable<ClientRequestInfo["via"]>;

/** Where a socket was connected. */
interface Endpoint {
  host: string;
  port: number;
}

/** What `undici:client:connected` publishes that is read here. */
export interface ConnectedMessage {
  connectParams: {
    host: string;
    hostname: string;
    protocol: string;
    port: string;
  };
  socket: object & { once(event: "close", listener: () => void): unknown };
}

interface Tunnel {
  via: Via;
  sockets: number;
}

function sameVia(a: Via, b: Via): boolean {
  return a.host === b.host && a.port === b.port;
}

function portOf(params: ConnectedMessage["connectParams"]): number {
  if (params.port !== "") return Number(params.port);
  return params.protocol === "https:" ? 443 : 80;
}

export class ProxyTunnels {
  /** Where each socket undici connected went first. */
  readonly #connectedTo = new WeakMap<object, Endpoint>();
  /** Open tunnels by destination, as undici writes it in the Host header (`host[:port]`). */
  readonly #open = new Map<string, Tunnel>();

  /**
   * Notes a connection; when its socket was connected to a proxy before,
   * it is a tunnel, and for plain HTTP the proxy it crosses is returned.
   */
  connected({ connectParams, socket }: ConnectedMessage): Via | undefined {
    let proxy: Via | undefined = this.#connectedTo.get(socket);
    if (proxy === undefined) {
      this.#connectedTo.set(socket, {
        host: connectParams.hostname,
        port: portOf(connectParams),
      });
      // A TLS socket has carried its own handshake.
      if (connectParams.protocol !== "http:") return undefined;
      proxy = relayingProxy(socket);
      if (proxy === undefined) return undefined;
    }
    // TLS to the destination would be a socket of its own, over this one.
    if (connectParams.protocol !== "http:") return undefined;
    const key = connectParams.host;
    const tunnel = this.#open.get(key);
    if (tunnel === undefined) this.#open.set(key, { via: proxy, sockets: 1 });
    else {
      tunnel.sockets++;
      // Tunnels to one destination through two proxies: judged by neither.
      if (!sameVia(tunnel.via, proxy)) tunnel.via = UNKNOWN_PROXY_VIA;
    }
    socket.once("close", () => {
      const t = this.#open.get(key);
      if (t !== undefined && --t.sockets === 0) this.#open.delete(key);
    });
    return proxy;
  }

  /** The proxy a plain-HTTP request to `authority` (`host[:port]`) may cross, if a tunnel to it is open. */
  for(authority: string): Via | undefined {
    return this.#open.size === 0 ? undefined : this.#open.get(authority)?.via;
  }
}

/** The requests waiting on the client that has just been handed `socket`; undefined when the version at hand does not tell. */
export function queuedOn(socket: object): unknown[] | undefined {
  const clientKey = ownSymbolNamed(socket, "client");
  const client =
    clientKey === undefined
      ? undefined
      : (socket as Record<symbol, unknown>)[clientKey];
  if (typeof client !== "object" || client === null) return undefined;
  const queueKey = ownSymbolNamed(client, "queue");
  const queue =
    queueKey === undefined
      ? undefined
      : (client as Record<symbol, unknown>)[queueKey];
  return Array.isArray(queue) ? queue : undefined;
}
