// Trust boundaries for context propagation.
//
// Inbound: baggage (and with it the customer id) is read only from callers
// whose address is trusted, and never at an edge service. X-Forwarded-For
// is believed only as far as it was written by trusted proxies, a list of
// its own: an edge service trusts no caller's baggage, yet sits behind a
// load balancer whose word on the client's address it needs. Outbound: baggage
// is written only to hosts classified as internal, never to a declared third
// party. Classification results are cached per host:port so the per-request
// cost is one Map lookup; address checks use node:net's BlockList.
import { BlockList, isIP } from "node:net";

/** An address/host rule list such as `loopback,private,10.1.0.0/16,*.svc.cluster.local,orders:8080`. */
export class AddressMatcher {
  readonly #blocks = new BlockList();
  readonly #hosts = new Set<string>();
  readonly #suffixes: string[] = [];
  #empty = true;
  #loopback = false;

  /**
   * Parses a comma-separated list (or an array) of rules:
   * `loopback`, `private` (RFC 1918 and IPv6 unique-local), `none`, an IP
   * address, a CIDR block, a host name, or `*.domain` for any subdomain.
   * Unknown entries are reported in `errors` and otherwise ignored.
   */
  static parse(
    spec: string | readonly string[],
    { addressesOnly = false }: { addressesOnly?: boolean } = {},
  ): {
    matcher: AddressMatcher;
    errors: string[];
  } {
    const m = new AddressMatcher();
    const errors: string[] = [];
    const items = typeof spec === "string" ? spec.split(",") : spec;
    for (const raw of items) {
      const item = raw.trim().toLowerCase();
      if (item === "" || item === "none") continue;
      if (!m.#add(item, addressesOnly)) errors.push(raw.trim());
    }
    return { matcher: m, errors };
  }

  /**
   * Adds one rule; false when it is not one. With `addressesOnly` (a list
   * matched against socket addresses, which are never names) host names are
   * not rules: accepted, they would never match.
   */
  #add(item: string, addressesOnly: boolean): boolean {
    this.#empty = false;
    if (item === "loopback") {
      this.#loopback = true;
      this.#blocks.addSubnet("127.0.0.0", 8, "ipv4");
      this.#blocks.addAddress("::1", "ipv6");
      this.#hosts.add("localhost");
      return true;
    }
    if (item === "private") {
      this.#blocks.addSubnet("10.0.0.0", 8, "ipv4");
      this.#blocks.addSubnet("172.16.0.0", 12, "ipv4");
      this.#blocks.addSubnet("192.168.0.0", 16, "ipv4");
      this.#blocks.addSubnet("fc00::", 7, "ipv6");
      return true;
    }
    if (item.includes("/")) {
      const block = parseCidr(item);
      if (block === undefined) return false;
      this.#blocks.addSubnet(block.net, block.prefix, block.family);
      return true;
    }
    const family = isIP(item);
    if (family !== 0) {
      this.#blocks.addAddress(item, family === 4 ? "ipv4" : "ipv6");
      return true;
    }
    if (addressesOnly) return false;
    if (item.startsWith("*.") && isHostName(item.slice(2))) {
      this.#suffixes.push(item.slice(1));
      return true;
    }
    if (isHostName(item)) {
      this.#hosts.add(item);
      return true;
    }
    return false;
  }

  /** Whether the list has no rules (matches nothing). */
  get empty(): boolean {
    return this.#empty;
  }

  /** Whether the list names `loopback`. */
  get loopback(): boolean {
    return this.#loopback;
  }

  /** Whether an IP address (as a socket reports it) matches. */
  matchesAddress(address: string | undefined): boolean {
    if (this.#empty || !address) return false;
    let ip = address;
    if (ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4) ip = ip.slice(7);
    const family = isIP(ip);
    if (family === 0) return false;
    return this.#blocks.check(ip, family === 4 ? "ipv4" : "ipv6");
  }

  /** Whether a host (name or IP literal, as in a URL) matches. */
  matchesHost(host: string): boolean {
    if (this.#empty) return false;
    const h = canonicalHost(host);
    if (isIP(h) !== 0) return this.matchesAddress(h);
    if (this.#hosts.has(h)) return true;
    for (const s of this.#suffixes) if (h.endsWith(s)) return true;
    return false;
  }
}

/**
 * One spelling per host, so that a rule and a request naming the same host
 * differently still meet: lower case, no brackets or trailing dot, IPv6 in
 * its shortest form, and an IPv4-mapped IPv6 address as the IPv4 address.
 */
export function canonicalHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (isIP(h) !== 6) return h;
  let v6: string;
  try {
    v6 = new URL(`http://[${h}]/`).hostname.slice(1, -1);
  } catch {
    return h; // a zone id, which URLs cannot carry
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped === null) return v6;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** An `address/prefix` CIDR block; undefined when it is not one. */
function parseCidr(
  item: string,
): { net: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const slash = item.indexOf("/");
  const net = item.slice(0, slash);
  const prefixText = item.slice(slash + 1);
  // Digits only: Number("") is 0, and "10.0.0.0/" must not read as
  // every address there is.
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  const family = isIP(net);
  if (
    family === 0 ||
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > (family === 4 ? 32 : 128)
  )
    return undefined;
  return { net, prefix, family: family === 4 ? "ipv4" : "ipv6" };
}

/** Splits `host`, `host:port` or `[v6]:port`; undefined when the port is not a valid number. */
function splitHostPort(
  s: string,
): { host: string; port: number | undefined } | undefined {
  let host = s;
  let portText: string | undefined;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close === -1) return undefined;
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = s.indexOf(":");
    if (colon !== -1 && colon === s.lastIndexOf(":")) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    }
  }
  if (host.length === 0) return undefined;
  if (portText === undefined) return { host, port: undefined };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port <= 0 || port > 65535) return undefined;
  return { host, port };
}

function isHostName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  for (const label of s.split(".")) {
    if (label.length === 0 || label.length > 63) return false;
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      const ok =
        (c >= 0x61 && c <= 0x7a) ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x2d ||
        c === 0x5f;
      if (!ok) return false;
    }
  }
  return true;
}

/** Who may send us baggage (and so a customer id). */
export interface InboundTrustOptions {
  /**
   * An edge service faces untrusted callers: it drops all inbound baggage
   * and takes the customer id from its configured source instead.
   * @default false
   */
  edge?: boolean;
  /**
   * Callers whose baggage is accepted by a non-edge service.
   * @default 'loopback,private'
   */
  trustedCallers?: string | readonly string[];
  /**
   * Whether the request of a caller that is not trusted starts a trace of
   * its own, linked to the caller's, rather than continue the caller's
   * (and follow its sampled flag).
   * @default false
   */
  linkUntrusted?: boolean;
  /**
   * Proxies whose X-Forwarded-For is believed, edge or not: the addresses
   * of the load balancers and proxies in front of the service.
   * @default 'loopback,private'
   */
  trustedProxies?: string | readonly string[];
}

/**
 * Decides, per caller address, whether inbound baggage is accepted, and
 * which client an X-Forwarded-For names.
 */
export class InboundTrust {
  readonly edge: boolean;
  /** See {@link InboundTrustOptions.linkUntrusted}. */
  readonly linkUntrusted: boolean;
  readonly #trusted: AddressMatcher;
  readonly #proxies: AddressMatcher;
  /** Trusted caller entries that were not read. */
  readonly errors: string[];
  /** Trusted proxy entries that were not read. */
  readonly proxyErrors: string[];

  constructor(options: InboundTrustOptions = {}) {
    this.edge = options.edge ?? false;
    this.linkUntrusted = options.linkUntrusted ?? false;
    const callers = AddressMatcher.parse(
      options.trustedCallers ?? "loopback,private",
      { addressesOnly: true },
    );
    this.#trusted = callers.matcher;
    this.errors = callers.errors;
    const proxies = AddressMatcher.parse(
      options.trustedProxies ?? "loopback,private",
      { addressesOnly: true },
    );
    this.#proxies = proxies.matcher;
    this.proxyErrors = proxies.errors;
  }

  /**
   * Whether baggage from a caller at `remoteAddress` is accepted. A caller
   * over a unix socket (`unixSocket`; it has no address) counts as a
   * loopback caller: only this host can reach the socket.
   */
  trusts(remoteAddress: string | undefined, unixSocket = false): boolean {
    return !this.edge && matches(this.#trusted, remoteAddress, unixSocket);
  }

  /** Whether the X-Forwarded-For of a caller at `remoteAddress` (or over a unix socket, as for {@link trusts}) is read. */
  trustsProxy(remoteAddress: string | undefined, unixSocket = false): boolean {
    return matches(this.#proxies, remoteAddress, unixSocket);
  }

  /**
   * The client an X-Forwarded-For names, sent by a trusted proxy at `peer`.
   * Each proxy appends the address it was called from, so the list is read
   * from the right: trusted proxies are passed over, and the first address
   * that is not one is the client (the leftmost, when all are). Anything
   * left of that was written by the client itself, whatever it claims. An
   * entry that is not an IP address (`unknown`, an obfuscated name, or an
   * attempt to write markup into the span) ends the walk: nothing further
   * left can be placed, and the client is the peer.
   */
  forwardedClient(
    header: string,
    peer: string | undefined,
  ): string | undefined {
    let end = header.length;
    for (;;) {
      const comma = end === 0 ? -1 : header.lastIndexOf(",", end - 1);
      const address = forwardedAddress(header.slice(comma + 1, end));
      if (address === undefined) return peer;
      if (!this.#proxies.matchesAddress(address) || comma === -1)
        return address;
      end = comma;
    }
  }
}

function matches(
  list: AddressMatcher,
  remoteAddress: string | undefined,
  unixSocket: boolean,
): boolean {
  return unixSocket ? list.loopback : list.matchesAddress(remoteAddress);
}

/**
 * The IP address of one X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`,
 * `2001:db8::1` or `[2001:db8::1]:5678`; undefined when it is none.
 */
function forwardedAddress(entry: string): string | undefined {
  let address = entry.trim();
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    if (close === -1 || !isPortSuffix(address.slice(close + 1)))
      return undefined;
    address = address.slice(1, close);
    return isIP(address) === 6 ? address : undefined;
  }
  const colon = address.indexOf(":");
  if (colon !== -1 && colon === address.lastIndexOf(":")) {
    if (!isPortSuffix(address.slice(colon))) return undefined;
    address = address.slice(0, colon);
    return isIP(address) === 4 ? address : undefined;
  }
  return isIP(address) === 0 ? undefined : address;
}

/** Nothing, or `:` and a port number. */
function isPortSuffix(s: string): boolean {
  return s === "" || (/^:\d{1,5}$/.test(s) && Number(s.slice(1)) <= 65535);
}

/** A declared third-party API. */
export interface ThirdPartyRule {
  /**
   * Host name, `*.domain`, IP address or CIDR block, optionally with
   * `:port`; a URL without a path (`https://api.x.com:8443`) stands for its
   * host and port.
   */
  pattern: string;
  /** Provider name recorded as `peer.service`, e.g. `stripe`. */
  name: string;
}

/** How an outbound call is treated. */
export interface EgressClass {
  /** Whether baggage (the customer id included) may be sent. */
  readonly baggage: boolean;
  /** Provider name when the host is a declared third party. */
  readonly thirdParty: string | undefined;
}

/** Where baggage may go, and which hosts are third parties. */
export interface EgressOptions {
  /**
   * Hosts that receive baggage, added to loopback and private addresses.
   * Start the list with `none` to drop those defaults.
   * @default none beyond loopback and private addresses
   */
  internalHosts?: string | readonly string[];
  /**
   * Third-party APIs: `{ 'api.stripe.com': 'stripe' }` or
   * `'api.stripe.com=stripe,...'` (see {@link ThirdPartyRule} for the
   * patterns). A pattern that names no host to match, such as one with a
   * path, is reported in `thirdPartyErrors`.
   */
  thirdParties?: string | Readonly<Record<string, string>>;
  /**
   * The header the customer id arrives in (`THREADLINE_CUSTOMER_HEADER`).
   * A copy the application sets on an outgoing request is private (see
   * `privateHeaders`), and goes to an internal host only when it names the
   * customer of the request's context: internal services read it from
   * trusted callers, so a copy forwarded from an anonymous caller would
   * plant that caller's customer id downstream.
   * @default 'x-customer-id'
   */
  customerHeader?: string;
  /**
   * Request headers that, like `baggage`, go to internal hosts only.
   * @default none besides baggage and the customer header
   */
  privateHeaders?: readonly string[];
}

const NOT_INTERNAL: EgressClass = Object.freeze({
  baggage: false,
  thirdParty: undefined,
});
const INTERNAL: EgressClass = Object.freeze({
  baggage: true,
  thirdParty: undefined,
});
const CACHE_LIMIT = 1024;

/** A third-party rule as matched. */
interface ThirdPartyTarget {
  /** The host part of its pattern, in one spelling, as listed back. */
  host: string;
  /** Its host: a name, `*.domain`, an IP address or a CIDR block. */
  matcher: AddressMatcher;
  port: number | undefined;
}

// A URL's scheme: `https://api.x.com` names its host.
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//;

/**
 * What a third party's pattern matches; undefined when it names no host
 * it could match: a path (calls are judged by host), a wildcard other than
 * a leading `*.`, credentials, a bad port. Accepted, those would never
 * match, and the third party would get baggage as if undeclared.
 */
function parseThirdPartyPattern(pattern: string): ThirdPartyTarget | undefined {
  let p = pattern.trim().toLowerCase();
  const scheme = URL_SCHEME.exec(p);
  if (scheme !== null) {
    p = p.slice(scheme[0].length);
    if (p.endsWith("/")) p = p.slice(0, -1);
  }
  const parsed = splitHostPort(p);
  if (parsed === undefined) return undefined;
  const host = canonicalHost(parsed.host);
  // After a scheme, a slash starts a path: `http://10.0.0.0/16` is not a
  // block. The internal-host keywords name no third party.
  if (
    (scheme !== null && host.includes("/")) ||
    host === "loopback" ||
    host === "private"
  )
    return undefined;
  const { matcher, errors } = AddressMatcher.parse([host]);
  return errors.length === 0 && !matcher.empty
    ? { host, matcher, port: parsed.port }
    : undefined;
}

/** Classifies outbound destinations; results are cached per host:port. */
export class EgressPolicy {
  readonly #internal: AddressMatcher;
  readonly #thirdParties: Array<ThirdPartyTarget & { name: string }> = [];
  readonly #cache = new Map<string, EgressClass>();
  /** Internal host entries that were not read. */
  readonly internalHostErrors: readonly string[];
  /** Third-party entries (`pattern=name`) that were not read. */
  readonly thirdPartyErrors: readonly string[];
  /** Headers removed from calls to hosts that get no baggage, lower case, `baggage` first. */
  readonly privateHeaders: readonly string[];
  /** The header the customer id arrives in, lower case; among the private headers. */
  readonly customerHeader: string;

  constructor(options: EgressOptions = {}) {
    const hosts = options.internalHosts ?? [];
    const list = typeof hosts === "string" ? hosts.split(",") : [...hosts];
    // The defaults stay unless the list opens with `none`.
    if (list[0]?.trim().toLowerCase() !== "none")
      list.push("loopback", "private");
    const { matcher, errors } = AddressMatcher.parse(list);
    this.#internal = matcher;
    this.internalHostErrors = errors;
    const thirdPartyErrors: string[] = [];
    for (const rule of parseThirdParties(
      options.thirdParties,
      thirdPartyErrors,
    ))
      this.#addThirdParty(rule, thirdPartyErrors);
    this.thirdPartyErrors = thirdPartyErrors;
    this.customerHeader = (
      options.customerHeader ?? "x-customer-id"
    ).toLowerCase();
    const names = new Set(["baggage", this.customerHeader]);
    for (const h of options.privateHeaders ?? []) names.add(h.toLowerCase());
    this.privateHeaders = Object.freeze([...names]);
  }

  /** Entries that were not read, internal hosts' then third parties'. */
  get errors(): string[] {
    return [...this.internalHostErrors, ...this.thirdPartyErrors];
  }

  /** The declared third parties, in declaration order. */
  get thirdParties(): ThirdPartyRule[] {
    return this.#thirdParties.map((t) => ({
      pattern: `${t.host}${t.port === undefined ? "" : `:${t.port}`}`,
      name: t.name,
    }));
  }

  #addThirdParty(rule: ThirdPartyRule, errors: string[]): void {
    const target = parseThirdPartyPattern(rule.pattern);
    const name = typeof rule.name === "string" ? rule.name.trim() : "";
    if (target === undefined || name.length === 0) {
      errors.push(`${rule.pattern}=${String(rule.name)}`);
      return;
    }
    this.#thirdParties.push({ ...target, name });
  }

  /**
   * Classifies a destination by host (name or IP literal) and port. With
   * the port unknown, a third party declared with a port is matched by its
   * host alone: better a call without baggage than baggage to a stranger.
   */
  classify(host: string, port: number | undefined): EgressClass {
    const key = `${host}:${port}`;
    let c = this.#cache.get(key);
    if (c !== undefined) return c;
    c = this.#compute(canonicalHost(host), port);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(key, c);
    return c;
  }

  #compute(h: string, port: number | undefined): EgressClass {
    for (const t of this.#thirdParties) {
      if (t.port !== undefined && port !== undefined && t.port !== port)
        continue;
      if (t.matcher.matchesHost(h))
        return Object.freeze({ baggage: false, thirdParty: t.name });
    }
    return this.#internal.matchesHost(h) ? INTERNAL : NOT_INTERNAL;
  }
}

function parseThirdParties(
  spec: EgressOptions["thirdParties"],
  errors: string[],
): ThirdPartyRule[] {
  if (spec === undefined) return [];
  if (typeof spec !== "string")
    return Object.entries(spec).map(([pattern, name]) => ({ pattern, name }));
  const rules: ThirdPartyRule[] = [];
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) {
      errors.push(item);
      continue;
    }
    rules.push({ pattern: item.slice(0, eq), name: item.slice(eq + 1) });
  }
  return rules;
}
