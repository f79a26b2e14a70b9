// Decoding of OTLP metrics requests (protobuf and JSON) for receivers: the
// local viewer keeps sums, gauges and explicit-bucket histograms.
// Timestamps become epoch milliseconds.
import {
  decodeExportJson,
  decodeExportProto,
  double,
  jsonKeyValues,
  keyValue,
  list,
  named,
  num,
  obj,
  str,
  type DecodedAttributes,
  type DecodedScope,
} from "./decode.ts";
import type { ProtoReader } from "./proto-reader.ts";

export interface DecodedMetricPoint {
  attributes: DecodedAttributes;
  timeMs: number;
  /** Sums and gauges. */
  value?: number;
  /** Histograms. */
  count?: number;
  sum?: number;
  bounds?: number[];
  counts?: number[];
}

export interface DecodedMetric {
  name: string;
  unit: string;
  kind: "sum" | "gauge" | "histogram";
  monotonic: boolean;
  /** Sums and histograms: each point counts since the previous export, not since its start. */
  delta: boolean;
  points: DecodedMetricPoint[];
}

const DELTA = 1;

export interface DecodedResourceMetrics {
  resource: DecodedAttributes;
  scopes: Array<{ scope: DecodedScope; metrics: DecodedMetric[] }>;
}

const nsToMs = (ns: number) => ns / 1e6;

function packed(
  r: ProtoReader,
  wire: number,
  read: (r: ProtoReader) => number,
  into: number[],
): void {
  if (wire === 2) {
    const m = r.message();
    while (!m.done) into.push(read(m));
  } else into.push(read(r));
}

function numberPoint(r: ProtoReader): DecodedMetricPoint {
  const p: DecodedMetricPoint = { attributes: {}, timeMs: 0, value: 0 };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 7 && w === 2) keyValue(r.message(), p.attributes);
    else if (f === 3 && w === 1) p.timeMs = nsToMs(r.fixed64());
    else if (f === 4 && w === 1) p.value = r.double();
    else if (f === 6 && w === 1) p.value = r.sfixed64();
    else r.skip(w);
  }
  return p;
}

function histogramPoint(r: ProtoReader): DecodedMetricPoint {
  const p: DecodedMetricPoint = {
    attributes: {},
    timeMs: 0,
    count: 0,
    sum: 0,
    bounds: [],
    counts: [],
  };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 9 && w === 2) keyValue(r.message(), p.attributes);
    else if (f === 3 && w === 1) p.timeMs = nsToMs(r.fixed64());
    else if (f === 4 && w === 1) p.count = r.fixed64();
    else if (f === 5 && w === 1) p.sum = r.double();
    else if (f === 6) packed(r, w, (m) => m.fixed64(), p.counts!);
    else if (f === 7) packed(r, w, (m) => m.double(), p.bounds!);
    else r.skip(w);
  }
  return p;
}

function metric(r: ProtoReader): DecodedMetric | undefined {
  const m: DecodedMetric = {
    name: "",
    unit: "",
    kind: "gauge",
    monotonic: false,
    delta: false,
    points: [],
  };
  let known = false;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) m.name = r.string();
    else if (f === 3 && w === 2) m.unit = r.string();
    else if ((f === 5 || f === 7 || f === 9) && w === 2) {
      known = true;
      m.kind = f === 5 ? "gauge" : f === 7 ? "sum" : "histogram";
      const d = r.message();
      while (!d.done) {
        const [df, dw] = d.tag();
        if (df === 1 && dw === 2)
          m.points.push(
            f === 9 ? histogramPoint(d.message()) : numberPoint(d.message()),
          );
        else if (f === 7 && df === 3 && dw === 0)
          m.monotonic = d.varint() !== 0;
        else if (f !== 5 && df === 2 && dw === 0)
          m.delta = d.varint() === DELTA;
        else d.skip(dw);
      }
    } else r.skip(w);
  }
  // Exponential histograms and summaries are not kept.
  return known ? m : undefined;
}

/** Decodes an ExportMetricsServiceRequest. Throws OtlpDecodeError with a reason. */
export function decodeMetricsProto(buf: Uint8Array): DecodedResourceMetrics[] {
  return named(decodeExportProto(buf, "Metrics", "metrics", metric), "metrics");
}

function jsonPoint(v: unknown, histogram: boolean): DecodedMetricPoint {
  const p = obj(v, "dataPoints[]");
  const base = {
    attributes: jsonKeyValues(p["attributes"]),
    timeMs: nsToMs(num(p["timeUnixNano"], "timeUnixNano")),
  };
  if (histogram)
    return {
      ...base,
      count: num(p["count"], "count"),
      sum: double(p["sum"], "sum"),
      bounds: list(p["explicitBounds"] ?? [], "explicitBounds").map((b) =>
        double(b, "explicitBounds[]"),
      ),
      counts: list(p["bucketCounts"] ?? [], "bucketCounts").map((c) =>
        num(c, "bucketCounts[]"),
      ),
    };
  return {
    ...base,
    value:
      p["asDouble"] !== undefined
        ? double(p["asDouble"], "asDouble")
        : num(p["asInt"], "asInt"),
  };
}

function jsonMetric(v: unknown): DecodedMetric | undefined {
  const m = obj(v, "metric");
  const name = str(m["name"], "name");
  const unit = m["unit"] === undefined ? "" : str(m["unit"], "unit");
  // Exponential histograms and summaries are not kept.
  const kind = (["sum", "gauge", "histogram"] as const).find(
    (k) => m[k] !== undefined,
  );
  if (kind === undefined) return undefined;
  const data = obj(m[kind], kind);
  return {
    name,
    unit,
    kind,
    monotonic: kind === "sum" && data["isMonotonic"] === true,
    delta:
      kind !== "gauge" &&
      (data["aggregationTemporality"] === DELTA ||
        data["aggregationTemporality"] === "AGGREGATION_TEMPORALITY_DELTA"),
    points: list(data["dataPoints"] ?? [], "dataPoints").map((p) =>
      jsonPoint(p, kind === "histogram"),
    ),
  };
}

/** Decodes an ExportMetricsServiceRequest in OTLP/JSON. */
export function decodeMetricsJson(body: unknown): DecodedResourceMetrics[] {
  return named(
    decodeExportJson(body, "Metrics", "metrics", jsonMetric),
    "metrics",
  );
}
