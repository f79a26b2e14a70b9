// The `threadline dev` viewer in a real Chromium, over real data: the
// example shop (gateway, orders, worker, a third-party payments provider,
// PostgreSQL, RabbitMQ) exports to a dev server, and the test uses the
// viewer the way a person would: search a customer id, open a trace, follow
// a log line to its span, read a span's attributes, watch traces arrive
// live. A second dev server with a token checks the page is useless without
// it and fully working with it. Screenshots are kept as test artefacts, and
// one goes to the README.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { LogsEncoder, TraceEncoder, type SpanData } from "@threadline/otlp";
import {
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  type Shop,
} from "@threadline/test-support";
import {
  startDevServer,
  type DevServer,
  type TraceDetail,
  type TraceSummary,
} from "../src/index.ts";
import { spanData } from "./span-data.ts";

const SPANS_PER_ORDER = 9;
const LOGS_PER_ORDER = 5;
const ARTIFACTS = new URL("../../../test-artifacts/viewer/", import.meta.url);
const DOC_IMAGES = new URL("../../../docs/images/", import.meta.url);
const artifact = (name: string) => fileURLToPath(new URL(name, ARTIFACTS));

/** A screenshot with the pointer out of the way and animations settled. */
async function screenshot(
  page: Page,
  path: string,
  fullPage = false,
): Promise<void> {
  await page.mouse.move(0, 0);
  await page.screenshot({ path, fullPage, animations: "disabled" });
}

/** Waits for the tab's title, which a page sets once it knows what it shows. */
async function assertTitle(page: Page, expected: string): Promise<void> {
  let title = "";
  try {
    await waitFor(async () => (title = await page.title()) === expected, {
      timeoutMs: 5_000,
    });
  } catch {
    assert.equal(title, expected, "the tab's title");
  }
}

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-gpu",
  "--disable-dev-shm-usage",
];

async function placeOrder(
  shop: Shop,
  customer: string,
  item: string,
): Promise<void> {
  const res = await fetch(`${shop.gateway.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-customer-id": customer },
    body: JSON.stringify({ item, quantity: 2 }),
  });
  assert.equal(res.status, 201, `order for ${customer}: ${await res.text()}`);
}

async function search(
  dev: DevServer,
  params: Record<string, string>,
): Promise<TraceSummary[]> {
  const res = await fetch(
    `${dev.viewerUrl}/api/search?${new URLSearchParams(params)}`,
  );
  assert.equal(res.status, 200);
  return ((await res.json()) as { traces: TraceSummary[] }).traces;
}

/** Waits until `customer` has exactly `count` traces, all with every span and log line in. */
async function completeTraces(
  dev: DevServer,
  customer: string,
  count: number,
): Promise<TraceSummary[]> {
  return waitFor(
    async () => {
      const traces = await search(dev, { customer });
      if (traces.length !== count) return false;
      if (traces.some((t) => t.spanCount !== SPANS_PER_ORDER)) return false;
      for (const t of traces) {
        const res = await fetch(`${dev.viewerUrl}/api/traces/${t.traceId}`);
        const detail = (await res.json()) as TraceDetail;
        if (detail.logs.length !== LOGS_PER_ORDER) return false;
      }
      return traces;
    },
    {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: `${count} complete traces for ${customer}`,
    },
  );
}

describe("the threadline dev viewer in a browser", () => {
  let dev: DevServer;
  let shop: Shop;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  let alarmRules: string | undefined;

  before(async () => {
    dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
    });
    // An alarm every service raises at once, for the services view.
    alarmRules = join(
      tmpdir(),
      `threadline-viewer-alarms-${randomBytes(4).toString("hex")}.json`,
    );
    await writeFile(
      alarmRules,
      JSON.stringify({
        rules: [
          {
            name: "memory_in_use",
            kind: "metric",
            metric: "process.memory.usage",
            above: 1,
            severity: "warning",
            description: "the process holds memory (always true)",
          },
        ],
      }),
    );
    const [databaseUrl, amqpUrl] = await Promise.all([
      testDatabase(),
      testBroker(),
      mkdir(ARTIFACTS, { recursive: true }),
      mkdir(DOC_IMAGES, { recursive: true }),
    ]);
    [shop, browser] = await Promise.all([
      startShop({
        otlpEndpoint: dev.otlpUrl,
        databaseUrl,
        amqpUrl,
        env: {
          OTEL_BSP_SCHEDULE_DELAY: "100",
          OTEL_BLRP_SCHEDULE_DELAY: "100",
          // The services find the watch list next to the OTLP endpoint by themselves.
          THREADLINE_WATCH_INTERVAL: "200",
          OTEL_METRIC_EXPORT_INTERVAL: "500",
          THREADLINE_ALARMS_FILE: alarmRules,
          THREADLINE_ALARMS_INTERVAL: "300",
        },
      }),
      chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: CHROMIUM_ARGS,
      }),
    ]);
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("pageerror", (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await browser?.close();
    await shop?.stop();
    await dev?.close();
    await stopTestServers();
    if (alarmRules !== undefined) await rm(alarmRules, { force: true });
  });

  let c42: TraceSummary[];

  it("finds exactly one customer's traces by customer id", async () => {
    await placeOrder(shop, "c-42", "book");
    await placeOrder(shop, "c-7", "pen");
    await placeOrder(shop, "c-42", "lamp");
    c42 = await completeTraces(dev, "c-42", 2);
    const c7 = await completeTraces(dev, "c-7", 1);

    await page.goto(`${dev.viewerUrl}/`);
    const customer = page.getByTestId("customer-input");
    await customer.waitFor();
    assert.equal(
      await page.evaluate("document.activeElement?.dataset.testid"),
      "customer-input",
      "the customer id box has the focus",
    );
    // The service filter offers the services the store has seen.
    await page
      .locator("[data-testid=service-select] option[value=worker]")
      .waitFor({ state: "attached" });
    await customer.fill("c-42");
    await page.getByTestId("search-button").click();
    await page
      .locator('[data-testid=results][data-state=done][data-customer="c-42"]')
      .waitFor();

    const rows = page.getByTestId("result-row");
    assert.equal(await rows.count(), 2);
    const shown = await rows.evaluateAll((els) =>
      els.map((el) => el.getAttribute("data-trace-id")),
    );
    assert.deepEqual(
      new Set(shown),
      new Set(c42.map((t) => t.traceId)),
      "the rows are c-42's traces",
    );
    assert.ok(!shown.includes(c7[0]!.traceId), "c-7's trace is not listed");
    assert.equal(
      await page
        .locator('[data-testid=result-row][data-customer="c-7"]')
        .count(),
      0,
    );
    // A page with no other page to go to has no pager, and says nothing of it.
    assert.doesNotMatch(await page.getByTestId("results").innerText(), /null/);
    const first = await rows.first().innerText();
    for (const text of ["gateway", "POST /orders", "c-42", "orders", "worker"])
      assert.ok(first.includes(text), `the row shows ${text}: ${first}`);
    assert.match(new URL(page.url()).search, /customer=c-42/);
    await screenshot(page, artifact("search.png"));

    // The search is a deep link: a reload shows the same rows.
    await page.reload();
    await page
      .locator('[data-testid=results][data-state=done][data-customer="c-42"]')
      .waitFor();
    assert.equal(await page.getByTestId("result-row").count(), 2);
    assert.equal(await page.getByTestId("customer-input").inputValue(), "c-42");
  });

  it("shows a trace across services with its log lines, linked to their spans", async () => {
    const rows = page.getByTestId("result-row");
    const traceId = await rows.first().getAttribute("data-trace-id");
    await rows.first().click();
    const view = page.locator(
      `[data-testid=trace-view][data-trace-id="${traceId}"][data-state=ready]`,
    );
    await view.waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${traceId}`);

    const spans = page.getByTestId("span-row");
    assert.equal(await spans.count(), SPANS_PER_ORDER);
    for (const service of ["gateway", "orders", "worker"]) {
      const n = await page
        .locator(`[data-testid=span-row][data-service="${service}"]`)
        .count();
      assert.ok(n > 0, `span rows from ${service}`);
      const logs = await page
        .locator(`[data-testid=log-row][data-service="${service}"]`)
        .count();
      assert.ok(logs > 0, `log rows from ${service}`);
    }
    assert.equal(await page.getByTestId("log-row").count(), LOGS_PER_ORDER);
    const sql = spans.filter({ hasText: "SELECT price_cents FROM products" });
    assert.equal(await sql.count(), 1, "the product lookup shows its SQL");
    assert.equal(await sql.getAttribute("data-service"), "orders");
    const thirdParty = spans.filter({ hasText: "payments-provider" });
    assert.equal(await thirdParty.count(), 1, "the third-party call is named");
    assert.equal(await thirdParty.getAttribute("data-service"), "worker");
    assert.match(await thirdParty.innerText(), /POST[\s\S]*\/v1\/charges/);
    // A trace drawn whole has its ruler and rows, and no notice or stray
    // text under them.
    assert.deepEqual(
      await page.evaluate(
        `[...document.querySelector(".waterfall").childNodes].map((n) =>
          n.nodeType === Node.ELEMENT_NODE ? n.className : "text " + n.textContent)`,
      ),
      ["wf-row wf-ruler", "wf-rows"],
    );
    await screenshot(page, artifact("trace.png"), true);

    // Clicking a log line selects the span that wrote it.
    const log = page
      .locator("[data-testid=log-row][data-service=worker]")
      .first();
    const logSpan = await log.getAttribute("data-span-id");
    assert.ok(logSpan);
    await log.click();
    await page
      .locator(
        `[data-testid=span-row][data-span-id="${logSpan}"][aria-selected=true]`,
      )
      .waitFor();
    assert.equal(
      await page.locator("[data-testid=span-row][aria-selected=true]").count(),
      1,
    );
    assert.equal(
      await page.getByTestId("span-details").getAttribute("data-span-id"),
      logSpan,
    );

    // Clicking the SQL span shows its attributes.
    const sqlSpan = await sql.getAttribute("data-span-id");
    await sql.click();
    const details = page.locator(
      `[data-testid=span-details][data-span-id="${sqlSpan}"]`,
    );
    await details.waitFor();
    const text = await details.innerText();
    assert.ok(text.includes("db.query.text"), text);
    assert.equal(
      await details.locator('tr[data-attr="db.query.text"] td').innerText(),
      "SELECT price_cents FROM products WHERE sku = $1",
    );
    assert.equal(
      await details.locator('tr[data-attr="customer.id"] td').innerText(),
      "c-42",
    );
    assert.ok(text.includes("service.name"), "resource attributes are shown");
    await screenshot(page, artifact("span-details.png"));
    // The README's picture is refreshed on request only, so a test run leaves
    // the work tree clean: THREADLINE_UPDATE_DOC_IMAGES=1 npm test -- <this file>
    if (process.env.THREADLINE_UPDATE_DOC_IMAGES === "1")
      await screenshot(page, fileURLToPath(new URL("viewer.png", DOC_IMAGES)));

    // The selected span is part of the URL: a reload comes back to it.
    assert.equal(new URL(page.url()).searchParams.get("span"), sqlSpan);
    await page.reload();
    await details.waitFor();
    assert.equal(await page.getByTestId("span-row").count(), SPANS_PER_ORDER);

    // Collapsing the root hides everything under it, and opening it again
    // brings it all back.
    const root = spans.first();
    await root.locator(".toggle").click();
    await waitFor(async () => (await spans.count()) === 1, {
      what: "the root alone",
    });
    assert.equal(await page.getByTestId("log-row").count(), 0);
    await root.locator(".toggle").click();
    await waitFor(async () => (await spans.count()) === SPANS_PER_ORDER, {
      what: "every span again",
    });
    assert.equal(await page.getByTestId("log-row").count(), LOGS_PER_ORDER);
  });

  it("names each page in the tab, not only the first one opened", async () => {
    // The page shows one of c-42's traces, opened from the search results.
    const traceId = await page
      .getByTestId("trace-view")
      .getAttribute("data-trace-id");
    const shown = c42.find((t) => t.traceId === traceId);
    assert.ok(shown);
    const traceTitle = `${shown.rootService} ${shown.rootName} · Threadline`;
    await assertTitle(page, traceTitle);

    await page.getByRole("link", { name: "← Traces for c-42" }).click();
    await page
      .locator('[data-testid=results][data-state=done][data-customer="c-42"]')
      .waitFor();
    await assertTitle(page, "Traces for c-42 · Threadline");
    await page.getByTestId("nav-live").click();
    await page.getByTestId("live-view").waitFor();
    await assertTitle(page, "Live · Threadline");

    // Back and forth through the history, each entry names itself again.
    await page.goBack();
    await page.getByTestId("results").waitFor();
    await assertTitle(page, "Traces for c-42 · Threadline");
    await page.goBack();
    await page
      .locator(
        `[data-testid=trace-view][data-trace-id="${traceId}"][data-state=ready]`,
      )
      .waitFor();
    await assertTitle(page, traceTitle);
    assert.deepEqual(pageErrors, []);
  });

  it("follows a link from one trace to another, and back", async () => {
    const from = await page
      .getByTestId("trace-view")
      .getAttribute("data-trace-id");
    const to = c42.find((t) => t.traceId !== from)!.traceId;
    // A link to another trace, as a span link to a trace elsewhere is drawn.
    await page.evaluate(`{
      const a = document.createElement("a");
      a.href = "/trace/${to}";
      a.textContent = "linked trace";
      document.querySelector("[data-testid=trace-view]").append(a);
      a.click();
    }`);
    await page
      .locator(
        `[data-testid=trace-view][data-trace-id="${to}"][data-state=ready]`,
      )
      .waitFor();
    assert.equal(await page.getByTestId("trace-view").count(), 1);
    await page.goBack();
    await page
      .locator(
        `[data-testid=trace-view][data-trace-id="${from}"][data-state=ready]`,
      )
      .waitFor();
    assert.equal(await page.getByTestId("trace-view").count(), 1);
    assert.deepEqual(pageErrors, []);
  });

  it("streams a customer's new traces live, and only theirs", async () => {
    await page.getByTestId("nav-live").click();
    await page.getByTestId("live-view").waitFor();
    await page.getByTestId("live-customer-input").fill("c-42");
    await page
      .locator(
        '[data-testid=live-status][data-state=live][data-customer="c-42"]',
      )
      .waitFor();

    // c-7's order lands completely before c-42's starts, so by the time
    // c-42's last update reaches the page, anything sent for c-7 has too.
    await placeOrder(shop, "c-7", "lamp");
    await completeTraces(dev, "c-7", 2);
    await placeOrder(shop, "c-42", "pen");
    const now = await completeTraces(dev, "c-42", 3);
    const fresh = now.find((t) => !c42.some((o) => o.traceId === t.traceId));
    assert.ok(fresh);

    const row = page.locator(
      `[data-testid=live-row][data-trace-id="${fresh.traceId}"][data-span-count="${SPANS_PER_ORDER}"]`,
    );
    await row.waitFor();
    assert.equal(await row.getAttribute("data-customer"), "c-42");
    assert.equal(await page.getByTestId("live-row").count(), 1);
    assert.equal(
      await page.locator('[data-testid=live-row][data-customer="c-7"]').count(),
      0,
    );
    await screenshot(page, artifact("live.png"));

    await row.click();
    await page
      .locator(
        `[data-testid=trace-view][data-trace-id="${fresh.traceId}"][data-state=ready]`,
      )
      .waitFor();

    // Back on the live page, the row is there again and so is the order
    // that landed, whole, while the trace was open.
    await placeOrder(shop, "c-42", "lamp");
    const later = await completeTraces(dev, "c-42", 4);
    const missed = later.find(
      (t) =>
        t.traceId !== fresh.traceId &&
        !c42.some((o) => o.traceId === t.traceId),
    );
    assert.ok(missed);
    await page.goBack();
    await page
      .locator(
        '[data-testid=live-status][data-state=live][data-customer="c-42"]',
      )
      .waitFor();
    await row.waitFor({ timeout: 5_000 });
    await page
      .locator(
        `[data-testid=live-row][data-trace-id="${missed.traceId}"][data-span-count="${SPANS_PER_ORDER}"]`,
      )
      .waitFor({ timeout: 5_000 });
    assert.deepEqual(
      await page
        .getByTestId("live-row")
        .evaluateAll((rows) =>
          rows.map((r) => r.getAttribute("data-trace-id")),
        ),
      [missed.traceId, fresh.traceId],
      "newest first",
    );
    assert.deepEqual(pageErrors, []);
  });

  it("watches a customer: their next requests log at debug level in every service", async () => {
    await page.goto(`${dev.viewerUrl}/?customer=c-42`);
    const watch = page.locator('[data-testid=watch][data-customer="c-42"]');
    await page.locator("[data-testid=watch][data-state=idle]").waitFor();
    assert.equal(
      await page.getByTestId("watch-duration").inputValue(),
      String(30 * 60_000),
    );
    await page.getByTestId("watch-button").click();
    await page.locator("[data-testid=watch][data-state=watched]").waitFor();
    assert.match(
      await page.getByTestId("watch-status").innerText(),
      /Watching c-42: debug logs and every trace until \d\d:\d\d \((29|30) min left\)/,
    );
    // What the services read, next to the OTLP endpoint.
    const served = (await (
      await fetch(`${dev.otlpUrl}/threadline/v1/watch`)
    ).json()) as { watch: Array<{ customer: string; level: string }> };
    assert.deepEqual(
      served.watch.map((e) => [e.customer, e.level]),
      [["c-42", "debug"]],
    );
    await screenshot(page, artifact("watch.png"));

    // The services pick it up within a few reads: an order then carries
    // debug lines from the gateway, orders and the worker.
    const debugFrom = await waitFor(
      async () => {
        await placeOrder(shop, "c-42", "book");
        await new Promise((r) => setTimeout(r, 500));
        const [newest] = await search(dev, { customer: "c-42" });
        const res = await fetch(
          `${dev.viewerUrl}/api/traces/${newest!.traceId}`,
        );
        const detail = (await res.json()) as TraceDetail;
        const services = new Set(
          detail.logs
            .filter((l) => l.severityText === "debug")
            .map((l) => l.service),
        );
        return services.size === 3 && services;
      },
      { timeoutMs: 20_000, what: "debug lines from every service" },
    );
    assert.deepEqual([...debugFrom].sort(), ["gateway", "orders", "worker"]);

    await page.getByTestId("unwatch-button").click();
    await page.locator("[data-testid=watch][data-state=idle]").waitFor();
    assert.equal(await watch.count(), 1);
    const after = (await (
      await fetch(`${dev.otlpUrl}/threadline/v1/watch`)
    ).json()) as { watch: unknown[] };
    assert.deepEqual(after.watch, []);
    assert.deepEqual(pageErrors, []);
  });

  it("draws a service's requests, runtime, health and alarms", async () => {
    await placeOrder(shop, "c-5", "pen");
    await page.getByTestId("nav-services").click();
    await page.getByTestId("services-select").waitFor();
    await page
      .locator("[data-testid=services-select] option[value=orders]")
      .waitFor({ state: "attached" });
    await page.getByTestId("services-select").selectOption("orders");
    await page.waitForURL(/service=orders/);
    // Rates need two exports of the request histogram after a request.
    await placeOrder(shop, "c-5", "book");
    await page
      .locator("[data-testid=chart-requests]:not([data-points='0'])")
      .waitFor({ timeout: 20_000 });
    for (const id of [
      "chart-latency",
      "chart-loop-delay",
      "chart-loop-utilization",
      "chart-cpu",
      "chart-rss",
      "chart-heap",
    ])
      await page
        .locator(`[data-testid=${id}]:not([data-points='0'])`)
        .waitFor({ timeout: 20_000 });
    assert.match(
      await page.getByTestId("chart-rss-value").innerText(),
      /^\d+(\.\d+)? MB$/,
    );
    assert.equal(
      await page.locator("[data-testid=chart-requests] svg path").count(),
      1,
      "the request rate is drawn as a line",
    );
    const health = page.getByTestId("services-health");
    await health
      .locator("tr[data-status=healthy]", { hasText: "postgresql" })
      .waitFor({ timeout: 20_000 });
    await health
      .locator("tr[data-status=healthy]", { hasText: "rabbitmq" })
      .waitFor();
    const active = page.getByTestId("alarms-active");
    await active
      .locator("tr[data-action=raise][data-severity=warning]", {
        hasText: "memory_in_use",
      })
      .waitFor({ timeout: 20_000 });
    assert.ok(
      (await page.getByTestId("alarms-history").locator("tr").count()) >= 1,
    );
    await screenshot(page, artifact("services.png"));

    // The Services link shows the first service again, as a reload of its
    // address would; Back returns to the one chosen.
    await page.getByTestId("nav-services").click();
    await page.waitForURL((u) => !u.search.includes("service="));
    await waitFor(
      async () =>
        (await page.getByTestId("services-select").inputValue()) === "gateway",
      { what: "the first service shown" },
    );
    await page.goBack();
    await waitFor(
      async () =>
        (await page.getByTestId("services-select").inputValue()) === "orders",
      { what: "the chosen service shown again" },
    );
    assert.deepEqual(pageErrors, []);
  });

  it("needs the token when the server has one, and works with it", async () => {
    const token = "s3cret";
    const locked = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
      token,
    });
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
    });
    try {
      const res = await fetch(`${locked.viewerUrl}/api/stats`);
      assert.equal(res.status, 401);
      const tab = await context.newPage();
      const errors: string[] = [];
      tab.on("pageerror", (err) => errors.push(err.message));
      // The page itself holds no telemetry; without the token it loads
      // but every API answer is a 401, which the page explains.
      const denied = await tab.goto(`${locked.viewerUrl}/`);
      assert.equal(denied?.status(), 200);
      await tab
        .getByText(/needs a token/)
        .first()
        .waitFor();

      // One failed request, sent with the token as any exporter would.
      const traceId = randomBytes(16).toString("hex");
      const startNs = BigInt(Date.now()) * 1_000_000n;
      const span = {
        traceId,
        spanId: randomBytes(8).toString("hex"),
        name: "GET /cart",
        kind: 2,
        startTimeUnixNano: String(startNs),
        endTimeUnixNano: String(startNs + 42_000_000n),
        attributes: [
          { key: "customer.id", value: { stringValue: "c-99" } },
          { key: "http.request.method", value: { stringValue: "GET" } },
          { key: "http.route", value: { stringValue: "/cart" } },
          { key: "http.response.status_code", value: { intValue: "500" } },
        ],
        events: [
          {
            name: "exception",
            timeUnixNano: String(startNs + 40_000_000n),
            attributes: [
              { key: "exception.type", value: { stringValue: "TypeError" } },
              {
                key: "exception.message",
                value: { stringValue: "<b>cart</b> is undefined" },
              },
              {
                key: "exception.stacktrace",
                value: {
                  stringValue:
                    "TypeError: cart is undefined\n    at total (cart.js:3:9)",
                },
              },
            ],
          },
        ],
        status: { code: 2, message: "cart is undefined" },
      };
      const body = JSON.stringify({
        resourceSpans: [
          {
            resource: {
              attributes: [
                { key: "service.name", value: { stringValue: "checkout" } },
              ],
            },
            scopeSpans: [{ scope: { name: "manual" }, spans: [span] }],
          },
        ],
      });
      const unauthorized = await fetch(`${locked.otlpUrl}/v1/traces`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(unauthorized.status, 401);
      const sent = await fetch(`${locked.otlpUrl}/v1/traces`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
        },
        body,
      });
      assert.equal(sent.status, 200);
      await waitFor(() => locked.store.counts().traces === 1, {
        what: "the span to be stored",
      });

      await tab.goto(`${locked.viewerUrl}/?token=${token}`);
      await tab.locator("[data-testid=stats][data-state=ok]").waitFor();
      assert.match(await tab.getByTestId("stats").innerText(), /1 trace\b/);
      await tab.getByTestId("customer-input").fill("c-99");
      await tab.getByTestId("search-button").click();
      await tab
        .locator('[data-testid=results][data-state=done][data-customer="c-99"]')
        .waitFor();
      const row = tab.getByTestId("result-row");
      assert.equal(await row.count(), 1);
      assert.equal(await row.getAttribute("data-trace-id"), traceId);
      assert.equal(await row.getByTestId("error-mark").count(), 1);
      assert.equal(new URL(tab.url()).searchParams.get("token"), token);

      await row.click();
      await tab.locator(`[data-testid=trace-view][data-state=ready]`).waitFor();
      await tab.getByTestId("span-row").click();
      const exception = tab.getByTestId("exception");
      await exception.waitFor();
      const text = await exception.innerText();
      assert.ok(text.includes("TypeError"), text);
      // Markup in telemetry is shown as text, never interpreted.
      assert.ok(text.includes("<b>cart</b> is undefined"), text);
      assert.equal(await tab.locator("[data-testid=exception] b").count(), 0);

      await tab.getByTestId("nav-live").click();
      await tab.locator("[data-testid=live-status][data-state=live]").waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await locked.close();
    }
  });
});

/** POSTs protobuf on a connection of its own, closed after the answer. */
function postOnce(
  url: string,
  body: Uint8Array,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: "POST",
        agent: false,
        headers: {
          "content-type": "application/x-protobuf",
          "content-length": body.length,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("a trace too large to lay out whole", () => {
  it("opens, showing its first rows and saying why the rest are not drawn", async () => {
    const dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
    });
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: CHROMIUM_ARGS,
    });
    try {
      // A migration's root and one query per row: 2 × 70,000 span times
      // were spread into Math.min(), past what the browser's stack holds.
      const children = 70_000;
      const traceId = randomBytes(16).toString("hex");
      const rootId = randomBytes(8).toString("hex");
      const now = Date.now();
      const span = (i: number, over: Partial<SpanData> = {}): SpanData =>
        spanData({
          scope: { name: "migrate" },
          traceId,
          spanId: (i + 1).toString(16).padStart(16, "0"),
          parentSpanId: rootId,
          name: "SELECT rows",
          kind: 3,
          startTime: now + i / 100,
          endTime: now + i / 100 + 0.005,
          ...over,
        });
      const encoder = new TraceEncoder({ "service.name": "migrator" });
      const spans = [
        span(-1, {
          spanId: rootId,
          parentSpanId: undefined,
          name: "migrate",
          kind: 1,
          endTime: now + children / 100,
        }),
      ];
      for (let i = 0; i < children; i++) spans.push(span(i));
      // Each on a connection of its own: the server runs in this process,
      // and storing one request's spans can hold the event loop past the
      // server's keep-alive timeout, which then closes a kept-alive
      // connection as the next request is sent on it (ECONNRESET).
      for (let i = 0; i < spans.length; i += 20_000) {
        const res = await postOnce(
          `${dev.otlpUrl}/v1/traces`,
          encoder.encode(spans.slice(i, i + 20_000)),
        );
        assert.equal(res.status, 200, res.text);
      }
      await waitFor(() => dev.store.counts().spans === children + 1, {
        timeoutMs: 30_000,
        what: "the trace stored",
      });

      const page = await browser.newPage({
        viewport: { width: 1280, height: 800 },
      });
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(err.message));
      const loaded = page.waitForResponse((r) =>
        r.url().includes(`/api/traces/${traceId}`),
      );
      await page.goto(`${dev.viewerUrl}/trace/${traceId}`);
      const view = page.getByTestId("trace-view");
      let state: string | null = null;
      try {
        await waitFor(
          async () =>
            (state = await view.getAttribute("data-state")) === "ready",
          { timeoutMs: 30_000 },
        );
      } catch {
        assert.deepEqual(errors, []);
        assert.equal(state, "ready", "the trace view's state");
      }
      // The page asks for the spans it draws, not the whole trace; the
      // header still counts them all.
      const asked = (await loaded).url();
      const fetched = (await (await fetch(asked)).json()) as {
        spans: unknown[];
      };
      assert.equal(fetched.spans.length, 10_000, asked);
      assert.equal(
        await page
          .locator(".fact", { hasText: "Spans" })
          .locator("dd")
          .innerText(),
        "70001",
      );
      assert.equal(await page.getByTestId("span-row").count(), 10_000);
      await page
        .getByTestId("waterfall-limit")
        .getByText(/first 10,000 rows of this trace's 70,001 spans/)
        .waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await dev.close();
    }
  });
});

describe("a request still running", () => {
  it("is found by its customer and opens as its log lines, its spans not sent yet", async () => {
    await withViewer(async (dev, browser) => {
      const traceId = randomBytes(16).toString("hex");
      for (const service of ["gateway", "payments"]) {
        const encoder = new LogsEncoder(
          { "service.name": service },
          { name: "pino" },
        );
        const res = await fetch(`${dev.otlpUrl}/v1/logs`, {
          method: "POST",
          headers: { "content-type": "application/x-protobuf" },
          body: encoder.encode([
            {
              time: Date.now(),
              observedTime: Date.now(),
              severityNumber: 9,
              severityText: "info",
              body: `${service} waiting`,
              attributes: { "customer.id": "c-hang3" },
              traceId,
              spanId: randomBytes(8).toString("hex"),
              traceFlags: 1,
            },
          ]),
        });
        assert.equal(res.status, 200, await res.text());
      }
      await waitFor(() => dev.store.counts().logs === 2, {
        what: "the lines stored",
      });
      const page = await browser.newPage();
      await page.goto(`${dev.viewerUrl}/?customer=c-hang3`);
      const row = page.getByTestId("result-row");
      await row.getByTestId("in-progress").waitFor({ timeout: 10_000 });
      assert.equal(await row.count(), 1);
      assert.equal(await row.getAttribute("data-trace-id"), traceId);
      await row.click();
      const view = page.getByTestId("trace-view");
      await waitFor(
        async () => (await view.getAttribute("data-state")) === "ready",
        { what: "the trace view" },
      );
      await view.getByTestId("in-progress").waitFor({ timeout: 10_000 });
      assert.deepEqual(
        (await view.getByTestId("log-row").allTextContents()).map(
          (t) => /gateway waiting|payments waiting/.exec(t)?.[0],
        ),
        ["gateway waiting", "payments waiting"],
      );
    });
  });
});

describe("rows of traces", () => {
  it("keep every column in view whatever the length of a root span's name", async () => {
    await withViewer(async (dev, browser) => {
      // An untemplated route, ids and all.
      const long = `GET /api/v2/customers/c-55/orders/${"0f3c9a6e-".repeat(20)}/items/1234567/fulfillment-status`;
      const ids = [
        randomBytes(16).toString("hex"),
        randomBytes(16).toString("hex"),
      ];
      await sendSpans(dev, [
        spanOf(ids[0]!, "c-wide", long),
        spanOf(ids[1]!, "c-wide", "GET /orders"),
      ]);
      await waitFor(() => dev.store.counts().spans === 2, {
        what: "the spans stored",
      });
      const page = await browser.newPage({
        viewport: { width: 1280, height: 800 },
      });
      await page.goto(`${dev.viewerUrl}/?customer=c-wide`);
      await page.locator("[data-testid=results][data-state=done]").waitFor();
      assert.equal(await page.getByTestId("result-row").count(), 2);
      const wrap = await page.locator(".table-wrap").boundingBox();
      const fits: boolean[] = [];
      for (const row of await page.getByTestId("result-row").all()) {
        const last = await row.locator("td").last().boundingBox();
        fits.push(last!.x + last!.width <= wrap!.x + wrap!.width);
      }
      assert.deepEqual(fits, [true, true], "each row's last column is in view");
      const name = page.locator(`[data-trace-id="${ids[0]}"] .root-name`);
      assert.equal(await name.getAttribute("title"), long);
    });
  });

  it("stay newest first on the live page when a trace's root lands after a child and starts earlier", async () => {
    await withViewer(async (dev, browser) => {
      const page = await browser.newPage();
      await page.goto(`${dev.viewerUrl}/live?customer=c-order`);
      await page
        .locator(
          '[data-testid=live-status][data-state=live][data-customer="c-order"]',
        )
        .waitFor();
      const now = Date.now();
      const a = randomBytes(16).toString("hex");
      const b = randomBytes(16).toString("hex");
      const aRoot = randomBytes(8).toString("hex");
      const at = (span: SpanData, ms: number): SpanData => ({
        ...span,
        startTime: ms,
        endTime: ms + 5,
      });
      const order = () =>
        page
          .getByTestId("live-row")
          .evaluateAll((els) =>
            els.map((el) => el.getAttribute("data-trace-id")),
          );
      // A's child first, then B, which started before it.
      await sendSpans(dev, [
        at(spanOf(a, "c-order", "SELECT orders", aRoot), now - 1000),
      ]);
      await sendSpans(dev, [at(spanOf(b, "c-order", "GET /b"), now - 2000)]);
      await waitFor(async () => (await order()).length === 2, {
        what: "both rows",
      });
      assert.deepEqual(await order(), [a, b]);
      // A's root, which started before B.
      await sendSpans(dev, [
        at({ ...spanOf(a, "c-order", "GET /a"), spanId: aRoot }, now - 3000),
      ]);
      await page
        .locator(
          `[data-testid=live-row][data-trace-id="${a}"][data-span-count="2"]`,
        )
        .waitFor();
      assert.deepEqual(await order(), [b, a]);
    });
  });
});

describe("a trace page opened before its trace", () => {
  it("shows spans that landed while its live stream was still opening", async () => {
    await withViewer(async (dev, browser) => {
      const traceId = randomBytes(16).toString("hex");
      const page = await browser.newPage();
      // The stream's request is held until the trace is stored: what lands
      // between the page's first read and its stream opening is announced
      // to nobody.
      let stored!: () => void;
      const storedYet = new Promise<void>((resolve) => (stored = resolve));
      let streams = 0;
      await page.route("**/api/live*", async (route) => {
        streams++;
        await storedYet;
        await route.continue();
      });
      await page.goto(`${dev.viewerUrl}/trace/${traceId}`);
      const view = page.getByTestId("trace-view");
      await waitFor(async () => streams > 0, { what: "the stream asked for" });
      assert.equal(await view.getAttribute("data-state"), "error");
      const res = await fetch(`${dev.otlpUrl}/v1/traces`, {
        method: "POST",
        headers: { "content-type": "application/x-protobuf" },
        body: new TraceEncoder({ "service.name": "gateway" }).encode([
          spanData({
            traceId,
            spanId: randomBytes(8).toString("hex"),
            name: "GET /late",
          }),
        ]),
      });
      assert.equal(res.status, 200, await res.text());
      await waitFor(() => dev.store.counts().spans === 1, {
        what: "the span stored",
      });
      stored();
      await waitFor(
        async () => (await view.getAttribute("data-state")) === "ready",
        { what: "the trace drawn", timeoutMs: 10_000 },
      );
      assert.match((await view.textContent()) ?? "", /GET \/late/);
    });
  });
});

/** A viewer and a browser of their own, closed when `body` is done. */
async function withViewer(
  body: (dev: DevServer, browser: Browser) => Promise<void>,
): Promise<void> {
  const dev = await startDevServer({
    dbPath: ":memory:",
    otlpPort: 0,
    viewerPort: 0,
    flushIntervalMs: 10,
  });
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
  try {
    await body(dev, browser);
  } finally {
    await browser.close();
    await dev.close();
  }
}

async function sendSpans(dev: DevServer, spans: SpanData[]): Promise<void> {
  const res = await fetch(`${dev.otlpUrl}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body: new TraceEncoder({ "service.name": "gateway" }).encode(spans),
  });
  assert.equal(res.status, 200, await res.text());
}

/** One span of `traceId` (a new trace's root when `parent` is not given). */
function spanOf(
  traceId: string,
  customer: string,
  name: string,
  parent?: string,
): SpanData {
  return spanData({
    traceId,
    spanId: randomBytes(8).toString("hex"),
    parentSpanId: parent,
    name,
    attributes: { "customer.id": customer },
  });
}

/** More changes in one batch than the live stream keeps to replay. */
async function overflowReplay(dev: DevServer): Promise<void> {
  const before = dev.store.counts().traces;
  const others = Array.from({ length: 2001 }, () =>
    spanOf(randomBytes(16).toString("hex"), "c-elsewhere", "GET /other"),
  );
  await sendSpans(dev, others);
  await waitFor(() => dev.store.counts().traces === before + others.length, {
    what: "the other traces stored",
  });
}

describe("a trace page following its trace", () => {
  it("reads the trace once as it opens, and again only when the trace changes, also across a reconnect", async () => {
    await withViewer(async (dev, browser) => {
      // The page reaches the viewer through a proxy that can cut its
      // connections, as a network drop does.
      const viewerPort = Number(new URL(dev.viewerUrl).port);
      const connections = new Set<net.Socket>();
      const proxy = net.createServer((client) => {
        const upstream = net.connect(viewerPort, "127.0.0.1");
        for (const s of [client, upstream]) {
          connections.add(s);
          s.on("close", () => connections.delete(s));
          s.on("error", () => {});
        }
        client.pipe(upstream).pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
      try {
        const traceId = randomBytes(16).toString("hex");
        const root = spanOf(traceId, "c-once", "GET /once");
        await sendSpans(dev, [root]);
        await waitFor(() => dev.store.counts().spans === 1, {
          what: "the span stored",
        });
        const page = await browser.newPage();
        let reads = 0;
        let streams = 0;
        page.on("request", (r) => {
          if (r.url().includes(`/api/traces/${traceId}`)) reads++;
          if (r.url().includes("/api/live")) streams++;
        });
        const opened = page.waitForResponse((r) =>
          r.url().includes("/api/live"),
        );
        const port = (proxy.address() as net.AddressInfo).port;
        await page.goto(`http://127.0.0.1:${port}/trace/${traceId}`);
        const view = page.getByTestId("trace-view");
        await page
          .locator("[data-testid=trace-view][data-state=ready]")
          .waitFor({ timeout: 10_000 });
        await opened;

        const reopened = page.waitForResponse(
          (r) => r.url().includes("/api/live") && streams === 2,
          { timeout: 20_000 },
        );
        for (const s of connections) s.destroy();
        await reopened;

        await sendSpans(dev, [
          spanOf(traceId, "c-once", "SELECT orders", root.spanId),
        ]);
        await waitFor(
          async () => (await view.getByTestId("span-row").count()) === 2,
          { what: "the second span drawn" },
        );
        assert.equal(
          reads,
          2,
          "read as the page opened, and when the second span came",
        );
      } finally {
        for (const s of connections) s.destroy();
        await new Promise((r) => proxy.close(r));
      }
    });
  });

  it("reads the trace again when the stream cannot replay what landed after the read", async () => {
    await withViewer(async (dev, browser) => {
      const traceId = randomBytes(16).toString("hex");
      const root = spanOf(traceId, "c-gap", "GET /gap");
      await sendSpans(dev, [root]);
      await waitFor(() => dev.store.counts().spans === 1, {
        what: "the span stored",
      });
      const page = await browser.newPage();
      let reads = 0;
      page.on("request", (r) => {
        if (r.url().includes(`/api/traces/${traceId}`)) reads++;
      });
      // The stream's request is held while a second span lands, and after
      // it more changes than the server keeps to replay.
      let landed!: () => void;
      const landedYet = new Promise<void>((resolve) => (landed = resolve));
      let streams = 0;
      await page.route("**/api/live*", async (route) => {
        streams++;
        await landedYet;
        await route.continue();
      });
      await page.goto(`${dev.viewerUrl}/trace/${traceId}`);
      const view = page.getByTestId("trace-view");
      await page
        .locator("[data-testid=trace-view][data-state=ready]")
        .waitFor({ timeout: 10_000 });
      await waitFor(async () => streams > 0, { what: "the stream asked for" });
      await sendSpans(dev, [
        spanOf(traceId, "c-gap", "SELECT orders", root.spanId),
      ]);
      await waitFor(() => dev.store.counts().spans === 2, {
        what: "the second span stored",
      });
      await overflowReplay(dev);
      landed();
      await waitFor(
        async () => (await view.getByTestId("span-row").count()) === 2,
        { what: "the second span drawn", timeoutMs: 10_000 },
      );
      assert.equal(reads, 2);
    });
  });
});

describe("the live page coming back to changes it cannot be replayed", () => {
  it("keeps its rows, dims them until they are brought up to date, and says traces may be missing", async () => {
    await withViewer(async (dev, browser) => {
      const page = await browser.newPage();
      await page.goto(`${dev.viewerUrl}/live?customer=c-away`);
      await page
        .locator(
          '[data-testid=live-status][data-state=live][data-customer="c-away"]',
        )
        .waitFor();
      const traceId = randomBytes(16).toString("hex");
      const root = spanOf(traceId, "c-away", "GET /away");
      await sendSpans(dev, [root]);
      const row = page.locator(
        `[data-testid=live-row][data-trace-id="${traceId}"]`,
      );
      await row.waitFor();
      await row.click();
      await page
        .locator("[data-testid=trace-view][data-state=ready]")
        .waitFor();
      const resumed = page.waitForResponse((r) =>
        r.url().includes("/api/live?customer=c-away&after="),
      );
      // While the page is away: a second span, then more changes than
      // the server keeps to replay.
      await sendSpans(dev, [
        spanOf(traceId, "c-away", "SELECT orders", root.spanId),
      ]);
      await waitFor(() => dev.store.counts().spans === 2, {
        what: "the second span stored",
      });
      await overflowReplay(dev);
      await page.goBack();
      await resumed;
      await page.getByTestId("live-gap").waitFor({ timeout: 5_000 });
      await page
        .locator(`[data-testid=live-row].stale[data-trace-id="${traceId}"]`)
        .waitFor({ timeout: 5_000 });
      assert.equal(await row.getAttribute("data-span-count"), "1");

      await sendSpans(dev, [
        spanOf(traceId, "c-away", "SELECT items", root.spanId),
      ]);
      await page
        .locator(
          `[data-testid=live-row]:not(.stale)[data-trace-id="${traceId}"][data-span-count="3"]`,
        )
        .waitFor({ timeout: 5_000 });
      assert.ok(await page.getByTestId("live-gap").isVisible());
    });
  });
});
