// The services view (/services?service=…&since=…): one service's request
// rate, error rate and latency, its runtime (event-loop delay, loop
// utilisation, CPU, memory), its components' health and its alarms, drawn
// from the metrics and alarm log records it exported. Refreshes every 5 s.
import { getJson } from "./api.js";
import { h, notice, serviceColor } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;
const RANGES = ["15m", "1h", "6h", "24h"];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

function format(v, unit) {
  if (!Number.isFinite(v)) return "–";
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${unit}`;
}

/** A line chart of [epoch ms, value] points, with its latest value. */
function chart({ title, unit, points, color, testid, max }) {
  const W = 320;
  const H = 90;
  const last = points.at(-1)?.[1];
  const box = h(
    "figure",
    { class: "chart", dataset: { testid, points: String(points.length) } },
    h(
      "figcaption",
      {},
      h("span", { text: title }),
      h("strong", {
        class: "mono",
        text: last === undefined ? "no data yet" : format(last, unit),
        dataset: { testid: `${testid}-value` },
      }),
    ),
  );
  const plot = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    width: "100%",
    height: H,
    role: "img",
    "aria-label": `${title} over time`,
  });
  if (points.length > 0) {
    const t0 = points[0][0];
    const t1 = Math.max(points.at(-1)[0], t0 + 1);
    const top = Math.max(max ?? 0, ...points.map((p) => p[1])) || 1;
    const x = (t) => ((t - t0) / (t1 - t0)) * (W - 4) + 2;
    const y = (v) => H - 4 - (v / top) * (H - 12);
    const d = points
      .map(
        (p, i) =>
          `${i === 0 ? "M" : "L"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`,
      )
      .join(" ");
    plot.append(
      svg("line", { x1: 0, x2: W, y1: H - 4, y2: H - 4, class: "axis" }),
      svg("path", { d, fill: "none", stroke: color, "stroke-width": 2 }),
      svg(
        "text",
        { x: 4, y: 10, class: "scale" },
        document.createTextNode(format(top, unit)),
      ),
    );
    for (const p of points.length <= 60 ? points : [])
      plot.append(
        svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2, fill: color }),
      );
  }
  box.append(plot);
  return box;
}

const STATUS = ["healthy", "degraded", "unhealthy"];

export function servicesView(container, route, app) {
  let timer;
  let controller;
  const select = h("select", {
    "aria-label": "Service",
    dataset: { testid: "services-select" },
    onchange: () => {
      app.setQuery({ service: select.value, since: range.value });
      void load();
    },
  });
  const range = h(
    "select",
    {
      "aria-label": "Time range",
      dataset: { testid: "services-range" },
      onchange: () => {
        app.setQuery({ service: select.value, since: range.value });
        void load();
      },
    },
    RANGES.map((r) => h("option", { value: r, text: `last ${r}` })),
  );
  range.value = RANGES.includes(route.params.get("since"))
    ? route.params.get("since")
    : "1h";
  const body = h("div", {
    class: "services-body",
    dataset: { testid: "services-body" },
  });
  container.append(
    h(
      "section",
      { class: "page services" },
      h(
        "div",
        { class: "services-bar" },
        h("h1", { text: "Services" }),
        select,
        range,
      ),
      body,
    ),
  );

  async function load() {
    app.setTitle(["Services", select.value].filter(Boolean).join(" · "));
    controller?.abort();
    controller = new AbortController();
    let data;
    try {
      data = await getJson(
        "/api/metrics",
        {
          service: select.value || route.params.get("service") || "",
          since: range.value,
        },
        { signal: controller.signal },
      );
    } catch (err) {
      if (err.name === "AbortError") return;
      body.replaceChildren(
        notice("error", "Could not load metrics", err.message),
      );
      return;
    }
    const known = new Set([...select.options].map((o) => o.value));
    for (const s of data.services)
      if (!known.has(s)) select.append(h("option", { value: s, text: s }));
    if (data.service) select.value = data.service;
    app.setTitle(["Services", data.service].filter(Boolean).join(" · "));
    if (data.panels === undefined) {
      body.replaceChildren(
        notice(
          "empty",
          "No metrics yet",
          "Services export metrics every 15 s (OTEL_METRIC_EXPORT_INTERVAL); they appear here after their first export.",
        ),
      );
      return;
    }
    const p = data.panels;
    const color = serviceColor(data.service);
    const charts = h(
      "div",
      { class: "charts" },
      chart({
        title: "Requests",
        unit: "/s",
        points: p.requestsPerSecond,
        color,
        testid: "chart-requests",
      }),
      chart({
        title: "Errors",
        unit: "/s",
        points: p.errorsPerSecond,
        color: "#ff7b72",
        testid: "chart-errors",
      }),
      chart({
        title: "Mean latency",
        unit: " ms",
        points: p.latencyMs,
        color,
        testid: "chart-latency",
      }),
      chart({
        title: "Event-loop delay p99",
        unit: " ms",
        points: p.eventLoopDelayP99Ms,
        color,
        testid: "chart-loop-delay",
      }),
      chart({
        title: "Event-loop utilisation",
        unit: "",
        points: p.eventLoopUtilization,
        color,
        testid: "chart-loop-utilization",
        max: 1,
      }),
      chart({
        title: "CPU",
        unit: " cores",
        points: p.cpuShare,
        color,
        testid: "chart-cpu",
      }),
      chart({
        title: "RSS",
        unit: " MB",
        points: p.rssMb,
        color,
        testid: "chart-rss",
      }),
      chart({
        title: "Heap",
        unit: " MB",
        points: p.heapMb,
        color,
        testid: "chart-heap",
      }),
    );
    const health = h(
      "table",
      { class: "health", dataset: { testid: "services-health" } },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { text: "Component" }),
          h("th", { text: "Status" }),
        ),
      ),
      h(
        "tbody",
        {},
        Object.entries(p.health).map(([name, pts]) => {
          const status = STATUS[pts.at(-1)?.[1] ?? 0] ?? "unknown";
          return h(
            "tr",
            { dataset: { status } },
            h("td", { class: "mono", text: name }),
            h("td", { class: `status-${status}`, text: status }),
          );
        }),
      ),
    );
    const alarmRow = (e) =>
      h(
        "tr",
        { dataset: { action: e.action, severity: e.severity } },
        h("td", {
          class: "mono",
          text: new Date(e.timeMs).toLocaleTimeString(),
        }),
        h("td", { text: e.action === "raise" ? "raised" : "cleared" }),
        h("td", { class: `severity-${e.severity}`, text: e.severity }),
        // Instances raise the same alarm apart; which one is on hover.
        h("td", {
          class: "mono",
          text: e.name,
          title: e.instance ? `instance ${e.instance}` : undefined,
        }),
        h("td", { text: e.reason }),
      );
    const alarms = h(
      "div",
      { class: "alarms" },
      h("h2", { text: `Active alarms (${data.alarms.active.length})` }),
      h(
        "table",
        { dataset: { testid: "alarms-active" } },
        h("tbody", {}, data.alarms.active.map(alarmRow)),
      ),
      h("h2", { text: "Alarm history" }),
      h(
        "table",
        { dataset: { testid: "alarms-history" } },
        h("tbody", {}, data.alarms.history.map(alarmRow)),
      ),
    );
    body.replaceChildren(
      charts,
      h(
        "div",
        { class: "services-side" },
        h("h2", { text: "Health" }),
        health,
        alarms,
      ),
    );
  }

  void load();
  timer = setInterval(() => void load(), REFRESH_MS);
  return {
    destroy() {
      clearInterval(timer);
      controller?.abort();
    },
  };
}
