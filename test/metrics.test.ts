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
    const m = await latest("http.server.request.duration", "gateway", (x) =>
      x.points.some(
        (p) => p.attributes["http.route"] === "/orders" && (p.count ?? 0) >= 3,
      ),
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
      "url.scheme": "http",
    });
    assert.ok(created.sum! > 0 && created.sum! < 30, `${created.sum} s`);
    const notFound = m.points.find(
      (p) => p.attributes["http.response.status_code"] === 404,
    );
    assert.equal(notFound?.attributes["http.route"], "/orders/:id");
    for (const p of m.points)
      assert.equal(p.attributes["customer.id"], undefined);
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
    assert.ok(
      gc.points.every((p) => typeof p.attributes["v8js.gc.type"] === "string"),
    );
  });
});
