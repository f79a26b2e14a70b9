// An optional Prometheus scrape endpoint over the same meter provider the
// OTLP reader uses: `OTEL_METRICS_EXPORTER=otlp,prometheus` (or
// `prometheus` alone) serves the text exposition format on
// OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT (localhost:9464),
// as the OpenTelemetry specification names them. Names follow the
// specification's mapping: dots become underscores, the unit is a suffix in
// words (`_seconds`, `_kibibytes`, `_meters_per_second`; see unitWords()),
// monotonic sums end in `_total`. As the specification's compatibility
// mapping asks of an SDK's pull exporter, the resource is the one
// `target_info` series (service.name and the rest, to join on), and every
// series carries its instrumentation scope as `otel_scope_name` and
// `otel_scope_version`, so scopes that make a metric of the same name share
// it (see families()).
import { diag } from "@threadline/core";
import type { Attributes, MetricData, Scope } from "@threadline/otlp";
import {
  startUntracedServer,
  type UntracedServer,
} from "../internal/untraced-server.ts";
import { Reader, type MeterProvider } from "./meter-provider.ts";

/** UCUM units and their words in Prometheus names, the specification's table. */
const UNIT_WORDS: Record<string, string> = {
  d: "days",
  h: "hours",
  min: "minutes",
  s: "seconds",
  ms: "milliseconds",
  us: "microseconds",
  ns: "nanoseconds",
  By: "bytes",
  KiBy: "kibibytes",
  MiBy: "mebibytes",
  GiBy: "gibibytes",
  TiBy: "tebibytes",
  kBy: "kilobytes",
  // Not UCUM, but what Prometheus's own translator reads as kilobytes.
  KBy: "kilobytes",
  MBy: "megabytes",
  GBy: "gigabytes",
  TBy: "terabytes",
  m: "meters",
  V: "volts",
  A: "amperes",
  J: "joules",
  W: "watts",
  g: "grams",
  Cel: "celsius",
  Hz: "hertz",
  "%": "percent",
};

/**
 * The time a rate is over (`m/s`: meters per second), in the singular.
 * Beside UCUM's, the spellings Prometheus's own translator reads (`m` for
 * a minute), so names match those the Collector would make.
 */
const PER_WORDS: Record<string, string> = {
  s: "second",
  min: "minute",
  m: "minute",
  h: "hour",
  d: "day",
  w: "week",
  wk: "week",
  mo: "month",
  y: "year",
  a: "year",
};

/** A unit that has no word of its own, made fit for a metric name. */
const sanitised = (unit: string) =>
  unit
    .replace(/[^a-zA-Z0-9_]/g, "_")
    .replace(/_+/g, "_")
    .replace(/^_|_$/g, "");

/**
 * A unit in words for a Prometheus name, as the specification's
 * compatibility mapping has it: UCUM units become words (`KiBy`:
 * kibibytes), a rate `a/b` becomes `a_per_b`, annotations in braces
 * (`{request}`) are dropped, other units are kept, sanitised. `1` says
 * nothing for a count; a gauge of `1` is a ratio (Prometheus's own
 * translator does the same, for gauges only). "" for no suffix.
 */
export function unitWords(unit: string, gauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, "").trim();
  if (u === "1") return gauge ? "ratio" : "";
  const slash = u.indexOf("/");
  const main = (slash === -1 ? u : u.slice(0, slash)).trim();
  const per = slash === -1 ? "" : u.slice(slash + 1).trim();
  const mainWords =
    main === "" || main === "1" ? "" : (UNIT_WORDS[main] ?? sanitised(main));
  const perWords = per === "" ? "" : (PER_WORDS[per] ?? sanitised(per));
  if (perWords === "") return mainWords;
  return mainWords === "" ? `per_${perWords}` : `${mainWords}_per_${perWords}`;
}

/**
 * A metric's Prometheus name: dots and other characters a name cannot
 * hold become underscores, the unit in words follows unless the name ends
 * with it already, and a monotonic sum (a counter) ends in `_total`.
 */
export function prometheusName(
  m: Pick<MetricData, "name" | "unit" | "kind"> & { monotonic?: boolean },
): string {
  let n = m.name.replace(/[^a-zA-Z0-9_:]/g, "_");
  if (/^[0-9]/.test(n)) n = `_${n}`;
  const words = unitWords(m.unit, m.kind === "gauge");
  if (words !== "" && !n.endsWith(`_${words}`)) n += `_${words}`;
  if (m.kind === "sum" && m.monotonic === true && !n.endsWith("_total"))
    n += "_total";
  return n;
}

/**
 * An attribute's label name: characters a label cannot hold become
 * underscores, and one that would start with a digit gets one before it.
 * Prometheus keeps names starting with `__` for its own (`__name__` is the
 * metric's name, so an attribute of that name would write it twice), so
 * such a name gets `key_` before it, the prefix the Collector's translator
 * gives a name that starts with a digit.
 */
function labelName(key: string): string {
  const n = key.replace(/[^a-zA-Z0-9_]/g, "_");
  if (/^[0-9]/.test(n)) return `_${n}`;
  return n.startsWith("__") ? `key_${n}` : n;
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
 * `otel_le`, since `le` is the bucket's. An attribute that would become one
 * of the `reserved` labels (the scope's, which every series carries) is
 * left out, as is one with an empty name: a label `=""` makes the whole
 * scrape unreadable.
 */
function labelParts(
  attributes: Record<string, unknown>,
  histogram: boolean,
  reserved: ReadonlySet<string> = NO_LABELS,
): string[] {
  const byLabel = new Map<string, string[]>();
  for (const k of Object.keys(attributes)) {
    const v = attributes[k];
    if (v === undefined) continue;
    if (k === "") {
      diag.warnOnce(
        "prometheus-empty-label",
        "an attribute with an empty name was given; no Prometheus label can have it, so /metrics leaves it out",
      );
      continue;
    }
    let name = labelName(k);
    if (reserved.has(name)) continue;
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

const NO_LABELS: ReadonlySet<string> = new Set();
const SCOPE_LABELS: ReadonlySet<string> = new Set([
  "otel_scope_name",
  "otel_scope_version",
]);

/** The labels naming a metric's scope: its name, and its version if it has one. */
function scopeLabels(scope: Scope): Record<string, string> {
  return scope.version === undefined || scope.version === ""
    ? { otel_scope_name: scope.name }
    : { otel_scope_name: scope.name, otel_scope_version: scope.version };
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

/** A metric's Prometheus type. */
function typeOf(m: MetricData): "histogram" | "counter" | "gauge" {
  if (m.kind === "histogram") return "histogram";
  return m.kind === "sum" && m.monotonic ? "counter" : "gauge";
}

/** A scope as a warning names it: its name, and its version if it has one. */
function scopeWording(scope: Scope): string {
  return scope.version === undefined || scope.version === ""
    ? scope.name
    : `${scope.name}@${scope.version}`;
}

/** The metrics of one Prometheus name, of the type the first of them gave it. */
interface Family {
  type: "histogram" | "counter" | "gauge";
  metrics: MetricData[];
}

/** The lines a histogram writes beside its name's, each a name of its own. */
const HISTOGRAM_LINES = ["_bucket", "_sum", "_count"] as const;

/** Warns, once per metric, that /metrics leaves it out; `clash` says why. */
function leftOut(
  m: MetricData,
  name: string,
  type: Family["type"],
  clash: string,
  other: Family,
): void {
  diag.warnOnce(
    `prometheus-type:${name}\u0000${scopeWording(m.scope)}`,
    `metric ${m.name} of scope ${scopeWording(m.scope)} is a ${type}, but ${clash} (scope ${scopeWording(other.metrics[0]!.scope)}); a Prometheus name holds one type, so /metrics leaves the ${type} out`,
  );
}

/**
 * The metrics by Prometheus name, in the order each name first appears.
 * Libraries often make a metric of the same name (each their own scope):
 * one name holds all their series, told apart by otel_scope_name. A name
 * holds one type only, so a metric that would give it another is left
 * out, with a warning naming both scopes. A histogram's lines
 * (`<name>_bucket`, `_sum`, `_count`) are names it takes too: a gauge
 * `batch.size.count` beside a histogram `batch.size` would write a second
 * series of `batch_size_count`, of which Prometheus keeps either.
 */
function families(metrics: readonly MetricData[]): Map<string, Family> {
  const out = new Map<string, Family>();
  // Each histogram's line names, to the histogram's name.
  const lines = new Map<string, string>();
  for (const m of metrics) {
    const name = prometheusName(m);
    // One target_info only: an application's metric of that name gives way.
    if (name === "target_info") continue;
    const type = typeOf(m);
    const family = out.get(name);
    if (family !== undefined) {
      if (family.type === type) family.metrics.push(m);
      else
        leftOut(
          m,
          name,
          type,
          `${name} on /metrics is already a ${family.type}`,
          family,
        );
      continue;
    }
    const histogram = lines.get(name);
    if (histogram !== undefined) {
      leftOut(
        m,
        name,
        type,
        `${name} on /metrics is already a line of the histogram ${histogram}`,
        out.get(histogram)!,
      );
      continue;
    }
    if (type === "histogram") {
      const taken = HISTOGRAM_LINES.map((s) => name + s).find((n) =>
        out.has(n),
      );
      if (taken !== undefined) {
        const other = out.get(taken)!;
        leftOut(
          m,
          name,
          type,
          `its ${taken} on /metrics is already a ${other.type}`,
          other,
        );
        continue;
      }
      for (const s of HISTOGRAM_LINES) lines.set(name + s, name);
    }
    out.set(name, { type, metrics: [m] });
  }
  return out;
}

/** A series as /metrics writes it: its labels, and its point's numbers. */
type Series =
  | { kind: "number"; labels: string; value: number }
  | {
      kind: "histogram";
      labels: string;
      parts: string[];
      bounds: readonly number[];
      counts: number[];
      sum: number;
      count: number;
    };

/**
 * A family's series by their labels, in the order each first appears.
 * Attribute sets that differ in OTLP may become the same labels: `200` and
 * `"200"`, `a.b` and `a_b`, or sets differing only in an attribute left
 * out (the scope's own labels); and two metrics of one scope whose names
 * become one share the family. Written twice, Prometheus would keep only
 * one of them (and call the sample a duplicate), so they become one
 * series, as an aggregation dropping what told them apart would make it:
 * sums and histograms add up, a gauge keeps the last value. A histogram of
 * other bounds cannot be added and is left out. Each is said once per
 * metric name.
 */
function familySeries(
  name: string,
  metrics: readonly MetricData[],
): Map<string, Series> {
  const out = new Map<string, Series>();
  const merged = (labels: string, how: string) =>
    diag.warnOnce(
      `prometheus-merge:${name}`,
      `metric ${name} on /metrics has attribute sets that become the same labels ${labels} (values of other types, names that differ only in characters a label cannot hold, or otel.scope.name); a series is written once, so /metrics writes ${how}`,
    );
  for (const m of metrics) {
    const scopeParts = labelParts(scopeLabels(m.scope), false);
    if (m.kind === "histogram") {
      for (const p of m.points) {
        const parts = [
          ...labelParts(p.attributes, true, SCOPE_LABELS),
          ...scopeParts,
        ];
        const labels = braced(parts);
        const was = out.get(labels);
        if (was === undefined) {
          out.set(labels, {
            kind: "histogram",
            labels,
            parts,
            bounds: p.bounds,
            counts: [...p.counts],
            sum: p.sum,
            count: p.count,
          });
          continue;
        }
        if (
          was.kind !== "histogram" ||
          was.bounds.length !== p.bounds.length ||
          was.bounds.some((b, i) => b !== p.bounds[i])
        ) {
          merged(labels, "the first, as their buckets differ");
          continue;
        }
        merged(labels, "their sum");
        p.counts.forEach((c, i) => (was.counts[i] = (was.counts[i] ?? 0) + c));
        was.sum += p.sum;
        was.count += p.count;
      }
      continue;
    }
    for (const p of m.points) {
      const labels = braced([
        ...labelParts(p.attributes, false, SCOPE_LABELS),
        ...scopeParts,
      ]);
      const was = out.get(labels);
      if (was === undefined)
        out.set(labels, { kind: "number", labels, value: p.value });
      else if (was.kind === "number")
        if (m.kind === "sum") {
          merged(labels, "their sum");
          was.value += p.value;
        } else {
          merged(labels, "the last value");
          was.value = p.value;
        }
    }
  }
  return out;
}

/**
 * The text exposition format (version 0.0.4) of a collection, with the
 * resource as `target_info`: a gauge of 1, as the format has no info type.
 */
export function toPrometheusText(
  metrics: readonly MetricData[],
  resource: Attributes = {},
): string {
  const out: string[] = [];
  const target = labelParts(resource, false);
  if (target.length > 0) {
    out.push("# HELP target_info Target metadata");
    out.push("# TYPE target_info gauge");
    out.push(`target_info${braced(target)} 1`);
  }
  for (const [name, { type, metrics: ms }] of families(metrics)) {
    const description = ms.find((m) => m.description !== "")?.description;
    if (description !== undefined)
      out.push(`# HELP ${name} ${escapeHelp(description)}`);
    out.push(`# TYPE ${name} ${type}`);
    for (const series of familySeries(name, ms).values())
      if (series.kind === "number")
        out.push(`${name}${series.labels} ${num(series.value)}`);
      else {
        const bucket = (le: string) => braced([...series.parts, `le="${le}"`]);
        let cumulative = 0;
        series.bounds.forEach((bound, i) => {
          cumulative += series.counts[i] ?? 0;
          out.push(`${name}_bucket${bucket(num(bound))} ${cumulative}`);
        });
        out.push(`${name}_bucket${bucket("+Inf")} ${series.count}`);
        out.push(`${name}_sum${series.labels} ${num(series.sum)}`);
        out.push(`${name}_count${series.labels} ${series.count}`);
      }
  }
  return `${out.join("\n")}\n`;
}

/** What a scrape leaves its scraper to receive the answer, in ms. */
const SCRAPE_MARGIN_MS = 500;
/**
 * How long a scrape waits for asynchronous callbacks when its scraper does
 * not say how long it waits: Prometheus's default scrape timeout (10 s)
 * less the margin.
 */
const DEFAULT_SCRAPE_WAIT_MS = 10_000 - SCRAPE_MARGIN_MS;

/**
 * How long a scrape may wait for asynchronous callbacks, in ms: the
 * scraper's timeout (Prometheus sends it as X-Prometheus-Scrape-Timeout-Seconds)
 * less a margin to answer in, so one callback that hangs never fails the
 * whole scrape. The meter provider caps it by its callback timeout.
 */
export function scrapeWaitMs(header: string | string[] | undefined): number {
  const seconds = typeof header === "string" ? Number(header) : NaN;
  if (header === undefined || !Number.isFinite(seconds) || seconds <= 0)
    return DEFAULT_SCRAPE_WAIT_MS;
  return Math.max(0, seconds * 1000 - SCRAPE_MARGIN_MS);
}

/** Serves GET /metrics; resolves once listening (or undefined if it cannot). */
export function startPrometheusEndpoint(
  provider: MeterProvider,
  resource: Attributes,
  host: string,
  port: number,
): Promise<UntracedServer | undefined> {
  // Scrapes have windows of their own: an OTLP export between two scrapes
  // leaves the second the whole time since the first.
  const reader = new Reader("Prometheus scrape");
  return startUntracedServer(
    {
      what: "the Prometheus endpoint",
      variable: "OTEL_EXPORTER_PROMETHEUS_PORT",
      // Each worker exports its own over OTLP, an instance of the service.
      otherwise: "export metrics over OTLP (OTEL_METRICS_EXPORTER=otlp)",
      path: "/metrics",
    },
    host,
    port,
    (req, res) => {
      // HEAD is answered as GET is, without the body, as the health
      // endpoint answers it.
      if (
        (req.method !== "GET" && req.method !== "HEAD") ||
        (req.url ?? "/").split("?")[0] !== "/metrics"
      ) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      const waitMs = scrapeWaitMs(
        req.headers["x-prometheus-scrape-timeout-seconds"],
      );
      // The length, not chunks, so a HEAD answer carries what the GET does
      // (Node writes no body in answer to a HEAD).
      const answer = (status: number, type: string, text: string) =>
        res
          .writeHead(status, {
            "content-type": type,
            "content-length": String(Buffer.byteLength(text)),
          })
          .end(text);
      provider.collect("cumulative", reader, performance.now() + waitMs).then(
        (metrics) =>
          answer(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            toPrometheusText(metrics, resource),
          ),
        (err: unknown) =>
          answer(500, "text/plain", `${(err as Error)?.message}\n`),
      );
    },
  );
}
