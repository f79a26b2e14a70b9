// Elasticsearch, as the gateway Collector fills it (collector-config/): ECS
// span documents in `traces-*` (with `event.duration` and an error's
// `span.status.message` added by the gateway) and ECS log documents in
// `logs-*`. Credentials: user:password in the URL, or an API key in
// THREADLINE_ELASTICSEARCH_API_KEY.
//
// A search keeps the store's meaning (each filter met by some span of the
// trace; the duration is the trace's) and leaves the choosing to
// Elasticsearch: the newest traces, as many as the limit asks, with a span
// in the window for the customer, or without a customer one that meets the
// most selective filter (one aggregation); then one more aggregation over
// those traces' spans for the other filters, and bounds on each trace's
// start and duration; then only the traces that pass are read whole and
// checked here as the other backends do. When too few pass, the next
// newest are taken, until the limit is met or MAX_CANDIDATES traces were
// looked at (a duration, which no single span can answer, or a filter that
// few of a customer's traces meet, can scan that far).
//
// A customer's traces of log lines and no span (the gateway keeps every line
// but only a share of traces) are listed too, as the local store lists a
// request whose spans have not come: chosen the same way from the lines in
// the window that carry the customer, then one aggregation over all their
// lines gives each its start, services and the filters lines can meet (a
// service, a duration), and one over their spans leaves out those that have
// some, which are judged by their spans.
import { printableUrl, takeUserInfo } from "@threadline/core";
import type {
  LogRecord,
  SearchQuery,
  SpanEvent,
  SpanRecord,
  TraceBackend,
  TraceDetail,
  TraceSummary,
} from "../model.ts";
import {
  DEFAULT_LIMIT,
  answer,
  byTrace,
  failure,
  json,
  reach,
  window,
} from "./remote.ts";

const SPANS = "traces-*";
const LOGS = "logs-*";
/** The most traces one search looks at before it asks to be narrowed. */
const MAX_CANDIDATES = 20_000;
/** Elasticsearch aggregates `date_nanos` in milliseconds: its bounds are widened by one (µs). */
const AGGREGATE_SLACK_US = 1000;
/** Documents per request: Elasticsearch's default `index.max_result_window`. */
const PAGE = 10_000;
/** Trace ids per request, and candidate traces per aggregation. */
const TRACES_PER_READ = 1000;
/**
 * Oldest first; the nanosecond format keeps the sort values exact (as
 * numbers they would pass 2^53), and `numeric_type` lets indices that map
 * the time as `date` be sorted with those that map it as `date_nanos`.
 */
const BY_TIME = {
  "@timestamp": {
    order: "asc",
    format: "strict_date_optional_time_nanos",
    numeric_type: "date_nanos",
  },
};
const NEWEST = { "@timestamp": { ...BY_TIME["@timestamp"], order: "desc" } };
/** Services one trace of log lines is listed with, at most. */
const MAX_LINE_SERVICES = 100;
/**
 * How long after its last log line a trace's spans may still come: the
 * gateway decides a trace 10 s after its first span (its default
 * decision_wait) and Elasticsearch is written up to 5 s later. A trace of
 * lines alone that is older was not kept by the gateway's sampling.
 */
const SPANS_SETTLE_US = 60_000_000;

/** What a trace of log lines alone is: still running, or one whose spans were not kept. */
const linesOnly = (lastUs: number) =>
  Date.now() * 1000 - lastUs > SPANS_SETTLE_US
    ? { spansNotKept: true }
    : { inProgress: true };

const KIND: Record<string, number> = {
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
};

type Doc = Record<string, unknown>;

/** ECS documents nest dotted names; attributes are kept flat, as OTLP has them. */
function flatten(doc: Doc, prefix = "", out: Doc = {}): Doc {
  for (const [k, v] of Object.entries(doc)) {
    const key = prefix === "" ? k : `${prefix}.${k}`;
    if (v !== null && typeof v === "object" && !Array.isArray(v))
      flatten(v as Doc, key, out);
    else out[key] = v;
  }
  return out;
}

/** ISO time with up to nanosecond digits, as epoch microseconds. */
function timeUs(iso: unknown): number {
  if (typeof iso !== "string") return 0;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)$/.exec(iso);
  if (m === null) return Date.parse(iso) * 1000;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  const fraction = Number(`0.${m[2] ?? "0"}`);
  return seconds * 1000 + Math.round(fraction * 1e6);
}

const RESOURCE_PREFIXES = [
  "service.",
  "host.",
  "process.",
  "os.",
  "telemetry.",
];
const DOCUMENT_FIELDS = new Set([
  "@timestamp",
  "trace.id",
  "span.id",
  "parent.id",
  "span.name",
  "span.kind",
  "event.duration",
  "event.outcome",
  "span.status.message",
  "customer.id",
  "message",
  "log.level",
  "event.severity",
  "elastic.mapping.mode",
]);

/** ECS names the exporter gives some OpenTelemetry attributes, mapped back. */
const FROM_ECS: Record<string, string> = {
  "span.db.statement": "db.query.text",
  "span.db.instance": "db.namespace",
  // A span's recorded exception, in the exporter's error documents.
  "error.exception.type": "exception.type",
  "error.exception.message": "exception.message",
  "error.stack_trace": "exception.stacktrace",
};
const TO_ECS: Record<string, string> = Object.fromEntries(
  Object.entries(FROM_ECS).map(([ecs, otel]) => [otel, ecs]),
);

const anyOf = (queries: unknown[]): unknown =>
  queries.length === 1
    ? queries[0]
    : { bool: { should: queries, minimum_should_match: 1 } };

/** Documents of `[fromUs, toUs]`. */
const inWindow = (fromUs: number, toUs: number): unknown => ({
  range: {
    "@timestamp": {
      gte: new Date(fromUs / 1000).toISOString(),
      lte: new Date(toUs / 1000).toISOString(),
    },
  },
});

/** The named sub-aggregations that count a trace's documents meeting each of `filters`. */
function filterCounts(filters: unknown[]): Record<string, unknown> {
  const aggs: Record<string, unknown> = {};
  filters.forEach((f, i) => (aggs[`filter${i}`] = { filter: f }));
  return aggs;
}

/** Whether a trace's bucket counted a document for every one of `filters` ({@link filterCounts}). */
const meetsAll = (bucket: Record<string, unknown>, filters: unknown[]) =>
  filters.every(
    (_, i) => (bucket[`filter${i}`] as { doc_count: number }).doc_count > 0,
  );

/**
 * The filters of `q` other than the customer, as queries on span
 * documents, the most selective first. An attribute is matched leniently,
 * so a value that does not parse as its field's type finds nothing rather
 * than failing the search; what comes back is checked exactly as the store
 * does.
 */
function spanFilters(q: SearchQuery): unknown[] {
  const out: unknown[] = [];
  if (q.errorsOnly === true) out.push({ term: { "event.outcome": "failure" } });
  for (const [key, value] of q.attributes ?? []) {
    const ecs = TO_ECS[key];
    out.push(
      anyOf(
        [key, ...(ecs === undefined ? [] : [ecs])].map((field) => ({
          match: { [field]: { query: value, lenient: true } },
        })),
      ),
    );
  }
  if (q.operation !== undefined)
    out.push(
      anyOf([
        { term: { "span.name": q.operation } },
        { term: { "http.route": q.operation } },
      ]),
    );
  if (q.service !== undefined)
    out.push({ term: { "service.name": q.service } });
  return out;
}

/**
 * The filters of `q` as queries on log documents, when lines can meet them
 * all: as in the local store, a trace of lines has no error, operation or
 * span attribute, only its lines' services and customers. Undefined when
 * only spans can meet `q`.
 */
function lineFilters(q: SearchQuery): unknown[] | undefined {
  if (q.errorsOnly === true || q.operation !== undefined) return undefined;
  const out: unknown[] = [];
  for (const [key, value] of q.attributes ?? []) {
    if (key !== "service.name" && key !== "customer.id") return undefined;
    out.push({ term: { [key]: value } });
  }
  if (q.service !== undefined)
    out.push({ term: { "service.name": q.service } });
  return out;
}

function split(doc: Doc): { attributes: Doc; resource: Doc } {
  const attributes: Doc = {};
  const resource: Doc = {};
  for (const [k, v] of Object.entries(flatten(doc))) {
    if (DOCUMENT_FIELDS.has(k) || k.startsWith("data_stream.")) continue;
    if (RESOURCE_PREFIXES.some((p) => k.startsWith(p))) resource[k] = v;
    else attributes[FROM_ECS[k] ?? k] = v;
  }
  return { attributes, resource };
}

function str(doc: Doc, key: string): string {
  const v = flatten(doc)[key];
  return typeof v === "string" ? v : "";
}

function toSpan(doc: Doc): SpanRecord {
  const f = flatten(doc);
  const startUs = timeUs(f["@timestamp"]);
  const durationNs = Number(f["event.duration"] ?? 0);
  const { attributes, resource } = split(doc);
  const customer = f["customer.id"];
  if (typeof customer === "string") attributes["customer.id"] = customer;
  return {
    traceId: str(doc, "trace.id"),
    spanId: str(doc, "span.id"),
    parentSpanId: str(doc, "parent.id"),
    service: str(doc, "service.name") || "unknown_service",
    name: str(doc, "span.name"),
    kind: KIND[str(doc, "span.kind")] ?? 0,
    startUs,
    endUs: startUs + (Number.isFinite(durationNs) ? durationNs / 1000 : 0),
    statusCode: f["event.outcome"] === "failure" ? 2 : 0,
    statusMessage: str(doc, "span.status.message"),
    customer: typeof customer === "string" ? customer : null,
    attributes,
    events: [],
    links: [],
    resource,
    scope: "",
  };
}

function toLog(doc: Doc): LogRecord {
  const f = flatten(doc);
  const { attributes } = split(doc);
  const customer = f["customer.id"];
  return {
    timeUs: timeUs(f["@timestamp"]),
    traceId: str(doc, "trace.id"),
    spanId: str(doc, "span.id"),
    service: str(doc, "service.name") || "unknown_service",
    severityNumber: Number(f["event.severity"] ?? 0),
    severityText: str(doc, "log.level"),
    body: f["message"] ?? null,
    attributes,
    customer: typeof customer === "string" ? customer : null,
  };
}

/** A span's exception event, from the exporter's error document (`f` flattened). */
function toException(doc: Doc, f: Doc): SpanEvent {
  return {
    name: "exception",
    timeUs: timeUs(f["@timestamp"]),
    attributes: split(doc).attributes,
  };
}

export class ElasticsearchBackend implements TraceBackend {
  readonly name: string;
  readonly #base: string;
  readonly #headers: Record<string, string>;

  constructor(
    url: string,
    apiKey = process.env["THREADLINE_ELASTICSEARCH_API_KEY"],
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Error(`${JSON.stringify(printableUrl(url))} is not a URL`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new Error(
        `elasticsearch=${printableUrl(url)}: use http(s)://host:9200`,
      );
    this.#headers = { "content-type": "application/json" };
    const basic = takeUserInfo(u);
    if (apiKey) this.#headers["authorization"] = `ApiKey ${apiKey}`;
    else if (basic !== undefined) this.#headers["authorization"] = basic;
    this.#base = u.href.replace(/\/+$/, "");
    this.name = `elasticsearch ${u.origin}`;
  }

  async #post(path: string, body?: unknown): Promise<Doc> {
    const res = await reach(this.name, `${this.#base}/${path}`, {
      method: "POST",
      headers: this.#headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw await failure(res, this.name);
    return (await json(res, this.name)) as Doc;
  }

  /** A search of `index`, or of a point in time when `index` is undefined. */
  async #search(index: string | undefined, body: unknown): Promise<Doc> {
    const doc = await this.#post(
      index === undefined
        ? "_search"
        : `${index}/_search?ignore_unavailable=true&allow_no_indices=true`,
      body,
    );
    // A search that lost shards answers 200 with what it found: say so
    // rather than print a partial answer as the whole.
    const shards = doc["_shards"] as
      | {
          total?: number;
          failed?: number;
          failures?: Array<{ reason?: { type?: string } }>;
        }
      | undefined;
    if ((shards?.failed ?? 0) > 0)
      throw new Error(
        `${this.name}: ${shards!.failed} of ${shards!.total} shards of ${index ?? "a point in time"} failed (${shards!.failures?.[0]?.reason?.type ?? "unknown reason"}); try again`,
      );
    return doc;
  }

  /**
   * Every document of `index` that `query` matches, oldest first. One
   * request when they fit in a page; past that, they are read again from a
   * point in time, page after page, so that none is skipped or read twice
   * while the Collector writes (a trace is never shown with part of its
   * spans, nor its log lines cut off).
   */
  async #all(index: string, query: unknown): Promise<Doc[]> {
    type Hits = { hits: { hits: Array<{ _source: Doc; sort: unknown[] }> } };
    const first = (await this.#search(index, {
      size: PAGE,
      query,
      sort: [BY_TIME],
    })) as Hits;
    if (first.hits.hits.length < PAGE)
      return first.hits.hits.map((h) => h._source);
    let pit = (await this.#post(`${index}/_pit?keep_alive=1m`))["id"] as string;
    try {
      const docs: Doc[] = [];
      let after: unknown[] | undefined;
      for (;;) {
        const r = (await this.#search(undefined, {
          size: PAGE,
          query,
          pit: { id: pit, keep_alive: "1m" },
          sort: [BY_TIME, { _shard_doc: "asc" }],
          ...(after === undefined ? {} : { search_after: after }),
        })) as Hits & { pit_id?: string };
        pit = r.pit_id ?? pit;
        for (const h of r.hits.hits) docs.push(h._source);
        if (r.hits.hits.length < PAGE) return docs;
        after = r.hits.hits.at(-1)!.sort;
      }
    } finally {
      // Best effort: an unclosed point in time expires with its keep_alive.
      await reach(this.name, `${this.#base}/_pit`, {
        method: "DELETE",
        headers: this.#headers,
        body: JSON.stringify({ id: pit }),
      })
        .then((res) => res.body?.cancel())
        .catch(() => undefined);
    }
  }

  async #spansOf(traceIds: string[]): Promise<SpanRecord[]> {
    const spans: SpanRecord[] = [];
    for (let i = 0; i < traceIds.length; i += TRACES_PER_READ) {
      const docs = await this.#all(SPANS, {
        terms: { "trace.id": traceIds.slice(i, i + TRACES_PER_READ) },
      });
      for (const d of docs) spans.push(toSpan(d));
    }
    return spans;
  }

  /** The newest traces, up to `size`, with a document of `index` that `filter` matches, leaving out `seen`. */
  async #candidates(
    index: string,
    filter: unknown[],
    seen: string[],
    size: number,
  ): Promise<string[]> {
    const r = await this.#search(index, {
      size: 0,
      query: {
        bool: {
          filter,
          ...(seen.length > 0
            ? { must_not: [{ terms: { "trace.id": seen } }] }
            : {}),
        },
      },
      aggs: {
        traces: {
          // By their newest document, which is exact across shards: a shard
          // leaves a trace out only behind as many that are newer.
          terms: { field: "trace.id", size, order: { latest: "desc" } },
          aggs: { latest: { max: { field: "@timestamp" } } },
        },
      },
    });
    const buckets =
      (r["aggregations"] as { traces?: { buckets: Array<{ key: string }> } })
        ?.traces?.buckets ?? [];
    return buckets.map((b) => b.key);
  }

  /**
   * One bucket per trace of `traceIds` with documents in `index`, with the
   * sub-aggregations `aggs` of its documents.
   */
  async #perTrace<B>(
    index: string,
    traceIds: string[],
    aggs?: Record<string, unknown>,
  ): Promise<Array<B & { key: string }>> {
    const r = await this.#search(index, {
      size: 0,
      query: { terms: { "trace.id": traceIds } },
      aggs: {
        traces: {
          terms: { field: "trace.id", size: traceIds.length },
          ...(aggs === undefined ? {} : { aggs }),
        },
      },
    });
    return (
      (
        r["aggregations"] as {
          traces?: { buckets: Array<B & { key: string }> };
        }
      )?.traces?.buckets ?? []
    );
  }

  /**
   * Traces with a document of `index` in `filter`, newest first and leaving
   * out `exclude`, page after page of candidates until `take` has turned
   * `limit` of them into summaries (it is told how many are still wanted),
   * or no candidates are left. Also gives every candidate looked at.
   */
  async #collect(
    index: string,
    filter: unknown[],
    exclude: string[],
    limit: number,
    what: string,
    take: (page: string[], wanted: number) => Promise<TraceSummary[]>,
  ): Promise<{ found: TraceSummary[]; seen: string[] }> {
    const found: TraceSummary[] = [];
    const seen: string[] = [];
    for (let size = limit; found.length < limit;) {
      if (seen.length >= MAX_CANDIDATES)
        throw new Error(
          `${this.name}: only ${found.length} of the newest ${seen.length} ${what} in the window match; search a shorter time (--since, --from, --to) or add a filter`,
        );
      const page = await this.#candidates(
        index,
        filter,
        [...exclude, ...seen],
        size,
      );
      seen.push(...page);
      if (page.length > 0)
        found.push(...(await take(page, limit - found.length)));
      if (page.length < size) break;
      size = Math.min(size * 2, TRACES_PER_READ);
    }
    found.sort((a, b) => b.startUs - a.startUs);
    found.length = Math.min(found.length, limit);
    return { found, seen };
  }

  /**
   * Those of `traceIds` that have a span for every one of `filters` and
   * that may start in the window and last `q.minDurationUs`, judged from
   * all their spans without reading them.
   */
  async #meeting(
    q: SearchQuery,
    traceIds: string[],
    filters: unknown[],
    fromUs: number,
    toUs: number,
  ): Promise<string[]> {
    type Value = { value: number | null };
    const buckets = await this.#perTrace<
      { start: Value; lastStart: Value; longest: Value } & Record<
        string,
        unknown
      >
    >(SPANS, traceIds, {
      start: { min: { field: "@timestamp" } },
      lastStart: { max: { field: "@timestamp" } },
      longest: { max: { field: "event.duration" } },
      ...filterCounts(filters),
    });
    const kept = new Set<string>();
    for (const b of buckets) {
      if (!meetsAll(b, filters)) continue;
      const startUs = (b.start.value ?? 0) * 1000;
      if (
        startUs + AGGREGATE_SLACK_US < fromUs ||
        startUs - AGGREGATE_SLACK_US > toUs
      )
        continue;
      // The trace ends at most its longest span after its last span starts.
      const longestUs =
        ((b.lastStart.value ?? 0) - (b.start.value ?? 0)) * 1000 +
        AGGREGATE_SLACK_US +
        (b.longest.value ?? 0) / 1000;
      if (q.minDurationUs !== undefined && longestUs < q.minDurationUs)
        continue;
      kept.add(b.key);
    }
    return traceIds.filter((id) => kept.has(id));
  }

  async search(q: SearchQuery): Promise<TraceSummary[]> {
    const { fromUs, toUs } = window(q);
    const limit = q.limit ?? DEFAULT_LIMIT;
    // Not every span carries the customer id (one started before it was
    // known, or in a service that does not take it from its caller), so a
    // customer's traces are chosen by the customer alone and every other
    // filter is judged over the whole trace; without a customer, one span
    // meeting the first filter is enough to choose a trace.
    const filters = spanFilters(q);
    const [first, ...rest] =
      q.customer === undefined ? filters : [undefined, ...filters];
    const filter: unknown[] = [inWindow(fromUs, toUs)];
    if (q.customer !== undefined)
      filter.push({ term: { "customer.id": q.customer } });
    if (first !== undefined) filter.push(first);
    const judged = rest.length > 0 || q.minDurationUs !== undefined;
    const { found, seen } = await this.#collect(
      SPANS,
      filter,
      [],
      limit,
      "traces",
      async (page, wanted) => {
        const kept = judged
          ? await this.#meeting(q, page, rest, fromUs, toUs)
          : page;
        // Read no more traces than are still wanted, newest first.
        const out: TraceSummary[] = [];
        for (let i = 0; i < kept.length && out.length < wanted;) {
          const batch = kept.slice(i, i + wanted - out.length);
          i += batch.length;
          out.push(...answer(q, byTrace(await this.#spansOf(batch))));
        }
        return out;
      },
    );
    // Traces of lines alone are looked for by their customer: without one,
    // the lines of every request the gateway did not keep would crowd out
    // the traces it kept. One that starts before the oldest trace of a
    // full page cannot make the page.
    if (q.customer === undefined) return found;
    const oldest = found.length === limit ? found.at(-1)!.startUs : fromUs;
    const lines = await this.#lineTraces(q, q.customer, oldest, toUs, seen);
    return [...found, ...lines]
      .sort((a, b) => b.startUs - a.startUs)
      .slice(0, limit);
  }

  /**
   * The newest traces of `customer`, up to the limit, that have log lines
   * and no span, starting from `fromUs` to `toUs`, leaving out `withSpans`
   * (traces known to have spans), as the local store summarises them.
   */
  async #lineTraces(
    q: SearchQuery,
    customer: string,
    fromUs: number,
    toUs: number,
    withSpans: string[],
  ): Promise<TraceSummary[]> {
    const filters = lineFilters(q);
    if (filters === undefined) return [];
    const { found } = await this.#collect(
      LOGS,
      [inWindow(fromUs, toUs), { term: { "customer.id": customer } }],
      withSpans,
      q.limit ?? DEFAULT_LIMIT,
      "traces of log lines",
      (page) => this.#summariseLines(q, customer, page, filters, fromUs, toUs),
    );
    return found;
  }

  /**
   * The summaries of those of `traceIds` that have no span, from all their
   * lines, when the lines meet `filters` and the trace starts in the window
   * and lasts `q.minDurationUs` (a trace of lines lasts from its first line
   * to its last, as in the local store).
   */
  async #summariseLines(
    q: SearchQuery,
    customer: string,
    traceIds: string[],
    filters: unknown[],
    fromUs: number,
    toUs: number,
  ): Promise<TraceSummary[]> {
    type Hit = { hits: { hits: Array<{ _source: Doc }> } };
    const [lines, spans] = await Promise.all([
      this.#perTrace<
        {
          first: Hit;
          last: Hit;
          services: { buckets: Array<{ key: string }> };
        } & Record<string, unknown>
      >(LOGS, traceIds, {
        first: {
          top_hits: {
            size: 1,
            sort: [BY_TIME],
            _source: ["@timestamp", "service.name"],
          },
        },
        last: {
          top_hits: { size: 1, sort: [NEWEST], _source: ["@timestamp"] },
        },
        services: {
          terms: {
            field: "service.name",
            size: MAX_LINE_SERVICES,
            missing: "unknown_service",
          },
        },
        ...filterCounts(filters),
      }),
      this.#perTrace<object>(SPANS, traceIds),
    ]);
    const hasSpans = new Set(spans.map((b) => b.key));
    const out: TraceSummary[] = [];
    for (const b of lines) {
      if (hasSpans.has(b.key) || !meetsAll(b, filters)) continue;
      const first = b.first.hits.hits[0]?._source;
      const last = b.last.hits.hits[0]?._source;
      if (first === undefined || last === undefined) continue;
      const startUs = timeUs(flatten(first)["@timestamp"]);
      const lastUs = timeUs(flatten(last)["@timestamp"]);
      const durationUs = lastUs - startUs;
      if (startUs < fromUs || startUs > toUs) continue;
      if (q.minDurationUs !== undefined && durationUs < q.minDurationUs)
        continue;
      out.push({
        traceId: b.key,
        rootService: str(first, "service.name") || "unknown_service",
        rootName: "",
        customer,
        startUs,
        durationUs,
        spanCount: 0,
        errorCount: 0,
        services: b.services.buckets.map((s) => s.key).sort(),
        ...linesOnly(lastUs),
      });
    }
    return out;
  }

  async getTrace(traceId: string): Promise<TraceDetail | undefined> {
    const [spans, logs] = await Promise.all([
      this.#spansOf([traceId]),
      this.#all(LOGS, { term: { "trace.id": traceId } }),
    ]);
    // Span events arrive as log documents of their own: they go back onto
    // their spans. An exception is an error document (in logs-apm.error-*)
    // that names its span as parent.id and has no span.id; any other event
    // has event.kind "event", the span's span.id and its name as message.
    const bySpan = new Map(spans.map((sp) => [sp.spanId, sp]));
    const lines: LogRecord[] = [];
    for (const doc of logs) {
      const f = flatten(doc);
      const failed =
        f["span.id"] === undefined
          ? bySpan.get(f["parent.id"] as string)
          : undefined;
      const owner =
        f["event.kind"] === "event"
          ? bySpan.get(f["span.id"] as string)
          : undefined;
      if (failed !== undefined) failed.events.push(toException(doc, f));
      else if (owner !== undefined) {
        const { attributes } = split(doc);
        delete attributes["event.kind"];
        owner.events.push({
          name: str(doc, "message"),
          timeUs: timeUs(f["@timestamp"]),
          attributes,
        });
      } else lines.push(toLog(doc));
    }
    // A trace of lines alone is one whose spans are not here: the gateway
    // keeps every line but only a share of traces, and holds a kept trace's
    // spans until it decides. Its lines are what there is to see, as the
    // local store shows a request still running; once its spans can no
    // longer come, it is shown as one the gateway did not keep.
    if (spans.length === 0 && lines.length === 0) return undefined;
    const notKept =
      spans.length === 0 && linesOnly(lines.at(-1)!.timeUs).spansNotKept;
    return {
      traceId,
      spans: byTrace(spans).get(traceId) ?? [],
      logs: lines,
      ...(notKept ? { spansNotKept: true } : {}),
    };
  }

  async close(): Promise<void> {}
}
