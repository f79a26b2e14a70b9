// Request and runtime metrics from the example shop, with no code in the
// shop: what arrives over OTLP, with the documented names, units and
// attributes, and never the customer id as a label.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  startOtlpReceiver,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  type OtlpReceiver,
  type ReceivedMetric,
  type Shop,
} from "@threadline/test-support";

const service = (m: ReceivedMetric) => m.resource["service.name"];

describe("metrics", () => {
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
      env: { OTEL_METRIC_EXPORT_INTERVAL: "300" },
    });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${shop.gateway.url}/orders`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-customer-id": "c-42",
        },
        body: JSON.stringify({ item: "book", quantity: 1 }),
      });
      assert.equal(res.status, 201);
    }
    const missing = await fetch(`${shop.gateway.url}/orders/999999`);
    await missing.text();
  });

  after(async () => {
    await shop?.stop();
    await receiver?.close();
    await stopTestServers();
  });

  /** The newest export of a metric from one service. */
  async function latest(
    name: string,
    from: string,
    ready: (m: ReceivedMetric) => boolean = () => true,
  ): Promise<ReceivedMetric> {
    return waitFor(
      () =>
        receiver.metrics.findLast(
          (m) => m.name === name && service(m) === from && ready(m),
        ),
      { what: `${name} from ${from}` },
    );
  }

  it("records HTTP server request durations per route and status, without the customer", async () => {
    // The server records a request when its response closes, which can be
    // just after the client has read it: wait for an export with all four.
    const m = await latest(
      "http.server.request.duration",
      "gateway",
      (x) =>
        x.points.some(
          (p) =>
            p.attributes["http.route"] === "/orders" && (p.count ?? 0) >= 3,
        ) &&
        x.points.some((p) => p.attributes["http.response.status_code"] === 404),
    );
    assert.equal(m.kind, "histogram");
    assert.equal(m.unit, "s");
    const created = m.points.find(
      (p) => p.attributes["http.route"] === "/orders",
    )!;
    assert.deepEqual(created.attributes, {
      "http.request.method": "POST",
      "http.route": "/orders",
      "http.response.status_code": 201,
      "network.protocol.version": "1.1",
      "url.scheme": "http",
    });
    assert.ok(created.sum! > 0 && created.sum! < 30, `${created.sum} s`);
    // Exemplars link the histogram to the requests' traces.
    assert.ok(created.exemplars.length > 0, "exemplars");
    for (const e of created.exemplars)
      assert.match(e.traceId, /^[0-9a-f]{32}$/);
    const notFound = m.points.find(
      (p) => p.attributes["http.response.status_code"] === 404,
    );
    assert.equal(notFound?.attributes["http.route"], "/orders/:id");
    for (const p of m.points)
      assert.equal(p.attributes["customer.id"], undefined);
  });

  it("records outgoing calls per server and third party, with the provider's rate-limit headroom", async () => {
    const gateway = await latest(
      "http.client.request.duration",
      "gateway",
      (m) =>
        m.points.some((p) => p.attributes["http.response.status_code"] === 404),
    );
    assert.equal(gateway.unit, "s");
    const toOrders = gateway.points.find(
      (p) => p.attributes["http.response.status_code"] === 201,
    )!;
    assert.equal(toOrders.attributes["http.request.method"], "POST");
    assert.equal(toOrders.attributes["server.address"], "127.0.0.1");
    assert.equal(toOrders.count, 3);
    assert.equal(toOrders.attributes["peer.service"], undefined);
    const worker = await latest("http.client.request.duration", "worker", (m) =>
      m.points.some((p) => (p.count ?? 0) >= 3),
    );
    assert.equal(
      worker.points[0]!.attributes["peer.service"],
      "payments-provider",
    );
    const remaining = await latest(
      "threadline.third_party.ratelimit.remaining",
      "worker",
    );
    assert.equal(remaining.kind, "gauge");
    assert.deepEqual(remaining.points[0]!.attributes, {
      "peer.service": "payments-provider",
    });
    assert.ok(remaining.points[0]!.value! < 1000);
  });

  it("records SQL per operation and table, and the queue from publish to settlement", async () => {
    const sql = await latest("db.client.operation.duration", "orders", (m) =>
      m.points.some(
        (p) =>
          p.attributes["db.operation.name"] === "INSERT" && (p.count ?? 0) >= 3,
      ),
    );
    assert.equal(sql.unit, "s");
    // The buckets each metric's semantic conventions advise.
    assert.deepEqual(
      sql.points[0]!.explicitBounds,
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    );
    const insert = sql.points.find(
      (p) =>
        p.attributes["db.operation.name"] === "INSERT" &&
        p.attributes["db.collection.name"] === "orders",
    )!;
    assert.equal(insert.count, 3);
    assert.equal(insert.attributes["db.system.name"], "postgresql");
    assert.equal(insert.attributes["error.type"], undefined);
    const select = sql.points.find(
      (p) =>
        p.attributes["db.operation.name"] === "SELECT" &&
        p.attributes["db.collection.name"] === "products",
    );
    assert.ok(select, "SELECT products");

    const sent = await latest("messaging.client.sent.messages", "orders", (m) =>
      m.points.some((p) => p.value === 3),
    );
    // Per exchange, never per routing key (which may carry an id).
    assert.deepEqual(Object.keys(sent.points[0]!.attributes).sort(), [
      "messaging.destination.name",
      "messaging.operation.name",
      "messaging.system",
    ]);
    assert.equal(
      sent.points[0]!.attributes["messaging.operation.name"],
      "publish",
    );
    const consumed = await latest(
      "messaging.client.consumed.messages",
      "worker",
      (m) => m.points.some((p) => p.value === 3),
    );
    assert.equal(
      consumed.points[0]!.attributes["messaging.rabbitmq.settlement"],
      "ack",
    );
    assert.equal(
      consumed.points[0]!.attributes["messaging.operation.name"],
      "consume",
    );
    assert.equal(
      consumed.points[0]!.attributes["messaging.rabbitmq.message.redelivered"],
      false,
    );
    const processing = await latest("messaging.process.duration", "worker");
    assert.equal(processing.points[0]!.count, 3);
    assert.deepEqual(
      processing.points[0]!.explicitBounds,
      [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5,
        10,
      ],
    );
    const latency = await latest(
      "threadline.messaging.delivery.latency",
      "worker",
    );
    assert.equal(latency.unit, "s");
    assert.equal(latency.points[0]!.count, 3);
    assert.ok(latency.points[0]!.sum! >= 0 && latency.points[0]!.sum! < 30);
  });

  it("reports event-loop delay, utilisation, GC, memory and CPU for every service", async () => {
    for (const from of ["gateway", "orders", "worker"]) {
      const delay = await latest("nodejs.eventloop.delay", from);
      assert.equal(delay.unit, "s");
      assert.deepEqual(
        delay.points
          .map((p) => p.attributes["nodejs.eventloop.delay.percentile"])
          .sort(),
        ["max", "p50", "p90", "p99"],
      );
      for (const p of delay.points)
        assert.ok(p.value! > 0 && p.value! < 5, `${from}: ${p.value} s`);
      const elu = await latest("nodejs.eventloop.utilization", from);
      assert.ok(elu.points[0]!.value! >= 0 && elu.points[0]!.value! <= 1);
      const rss = await latest("process.memory.usage", from);
      assert.equal(rss.unit, "By");
      assert.ok(rss.points[0]!.value! > 10 * 2 ** 20);
      const heap = await latest("v8js.memory.heap.used", from);
      assert.ok(heap.points[0]!.value! > 2 ** 20);
      const cpu = await latest("process.cpu.time", from);
      assert.ok(cpu.monotonic);
      assert.deepEqual(cpu.points.map((p) => p.attributes["cpu.mode"]).sort(), [
        "system",
        "user",
      ]);
      const resources = await latest(
        "threadline.nodejs.active_resources",
        from,
      );
      assert.ok(
        resources.points.some(
          (p) => p.attributes["nodejs.resource.type"] === "TCPServerWrap",
        ) || from === "worker",
      );
    }
    const gc = await latest("v8js.gc.duration", "orders");
    assert.equal(gc.kind, "histogram");
    assert.ok(gc.points.length > 0);
    assert.deepEqual(gc.points[0]!.explicitBounds, [0.01, 0.1, 1, 10]);
    assert.ok(
      gc.points.every((p) => typeof p.attributes["v8js.gc.type"] === "string"),
    );
  });
});
