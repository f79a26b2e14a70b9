// Jaeger v2, through its query API v3: over HTTP (`jaeger=http://host:16686`)
// or gRPC (`jaeger=grpc://host:16685`). Both return OTLP, decoded with
// @threadline/otlp. The customer id (or, without one, the service or an
// attribute) goes to Jaeger as a filter; Jaeger releases before 2.19 ignore
// an attribute filter on HTTP (gRPC has always honoured it), so every
// answer is filtered here as well, which keeps results right on any
// version. Jaeger stores no logs. Credentials: user:password in the URL
// (Basic), or a bearer token in THREADLINE_JAEGER_TOKEN, as a proxy in
// front of Jaeger asks for.
import { connect, type ClientHttp2Session } from "node:http2";
import { percentDecoded, printableUrl, takeUserInfo } from "@threadline/core";
import {
  ProtoWriter,
  decodeTracesJson,
  decodeTracesProto,
  type DecodedResourceSpans,
} from "@threadline/otlp";
import type {
  SearchQuery,
  SpanRecord,
  TraceBackend,
  TraceDetail,
  TraceSummary,
} from "../model.ts";
import {
  REQUEST_TIMEOUT_MS,
  DEFAULT_LIMIT,
  answer,
  byTrace,
  failure,
  json,
  reach,
  spansFromOtlp,
  window,
} from "./remote.ts";

/** Traces asked of Jaeger per request: room for the filters applied here. */
const SEARCH_DEPTH = 1000;
/** Requests one search makes of a service before it asks to be narrowed. */
const MAX_PAGES = 20;
/**
 * How far back a search without --since or --from looks. Jaeger on
 * Elasticsearch names every daily index of the window in one request line,
 * which Elasticsearch refuses past 4 KB: about a hundred days.
 */
const DEFAULT_LOOKBACK_DAYS = 30;

/** A FindTraces query of Jaeger's API v3. */
export interface FindParams {
  service?: string | undefined;
  attributes: Record<string, string>;
  fromUs: number;
  toUs: number;
  /** Per span, as Jaeger applies it: traces with a span this long. */
  minDurationUs?: number | undefined;
}

/** Jaeger's query API v3, answering in decoded OTLP. */
export interface JaegerApiV3 {
  find(p: FindParams): Promise<DecodedResourceSpans[]>;
  get(traceId: string): Promise<DecodedResourceSpans[] | undefined>;
  services(): Promise<string[]>;
  close(): void;
}

/**
 * Jaeger's storages on Elasticsearch, OpenSearch, Cassandra and Badger
 * refuse an attribute filter without a service name in these words
 * (Badger in lower case): HTTP status 500, gRPC status 2.
 */
const SERVICE_REQUIRED = /service name must be set/i;

/** Jaeger's answer that the search needs a service name. */
class ServiceRequired extends Error {}

/**
 * Jaeger's memory storage refuses a search depth not below its max_traces
 * in these words: HTTP status 500, gRPC status 2.
 */
const DEPTH_REFUSED = /search depth must be .*less than max traces/i;

/**
 * `value` as a regular expression of Lucene's syntax (which Elasticsearch
 * and OpenSearch use) that matches it alone: every reserved character
 * escaped.
 */
function escapeRegexp(value: string): string {
  return value.replace(/[.?+*|{}[\]()"\\#@&<>~]/g, "\\$&");
}

function rfc3339(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString();
}

class HttpTransport implements JaegerApiV3 {
  readonly #base: string;
  readonly #name: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(
    base: string,
    name: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ) {
    this.#base = base;
    this.#name = name;
    this.#headers = headers;
    this.#timeoutMs = timeoutMs;
  }

  async #json(path: string): Promise<unknown> {
    const res = await reach(this.#name, `${this.#base}${path}`, {
      headers: this.#headers,
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    // Jaeger answers a search or a trace that finds nothing with 404 and an
    // error of its own shape; any other 404 means the URL is not Jaeger's
    // query API, which is not the same as no traces.
    if (res.status === 404) {
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (
        (body as { error?: { httpCode?: unknown } } | undefined)?.error
          ?.httpCode === 404
      )
        return undefined;
      throw new Error(
        `${this.#name} answered 404 at ${res.url}, not as Jaeger's query API does (${text.slice(0, 80).replace(/[\s\x00-\x1f\x7f-\x9f]+/g, " ")}); is that the right URL?`,
      );
    }
    if (!res.ok) {
      const err = await failure(res, this.#name);
      throw res.status === 500 && SERVICE_REQUIRED.test(err.message)
        ? new ServiceRequired(err.message)
        : err;
    }
    return json(res, this.#name);
  }

  async find(p: FindParams): Promise<DecodedResourceSpans[]> {
    const params = new URLSearchParams({
      "query.start_time_min": rfc3339(p.fromUs),
      "query.start_time_max": rfc3339(p.toUs),
      "query.num_traces": String(SEARCH_DEPTH),
      "query.search_depth": String(SEARCH_DEPTH),
    });
    if (p.service !== undefined) params.set("query.service_name", p.service);
    if (Object.keys(p.attributes).length > 0)
      params.set("query.attributes", JSON.stringify(p.attributes));
    if (p.minDurationUs !== undefined)
      params.set("query.duration_min", `${Math.round(p.minDurationUs)}us`);
    const body = (await this.#json(`/api/v3/traces?${params.toString()}`)) as
      { result?: unknown } | undefined;
    return body?.result === undefined ? [] : decodeTracesJson(body.result);
  }

  async get(traceId: string): Promise<DecodedResourceSpans[] | undefined> {
    const body = (await this.#json(`/api/v3/traces/${traceId}`)) as
      { result?: unknown } | undefined;
    return body?.result === undefined
      ? undefined
      : decodeTracesJson(body.result);
  }

  async services(): Promise<string[]> {
    const body = (await this.#json("/api/v3/services")) as
      { services?: string[] } | undefined;
    return body?.services ?? [];
  }

  close(): void {}
}

/** gRPC status codes that mean "nothing there" rather than a failure. */
const GRPC_NOT_FOUND = 5;

class GrpcTransport implements JaegerApiV3 {
  readonly #authority: string;
  readonly #name: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  #session: ClientHttp2Session | undefined;

  constructor(
    authority: string,
    name: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ) {
    this.#authority = authority;
    this.#name = name;
    this.#headers = headers;
    this.#timeoutMs = timeoutMs;
  }

  #connect(): ClientHttp2Session {
    if (this.#session === undefined || this.#session.destroyed) {
      this.#session = connect(this.#authority);
      // A refused connection fails the session first and its streams only
      // with a cancel: keep the session's reason for the message.
      this.#sessionError = undefined;
      this.#session.on("error", (err: NodeJS.ErrnoException) => {
        this.#sessionError = err.code ?? err.message;
      });
    }
    return this.#session;
  }

  #inFlight = 0;
  #sessionError: string | undefined;

  // The session holds the process open only while a call is in flight, so a
  // caller that forgets close() still exits.
  #settled(): void {
    if (--this.#inFlight === 0) this.#session?.unref();
  }

  /** A unary-request, server-streaming call; resolves to the response messages. */
  #call(method: string, request: Uint8Array): Promise<Buffer[]> {
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    const session = this.#connect();
    if (this.#inFlight++ === 0) session.ref();
    return new Promise<Buffer[]>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": `/jaeger.api_v3.QueryService/${method}`,
        "content-type": "application/grpc",
        te: "trailers",
        ...this.#headers,
      });
      stream.setTimeout(this.#timeoutMs, () => {
        timedOut = true;
        stream.close(8 /* NGHTTP2_CANCEL */);
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = "";
      let timedOut = false;
      const note = (h: Record<string, unknown>) => {
        if (h["grpc-status"] !== undefined) {
          status = String(h["grpc-status"]);
          message = percentDecoded(String(h["grpc-message"] ?? ""));
        }
      };
      stream.on("response", note);
      stream.on("trailers", note);
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", (err: NodeJS.ErrnoException) =>
        setImmediate(() =>
          reject(
            new Error(
              `${this.#name} is not reachable (${this.#sessionError ?? err.code ?? err.message})`,
            ),
          ),
        ),
      );
      stream.on("close", () => {
        if (status === undefined)
          return setImmediate(() =>
            reject(
              new Error(
                timedOut
                  ? `${this.#name} did not answer within ${this.#timeoutMs / 1000} s`
                  : this.#sessionError === undefined
                    ? `${this.#name} closed the call without a status`
                    : `${this.#name} is not reachable (${this.#sessionError})`,
              ),
            ),
          );
        if (status === String(GRPC_NOT_FOUND)) return resolve([]);
        if (status !== "0") {
          const text = `${this.#name} answered gRPC status ${status}: ${message}`;
          return reject(
            SERVICE_REQUIRED.test(message)
              ? new ServiceRequired(text)
              : new Error(text),
          );
        }
        const body = Buffer.concat(chunks);
        const messages: Buffer[] = [];
        for (let off = 0; off + 5 <= body.length;) {
          const len = body.readUInt32BE(off + 1);
          messages.push(body.subarray(off + 5, off + 5 + len));
          off += 5 + len;
        }
        resolve(messages);
      });
      stream.end(frame);
    }).finally(() => this.#settled());
  }

  async find(p: FindParams): Promise<DecodedResourceSpans[]> {
    const w = new ProtoWriter(1024);
    const query = w.begin(1); // FindTracesRequest.query
    if (p.service !== undefined) w.stringField(1, p.service);
    for (const [k, v] of Object.entries(p.attributes)) {
      const entry = w.begin(3); // map<string, string> attributes
      w.stringField(1, k);
      w.stringField(2, v);
      w.end(entry);
    }
    timestamp(w, 4, p.fromUs);
    timestamp(w, 5, p.toUs);
    if (p.minDurationUs !== undefined) {
      const d = w.begin(6);
      w.tag(1, 0);
      w.uvarint(Math.floor(p.minDurationUs / 1e6));
      w.tag(2, 0);
      w.uvarint(Math.round((p.minDurationUs % 1e6) * 1000));
      w.end(d);
    }
    w.tag(8, 0); // search_depth
    w.uvarint(SEARCH_DEPTH);
    w.end(query);
    const messages = await this.#call("FindTraces", w.finish());
    return messages.flatMap((m) => decodeTracesProto(m));
  }

  async get(traceId: string): Promise<DecodedResourceSpans[] | undefined> {
    const w = new ProtoWriter(64);
    w.stringField(1, traceId);
    const messages = await this.#call("GetTrace", w.finish());
    const out = messages.flatMap((m) => decodeTracesProto(m));
    return out.length === 0 ? undefined : out;
  }

  async services(): Promise<string[]> {
    const messages = await this.#call("GetServices", new Uint8Array(0));
    const out: string[] = [];
    for (const m of messages) {
      // GetServicesResponse: repeated string services = 1.
      for (let off = 0; off < m.length;) {
        const key = m[off++]!;
        let len = 0;
        for (let shift = 0; ; shift += 7) {
          const b = m[off++]!;
          len |= (b & 0x7f) << shift;
          if (b < 0x80) break;
        }
        if (key === 0x0a) out.push(m.toString("utf8", off, off + len));
        off += len;
      }
    }
    return out;
  }

  close(): void {
    this.#session?.close();
  }
}

function timestamp(w: ProtoWriter, field: number, us: number): void {
  const t = w.begin(field);
  w.tag(1, 0);
  w.uvarint(Math.floor(us / 1e6));
  w.tag(2, 0);
  w.uvarint(Math.round(us % 1e6) * 1000);
  w.end(t);
}

export interface JaegerOptions {
  /** Sent as a bearer token; wins over user:password in the URL. */
  token?: string | undefined;
  /** How long a request may take, in milliseconds: 30 s unless told. */
  timeoutMs?: number | undefined;
}

/** `url` parsed, with what requests to it send and what messages call it. */
function target(
  url: string,
  { token }: JaegerOptions,
): { u: URL; name: string; headers: Record<string, string> } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${JSON.stringify(printableUrl(url))} is not a URL`);
  }
  const basic = takeUserInfo(u);
  const headers: Record<string, string> = {};
  if (token) headers["authorization"] = `Bearer ${token}`;
  else if (basic !== undefined) headers["authorization"] = basic;
  return { u, name: `jaeger ${u.href.replace(/\/+$/, "")}`, headers };
}

/**
 * A client of Jaeger's query API v3 at `url`: http(s)://host:16686 (HTTP)
 * or grpc://host:16685 (gRPC, no dependencies: node:http2 and our protobuf
 * writer and OTLP decoder).
 */
export function jaegerApiV3(
  url: string,
  options: JaegerOptions = {},
): JaegerApiV3 {
  const { u, name, headers } = target(url, options);
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  if (u.protocol === "grpc:")
    return new GrpcTransport(`http://${u.host}`, name, headers, timeoutMs);
  if (u.protocol === "http:" || u.protocol === "https:")
    return new HttpTransport(
      u.href.replace(/\/+$/, ""),
      name,
      headers,
      timeoutMs,
    );
  throw new Error(
    `jaeger=${printableUrl(url)}: use http://host:16686 (HTTP API v3) or grpc://host:16685`,
  );
}

export class JaegerBackend implements TraceBackend {
  readonly name: string;
  readonly notes: string[] = [];
  readonly #t: JaegerApiV3;

  /**
   * `url`: http(s)://host:16686 (HTTP API v3) or grpc://host:16685 (gRPC
   * API v3), with user:password when Jaeger is behind Basic auth.
   */
  constructor(url: string, options: JaegerOptions = {}) {
    const o = {
      ...options,
      token: options.token ?? process.env["THREADLINE_JAEGER_TOKEN"],
    };
    this.name = target(url, o).name;
    this.#t = jaegerApiV3(url, o);
  }

  async search(q: SearchQuery): Promise<TraceSummary[]> {
    this.notes.length = 0;
    const { toUs } = window(q);
    let fromUs = q.fromUs;
    if (fromUs === undefined) {
      fromUs = toUs - DEFAULT_LOOKBACK_DAYS * 24 * 3600e6;
      this.notes.push(
        `${this.name}: searched the last ${DEFAULT_LOOKBACK_DAYS} days (Jaeger on Elasticsearch refuses much longer windows); --since or --from sets another`,
      );
    }
    // Jaeger looks for one span that meets every condition of a query, and
    // a trace meets the search when each filter is met by some span of it
    // (the customer is not on every span, nor in every service): Jaeger is
    // given one, the customer, else the service, else an attribute, and
    // the rest are applied here to the whole traces it returns.
    let filter: [string, string] | undefined;
    const [attribute] = q.attributes ?? [];
    if (q.customer !== undefined) filter = ["customer.id", q.customer];
    else if (q.service === undefined) filter = attribute;
    // --min-duration is the trace's length, which matches() checks; Jaeger
    // would ask it of one span.
    const bounds = { fromUs, toUs };
    const unfiltered = () =>
      this.#find(q, { ...bounds, service: q.service, attributes: {} });
    if (filter === undefined) return answer(q, byTrace(await unfiltered()));
    // Jaeger on Elasticsearch or OpenSearch matches an attribute's value
    // as a regular expression, its other storages compare it as it is: a
    // value with characters a regular expression reserves is sent escaped,
    // which finds it exactly on the former and nothing on the latter, so
    // when that finds no trace at all Jaeger is asked without it.
    const [key, value] = filter;
    const escaped = escapeRegexp(value);
    let spans = await this.#find(q, {
      ...bounds,
      attributes: { [key]: escaped },
    });
    if (spans.length === 0 && escaped !== value) spans = await unfiltered();
    return answer(q, byTrace(spans));
  }

  /** The spans `p` finds, of each service in turn where Jaeger needs one. */
  async #find(q: SearchQuery, p: FindParams): Promise<SpanRecord[]> {
    try {
      return await this.#findAll(q, p);
    } catch (err) {
      if (err instanceof Error && DEPTH_REFUSED.test(err.message))
        throw new Error(
          `${this.name} refused a search for ${SEARCH_DEPTH} traces, as its memory storage holds no more than that (Jaeger: "search depth must be greater than 0 and less than max traces"). threadline search asks for ${SEARCH_DEPTH} traces at a time: set max_traces (THREADLINE_JAEGER_MAX_TRACES in collector-config/jaeger-memory.yaml) over ${SEARCH_DEPTH}`,
        );
      // Storages on Elasticsearch and others need a service with an
      // attribute filter: ask each one. Any other failure is the answer.
      if (!(err instanceof ServiceRequired) || p.service !== undefined)
        throw err;
      const services = await this.#t.services();
      return (
        await Promise.all(
          services.map((service) => this.#findAll(q, { ...p, service })),
        )
      ).flat();
    }
  }

  /**
   * The spans of the traces `p` finds, answer after answer: Jaeger returns
   * at most SEARCH_DEPTH traces, the newest, so the window's end moves back
   * to the oldest of them until the window is covered, `q`'s limit is met,
   * or MAX_PAGES answers were read (said in `notes`).
   */
  async #findAll(q: SearchQuery, p: FindParams): Promise<SpanRecord[]> {
    const spans: SpanRecord[] = [];
    let toUs = p.toUs;
    for (let page = 1; ; page++) {
      const got = byTrace(spansFromOtlp(await this.#t.find({ ...p, toUs })));
      for (const t of got.values()) spans.push(...t);
      if (got.size < SEARCH_DEPTH) return spans;
      if (answer(q, byTrace(spans)).length >= (q.limit ?? DEFAULT_LIMIT))
        return spans;
      // Jaeger takes the traces whose newest span is newest: those left out
      // have none after the oldest of these. A millisecond later, as the
      // HTTP API takes whole milliseconds; a trace read twice counts once.
      let oldest = Infinity;
      for (const t of got.values())
        oldest = Math.min(oldest, Math.max(...t.map((s) => s.startUs)));
      const next = oldest + 1000;
      if (page === MAX_PAGES || next >= toUs) {
        this.notes.push(
          `${this.name}: searched only the newest ${byTrace(spans).size} traces${p.service === undefined ? "" : ` of ${p.service}`}, back to ${new Date(oldest / 1000).toISOString()}; search a shorter time (--since, --from, --to) for older ones`,
        );
        return spans;
      }
      toUs = next;
    }
  }

  async getTrace(traceId: string): Promise<TraceDetail | undefined> {
    const resources = await this.#t.get(traceId);
    if (resources === undefined) return undefined;
    const spans: SpanRecord[] =
      byTrace(spansFromOtlp(resources)).get(traceId) ?? [];
    if (spans.length === 0) return undefined;
    return { traceId, spans, logs: [] };
  }

  async close(): Promise<void> {
    this.#t.close();
  }
}
