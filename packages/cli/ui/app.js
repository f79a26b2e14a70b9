// The viewer's entry point: a history-based router over four views
// (search at /, a trace at /trace/<id>, the live tail at /live, service
// panels at /services) and the top bar's store statistics.
//
// Each view is a function (container, route, app) returning an object with
// optional update(route) (return false to be rebuilt instead; a view
// without one is rebuilt for every navigation) and destroy().
// Every view keeps its state in the URL, so reloads and deep links land on
// the same page, and names its page (app.setTitle) whenever that state
// changes: the tab and the history list then say where each entry leads.
import { getJson, href } from "./api.js";
import { formatBytes, h, plural } from "./dom.js";
import { liveView } from "./live.js";
import { searchView } from "./search.js";
import { servicesView } from "./services.js";
import { traceView } from "./trace.js";

const main = document.getElementById("main");
const views = {
  search: searchView,
  trace: traceView,
  live: liveView,
  services: servicesView,
  missing: missingView,
};
let current;
let statsTimer;

const app = {
  /** Goes to an in-app URL (as built by href()). */
  navigate(url, { replace = false } = {}) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    render();
  },
  /** Refreshes the stats line soon (at most once a second). */
  dataChanged() {
    statsTimer ??= setTimeout(() => {
      statsTimer = undefined;
      void refreshStats();
    }, 1000);
  },
  /** Names the page in its tab and in the history: "<title> · Threadline". */
  setTitle(title) {
    document.title = title ? `${title} · Threadline` : "Threadline";
  },
  /** Changes the current URL's query without rendering again. */
  setQuery(params) {
    history.replaceState(null, "", href(location.pathname, params));
  },
};

function currentRoute() {
  const params = new URLSearchParams(location.search);
  params.delete("token");
  const path = location.pathname.replace(/\/+$/, "") || "/";
  if (path === "/") return { name: "search", params };
  if (path === "/live") return { name: "live", params };
  if (path === "/services") return { name: "services", params };
  const trace = /^\/trace\/([0-9a-fA-F]{32})$/.exec(path);
  if (trace) return { name: "trace", traceId: trace[1].toLowerCase(), params };
  return { name: "missing", params, path };
}

function render() {
  const route = currentRoute();
  for (const a of document.querySelectorAll(".nav [data-nav]")) {
    if (a.dataset.nav === route.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (
    current?.name === route.name &&
    current.view.update !== undefined &&
    current.view.update(route) !== false
  )
    return;
  void refreshStats();
  current?.view.destroy?.();
  main.replaceChildren();
  window.scrollTo(0, 0);
  current = {
    name: route.name,
    view: views[route.name](main, route, app) ?? {},
  };
}

function missingView(container, route, app) {
  app.setTitle("Nothing here");
  container.append(
    h(
      "section",
      { class: "page narrow" },
      h("h1", { text: "Nothing here" }),
      h(
        "p",
        { class: "muted" },
        "There is no page at ",
        h("code", { text: route.path }),
        ". ",
      ),
      h(
        "p",
        {},
        h("a", { href: href("/"), text: "Search traces" }),
        " or ",
        h("a", { href: href("/live"), text: "watch them live" }),
        ".",
      ),
    ),
  );
}

// In-app links navigate without reloading; modified clicks (new tab, …)
// are left to the browser.
document.addEventListener("click", (e) => {
  if (
    e.defaultPrevented ||
    e.button !== 0 ||
    e.metaKey ||
    e.ctrlKey ||
    e.shiftKey ||
    e.altKey
  )
    return;
  const a = e.target.closest?.("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/"))
    return;
  e.preventDefault();
  app.navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

// Top bar: links carry the token; the stats line refreshes while visible.
for (const a of document.querySelectorAll(".topbar a[href]"))
  a.setAttribute("href", href(a.getAttribute("href")));
const stats = document.querySelector("[data-testid=stats]");
async function refreshStats() {
  if (document.hidden) return;
  try {
    const s = await getJson("/api/stats");
    stats.dataset.state = "ok";
    stats.title = `store: ${s.path}\nreceived ${s.received?.spans ?? 0} spans, ${s.received?.logs ?? 0} logs; rejected ${s.received?.rejected ?? 0}, throttled ${s.received?.throttled ?? 0}`;
    stats.replaceChildren(
      h("span", { text: plural(s.traces, "trace") }),
      h("span", { text: plural(s.spans, "span") }),
      h("span", { text: plural(s.logs, "log") }),
      h("span", { text: formatBytes(s.sizeBytes) }),
    );
  } catch (err) {
    stats.dataset.state = "error";
    stats.title = "";
    stats.replaceChildren(
      h("span", {
        class: "stats-error",
        text: err.status === 401 ? "token required" : "server unreachable",
      }),
    );
  }
}
setInterval(refreshStats, 5000);
document.addEventListener("visibilitychange", refreshStats);

render();
