// A real OTLP/HTTP receiver for tests: accepts POST /v1/traces and
// /v1/logs in protobuf or JSON (gzip too), decodes with protobufjs and a
// schema written from the specification, and keeps what arrived. Tests can
// make it misbehave (status codes, hangs, resets) to exercise the exporter.
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";
import {
  ExportLogsServiceRequest,
  ExportMetricsServiceRequest,
  ExportTraceServiceRequest,
} from "./otlp-schema.ts";
import { waitFor } from "./wait.ts";

export type Attrs = Record<string, unknown>;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attrs;
  events: Array<{ name: string; timeUnixNano: bigint; attributes: Attrs }>;
  links: Array<{ traceId: string; spanId: string; attributes: Attrs }>;
  droppedLinksCount: number;
  status: { code: number; message: string };
  flags: number;
  resource: Attrs;
  scope: { name: string; version: string };
}

export interface ReceivedLog {
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: unknown;
  attributes: Attrs;
  traceId: string;
  spanId: string;
  flags: number;
  resource: Attrs;
  scope: { name: string; version: string };
}

export interface ReceivedPoint {
  attributes: Attrs;
  /** Sums and gauges. */
  value?: number;
  /** Histograms. */
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
  min?: number;
  max?: number;
  exemplars: Array<{ traceId: string; spanId: string; value: number }>;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
}

export interface ReceivedMetric {
  name: string;
  description: string;
  unit: string;
  kind: "sum" | "gauge" | "histogram";
  monotonic: boolean;
  /** Sums and histograms; gauges have none. */
  temporality: "delta" | "cumulative" | undefined;
  points: ReceivedPoint[];
  resource: Attrs;
  /** schemaUrl: the ScopeMetrics' own, "" for none. */
  scope: { name: string; version: string; schemaUrl: string };
}

export interface ReceivedRequest {
  /** Epoch ms when the request arrived. */
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  bytes: number;
  items: number;
}

/**
 * How the receiver answers; return undefined for a normal 200, `{ delayMs }`
 * for a normal answer that much later (a slow Collector).
 */
export type Responder = (
  req: IncomingMessage,
) =>
  | { status: number; headers?: Record<string, string>; body?: string | Buffer }
  | { delayMs: number }
  | "hang"
  | "reset"
  | undefined;

export interface OtlpReceiver {
  readonly url: string;
  readonly port: number;
  readonly spans: ReceivedSpan[];
  readonly logs: ReceivedLog[];
  /** Every metric batch as received, in order (cumulative: later batches repeat earlier series). */
  readonly metrics: ReceivedMetric[];
  readonly requests: ReceivedRequest[];
  /** Requests that could not be decoded, with the reason. */
  readonly errors: string[];
  /**
   * Connections open now. Zero once the services that sent here have ended:
   * whatever they wrote before their end has been read.
   */
  readonly openConnections: number;
  /** Every request, whatever the answer: when, where, and the status or 'hang'/'reset'. */
  readonly attempts: Array<{
    at: number;
    path: string;
    answer: number | string;
  }>;
  setResponder(responder: Responder | undefined): void;
  waitForSpans(
    predicate: (spans: ReceivedSpan[]) => boolean,
    what?: string,
    timeoutMs?: number,
  ): Promise<ReceivedSpan[]>;
  waitForLogs(
    predicate: (logs: ReceivedLog[]) => boolean,
    what?: string,
    timeoutMs?: number,
  ): Promise<ReceivedLog[]>;
  /** The first SERVER span of a request to `path` (its `url.path`), once one came. */
  waitForServerSpan(path: string): Promise<ReceivedSpan>;
  clear(): void;
  close(): Promise<void>;
}

function hex(b: unknown): string {
  if (typeof b === "string") return b; // JSON carries ids as hex
  if (b instanceof Uint8Array) return Buffer.from(b).toString("hex");
  return "";
}

/**
 * A trace id (16 bytes) or span id (8) as hex, "" for none. One of another
 * length, or in OTLP/JSON with others than hex digits, fails the whole
 * request, as it does in the Collector.
 */
function id(v: unknown, bytes: 16 | 8): string {
  const text = hex(v);
  if (text === "") return "";
  if (text.length !== 2 * bytes || !/^[0-9a-f]*$/i.test(text))
    throw new Error(
      `invalid ${bytes === 16 ? "TraceID" : "SpanID"}: ${JSON.stringify(v)}`,
    );
  return text;
}

/**
 * A string field, "" for none. Another JSON type fails the whole request,
 * as it does in the Collector.
 */
function text(v: unknown, field: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string")
    throw new Error(`${field} is not a string: ${JSON.stringify(v)}`);
  return v;
}

function big(v: unknown): bigint {
  if (v === undefined || v === null || v === "") return 0n;
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.round(v));
  return BigInt(String(v));
}

function anyValue(v: Record<string, unknown> | undefined | null): unknown {
  if (v === undefined || v === null) return undefined;
  if (
    "stringValue" in v &&
    v["stringValue"] !== undefined &&
    v["stringValue"] !== null
  )
    return v["stringValue"];
  if (
    "boolValue" in v &&
    v["boolValue"] !== undefined &&
    v["boolValue"] !== null
  )
    return v["boolValue"];
  if ("intValue" in v && v["intValue"] !== undefined && v["intValue"] !== null)
    return Number(String(v["intValue"]));
  if (
    "doubleValue" in v &&
    v["doubleValue"] !== undefined &&
    v["doubleValue"] !== null
  )
    return Number(v["doubleValue"]);
  if ("arrayValue" in v && v["arrayValue"])
    return ((v["arrayValue"] as { values?: unknown[] }).values ?? []).map((x) =>
      anyValue(x as Record<string, unknown>),
    );
  if ("kvlistValue" in v && v["kvlistValue"])
    return attrs((v["kvlistValue"] as { values?: unknown[] }).values);
  if ("bytesValue" in v && v["bytesValue"]) return hex(v["bytesValue"]);
  return undefined;
}

function attrs(list: unknown): Attrs {
  const out: Attrs = {};
  for (const kv of (list as
    Array<{ key: string; value?: Record<string, unknown> }> | undefined) ?? [])
    // Defined, not assigned: a key named __proto__ is a key like any other.
    Object.defineProperty(out, kv.key, {
      value: anyValue(kv.value),
      writable: true,
      enumerable: true,
      configurable: true,
    });
  return out;
}

type Obj = Record<string, unknown>;
const arr = (v: unknown) => (v as Obj[] | undefined) ?? [];

function spansOf(body: Obj): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of arr(body["resourceSpans"])) {
    const resource = attrs((rs["resource"] as Obj | undefined)?.["attributes"]);
    for (const ss of arr(rs["scopeSpans"])) {
      const scope = (ss["scope"] as Obj | undefined) ?? {};
      for (const s of arr(ss["spans"])) {
        const status = (s["status"] as Obj | undefined) ?? {};
        out.push({
          traceId: id(s["traceId"], 16),
          spanId: id(s["spanId"], 8),
          parentSpanId: id(s["parentSpanId"], 8),
          traceState: String(s["traceState"] ?? ""),
          name: text(s["name"], "Span.name"),
          kind: Number(s["kind"] ?? 0),
          startTimeUnixNano: big(s["startTimeUnixNano"]),
          endTimeUnixNano: big(s["endTimeUnixNano"]),
          attributes: attrs(s["attributes"]),
          events: arr(s["events"]).map((e) => ({
            name: String(e["name"] ?? ""),
            timeUnixNano: big(e["timeUnixNano"]),
            attributes: attrs(e["attributes"]),
          })),
          links: arr(s["links"]).map((l) => ({
            traceId: id(l["traceId"], 16),
            spanId: id(l["spanId"], 8),
            attributes: attrs(l["attributes"]),
          })),
          droppedLinksCount: Number(s["droppedLinksCount"] ?? 0),
          status: {
            code: Number(status["code"] ?? 0),
            message: String(status["message"] ?? ""),
          },
          flags: Number(s["flags"] ?? 0),
          resource,
          scope: {
            name: text(scope["name"], "InstrumentationScope.name"),
            version: text(scope["version"], "InstrumentationScope.version"),
          },
        });
      }
    }
  }
  return out;
}

function logsOf(body: Obj): ReceivedLog[] {
  const out: ReceivedLog[] = [];
  for (const rl of arr(body["resourceLogs"])) {
    const resource = attrs((rl["resource"] as Obj | undefined)?.["attributes"]);
    for (const sl of arr(rl["scopeLogs"])) {
      const scope = (sl["scope"] as Obj | undefined) ?? {};
      for (const r of arr(sl["logRecords"])) {
        out.push({
          timeUnixNano: big(r["timeUnixNano"]),
          observedTimeUnixNano: big(r["observedTimeUnixNano"]),
          severityNumber: Number(r["severityNumber"] ?? 0),
          severityText: String(r["severityText"] ?? ""),
          body: anyValue(r["body"] as Obj | undefined),
          attributes: attrs(r["attributes"]),
          traceId: id(r["traceId"], 16),
          spanId: id(r["spanId"], 8),
          flags: Number(r["flags"] ?? 0),
          resource,
          scope: {
            name: text(scope["name"], "InstrumentationScope.name"),
            version: text(scope["version"], "InstrumentationScope.version"),
          },
        });
      }
    }
  }
  return out;
}

function temporalityOf(v: unknown): ReceivedMetric["temporality"] {
  // A number; OTLP/JSON from other senders may spell out the name.
  if (v === 1 || v === "AGGREGATION_TEMPORALITY_DELTA") return "delta";
  if (v === 2 || v === "AGGREGATION_TEMPORALITY_CUMULATIVE")
    return "cumulative";
  return undefined;
}

/**
 * A double field, present or not: a number, or a string as proto3's JSON
 * mapping writes one ("NaN", "Infinity", "-Infinity" or a number's
 * digits). Anything else, null included, fails the whole request, as it
 * does in the Collector.
 */
function double(v: unknown, field: string): number | undefined {
  if (v === undefined || typeof v === "number") return v;
  if (typeof v === "string" && (v === "NaN" || !Number.isNaN(Number(v))))
    return Number(v);
  throw new Error(`${field} is not a double: ${JSON.stringify(v)}`);
}

/** A number point's value: asDouble, or asInt (an int64, a string in JSON). */
const pointValue = (p: Obj, field: string) =>
  double(p["asDouble"], `${field}.asDouble`) ?? Number(p["asInt"] ?? 0);

function metricsOf(body: Obj): ReceivedMetric[] {
  const out: ReceivedMetric[] = [];
  const exemplars = (list: unknown) =>
    arr(list).map((e) => ({
      traceId: id(e["traceId"], 16),
      spanId: id(e["spanId"], 8),
      value: pointValue(e, "Exemplar"),
    }));
  for (const rm of arr(body["resourceMetrics"])) {
    const resource = attrs((rm["resource"] as Obj | undefined)?.["attributes"]);
    for (const sm of arr(rm["scopeMetrics"])) {
      const scope = (sm["scope"] as Obj | undefined) ?? {};
      for (const m of arr(sm["metrics"])) {
        const kind = m["sum"] ? "sum" : m["gauge"] ? "gauge" : "histogram";
        const data = (m[kind] as Obj | undefined) ?? {};
        const points = arr(data["dataPoints"]).map((p): ReceivedPoint => {
          const base = {
            attributes: attrs(p["attributes"]),
            exemplars: exemplars(p["exemplars"]),
            startTimeUnixNano: big(p["startTimeUnixNano"]),
            timeUnixNano: big(p["timeUnixNano"]),
          };
          if (kind !== "histogram")
            return { ...base, value: pointValue(p, "NumberDataPoint") };
          return {
            ...base,
            count: Number(p["count"] ?? 0),
            sum: double(p["sum"], "HistogramDataPoint.sum") ?? 0,
            bucketCounts: arr(p["bucketCounts"]).map(Number),
            explicitBounds: arr(p["explicitBounds"]).map(
              (b) => double(b, "HistogramDataPoint.explicitBounds") ?? NaN,
            ),
            min: double(p["min"], "HistogramDataPoint.min") ?? NaN,
            max: double(p["max"], "HistogramDataPoint.max") ?? NaN,
          };
        });
        out.push({
          name: text(m["name"], "Metric.name"),
          description: text(m["description"], "Metric.description"),
          unit: text(m["unit"], "Metric.unit"),
          kind,
          monotonic: data["isMonotonic"] === true,
          temporality: temporalityOf(data["aggregationTemporality"]),
          points,
          resource,
          scope: {
            name: text(scope["name"], "InstrumentationScope.name"),
            version: text(scope["version"], "InstrumentationScope.version"),
            schemaUrl: String(sm["schemaUrl"] ?? ""),
          },
        });
      }
    }
  }
  return out;
}

/** Decodes an ExportMetricsServiceRequest (protobuf bytes or OTLP/JSON text). */
export function decodeMetricsRequest(
  raw: Uint8Array | string,
): ReceivedMetric[] {
  const body =
    typeof raw === "string"
      ? (JSON.parse(raw) as Obj)
      : (ExportMetricsServiceRequest.toObject(
          ExportMetricsServiceRequest.decode(Buffer.from(raw)),
          { longs: String, enums: Number, defaults: false },
        ) as Obj);
  return metricsOf(body);
}

/** Decodes an ExportTraceServiceRequest (protobuf bytes or OTLP/JSON text). */
export function decodeTraceRequest(raw: Uint8Array | string): ReceivedSpan[] {
  const type =
    typeof raw === "string" ? "application/json" : "application/x-protobuf";
  return decode("/v1/traces", type, Buffer.from(raw)).spans ?? [];
}

/**
 * The attribute keys of each span of a protobuf ExportTraceServiceRequest,
 * in wire order and with repeats: decoded spans keep one value per key, so
 * a KeyValue written twice shows only here.
 */
export function spanAttributeKeys(raw: Uint8Array): string[][] {
  interface Wire {
    resourceSpans?: Array<{
      scopeSpans?: Array<{
        spans?: Array<{ attributes?: Array<{ key: string }> }>;
      }>;
    }>;
  }
  const body = ExportTraceServiceRequest.toObject(
    ExportTraceServiceRequest.decode(raw),
  ) as Wire;
  return (body.resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((sp) => (sp.attributes ?? []).map((a) => a.key)),
    ),
  );
}

/** Decodes an ExportLogsServiceRequest (protobuf bytes or OTLP/JSON text). */
export function decodeLogsRequest(raw: Uint8Array | string): ReceivedLog[] {
  const type =
    typeof raw === "string" ? "application/json" : "application/x-protobuf";
  return decode("/v1/logs", type, Buffer.from(raw)).logs ?? [];
}

function decode(
  path: string,
  contentType: string,
  raw: Buffer,
): { spans?: ReceivedSpan[]; logs?: ReceivedLog[] } {
  const isJson = contentType.includes("json");
  const type =
    path === "/v1/traces"
      ? ExportTraceServiceRequest
      : ExportLogsServiceRequest;
  const body = isJson
    ? (JSON.parse(raw.toString("utf8")) as Obj)
    : (type.toObject(type.decode(raw), {
        longs: String,
        enums: Number,
        defaults: false,
      }) as Obj);
  return path === "/v1/traces"
    ? { spans: spansOf(body) }
    : { logs: logsOf(body) };
}

/** PEM text for a receiver served over https. */
export interface ReceiverTls {
  key: string;
  cert: string;
  /** Client certificates accepted; when given, one is required. */
  clientCa?: string;
}

/** Starts a receiver on loopback, on `port` or an ephemeral one; https with `tls`. */
export async function startOtlpReceiver(
  options: { port?: number; tls?: ReceiverTls } = {},
): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const logs: ReceivedLog[] = [];
  const metrics: ReceivedMetric[] = [];
  const requests: ReceivedRequest[] = [];
  const errors: string[] = [];
  const attempts: Array<{ at: number; path: string; answer: number | string }> =
    [];
  const sockets = new Set<Socket>();
  let responder: Responder | undefined;

  const tls = options.tls;
  const serve = (
    handler: (req: IncomingMessage, res: ServerResponse) => void,
  ) =>
    tls === undefined
      ? createServer(handler)
      : createHttpsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.clientCa === undefined
              ? {}
              : {
                  ca: tls.clientCa,
                  requestCert: true,
                  rejectUnauthorized: true,
                }),
          },
          handler,
        );
  const server = serve((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const answer = responder?.(req);
      attempts.push({
        at: Date.now(),
        path: (req.url ?? "").split("?")[0]!,
        answer:
          typeof answer === "string"
            ? answer
            : answer !== undefined && "status" in answer
              ? answer.status
              : 200,
      });
      if (answer === "hang") return;
      if (answer === "reset") {
        req.socket.destroy();
        return;
      }
      if (answer !== undefined && "delayMs" in answer) {
        setTimeout(accept, answer.delayMs);
        return;
      }
      if (answer !== undefined) {
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? "");
        return;
      }
      accept();
    });
    const accept = () => {
      const path = (req.url ?? "").split("?")[0]!;
      if (
        req.method !== "POST" ||
        (path !== "/v1/traces" && path !== "/v1/logs" && path !== "/v1/metrics")
      ) {
        res.writeHead(404).end();
        return;
      }
      let raw = Buffer.concat(chunks);
      try {
        if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
        let items = 0;
        if (path !== "/v1/metrics") {
          const decoded = decode(
            path,
            String(req.headers["content-type"] ?? ""),
            raw,
          );
          if (decoded.spans) spans.push(...decoded.spans);
          if (decoded.logs) logs.push(...decoded.logs);
          items = decoded.spans?.length ?? decoded.logs?.length ?? 0;
        } else {
          const json = String(req.headers["content-type"] ?? "").includes(
            "json",
          );
          const decoded = decodeMetricsRequest(
            json ? raw.toString("utf8") : raw,
          );
          metrics.push(...decoded);
          items = decoded.reduce((n, m) => n + m.points.length, 0);
        }
        requests.push({
          at: Date.now(),
          path,
          headers: req.headers,
          bytes: raw.length,
          items,
        });
        const json = String(req.headers["content-type"] ?? "").includes("json");
        res.writeHead(200, {
          "content-type": json ? "application/json" : "application/x-protobuf",
        });
        res.end(json ? "{}" : undefined);
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message}`);
        res.writeHead(400).end();
      }
    };
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, "127.0.0.1", resolve),
  );
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`,
    port,
    spans,
    logs,
    metrics,
    requests,
    errors,
    attempts,
    get openConnections() {
      return sockets.size;
    },
    setResponder: (r) => {
      responder = r;
    },
    waitForSpans: (predicate, what = "spans", timeoutMs) =>
      waitFor(() => predicate(spans) && spans, {
        what,
        ...(timeoutMs ? { timeoutMs } : {}),
      }),
    waitForLogs: (predicate, what = "log records", timeoutMs) =>
      waitFor(() => predicate(logs) && logs, {
        what,
        ...(timeoutMs ? { timeoutMs } : {}),
      }),
    waitForServerSpan: (path) =>
      waitFor(
        () =>
          spans.find((s) => s.kind === 2 && s.attributes["url.path"] === path),
        { what: `the server span of ${path}` },
      ),
    clear: () => {
      spans.length = 0;
      logs.length = 0;
      metrics.length = 0;
      requests.length = 0;
      errors.length = 0;
      attempts.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
