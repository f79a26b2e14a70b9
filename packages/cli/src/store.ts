// The local store: SQLite through node:sqlite (no native dependency), in a
// file that survives restarts or in memory.
//
// Layout, chosen for the searches the viewer runs:
// - spans, clustered by (trace_id, span_id): a trace is one range read.
// - traces, one summary row per trace kept up to date on ingest (root,
//   customer, services, counts), indexed by start time; a sampled trace
//   whose spans have not come yet is summarised from its log lines.
// - trace_tags, (key, value) pairs seen anywhere in a trace (service,
//   span names, routes, short span and resource attribute values, every
//   span's customer.id), so "customer C", "any attribute key=value" and
//   "touched service S" are index range scans whatever the store's size.
//   Attributes that are not tagged (long or high-cardinality values) are
//   still searchable by scanning span attributes within the time range.
// - logs, indexed by trace and by time; a record sent again (OTLP delivery
//   is at least once) is stored once, by a digest of all its fields.
//
// Writes are batched: ingest() buffers, flush() writes one transaction and
// reports which traces changed (the live view's feed). Per batch the spans of
// a trace are folded into one summary update and one set of tags.
// The store is bounded: prune() drops the oldest traces and logs beyond the
// age limit, and beyond the size limit, oldest first.
import { hash } from "node:crypto";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  MAX_WATCHED,
  WATCH_DEBUG,
  WATCH_TRACE,
  type WatchEntry,
} from "@threadline/core";
import type {
  DecodedLogRecord,
  DecodedResourceLogs,
  DecodedMetric,
  DecodedResourceMetrics,
  DecodedResourceSpans,
  DecodedSpan,
} from "@threadline/otlp";
import { isPlausibleTimeUs } from "@threadline/otlp";
import { MAX_LIMIT } from "./query.ts";
import {
  jsonValue,
  serviceOf,
  type LogRecord,
  type SearchPage,
  type SearchQuery,
  type SpanRecord,
  type TraceBackend,
  type TraceDetail,
  type TraceSummary,
} from "./model.ts";

/** How long a write waits for another process writing the same file. */
const BUSY_TIMEOUT_MS = 5000;

export interface StoreOptions {
  /** File path, or `:memory:`. */
  path: string;
  /** Largest database size before the oldest data is pruned. @default 1 GiB */
  maxBytes?: number;
  /** Oldest data kept, in milliseconds. @default 7 days */
  maxAgeMs?: number;
  /** Open an existing store for reading only (the CLI). */
  readonly?: boolean;
  /** How long a write waits for another process writing the file. @default 5000 */
  busyTimeoutMs?: number;
}

/** The metrics the service panels draw; others are accepted, not kept. */
const PANEL_METRICS: ReadonlySet<string> = new Set([
  "http.server.request.duration",
  "nodejs.eventloop.delay",
  "nodejs.eventloop.utilization",
  "process.memory.usage",
  "v8js.memory.heap.used",
  "process.cpu.time",
  "threadline.health.status",
]);

/** Series of one delta metric per service whose totals are kept (the rest are not drawn). */
const MAX_DELTA_SERIES = 2000;

interface PendingMetricPoint {
  service: string;
  instance: string;
  name: string;
  timeMs: number;
  attributes: string;
  value: number | null;
  count: number | null;
  sum: number | null;
}

// 2: logs.digest, unique, so a record sent again is stored once.
// 3: metric_points.instance and logs.instance (alarm events), so the
// instances of one service are drawn and alarmed apart.
const SCHEMA_VERSION = "3";
const MAX_TAG_VALUE = 128;
// Values of these keys are unique per span or meaningless to search by.
const UNTAGGED = new Set([
  "network.peer.port",
  "server.port",
  "client.port",
  "url.full",
  "url.query",
  "user_agent.original",
  "db.query.text",
  "messaging.message.body.size",
  "messaging.rabbitmq.message.delivery_tag",
  "process.pid",
  "service.instance.id",
]);

interface TraceRow {
  trace_id: string;
  start_us: number;
  end_us: number;
  root_service: string;
  root_name: string;
  root_known: number;
  customer: string | null;
  span_count: number;
  error_count: number;
  services: string;
}

/**
 * The summary of a trace nothing of which is stored yet: what is stored
 * of it (spans, or log lines) fills it in.
 */
function newTrace(traceId: string): TraceRow {
  return {
    trace_id: traceId,
    start_us: Number.MAX_SAFE_INTEGER,
    end_us: 0,
    root_service: "",
    root_name: "",
    root_known: 0,
    customer: null,
    span_count: 0,
    error_count: 0,
    services: "",
  };
}

/** What a batch's sampled log lines say of their trace. */
interface LineSummary {
  startUs: number;
  endUs: number;
  /** The service of the earliest line. */
  first: string;
  services: Set<string>;
  customers: Set<string>;
}

export interface RowCounts {
  traces: number;
  spans: number;
  logs: number;
}

/** Summaries of traces whose data changed in a flush, for the live view. */
/**
 * A trace a flush changed, as the live view gets it: `logsAdded` when log
 * lines of it were stored (they often arrive after its spans).
 */
export type ChangedTrace = TraceSummary & { logsAdded?: number };
export type ChangedTraces = ChangedTrace[];

function json(v: unknown): string {
  return JSON.stringify(v ?? null, jsonValue);
}

function parse<T>(s: unknown, fallback: T): T {
  if (typeof s !== "string") return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}

function toSummary(r: TraceRow): TraceSummary {
  return {
    traceId: r.trace_id,
    rootService: r.root_service,
    rootName: r.root_name,
    customer: r.customer,
    startUs: r.start_us,
    durationUs: r.end_us - r.start_us,
    spanCount: r.span_count,
    errorCount: r.error_count,
    services: r.services === "" ? [] : r.services.split("\n"),
    ...(r.span_count === 0 ? { inProgress: true } : {}),
  };
}

/** What one prune round deleted: traces, log lines, metric points, rows in all. */
interface Pruned {
  traces: number;
  logs: number;
  metrics: number;
  rows: number;
}

interface PendingLog {
  log: DecodedLogRecord;
  service: string;
  instance: string;
  /** When it was received: its time when it carries none. */
  receivedUs: number;
}

/** The resource's `service.instance.id`, "" when it has none. */
function instanceOf(resource: Record<string, unknown>): string {
  const id = resource["service.instance.id"];
  return typeof id === "string" ? id : "";
}

interface PendingSpan {
  span: DecodedSpan;
  service: string;
  resource: string;
  /** The resource's tags, one array per resource shared by its spans. */
  resourceTags: readonly string[];
  scope: string;
}

/** `key\0value` for a value worth indexing, else undefined. */
function tagOf(key: string, v: unknown): string | undefined {
  if (UNTAGGED.has(key) || key.startsWith("db.query.parameter."))
    return undefined;
  if (
    (typeof v === "string" && v.length <= MAX_TAG_VALUE) ||
    typeof v === "number" ||
    typeof v === "bigint" ||
    typeof v === "boolean"
  )
    return `${key}\u0000${String(v)}`;
  return undefined;
}

interface MetricRow {
  instance: string;
  name: string;
  time_ms: number;
  attributes: string;
  value: number | null;
  count: number | null;
  sum: number | null;
}

/** Requests an instance served over one interval between its exports. */
interface RequestDelta {
  count: number;
  errors: number;
  sum: number;
  seconds: number;
}

/** A series' value at `t`, standing for the `spanMs` before it (0: not known). */
interface Reading<V> {
  t: number;
  spanMs: number;
  v: V;
}

/**
 * Series, each in time order, read together at every time any of them has
 * a reading: each series' latest reading by then. A series whose last
 * reading is more than twice its interval old is left out from there on:
 * its instance stopped, or stopped sending it. One whose interval is not
 * known yet (a single reading) is given the longest the others have.
 */
function latestOf<V>(series: Array<Array<Reading<V>>>): Array<[number, V[]]> {
  const times = [...new Set(series.flatMap((s) => s.map((r) => r.t)))].sort(
    (a, b) => a - b,
  );
  let longest = 0;
  for (const s of series) longest = Math.max(longest, s.at(-1)?.spanMs ?? 0);
  const fallback = longest > 0 ? longest : Infinity;
  const at = series.map(() => -1);
  return times.map((t) => {
    const current: V[] = [];
    series.forEach((s, i) => {
      let k = at[i]!;
      while (k + 1 < s.length && s[k + 1]!.t <= t) k++;
      at[i] = k;
      const r = s[k];
      if (r === undefined) return;
      const interval = r.spanMs > 0 ? r.spanMs : fallback;
      if (k === s.length - 1 && t - r.t > 2 * interval) return;
      current.push(r.v);
    });
    return [t, current];
  });
}

export class Store implements TraceBackend {
  readonly name = "local";
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #busyTimeoutMs: number;
  #spans: PendingSpan[] = [];
  #logs: PendingLog[] = [];
  #metrics: PendingMetricPoint[] = [];
  /**
   * Running totals of the delta metrics services send, by service and
   * instance, metric and attributes: the panels read cumulative series, so
   * each export is stored as the totals of every series seen so far.
   */
  readonly #deltaTotals = new Map<
    string,
    Map<string, Map<string, PendingMetricPoint>>
  >();
  readonly #stmt: Record<string, StatementSync> = {};
  #closed = false;
  /**
   * Rows in traces, spans and logs, counted once and then moved by this
   * store's own writes and prunes: counting a store of a million spans
   * holds the event loop for a good part of a second, and every open viewer
   * asks every few seconds.
   */
  #counts: RowCounts | undefined;
  /** The file's data_version when #counts was taken. */
  #countedVersion = -1;

  constructor(options: StoreOptions) {
    this.path = options.path;
    this.#maxBytes = options.maxBytes ?? 1024 ** 3;
    this.#maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3600 * 1000;
    this.#busyTimeoutMs = Math.max(
      0,
      Math.trunc(options.busyTimeoutMs ?? BUSY_TIMEOUT_MS),
    );
    this.#db = new DatabaseSync(options.path, {
      readOnly: options.readonly === true,
    });
    if (options.readonly === true) {
      this.#db.exec("PRAGMA query_only = ON");
      // A file that is not a store says so now, not at the first search.
      this.#db.prepare("SELECT 1 FROM traces LIMIT 1").get();
      return;
    }
    // The write-ahead log is cut back to 4 MiB (what an automatic
    // checkpoint lets it reach) after a burst made it larger; a prune
    // empties it.
    this.#db.exec(`
      PRAGMA busy_timeout = ${this.#busyTimeoutMs};
      PRAGMA auto_vacuum = INCREMENTAL;
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA journal_size_limit = 4194304;
      PRAGMA temp_store = MEMORY;
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL, service TEXT NOT NULL,
        name TEXT NOT NULL, kind INTEGER NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
        status_code INTEGER NOT NULL, status_message TEXT NOT NULL, customer TEXT,
        attributes TEXT NOT NULL, events TEXT, links TEXT, resource TEXT NOT NULL, scope TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS traces (
        trace_id TEXT PRIMARY KEY, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
        root_service TEXT NOT NULL, root_name TEXT NOT NULL, root_known INTEGER NOT NULL,
        customer TEXT, span_count INTEGER NOT NULL, error_count INTEGER NOT NULL, services TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_us);
      CREATE INDEX IF NOT EXISTS traces_by_end ON traces (end_us);
      DROP INDEX IF EXISTS traces_by_customer;
      CREATE TABLE IF NOT EXISTS trace_tags (
        key TEXT NOT NULL, value TEXT NOT NULL, start_us INTEGER NOT NULL, trace_id TEXT NOT NULL,
        PRIMARY KEY (key, value, start_us, trace_id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS trace_tags_by_start ON trace_tags (start_us);
      CREATE TABLE IF NOT EXISTS logs (
        id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        service TEXT NOT NULL, severity_number INTEGER NOT NULL, severity_text TEXT NOT NULL,
        body TEXT NOT NULL, attributes TEXT NOT NULL, customer TEXT, digest BLOB, instance TEXT);
      CREATE INDEX IF NOT EXISTS logs_by_trace ON logs (trace_id) WHERE trace_id <> '';
      CREATE INDEX IF NOT EXISTS logs_by_time ON logs (time_us);
      CREATE TABLE IF NOT EXISTS metric_points (
        service TEXT NOT NULL, name TEXT NOT NULL, time_ms INTEGER NOT NULL, attributes TEXT NOT NULL,
        value REAL, count REAL, sum REAL, instance TEXT NOT NULL DEFAULT '');
      CREATE INDEX IF NOT EXISTS metric_points_by_service ON metric_points (service, name, time_ms);
      CREATE TABLE IF NOT EXISTS watch (
        customer TEXT PRIMARY KEY, until_ms INTEGER NOT NULL, level INTEGER NOT NULL) WITHOUT ROWID;
    `);
    const version = this.#db
      .prepare("SELECT value FROM meta WHERE key = 'schema'")
      .get() as { value?: string } | undefined;
    if (version?.value === undefined)
      this.#db
        .prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)")
        .run(SCHEMA_VERSION);
    else if (version.value === "1" || version.value === "2") this.#upgrade();
    else if (version.value !== SCHEMA_VERSION)
      throw new Error(
        `the store at ${options.path} has schema ${version.value}; this version reads ${SCHEMA_VERSION}`,
      );
    this.#db.exec(`
      CREATE UNIQUE INDEX IF NOT EXISTS logs_once ON logs (digest) WHERE digest IS NOT NULL;
      CREATE INDEX IF NOT EXISTS metric_points_by_instance ON metric_points (service, name, instance, time_ms);
    `);
    this.counts();
  }

  /**
   * Schema 1 had no log digest. Its log rows keep none (they are not
   * deduplicated; a digest needs the observed time, which was not kept);
   * records written from now on are stored once. Schemas 1 and 2 kept no
   * instance: their metric points read as one instance of their service,
   * and their alarm events as one instance's. Under the write lock, so two
   * `threadline dev` opening the same old file upgrade it once.
   */
  #upgrade(): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const v = this.#db
        .prepare("SELECT value FROM meta WHERE key = 'schema'")
        .get() as { value: string };
      if (v.value === "1" || v.value === "2") {
        // A table the old file lacked was just made with every column.
        const has = (table: string, column: string) =>
          (
            this.#db.prepare(`PRAGMA table_info(${table})`).all() as Array<{
              name: string;
            }>
          ).some((c) => c.name === column);
        if (!has("logs", "digest"))
          this.#db.exec("ALTER TABLE logs ADD COLUMN digest BLOB");
        if (!has("logs", "instance"))
          this.#db.exec("ALTER TABLE logs ADD COLUMN instance TEXT");
        if (!has("metric_points", "instance"))
          this.#db.exec(
            "ALTER TABLE metric_points ADD COLUMN instance TEXT NOT NULL DEFAULT ''",
          );
        this.#db
          .prepare("UPDATE meta SET value = ? WHERE key = 'schema'")
          .run(SCHEMA_VERSION);
      }
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  #s(sql: string): StatementSync {
    let s = this.#stmt[sql];
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#stmt[sql] = s;
    }
    return s;
  }

  /** Spans and log records buffered, not yet written. */
  get pending(): number {
    return this.#spans.length + this.#logs.length;
  }

  /** Buffers decoded spans for the next flush; returns how many. */
  ingestSpans(batch: DecodedResourceSpans[]): number {
    let n = 0;
    for (const rs of batch) {
      const service = serviceOf(rs.resource);
      const resource = json(rs.resource);
      // A service's own attributes (deployment.environment.name,
      // service.version) are searchable like its spans'.
      const resourceTags: string[] = [];
      for (const key in rs.resource) {
        const tag = tagOf(key, rs.resource[key]);
        if (tag !== undefined) resourceTags.push(tag);
      }
      for (const group of rs.scopes) {
        const scope = group.scope.name;
        for (const span of group.spans) {
          this.#spans.push({ span, service, resource, resourceTags, scope });
          n++;
        }
      }
    }
    return n;
  }

  /** Buffers decoded log records for the next flush; returns how many. */
  ingestLogs(batch: DecodedResourceLogs[]): number {
    let n = 0;
    // A record with neither time nor observed time is dated by when it was
    // received, as OTLP has the observed time set where a record is first
    // seen, not 1970: it is found by time, and not pruned at once. Its
    // digest keeps the times it came with, so a resend is still stored once.
    const receivedUs = Date.now() * 1000;
    for (const rl of batch) {
      const service = serviceOf(rl.resource);
      const instance = instanceOf(rl.resource);
      for (const group of rl.scopes) {
        for (const log of group.logs) {
          this.#logs.push({ log, service, instance, receivedUs });
          n++;
        }
      }
    }
    return n;
  }

  /**
   * Buffers the metric points the service panels draw (requests, runtime,
   * health); returns how many. Other metrics are accepted and not kept.
   */
  ingestMetrics(batch: DecodedResourceMetrics[]): number {
    let n = 0;
    const nowMs = Date.now();
    for (const rm of batch) {
      const service = serviceOf(rm.resource);
      const instance = instanceOf(rm.resource);
      /** The delta metrics this export carried, and when it was made. */
      const carried = new Set<string>();
      let exportMs = 0;
      for (const group of rm.scopes)
        for (const m of group.metrics) {
          for (const p of m.points) {
            // A time that cannot be right (unset, in seconds, past 2^53 µs)
            // is the time it came: a panel draws it now, and reads it back.
            if (!isPlausibleTimeUs(p.timeMs * 1000, nowMs * 1000))
              p.timeMs = nowMs;
            exportMs = Math.max(exportMs, Math.round(p.timeMs));
          }
          if (!PANEL_METRICS.has(m.name)) continue;
          if (m.delta) {
            n += this.#addDelta(service, instance, m);
            carried.add(m.name);
            continue;
          }
          for (const p of m.points) {
            this.#metrics.push({
              service,
              instance,
              name: m.name,
              timeMs: Math.round(p.timeMs),
              attributes: json(p.attributes),
              value: p.value ?? null,
              count: p.count ?? null,
              sum: p.sum ?? null,
            });
            n++;
          }
        }
      // A delta metric with nothing new is left out of an export; its
      // totals stand at the export's time all the same, as a cumulative
      // export would have them, so a quiet interval reads as quiet.
      const known = this.#deltaTotals.get(`${service}\u0000${instance}`);
      if (known !== undefined && exportMs > 0)
        for (const [name, totals] of known)
          if (!carried.has(name)) this.#bufferTotals(totals, exportMs);
    }
    return n;
  }

  /**
   * Adds one delta export of a metric to its running totals and buffers
   * every total at the export's time, series that did not move included.
   * The totals start at zero when the viewer starts, which the panels read
   * as a service restart.
   */
  #addDelta(service: string, instance: string, m: DecodedMetric): number {
    if (m.points.length === 0) return 0;
    const key = `${service}\u0000${instance}`;
    let byName = this.#deltaTotals.get(key);
    if (byName === undefined) this.#deltaTotals.set(key, (byName = new Map()));
    let totals = byName.get(m.name);
    if (totals === undefined) byName.set(m.name, (totals = new Map()));
    let timeMs = 0;
    for (const p of m.points) {
      timeMs = Math.max(timeMs, Math.round(p.timeMs));
      const attributes = json(p.attributes);
      let t = totals.get(attributes);
      if (t === undefined) {
        if (totals.size >= MAX_DELTA_SERIES) continue;
        t = {
          service,
          instance,
          name: m.name,
          timeMs: 0,
          attributes,
          value: p.value === undefined ? null : 0,
          count: p.count === undefined ? null : 0,
          sum: p.sum === undefined ? null : 0,
        };
        totals.set(attributes, t);
      }
      if (t.value !== null) t.value += p.value ?? 0;
      if (t.count !== null) t.count += p.count ?? 0;
      if (t.sum !== null) t.sum += p.sum ?? 0;
    }
    this.#bufferTotals(totals, timeMs);
    return m.points.length;
  }

  #bufferTotals(totals: Map<string, PendingMetricPoint>, timeMs: number): void {
    for (const t of totals.values()) this.#metrics.push({ ...t, timeMs });
  }

  /** Writes everything buffered in one transaction; returns the traces that changed. */
  flush(): ChangedTraces {
    if (
      this.#closed ||
      (this.#spans.length === 0 &&
        this.#logs.length === 0 &&
        this.#metrics.length === 0)
    )
      return [];
    const spans = this.#spans;
    const logs = this.#logs;
    const metrics = this.#metrics;
    this.#spans = [];
    this.#logs = [];
    this.#metrics = [];
    const changed: ChangedTraces = [];
    const added: RowCounts = { traces: 0, spans: 0, logs: 0 };
    // IMMEDIATE: the write lock is taken (waiting up to the busy timeout
    // for another writer of the same file) before anything is read.
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      this.#putBack(spans, logs, metrics, err);
      throw err;
    }
    try {
      this.#writeSpans(spans, changed, added);
      this.#writeLogs(logs, changed, added);
      const insert = this.#s(
        "INSERT INTO metric_points (service, instance, name, time_ms, attributes, value, count, sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      );
      for (const m of metrics)
        insert.run(
          m.service,
          m.instance,
          m.name,
          m.timeMs,
          m.attributes,
          m.value,
          m.count,
          m.sum,
        );
      this.#db.exec("COMMIT");
      this.#addCounts(added, 1);
    } catch (err) {
      this.#db.exec("ROLLBACK");
      this.#putBack(spans, logs, metrics, err);
      throw err;
    }
    return changed;
  }

  /**
   * A write that failed because another process held the file is tried
   * again with the next flush, not lost; anything else would fail again.
   */
  #putBack(
    spans: PendingSpan[],
    logs: PendingLog[],
    metrics: PendingMetricPoint[],
    err: unknown,
  ): void {
    if (!heldByAnother(err)) return;
    this.#spans = spans.concat(this.#spans);
    this.#logs = logs.concat(this.#logs);
    this.#metrics = metrics.concat(this.#metrics);
  }

  #writeSpans(
    spans: PendingSpan[],
    changed: ChangedTraces,
    added: RowCounts,
  ): void {
    // A span sent again (OTLP delivery is at least once) is stored once and
    // counted once.
    const insert = this.#s(
      "INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const byTrace = new Map<
      string,
      {
        spans: PendingSpan[];
        tags: Set<string>;
        resources: Set<readonly string[]>;
      }
    >();
    for (const p of spans) {
      const s = p.span;
      const customer =
        typeof s.attributes["customer.id"] === "string"
          ? s.attributes["customer.id"]
          : null;
      const stored = insert.run(
        s.traceId,
        s.spanId,
        s.parentSpanId,
        p.service,
        s.name,
        s.kind,
        s.startUs,
        s.endUs,
        s.statusCode,
        s.statusMessage,
        customer,
        json(s.attributes),
        s.events.length > 0 ? json(s.events) : null,
        s.links.length > 0 ? json(s.links) : null,
        p.resource,
        p.scope,
      );
      if (Number(stored.changes) === 0) continue;
      added.spans++;
      let t = byTrace.get(s.traceId);
      if (t === undefined) {
        t = { spans: [], tags: new Set(), resources: new Set() };
        byTrace.set(s.traceId, t);
      }
      t.spans.push(p);
      t.tags.add(`service.name\u0000${p.service}`);
      t.tags.add(`span.name\u0000${s.name}`);
      for (const key in s.attributes) {
        const tag = tagOf(key, s.attributes[key]);
        if (tag !== undefined) t.tags.add(tag);
      }
      if (!t.resources.has(p.resourceTags)) {
        t.resources.add(p.resourceTags);
        for (const tag of p.resourceTags) t.tags.add(tag);
      }
    }
    const read = this.#s("SELECT * FROM traces WHERE trace_id = ?");
    const tag = this.#s("INSERT OR IGNORE INTO trace_tags VALUES (?, ?, ?, ?)");
    for (const [traceId, t] of byTrace) {
      let stored = read.get(traceId) as TraceRow | undefined;
      // A span joining a trace already stored replaces its row, not adds one.
      if (stored === undefined) added.traces++;
      else if (stored.span_count === 0) {
        // The trace so far was made of its log lines: its spans summarise
        // it from now on, and find it, as they do a trace whose lines came
        // after them.
        this.#s(
          "DELETE FROM trace_tags WHERE start_us = ? AND trace_id = ?",
        ).run(stored.start_us, traceId);
        stored = undefined;
      }
      const row = stored ?? newTrace(traceId);
      const oldStart = row.start_us;
      const services = new Set(
        row.services === "" ? [] : row.services.split("\n"),
      );
      for (const p of t.spans) {
        const s = p.span;
        row.span_count++;
        if (s.statusCode === 2) row.error_count++;
        if (s.endUs > row.end_us) row.end_us = s.endUs;
        const isRoot = s.parentSpanId === "";
        if (isRoot || (row.root_known === 0 && s.startUs < row.start_us)) {
          row.root_service = p.service;
          row.root_name = s.name;
          if (isRoot) row.root_known = 1;
        }
        if (s.startUs < row.start_us) row.start_us = s.startUs;
        if (
          row.customer === null &&
          typeof s.attributes["customer.id"] === "string"
        )
          row.customer = s.attributes["customer.id"];
        services.add(p.service);
      }
      row.services = [...services].sort().join("\n");
      this.#putTrace(row);
      if (oldStart !== Number.MAX_SAFE_INTEGER)
        this.#retag(traceId, oldStart, row.start_us);
      for (const kv of t.tags) {
        const i = kv.indexOf("\u0000");
        tag.run(kv.slice(0, i), kv.slice(i + 1), row.start_us, traceId);
      }
      changed.push(toSummary(row));
    }
  }

  #writeLogs(
    logs: PendingLog[],
    changed: ChangedTraces,
    counts: RowCounts,
  ): void {
    if (logs.length === 0) return;
    const added = new Map<string, number>();
    /** What this batch's sampled lines say of their traces. */
    const seen = new Map<string, LineSummary>();
    // A record sent again (OTLP delivery is at least once) has the same
    // digest and is stored once. The observed time is in it, so the same
    // line written twice in one millisecond (pino's resolution) is kept twice.
    const insert = this.#s(
      "INSERT OR IGNORE INTO logs (time_us, trace_id, span_id, service, severity_number, severity_text, body, attributes, customer, digest, instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    for (const { log, service, instance, receivedUs } of logs) {
      // Either time is optional, and one that cannot be right (before
      // 2000, a day ahead, past 2^53: SQLite would keep it, and each read
      // of it throw) counts as unset: the line is filed by the other, or
      // by its arrival.
      const timeUs =
        [log.timeUs, log.observedUs].find((us) =>
          isPlausibleTimeUs(us, receivedUs),
        ) ?? receivedUs;
      const customer =
        typeof log.attributes["customer.id"] === "string"
          ? log.attributes["customer.id"]
          : null;
      const body = json(log.body);
      const attributes = json(log.attributes);
      // JSON text holds no raw NUL; the other strings are length-prefixed.
      const digest = hash(
        "sha256",
        `${log.timeUs}\0${log.observedUs}\0${log.traceId}\0${log.spanId}\0${log.severityNumber}\0${service.length}\0${service}${log.severityText.length}\0${log.severityText}${body}\0${attributes}`,
        "buffer",
      ).subarray(0, 16);
      const stored = insert.run(
        timeUs,
        log.traceId,
        log.spanId,
        service,
        log.severityNumber,
        log.severityText,
        body,
        attributes,
        customer,
        digest,
        // Alarm events alone keep their instance: a raise is cleared by the
        // same instance's clear. Other lines do without the extra bytes.
        log.attributes["alarm.name"] === undefined ? null : instance,
      );
      if (Number(stored.changes) === 0) continue;
      counts.logs++;
      if (log.traceId === "") continue;
      added.set(log.traceId, (added.get(log.traceId) ?? 0) + 1);
      // Only a sampled request's spans are coming: an unsampled one's lines
      // carry its trace id too, and would each make a trace that never fills.
      if ((log.flags & 1) === 0) continue;
      const t = seen.get(log.traceId);
      if (t === undefined)
        seen.set(log.traceId, {
          startUs: timeUs,
          endUs: timeUs,
          first: service,
          services: new Set([service]),
          customers: new Set(customer === null ? [] : [customer]),
        });
      else {
        if (timeUs < t.startUs) {
          t.startUs = timeUs;
          t.first = service;
        }
        if (timeUs > t.endUs) t.endUs = timeUs;
        t.services.add(service);
        if (customer !== null) t.customers.add(customer);
      }
    }
    // A trace whose lines came, even without spans in this batch, changed:
    // a page showing it reloads. A sampled request's lines come before its
    // spans, which are sent as they end: until the first does, the trace is
    // summarised from its lines (one write per trace and batch), so that a
    // request still running is found by its customer, service and time.
    const read = this.#s("SELECT * FROM traces WHERE trace_id = ?");
    // Looked up, not searched: a batch may carry lines of 20,000 traces.
    const byId = new Map<string, ChangedTraces[number]>();
    for (const t of changed) if (!byId.has(t.traceId)) byId.set(t.traceId, t);
    for (const [traceId, n] of added) {
      const known = byId.get(traceId);
      if (known !== undefined) {
        known.logsAdded = n;
        continue;
      }
      let row = read.get(traceId) as TraceRow | undefined;
      const lines = seen.get(traceId);
      if (lines !== undefined && (row === undefined || row.span_count === 0))
        row = this.#summariseLines(traceId, row, lines, counts);
      if (row !== undefined) changed.push({ ...toSummary(row), logsAdded: n });
    }
  }

  /** Moves a trace's tags to its new start, which they carry so searches come back newest first from the index. */
  #retag(traceId: string, from: number, to: number): void {
    if (from === to) return;
    this.#s(
      "UPDATE trace_tags SET start_us = ? WHERE start_us = ? AND trace_id = ?",
    ).run(to, from, traceId);
  }

  /** Writes a trace's summary row, in place of the one it had. */
  #putTrace(row: TraceRow): void {
    this.#s(
      "INSERT OR REPLACE INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      row.trace_id,
      row.start_us,
      row.end_us,
      row.root_service,
      row.root_name,
      row.root_known,
      row.customer,
      row.span_count,
      row.error_count,
      row.services,
    );
  }

  /**
   * Writes the summary and tags of a trace no span of which is stored yet,
   * from a batch's lines of it: their time, services and customers.
   */
  #summariseLines(
    traceId: string,
    stored: TraceRow | undefined,
    lines: LineSummary,
    counts: RowCounts,
  ): TraceRow {
    if (stored === undefined) counts.traces++;
    const row = stored ?? newTrace(traceId);
    const oldStart = row.start_us;
    if (lines.startUs < row.start_us) {
      row.start_us = lines.startUs;
      row.root_service = lines.first;
    }
    if (lines.endUs > row.end_us) row.end_us = lines.endUs;
    row.customer ??= lines.customers.values().next().value ?? null;
    const services = new Set(
      row.services === "" ? [] : row.services.split("\n"),
    );
    for (const service of lines.services) services.add(service);
    row.services = [...services].sort().join("\n");
    this.#putTrace(row);
    if (stored !== undefined) this.#retag(traceId, oldStart, row.start_us);
    const tag = this.#s("INSERT OR IGNORE INTO trace_tags VALUES (?, ?, ?, ?)");
    for (const service of lines.services)
      tag.run("service.name", service, row.start_us, traceId);
    for (const customer of lines.customers)
      if (customer.length <= MAX_TAG_VALUE)
        tag.run("customer.id", customer, row.start_us, traceId);
    return row;
  }

  async search(q: SearchQuery): Promise<TraceSummary[]> {
    return this.searchSync(q);
  }

  searchSync(q: SearchQuery): TraceSummary[] {
    return this.searchPage(q).traces;
  }

  /**
   * A page of a search: up to `q.limit` traces, newest first, after
   * `q.after` when given (the `next` of the page before).
   */
  searchPage(q: SearchQuery): SearchPage {
    const after = q.after;
    // Plan: the first indexed tag condition (the customer first: it narrows
    // to a handful of traces) drives the query, newest first, straight from
    // the tag index, so LIMIT stops the scan early; every other condition is
    // then checked per trace (tags by primary-key lookups, since each tag row
    // carries its trace's start). A customer matches any span of the trace,
    // as in the remote backends, not only the summary's first one.
    // Traces that started together come by trace id, highest first, the
    // order both indexes hold after the start (the traces table's key is
    // the trace id), so a page can end among them and the next go on from
    // there.
    const where: string[] = [];
    const args: Array<string | number> = [];
    const tags: Array<[string, string]> = [];
    const scans: Array<[string, string]> = [];
    const customer =
      q.customer !== undefined ? this.#customerMatch(q.customer) : undefined;
    // A tagged customer drives the query; one too long to be tagged is
    // checked per trace.
    if (customer?.tagged) tags.push(["customer.id", customer.value]);
    if (q.service !== undefined) tags.push(["service.name", q.service]);
    for (const [key, value] of q.attributes ?? []) {
      if (
        UNTAGGED.has(key) ||
        key.startsWith("db.query.parameter.") ||
        value.length > MAX_TAG_VALUE
      )
        scans.push([key, value]);
      else tags.push([key, value]);
    }
    let from = "traces t";
    let row = "t";
    const drive = tags.shift();
    if (drive !== undefined) {
      from = "trace_tags g JOIN traces t ON t.trace_id = g.trace_id";
      row = "g";
      where.push("g.key = ? AND g.value = ?");
      args.push(drive[0], drive[1]);
    }
    if (q.fromUs !== undefined) {
      where.push(`${row}.start_us >= ?`);
      args.push(q.fromUs);
    }
    // One upper end, the lower of the two: SQLite bounds its index range
    // by one of them and only filters by the other, which would read again
    // every row of the pages before.
    if (
      after !== undefined &&
      (q.toUs === undefined || after.startUs <= q.toUs)
    ) {
      where.push(`(${row}.start_us, ${row}.trace_id) < (?, ?)`);
      args.push(after.startUs, after.traceId);
    } else if (q.toUs !== undefined) {
      where.push(`${row}.start_us <= ?`);
      args.push(q.toUs);
    }
    if (q.errorsOnly) where.push("t.error_count > 0");
    if (q.minDurationUs !== undefined && q.minDurationUs > 0) {
      where.push("t.end_us - t.start_us >= ?");
      args.push(q.minDurationUs);
    }
    const exists = (keys: string[], value: string) => {
      where.push(
        `EXISTS (SELECT 1 FROM trace_tags x WHERE x.key IN (${keys.map(() => "?").join(",")}) AND x.value = ? AND x.start_us = t.start_us AND x.trace_id = t.trace_id)`,
      );
      args.push(...keys, value);
    };
    for (const [key, value] of tags) exists([key], value);
    if (q.operation !== undefined)
      exists(["span.name", "http.route"], q.operation);
    if (customer !== undefined && !customer.tagged) {
      where.push(customer.condition);
      args.push(customer.value);
    }
    for (const [key, value] of scans) {
      // Not indexed: read the attributes of the candidate traces' spans, or
      // their resource's (a span's own value first, as remote.ts reads them).
      // A JSON path names a key of plain characters; any other key (a quote
      // or a backslash in it) is looked for among the object's keys.
      const plain = /^[\w.-]+$/.test(key);
      const of = (column: string) =>
        plain
          ? `json_extract(s.${column}, ?)`
          : `(SELECT value FROM json_each(s.${column}) WHERE key = ?)`;
      const arg = plain ? `$."${key}"` : key;
      where.push(
        `EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND CAST(coalesce(${of("attributes")}, ${of("resource")}) AS TEXT) = ?)`,
      );
      args.push(arg, arg, value);
    }
    const limit = Math.max(1, Math.min(q.limit ?? 50, MAX_LIMIT));
    // One row more than the page says whether another follows.
    const sql = `SELECT t.* FROM ${from} ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY ${row}.start_us DESC, ${row}.trace_id DESC LIMIT ${limit + 1}`;
    const rows = this.#s(sql).all(...args) as unknown as TraceRow[];
    const more = rows.length > limit;
    if (more) rows.length = limit;
    // A trace found for one customer is shown as that customer's, whichever
    // customer its first span carried.
    if (q.customer) for (const r of rows) r.customer = q.customer;
    const last = rows.at(-1);
    return {
      traces: rows.map(toSummary),
      ...(more && last !== undefined
        ? { next: { startUs: last.start_us, traceId: last.trace_id } }
        : {}),
    };
  }

  /**
   * Whether any span of a trace starting at `startUs` carries `customer`:
   * what a search for that customer matches.
   */
  traceHasCustomer(
    traceId: string,
    startUs: number,
    customer: string,
  ): boolean {
    const { condition, value } = this.#customerMatch(customer);
    return (
      this.#s(
        `SELECT 1 FROM (SELECT ? AS trace_id, ? AS start_us) t WHERE ${condition}`,
      ).get(traceId, startUs, value) !== undefined
    );
  }

  /**
   * How a trace `t` (its trace_id and start_us) is found to carry a
   * customer: by its tag, or, for a value too long to be tagged, by reading
   * its spans. `condition` takes `value` as its one argument.
   */
  #customerMatch(customer: string): {
    tagged: boolean;
    condition: string;
    value: string;
  } {
    const tagged = customer.length <= MAX_TAG_VALUE;
    return {
      tagged,
      condition: tagged
        ? "EXISTS (SELECT 1 FROM trace_tags x WHERE x.key = 'customer.id' AND x.value = ? AND x.start_us = t.start_us AND x.trace_id = t.trace_id)"
        : "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND s.customer = ?)",
      value: customer,
    };
  }

  async getTrace(traceId: string): Promise<TraceDetail | undefined> {
    return this.getTraceSync(traceId);
  }

  /**
   * A trace, whole; with `limit`, its first `limit` spans to start and at
   * most `limit` of their log lines (and of lines of no span of the trace),
   * the first in time, with its summary and its log lines' count, whole:
   * what a page that draws that many rows needs of a trace of any size.
   */
  getTraceSync(traceId: string, limit?: number): TraceDetail | undefined {
    const max = limit ?? -1; // SQLite reads a negative LIMIT as none
    const rows = this.#s(
      "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_us, span_id LIMIT ?",
    ).all(traceId, max) as Array<Record<string, unknown>>;
    // The spans of one instance carry the same resource text: each text is
    // parsed once and its object shared, not parsed again for every span
    // of a trace that may hold hundreds of thousands.
    const resources = new Map<unknown, Record<string, unknown>>();
    const resourceOf = (text: unknown) => {
      let resource = resources.get(text);
      if (resource === undefined) {
        resource = parse(text, {});
        resources.set(text, resource);
      }
      return resource;
    };
    const spans: SpanRecord[] = rows.map((r) => ({
      traceId: r["trace_id"] as string,
      spanId: r["span_id"] as string,
      parentSpanId: r["parent_span_id"] as string,
      service: r["service"] as string,
      name: r["name"] as string,
      kind: r["kind"] as number,
      startUs: r["start_us"] as number,
      endUs: r["end_us"] as number,
      statusCode: r["status_code"] as number,
      statusMessage: r["status_message"] as string,
      customer: (r["customer"] as string | null) ?? null,
      attributes: parse(r["attributes"], {}),
      events: parse(r["events"], []),
      links: parse(r["links"], []),
      resource: resourceOf(r["resource"]),
      scope: r["scope"] as string,
    }));
    const logRows = (
      limit === undefined
        ? this.#s(
            "SELECT * FROM logs WHERE trace_id = ? ORDER BY time_us, id",
          ).all(traceId)
        : // A line of a span left out would show as a line of no span.
          this.#s(
            `SELECT * FROM logs l WHERE l.trace_id = ? AND (
               l.span_id IN (SELECT span_id FROM spans WHERE trace_id = ? ORDER BY start_us, span_id LIMIT ?)
               OR NOT EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = l.trace_id AND s.span_id = l.span_id))
             ORDER BY time_us, id LIMIT ?`,
          ).all(traceId, traceId, max, max)
    ) as Array<Record<string, unknown>>;
    const logs = logRows.map((r): LogRecord => ({
      timeUs: r["time_us"] as number,
      traceId: r["trace_id"] as string,
      spanId: r["span_id"] as string,
      service: r["service"] as string,
      severityNumber: r["severity_number"] as number,
      severityText: r["severity_text"] as string,
      body: parse(r["body"], null),
      attributes: parse(r["attributes"], {}),
      customer: (r["customer"] as string | null) ?? null,
    }));
    // A trace of lines alone is a request whose spans have not come yet
    // (they are sent as they end): its lines are what there is to see.
    if (spans.length === 0 && logs.length === 0) return undefined;
    if (limit === undefined) return { traceId, spans, logs };
    const summary = this.#s("SELECT * FROM traces WHERE trace_id = ?").get(
      traceId,
    ) as TraceRow | undefined;
    return {
      traceId,
      spans,
      logs,
      ...(summary === undefined ? {} : { summary: toSummary(summary) }),
      logCount: (
        this.#s("SELECT count(*) AS n FROM logs WHERE trace_id = ?").get(
          traceId,
        ) as { n: number }
      ).n,
    };
  }

  /** Customers watched now (debug logs and full sampling), soonest expiry first. */
  watchEntries(nowMs = Date.now()): WatchEntry[] {
    try {
      return (
        this.#s(
          "SELECT customer, until_ms, level FROM watch WHERE until_ms > ? ORDER BY until_ms, customer",
        ).all(nowMs) as Array<{
          customer: string;
          until_ms: number;
          level: number;
        }>
      ).map((r) => ({
        customer: r.customer,
        until: r.until_ms,
        level: r.level === WATCH_TRACE ? WATCH_TRACE : WATCH_DEBUG,
      }));
    } catch {
      return []; // a read-only store written by an older version has no watch table
    }
  }

  /**
   * Watches `entry.customer` until `entry.until` (replacing an earlier entry);
   * refused when MAX_WATCHED others are watched already.
   */
  watch(entry: WatchEntry, nowMs = Date.now()): void {
    this.#s("DELETE FROM watch WHERE until_ms <= ?").run(nowMs);
    const others = (
      this.#s("SELECT count(*) AS n FROM watch WHERE customer <> ?").get(
        entry.customer,
      ) as { n: number }
    ).n;
    if (others >= MAX_WATCHED)
      throw new RangeError(
        `${MAX_WATCHED} customers are watched already; unwatch one first`,
      );
    this.#s(
      "INSERT INTO watch (customer, until_ms, level) VALUES (?, ?, ?) ON CONFLICT (customer) DO UPDATE SET until_ms = excluded.until_ms, level = excluded.level",
    ).run(entry.customer, entry.until, entry.level);
  }

  /** Stops watching `customer`; false if it was not watched. */
  unwatch(customer: string, nowMs = Date.now()): boolean {
    return (
      Number(
        this.#s("DELETE FROM watch WHERE customer = ? AND until_ms > ?").run(
          customer,
          nowMs,
        ).changes,
      ) > 0
    );
  }

  /** Every service seen, for the viewer's filter. */
  services(): string[] {
    return (
      this.#s(
        "SELECT DISTINCT value FROM trace_tags WHERE key = 'service.name' ORDER BY value",
      ).all() as Array<{ value: string }>
    ).map((r) => r.value);
  }

  /** Size of the database, counting only pages in use. */
  sizeBytes(): number {
    const pageSize = (
      this.#s("PRAGMA page_size").get() as { page_size: number }
    ).page_size;
    const pages = (this.#s("PRAGMA page_count").get() as { page_count: number })
      .page_count;
    const free = (
      this.#s("PRAGMA freelist_count").get() as { freelist_count: number }
    ).freelist_count;
    return (pages - free) * pageSize;
  }

  /** Traces, spans and log lines stored. */
  counts(): RowCounts {
    // data_version moves when another connection commits to the file (a
    // second `threadline dev` sharing it), never for this one's writes,
    // whose rows #addCounts follows. Read before counting, so a write
    // landing during the count is counted again next time.
    const version = (
      this.#s("PRAGMA data_version").get() as { data_version: number }
    ).data_version;
    if (this.#counts === undefined || version !== this.#countedVersion) {
      const one = (sql: string) => (this.#s(sql).get() as { n: number }).n;
      this.#counts = {
        traces: one("SELECT count(*) AS n FROM traces"),
        spans: one("SELECT count(*) AS n FROM spans"),
        logs: one("SELECT count(*) AS n FROM logs"),
      };
      this.#countedVersion = version;
    }
    return { ...this.#counts };
  }

  /** Moves the counts by rows this store committed: `sign` 1 added, -1 deleted. */
  #addCounts(rows: RowCounts, sign: 1 | -1): void {
    if (this.#counts === undefined) return;
    this.#counts.traces += sign * rows.traces;
    this.#counts.spans += sign * rows.spans;
    this.#counts.logs += sign * rows.logs;
  }

  /** Services that sent panel metrics, by name. */
  metricServices(): string[] {
    return (
      this.#s(
        "SELECT DISTINCT service FROM metric_points ORDER BY service",
      ).all() as Array<{ service: string }>
    ).map((r) => r.service);
  }

  /**
   * One service's panels since `sinceMs`: request and error rates and mean
   * latency (from the cumulative request histogram, per export), event-loop
   * delay p99, loop utilisation, CPU share, RSS and heap, and component
   * health, as [epoch ms, value] series.
   *
   * Every instance of the service (a cluster worker, a replica) sends series
   * of its own, cumulative from its own start, so rates and restarts are
   * read per instance. A panel has a point at each time any instance
   * reported, made of what every instance last reported by then: rates, CPU
   * and memory added up, the busiest event loop, the worst health.
   */
  servicePanels(service: string, sinceMs: number): ServicePanels {
    const rows = this.#s(
      "SELECT instance, name, time_ms, attributes, value, count, sum FROM metric_points WHERE service = ? AND time_ms >= ? ORDER BY time_ms",
    ).all(service, sinceMs) as unknown as MetricRow[];
    const attrs = (r: { attributes: string }) =>
      JSON.parse(r.attributes) as Record<string, unknown>;
    /** One metric's points by instance, then by time, in time order. */
    const byInstance = (name: string) => {
      const m = new Map<string, Map<number, MetricRow[]>>();
      for (const r of rows) {
        if (r.name !== name) continue;
        let times = m.get(r.instance);
        if (times === undefined) m.set(r.instance, (times = new Map()));
        let list = times.get(r.time_ms);
        if (list === undefined) times.set(r.time_ms, (list = []));
        list.push(r);
      }
      return m;
    };
    /** One series per instance and attributes: each point's value, the latest of a time. */
    const gaugeSeries = (name: string, keep = (_: MetricRow) => true) => {
      const m = new Map<string, Array<Reading<number>>>();
      for (const r of rows) {
        if (r.name !== name || !keep(r)) continue;
        const key = `${r.instance}\u0000${r.attributes}`;
        let s = m.get(key);
        if (s === undefined) m.set(key, (s = []));
        const last = s.at(-1);
        const reading = {
          t: r.time_ms,
          spanMs: last === undefined ? 0 : r.time_ms - last.t,
          v: r.value ?? 0,
        };
        if (last?.t === r.time_ms)
          s[s.length - 1] = { ...reading, spanMs: last.spanMs };
        else s.push(reading);
      }
      return [...m.values()];
    };
    const panels: ServicePanels = {
      requestsPerSecond: [],
      errorsPerSecond: [],
      latencyMs: [],
      eventLoopDelayP99Ms: [],
      eventLoopUtilization: [],
      cpuShare: [],
      rssMb: [],
      heapMb: [],
      health: {},
    };
    // Cumulative counts, one total per export of an instance. An instance's
    // first export (no earlier one stored) and the first after a restart
    // (counts went down) count from zero: the first over the interval that
    // follows it, exports coming at a steady pace.
    const requests: Array<Array<Reading<RequestDelta>>> = [];
    for (const [instance, times] of byInstance(
      "http.server.request.duration",
    )) {
      const totals = [...times].map(([t, points]) => {
        let count = 0;
        let errors = 0;
        let sum = 0;
        for (const p of points) {
          count += p.count ?? 0;
          sum += p.sum ?? 0;
          if (attrs(p)["error.type"] !== undefined) errors += p.count ?? 0;
        }
        return { t, count, errors, sum };
      });
      const startsHere =
        this.#s(
          "SELECT 1 FROM metric_points WHERE service = ? AND name = 'http.server.request.duration' AND instance = ? AND time_ms < ? LIMIT 1",
        ).get(service, instance, sinceMs) === undefined;
      const zero = { count: 0, errors: 0, sum: 0 };
      const readings: Array<Reading<RequestDelta>> = [];
      totals.forEach((cur, i) => {
        const prev = totals[i - 1];
        const next = totals[i + 1];
        let base: typeof zero | undefined;
        let dtMs: number | undefined;
        if (prev === undefined) {
          if (startsHere && next !== undefined) {
            base = zero;
            dtMs = next.t - cur.t;
          }
        } else {
          base = cur.count >= prev.count ? prev : zero;
          dtMs = cur.t - prev.t;
        }
        if (base === undefined || dtMs === undefined || dtMs <= 0) return;
        readings.push({
          t: cur.t,
          spanMs: dtMs,
          v: {
            count: cur.count - base.count,
            errors: cur.errors - base.errors,
            sum: cur.sum - base.sum,
            seconds: dtMs / 1000,
          },
        });
      });
      requests.push(readings);
    }
    for (const [t, current] of latestOf(requests)) {
      let perSecond = 0;
      let errorsPerSecond = 0;
      let count = 0;
      let sum = 0;
      for (const d of current) {
        perSecond += d.count / d.seconds;
        errorsPerSecond += d.errors / d.seconds;
        count += d.count;
        sum += d.sum;
      }
      panels.requestsPerSecond.push([t, perSecond]);
      panels.errorsPerSecond.push([t, errorsPerSecond]);
      // No requests, no latency: a gap, not 0 ms.
      if (count > 0) panels.latencyMs.push([t, (sum / count) * 1000]);
    }
    const max = (vs: number[]) => vs.reduce((a, v) => Math.max(a, v), 0);
    const total = (vs: number[]) => vs.reduce((a, v) => a + v, 0);
    const gauge = (
      series: Array<Array<Reading<number>>>,
      combine: (vs: number[]) => number,
      into: Array<[number, number]>,
      scale = 1,
    ) => {
      for (const [t, current] of latestOf(series))
        if (current.length > 0) into.push([t, combine(current) * scale]);
    };
    gauge(
      gaugeSeries(
        "nodejs.eventloop.delay",
        (p) => attrs(p)["nodejs.eventloop.delay.percentile"] === "p99",
      ),
      max,
      panels.eventLoopDelayP99Ms,
      1000,
    );
    gauge(
      gaugeSeries("nodejs.eventloop.utilization"),
      max,
      panels.eventLoopUtilization,
    );
    gauge(
      gaugeSeries("process.memory.usage"),
      total,
      panels.rssMb,
      1 / 2 ** 20,
    );
    gauge(
      gaugeSeries("v8js.memory.heap.used"),
      total,
      panels.heapMb,
      1 / 2 ** 20,
    );
    const cpu: Array<Array<Reading<number>>> = [];
    for (const times of byInstance("process.cpu.time").values()) {
      const readings: Array<Reading<number>> = [];
      let prev: { t: number; v: number } | undefined;
      for (const [t, points] of times) {
        const v = points.reduce((a, p) => a + (p.value ?? 0), 0);
        if (prev !== undefined && t > prev.t && v >= prev.v)
          readings.push({
            t,
            spanMs: t - prev.t,
            v: (v - prev.v) / ((t - prev.t) / 1000),
          });
        prev = { t, v };
      }
      cpu.push(readings);
    }
    gauge(cpu, total, panels.cpuShare);
    const components = new Set<string>();
    for (const r of rows)
      if (r.name === "threadline.health.status")
        components.add(String(attrs(r)["threadline.component"] ?? ""));
    for (const c of components)
      gauge(
        gaugeSeries(
          "threadline.health.status",
          (p) => String(attrs(p)["threadline.component"] ?? "") === c,
        ),
        max,
        (panels.health[c] = []),
      );
    return panels;
  }

  /** A service's alarm events (raised and cleared log records), newest first. */
  alarmEvents(service: string, limit = 100): AlarmEventRow[] {
    const rows = this.#s(
      `SELECT time_us, attributes, instance FROM logs WHERE service = ? AND attributes LIKE '%"alarm.name"%' ORDER BY time_us DESC LIMIT ?`,
    ).all(service, limit) as AlarmLogRow[];
    return rows.map(alarmEventOf);
  }

  /**
   * A service's active alarms, newest first: those whose last event on
   * their instance is a raise, however old, however many events followed.
   */
  activeAlarms(service: string): AlarmEventRow[] {
    const rows = this.#s(
      `SELECT time_us, attributes, instance FROM (
         SELECT time_us, attributes, instance, row_number() OVER (
           PARTITION BY coalesce(instance, ''), coalesce(json_extract(attributes, '$."alarm.id"'), json_extract(attributes, '$."alarm.name"'))
           ORDER BY time_us DESC, id DESC) AS n
         FROM logs WHERE service = ? AND attributes LIKE '%"alarm.name"%')
       WHERE n = 1 ORDER BY time_us DESC`,
    ).all(service) as AlarmLogRow[];
    return rows.map(alarmEventOf).filter((e) => e.action === "raise");
  }

  /**
   * Deletes data older than the age limit, then oldest first until under
   * the size limit, and gives the freed pages back to the file system.
   * Returns traces removed.
   *
   * Each round drops the oldest fiftieth of the traces (by when they
   * ended), of the log lines or of the metric points, whichever reaches
   * back least far, and everything older than that: a store of log lines
   * outside traces is pruned like one of traces, and neither kind loses
   * newer data for the other's sake. A round is one transaction of bounded
   * size, small enough that a store just over its size loses little more
   * than it must; the pass goes on until the store fits.
   */
  prune(nowUs = Date.now() * 1000): number {
    const rounds = this.#pruning(nowUs);
    let round = rounds.next();
    while (round.done !== true) round = rounds.next();
    return round.value;
  }

  /**
   * prune(), one round at a time, letting other work (the receiver, the
   * viewer) run between rounds: a store of a gigabyte takes seconds to
   * prune. Stops early if the store is closed meanwhile.
   */
  async pruneInRounds(nowUs = Date.now() * 1000): Promise<number> {
    const rounds = this.#pruning(nowUs);
    let round = rounds.next();
    while (round.done !== true) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) return 0;
      round = rounds.next();
    }
    return round.value;
  }

  /** The rounds of a prune; returns traces removed. */
  *#pruning(nowUs: number): Generator<void, number, void> {
    const aged = this.#deleteBefore(nowUs - this.#maxAgeMs * 1000);
    let traces = aged.traces;
    let rows = aged.rows;
    if (this.sizeBytes() > this.#maxBytes) {
      // Traces and log lines as counts() keeps them, not counted again:
      // a store over its size holds millions of rows. Metric points are
      // few (one per series and export interval).
      const kept = this.counts();
      const left = {
        traces: kept.traces,
        logs: kept.logs,
        metrics: (
          this.#s("SELECT count(*) AS n FROM metric_points").get() as {
            n: number;
          }
        ).n,
      };
      // The time of the row a fiftieth of the way into a kind, oldest first.
      const part = (sql: string, n: number) =>
        n === 0
          ? Infinity
          : ((this.#s(sql).get(Math.floor(n / 50)) as { t: number } | undefined)
              ?.t ?? Infinity);
      while (this.sizeBytes() > this.#maxBytes) {
        yield;
        const cuts = [
          part(
            "SELECT end_us AS t FROM traces ORDER BY end_us LIMIT 1 OFFSET ?",
            left.traces,
          ),
          part(
            "SELECT time_us AS t FROM logs ORDER BY time_us LIMIT 1 OFFSET ?",
            left.logs,
          ),
          part(
            "SELECT time_ms * 1000 AS t FROM metric_points ORDER BY time_ms LIMIT 1 OFFSET ?",
            left.metrics,
          ),
        ]
          .filter((t) => t !== Infinity)
          .sort((x, y) => x - y);
        // A millisecond past the row found (metric points are kept in
        // milliseconds), so that each round removes at least that row. Log
        // lines stay with a trace that ends later, so their cut may remove
        // nothing: the next one reaching further back does.
        let r: Pruned | undefined;
        for (const cut of cuts) {
          r = this.#deleteBefore(cut + 1000);
          if (r.rows > 0) break;
        }
        if (r === undefined || r.rows === 0) break;
        traces += r.traces;
        rows += r.rows;
        left.traces -= r.traces;
        left.logs -= r.logs;
        left.metrics -= r.metrics;
      }
    }
    if (rows > 0) {
      // Free pages handed back a bounded number at a time, as the rows were
      // deleted; until none is left or none goes (a file made without
      // incremental vacuum).
      const free = () =>
        (this.#s("PRAGMA freelist_count").get() as { freelist_count: number })
          .freelist_count;
      for (let n = free(), was = Infinity; n > 0 && n < was;) {
        yield;
        this.#db.exec("PRAGMA incremental_vacuum(4096)");
        was = n;
        n = free();
      }
      yield;
      // The file is cut to its new size when the log is copied back into
      // it, and the log, which the prune made large, is emptied: otherwise
      // it kept that size on disk until the next write. A reader of the
      // same file is never waited for: with no busy timeout, a log it
      // still reads is checkpointed as far as it can be (as PASSIVE does)
      // and left for a later prune or write to cut.
      this.#db.exec("PRAGMA busy_timeout = 0");
      try {
        this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } finally {
        this.#db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      }
    }
    return traces;
  }

  /**
   * Deletes traces that ended before `cutUs`, and log lines and metric
   * points from before it: how many traces, log lines, metric points and
   * rows in all. A trace goes by its latest end, not its start, so that one
   * span of a skewed clock, dated long ago, cannot take the rest of its
   * trace with it; the log lines of a trace that stays, stay with it.
   */
  #deleteBefore(cutUs: number): Pruned {
    this.#db.exec("BEGIN");
    try {
      const spans = this.#s(
        "DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM traces WHERE end_us < ?)",
      ).run(cutUs).changes;
      const tags = this.#s(
        "DELETE FROM trace_tags WHERE start_us < ? AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = trace_tags.trace_id AND t.end_us >= ?)",
      ).run(cutUs, cutUs).changes;
      const logs = Number(
        this.#s(
          "DELETE FROM logs WHERE time_us < ? AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = logs.trace_id AND t.end_us >= ?)",
        ).run(cutUs, cutUs).changes,
      );
      const metrics = Number(
        this.#s("DELETE FROM metric_points WHERE time_ms < ?").run(
          Math.floor(cutUs / 1000),
        ).changes,
      );
      const traces = Number(
        this.#s("DELETE FROM traces WHERE end_us < ?").run(cutUs).changes,
      );
      this.#db.exec("COMMIT");
      this.#addCounts({ traces, spans: Number(spans), logs }, -1);
      return {
        traces,
        logs,
        metrics,
        rows: traces + logs + metrics + Number(spans) + Number(tags),
      };
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#db.close();
  }
}

export interface ServicePanels {
  requestsPerSecond: Array<[number, number]>;
  errorsPerSecond: Array<[number, number]>;
  latencyMs: Array<[number, number]>;
  eventLoopDelayP99Ms: Array<[number, number]>;
  eventLoopUtilization: Array<[number, number]>;
  cpuShare: Array<[number, number]>;
  rssMb: Array<[number, number]>;
  heapMb: Array<[number, number]>;
  /** Per component: 0 healthy, 1 degraded, 2 unhealthy. */
  health: Record<string, Array<[number, number]>>;
}

export interface AlarmEventRow {
  timeMs: number;
  /** The raising instance's `service.instance.id`, "" when not known. */
  instance: string;
  action: "raise" | "clear";
  id: string;
  name: string;
  severity: string;
  source: string;
  reason: string;
}

/** An alarm event's log record, as the store reads it. */
type AlarmLogRow = {
  time_us: number;
  attributes: string;
  instance: string | null;
};

function alarmEventOf(r: AlarmLogRow): AlarmEventRow {
  const a = JSON.parse(r.attributes) as Record<string, unknown>;
  return {
    timeMs: Math.round(r.time_us / 1000),
    instance: r.instance ?? "",
    action: a["event.name"] === "alarm.cleared" ? "clear" : "raise",
    id: String(a["alarm.id"] ?? a["alarm.name"]),
    name: String(a["alarm.name"]),
    severity: String(a["alarm.severity"] ?? ""),
    source: String(a["alarm.source"] ?? ""),
    reason: String(a["alarm.reason"] ?? ""),
  };
}

/**
 * SQLITE_BUSY (5) or SQLITE_LOCKED (6), extended codes included
 * (SQLITE_BUSY_SNAPSHOT is 517): another connection held what a write
 * needed, and the same write may succeed later.
 */
function heldByAnother(err: unknown): boolean {
  const code = (err as { errcode?: unknown } | null)?.errcode;
  return (
    typeof code === "number" && ((code & 0xff) === 5 || (code & 0xff) === 6)
  );
}
