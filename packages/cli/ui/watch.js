// "Watch this customer": services log this customer's requests at debug
// (or trace) level and sample every one of their traces, until the chosen
// time is up. The list lives in the dev server; services read it every few
// seconds, so the change reaches them without a restart.
import { getJson, sendJson } from "./api.js";
import { h } from "./dom.js";

const DURATIONS = [
  [15 * 60_000, "15 minutes"],
  [30 * 60_000, "30 minutes"],
  [60 * 60_000, "1 hour"],
  [4 * 60 * 60_000, "4 hours"],
  [24 * 60 * 60_000, "1 day"],
];

const until = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

function left(ms) {
  const m = Math.max(1, Math.round(ms / 60_000));
  return m < 120 ? `${m} min left` : `${(m / 60).toFixed(1)} h left`;
}

/**
 * The control for one customer. Returns { el, destroy }: it refreshes
 * itself while shown, so an expiry or a change from the CLI appears.
 */
export function watchControl(customer) {
  const el = h("div", {
    class: "watch",
    dataset: { testid: "watch", customer, state: "loading" },
  });
  let timer;
  let busy = false;

  const show = (entries, error) => {
    const entry = entries?.find((e) => e.customer === customer);
    el.dataset.state = error ? "error" : entry ? "watched" : "idle";
    if (error) {
      el.replaceChildren(h("span", { class: "watch-error", text: error }));
      return;
    }
    if (entry) {
      const end = Date.parse(entry.until);
      el.replaceChildren(
        h("span", { class: "watch-dot", "aria-hidden": "true" }),
        h(
          "span",
          { class: "watch-text", dataset: { testid: "watch-status" } },
          h("strong", { text: `Watching ${customer}` }),
          `: ${entry.level} logs and every trace until ${until.format(new Date(end))} (${left(end - Date.now())})`,
        ),
        h("button", {
          type: "button",
          text: "Stop watching",
          dataset: { testid: "unwatch-button" },
          onclick: () =>
            act(() =>
              sendJson(
                "DELETE",
                `/api/watch?customer=${encodeURIComponent(customer)}`,
              ),
            ),
        }),
      );
      return;
    }
    const duration = h(
      "select",
      { "aria-label": "For how long", dataset: { testid: "watch-duration" } },
      DURATIONS.map(([ms, text]) =>
        h("option", { value: String(ms), text, selected: ms === 30 * 60_000 }),
      ),
    );
    const level = h(
      "select",
      { "aria-label": "Log level", dataset: { testid: "watch-level" } },
      h("option", { value: "debug", text: "debug logs" }),
      h("option", { value: "trace", text: "trace logs" }),
    );
    el.replaceChildren(
      h("button", {
        type: "button",
        class: "primary",
        text: `Watch ${customer}`,
        title:
          "Log this customer's requests at debug level in every service and keep all of their traces, for a while",
        dataset: { testid: "watch-button" },
        onclick: () =>
          act(() =>
            sendJson("POST", "/api/watch", {
              customer,
              forMs: Number(duration.value),
              level: level.value,
            }),
          ),
      }),
      h("span", { class: "muted", text: "for" }),
      duration,
      h("span", { class: "muted", text: "with" }),
      level,
    );
  };

  async function act(call) {
    if (busy) return;
    busy = true;
    try {
      const doc = await call();
      show(doc.watch);
    } catch (err) {
      show(undefined, err.message);
    } finally {
      busy = false;
    }
  }

  async function refresh() {
    if (busy || document.hidden) return;
    try {
      const doc = await getJson("/api/watch");
      if (!busy) show(doc.watch);
    } catch (err) {
      show(undefined, err.message);
    }
  }

  void refresh();
  timer = setInterval(refresh, 15_000);
  return {
    el,
    destroy() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
