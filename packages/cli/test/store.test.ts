// The local store: search filters, persistence across restarts, pruning.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import type {
  DecodedResourceLogs,
  DecodedResourceMetrics,
  DecodedResourceSpans,
  DecodedSpan,
} from "@threadline/otlp";
import type { SearchCursor, SearchQuery } from "../src/model.ts";
import { Store } from "../src/store.ts";
import { tableCounts } from "./table-counts.ts";

const dir = mkdtempSync(join(tmpdir(), "threadline-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

function span(traceId: string, over: Partial<DecodedSpan> = {}): DecodedSpan {
  seq++;
  return {
    traceId,
    spanId: hex(seq, 16),
    parentSpanId: "",
    traceState: "",
    name: "GET /orders",
    kind: 2,
    startUs: 1_000_000,
    endUs: 1_010_000,
    attributes: {},
    events: [],
    links: [],
    statusCode: 0,
    statusMessage: "",
    flags: 1,
    ...over,
  };
}

function batch(service: string, spans: DecodedSpan[]): DecodedResourceSpans[] {
  return [
    {
      resource: { "service.name": service },
      scopes: [{ scope: { name: "t", version: "" }, spans }],
    },
  ];
}

/**
 * 400 traces of one span with a 2 KB attribute each, a millisecond apart
 * and ending before `now` (µs), the first of trace id `first`; written a
 * flush every `flushEvery`.
 */
function largeTraces(
  store: Store,
  first: number,
  now: number,
  flushEvery: number,
): void {
  const big = "x".repeat(2000);
  for (let i = 0; i < 400; i++) {
    store.ingestSpans(
      batch("svc", [
        span(hex(first + i, 32), {
          startUs: now - (400 - i) * 1000,
          endUs: now - (400 - i) * 1000 + 10,
          attributes: { blob: big },
        }),
      ]),
    );
    if (i % flushEvery === flushEvery - 1) store.flush();
  }
}

/** One order: gateway root, orders child with SQL, worker consumer. */
function order(
  store: Store,
  n: number,
  customer: string,
  startUs: number,
  error = false,
): string {
  const traceId = hex(0xabc000 + n, 32);
  const root = span(traceId, {
    startUs,
    endUs: startUs + 20_000,
    attributes: { "customer.id": customer, "http.route": "/orders" },
    name: "POST /orders",
  });
  const child = span(traceId, {
    parentSpanId: root.spanId,
    kind: 3,
    name: "SELECT products",
    startUs: startUs + 1000,
    endUs: startUs + 3000,
    attributes: {
      "customer.id": customer,
      "db.query.text": "SELECT price_cents FROM products WHERE sku = $1",
      "db.collection.name": "products",
    },
  });
  const consumer = span(traceId, {
    parentSpanId: child.spanId,
    kind: 5,
    name: "process payments",
    startUs: startUs + 5000,
    endUs: startUs + (error ? 900_000 : 15_000),
    statusCode: error ? 2 : 0,
    attributes: { "customer.id": customer, "messaging.system": "rabbitmq" },
  });
  // Services export separately and out of order: worker first.
  store.ingestSpans(batch("worker", [consumer]));
  store.ingestSpans(batch("orders", [child]));
  store.flush();
  store.ingestSpans(batch("gateway", [root]));
  const logs: DecodedResourceLogs[] = [
    {
      resource: { "service.name": "orders" },
      scopes: [
        {
          scope: { name: "pino", version: "" },
          logs: [
            {
              timeUs: startUs + 2000,
              observedUs: 0,
              severityNumber: 9,
              severityText: "info",
              body: "order stored",
              attributes: { "customer.id": customer },
              droppedAttributesCount: 0,
              traceId,
              spanId: child.spanId,
              flags: 1,
              eventName: "",
            },
          ],
        },
      ],
    },
  ];
  store.ingestLogs(logs);
  store.flush();
  return traceId;
}

/** Log lines of one service in one trace, one microsecond apart. */
function logBatch(
  traceId: string,
  bodies: string[],
  startUs = 0,
): DecodedResourceLogs[] {
  return [
    {
      resource: { "service.name": "payments" },
      scopes: [
        {
          scope: { name: "pino", version: "" },
          logs: bodies.map((body, i) => ({
            timeUs: 1_000_000 + startUs + i,
            observedUs: 1_000_000 + startUs + i,
            severityNumber: 17,
            severityText: "error",
            body,
            attributes: { "customer.id": "c-9" },
            droppedAttributesCount: 0,
            traceId,
            spanId: hex(0xee, 16),
            flags: 1,
            eventName: "",
          })),
        },
      ],
    },
  ];
}

/** gateway (its instance `instance`, if named) using `mb` MB at `timeMs`, as its runtime metrics say it. */
function memoryPoint(
  instance: string | undefined,
  timeMs: number,
  mb: number,
): DecodedResourceMetrics {
  return {
    resource:
      instance === undefined
        ? { "service.name": "gateway" }
        : { "service.name": "gateway", "service.instance.id": instance },
    scopes: [
      {
        scope: { name: "@threadline/node/runtime", version: "" },
        metrics: [
          {
            name: "process.memory.usage",
            unit: "By",
            kind: "sum",
            monotonic: false,
            delta: false,
            points: [{ attributes: {}, timeMs, value: mb * 2 ** 20 }],
          },
        ],
      },
    ],
  };
}

describe("search", () => {
  const store = new Store({ path: ":memory:" });
  const ids: Record<string, string> = {};
  before(() => {
    ids["a"] = order(store, 1, "c-42", 1_000_000);
    ids["b"] = order(store, 2, "c-7", 2_000_000);
    ids["c"] = order(store, 3, "c-42", 3_000_000, true);
  });
  after(() => store.close());

  it("finds nothing for an empty customer, service or operation, as the remote backends do", () => {
    for (const q of [{ customer: "" }, { service: "" }, { operation: "" }])
      assert.deepEqual(store.searchSync(q), [], JSON.stringify(q));
  });

  it("summarises each trace across services, out-of-order arrival included", () => {
    const [t] = store.searchSync({ customer: "c-7" });
    assert.ok(t);
    assert.equal(t.traceId, ids["b"]);
    assert.equal(t.rootService, "gateway");
    assert.equal(t.rootName, "POST /orders");
    assert.equal(t.spanCount, 3);
    assert.deepEqual(t.services, ["gateway", "orders", "worker"]);
    assert.equal(t.startUs, 2_000_000);
    assert.equal(t.durationUs, 20_000);
  });

  it("finds by customer, newest first, and by every other filter", () => {
    assert.deepEqual(
      store.searchSync({ customer: "c-42" }).map((t) => t.traceId),
      [ids["c"], ids["a"]],
    );
    assert.deepEqual(
      store
        .searchSync({ customer: "c-42", errorsOnly: true })
        .map((t) => t.traceId),
      [ids["c"]],
    );
    assert.deepEqual(
      store.searchSync({ minDurationUs: 500_000 }).map((t) => t.traceId),
      [ids["c"]],
    );
    assert.deepEqual(
      store
        .searchSync({ fromUs: 1_500_000, toUs: 2_500_000 })
        .map((t) => t.traceId),
      [ids["b"]],
    );
    assert.equal(store.searchSync({ service: "worker" }).length, 3);
    assert.equal(store.searchSync({ service: "nobody" }).length, 0);
    assert.equal(
      store.searchSync({ operation: "/orders" }).length,
      3,
      "by route",
    );
    assert.equal(
      store.searchSync({ operation: "SELECT products" }).length,
      3,
      "by span name",
    );
    assert.deepEqual(
      store
        .searchSync({
          attributes: [["db.collection.name", "products"]],
          customer: "c-7",
        })
        .map((t) => t.traceId),
      [ids["b"]],
    );
    // db.query.text is not indexed; it is still searchable by scanning spans.
    assert.equal(
      store.searchSync({
        attributes: [
          ["db.query.text", "SELECT price_cents FROM products WHERE sku = $1"],
        ],
      }).length,
      3,
    );
    assert.equal(store.searchSync({ limit: 1 }).length, 1);
  });

  it("returns a whole trace with its logs", () => {
    const t = store.getTraceSync(ids["a"]!)!;
    assert.equal(t.spans.length, 3);
    assert.deepEqual(
      t.logs.map((l) => l.body),
      ["order stored"],
    );
    assert.equal(t.logs[0]!.service, "orders");
    assert.equal(store.getTraceSync("f".repeat(32)), undefined);
  });
});

describe("a large trace", () => {
  it("is read with each service's resource parsed once, shared by its spans", async () => {
    const store = new Store({ path: ":memory:" });
    const traceId = hex(0xee0001, 32);
    // Two exports of one service, and one of another.
    store.ingestSpans(batch("orders", [span(traceId), span(traceId)]));
    store.ingestSpans(batch("orders", [span(traceId)]));
    store.ingestSpans(batch("worker", [span(traceId)]));
    store.flush();
    const spans = store.getTraceSync(traceId)!.spans;
    const orders = spans.filter((s) => s.service === "orders");
    const worker = spans.find((s) => s.service === "worker")!;
    assert.equal(orders.length, 3);
    for (const s of orders) assert.equal(s.resource, orders[0]!.resource);
    assert.deepEqual(orders[0]!.resource, { "service.name": "orders" });
    assert.deepEqual(worker.resource, { "service.name": "worker" });
    await store.close();
  });
});

describe("search by customer", () => {
  it("finds a trace by the customer of any of its spans, not only the first seen", async () => {
    const store = new Store({ path: ":memory:" });
    const traceId = hex(0xcc0001, 32);
    const root = span(traceId, { attributes: { "customer.id": "c-2" } });
    const child = span(traceId, {
      parentSpanId: root.spanId,
      name: "POST /refunds",
      startUs: 1_001_000,
      attributes: { "customer.id": "c-3" },
    });
    store.ingestSpans(batch("gateway", [root]));
    store.flush();
    store.ingestSpans(batch("refunds", [child]));
    store.flush();
    for (const customer of ["c-2", "c-3"])
      assert.deepEqual(
        store.searchSync({ customer }).map((t) => t.traceId),
        [traceId],
        customer,
      );
    assert.deepEqual(
      store
        .searchSync({ customer: "c-3", service: "refunds" })
        .map((t) => t.traceId),
      [traceId],
    );
    assert.equal(store.searchSync({ customer: "c-4" }).length, 0);
    // A long id (other SDKs do not cap them) is found too.
    const longId = `c-${"9".repeat(200)}`;
    const other = hex(0xcc0002, 32);
    const first = span(other, { attributes: { "customer.id": "c-2" } });
    store.ingestSpans(
      batch("gateway", [
        first,
        span(other, {
          parentSpanId: first.spanId,
          attributes: { "customer.id": longId },
        }),
      ]),
    );
    store.flush();
    assert.deepEqual(
      store.searchSync({ customer: longId }).map((t) => t.traceId),
      [other],
    );
    await store.close();
  });
});

describe("search by resource attribute", () => {
  it("finds traces by the attributes of the service that sent them, as the production backends do", async () => {
    const store = new Store({ path: ":memory:" });
    const traceId = hex(0xcc0101, 32);
    store.ingestSpans([
      {
        resource: {
          "service.name": "orders",
          "service.version": "1.2.3",
          "deployment.environment.name": "prod",
          "service.instance.id": "627cc493-f310-47de-96bd-71410b7dec09",
        },
        scopes: [
          {
            scope: { name: "t", version: "" },
            spans: [span(traceId, { attributes: { "customer.id": "c-5" } })],
          },
        ],
      },
    ]);
    store.flush();
    const found = (attributes: Array<[string, string]>, customer?: string) =>
      store.searchSync({ attributes, customer }).map((t) => t.traceId);
    assert.deepEqual(found([["deployment.environment.name", "prod"]]), [
      traceId,
    ]);
    assert.deepEqual(found([["service.version", "1.2.3"]], "c-5"), [traceId]);
    assert.deepEqual(
      found([["service.instance.id", "627cc493-f310-47de-96bd-71410b7dec09"]]),
      [traceId],
      "an untagged key is read from the spans' resource",
    );
    assert.deepEqual(found([["deployment.environment.name", "staging"]]), []);
    await store.close();
  });
});

describe("search pages", () => {
  it("hold every trace once, newest first and then by trace id, however many started together", async () => {
    const store = new Store({ path: ":memory:" });
    // 1100 traces starting at one microsecond, more than one search
    // returns, between 30 newer and 30 older; their ids in no order.
    const tied = 5_000_000;
    const startOf = (i: number) =>
      i < 30 ? tied + 30 - i : i < 1130 ? tied : tied - (i - 1129);
    const all = Array.from({ length: 1160 }, (_, i) => ({
      id: hex((i * 2_654_435_761) % 2 ** 32, 32),
      start: startOf(i),
    }));
    store.ingestSpans(
      batch(
        "orders",
        all.map((t) =>
          span(t.id, {
            startUs: t.start,
            endUs: t.start + 10,
            attributes: { "customer.id": "c-pages" },
          }),
        ),
      ),
    );
    store.flush();
    const newestFirst = (ts: typeof all) =>
      [...ts]
        .sort((a, b) => b.start - a.start || (a.id < b.id ? 1 : -1))
        .map((t) => t.id);
    const walk = (q: SearchQuery) => {
      const seen: string[] = [];
      let next: SearchCursor | undefined;
      do {
        const page = store.searchPage({ ...q, after: next });
        assert.ok(page.traces.length <= (q.limit ?? 50));
        seen.push(...page.traces.map((t) => t.traceId));
        next = page.next;
        assert.ok(seen.length <= all.length, "the pages end");
      } while (next !== undefined);
      return seen;
    };
    // Read from the traces' start index, and from the tag index.
    for (const q of [
      {},
      { limit: 1000 },
      { customer: "c-pages" },
      { service: "orders", customer: "c-pages", limit: 1000 },
      { operation: "GET /orders", limit: 7 },
    ])
      assert.deepEqual(walk(q), newestFirst(all), JSON.stringify(q));
    const window = { fromUs: tied - 10, toUs: tied };
    const inWindow = all.filter((t) => t.start >= tied - 10 && t.start <= tied);
    assert.deepEqual(walk(window), newestFirst(inWindow));
    assert.deepEqual(
      walk({ ...window, customer: "c-pages" }),
      newestFirst(inWindow),
    );
    // A cursor after the window's end leaves the end where it is.
    assert.deepEqual(
      store
        .searchPage({
          toUs: tied - 25,
          limit: 1000,
          after: { startUs: tied, traceId: "f".repeat(32) },
        })
        .traces.map((t) => t.traceId),
      newestFirst(all.filter((t) => t.start <= tied - 25)),
    );
    await store.close();
  });
});

describe("persistence and pruning", () => {
  it("keeps history across a restart", async () => {
    const path = join(dir, "restart.sqlite");
    const first = new Store({ path });
    const id = order(first, 10, "c-1", Date.now() * 1000);
    await first.close();
    const second = new Store({ path });
    assert.deepEqual(
      second.searchSync({ customer: "c-1" }).map((t) => t.traceId),
      [id],
    );
    assert.equal(second.getTraceSync(id)?.logs.length, 1);
    await second.close();
    const reader = new Store({ path, readonly: true });
    assert.equal((await reader.search({ customer: "c-1" })).length, 1);
    await reader.close();
  });

  it("drops data older than the age limit", async () => {
    const store = new Store({ path: ":memory:", maxAgeMs: 60_000 });
    const now = Date.now() * 1000;
    order(store, 20, "c-old", now - 3_600_000_000);
    const fresh = order(store, 21, "c-new", now - 1_000_000);
    assert.equal(store.prune(now), 1);
    assert.deepEqual(
      store.searchSync({}).map((t) => t.traceId),
      [fresh],
    );
    assert.equal(store.counts().spans, 3);
    assert.equal(store.counts().logs, 1);
    await store.close();
  });

  it("keeps a trace that ended within the age limit whole, though one of its spans started long before", async () => {
    const store = new Store({ path: ":memory:", maxAgeMs: 60_000 });
    const now = Date.now() * 1000;
    const traceId = hex(0xabd001, 32);
    const root = span(traceId, {
      startUs: now - 2_000_000,
      endUs: now - 1_000_000,
      attributes: { "customer.id": "c-skew" },
    });
    // A service whose clock is far behind: its span starts in 1970.
    const skewed = span(traceId, {
      parentSpanId: root.spanId,
      startUs: 5_000,
      endUs: 6_000,
      attributes: { "customer.id": "c-skew" },
    });
    store.ingestSpans(batch("gateway", [root]));
    store.ingestSpans(batch("clock", [skewed]));
    store.flush();
    const old = order(store, 22, "c-old", now - 3_600_000_000);
    assert.equal(store.prune(now), 1);
    assert.deepEqual(
      store.searchSync({ customer: "c-skew" }).map((t) => t.traceId),
      [traceId],
    );
    assert.equal(store.getTraceSync(traceId)?.spans.length, 2);
    assert.equal(store.getTraceSync(old), undefined);
    assert.deepEqual(store.counts(), { traces: 1, spans: 2, logs: 0 });
    // The skewed service's line goes with its trace, not before it.
    const [line] = logBatch(traceId, ["price computed"], 5_000);
    store.ingestLogs([line!]);
    store.flush();
    assert.equal(store.prune(now), 0);
    assert.equal(store.getTraceSync(traceId)?.logs.length, 1);
    assert.deepEqual(store.counts(), { traces: 1, spans: 2, logs: 1 });
    // Once it ended long enough ago, it goes whole.
    assert.equal(store.prune(now + 3_600_000_000), 1);
    assert.deepEqual(store.counts(), { traces: 0, spans: 0, logs: 0 });
    await store.close();
  });

  it("drops the oldest traces first beyond the size limit", async () => {
    const path = join(dir, "size.sqlite");
    const store = new Store({ path, maxBytes: 600 * 1024 });
    const now = Date.now() * 1000;
    largeTraces(store, 0xd00000, now, 400);
    assert.ok(store.sizeBytes() > 600 * 1024);
    assert.ok(store.prune(now) > 0);
    assert.ok(store.sizeBytes() <= 600 * 1024, `${store.sizeBytes()} bytes`);
    const left = store.searchSync({ limit: 1000 });
    assert.ok(left.length > 0 && left.length < 400);
    // What is left is the newest.
    assert.equal(left[0]!.traceId, hex(0xd00000 + 399, 32));
    await store.close();
  });
  it("brings a store under the size limit by when its traces were last active, though a skewed clock dates one span of each hours back", async () => {
    const path = join(dir, "size-skew.sqlite");
    const store = new Store({ path, maxBytes: 600 * 1024 });
    const now = Date.now() * 1000;
    const big = "x".repeat(2000);
    for (let i = 0; i < 400; i++) {
      const traceId = hex(0xd10000 + i, 32);
      const startUs = now - (400 - i) * 1000;
      const root = span(traceId, {
        startUs,
        endUs: startUs + 10,
        attributes: { blob: big },
      });
      store.ingestSpans(batch("gateway", [root]));
      // A service whose clock is three hours behind, on every second trace.
      if (i % 2 === 0)
        store.ingestSpans(
          batch("pricing", [
            span(traceId, {
              parentSpanId: root.spanId,
              startUs: startUs - 3 * 3_600_000_000,
              endUs: startUs - 3 * 3_600_000_000 + 5,
            }),
          ]),
        );
    }
    store.flush();
    assert.ok(store.sizeBytes() > 600 * 1024);
    assert.ok(store.prune(now) > 0);
    assert.ok(store.sizeBytes() <= 600 * 1024, `${store.sizeBytes()} bytes`);
    // What is left is the newest, skewed or not.
    const left = store
      .searchSync({ limit: 1000 })
      .map((t) => t.traceId)
      .sort();
    assert.ok(left.length > 0 && left.length < 400);
    const first = 0xd10000 + 400 - left.length;
    assert.deepEqual(
      left,
      Array.from({ length: left.length }, (_, i) => hex(first + i, 32)),
    );
    await store.close();
  });

  it("brings a store of log lines outside traces under the size limit in one pass, and shrinks its file", async () => {
    const path = join(dir, "lines.sqlite");
    const maxBytes = 1024 * 1024;
    const store = new Store({ path, maxBytes });
    const now = Date.now() * 1000;
    // A poller's lines, no trace among them: 5,000 of about 250 bytes a
    // minute, for `minutes` minutes ending `endUs`.
    const poll = (minutes: number, endUs: number) => {
      for (let m = minutes; m > 0; m--) {
        const bodies = Array.from(
          { length: 5000 },
          (_, i) => `poll tick ${m}.${i} ${"y".repeat(200)}`,
        );
        const [group] = logBatch("", bodies, endUs - m * 60_000_000);
        store.ingestLogs([group!]);
        store.flush();
      }
    };
    poll(6, now - 60_000_000);
    assert.ok(store.sizeBytes() > 4 * maxBytes, `${store.sizeBytes()} bytes`);
    store.prune(now);
    assert.ok(store.sizeBytes() <= maxBytes, `${store.sizeBytes()} bytes`);
    const kept = store.counts().logs;
    assert.ok(kept > 0 && kept < 30_000 / 4, `${kept} lines`);
    // On disk too, once the next write has reset the write-ahead log.
    poll(1, now);
    const onDisk = statSync(path).size + statSync(`${path}-wal`).size;
    assert.ok(
      onDisk <= 2 * maxBytes + 4 * 1024 * 1024,
      `${onDisk} bytes on disk`,
    );

    // Older lines, then a request newer than all of them: the lines go first.
    poll(6, now - 600_000_000);
    const fresh = order(store, 30, "c-new", now - 1_000_000);
    store.prune(now);
    assert.ok(store.sizeBytes() <= maxBytes, `${store.sizeBytes()} bytes`);
    assert.deepEqual(
      store.searchSync({}).map((t) => t.traceId),
      [fresh],
    );
    await store.close();
    assert.ok(
      statSync(path).size <= 2 * maxBytes,
      `${statSync(path).size} bytes on disk`,
    );
  });
});

describe("counts", () => {
  it("stay those of the tables through writes, late spans, prunes, a restart and another writer", async () => {
    const path = join(dir, "counts.sqlite");
    const maxBytes = 600 * 1024;
    const now = Date.now() * 1000;
    const truth = new DatabaseSync(path);
    const tables = () => tableCounts(truth);
    const check = (store: Store, when: string) => {
      const counts = store.counts();
      assert.deepEqual(counts, tables(), when);
      return counts;
    };

    let store = new Store({ path, maxBytes, maxAgeMs: 3_600_000 });
    // Each order is written in two flushes: its root joins a trace stored
    // by the first.
    const first = order(store, 40, "c-1", now - 7_200_000_000);
    order(store, 41, "c-2", now - 1_000_000);
    assert.deepEqual(check(store, "two orders"), {
      traces: 2,
      spans: 6,
      logs: 2,
    });
    // A late span of the first order, starting before its root; a span and
    // log lines sent again; lines outside any trace, and one of a trace not
    // stored (summarised from its line, its spans still to come).
    const late = span(first, { startUs: now - 7_300_000_000 });
    store.ingestSpans(batch("audit", [late]));
    const lines = logBatch("", ["poll", "poll again"], now - 1_000_000);
    store.ingestLogs(lines);
    store.ingestLogs(
      logBatch(hex(0xabcfff, 32), ["early line"], now - 7_200_000_000),
    );
    store.flush();
    store.ingestSpans(batch("audit", [late]));
    store.ingestLogs(lines);
    store.flush();
    assert.deepEqual(check(store, "late and repeated data"), {
      traces: 3,
      spans: 7,
      logs: 5,
    });

    // By age: the first order and the old line, and its trace, go.
    assert.equal(store.prune(now), 2);
    check(store, "pruned by age");

    // By size: the oldest of many large traces go.
    largeTraces(store, 0xd10000, now, 100);
    assert.equal(check(store, "before pruning by size").traces, 401);
    assert.ok(store.prune(now) > 0);
    assert.ok(store.sizeBytes() <= maxBytes, `${store.sizeBytes()} bytes`);
    check(store, "pruned by size");

    // Another process writing the same file.
    const other = new Store({ path, maxBytes, maxAgeMs: 3_600_000 });
    order(other, 42, "c-3", now);
    check(store, "after another process wrote");
    order(store, 43, "c-4", now);
    check(store, "after writing again");
    other.prune(now + 7_200_000_000);
    assert.equal(check(store, "after another process pruned").traces, 0);
    await other.close();

    // A restart.
    order(store, 44, "c-5", now);
    const before = check(store, "before closing");
    await store.close();
    store = new Store({ path, maxBytes, maxAgeMs: 3_600_000 });
    assert.deepEqual(check(store, "reopened"), before);
    order(store, 45, "c-6", now);
    check(store, "written after reopening");
    const reader = new Store({ path, readonly: true });
    check(reader, "read by another process");
    await reader.close();
    await store.close();
    truth.close();
  });
});

describe("writing", () => {
  it("stores and counts a span sent twice once", async () => {
    const store = new Store({ path: ":memory:" });
    const traceId = hex(0xdd0001, 32);
    const once = span(traceId, { statusCode: 2 });
    store.ingestSpans(batch("gateway", [once]));
    store.flush();
    store.ingestSpans(batch("gateway", [once]));
    store.flush();
    const [t] = store.searchSync({ service: "gateway" });
    assert.equal(t?.spanCount, 1);
    assert.equal(t?.errorCount, 1);
    await store.close();
  });

  it("stores a log record sent twice once", async () => {
    const store = new Store({ path: ":memory:" });
    const traceId = hex(0xdd0003, 32);
    const sent = logBatch(traceId, ["card declined", "order failed"]);
    store.ingestLogs(sent);
    store.flush();
    store.ingestLogs(sent);
    store.flush();
    assert.equal(store.counts().logs, 2);
    // The same line written again later is another record, and kept.
    const later = logBatch(traceId, ["card declined"], 5);
    store.ingestLogs(later);
    store.flush();
    assert.equal(store.counts().logs, 3);
    await store.close();
  });

  it("opens a store file written before log records were deduplicated", async () => {
    const path = join(dir, "schema-1.sqlite");
    const old = new DatabaseSync(path);
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema', '1');
      CREATE TABLE logs (
        id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        service TEXT NOT NULL, severity_number INTEGER NOT NULL, severity_text TEXT NOT NULL,
        body TEXT NOT NULL, attributes TEXT NOT NULL, customer TEXT);
      INSERT INTO logs VALUES (1, 1000000, '${hex(0xdd0004, 32)}', '', 'orders', 9, 'info', '"kept"', '{}', NULL);
    `);
    old.close();
    const store = new Store({ path });
    const traceId = hex(0xdd0005, 32);
    const sent = logBatch(traceId, ["card declined"]);
    store.ingestLogs(sent);
    store.flush();
    store.ingestLogs(sent);
    store.flush();
    assert.equal(store.counts().logs, 2);
    await store.close();
    const reader = new Store({ path, readonly: true });
    assert.equal(reader.counts().logs, 2);
    await reader.close();
  });
  it("opens a store file written before instances were kept, its metric points read as one instance", async () => {
    const path = join(dir, "schema-2.sqlite");
    const t0 = Date.now() - 60_000;
    const old = new DatabaseSync(path);
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema', '2');
      CREATE TABLE logs (
        id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        service TEXT NOT NULL, severity_number INTEGER NOT NULL, severity_text TEXT NOT NULL,
        body TEXT NOT NULL, attributes TEXT NOT NULL, customer TEXT, digest BLOB);
      CREATE TABLE metric_points (
        service TEXT NOT NULL, name TEXT NOT NULL, time_ms INTEGER NOT NULL, attributes TEXT NOT NULL,
        value REAL, count REAL, sum REAL);
      INSERT INTO metric_points VALUES ('gateway', 'process.memory.usage', ${t0}, '{}', ${50 * 2 ** 20}, NULL, NULL);
    `);
    old.close();
    const store = new Store({ path });
    store.ingestMetrics([memoryPoint("B", t0 + 10_000, 20)]);
    store.flush();
    assert.deepEqual(store.servicePanels("gateway", t0 - 1).rssMb, [
      [t0, 50],
      [t0 + 10_000, 70],
    ]);
    await store.close();
    const file = new DatabaseSync(path);
    assert.equal(
      file.prepare("SELECT value FROM meta WHERE key = 'schema'").get()?.[
        "value"
      ],
      "3",
    );
    file.close();
  });

  it("draws a metric point of a time that cannot be right at the time it came", () => {
    const store = new Store({ path: ":memory:" });
    const before = Date.now();
    // Past 2^53 microseconds: the column would hold it, and reading it throw.
    store.ingestMetrics([
      memoryPoint("A", 2 ** 64 / 1e6, 10),
      memoryPoint("A", 1_700_000, 20),
    ]);
    store.flush();
    const drawn = store.servicePanels("gateway", before - 1).rssMb;
    assert.equal(drawn.length, 1, JSON.stringify(drawn));
    const [at, mb] = drawn[0]!;
    assert.ok(at >= before && at <= Date.now(), `drawn at ${at}`);
    assert.ok(mb === 10 || mb === 20 || mb === 30, `${mb}`);
  });

  it("keeps what it could not write while another process held the file, and writes it next time", async () => {
    const path = join(dir, "shared.sqlite");
    const store = new Store({ path, busyTimeoutMs: 50 });
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    const traceId = hex(0xdd0002, 32);
    store.ingestSpans(batch("orders", [span(traceId)]));
    assert.throws(() => store.flush(), { errcode: 5 });
    other.exec("COMMIT");
    other.close();
    store.flush();
    assert.equal(store.searchSync({ service: "orders" })[0]?.traceId, traceId);
    await store.close();
  });
});

describe("a service's request panels", () => {
  /** One export of the request-duration histogram: cumulative totals, or deltas (series that took no request left out). */
  function exported(
    timeMs: number,
    ok: number,
    failed: number,
    seconds: number,
    delta = false,
  ): DecodedResourceMetrics {
    const point = (count: number, error: boolean) => ({
      attributes: error ? { "error.type": "500" } : {},
      timeMs,
      count,
      sum: count * seconds,
    });
    const points = [point(ok, false), point(failed, true)].filter(
      (p) => !delta || p.count > 0,
    );
    return {
      resource: { "service.name": "gateway" },
      scopes: [
        {
          scope: { name: "@threadline/instrumentation-http", version: "" },
          metrics: [
            {
              name: "http.server.request.duration",
              unit: "s",
              kind: "histogram",
              monotonic: false,
              delta,
              points,
            },
          ],
        },
      ],
    };
  }

  it("counts a service's first export from zero, and leaves quiet intervals without a latency", async () => {
    const store = new Store({ path: ":memory:" });
    const t0 = Date.now() - 60_000;
    // 8 requests (1 failed) before the first export, none after.
    for (const t of [t0, t0 + 10_000, t0 + 20_000])
      store.ingestMetrics([exported(t, 7, 1, 0.05)]);
    store.flush();
    const panels = store.servicePanels("gateway", t0 - 1);
    assert.deepEqual(panels.requestsPerSecond, [
      [t0, 0.8],
      [t0 + 10_000, 0],
      [t0 + 20_000, 0],
    ]);
    assert.deepEqual(panels.errorsPerSecond, [
      [t0, 0.1],
      [t0 + 10_000, 0],
      [t0 + 20_000, 0],
    ]);
    assert.equal(panels.latencyMs.length, 1);
    assert.equal(panels.latencyMs[0]![0], t0);
    assert.ok(Math.abs(panels.latencyMs[0]![1] - 50) < 1e-9);
    // Read from later on, the first export in the window is not the
    // service's first: it is not counted from zero.
    assert.deepEqual(
      store.servicePanels("gateway", t0 + 5_000).requestsPerSecond,
      [[t0 + 20_000, 0]],
    );
    await store.close();
  });

  it("draws a service that sends deltas as it draws one that sends totals", async () => {
    const t0 = Date.now() - 60_000;
    const panels = async (exports: DecodedResourceMetrics[]) => {
      const store = new Store({ path: ":memory:" });
      for (const e of exports) store.ingestMetrics([e]);
      store.flush();
      const p = store.servicePanels("gateway", t0 - 1);
      await store.close();
      return p;
    };
    // 8 requests (1 failed), then 9 more that all succeed, then 2 failures.
    const totals = await panels([
      exported(t0, 7, 1, 0.05),
      exported(t0 + 10_000, 16, 1, 0.05),
      exported(t0 + 20_000, 16, 3, 0.05),
    ]);
    const deltas = await panels([
      exported(t0, 7, 1, 0.05, true),
      exported(t0 + 10_000, 9, 0, 0.05, true),
      exported(t0 + 20_000, 0, 2, 0.05, true),
    ]);
    assert.deepEqual(deltas.requestsPerSecond, totals.requestsPerSecond);
    assert.deepEqual(deltas.requestsPerSecond, [
      [t0, 0.8],
      [t0 + 10_000, 0.9],
      [t0 + 20_000, 0.2],
    ]);
    assert.deepEqual(deltas.errorsPerSecond, totals.errorsPerSecond);
    assert.deepEqual(
      deltas.latencyMs.map(([t, ms]) => [t, Math.round(ms)]),
      totals.latencyMs.map(([t, ms]) => [t, Math.round(ms)]),
    );
  });

  it("reads a quiet interval of a service that sends deltas as quiet", async () => {
    const t0 = Date.now() - 60_000;
    // An export with no request: the delta histogram is left out, the
    // runtime metrics still come.
    const quiet = (timeMs: number) => memoryPoint(undefined, timeMs, 50);
    const store = new Store({ path: ":memory:" });
    for (const e of [
      exported(t0, 7, 1, 0.05, true),
      quiet(t0 + 10_000),
      quiet(t0 + 20_000),
      exported(t0 + 30_000, 5, 0, 0.05, true),
    ])
      store.ingestMetrics([e]);
    store.flush();
    assert.deepEqual(store.servicePanels("gateway", t0 - 1).requestsPerSecond, [
      [t0, 0.8],
      [t0 + 10_000, 0],
      [t0 + 20_000, 0],
      [t0 + 30_000, 0.5],
    ]);
    await store.close();
  });
});
