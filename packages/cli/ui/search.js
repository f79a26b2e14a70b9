// The search page: the customer id first, the other filters second, and a
// table of matching traces. The query lives in the page URL (/?customer=…),
// so a search can be reloaded, shared, and returned to with Back.
import { getJson, href } from "./api.js";
import {
  formatClock,
  formatDay,
  h,
  notice,
  plural,
  setServiceOptions,
  traceRow,
  traceTableHead,
} from "./dom.js";
import { watchControl } from "./watch.js";

const RANGES = [
  ["15m", "last 15 minutes"],
  ["1h", "last hour"],
  ["6h", "last 6 hours"],
  ["24h", "last 24 hours"],
  ["7d", "last 7 days"],
  ["", "any time"],
];
// The time range option standing for a link's from/to window.
const WINDOW = "window";
const LIMIT = 50;

/** A time as the API reads it (epoch milliseconds or ISO 8601), in epoch ms. */
function timeMs(text) {
  return /^\d+$/.test(text) ? Number(text) : Date.parse(text);
}

/** A from/to end as the page says it: "12:00:01.250 today". */
function describeTime(text) {
  const ms = timeMs(text);
  if (!Number.isFinite(ms)) return text;
  return `${formatClock(ms * 1000)} ${formatDay(ms * 1000)}`;
}

/** "between … and …", "from … on" or "up to …"; "" without either end. */
function describeWindow(from, to) {
  if (from && to)
    return `between ${describeTime(from)} and ${describeTime(to)}`;
  if (from) return `from ${describeTime(from)} on`;
  if (to) return `up to ${describeTime(to)}`;
  return "";
}

/** The page's query as href() takes it, with `changes` over it ("" drops a key). */
function withParams(params, changes) {
  const out = {};
  for (const k of new Set(params.keys())) out[k] = params.getAll(k);
  return { ...out, ...changes };
}

/**
 * `a=b, c=d` into ["a=b", "c=d"]. A comma only separates when another
 * key= follows, so values may themselves contain commas.
 */
export function splitAttributes(text) {
  return text
    .split(/[,\n]\s*(?=[^\s=,]+=)/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function searchView(container, route, app) {
  let controller;
  let watch;
  const field = (label, control, cls = "") =>
    h(
      "label",
      { class: `field ${cls}`.trim() },
      h("span", { class: "field-label", text: label }),
      control,
    );

  const customer = h("input", {
    type: "text",
    enterkeyhint: "search",
    name: "customer",
    class: "customer-input mono",
    placeholder: "customer id, e.g. c-42",
    autocomplete: "off",
    spellcheck: "false",
    autofocus: true,
    "aria-label": "Customer id",
    dataset: { testid: "customer-input" },
  });
  const service = h(
    "select",
    { name: "service", dataset: { testid: "service-select" } },
    h("option", { value: "", text: "any service" }),
  );
  const operation = h("input", {
    type: "text",
    name: "operation",
    placeholder: "e.g. /orders",
    autocomplete: "off",
    spellcheck: "false",
    dataset: { testid: "operation-input" },
  });
  const minDuration = h("input", {
    type: "text",
    name: "minDuration",
    class: "short",
    placeholder: "e.g. 250ms",
    autocomplete: "off",
    spellcheck: "false",
    dataset: { testid: "min-duration-input" },
  });
  const since = h(
    "select",
    { name: "since", dataset: { testid: "range-select" } },
    RANGES.map(([value, text]) => h("option", { value, text })),
  );
  const attributes = h("input", {
    type: "text",
    name: "attr",
    class: "mono",
    placeholder: "key=value, key=value",
    autocomplete: "off",
    spellcheck: "false",
    dataset: { testid: "attributes-input" },
  });
  // A date-range link's window (from, to) has no control of its own: it is
  // kept for the next search until another time range is chosen.
  const windowFrom = h("input", { type: "hidden", name: "from" });
  const windowTo = h("input", { type: "hidden", name: "to" });
  const errors = h("input", {
    type: "checkbox",
    name: "errors",
    dataset: { testid: "errors-checkbox" },
  });

  const form = h(
    "form",
    {
      class: "search-form",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        app.navigate(href("/", formParams()));
      },
    },
    h(
      "div",
      { class: "search-main" },
      customer,
      h("button", {
        type: "submit",
        class: "primary",
        dataset: { testid: "search-button" },
        text: "Search",
      }),
    ),
    h(
      "div",
      { class: "search-filters" },
      field("Service", service),
      field("Operation or route", operation),
      field("Min duration", minDuration),
      field("Time range", since),
      field("Attributes", attributes, "grow"),
      h(
        "label",
        { class: "check" },
        errors,
        h("span", { text: "errors only" }),
      ),
      windowFrom,
      windowTo,
    ),
  );
  const watchSlot = h("div", { class: "watch-slot" });
  const results = h("section", {
    class: "results",
    dataset: { testid: "results" },
    "aria-live": "polite",
  });
  container.append(
    h(
      "section",
      { class: "page" },
      h("div", { class: "search-panel" }, form),
      watchSlot,
      results,
    ),
  );

  function formParams() {
    const inWindow = since.value === WINDOW;
    return {
      customer: customer.value.trim(),
      service: service.value,
      operation: operation.value.trim(),
      errors: errors.checked ? "1" : "",
      minDuration: minDuration.value.trim(),
      since: inWindow ? "" : since.value,
      from: inWindow ? windowFrom.value : "",
      to: inWindow ? windowTo.value : "",
      attr: splitAttributes(attributes.value),
    };
  }

  function fill(params) {
    customer.value = params.get("customer") ?? "";
    const svc = params.get("service") ?? "";
    if (svc && ![...service.options].some((o) => o.value === svc))
      service.append(h("option", { value: svc, text: svc }));
    service.value = svc;
    operation.value = params.get("operation") ?? "";
    errors.checked = params.get("errors") === "1";
    minDuration.value = params.get("minDuration") ?? "";
    windowFrom.value = params.get("from") ?? "";
    windowTo.value = params.get("to") ?? "";
    since.querySelector(`option[value=${WINDOW}]`)?.remove();
    // The API reads `from` over `since`, and so does the form.
    const windowText = describeWindow(windowFrom.value, windowTo.value);
    if (windowText !== "") {
      since.append(h("option", { value: WINDOW, text: windowText }));
      since.value = WINDOW;
    } else {
      const range = params.get("since") ?? "";
      if (![...since.options].some((o) => o.value === range))
        since.append(h("option", { value: range, text: `last ${range}` }));
      since.value = range;
    }
    attributes.value = params.getAll("attr").join(", ");
  }

  /** "in the last hour, in orders, errors only" for headings and empty states. */
  function describeFilters(params) {
    const parts = [];
    const svc = params.get("service");
    if (svc) parts.push(`in ${svc}`);
    const op = params.get("operation");
    if (op) parts.push(`doing ${op}`);
    const windowText = describeWindow(params.get("from"), params.get("to"));
    const range = RANGES.find(([v]) => v === (params.get("since") ?? ""));
    if (windowText !== "") parts.push(windowText);
    else if (params.get("since"))
      parts.push(`in the ${range ? range[1] : `last ${params.get("since")}`}`);
    if (params.get("minDuration"))
      parts.push(`slower than ${params.get("minDuration")}`);
    for (const a of params.getAll("attr")) parts.push(`with ${a}`);
    if (params.get("errors") === "1") parts.push("with errors");
    return parts.join(", ");
  }

  /** The watch control follows the customer searched for. */
  function showWatch(who) {
    if (watch?.el.dataset.customer === who) return;
    watch?.destroy();
    watch = who ? watchControl(who) : undefined;
    watchSlot.replaceChildren(...(watch ? [watch.el] : []));
  }

  async function run(params) {
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    const who = params.get("customer") ?? "";
    app.setTitle(who ? `Traces for ${who}` : "Search");
    showWatch(who);
    results.dataset.state = "loading";
    results.dataset.customer = who;
    results.classList.add("loading");
    // `cursor` is the page's position among the results, the last trace of
    // the page before as the API named it. Links made before there were
    // cursors hold `until`, traces that started up to it, as the API's `to`
    // reads it.
    const query = Object.fromEntries(
      [...params.entries()].filter(([k]) => k !== "attr" && k !== "until"),
    );
    query.attr = params.getAll("attr");
    const until = params.get("until") ?? "";
    if (until !== "")
      query.to =
        query.to === undefined || timeMs(until) < timeMs(query.to)
          ? until
          : query.to;
    const paged = until !== "" || (params.get("cursor") ?? "") !== "";
    let traces;
    let next;
    try {
      query.limit = String(LIMIT);
      ({ traces, next } = await getJson("/api/search", query, { signal }));
    } catch (err) {
      if (signal.aborted) return;
      results.classList.remove("loading");
      results.dataset.state = "error";
      results.replaceChildren(
        notice(
          "error",
          err.status === 400
            ? "That search does not parse"
            : "The search failed",
          err.message,
        ),
      );
      return;
    }
    if (signal.aborted) return;
    results.classList.remove("loading");
    results.dataset.state = "done";
    results.dataset.count = String(traces.length);
    const filters = describeFilters(params);
    const pager =
      !paged && next === undefined
        ? null
        : h(
            "nav",
            { class: "pager", "aria-label": "Older and newer results" },
            paged
              ? h("a", {
                  href: href(
                    "/",
                    withParams(params, { until: "", cursor: "" }),
                  ),
                  dataset: { testid: "newest-link" },
                  text: "← Newest",
                })
              : null,
            next !== undefined
              ? h("a", {
                  href: href(
                    "/",
                    withParams(params, { until: "", cursor: next }),
                  ),
                  dataset: { testid: "older-link" },
                  text: "Older →",
                })
              : null,
          );
    if (traces.length === 0) {
      const title = who ? `No traces for ${who}` : "No traces yet";
      results.replaceChildren(
        notice(
          "empty",
          filters ? `${title} ${filters}` : title,
          who
            ? h(
                "p",
                {},
                "Customer ids match exactly. Check the spelling, widen the time range, or ",
                h("a", {
                  href: href("/live", { customer: who }),
                  text: `watch ${who} live`,
                }),
                " while you reproduce the request.",
              )
            : h(
                "p",
                {},
                "Point your services at this dev server (OTEL_EXPORTER_OTLP_ENDPOINT, port 4318 by default) and send a request.",
              ),
        ),
        // replaceChildren writes a null as the text "null".
        pager ?? "",
      );
      return;
    }
    const open = (id, e) => {
      const url = href(`/trace/${id}`);
      if (e?.metaKey || e?.ctrlKey) window.open(url, "_blank");
      else app.navigate(url);
    };
    results.replaceChildren(
      h(
        "div",
        { class: "results-head" },
        h("h2", {
          text: who
            ? `Traces for ${who}`
            : params.get("from") || params.get("to")
              ? "Traces"
              : "Recent traces",
        }),
        h(
          "span",
          { class: "muted" },
          `${plural(traces.length, "trace")}${filters ? ` ${filters}` : ""}, newest first`,
          paged
            ? `, up to ${formatClock(traces[0].startUs)} ${formatDay(traces[0].startUs)}`
            : "",
          next !== undefined ? " (older ones on the next page)" : "",
        ),
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "traces" },
          traceTableHead(),
          h(
            "tbody",
            {},
            traces.map((t) =>
              traceRow(t, {
                testid: "result-row",
                href: (id) => href(`/trace/${id}`),
                open,
              }),
            ),
          ),
        ),
      ),
      pager ?? "",
    );
  }

  function onKey(e) {
    if (e.key === "/" && !e.target.closest("input, select, textarea")) {
      e.preventDefault();
      customer.focus();
      customer.select();
    }
  }
  document.addEventListener("keydown", onKey);

  void getJson("/api/services")
    .then(({ services }) => setServiceOptions(service, services))
    .catch(() => {});

  fill(route.params);
  void run(route.params);
  customer.focus();

  return {
    update(next) {
      fill(next.params);
      void run(next.params);
    },
    destroy() {
      controller?.abort();
      watch?.destroy();
      document.removeEventListener("keydown", onKey);
    },
  };
}
