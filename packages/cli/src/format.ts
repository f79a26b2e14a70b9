// Plain-text rendering of search results and traces for the terminal: a
// table of traces, and a trace as a tree of spans (service, what the span
// did, duration, offset) with errors and log lines under the span that
// wrote them.
//
// Names, customers and log lines are whatever services sent, often with a
// request's input in them: control characters are shown as escapes, or an
// escape sequence would act on the reader's terminal (clear it, retitle it,
// link elsewhere) and a newline would print lines of its own that look like
// spans. The JSON output keeps the text as it was sent.
import type {
  LogRecord,
  SpanRecord,
  TraceDetail,
  TraceSummary,
} from "./model.ts";

const KIND = ["", "internal", "server", "client", "producer", "consumer"];

/** C0 and C1 control characters and DEL, but tab. */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r" };

/** `text` with its control characters written as escapes: `\x1b`, `\n`, `\u009b`. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return (
      NAMED[c] ??
      (code < 0x80
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`)
    );
  });
}

export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function formatTime(us: number): string {
  return new Date(us / 1000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "");
}

function pad(s: string, n: number): string {
  return s.length >= n ? `${s.slice(0, n - 1)}…` : s.padEnd(n);
}

export function formatSearch(traces: TraceSummary[]): string {
  if (traces.length === 0) return "no traces found\n";
  // Customer ids are what people search by: their column fits them whole.
  const cw = Math.max(
    9,
    ...traces.map((t) => visible(t.customer ?? "-").length + 1),
  );
  const lines = [
    `${pad("START (UTC)", 20)} ${pad("DURATION", 10)} ${pad("ROOT", 34)} ${pad("CUSTOMER", cw)} ${pad("SPANS", 6)} ${pad("SERVICES", 30)} TRACE`,
  ];
  for (const t of traces) {
    const mark = t.errorCount > 0 ? "✗ " : "";
    const root = t.inProgress
      ? `${t.rootService} (in progress)`
      : t.spansNotKept
        ? `${t.rootService} (log lines only)`
        : `${t.rootService} ${t.rootName}`;
    lines.push(
      `${pad(formatTime(t.startUs), 20)} ${pad(formatDuration(t.durationUs), 10)} ${pad(visible(`${mark}${root}`), 34)} ${pad(visible(t.customer ?? "-"), cw)} ${pad(String(t.spanCount), 6)} ${pad(visible(t.services.join(", ")), 30)} ${visible(t.traceId)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** What a span did, in one line: route, SQL, queue, third party. */
export function describeSpan(s: SpanRecord): string {
  const a = s.attributes;
  if (typeof a["db.query.text"] === "string")
    return `SQL ${a["db.query.text"]}`;
  if (a["messaging.system"] !== undefined) {
    const key = a["messaging.rabbitmq.destination.routing_key"];
    const outcome = a["messaging.rabbitmq.settlement"];
    return `${s.name}${key ? ` (routing key ${String(key)})` : ""}${outcome ? ` [${String(outcome)}]` : ""}`;
  }
  if (s.kind === 3 && a["http.request.method"] !== undefined) {
    const peer = a["peer.service"]
      ? `third party ${String(a["peer.service"])}: `
      : "";
    const status =
      a["http.response.status_code"] !== undefined
        ? ` -> ${String(a["http.response.status_code"])}`
        : "";
    return `${peer}${String(a["http.request.method"])} ${String(a["url.full"] ?? "")}${status}`;
  }
  if (s.kind === 2 && a["http.response.status_code"] !== undefined)
    return `${s.name} -> ${String(a["http.response.status_code"])}`;
  return s.name;
}

function logText(l: LogRecord): string {
  const body = typeof l.body === "string" ? l.body : JSON.stringify(l.body);
  return `${l.severityText || `severity ${l.severityNumber}`}: ${body}`;
}

export function formatTrace(t: TraceDetail): string {
  const spans = [...t.spans].sort((a, b) => a.startUs - b.startUs);
  const ids = new Set(spans.map((s) => s.spanId));
  const t0 = spans[0]?.startUs ?? 0;
  const end = spans.reduce((m, s) => Math.max(m, s.endUs), t0);
  const services = [...new Set(spans.map((s) => s.service))];
  const customer = spans.find((s) => s.customer !== null)?.customer;
  const out: string[] = [
    `trace ${t.traceId}${customer ? `  customer ${customer}` : ""}  ${spans.length} spans  ${services.length} services (${services.join(", ")})  ${formatDuration(end - t0)}`,
  ];
  // Spans are sent as they end: a trace of lines alone is a request still
  // running, or one whose spans never came (or were not kept).
  if (spans.length === 0) {
    const lineServices = [...new Set(t.logs.map((l) => l.service))];
    const lineCustomer = t.logs.find((l) => l.customer !== null)?.customer;
    const first = t.logs[0]?.timeUs ?? 0;
    const last = t.logs.at(-1)?.timeUs ?? first;
    const what = t.spansNotKept
      ? "log lines only: no span of it was kept"
      : "in progress: no span yet";
    out[0] = `trace ${t.traceId}${lineCustomer ? `  customer ${lineCustomer}` : ""}  ${what}, ${t.logs.length} log lines  ${lineServices.length} services (${lineServices.join(", ")})  ${formatDuration(last - first)}${t.spansNotKept ? "" : " so far"}`;
  }
  const logsBySpan = new Map<string, LogRecord[]>();
  for (const l of t.logs) {
    const key = ids.has(l.spanId) ? l.spanId : "";
    const list = logsBySpan.get(key) ?? [];
    list.push(l);
    logsBySpan.set(key, list);
  }
  // Printed spans: a parent cycle (a span its own parent, or two spans each
  // other's) must not be walked again, and a span no root reaches is still
  // printed, as the viewer shows it.
  const printed = new Set<SpanRecord>();
  // Each span's children found once, not by a pass over every span for
  // each span (a trace of 70,000 spans took most of a minute).
  const byParent = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    const list = byParent.get(s.parentSpanId);
    if (list === undefined) byParent.set(s.parentSpanId, [s]);
    else list.push(s);
  }
  const children = (id: string) =>
    (byParent.get(id) ?? []).filter((s) => !printed.has(s));
  let width = 0;
  for (const s of services) width = Math.max(width, visible(s).length);
  // Walked with a stack of its own, not by recursion: a trace can nest
  // deeper than the call stack. One frame per span being printed: its lines
  // and its children in the order they happened, as the viewer shows them
  // (a line written after a call returned comes after it).
  type Item = { at: number; l: LogRecord } | { at: number; c: SpanRecord };
  const frames: Array<{
    items: Item[];
    next: number;
    inner: string;
    kidsLeft: number;
  }> = [];
  const visit = (
    s: SpanRecord,
    prefix: string,
    last: boolean,
    root: boolean,
  ) => {
    printed.add(s);
    const branch = root ? "" : last ? "└─ " : "├─ ";
    const error =
      s.statusCode === 2
        ? `  ✗ ERROR${s.statusMessage ? `: ${s.statusMessage}` : ""}`
        : "";
    out.push(
      `${prefix}${branch}${visible(s.service).padEnd(width)}  ${KIND[s.kind] ?? ""}  ${describeSpan(s)}  ${formatDuration(s.endUs - s.startUs)} @+${formatDuration(s.startUs - t0)}${error}`,
    );
    const kids = children(s.spanId);
    const items: Item[] = [
      ...(logsBySpan.get(s.spanId) ?? []).map((l) => ({ at: l.timeUs, l })),
      ...kids.map((c) => ({ at: c.startUs, c })),
    ].sort((a, b) => a.at - b.at);
    frames.push({
      items,
      next: 0,
      inner: prefix + (root ? "" : last ? "   " : "│  "),
      kidsLeft: kids.length,
    });
  };
  const walk = (root: SpanRecord) => {
    visit(root, "", true, true);
    for (let f = frames.at(-1); f !== undefined; f = frames.at(-1)) {
      const item = f.items[f.next++];
      if (item === undefined) frames.pop();
      else if ("l" in item)
        out.push(
          `${f.inner}${f.kidsLeft > 0 ? "│" : " "}  log ${logText(item.l)}`,
        );
      else visit(item.c, f.inner, --f.kidsLeft === 0, false);
    }
  };
  const roots = spans.filter(
    (s) =>
      s.parentSpanId === "" ||
      s.parentSpanId === s.spanId ||
      !ids.has(s.parentSpanId),
  );
  for (const r of roots) walk(r);
  for (const s of spans) if (!printed.has(s)) walk(s);
  for (const l of logsBySpan.get("") ?? [])
    out.push(`log (no span) ${l.service}: ${logText(l)}`);
  // Every line whole: the rest of what services sent is in it too.
  return `${out.map(visible).join("\n")}\n`;
}
