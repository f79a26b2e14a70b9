// An optional Prometheus scrape endpoint over the same meter provider the
// OTLP reader uses: `OTEL_METRICS_EXPORTER=otlp,prometheus` (or
// `prometheus` alone) serves the text exposition format on
// OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT (localhost:9464),
// as the OpenTelemetry specification names them. Names follow the
// specification's mapping: dots become underscores, the unit is a suffix
// (`_seconds`, `_bytes`, `_ratio`), monotonic sums end in `_total`.
import type { MetricData } from "@threadline/otlp";
import {
  startUntracedServer,
  type UntracedServer,
} from "../internal/untraced-server.ts";
import type { MeterProvider } from "./meter-provider.ts";

const UNIT_SUFFIX: Record<string, string> = {
  s: "seconds",
  ms: "milliseconds",
  By: "bytes",
  "1": "ratio",
};

function metricName(name: string, unit: string): string {
  let n = name.replace(/[^a-zA-Z0-9_:]/g, "_");
  if (/^[0-9]/.test(n)) n = `_${n}`;
  const suffix = unit.startsWith("{") ? undefined : UNIT_SUFFIX[unit];
  if (suffix !== undefined && !n.endsWith(`_${suffix}`)) n += `_${suffix}`;
  return n;
}

function labelName(key: string): string {
  const n = key.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(n) ? `_${n}` : n;
}

/** HELP text escaped: backslashes and line feeds. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A label value escaped: as HELP text, and double quotes too. */
function escapeLabel(v: string): string {
  return escapeHelp(v).replace(/"/g, '\\"');
}

/**
 * A series' labels. Attributes whose names become one label (`a.b` and
 * `a_b`) share it, their values joined by `;` in the attributes' order:
 * a label twice makes the whole scrape unreadable. On a histogram, an attribute named `le` becomes
 * `otel_le`, since `le` is the bucket's.
 */
function labelParts(
  attributes: Record<string, unknown>,
  histogram: boolean,
): string[] {
  const byLabel = new Map<string, string[]>();
  for (const k of Object.keys(attributes)) {
    const v = attributes[k];
    if (v === undefined) continue;
    let name = labelName(k);
    if (histogram && name === "le") name = "otel_le";
    const s = typeof v === "string" ? v : JSON.stringify(v);
    const values = byLabel.get(name);
    if (values === undefined) byLabel.set(name, [s]);
    else values.push(s);
  }
  const parts: string[] = [];
  for (const [name, values] of byLabel)
    parts.push(`${name}="${escapeLabel(values.join(";"))}"`);
  return parts;
}

function braced(parts: readonly string[]): string {
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function num(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** The text exposition format (version 0.0.4) of a collection. */
export function toPrometheusText(metrics: readonly MetricData[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const m of metrics) {
    const base = metricName(m.name, m.unit);
    const name =
      m.kind === "sum" && m.monotonic && !base.endsWith("_total")
        ? `${base}_total`
        : base;
    // Two scopes with one metric name: the first wins, as Prometheus
    // cannot hold both under one name with different types.
    if (seen.has(name)) continue;
    seen.add(name);
    const type =
      m.kind === "histogram"
        ? "histogram"
        : m.kind === "sum" && m.monotonic
          ? "counter"
          : "gauge";
    if (m.description !== "")
      out.push(`# HELP ${name} ${escapeHelp(m.description)}`);
    out.push(`# TYPE ${name} ${type}`);
    if (m.kind === "histogram") {
      for (const p of m.points) {
        // The point's labels are worked out once, for every line of it.
        const parts = labelParts(p.attributes, true);
        const bucket = (le: string) => braced([...parts, `le="${le}"`]);
        let cumulative = 0;
        p.bounds.forEach((bound, i) => {
          cumulative += p.counts[i] ?? 0;
          out.push(`${name}_bucket${bucket(num(bound))} ${cumulative}`);
        });
        out.push(`${name}_bucket${bucket("+Inf")} ${p.count}`);
        const own = braced(parts);
        out.push(`${name}_sum${own} ${num(p.sum)}`);
        out.push(`${name}_count${own} ${p.count}`);
      }
    } else {
      for (const p of m.points)
        out.push(
          `${name}${braced(labelParts(p.attributes, false))} ${num(p.value)}`,
        );
    }
  }
  return `${out.join("\n")}\n`;
}

/** Serves GET /metrics; resolves once listening (or undefined if it cannot). */
export function startPrometheusEndpoint(
  provider: MeterProvider,
  host: string,
  port: number,
): Promise<UntracedServer | undefined> {
  return startUntracedServer(
    "the Prometheus endpoint",
    host,
    port,
    (req, res) => {
      if (
        req.method !== "GET" ||
        (req.url ?? "/").split("?")[0] !== "/metrics"
      ) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      provider.collect().then(
        (metrics) =>
          res
            .writeHead(200, {
              "content-type": "text/plain; version=0.0.4; charset=utf-8",
            })
            .end(toPrometheusText(metrics)),
        (err: unknown) =>
          res
            .writeHead(500, { "content-type": "text/plain" })
            .end(`${(err as Error)?.message}\n`),
      );
    },
  );
}
