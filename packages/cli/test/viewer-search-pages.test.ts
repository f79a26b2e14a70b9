// The viewer's search and trace pages in a real Chromium, over spans sent as
// OTLP by the test itself: more traces than one page of results holds, some
// starting at the same moment, a search reached by a date-range link, and a
// trace whose root span arrives after the page has opened it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { TraceEncoder, type SpanData } from "@threadline/otlp";
import { waitFor } from "@threadline/test-support";
import { startDevServer, type DevServer } from "../src/index.ts";
import { spanData } from "./span-data.ts";

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-gpu",
  "--disable-dev-shm-usage",
];

const id = (bytes: number) => randomBytes(bytes).toString("hex");

async function send(
  dev: DevServer,
  service: string,
  spans: SpanData[],
): Promise<void> {
  const encoder = new TraceEncoder({ "service.name": service });
  const res = await fetch(`${dev.otlpUrl}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body: encoder.encode(spans),
  });
  assert.equal(res.status, 200, await res.text());
}

/** One request of `customer`, a trace of one span starting at `startMs`. */
function request(
  customer: string,
  startMs: number,
  over: Partial<SpanData> = {},
): SpanData {
  return spanData({
    traceId: id(16),
    spanId: id(8),
    name: "GET /orders",
    startTime: startMs,
    endTime: startMs + 3,
    attributes: { "customer.id": customer },
    ...over,
  });
}

async function rowIds(page: Page): Promise<string[]> {
  return page
    .getByTestId("result-row")
    .evaluateAll((els) => els.map((el) => el.getAttribute("data-trace-id")!));
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

/** Waits for the results of the search the page's URL now holds. */
async function resultsFor(page: Page, url: string): Promise<void> {
  await waitFor(() => page.url() === url, { timeoutMs: 5_000, what: url });
  await page.locator("[data-testid=results][data-state=done]").waitFor();
}

describe("the viewer's search and trace pages", () => {
  let dev: DevServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  // Ten minutes ago, on a whole millisecond.
  const base = Math.floor(Date.now() / 1000) * 1000 - 600_000;

  before(async () => {
    [dev, browser] = await Promise.all([
      startDevServer({ dbPath: ":memory:", otlpPort: 0, viewerPort: 0 }),
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
    await dev?.close();
  });

  it("pages through more traces than one page holds, none skipped or shown twice", async () => {
    // 55 requests of one customer in the orders service, newest first
    // 54 … 0; requests 2 to 7 start at the same moment, so the newest 50
    // end inside that group, and 1 and 8 start less than a millisecond
    // before and after it.
    const startOf = (i: number) =>
      i >= 2 && i <= 7
        ? base + 2
        : i === 8
          ? base + 2.4
          : i === 1
            ? base + 1.6
            : base + i;
    const spans = Array.from({ length: 55 }, (_, i) =>
      request("c-many", startOf(i)),
    );
    await send(dev, "orders", spans);
    // Newer ones elsewhere, which the service filter leaves out.
    await send(
      dev,
      "billing",
      [1, 2, 3].map((i) => request("c-many", base + 1000 + i)),
    );
    await waitFor(() => dev.store.counts().traces === 58, {
      what: "58 traces stored",
    });
    const all = new Set(spans.map((s) => s.traceId));

    const first = `${dev.viewerUrl}/?customer=c-many&service=orders`;
    await page.goto(first);
    await resultsFor(page, first);
    const newest = await rowIds(page);
    assert.ok(newest.length > 0 && newest.length <= 50, `${newest.length}`);
    assert.equal(
      await page.getByTestId("newest-link").count(),
      0,
      "the newest traces offer no way to themselves",
    );

    const seen = [...newest];
    for (let pages = 1; ; pages++) {
      assert.ok(pages < 5, "the pages end");
      const older = page.getByTestId("older-link");
      if ((await older.count()) === 0) break;
      const link = new URL((await older.getAttribute("href"))!, page.url());
      assert.equal(link.searchParams.get("customer"), "c-many");
      assert.equal(link.searchParams.get("service"), "orders");
      await older.click();
      await resultsFor(page, link.href);
      seen.push(...(await rowIds(page)));
      await page.getByTestId("newest-link").waitFor();
    }
    assert.equal(seen.length, new Set(seen).size, "no trace shown twice");
    assert.deepEqual(new Set(seen), all, "every trace shown once");
    // Newest first across the pages.
    const order = spans
      .map((s, i) => ({ id: s.traceId, start: startOf(i) }))
      .sort((a, b) => b.start - a.start);
    assert.deepEqual(
      seen.map((t) => order.find((o) => o.id === t)!.start),
      order.map((o) => o.start),
    );

    await page.getByTestId("newest-link").click();
    await resultsFor(page, first);
    assert.deepEqual(await rowIds(page), newest);
    assert.deepEqual(pageErrors, []);
  });

  it("pages through more traces starting in one millisecond than a search returns at once", async () => {
    // 1100 requests in one millisecond, more than the API's 1000, half of
    // them at its last microsecond; 30 newer and 30 older around them.
    const tied = base + 200_000;
    const startOf = (i: number) =>
      i < 30
        ? tied + 100 - i
        : i < 1130
          ? tied - (i % 2 === 0 ? 0 : (i % 997) / 1000)
          : tied - 100 - i;
    const spans = Array.from({ length: 1160 }, (_, i) =>
      request("c-tied", startOf(i)),
    );
    await send(dev, "orders", spans);
    await waitFor(
      async () => {
        const res = await fetch(
          `${dev.viewerUrl}/api/search?customer=c-tied&limit=1000`,
        );
        return (
          ((await res.json()) as { traces: unknown[] }).traces.length === 1000
        );
      },
      { what: "c-tied's traces stored" },
    );

    const first = `${dev.viewerUrl}/?customer=c-tied`;
    await page.goto(first);
    await resultsFor(page, first);
    const seen = await rowIds(page);
    for (let pages = 1; ; pages++) {
      assert.ok(pages < 40, "the pages end");
      const older = page.getByTestId("older-link");
      if ((await older.count()) === 0) break;
      const link = new URL((await older.getAttribute("href"))!, page.url());
      await older.click();
      await resultsFor(page, link.href);
      const ids = await rowIds(page);
      assert.ok(ids.length > 0 && ids.length <= 50, `${ids.length} rows`);
      seen.push(...ids);
    }
    assert.equal(seen.length, new Set(seen).size, "no trace shown twice");
    assert.equal(seen.length, spans.length, "every trace shown");
    assert.deepEqual(new Set(seen), new Set(spans.map((s) => s.traceId)));
    const starts = new Map(spans.map((s, i) => [s.traceId, startOf(i)]));
    const shown = seen.map((t) => starts.get(t)!);
    assert.deepEqual(
      shown,
      [...shown].sort((a, b) => b - a),
      "newest first across the pages",
    );

    // A link that holds the page's position as a time still opens the
    // traces that started up to it.
    const upTo = `${dev.viewerUrl}/?customer=c-tied&until=${tied - 1}`;
    await page.goto(upTo);
    await resultsFor(page, upTo);
    assert.deepEqual(
      new Set(await rowIds(page)),
      new Set(spans.slice(1130).map((s) => s.traceId)),
    );
    assert.equal(await page.getByTestId("older-link").count(), 0);
    await page.getByTestId("newest-link").waitFor();
    assert.deepEqual(pageErrors, []);
  });

  it("keeps a date-range link's window through the form, and says what it is", async () => {
    // A request every second from base + 100 s; the link's window holds
    // the ones from 3 to 6, and the odd ones failed.
    const at = (i: number) => base + 100_000 + i * 1000;
    const spans = Array.from({ length: 10 }, (_, i) =>
      request("c-win", at(i), i % 2 === 1 ? { statusCode: 2 } : {}),
    );
    await send(dev, "orders", spans);
    await waitFor(
      async () => {
        const res = await fetch(`${dev.viewerUrl}/api/search?customer=c-win`);
        return (
          ((await res.json()) as { traces: unknown[] }).traces.length === 10
        );
      },
      { what: "c-win's traces stored" },
    );
    const from = new Date(at(3)).toISOString();
    const to = String(at(6));
    const link = `${dev.viewerUrl}/?${new URLSearchParams({ customer: "c-win", from, to })}`;
    await page.goto(link);
    await resultsFor(page, link);
    assert.deepEqual(
      new Set(await rowIds(page)),
      new Set([3, 4, 5, 6].map((i) => spans[i]!.traceId)),
    );
    const head = await page.locator(".results-head").innerText();
    const range = await page
      .locator("[data-testid=range-select] option:checked")
      .innerText();
    for (const text of [head, range])
      assert.match(
        text,
        /between \d\d:\d\d:\d\d\.\d{3} .* and \d\d:\d\d:\d\d\.\d{3}/,
        "the window is said",
      );
    assert.notEqual(range, "any time");

    await page.getByTestId("errors-checkbox").check();
    await page.getByTestId("search-button").click();
    await waitFor(
      async () => new URL(page.url()).searchParams.get("errors") === "1",
      {
        timeoutMs: 5_000,
        what: "the search with errors only",
      },
    );
    await page.locator("[data-testid=results][data-state=done]").waitFor();
    const url = new URL(page.url());
    assert.equal(url.searchParams.get("from"), from);
    assert.equal(url.searchParams.get("to"), to);
    assert.deepEqual(
      new Set(await rowIds(page)),
      new Set([3, 5].map((i) => spans[i]!.traceId)),
    );

    // Another time range replaces the window.
    await page.getByTestId("range-select").selectOption("1h");
    await page.getByTestId("search-button").click();
    await waitFor(
      async () => new URL(page.url()).searchParams.get("since") === "1h",
      {
        timeoutMs: 5_000,
        what: "the search in the last hour",
      },
    );
    await page.locator("[data-testid=results][data-state=done]").waitFor();
    const widened = new URL(page.url());
    assert.equal(widened.searchParams.get("from"), null);
    assert.equal(widened.searchParams.get("to"), null);
    assert.equal(await page.getByTestId("result-row").count(), 5);
    assert.deepEqual(pageErrors, []);
  });

  it("names a trace's tab after its root span, also when the root arrives after the page opened", async () => {
    const traceId = id(16);
    const rootId = id(8);
    const now = Date.now();
    await send(dev, "svc-a", [
      spanData({
        traceId,
        spanId: id(8),
        parentSpanId: rootId,
        name: "GET",
        kind: 3,
        startTime: now + 1,
        endTime: now + 4,
      }),
    ]);
    await waitFor(
      async () =>
        (await fetch(`${dev.viewerUrl}/api/traces/${traceId}`)).status === 200,
      { what: "the first span stored" },
    );
    // The page follows the trace on the live stream once it has loaded it:
    // the root is sent when the stream is open.
    const following = page.waitForResponse((r) =>
      r.url().includes("/api/live"),
    );
    await page.goto(`${dev.viewerUrl}/trace/${traceId}`);
    await page
      .locator("[data-testid=trace-view][data-state=ready]")
      .waitFor({ timeout: 10_000 });
    await assertTitle(page, "svc-a GET · Threadline");
    await following;

    await send(dev, "gateway", [
      spanData({
        traceId,
        spanId: rootId,
        name: "GET /order",
        startTime: now,
        endTime: now + 5,
      }),
    ]);
    await page
      .locator(".trace-title", { hasText: "GET /order" })
      .waitFor({ timeout: 10_000 });
    await assertTitle(page, "gateway GET /order · Threadline");
    assert.deepEqual(pageErrors, []);
  });
});
