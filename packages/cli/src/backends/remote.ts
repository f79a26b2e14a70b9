// What the production backends (Jaeger, Elasticsearch) share: turning the
// spans they return into the same summaries and details the local store
// gives, and applying the parts of a search a backend cannot do itself, so
// `threadline search` means the same thing whatever answered it.
import { untraced } from "@threadline/core";
import type { DecodedResourceSpans } from "@threadline/otlp";
import {
  serviceOf,
  type SearchQuery,
  type SpanRecord,
  type TraceSummary,
} from "../model.ts";

export const DEFAULT_LIMIT = 50;

/** Spans as the OTLP decoders give them, as records. */
export function spansFromOtlp(resources: DecodedResourceSpans[]): SpanRecord[] {
  const out: SpanRecord[] = [];
  for (const r of resources) {
    const service = serviceOf(r.resource);
    for (const { scope, spans } of r.scopes) {
      for (const s of spans) {
        const customer = s.attributes["customer.id"];
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId,
          service,
          name: s.name,
          kind: s.kind,
          startUs: s.startUs,
          endUs: s.endUs,
          statusCode: s.statusCode,
          statusMessage: s.statusMessage,
          customer: typeof customer === "string" ? customer : null,
          attributes: s.attributes,
          events: s.events,
          links: s.links,
          resource: r.resource,
          scope: scope.name,
        });
      }
    }
  }
  return out;
}

/** Spans grouped by trace, each group in start order, deduplicated by span id. */
export function byTrace(spans: SpanRecord[]): Map<string, SpanRecord[]> {
  const traces = new Map<string, Map<string, SpanRecord>>();
  for (const s of spans) {
    let t = traces.get(s.traceId);
    if (t === undefined) traces.set(s.traceId, (t = new Map()));
    t.set(s.spanId, s);
  }
  const out = new Map<string, SpanRecord[]>();
  for (const [id, t] of traces)
    out.set(
      id,
      [...t.values()].sort((a, b) => a.startUs - b.startUs),
    );
  return out;
}

/** One trace's summary row, as the local store computes it. */
export function summarize(spans: SpanRecord[]): TraceSummary {
  const ids = new Set(spans.map((s) => s.spanId));
  const root =
    spans.find((s) => s.parentSpanId === "") ??
    spans.find((s) => !ids.has(s.parentSpanId)) ??
    spans[0]!;
  let start = Infinity;
  let end = -Infinity;
  for (const s of spans) {
    if (s.startUs < start) start = s.startUs;
    if (s.endUs > end) end = s.endUs;
  }
  return {
    traceId: root.traceId,
    rootService: root.service,
    rootName: root.name,
    customer:
      root.customer ?? spans.find((s) => s.customer !== null)?.customer ?? null,
    startUs: start,
    durationUs: Math.max(0, end - start),
    spanCount: spans.length,
    errorCount: spans.filter((s) => s.statusCode === 2).length,
    services: [...new Set(spans.map((s) => s.service))].sort(),
  };
}

function attributeMatches(s: SpanRecord, key: string, value: string): boolean {
  const v = s.attributes[key] ?? s.resource[key];
  return v !== undefined && v !== null && String(v) === value;
}

/** Whether a trace satisfies every filter of `q` (the store's semantics). */
export function matches(
  q: SearchQuery,
  spans: SpanRecord[],
  summary: TraceSummary,
): boolean {
  if (q.customer !== undefined && !spans.some((s) => s.customer === q.customer))
    return false;
  if (q.service !== undefined && !summary.services.includes(q.service))
    return false;
  if (
    q.operation !== undefined &&
    !spans.some(
      (s) =>
        s.name === q.operation || s.attributes["http.route"] === q.operation,
    )
  )
    return false;
  if (q.errorsOnly === true && summary.errorCount === 0) return false;
  if (q.minDurationUs !== undefined && summary.durationUs < q.minDurationUs)
    return false;
  if (q.fromUs !== undefined && summary.startUs < q.fromUs) return false;
  if (q.toUs !== undefined && summary.startUs > q.toUs) return false;
  for (const [k, v] of q.attributes ?? [])
    if (!spans.some((s) => attributeMatches(s, k, v))) return false;
  return true;
}

/** The search's answer from the traces a backend returned: filtered, newest first, limited. */
export function answer(
  q: SearchQuery,
  traces: Map<string, SpanRecord[]>,
): TraceSummary[] {
  const out: TraceSummary[] = [];
  for (const spans of traces.values()) {
    const summary = summarize(spans);
    if (!matches(q, spans, summary)) continue;
    // Shown as the customer searched for, as the local store does.
    if (q.customer !== undefined) summary.customer = q.customer;
    out.push(summary);
  }
  out.sort((a, b) => b.startUs - a.startUs);
  return out.slice(0, q.limit ?? DEFAULT_LIMIT);
}

/** The search's time window: from the epoch and up to now unless told. */
export function window(q: SearchQuery): { fromUs: number; toUs: number } {
  const toUs = q.toUs ?? (Date.now() + 60_000) * 1000;
  return { fromUs: q.fromUs ?? 0, toUs };
}

/** A failed request's message, with the backend's own words where it gave some. */
export async function failure(res: Response, what: string): Promise<Error> {
  const text = (await res.text()).slice(0, 500);
  return new Error(`${what} answered ${res.status}${text ? `: ${text}` : ""}`);
}

/** A response's JSON; when it is not JSON, an error naming the backend and the URL. */
export async function json(res: Response, name: string): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const type = res.headers.get("content-type") ?? "no content type";
    throw new Error(
      `${name}: ${res.url} answered ${res.status} with ${type}, not JSON (${text.slice(0, 80).replace(/[\s\x00-\x1f\x7f-\x9f]+/g, " ")}); is that the right URL?`,
    );
  }
}

/** How long a request to a backend may take before it fails. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Fetch that names the backend when it cannot be reached. */
export async function reach(
  name: string,
  url: string,
  init: RequestInit = {},
): Promise<Response> {
  try {
    return await untraced(() =>
      fetch(url, {
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        ...init,
      }),
    );
  } catch (err) {
    throw new Error(`${name} is not reachable (${causeOf(err)})`);
  }
}

/** What fetch's error says went wrong: its cause's code, else its cause's message, else its own. */
export function causeOf(err: unknown): string {
  const e = err as {
    cause?: { code?: string; message?: string };
    message?: string;
  };
  return e.cause?.code ?? e.cause?.message ?? String(e.message);
}

/**
 * A viewer's 401, said so that the command's user knows what to set: the
 * viewer's own answer speaks of query strings and headers, which the
 * command writes itself from THREADLINE_VIEWER_TOKEN.
 */
export function viewerTokenError(name: string, sent: boolean): Error {
  return new Error(
    sent
      ? `${name} refused the token in THREADLINE_VIEWER_TOKEN: set it to the one \`threadline dev\` was started with`
      : `${name} requires a token: set THREADLINE_VIEWER_TOKEN to the one \`threadline dev\` was started with`,
  );
}
