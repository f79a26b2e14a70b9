// Small helpers every view shares: building DOM without innerHTML (all
// text goes through text nodes, so telemetry can never inject markup),
// formatting of times and durations, the per-service colours, and the
// trace row used by both the search results and the live view.

/**
 * Creates an element. `props` keys: `class`, `text`, `dataset`, `style`
 * (custom properties allowed), `on<event>` handlers, anything else becomes
 * an attribute (skipped when null/undefined/false). Children may be nodes,
 * strings (as text) or arrays of those; null/undefined/false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") {
      for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    } else if (k.startsWith("on") && typeof v === "function")
      el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Attribute values as text: strings as they are, the rest as JSON. */
export function valueText(v) {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

export function formatDuration(us) {
  if (!Number.isFinite(us)) return "–";
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  if (us < 60_000_000) return `${(us / 1_000_000).toFixed(2)} s`;
  const s = Math.round(us / 1_000_000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
}

/** An offset from the start of a trace, e.g. "+12.4 ms". */
export function formatOffset(us) {
  // Log timestamps are often whole milliseconds, so a line written just as
  // its span started can land a little before it.
  return us < 1 ? "+0 ms" : `+${formatDuration(us)}`;
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hourCycle: "h23",
});
const day = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
});
const full = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

/** Local wall-clock time of an epoch-microsecond timestamp, to the ms. */
export function formatClock(us) {
  return clock.format(new Date(us / 1000));
}

/** "today", "yesterday" or a short date. */
export function formatDay(us) {
  const d = new Date(us / 1000);
  const today = new Date();
  const midnight = new Date(
    today.getFullYear(),
    today.getMonth(),
    today.getDate(),
  );
  const diff =
    (midnight.getTime() -
      new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime()) /
    86_400_000;
  if (diff === 0) return "today";
  if (diff === 1) return "yesterday";
  return day.format(d);
}

export function formatFull(us) {
  return full.format(new Date(us / 1000));
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

// Colours readable on the dark background and far from the error red, so
// a service never looks like a failure. A service keeps its colour across
// pages and reloads because it comes from a hash of its name.
const PALETTE = [
  "#6cb6ff",
  "#f27fc2",
  "#56d4a0",
  "#c39bff",
  "#e3d35b",
  "#4fd1e0",
  "#d9b38c",
  "#9aa5ff",
  "#a7d86e",
  "#a9b7c9",
  "#f5a65b",
  "#ffb3c7",
];

export function serviceColor(name) {
  // FNV-1a, then a murmur3 finaliser so that short similar names (api,
  // app, web) still land far apart in the palette.
  let x = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    x ^= name.charCodeAt(i);
    x = Math.imul(x, 0x01000193) >>> 0;
  }
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return PALETTE[(x >>> 0) % PALETTE.length];
}

/** A service name as a coloured chip. */
export function serviceChip(name, extra = {}) {
  return h("span", {
    class: `chip ${extra.class ?? ""}`.trim(),
    style: { "--svc": serviceColor(name) },
    dataset: { service: name },
    title: extra.title,
    text: name,
  });
}

/**
 * Where a trace's duration sits on a log scale from 100 µs to 10 s, as a
 * fraction: rows in different tables (and live rows arriving one by one)
 * stay comparable without rescaling.
 */
function durationFraction(us) {
  const f = (Math.log10(Math.max(us, 100)) - 2) / 5;
  return Math.min(1, Math.max(0.02, f));
}

/** The column headings matching traceRow. */
export function traceTableHead() {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      h("th", { class: "col-mark", "aria-label": "errors" }),
      h("th", { text: "Root" }),
      h("th", { text: "Customer" }),
      h("th", { text: "Started" }),
      h("th", { class: "num", text: "Duration" }),
      h("th", { class: "num col-spans", text: "Spans" }),
      h("th", { class: "col-services", text: "Services" }),
    ),
  );
}

/**
 * One trace as a table row. `open` is called with the trace id when the row
 * is activated; the root cell also holds a real link so the row can be
 * opened in a new tab.
 */
export function traceRow(t, { testid, href, open }) {
  const errors = t.errorCount > 0;
  const row = h(
    "tr",
    {
      class: `trace-row${errors ? " has-error" : ""}`,
      tabindex: "0",
      dataset: {
        testid,
        traceId: t.traceId,
        customer: t.customer ?? "",
        spanCount: String(t.spanCount),
      },
      onclick: (e) => {
        if (e.target.closest("a")) return;
        open(t.traceId, e);
      },
      onkeydown: (e) => {
        if (e.key === "Enter") open(t.traceId, e);
      },
    },
    h(
      "td",
      { class: "col-mark" },
      errors
        ? h("span", {
            class: "error-mark",
            dataset: { testid: "error-mark" },
            title: `${plural(t.errorCount, "span")} failed`,
            text: "✕",
          })
        : null,
    ),
    h(
      "td",
      { class: "col-root" },
      serviceChip(t.rootService),
      h("a", {
        class: "root-name",
        href: href(t.traceId),
        text: t.inProgress ? "no span yet" : t.rootName,
        title: t.inProgress ? undefined : t.rootName,
      }),
      // Spans are sent as they end: a trace of log lines alone is a request
      // still running.
      t.inProgress
        ? h("span", {
            class: "pill quiet in-progress",
            dataset: { testid: "in-progress" },
            title:
              "No span of this trace has arrived yet: its log lines so far",
            text: "in progress",
          })
        : null,
      errors
        ? h("span", {
            class: "error-count",
            text: plural(t.errorCount, "error"),
          })
        : null,
    ),
    h(
      "td",
      { class: "col-customer mono" },
      t.customer ?? h("span", { class: "muted", text: "—" }),
    ),
    h(
      "td",
      { class: "col-time", title: formatFull(t.startUs) },
      h("span", { class: "mono", text: formatClock(t.startUs) }),
      " ",
      h("span", { class: "muted small", text: formatDay(t.startUs) }),
    ),
    h(
      "td",
      { class: "col-duration num" },
      h(
        "span",
        { class: "dur-track", "aria-hidden": "true" },
        h("span", {
          class: "dur-bar",
          style: {
            width: `${(durationFraction(t.durationUs) * 100).toFixed(1)}%`,
          },
        }),
      ),
      h("span", { class: "mono", text: formatDuration(t.durationUs) }),
    ),
    h("td", { class: "col-spans num mono", text: String(t.spanCount) }),
    h(
      "td",
      { class: "col-services" },
      h(
        "span",
        { class: "chips" },
        t.services.map((s) => serviceChip(s)),
      ),
    ),
  );
  return row;
}

/** Fills a service <select> ("any service" first), keeping its selection. */
export function setServiceOptions(select, services) {
  const selected = select.value;
  const names =
    selected && !services.includes(selected)
      ? [...services, selected]
      : services;
  select.replaceChildren(
    h("option", { value: "", text: "any service" }),
    ...names.map((s) => h("option", { value: s, text: s })),
  );
  select.value = selected;
}

/** A message box for empty states and errors. */
export function notice(kind, title, ...body) {
  return h(
    "div",
    {
      class: `notice notice-${kind}`,
      role: kind === "error" ? "alert" : "status",
    },
    h("div", { class: "notice-title", text: title }),
    body.length > 0 ? h("div", { class: "notice-body" }, body) : null,
  );
}
