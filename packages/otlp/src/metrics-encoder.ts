// ExportMetricsServiceRequest encoding, protobuf and JSON: sums, gauges and
// explicit-bucket histograms, with exemplars.
import {
  DEEPER_START,
  jsonDouble,
  jsonString,
  keyValuesToJson,
  writeKeyValues,
} from "./any-value.ts";
import type { Attributes, Scope } from "./model.ts";
import {
  jsonId,
  ProtoWriter,
  WIRE_FIXED64,
  WIRE_LEN,
  WIRE_VARINT,
} from "./proto-writer.ts";
import { msToNanosString, writeResource, writeScope } from "./trace-encoder.ts";
import { groupByScope, scopeToJson } from "./scope.ts";

/** A measurement kept as an example of a data point, tied to a sampled span. */
export interface ExemplarData {
  /** Epoch milliseconds. */
  time: number;
  value: number;
  /** Empty for a measurement made outside a sampled span. */
  traceId: string;
  spanId: string;
}

export interface NumberPointData {
  attributes: Attributes;
  /** Epoch milliseconds. */
  startTime: number;
  time: number;
  value: number;
  exemplars?: readonly ExemplarData[] | undefined;
}

export interface HistogramPointData {
  attributes: Attributes;
  startTime: number;
  time: number;
  count: number;
  sum: number;
  /** Smallest and largest measurement; left out when not known (see MetricData's temporality). */
  min?: number | undefined;
  max?: number | undefined;
  /** Upper bounds of all buckets but the last. */
  bounds: readonly number[];
  /** bounds.length + 1 counts. */
  counts: readonly number[];
  exemplars?: readonly ExemplarData[] | undefined;
}

export type Temporality = "cumulative" | "delta";

export type MetricData =
  | {
      scope: Scope;
      name: string;
      description: string;
      unit: string;
      kind: "sum";
      monotonic: boolean;
      /** Cumulative (the default): since each point's start; delta: since the previous export. */
      temporality?: Temporality | undefined;
      points: readonly NumberPointData[];
    }
  | {
      scope: Scope;
      name: string;
      description: string;
      unit: string;
      kind: "gauge";
      points: readonly NumberPointData[];
    }
  | {
      scope: Scope;
      name: string;
      description: string;
      unit: string;
      kind: "histogram";
      temporality?: Temporality | undefined;
      points: readonly HistogramPointData[];
    };

const DELTA = 1;
const CUMULATIVE = 2;
const temporalityValue = (t: Temporality | undefined) =>
  t === "delta" ? DELTA : CUMULATIVE;

function writeExemplars(
  w: ProtoWriter,
  field: number,
  exemplars: readonly ExemplarData[] | undefined,
): void {
  if (exemplars === undefined) return;
  for (const e of exemplars) {
    const m = w.begin(field);
    w.tag(2, WIRE_FIXED64);
    w.fixed64Nanos(e.time);
    w.tag(3, WIRE_FIXED64);
    w.double(e.value);
    w.hexField(4, e.spanId, 8);
    w.hexField(5, e.traceId, 16);
    w.end(m);
  }
}

function writeNumberPoint(w: ProtoWriter, p: NumberPointData): void {
  const m = w.begin(1);
  writeKeyValues(w, 7, p.attributes, DEEPER_START);
  w.tag(2, WIRE_FIXED64);
  w.fixed64Nanos(p.startTime);
  w.tag(3, WIRE_FIXED64);
  w.fixed64Nanos(p.time);
  w.tag(4, WIRE_FIXED64);
  w.double(p.value);
  writeExemplars(w, 5, p.exemplars);
  w.end(m);
}

function writeHistogramPoint(w: ProtoWriter, p: HistogramPointData): void {
  const m = w.begin(1);
  writeKeyValues(w, 9, p.attributes, DEEPER_START);
  w.tag(2, WIRE_FIXED64);
  w.fixed64Nanos(p.startTime);
  w.tag(3, WIRE_FIXED64);
  w.fixed64Nanos(p.time);
  w.tag(4, WIRE_FIXED64);
  w.fixed64(p.count);
  w.tag(5, WIRE_FIXED64);
  w.double(p.sum);
  // packed repeated fixed64 / double
  w.tag(6, WIRE_LEN);
  w.uvarint(p.counts.length * 8);
  for (const c of p.counts) w.fixed64(c);
  w.tag(7, WIRE_LEN);
  w.uvarint(p.bounds.length * 8);
  for (const b of p.bounds) w.double(b);
  writeExemplars(w, 8, p.exemplars);
  if (p.count > 0 && p.min !== undefined) {
    w.tag(11, WIRE_FIXED64);
    w.double(p.min);
  }
  if (p.count > 0 && p.max !== undefined) {
    w.tag(12, WIRE_FIXED64);
    w.double(p.max);
  }
  w.end(m);
}

function writeMetric(w: ProtoWriter, metric: MetricData): void {
  const mm = w.begin(2);
  w.stringField(1, metric.name);
  w.stringField(2, metric.description);
  w.stringField(3, metric.unit);
  if (metric.kind === "sum") {
    const d = w.begin(7);
    for (const p of metric.points) writeNumberPoint(w, p);
    w.tag(2, WIRE_VARINT);
    w.uvarint(temporalityValue(metric.temporality));
    if (metric.monotonic) {
      w.tag(3, WIRE_VARINT);
      w.uvarint(1);
    }
    w.end(d);
  } else if (metric.kind === "gauge") {
    const d = w.begin(5);
    for (const p of metric.points) writeNumberPoint(w, p);
    w.end(d);
  } else {
    const d = w.begin(9);
    for (const p of metric.points) writeHistogramPoint(w, p);
    w.tag(2, WIRE_VARINT);
    w.uvarint(temporalityValue(metric.temporality));
    w.end(d);
  }
  w.end(mm);
}

/**
 * Encodes metrics (cumulative unless a metric says delta) as OTLP
 * ExportMetricsServiceRequest messages for one resource. A metric that
 * cannot be encoded is left out and handed to `onError`, as
 * {@link TraceEncoder} does with spans; without `onError`, its error is
 * thrown.
 */
export class MetricsEncoder {
  readonly #resource: Attributes;
  readonly #writer = new ProtoWriter(16 * 1024);

  constructor(resource: Attributes) {
    this.#resource = resource;
  }

  encode(
    metrics: readonly MetricData[],
    onError?: (err: unknown, metric: MetricData) => void,
  ): Uint8Array {
    const w = this.#writer;
    w.reset();
    const rm = w.begin(1);
    writeResource(w, 1, this.#resource);
    for (const [scope, list] of groupByScope(metrics)) {
      // What is written of a metric (or of a scope) that fails is taken
      // back: the messages it is in are still open, their lengths
      // written when they end.
      const scopeAt = w.length;
      const sm = w.begin(2);
      try {
        writeScope(w, 1, scope);
        if (scope.schemaUrl) w.stringField(3, scope.schemaUrl);
      } catch (err) {
        w.truncate(scopeAt);
        if (onError === undefined) throw err;
        for (const metric of list) onError(err, metric);
        continue;
      }
      let written = 0;
      for (const metric of list) {
        const at = w.length;
        try {
          writeMetric(w, metric);
          written++;
        } catch (err) {
          w.truncate(at);
          if (onError === undefined) throw err;
          onError(err, metric);
        }
      }
      if (written > 0) w.end(sm);
      else w.truncate(scopeAt);
    }
    w.end(rm);
    return w.finish();
  }

  encodeJson(
    metrics: readonly MetricData[],
    onError?: (err: unknown, metric: MetricData) => void,
  ): string {
    const exemplars = (list: readonly ExemplarData[] | undefined) =>
      list?.map((e) => ({
        timeUnixNano: msToNanosString(e.time),
        asDouble: jsonDouble(e.value),
        spanId: jsonId(e.spanId, 8),
        traceId: jsonId(e.traceId, 16),
      }));
    const number = (p: NumberPointData) => ({
      attributes: keyValuesToJson(p.attributes, DEEPER_START),
      startTimeUnixNano: msToNanosString(p.startTime),
      timeUnixNano: msToNanosString(p.time),
      asDouble: jsonDouble(p.value),
      ...(p.exemplars ? { exemplars: exemplars(p.exemplars) } : {}),
    });
    const metricToJson = (m: MetricData) => {
      const base = {
        name: jsonString(m.name, "the metric's name"),
        description: jsonString(m.description, "the metric's description"),
        unit: jsonString(m.unit, "the metric's unit"),
      };
      if (m.kind === "sum")
        return {
          ...base,
          sum: {
            dataPoints: m.points.map(number),
            aggregationTemporality: temporalityValue(m.temporality),
            isMonotonic: m.monotonic,
          },
        };
      if (m.kind === "gauge")
        return { ...base, gauge: { dataPoints: m.points.map(number) } };
      return {
        ...base,
        histogram: {
          aggregationTemporality: temporalityValue(m.temporality),
          dataPoints: m.points.map((p) => ({
            attributes: keyValuesToJson(p.attributes, DEEPER_START),
            startTimeUnixNano: msToNanosString(p.startTime),
            timeUnixNano: msToNanosString(p.time),
            count: String(p.count),
            sum: jsonDouble(p.sum),
            bucketCounts: p.counts.map(String),
            explicitBounds: p.bounds.map(jsonDouble),
            ...(p.count > 0 && p.min !== undefined
              ? { min: jsonDouble(p.min) }
              : {}),
            ...(p.count > 0 && p.max !== undefined
              ? { max: jsonDouble(p.max) }
              : {}),
            ...(p.exemplars ? { exemplars: exemplars(p.exemplars) } : {}),
          })),
        },
      };
    };
    const scopeMetrics = [];
    for (const [scope, list] of groupByScope(metrics)) {
      const json: unknown[] = [];
      for (const m of list) {
        try {
          // A scope's name is checked with each of its metrics, as protobuf
          // writes it: a scope that cannot be written leaves them all out.
          jsonString(scope.name, "its scope's name");
          if (scope.version) jsonString(scope.version, "its scope's version");
          json.push(metricToJson(m));
        } catch (err) {
          if (onError === undefined) throw err;
          onError(err, m);
        }
      }
      if (json.length > 0)
        scopeMetrics.push({
          scope: scopeToJson(scope),
          ...(scope.schemaUrl ? { schemaUrl: scope.schemaUrl } : {}),
          metrics: json,
        });
    }
    return JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: keyValuesToJson(this.#resource) },
          scopeMetrics,
        },
      ],
    });
  }
}
