// The trace view: one request across services as a waterfall, with the log
// lines it wrote interleaved, and the details of the selected span.
//
// The waterfall is the span tree flattened depth-first; under each span its
// children and its own log lines are merged by time, so a log line sits
// where it was written (before or after the calls its span made). Every row
// shares one timeline, from the first span's start to the last one's end,
// so gaps between spans (queueing, a consumer picking up a message late)
// show.
// The selected span is kept in the URL (?span=) so it survives reloads, and
// the page listens to the live stream to pick up spans that land after it
// was opened.
import { getJson, href, liveSource } from "./api.js";
import {
  formatClock,
  formatDay,
  formatDuration,
  formatFull,
  formatOffset,
  h,
  notice,
  plural,
  serviceChip,
  serviceColor,
  valueText,
} from "./dom.js";

const KINDS = [
  "unspecified",
  "internal",
  "server",
  "client",
  "producer",
  "consumer",
];
const STATUS = ["unset", "ok", "error"];
const GOOD_SETTLEMENTS = new Set(["ack", "confirmed", "accepted"]);

function seg(text, cls) {
  return h("span", { class: cls, text });
}

function tag(text, cls) {
  return [h("span", { class: `tag tag-${cls}`, text }), " "];
}

function statusSegments(status) {
  if (status === undefined) return [];
  const n = Number(status);
  const cls = n >= 500 ? "bad" : n >= 400 ? "warn" : "good";
  return [seg(" → ", "arrow"), seg(String(status), `http-status ${cls}`)];
}

/** "…/v1/charges" for a third party (its host is in the name), "host/path" otherwise. */
function shortUrl(full, thirdParty) {
  try {
    const u = new URL(full);
    return thirdParty
      ? `…${u.pathname}${u.search}`
      : `${u.host}${u.pathname}${u.search}`;
  } catch {
    return full;
  }
}

/** What a span did, at a glance, as inline nodes: route, SQL, queue, third party. */
export function describeSpan(s) {
  const a = s.attributes;
  const method = a["http.request.method"];
  if (typeof a["db.query.text"] === "string")
    return [tag("SQL", "sql"), seg(a["db.query.text"], "sql-text")];
  if (a["messaging.system"] !== undefined) {
    const system = String(a["messaging.system"]);
    const producer =
      s.kind === 4 ||
      a["messaging.operation.type"] === "send" ||
      a["messaging.operation.type"] === "publish";
    const dest = a["messaging.destination.name"];
    const queue = a["messaging.destination.subscription.name"];
    const key = a["messaging.rabbitmq.destination.routing_key"];
    const settlement = a["messaging.rabbitmq.settlement"];
    return [
      tag(system === "rabbitmq" ? "AMQP" : system, "amqp"),
      seg(producer ? "publish " : "consume ", "verb"),
      seg(
        valueText(producer ? (dest ?? s.name) : (queue ?? dest ?? s.name)),
        "dest",
      ),
      key !== undefined
        ? [seg(" key ", "muted"), seg(valueText(key), "routing-key")]
        : null,
      settlement !== undefined
        ? [
            " ",
            seg(
              valueText(settlement),
              `pill ${GOOD_SETTLEMENTS.has(String(settlement)) ? "good" : "bad"}`,
            ),
          ]
        : null,
    ];
  }
  if (
    method !== undefined &&
    s.kind !== 2 &&
    (s.kind === 3 || a["url.full"] !== undefined)
  ) {
    const peer = a["peer.service"];
    const url =
      a["url.full"] !== undefined
        ? shortUrl(valueText(a["url.full"]), peer !== undefined)
        : valueText(a["url.path"] ?? "");
    const limit = a["threadline.ratelimit.limit"];
    const remaining = a["threadline.ratelimit.remaining"];
    const low = Number(remaining) < Number(limit) * 0.1;
    return [
      peer !== undefined
        ? [
            tag("third party", "third"),
            seg(valueText(peer), "peer"),
            seg(": ", "muted"),
          ]
        : null,
      seg(valueText(method), "method"),
      " ",
      seg(url, "path"),
      statusSegments(a["http.response.status_code"]),
      remaining !== undefined
        ? [
            " ",
            seg(
              `rate limit ${valueText(remaining)}${limit !== undefined ? `/${valueText(limit)}` : ""} left`,
              `pill ${low ? "bad" : "quiet"}`,
            ),
          ]
        : null,
    ];
  }
  if (method !== undefined) {
    return [
      seg(valueText(method), "method"),
      " ",
      seg(valueText(a["http.route"] ?? a["url.path"] ?? s.name), "path"),
      statusSegments(a["http.response.status_code"]),
    ];
  }
  return [seg(s.name, "span-name")];
}

function severity(log) {
  const n = log.severityNumber;
  let cls = "info";
  if (n >= 17) cls = "error";
  else if (n >= 13) cls = "warn";
  else if (n >= 1 && n < 9) cls = "debug";
  const text = log.severityText || (n >= 21 ? "fatal" : cls);
  return { cls, text: text.toUpperCase() };
}

function logBody(log) {
  return typeof log.body === "string" ? log.body : valueText(log.body);
}

/** The trace as a tree plus everything the rendering needs. */
function analyse(detail) {
  const spans = [...detail.spans].sort(
    (a, b) => a.startUs - b.startUs || a.endUs - b.endUs,
  );
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (
      s.parentSpanId &&
      s.parentSpanId !== s.spanId &&
      byId.has(s.parentSpanId)
    ) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const logs = [...detail.logs].sort((a, b) => a.timeUs - b.timeUs);
  const logsBySpan = new Map();
  const orphanLogs = [];
  for (const l of logs) {
    if (!byId.has(l.spanId)) {
      orphanLogs.push(l);
      continue;
    }
    const list = logsBySpan.get(l.spanId) ?? [];
    list.push(l);
    logsBySpan.set(l.spanId, list);
  }
  // The timeline is the spans' extent: log timestamps are often coarser
  // (whole milliseconds) and would otherwise shift every span. Logs only
  // widen it when there are no spans to go by.
  // A loop, not Math.min(...times): a spread of a large trace's times
  // overflows the stack.
  let t0 = Infinity;
  let t1 = -Infinity;
  if (spans.length > 0)
    for (const s of spans) {
      if (s.startUs < t0) t0 = s.startUs;
      if (s.endUs > t1) t1 = s.endUs;
    }
  else
    for (const l of logs) {
      if (l.timeUs < t0) t0 = l.timeUs;
      if (l.timeUs > t1) t1 = l.timeUs;
    }
  if (t0 === Infinity) t0 = t1 = 0;
  // Only the first spans came: the summary tells what the trace holds.
  const summary = detail.summary;
  if (summary !== undefined && spans.length > 0) {
    t0 = Math.min(t0, summary.startUs);
    t1 = Math.max(t1, summary.startUs + summary.durationUs);
  }
  const services = [];
  for (const s of spans)
    if (!services.includes(s.service)) services.push(s.service);
  for (const l of logs)
    if (!services.includes(l.service)) services.push(l.service);
  for (const s of summary?.services ?? [])
    if (!services.includes(s)) services.push(s);
  const spanTotal = Math.max(spans.length, summary?.spanCount ?? 0);
  const logTotal = Math.max(logs.length, detail.logCount ?? 0);
  return {
    detail,
    spans,
    byId,
    children,
    roots,
    logs,
    logsBySpan,
    orphanLogs,
    t0,
    total: Math.max(1, t1 - t0),
    services,
    root: roots[0],
    customer:
      spans.find((s) => s.customer)?.customer ??
      logs.find((l) => l.customer)?.customer ??
      null,
    errors:
      summary?.errorCount ?? spans.filter((s) => s.statusCode === 2).length,
    spanTotal,
    logTotal,
    /** Whether spans or lines of the trace were not fetched. */
    partial: spanTotal > spans.length || logTotal > logs.length,
  };
}

/**
 * Rows the waterfall shows at most: a browser lays out a few thousand rows
 * in a moment, and a trace of tens of thousands of spans would hold the
 * page for half a minute or more. No more spans than that are fetched.
 */
const MAX_ROWS = 10_000;

/**
 * Rows in display order, at most MAX_ROWS; a collapsed span hides its
 * subtree and logs. `cut` says whether rows were left out. Walked with a
 * stack of its own, not by recursion: a trace can nest deeper than the
 * call stack.
 */
function flatten(m, collapsed) {
  const rows = [];
  const seen = new Set();
  const hiddenCount = (span) => {
    let n = 0;
    const counted = new Set([span.spanId]);
    const stack = [span];
    while (stack.length > 0) {
      const s = stack.pop();
      n += (m.logsBySpan.get(s.spanId) ?? []).length;
      for (const c of m.children.get(s.spanId) ?? [])
        if (!counted.has(c.spanId)) {
          counted.add(c.spanId);
          n++;
          stack.push(c);
        }
    }
    return n;
  };
  // One frame per span being walked: its children and its log lines,
  // merged by time.
  const frames = [];
  const visit = (span, depth) => {
    if (seen.has(span.spanId)) return;
    seen.add(span.spanId);
    const kids = m.children.get(span.spanId) ?? [];
    const logs = m.logsBySpan.get(span.spanId) ?? [];
    const isCollapsed = collapsed.has(span.spanId);
    rows.push({
      type: "span",
      span,
      depth,
      parent: kids.length + logs.length > 0,
      collapsed: isCollapsed,
      hidden: isCollapsed ? hiddenCount(span) : 0,
    });
    if (!isCollapsed) frames.push({ kids, logs, i: 0, j: 0, depth: depth + 1 });
  };
  // One row past MAX_ROWS tells whether any were left out.
  const walk = () => {
    while (frames.length > 0 && rows.length <= MAX_ROWS) {
      const f = frames[frames.length - 1];
      if (
        f.j < f.logs.length &&
        (f.i >= f.kids.length || f.logs[f.j].timeUs <= f.kids[f.i].startUs)
      )
        rows.push({ type: "log", log: f.logs[f.j++], depth: f.depth });
      else if (f.i < f.kids.length) visit(f.kids[f.i++], f.depth);
      else frames.pop();
    }
  };
  frames.push({ kids: m.roots, logs: m.orphanLogs, i: 0, j: 0, depth: 0 });
  walk();
  // Spans whose parents form a cycle are reachable from no root; show them
  // anyway rather than lose them. Not those under a collapsed span, which
  // are reachable and hidden on purpose.
  if (rows.length <= MAX_ROWS) {
    const reachable = new Set();
    const stack = [...m.roots];
    while (stack.length > 0) {
      const span = stack.pop();
      if (reachable.has(span.spanId)) continue;
      reachable.add(span.spanId);
      for (const c of m.children.get(span.spanId) ?? []) stack.push(c);
    }
    for (const s of m.spans) {
      if (rows.length > MAX_ROWS) break;
      if (reachable.has(s.spanId)) continue;
      visit(s, 0);
      walk();
    }
  }
  const cut = rows.length > MAX_ROWS;
  if (cut) rows.length = MAX_ROWS;
  return { rows, cut };
}

function pct(x) {
  return `${(Math.min(1, Math.max(0, x)) * 100).toFixed(3)}%`;
}

function kvTable(obj, kind) {
  const keys = Object.keys(obj ?? {}).sort();
  if (keys.length === 0) return h("p", { class: "muted small", text: "none" });
  return h(
    "table",
    { class: "kv" },
    h(
      "tbody",
      {},
      keys.map((k) =>
        h(
          "tr",
          { dataset: { [kind]: k } },
          h("th", { class: "key mono", text: k, title: k }),
          h("td", { class: "value mono", text: valueText(obj[k]) }),
        ),
      ),
    ),
  );
}

function section(title, ...body) {
  return h(
    "section",
    { class: "details-section" },
    h("h3", { text: title }),
    body,
  );
}

export function traceView(container, route, app) {
  const traceId = route.traceId;
  const page = h("section", {
    class: "page trace-page",
    dataset: { testid: "trace-view", traceId, state: "loading" },
  });
  container.append(page);
  // Named by its id until it loads, so the previous page's name never stays.
  app.setTitle(`Trace ${traceId.slice(0, 8)}…`);
  let model;
  let selected = route.params.get("span") || null;
  const collapsed = new Set();
  let waterfall;
  let panel;
  let controller;
  let live;
  let reloadTimer;

  async function load({ quiet = false } = {}) {
    controller?.abort();
    controller = new AbortController();
    if (!quiet)
      page.replaceChildren(
        h("p", { class: "muted loading-line", text: "Loading trace…" }),
      );
    let detail;
    try {
      detail = await getJson(
        `/api/traces/${traceId}?limit=${MAX_ROWS}`,
        {},
        { signal: controller.signal },
      );
    } catch (err) {
      if (err.name === "AbortError") return;
      if (quiet) return;
      page.dataset.state = "error";
      page.replaceChildren(
        err.status === 404
          ? notice(
              "empty",
              "This trace is not in the local store",
              h(
                "p",
                {},
                h("code", { text: traceId }),
                " has not arrived (yet), or was pruned. This page loads it as soon as its spans land.",
              ),
              h("p", {}, h("a", { href: href("/"), text: "Back to search" })),
            )
          : notice(
              "error",
              "Could not load the trace",
              err.message,
              h("p", {}, h("button", { onclick: () => load(), text: "Retry" })),
            ),
      );
      // Once, from where the answer was read: the trace's first spans
      // load the page as they land, also those landing before the stream
      // opens.
      if (err.status === 404 && live === undefined)
        follow(undefined, err.body?.live);
      return;
    }
    const first = model === undefined;
    try {
      model = analyse(detail);
      if (selected && !model.byId.has(selected)) selected = null;
      render();
    } catch (err) {
      // Said on the page, never left at "Loading trace…".
      page.dataset.state = "error";
      page.replaceChildren(
        notice(
          "error",
          "Could not show the trace",
          String(err?.message ?? err),
        ),
      );
      return;
    }
    page.dataset.state = "ready";
    // Named on every load: a trace opened before its root span arrived is
    // named after another span until the root comes.
    app.setTitle(
      `${model.root?.service ?? "trace"} ${model.root?.name ?? ""}`.trim(),
    );
    if (first) {
      follow(model.customer, detail.live);
      if (selected) rowOf(selected)?.scrollIntoView({ block: "center" });
    }
  }

  /**
   * Reloads when the live stream says this trace grew: spans or log lines.
   * The stream starts after `after`, the batch the read was up to, so what
   * landed between the read and the stream's opening (or a reconnect) is
   * sent first; when the server no longer holds all of that, it says so,
   * and the trace is read again.
   */
  function follow(customer, after) {
    live?.close();
    live = liveSource({ customer, after });
    // Quietly: a page still waiting for its trace keeps saying so.
    live.addEventListener("incomplete", () => reload(0, true));
    live.addEventListener("trace", (e) => {
      let t;
      try {
        t = JSON.parse(e.data);
      } catch {
        return;
      }
      if (t.traceId !== traceId) return;
      // New spans, or new log lines (which often come after the spans).
      if (model && t.spanCount === model.spanTotal && !t.logsAdded) return;
      reload(150);
    });
  }

  function reload(delayMs, quiet) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(
      () => load({ quiet: quiet ?? model !== undefined }),
      delayMs,
    );
  }

  function render() {
    page.replaceChildren(
      header(),
      h(
        "div",
        { class: "trace-body" },
        (waterfall = h("div", {
          class: "waterfall",
          role: "treegrid",
          "aria-label": "Spans and log lines",
        })),
        (panel = h("div", { class: "details-slot" })),
      ),
    );
    page.dataset.customer = model.customer ?? "";
    renderRows();
    renderDetails();
  }

  function header() {
    const m = model;
    const root = m.root;
    return h(
      "header",
      { class: "trace-head" },
      h(
        "a",
        {
          class: "back",
          href: href("/", m.customer ? { customer: m.customer } : {}),
        },
        m.customer ? `← Traces for ${m.customer}` : "← Search",
      ),
      h(
        "h1",
        { class: "trace-title" },
        root ? serviceChip(root.service, { class: "big" }) : null,
        h("span", {}, root ? describeSpan(root) : "trace"),
        m.spans.length === 0 && m.logs.length > 0
          ? h("span", {
              class: "pill quiet big-pill",
              dataset: { testid: "in-progress" },
              title:
                "Spans are sent as they end: this request may still be running",
              text: "in progress: no span yet",
            })
          : null,
        m.errors > 0
          ? h("span", {
              class: "pill bad big-pill",
              text: `✕ ${plural(m.errors, "error")}`,
            })
          : null,
      ),
      h(
        "dl",
        { class: "facts" },
        fact(
          "Trace",
          h("span", {
            class: "mono trace-id",
            dataset: { testid: "trace-id" },
            text: traceId,
          }),
          h("button", {
            class: "copy",
            title: "Copy the trace id",
            onclick: (e) => copy(e.currentTarget, traceId),
            text: "copy",
          }),
        ),
        fact(
          "Customer",
          m.customer
            ? h("a", {
                class: "mono customer",
                href: href("/", { customer: m.customer }),
                text: m.customer,
              })
            : h("span", { class: "muted", text: "none" }),
        ),
        fact(
          "Started",
          h(
            "span",
            { title: formatFull(m.t0) },
            h("span", { class: "mono", text: formatClock(m.t0) }),
            " ",
            h("span", { class: "muted", text: formatDay(m.t0) }),
          ),
        ),
        fact(
          "Duration",
          h("span", { class: "mono", text: formatDuration(m.total) }),
        ),
        fact("Spans", h("span", { class: "mono", text: String(m.spanTotal) })),
        fact("Logs", h("span", { class: "mono", text: String(m.logTotal) })),
        fact(
          "Services",
          h(
            "span",
            { class: "chips" },
            m.services.map((s) => serviceChip(s)),
          ),
        ),
      ),
    );
  }

  function fact(label, ...value) {
    return h(
      "div",
      { class: "fact" },
      h("dt", { text: label }),
      h("dd", {}, value),
    );
  }

  function copy(button, text) {
    navigator.clipboard?.writeText(text).then(
      () => {
        button.textContent = "copied";
        setTimeout(() => (button.textContent = "copy"), 1200);
      },
      () => {},
    );
  }

  function renderRows() {
    const m = model;
    // No label at the right edge: the total is in the header, and a label
    // there would collide with the 75% one on narrow screens.
    const ticks = [0, 0.25, 0.5, 0.75];
    const ruler = h(
      "div",
      { class: "wf-row wf-ruler", role: "row" },
      h(
        "div",
        { class: "wf-name", role: "columnheader" },
        "Service and operation",
        h("span", {
          class: "hint",
          text: "click a span for details, a log line for its span",
        }),
      ),
      h("div", { class: "wf-dur", role: "columnheader", text: "Duration" }),
      h(
        "div",
        { class: "wf-track", role: "columnheader" },
        ticks.map((f) =>
          h("span", {
            class: "tick",
            style: { left: pct(f) },
            text: f === 0 ? "0" : formatDuration(m.total * f),
          }),
        ),
      ),
    );
    const { rows, cut } = flatten(m, collapsed);
    waterfall.replaceChildren(
      ruler,
      h(
        "div",
        { class: "wf-rows", role: "rowgroup" },
        rows.map((r) => (r.type === "span" ? spanRow(r) : logRow(r))),
      ),
      // Spread: the DOM's replaceChildren, unlike h(), writes a null as text.
      ...(cut || m.partial
        ? [
            h(
              "div",
              { class: "wf-limit", dataset: { testid: "waterfall-limit" } },
              notice(
                "empty",
                `The waterfall shows the first ${plural(rows.length, "row")} of this trace's ${plural(m.spanTotal, "span")} and ${plural(m.logTotal, "log line")}`,
                h(
                  "p",
                  {},
                  // Collapsing brings up only what the page has.
                  m.partial
                    ? `Only the ${plural(m.spans.length, "span")} that started first are loaded; print the whole trace with `
                    : "Collapse spans to bring later ones up, or print the whole trace with ",
                  h("code", { text: `threadline trace ${traceId}` }),
                  ".",
                ),
              ),
            ),
          ]
        : []),
    );
  }

  function indent(depth) {
    return h("span", {
      class: "indent",
      style: { "--depth": String(depth) },
      "aria-hidden": "true",
    });
  }

  function spanRow({ span, depth, parent, collapsed: isCollapsed, hidden }) {
    const m = model;
    const dur = span.endUs - span.startUs;
    const error = span.statusCode === 2;
    const isSelected = span.spanId === selected;
    const desc = h("span", { class: "desc" }, describeSpan(span));
    const row = h(
      "div",
      {
        class: `wf-row span-row${error ? " error" : ""}${isSelected ? " selected" : ""}`,
        role: "row",
        "aria-level": String(depth + 1),
        "aria-selected": isSelected ? "true" : "false",
        "aria-expanded": parent ? String(!isCollapsed) : null,
        tabindex: "0",
        style: { "--svc": serviceColor(span.service) },
        dataset: {
          testid: "span-row",
          spanId: span.spanId,
          service: span.service,
        },
        onclick: () => select(span.spanId === selected ? null : span.spanId),
        onkeydown: (e) => onRowKey(e, span),
      },
      h(
        "div",
        { class: "wf-name", role: "gridcell" },
        indent(depth),
        parent
          ? h("button", {
              class: "toggle",
              "aria-label": isCollapsed ? "Expand" : "Collapse",
              onclick: (e) => {
                e.stopPropagation();
                toggle(span.spanId);
              },
              text: isCollapsed ? "▸" : "▾",
            })
          : h("span", { class: "toggle-space" }),
        serviceChip(span.service),
        error
          ? h("span", {
              class: "error-mark",
              title: span.statusMessage || "error",
              text: "✕",
            })
          : null,
        desc,
        isCollapsed && hidden > 0
          ? h("span", { class: "pill quiet", text: `+${hidden}` })
          : null,
      ),
      h("div", {
        class: "wf-dur mono",
        role: "gridcell",
        text: formatDuration(dur),
      }),
      h(
        "div",
        { class: "wf-track", role: "gridcell" },
        h("div", {
          class: "bar",
          style: {
            left: pct((span.startUs - m.t0) / m.total),
            width: pct(dur / m.total),
          },
        }),
        span.events.map((ev) =>
          h("span", {
            class: `event-mark${ev.name === "exception" ? " is-exception" : ""}`,
            style: { left: pct((ev.timeUs - m.t0) / m.total) },
            title: `${ev.name} ${formatOffset(ev.timeUs - m.t0)}`,
          }),
        ),
      ),
    );
    row.title = `${KINDS[span.kind] ?? "span"} · ${span.name} · ${formatOffset(span.startUs - m.t0)} for ${formatDuration(dur)}`;
    desc.title = desc.textContent;
    return row;
  }

  function logRow({ log, depth }) {
    const m = model;
    const linked = m.byId.has(log.spanId);
    const sev = severity(log);
    const extra = Object.entries(log.attributes ?? {})
      .filter(
        ([k, v]) =>
          !(k === "name" && v === log.service) &&
          !(k === "customer.id" && v === m.customer),
      )
      .map(([k, v]) => `${k}=${valueText(v)}`)
      .join(" ");
    const body = logBody(log);
    return h(
      "div",
      {
        class: `wf-row log-row${linked && log.spanId === selected ? " of-selected" : ""}${linked ? "" : " orphan"}`,
        role: "row",
        style: { "--svc": serviceColor(log.service) },
        dataset: {
          testid: "log-row",
          spanId: log.spanId,
          service: log.service,
          severity: sev.cls,
        },
        title: linked
          ? "Show the span that wrote this line"
          : "This line's span is not in the trace",
        onclick: () => {
          if (linked) select(log.spanId, { scroll: true, flash: true });
        },
      },
      h(
        "div",
        { class: "wf-name", role: "gridcell" },
        indent(depth),
        h("span", {
          class: "toggle-space log-glyph",
          "aria-hidden": "true",
          text: "↳",
        }),
        h("span", { class: `sev sev-${sev.cls}`, text: sev.text }),
        h("span", { class: "log-service", text: log.service }),
        h(
          "span",
          { class: "log-body", title: extra ? `${body}\n${extra}` : body },
          body,
          extra ? h("span", { class: "log-attrs", text: ` ${extra}` }) : null,
        ),
      ),
      h("div", {
        class: "wf-dur mono",
        role: "gridcell",
        text: formatOffset(log.timeUs - m.t0),
      }),
      h(
        "div",
        { class: "wf-track", role: "gridcell" },
        h("span", {
          class: "log-mark",
          style: { left: pct((log.timeUs - m.t0) / m.total) },
        }),
      ),
    );
  }

  function rowOf(spanId) {
    return waterfall?.querySelector(
      `.span-row[data-span-id="${CSS.escape(spanId)}"]`,
    );
  }

  function onRowKey(e, span) {
    const rows = [...waterfall.querySelectorAll(".span-row")];
    const i = rows.indexOf(e.currentTarget);
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(span.spanId === selected ? null : span.spanId);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = rows[i + (e.key === "ArrowDown" ? 1 : -1)];
      if (next) {
        next.focus();
        select(next.dataset.spanId);
      }
    } else if (
      e.key === "ArrowLeft" &&
      !collapsed.has(span.spanId) &&
      e.currentTarget.hasAttribute("aria-expanded")
    ) {
      toggle(span.spanId);
    } else if (e.key === "ArrowRight" && collapsed.has(span.spanId)) {
      toggle(span.spanId);
    }
  }

  function toggle(spanId) {
    if (collapsed.has(spanId)) collapsed.delete(spanId);
    else collapsed.add(spanId);
    renderRows();
    rowOf(spanId)?.focus();
  }

  function select(spanId, { scroll = false, flash = false } = {}) {
    selected = spanId && model.byId.has(spanId) ? spanId : null;
    // A span inside a collapsed subtree is revealed rather than selected blind.
    let expanded = false;
    let p = model.byId.get(selected ?? "")?.parentSpanId;
    for (
      let hops = 0;
      p && model.byId.has(p) && hops < model.spans.length;
      hops++
    ) {
      if (collapsed.delete(p)) expanded = true;
      p = model.byId.get(p).parentSpanId;
    }
    if (expanded) renderRows();
    for (const r of waterfall.querySelectorAll(".span-row")) {
      const on = r.dataset.spanId === selected;
      r.classList.toggle("selected", on);
      r.setAttribute("aria-selected", on ? "true" : "false");
    }
    for (const r of waterfall.querySelectorAll(".log-row"))
      r.classList.toggle(
        "of-selected",
        r.dataset.spanId === selected && !r.classList.contains("orphan"),
      );
    renderDetails();
    app.setQuery(selected ? { span: selected } : {});
    const row = selected ? rowOf(selected) : undefined;
    if (row && scroll)
      row.scrollIntoView({ block: "nearest", behavior: "smooth" });
    if (row && flash) {
      row.classList.remove("flash");
      void row.offsetWidth; // restarts the animation
      row.classList.add("flash");
    }
  }

  /** A click handler for in-trace links: select there instead of navigating. */
  function jumpTo(spanId) {
    return (e) => {
      e.preventDefault();
      select(spanId, { scroll: true, flash: true });
    };
  }

  function renderDetails() {
    const span = selected ? model.byId.get(selected) : undefined;
    page.classList.toggle("with-details", span !== undefined);
    panel.replaceChildren(
      span
        ? details(span)
        : h("div", {
            class: "details-empty muted",
            text: "Select a span to see its attributes, events and logs.",
          }),
    );
  }

  function details(span) {
    const m = model;
    const dur = span.endUs - span.startUs;
    const exceptions = span.events.filter((e) => e.name === "exception");
    const events = span.events.filter((e) => e.name !== "exception");
    const logs = m.logsBySpan.get(span.spanId) ?? [];
    const parent = m.byId.get(span.parentSpanId);
    const status = span.statusCode;
    return h(
      "aside",
      {
        class: `details${status === 2 ? " error" : ""}`,
        dataset: { testid: "span-details", spanId: span.spanId },
        "aria-label": "Span details",
      },
      h(
        "div",
        { class: "details-head" },
        serviceChip(span.service),
        h("span", {
          class: "kind",
          text: KINDS[span.kind] ?? `kind ${span.kind}`,
        }),
        h("button", {
          class: "close",
          "aria-label": "Close the details",
          title: "Close (Esc)",
          onclick: () => select(null),
          text: "✕",
        }),
      ),
      h("h2", { class: "details-title", text: span.name }),
      h("div", { class: "details-desc" }, describeSpan(span)),
      h(
        "dl",
        { class: "details-facts" },
        fact(
          "Duration",
          h("span", { class: "mono", text: formatDuration(dur) }),
        ),
        fact(
          "Start",
          h("span", { class: "mono", text: formatOffset(span.startUs - m.t0) }),
          " ",
          h("span", { class: "muted", text: formatClock(span.startUs) }),
        ),
        fact(
          "Status",
          h("span", {
            class: `pill ${status === 2 ? "bad" : status === 1 ? "good" : "quiet"}`,
            dataset: { testid: "span-status" },
            text: `${STATUS[status] ?? "?"} (${status})`,
          }),
          span.statusMessage
            ? h("span", {
                class: "status-message",
                text: ` ${span.statusMessage}`,
              })
            : null,
        ),
        fact("Span", h("span", { class: "mono", text: span.spanId })),
        fact(
          "Parent",
          parent
            ? h(
                "a",
                {
                  href: href(location.pathname, { span: parent.spanId }),
                  onclick: jumpTo(parent.spanId),
                },
                `${parent.service}: ${parent.name}`,
              )
            : h("span", {
                class: "muted",
                text: span.parentSpanId
                  ? `${span.parentSpanId} (not in this trace)`
                  : "none, this is a root span",
              }),
        ),
        fact(
          "Scope",
          h("span", { class: "mono small", text: span.scope || "—" }),
        ),
      ),
      exceptions.length > 0
        ? section(
            exceptions.length === 1
              ? "Exception"
              : `Exceptions (${exceptions.length})`,
            exceptions.map((ev) =>
              h(
                "div",
                { class: "exception", dataset: { testid: "exception" } },
                h(
                  "div",
                  { class: "exception-head" },
                  h("span", {
                    class: "exception-type",
                    text: valueText(ev.attributes["exception.type"] ?? "Error"),
                  }),
                  h("span", {
                    class: "muted small",
                    text: ` ${formatOffset(ev.timeUs - m.t0)}`,
                  }),
                ),
                ev.attributes["exception.message"] !== undefined
                  ? h("div", {
                      class: "exception-message",
                      text: valueText(ev.attributes["exception.message"]),
                    })
                  : null,
                ev.attributes["exception.stacktrace"] !== undefined
                  ? h("pre", {
                      class: "stack",
                      text: valueText(ev.attributes["exception.stacktrace"]),
                    })
                  : null,
              ),
            ),
          )
        : null,
      section("Attributes", kvTable(span.attributes, "attr")),
      events.length > 0
        ? section(
            `Events (${events.length})`,
            events.map((ev) =>
              h(
                "div",
                { class: "event" },
                h(
                  "div",
                  { class: "event-head" },
                  h("span", { class: "mono", text: ev.name }),
                  h("span", {
                    class: "muted small",
                    text: ` ${formatOffset(ev.timeUs - m.t0)}`,
                  }),
                ),
                Object.keys(ev.attributes ?? {}).length > 0
                  ? kvTable(ev.attributes, "eventAttr")
                  : null,
              ),
            ),
          )
        : null,
      logs.length > 0
        ? section(
            `Logs (${logs.length})`,
            h(
              "ul",
              { class: "details-logs" },
              logs.map((l) => {
                const sev = severity(l);
                return h(
                  "li",
                  {},
                  h("span", {
                    class: "mono muted small",
                    text: formatOffset(l.timeUs - m.t0),
                  }),
                  " ",
                  h("span", { class: `sev sev-${sev.cls}`, text: sev.text }),
                  " ",
                  h("span", { text: logBody(l) }),
                );
              }),
            ),
          )
        : null,
      span.links.length > 0
        ? section(
            `Links (${span.links.length})`,
            h(
              "ul",
              { class: "details-links" },
              span.links.map((l) =>
                h(
                  "li",
                  {},
                  l.traceId === traceId
                    ? h("a", {
                        href: href(location.pathname, { span: l.spanId }),
                        onclick: jumpTo(l.spanId),
                        class: "mono",
                        text: `span ${l.spanId} (this trace)`,
                      })
                    : h("a", {
                        href: href(`/trace/${l.traceId}`, { span: l.spanId }),
                        class: "mono",
                        text: `${l.traceId} / ${l.spanId}`,
                      }),
                  Object.keys(l.attributes ?? {}).length > 0
                    ? kvTable(l.attributes, "linkAttr")
                    : null,
                ),
              ),
            ),
          )
        : null,
      section("Resource", kvTable(span.resource, "resource")),
    );
  }

  function onKey(e) {
    if (e.key === "Escape" && selected && model) select(null);
  }
  document.addEventListener("keydown", onKey);

  void load();

  return {
    update(next) {
      if (next.traceId !== traceId) return false;
      const want = next.params.get("span") || null;
      if (model && want !== selected) select(want, { scroll: true });
      return true;
    },
    destroy() {
      document.removeEventListener("keydown", onKey);
      controller?.abort();
      live?.close();
      clearTimeout(reloadTimer);
    },
  };
}
