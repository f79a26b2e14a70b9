// The example shop end to end, against real PostgreSQL and RabbitMQ: one
// customer's order is one trace through gateway, orders (SQL, publish),
// worker (consume, third-party call, SQL), and fifty concurrent orders from
// five customers never mix their spans.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  startOtlpReceiver,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  type OtlpReceiver,
  type ReceivedSpan,
  type Shop,
} from "@threadline/test-support";

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;
const SPANS_PER_ORDER = 9;

const service = (s: ReceivedSpan) => s.resource["service.name"];
const one = (
  spans: ReceivedSpan[],
  what: string,
  pred: (s: ReceivedSpan) => boolean,
): ReceivedSpan => {
  const found = spans.filter(pred);
  assert.equal(
    found.length,
    1,
    `exactly one ${what}, found ${found.map((s) => `${service(s)}:${s.name}`).join(", ")}`,
  );
  return found[0]!;
};

function order(shop: Shop, customer: string, item: string): Promise<Response> {
  return fetch(`${shop.gateway.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-customer-id": customer },
    body: JSON.stringify({ item, quantity: 2 }),
  });
}

/** Checks the full shape of one order's trace; returns its spans. */
function checkOrderTrace(
  spans: ReceivedSpan[],
  traceId: string,
  customer: string,
): void {
  const t = spans.filter((s) => s.traceId === traceId);
  assert.equal(
    t.length,
    SPANS_PER_ORDER,
    `${customer}: ${t.map((s) => `${service(s)}:${s.name}`).join(", ")}`,
  );
  const gateway = one(
    t,
    "gateway server span",
    (s) => service(s) === "gateway" && s.kind === SERVER,
  );
  assert.equal(gateway.parentSpanId, "");
  assert.equal(gateway.name, "POST /orders");
  const toOrders = one(
    t,
    "gateway client span",
    (s) => service(s) === "gateway" && s.kind === CLIENT,
  );
  assert.equal(toOrders.parentSpanId, gateway.spanId);
  const orders = one(
    t,
    "orders server span",
    (s) => service(s) === "orders" && s.kind === SERVER,
  );
  assert.equal(orders.parentSpanId, toOrders.spanId);
  assert.equal(orders.name, "POST /orders");
  const select = one(t, "product lookup", (s) => s.name === "SELECT products");
  const insert = one(t, "order insert", (s) => s.name === "INSERT orders");
  for (const q of [select, insert]) {
    assert.equal(q.parentSpanId, orders.spanId);
    assert.equal(q.attributes["db.system.name"], "postgresql");
  }
  assert.equal(
    select.attributes["db.query.text"],
    "SELECT price_cents FROM products WHERE sku = $1",
  );
  const publish = one(t, "publish span", (s) => s.kind === PRODUCER);
  assert.equal(publish.parentSpanId, orders.spanId);
  assert.equal(
    publish.attributes["messaging.rabbitmq.destination.routing_key"],
    "order.created",
  );
  assert.equal(
    publish.attributes["messaging.rabbitmq.settlement"],
    "confirmed",
  );
  const consume = one(t, "worker consume span", (s) => s.kind === CONSUMER);
  assert.equal(service(consume), "worker");
  assert.equal(consume.parentSpanId, publish.spanId);
  assert.equal(consume.attributes["messaging.rabbitmq.settlement"], "ack");
  const charge = one(
    t,
    "payment provider call",
    (s) =>
      service(s) === "worker" &&
      s.kind === CLIENT &&
      s.attributes["http.request.method"] === "POST",
  );
  assert.equal(charge.parentSpanId, consume.spanId);
  assert.equal(charge.attributes["peer.service"], "payments-provider");
  const update = one(t, "order update", (s) => s.name === "UPDATE orders");
  assert.equal(update.parentSpanId, consume.spanId);
  for (const s of t)
    assert.equal(
      s.attributes["customer.id"],
      customer,
      `${service(s)}:${s.name} carries ${customer}`,
    );
}

describe("the example shop", () => {
  let receiver: OtlpReceiver;
  let shop: Shop;
  before(async () => {
    receiver = await startOtlpReceiver();
    const [databaseUrl, amqpUrl] = await Promise.all([
      testDatabase(),
      testBroker(),
    ]);
    shop = await startShop({
      otlpEndpoint: receiver.url,
      databaseUrl,
      amqpUrl,
      env: { OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_BLRP_SCHEDULE_DELAY: "100" },
      // Two connections for fifty concurrent orders: queries queue in the pool.
      services: { orders: { PG_POOL_SIZE: "2" } },
    });
  });
  after(async () => {
    await shop?.stop();
    await receiver?.close();
    await stopTestServers();
  });

  it("turns c-42's order into one trace: gateway, orders, SQL, publish, worker, payment provider", async () => {
    const res = await order(shop, "c-42", "book");
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: number };
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some(
          (x) =>
            x.name === "UPDATE orders" &&
            x.attributes["customer.id"] === "c-42",
        ) &&
        s.filter((x) => x.attributes["customer.id"] === "c-42").length >=
          SPANS_PER_ORDER,
      "the whole order trace",
    );
    const root = spans.find(
      (s) =>
        service(s) === "gateway" &&
        s.kind === SERVER &&
        s.attributes["customer.id"] === "c-42",
    )!;
    checkOrderTrace(spans, root.traceId, "c-42");

    const charge = spans.find(
      (s) =>
        s.traceId === root.traceId &&
        s.attributes["peer.service"] === "payments-provider",
    )!;
    assert.equal(charge.attributes["threadline.ratelimit.limit"], 1000);
    assert.equal(
      typeof charge.attributes["threadline.ratelimit.remaining"],
      "number",
    );

    const received = (await shop.paymentsReceived()).at(-1)!;
    assert.match(
      received.headers["traceparent"] ?? "",
      new RegExp(`^00-${root.traceId}-${charge.spanId}-0[13]$`),
    );
    assert.equal(
      received.headers["baggage"],
      undefined,
      "the provider never sees baggage",
    );
    assert.equal(received.headers["idempotency-key"], `order-${id}`);

    // Every log line of the order, from all three services, carries the trace and the customer.
    const logs = await receiver.waitForLogs(
      (l) => l.filter((x) => x.traceId === root.traceId).length >= 5,
      "the order's log lines",
    );
    const lines = logs.filter((l) => l.traceId === root.traceId);
    assert.deepEqual(
      new Set(lines.map((l) => l.resource["service.name"])),
      new Set(["gateway", "orders", "worker"]),
    );
    for (const l of lines)
      assert.equal(l.attributes["customer.id"], "c-42", String(l.body));
    for (const svc of [shop.gateway, shop.orders, shop.worker]) {
      const written = svc.stdout
        .filter((line) => line.includes(root.traceId))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.ok(written.length > 0);
      for (const w of written) assert.equal(w["customer.id"], "c-42");
    }
  });

  it("keeps fifty concurrent orders from five customers in fifty separate, correct traces", async () => {
    receiver.clear();
    const customers = ["c-1", "c-2", "c-3", "c-4", "c-5"];
    const items = ["book", "pen", "lamp"];
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        order(shop, customers[i % 5]!, items[i % 3]!),
      ),
    );
    for (const r of responses) assert.equal(r.status, 201);
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => x.name === "UPDATE orders").length >= 50 &&
        s.length >= 50 * SPANS_PER_ORDER,
      "fifty complete orders",
      60_000,
    );
    const roots = spans.filter(
      (s) => service(s) === "gateway" && s.kind === SERVER,
    );
    assert.equal(roots.length, 50);
    assert.equal(
      new Set(roots.map((r) => r.traceId)).size,
      50,
      "fifty distinct traces",
    );
    for (const root of roots)
      checkOrderTrace(
        spans,
        root.traceId,
        String(root.attributes["customer.id"]),
      );
    assert.equal(spans.length, 50 * SPANS_PER_ORDER, "no stray spans");
    const waits = spans.filter((s) =>
      s.events.some((e) => e.name === "pg.pool.connection_acquired"),
    );
    assert.ok(waits.length > 0);
  });
});
