// The live view: traces as they arrive, from the server's event stream,
// for one customer and/or service.
//
// The server pushes a trace's summary each time more of its spans land,
// so rows are keyed by trace id and replaced in place; new traces are
// placed by start time, newest on top, and the list is capped. Changing
// the filter starts a new stream (the server filters, not the page) and
// empties the list, since what was shown no longer matches.
//
// Leaving the page (to open a trace, say) keeps its rows and the number of
// the last change it heard of; coming back with the same filter shows those
// rows again at once and asks the server to replay what changed meanwhile
// (?after=). When the server no longer keeps all of that (more changed than
// it keeps, or it was restarted), the stream says so: the rows stay, dimmed
// until the replay or a later change brings them up to date, and the page
// says that some may be out of date and some traces missing. A reload
// starts empty, as a first visit does.
import { getJson, href, liveSource } from "./api.js";
import {
  h,
  notice,
  plural,
  setServiceOptions,
  traceRow,
  traceTableHead,
} from "./dom.js";

const MAX_ROWS = 200;
const RETRY_MS = 3000;

/**
 * The list as the page last left it: { filter, summaries (top first), stale
 * (the ids of rows that may be out of date), gap (whether changes were not
 * replayed), after }.
 */
let left;

export function liveView(container, route, app) {
  /** traceId → { summary, row } */
  const rows = new Map();
  let source;
  let retry;
  let debounce;
  let filter = { customer: "", service: "" };
  /** The number of the last change heard of, to resume after; "" for none. */
  let after = "";

  const customer = h("input", {
    type: "text",
    enterkeyhint: "search",
    class: "mono",
    placeholder: "customer id, e.g. c-42",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Customer id",
    dataset: { testid: "live-customer-input" },
  });
  const service = h(
    "select",
    { "aria-label": "Service", dataset: { testid: "live-service-select" } },
    h("option", { value: "", text: "any service" }),
  );
  const status = h("span", {
    class: "live-status",
    role: "status",
    dataset: { testid: "live-status", state: "connecting" },
  });
  const count = h("span", { class: "muted" });
  const gap = h("span", {
    class: "muted small",
    hidden: true,
    dataset: { testid: "live-gap" },
    text: "More changed while this list was not listening than the server keeps to replay: dimmed rows may be out of date, and traces may be missing (Search finds them).",
  });
  const tbody = h("tbody");
  const table = h("table", { class: "traces live" }, traceTableHead(), tbody);
  const wrap = h("div", { class: "table-wrap" }, table);
  const empty = h("div", { class: "live-empty" });
  const clear = h("button", {
    type: "button",
    text: "Clear",
    onclick: () => {
      rows.clear();
      tbody.replaceChildren();
      gap.hidden = true;
      refresh();
    },
  });
  container.append(
    h(
      "section",
      { class: "page", dataset: { testid: "live-view" } },
      h(
        "div",
        { class: "live-head" },
        h(
          "div",
          {},
          h("div", { class: "live-title" }, h("h1", { text: "Live" }), status),
          h("p", {
            class: "muted subtitle",
            text: "Traces as their spans arrive, for one customer or service.",
          }),
        ),
        h(
          "form",
          {
            class: "live-filters",
            onsubmit: (e) => {
              e.preventDefault();
              apply();
            },
          },
          customer,
          service,
          clear,
        ),
      ),
      h("div", { class: "results-head" }, count, gap),
      wrap,
      empty,
    ),
  );

  function setStatus(state, text) {
    status.dataset.state = state;
    status.dataset.customer = filter.customer;
    status.dataset.service = filter.service;
    status.replaceChildren(
      h("span", { class: "dot", "aria-hidden": "true" }),
      text,
    );
  }

  function refresh() {
    const n = rows.size;
    count.textContent =
      n === 0
        ? ""
        : `${plural(n, "trace")}, newest first${n >= MAX_ROWS ? ` (the latest ${MAX_ROWS})` : ""}`;
    wrap.hidden = n === 0;
    const who = [
      filter.customer && `for ${filter.customer}`,
      filter.service && `touching ${filter.service}`,
    ]
      .filter(Boolean)
      .join(" ");
    if (n > 0) empty.replaceChildren();
    else
      empty.replaceChildren(
        notice(
          "empty",
          `Waiting for traces${who ? ` ${who}` : ""}…`,
          "New traces appear here as their spans arrive; a trace's row fills in as more of its spans land.",
        ),
      );
  }

  function open(id, e) {
    const url = href(`/trace/${id}`);
    if (e?.metaKey || e?.ctrlKey) window.open(url, "_blank");
    else app.navigate(url);
  }

  function onPosition(e) {
    after = e.lastEventId;
  }

  /**
   * Some changes since `after` are not replayed. The rows stay, as they
   * are the list's latest word on their traces; those the replay brings
   * are drawn again, undimmed.
   */
  function onIncomplete() {
    for (const { row } of rows.values()) row.classList.add("stale");
    gap.hidden = false;
  }

  function onTrace(e) {
    after = e.lastEventId;
    let t;
    try {
      t = JSON.parse(e.data);
    } catch {
      return;
    }
    show(t);
    refresh();
    app.dataChanged();
  }

  function show(t, { fresh = true, stale = false } = {}) {
    const row = traceRow(t, {
      testid: "live-row",
      href: (id) => href(`/trace/${id}`),
      open,
    });
    if (fresh) row.classList.add("fresh");
    if (stale) row.classList.add("stale");
    // A known trace's row is placed again: its start moves earlier when
    // its root lands after a child span or its log lines.
    const known = rows.get(t.traceId);
    if (known) {
      known.row.remove();
      rows.delete(t.traceId);
    }
    // Before the newest of the older rows; at the end when none is older.
    let before = null;
    for (const other of rows.values())
      if (
        other.summary.startUs < t.startUs &&
        (before === null || other.summary.startUs > before.summary.startUs)
      )
        before = other;
    tbody.insertBefore(row, before?.row ?? null);
    rows.set(t.traceId, { summary: t, row });
    while (rows.size > MAX_ROWS) {
      const last = tbody.lastElementChild;
      rows.delete(last.dataset.traceId);
      last.remove();
    }
  }

  function connect() {
    source?.close();
    clearTimeout(retry);
    setStatus("connecting", "connecting…");
    const es = liveSource({ ...filter, after });
    source = es;
    es.onopen = () =>
      setStatus(
        "live",
        filter.customer || filter.service
          ? `live · ${[filter.customer, filter.service].filter(Boolean).join(" · ")}`
          : "live · all traces",
      );
    es.onerror = () => {
      if (es !== source) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gives up on errors such as 401; keep trying, slowly.
        setStatus("closed", "disconnected, retrying…");
        retry = setTimeout(connect, RETRY_MS);
      } else setStatus("reconnecting", "reconnecting…");
    };
    es.addEventListener("trace", onTrace);
    es.addEventListener("position", onPosition);
    es.addEventListener("incomplete", onIncomplete);
  }

  function apply() {
    clearTimeout(debounce);
    const next = { customer: customer.value.trim(), service: service.value };
    if (
      next.customer === filter.customer &&
      next.service === filter.service &&
      source
    )
      return;
    filter = next;
    app.setQuery(filter);
    app.setTitle(
      ["Live", filter.customer, filter.service].filter(Boolean).join(" · "),
    );
    rows.clear();
    tbody.replaceChildren();
    after = "";
    gap.hidden = true;
    if (
      left?.filter.customer === filter.customer &&
      left.filter.service === filter.service
    ) {
      for (const t of left.summaries)
        show(t, { fresh: false, stale: left.stale.has(t.traceId) });
      gap.hidden = !left.gap;
      after = left.after;
    }
    left = undefined;
    refresh();
    connect();
  }

  customer.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(apply, 400);
  });
  service.addEventListener("change", apply);

  void getJson("/api/services")
    .then(({ services }) => setServiceOptions(service, services))
    .catch(() => {});

  function fill(params) {
    customer.value = params.get("customer") ?? "";
    const svc = params.get("service") ?? "";
    if (svc && ![...service.options].some((o) => o.value === svc))
      service.append(h("option", { value: svc, text: svc }));
    service.value = svc;
  }

  fill(route.params);
  apply();
  customer.focus();

  return {
    update(next) {
      fill(next.params);
      apply();
    },
    destroy() {
      left = {
        filter,
        summaries: [...tbody.children].map(
          (row) => rows.get(row.dataset.traceId).summary,
        ),
        stale: new Set(
          [...tbody.querySelectorAll(".stale")].map(
            (row) => row.dataset.traceId,
          ),
        ),
        gap: !gap.hidden,
        after,
      };
      source?.close();
      source = undefined;
      clearTimeout(retry);
      clearTimeout(debounce);
    },
  };
}
