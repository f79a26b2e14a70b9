// amqplib instrumentation against a real RabbitMQ broker, inside one process.
// amqplib is loaded after Threadline starts, as a service started with
// `--import @threadline/node/register` loads it (amqplib-late.test.ts covers
// an amqplib loaded first).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type amqp from "amqplib";
import type amqpCallback from "amqplib/callback_api.js";
import { context, propagation, trace } from "@opentelemetry/api";
import {
  freePort,
  startOtlpReceiver,
  startService,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
  type ReceivedLog,
  type ReceivedSpan,
} from "@threadline/test-support";
import {
  getCustomerId,
  init,
  withCustomer,
  withMessageContext,
  type InitOptions,
  type ThreadlineHandle,
} from "@threadline/node";
import { health, suppressTracing } from "@threadline/core";
import {
  amqplibPath,
  loadAmqplib,
  loadCallbackApi,
  loadDefs,
} from "./fixtures/amqplib-under-test.ts";

const PRODUCER = 4;
const CONSUMER = 5;
let receiver: OtlpReceiver;
let threadline: ThreadlineHandle;
let brokerUrl: string;
let connection: amqp.ChannelModel;
let amqpCallbackApi: typeof amqpCallback;

function start(options: InitOptions = {}): void {
  threadline = init({
    serviceName: "amqp-test",
    endpoint: receiver.url,
    exportLogs: false,
    // The receiver runs in this process: its OTLP and watch-list paths are not traced.
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
    ...options,
  });
}

const queueName = () => `q-${randomBytes(4).toString("hex")}`;

before(async () => {
  process.env["OTEL_BSP_SCHEDULE_DELAY"] = "20";
  receiver = await startOtlpReceiver();
  brokerUrl = await testBroker();
  start();
  const amqpApi = loadAmqplib();
  amqpCallbackApi = loadCallbackApi();
  connection = await amqpApi.connect(brokerUrl);
});

after(async () => {
  await connection.close();
  await threadline.shutdown();
  await receiver.close();
  await stopTestServers();
});

beforeEach(async () => {
  await threadline.forceFlush();
  receiver.clear();
});

const consumers = (spans: ReceivedSpan[]) =>
  spans.filter((s) => s.kind === CONSUMER);
const producers = (spans: ReceivedSpan[]) =>
  spans.filter((s) => s.kind === PRODUCER);
/** The CONSUMER spans of deliveries from queue `q`. */
const consumersOf = (spans: ReceivedSpan[], q: string) =>
  consumers(spans).filter(
    (c) => c.attributes["messaging.destination.subscription.name"] === q,
  );
/** A queue of its own on a new channel, each delivery acknowledged and counted. */
async function ackingQueue(
  ack = (ch: amqp.Channel, msg: amqp.ConsumeMessage) => ch.ack(msg),
) {
  const ch = await connection.createChannel();
  const q = queueName();
  await ch.assertQueue(q, { autoDelete: true });
  let got = 0;
  await ch.consume(q, (msg) => {
    if (msg === null) return;
    got++;
    ack(ch, msg);
  });
  return { ch, q, delivered: () => got };
}
/** Waits for the CONSUMER span of a delivery from queue `q`. */
async function consumerOf(q: string): Promise<ReceivedSpan> {
  const spans = await receiver.waitForSpans(
    (s) => consumersOf(s, q).length > 0,
    "the consumer span",
  );
  return consumersOf(spans, q)[0]!;
}
/** The points of metric `name` for deliveries from queue `q`, once flushed. */
async function deliveryPoints(name: string, q: string) {
  await threadline.forceFlush();
  return (
    receiver.metrics.findLast((m) => m.name === name)?.points ?? []
  ).filter(
    (p) => p.attributes["messaging.destination.subscription.name"] === q,
  );
}

/** Metric `name` has one point for queue `q`, linked to its delivery's consumer span. */
async function assertLinkedToConsumer(name: string, q: string) {
  const consumer = await consumerOf(q);
  const [point] = await deliveryPoints(name, q);
  assert.equal(point?.count, 1);
  assert.deepEqual(
    point.exemplars.map((e) => [e.traceId, e.spanId]),
    [[consumer.traceId, consumer.spanId]],
  );
}

describe("promise API", () => {
  it("continues the producer's trace in the consumer, with the customer id and baggage", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const seen: Array<{
      customer: string | undefined;
      traceId: string | undefined;
      app: unknown;
    }> = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      seen.push({
        customer: getCustomerId(),
        traceId: trace.getActiveSpan()?.spanContext().traceId,
        // the application's own headers travel beside the trace context
        app: msg.properties.headers?.["app"],
      });
      ch.ack(msg);
    });
    let traceId = "";
    withCustomer("c-42", () =>
      trace.getTracer("t").startActiveSpan("request", (root) => {
        traceId = root.spanContext().traceId;
        ch.sendToQueue(q, Buffer.from("hello"), {
          messageId: "m-1",
          headers: { app: "x" },
        });
        root.end();
      }),
    );
    await waitFor(() => seen.length === 1, { what: "the delivery" });
    assert.deepEqual(seen[0], { customer: "c-42", traceId, app: "x" });
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1 && producers(s).length >= 1,
      "producer and consumer spans",
    );
    const producer = producers(spans)[0]!;
    const consumer = consumers(spans)[0]!;
    assert.equal(producer.name, "publish amq.default");
    assert.equal(producer.attributes["messaging.system"], "rabbitmq");
    assert.equal(producer.attributes["messaging.operation.type"], "send");
    assert.equal(
      producer.attributes["messaging.rabbitmq.destination.routing_key"],
      q,
    );
    assert.equal(producer.attributes["messaging.message.id"], "m-1");
    assert.equal(producer.attributes["messaging.message.body.size"], 5);
    assert.equal(consumer.name, `process ${q}`);
    assert.equal(consumer.traceId, traceId);
    assert.equal(consumer.parentSpanId, producer.spanId);
    assert.equal(consumer.attributes["customer.id"], "c-42");
    assert.equal(consumer.attributes["messaging.operation.type"], "process");
    assert.equal(consumer.attributes["messaging.rabbitmq.settlement"], "ack");
    assert.equal(
      consumer.attributes["messaging.rabbitmq.message.redelivered"],
      false,
    );
    await ch.close();
  });

  it("writes the trace headers into the encoded message, leaving the application's headers object alone", async () => {
    // The encoder connection.js uses is the wrapped one: this suite runs the
    // path a service started with --import gets.
    const defs = loadDefs();
    assert.equal(defs.encodeProperties.name, "threadlineEncodeProperties");
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const received: Array<Record<string, unknown>> = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      received.push({
        contentType: msg.properties.contentType,
        ...msg.properties.headers,
      });
      ch.ack(msg);
    });
    const headers = { app: "x", count: 7, nested: { deep: true } };
    let traceId = "";
    withCustomer("c-7", () =>
      trace.getTracer("t").startActiveSpan("request", (root) => {
        traceId = root.spanContext().traceId;
        ch.sendToQueue(q, Buffer.from("{}"), {
          contentType: "application/json",
          headers,
        });
        // A stale trace context the application carried over is replaced.
        ch.sendToQueue(q, Buffer.from("{}"), {
          headers: {
            traceparent:
              "00-11111111111111111111111111111111-2222222222222222-01",
          },
        });
        root.end();
      }),
    );
    await waitFor(() => received.length === 2, { what: "both deliveries" });
    assert.deepEqual(Object.keys(headers), ["app", "count", "nested"]);
    const [first, second] = received as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    assert.equal(first["contentType"], "application/json");
    assert.equal(first["app"], "x");
    assert.equal(first["count"], 7);
    assert.deepEqual(first["nested"], { deep: true });
    assert.match(String(first["baggage"]), /customer\.id=c-7/);
    assert.ok(
      Math.abs(Number(first["threadline-sent-at"]) - Date.now()) < 60_000,
    );
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 2 && producers(s).length >= 2,
      "producer and consumer spans",
    );
    for (const [i, h] of [first, second].entries()) {
      const producer = producers(spans)[i]!;
      assert.match(
        String(h["traceparent"]),
        new RegExp(`^00-${traceId}-${producer.spanId}-0[13]$`),
        `message ${i + 1}'s traceparent`,
      );
      const consumer = consumers(spans).find(
        (c) => c.parentSpanId === producer.spanId,
      );
      assert.ok(consumer, `message ${i + 1}'s consumer span`);
      assert.equal(consumer.attributes["customer.id"], "c-7");
    }
    await ch.close();
  });

  it("records nack with requeue, the redelivery, and a final reject as an error", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    let deliveries = 0;
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      deliveries++;
      if (deliveries === 1) ch.nack(msg, false, true);
      else ch.reject(msg, false);
    });
    ch.sendToQueue(q, Buffer.from("retry me"));
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 2,
      "two deliveries",
    );
    const [first, second] = consumers(spans).sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    assert.equal(first!.attributes["messaging.rabbitmq.settlement"], "nack");
    assert.equal(first!.attributes["messaging.rabbitmq.requeue"], true);
    assert.equal(first!.status.code, 0);
    assert.equal(first!.attributes["error.type"], undefined);
    assert.equal(
      second!.attributes["messaging.rabbitmq.message.redelivered"],
      true,
    );
    assert.equal(second!.attributes["messaging.rabbitmq.settlement"], "reject");
    assert.equal(second!.attributes["messaging.rabbitmq.requeue"], false);
    assert.equal(second!.status.code, 2);
    assert.equal(second!.attributes["error.type"], "reject");
    await ch.close();
  });

  it("reads a falsy requeue (null, 0) as the broker does: dropped, an error", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const seen = new Map<string, number>();
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      const body = msg.content.toString();
      seen.set(body, (seen.get(body) ?? 0) + 1);
      // amqplib's types say boolean; applications pass what they computed.
      if (body === "nack-null") ch.nack(msg, false, null as never);
      else ch.reject(msg, 0 as never);
    });
    ch.sendToQueue(q, Buffer.from("nack-null"));
    ch.sendToQueue(q, Buffer.from("reject-0"));
    const spans = await receiver.waitForSpans(
      (s) => consumersOf(s, q).length >= 2,
      "two settled deliveries",
    );
    assert.deepEqual(
      consumersOf(spans, q)
        .map((c) => [
          c.attributes["messaging.rabbitmq.settlement"],
          c.attributes["messaging.rabbitmq.requeue"],
          c.status.code,
          c.attributes["error.type"],
        ])
        .sort(),
      [
        ["nack", false, 2, "nack"],
        ["reject", false, 2, "reject"],
      ],
    );
    // The broker dropped both: neither came back.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(Object.fromEntries(seen), {
      "nack-null": 1,
      "reject-0": 1,
    });
    await ch.close();
  });

  it("settles every span covered by ack(message, allUpTo)", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const held: amqp.ConsumeMessage[] = [];
    await ch.consume(q, (msg) => {
      if (msg !== null) held.push(msg);
    });
    for (let i = 0; i < 3; i++) ch.sendToQueue(q, Buffer.from(String(i)));
    await waitFor(() => held.length === 3, { what: "three deliveries" });
    ch.ack(held[2]!, true);
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 3,
      "three settled consumer spans",
    );
    for (const s of consumers(spans))
      assert.equal(s.attributes["messaging.rabbitmq.settlement"], "ack");
    await ch.close();
  });

  it("settles a fetched message acknowledged with allUpTo on a channel that also consumes", async () => {
    const ch = await connection.createChannel();
    const consumed = queueName();
    const fetched = queueName();
    for (const q of [consumed, fetched])
      await ch.assertQueue(q, { autoDelete: true });
    const rounds = 5;
    for (let i = 0; i <= rounds; i++) {
      ch.sendToQueue(consumed, Buffer.from(`consumed ${i}`));
      if (i < rounds) ch.sendToQueue(fetched, Buffer.from(`fetched ${i}`));
    }
    await waitFor(
      async () => (await ch.checkQueue(fetched)).messageCount === rounds,
      { what: "the messages to fetch" },
    );
    // One delivery at a time: each acknowledgement lets the next one come.
    await ch.prefetch(1);
    const held: amqp.ConsumeMessage[] = [];
    await ch.consume(consumed, (msg) => {
      if (msg !== null) held.push(msg);
    });
    await waitFor(() => held.length === 1, { what: "the first delivery" });
    const unsettled: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const fetching = ch.get(fetched);
      // The broker answers the get, then delivers the next message, under
      // the next delivery tag. A busy event loop reads both at once, and
      // amqplib hands the fetched message over a microtask after that
      // delivery.
      ch.ack(held[i]!);
      // amqplib writes its frames to the socket once this tick is over.
      await new Promise((resolve) => setImmediate(resolve));
      const until = performance.now() + 30;
      while (performance.now() < until);
      const msg = await fetching;
      assert.ok(msg, "a message to get");
      await waitFor(() => held.length === i + 2, { what: "the next delivery" });
      // Everything delivered on the channel up to the fetched message.
      ch.ack(msg, true);
      await threadline.forceFlush();
      const receive = consumersOf(receiver.spans, fetched).find(
        (s) =>
          s.attributes["messaging.rabbitmq.message.delivery_tag"] ===
          msg.fields.deliveryTag,
      );
      if (receive?.attributes["messaging.rabbitmq.settlement"] !== "ack")
        unsettled.push(msg.fields.deliveryTag);
    }
    assert.deepEqual(unsettled, [], "fetched messages left open once acked");
    await ch.close();
  });

  it("settles the deliveries recover() hands back to the broker as recovered, requeued", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const held: amqp.ConsumeMessage[] = [];
    // The first delivery of each message is left unacknowledged; the
    // broker's redelivery, under a new delivery tag, is acknowledged.
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      held.push(msg);
      if (msg.fields.redelivered) ch.ack(msg);
    });
    for (const id of ["m-1", "m-2", "m-3"])
      ch.sendToQueue(q, Buffer.from(id), { messageId: id });
    await waitFor(() => held.length === 3, { what: "three deliveries" });
    await ch.recover();
    await waitFor(() => held.length === 6, { what: "three redeliveries" });
    // Settled while the channel is open: all six spans have ended.
    const spans = await receiver.waitForSpans(
      (s) => consumersOf(s, q).length >= 6,
      "the spans of the recovered deliveries and of their redeliveries",
    );
    assert.deepEqual(
      consumersOf(spans, q)
        .map((c) => [
          c.attributes["messaging.message.id"],
          c.attributes["messaging.rabbitmq.message.redelivered"],
          c.attributes["messaging.rabbitmq.settlement"],
          c.attributes["messaging.rabbitmq.requeue"],
          c.status.code,
          c.attributes["error.type"],
        ])
        .sort(),
      ["m-1", "m-2", "m-3"].flatMap((id) => [
        [id, false, "recovered", true, 0, undefined],
        [id, true, "ack", undefined, 0, undefined],
      ]),
    );
    await ch.close();
    await new Promise((r) => setTimeout(r, 100));
    const consumed = (
      await deliveryPoints("messaging.client.consumed.messages", q)
    )
      .map((p) => [
        p.attributes["messaging.rabbitmq.settlement"],
        p.attributes["messaging.rabbitmq.message.redelivered"],
        p.value,
      ])
      .sort();
    assert.deepEqual(consumed, [
      ["ack", true, 3],
      ["recovered", false, 3],
    ]);
  });

  it("ends an acknowledged delivery whose handler's promise never settles when its channel closes", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    let acked = 0;
    await ch.consume(q, async (msg) => {
      if (msg === null) return;
      ch.ack(msg);
      acked++;
      await new Promise(() => {});
    });
    ch.sendToQueue(q, Buffer.from("stuck"));
    await waitFor(() => acked === 1, { what: "the acknowledged delivery" });
    await ch.close();
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1,
      "the delivery's span, ended by the channel's close",
    );
    const delivery = consumers(spans)[0]!;
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "ack");
    assert.equal(delivery.status.code, 0);
  });

  it("ends a noAck delivery whose handler's promise never settles when its channel closes", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const delivered: string[] = [];
    await ch.consume(
      q,
      async (msg) => {
        if (msg === null) return;
        const body = msg.content.toString();
        delivered.push(body);
        await (body === "finishes" ? released : new Promise(() => {}));
      },
      { noAck: true },
    );
    ch.sendToQueue(q, Buffer.from("finishes"), { messageId: "finishes" });
    ch.sendToQueue(q, Buffer.from("stuck"), { messageId: "stuck" });
    await waitFor(() => delivered.length === 2, { what: "both deliveries" });
    release();
    const finished = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1,
      "the span of the delivery whose handler finished",
    );
    assert.deepEqual(
      consumers(finished).map((s) => s.attributes["messaging.message.id"]),
      ["finishes"],
    );
    await ch.close();
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 2,
      "the stuck delivery's span, ended by the channel's close",
    );
    const stuck = consumers(spans).find(
      (s) => s.attributes["messaging.message.id"] === "stuck",
    );
    assert.equal(stuck?.attributes["messaging.rabbitmq.settlement"], "auto");
    assert.equal(stuck?.status.code, 0);
  });

  it("ends a confirm channel's publish span when the broker confirms", async () => {
    const ch = await connection.createConfirmChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    await new Promise<void>((resolve, reject) =>
      ch.sendToQueue(q, Buffer.from("x"), {}, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    const spans = await receiver.waitForSpans(
      (s) => producers(s).length >= 1,
      "the publish span",
    );
    assert.equal(
      producers(spans)[0]!.attributes["messaging.rabbitmq.settlement"],
      "confirmed",
    );
    await ch.close();
  });

  it("names the broker the application connected to on publish, process and receive spans", async () => {
    // By the host name in the URL, not the address it resolved to.
    const url = new URL(brokerUrl);
    const port = Number(url.port);
    url.hostname = "localhost";
    const conn = await loadAmqplib().connect(url.href);
    try {
      const ch = await conn.createChannel();
      const consumed = queueName();
      const fetched = queueName();
      for (const q of [consumed, fetched])
        await ch.assertQueue(q, { autoDelete: true });
      await ch.consume(consumed, (msg) => {
        if (msg !== null) ch.ack(msg);
      });
      ch.sendToQueue(consumed, Buffer.from("consumed"));
      ch.sendToQueue(fetched, Buffer.from("fetched"));
      const msg = await waitFor(async () => ch.get(fetched), {
        what: "a message to get",
      });
      ch.ack(msg);
      const ours = (spans: ReceivedSpan[]) =>
        spans.filter((s) =>
          [consumed, fetched].includes(
            String(s.attributes["messaging.rabbitmq.destination.routing_key"]),
          ),
        );
      const spans = await receiver.waitForSpans(
        (s) => ours(s).length >= 4,
        "the publish, process and receive spans",
      );
      assert.deepEqual(
        ours(spans)
          .map((s) => [
            s.name,
            s.attributes["server.address"],
            s.attributes["server.port"],
          ])
          .sort(),
        [
          [`process ${consumed}`, "localhost", port],
          ["publish amq.default", "localhost", port],
          ["publish amq.default", "localhost", port],
          [`receive ${fetched}`, "localhost", port],
        ],
      );
      await ch.close();
    } finally {
      await conn.close();
    }
  });

  it("traces get() in the producer's trace and offers the message's context", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    withCustomer("c-7", () => ch.sendToQueue(q, Buffer.from("pull me")));
    const msg = await waitFor(async () => ch.get(q), {
      what: "a message to get",
    });
    assert.equal(
      getCustomerId(),
      undefined,
      "the caller's own context is untouched",
    );
    assert.equal(
      withMessageContext(msg, () => getCustomerId()),
      "c-7",
    );
    ch.ack(msg);
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1 && producers(s).length >= 1,
      "receive span",
    );
    const receive = consumers(spans)[0]!;
    assert.equal(receive.name, `receive ${q}`);
    assert.equal(receive.parentSpanId, producers(spans)[0]!.spanId);
    assert.equal(receive.attributes["customer.id"], "c-7");
    assert.equal(receive.attributes["messaging.operation.type"], "receive");
    await ch.close();
  });

  it("never passes on trace headers or baggage the application copied into a message", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const seen = new Promise<{ customer: string | undefined; traceId: string }>(
      (resolve) => {
        void ch.consume(q, (msg) => {
          if (msg === null) return;
          resolve({
            customer: getCustomerId(),
            traceId: trace.getActiveSpan()?.spanContext().traceId ?? "",
          });
          ch.ack(msg);
        });
      },
    );
    // A job with no customer forwards headers an untrusted caller sent.
    let traceId = "";
    trace.getTracer("t").startActiveSpan("job", (root) => {
      traceId = root.spanContext().traceId;
      ch.sendToQueue(q, Buffer.from("{}"), {
        headers: {
          baggage: "customer.id=victim-42",
          traceparent:
            "00-11111111111111111111111111111111-2222222222222222-01",
        },
      });
      root.end();
    });
    const got = await seen;
    assert.equal(got.customer, undefined);
    assert.equal(got.traceId, traceId);
    await ch.close();
  });

  it("never passes on trace headers or baggage the application copied into a message published with tracing suppressed", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const seen = new Promise<{
      customer: string | undefined;
      headers: Record<string, unknown>;
    }>((resolve) => {
      void ch.consume(q, (msg) => {
        if (msg === null) return;
        resolve({
          customer: getCustomerId(),
          headers: { ...msg.properties.headers },
        });
        ch.ack(msg);
      });
    });
    context.with(suppressTracing(context.active()), () =>
      ch.sendToQueue(q, Buffer.from("{}"), {
        headers: {
          app: "x",
          Baggage: "customer.id=victim-42",
          traceparent:
            "00-11111111111111111111111111111111-2222222222222222-01",
        },
      }),
    );
    assert.deepEqual(await seen, {
      customer: undefined,
      headers: { app: "x" },
    });
    await ch.close();
  });

  it("never lets malformed trace headers break a consumer", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const got: string[] = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      got.push(msg.content.toString());
      ch.ack(msg);
    });
    const hostile: Array<Record<string, unknown>> = [
      {
        traceparent: "00-zzzz-yyyy-01",
        tracestate: "!!!",
        baggage: "customer.id=evil;;;,=,%%%",
      },
      { traceparent: 42, baggage: { nested: true } },
      {
        traceparent: { bytes: "fffe00" },
        baggage: "x".repeat(20_000),
      },
      {
        traceparent: `00-${"0".repeat(32)}-${"0".repeat(16)}-01`,
        baggage: `customer.id=${"a".repeat(5000)}`,
      },
    ];
    await publishRaw(
      q,
      hostile.map((headers, i) => ({ content: `m${i}`, headers })),
    );
    await waitFor(() => got.length === hostile.length, {
      what: "every hostile message delivered",
    });
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= hostile.length,
      "consumer spans",
    );
    for (const s of consumers(spans)) {
      assert.equal(s.parentSpanId, "", "a new trace, not a forged parent");
      assert.notEqual(s.attributes["customer.id"], "evil");
    }
    await ch.close();
  });

  it("keeps a baggage value whose percent-encoded bytes are not UTF-8, with U+FFFD in their place", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const got: Array<Record<string, string>> = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      const entries = propagation.getActiveBaggage()?.getAllEntries() ?? [];
      got.push(Object.fromEntries(entries.map(([k, e]) => [k, e.value])));
      ch.ack(msg);
    });
    await publishRaw(q, [
      { content: "m", headers: { baggage: "name=Jos%E9,ok=1" } },
    ]);
    await waitFor(() => got.length === 1, { what: "the delivery" });
    assert.deepEqual(got[0], { name: "Jos\ufffd", ok: "1" });
    await ch.close();
  });
});

/**
 * Publishes `messages` to `queue` from a program without Threadline, so
 * their headers reach the broker exactly as written (a header
 * `{ bytes: "<hex>" }` as those bytes).
 */
async function publishRaw(
  queue: string,
  messages: Array<{ content: string; headers: Record<string, unknown> }>,
): Promise<void> {
  const publisher = await startService({
    entry: "publish-raw.cjs",
    cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
    ready: false,
    env: {
      AMQP_URL: brokerUrl,
      AMQPLIB_PATH: amqplibPath,
      QUEUE: queue,
      MESSAGES: JSON.stringify(messages),
    },
  });
  const { code } = await publisher.exited;
  assert.equal(code, 0, publisher.stderr.join("\n"));
}

describe("callback API", () => {
  it("traces publish and consume the same way", async () => {
    const conn = await new Promise<amqpCallback.Connection>((resolve, reject) =>
      amqpCallbackApi.connect(
        brokerUrl,
        (err: unknown, c: amqpCallback.Connection) =>
          err ? reject(err) : resolve(c),
      ),
    );
    const ch = await new Promise<amqpCallback.Channel>((resolve, reject) =>
      conn.createChannel((err: unknown, c: amqpCallback.Channel) =>
        err ? reject(err) : resolve(c),
      ),
    );
    const q = queueName();
    await new Promise<void>((resolve, reject) =>
      ch.assertQueue(q, { autoDelete: true }, (err: unknown) =>
        err ? reject(err) : resolve(),
      ),
    );
    const customers: Array<string | undefined> = [];
    ch.consume(q, (msg: amqpCallback.Message | null) => {
      if (msg === null) return;
      customers.push(getCustomerId());
      ch.ack(msg);
    });
    withCustomer("c-9", () => ch.sendToQueue(q, Buffer.from("cb")));
    await waitFor(() => customers.length === 1, { what: "the delivery" });
    assert.equal(customers[0], "c-9");
    const spans = await receiver.waitForSpans(
      (s) =>
        consumers(s).some(
          (c) => c.attributes["messaging.rabbitmq.settlement"] === "ack",
        ),
      "consumer span",
    );
    assert.equal(
      consumers(spans)[0]!.parentSpanId,
      producers(spans)[0]!.spanId,
    );
    await new Promise<void>((resolve) => conn.close(() => resolve()));
  });

  it("settles the deliveries recover() hands back to the broker as recovered", async () => {
    const conn = await new Promise<amqpCallback.Connection>((resolve, reject) =>
      amqpCallbackApi.connect(
        brokerUrl,
        (err: unknown, c: amqpCallback.Connection) =>
          err ? reject(err) : resolve(c),
      ),
    );
    try {
      const ch = await new Promise<amqpCallback.Channel>((resolve, reject) =>
        conn.createChannel((err: unknown, c: amqpCallback.Channel) =>
          err ? reject(err) : resolve(c),
        ),
      );
      const q = queueName();
      await new Promise<void>((resolve, reject) =>
        ch.assertQueue(q, { autoDelete: true }, (err: unknown) =>
          err ? reject(err) : resolve(),
        ),
      );
      let delivered = 0;
      ch.consume(q, (msg: amqpCallback.Message | null) => {
        if (msg === null) return;
        delivered++;
        if (msg.fields.redelivered) ch.ack(msg);
      });
      ch.sendToQueue(q, Buffer.from("cb"));
      await waitFor(() => delivered === 1, { what: "the delivery" });
      await new Promise<void>((resolve, reject) =>
        ch.recover((err: unknown) => (err ? reject(err) : resolve())),
      );
      const spans = await receiver.waitForSpans(
        (s) => consumersOf(s, q).length >= 2,
        "the spans of the recovered delivery and of its redelivery",
      );
      assert.deepEqual(
        consumersOf(spans, q)
          .map((c) => [
            c.attributes["messaging.rabbitmq.settlement"],
            c.attributes["messaging.rabbitmq.requeue"],
            c.status.code,
          ])
          .sort(),
        [
          ["ack", undefined, 0],
          ["recovered", true, 0],
        ],
      );
    } finally {
      await new Promise<void>((resolve) => conn.close(() => resolve()));
    }
  });

  it("runs a channel operation's callback in its request, and what the broker does by itself in none", async () => {
    const q = queueName();
    const service = "amqp-callback-service";
    const app = await startService({
      entry: "callback-service.cjs",
      cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
      execArgv: ["-r", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: service,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        AMQP_URL: brokerUrl,
        AMQPLIB_PATH: amqplibPath,
        QUEUE: q,
      },
    });
    try {
      const ours = <T extends { resource: Record<string, unknown> }>(
        all: T[],
      ) => all.filter((x) => x.resource["service.name"] === service);
      const res = await withCustomer("c-cb", () => fetch(`${app.url}/publish`));
      assert.equal(await res.text(), "published");
      const spans = await receiver.waitForSpans(
        (s) => consumersOf(ours(s), q).length >= 2,
        "both deliveries",
      );
      const server = ours(spans).find((s) => s.kind === 2)!;
      const published = producers(ours(spans));
      assert.equal(published.length, 2);
      for (const p of published) {
        assert.equal(p.traceId, server.traceId);
        assert.equal(p.parentSpanId, server.spanId);
        assert.equal(p.attributes["customer.id"], "c-cb");
      }
      for (const c of consumersOf(ours(spans), q)) {
        assert.equal(c.traceId, server.traceId);
        assert.ok(published.some((p) => p.spanId === c.parentSpanId));
        assert.equal(c.attributes["customer.id"], "c-cb");
      }
      const line = (all: ReceivedLog[], body: string) =>
        ours(all).find((l) => l.body === body);
      const inRequest = await receiver.waitForLogs(
        (all) =>
          line(all, "published after assertQueue") !== undefined &&
          line(all, "published after createChannel") !== undefined,
        "the lines logged in the callbacks",
      );
      for (const body of [
        "published after assertQueue",
        "published after createChannel",
      ]) {
        const l = line(inRequest, body)!;
        assert.equal(l.traceId, server.traceId, body);
        assert.equal(l.attributes["customer.id"], "c-cb", body);
      }
      // The broker cancels the consumer the request started, on the
      // channel it created, and then closes that channel.
      const admin = await connection.createChannel();
      await admin.deleteQueue(`${q}-watched`);
      await admin.close();
      const byBroker = await receiver.waitForLogs(
        (all) =>
          line(all, "consumer cancelled") !== undefined &&
          line(all, "channel closed") !== undefined,
        "the lines logged on the broker's cancel and close",
      );
      for (const body of ["consumer cancelled", "channel closed"]) {
        const l = line(byBroker, body)!;
        assert.equal(l.traceId, "", body);
        assert.equal(l.attributes["customer.id"], undefined, body);
      }
    } finally {
      await app.stop();
    }
  });
});

describe("what arrives from the connection's socket", () => {
  it("answers a confirm and an empty get() in the caller's context", async () => {
    // The connection is opened on behalf of c-open: its socket's callbacks
    // would run as that customer's.
    const conn = await withCustomer(
      "c-open",
      () =>
        new Promise<amqpCallback.Connection>((resolve, reject) =>
          amqpCallbackApi.connect(
            brokerUrl,
            (err: unknown, c: amqpCallback.Connection) =>
              err ? reject(err) : resolve(c),
          ),
        ),
    );
    const ch = await new Promise<amqpCallback.ConfirmChannel>(
      (resolve, reject) =>
        conn.createConfirmChannel(
          (err: unknown, c: amqpCallback.ConfirmChannel) =>
            err ? reject(err) : resolve(c),
        ),
    );
    const q = queueName();
    await new Promise<void>((resolve, reject) =>
      ch.assertQueue(q, { autoDelete: true }, (err: unknown) =>
        err ? reject(err) : resolve(),
      ),
    );
    const seen: Array<[string, string | undefined]> = [];
    await withCustomer(
      "c-publisher",
      () =>
        new Promise<void>((resolve) =>
          ch.sendToQueue(q, Buffer.from("x"), {}, () => {
            seen.push(["confirm", getCustomerId()]);
            resolve();
          }),
        ),
    );
    await withCustomer("c-getter", async () => {
      // Drain the one message, then ask an empty queue.
      for (let i = 0; i < 2; i++)
        await new Promise<void>((resolve) =>
          ch.get(q, { noAck: true }, () => {
            seen.push([`get ${i}`, getCustomerId()]);
            resolve();
          }),
        );
    });
    assert.deepEqual(seen, [
      ["confirm", "c-publisher"],
      // A message's callback runs in the message's context (its producer's customer).
      ["get 0", "c-publisher"],
      ["get 1", "c-getter"],
    ]);
    await new Promise<void>((resolve) => conn.close(() => resolve()));
  });

  it("answers the confirm of a publish made with tracing suppressed in its publisher's context", async () => {
    const ch = await connection.createConfirmChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const customer = await withCustomer("c-quiet", () =>
      context.with(
        suppressTracing(context.active()),
        () =>
          new Promise<string | undefined>((resolve) =>
            ch.sendToQueue(q, Buffer.from("x"), {}, () =>
              resolve(getCustomerId()),
            ),
          ),
      ),
    );
    assert.equal(customer, "c-quiet");
    await ch.close();
  });

  it("runs what the broker does by itself as no request's, on a connection a request opened", async () => {
    const amqpApi = loadAmqplib();
    const seen: Array<[string, string | undefined, string | undefined]> = [];
    const who = (what: string) =>
      seen.push([
        what,
        getCustomerId(),
        trace.getActiveSpan()?.spanContext().traceId,
      ]);
    const q = queueName();
    let cancelled!: () => void;
    const consumerCancelled = new Promise<void>((r) => (cancelled = r));
    let failed!: () => void;
    const channelFailed = new Promise<void>((r) => (failed = r));
    // Opened lazily, as a service does, inside c-first's request.
    const { conn, ch } = await withCustomer("c-first", () =>
      trace.getTracer("t").startActiveSpan("request", async (root) => {
        const conn = await amqpApi.connect(brokerUrl);
        const ch = await conn.createChannel();
        ch.on("error", () => {
          who("channel error");
          failed();
        });
        await ch.assertQueue(q);
        await ch.consume(q, (msg) => {
          if (msg !== null) return;
          who("consumer cancelled");
          cancelled();
        });
        root.end();
        return { conn, ch };
      }),
    );
    const admin = await connection.createChannel();
    await admin.deleteQueue(q);
    await consumerCancelled;
    await admin.close();
    ch.publish(`no-such-exchange-${q}`, "k", Buffer.from("x"));
    await channelFailed;
    await conn.close();
    assert.deepEqual(seen, [
      ["consumer cancelled", undefined, undefined],
      ["channel error", undefined, undefined],
    ]);
  });

  it("answers each confirm as its own publisher, and settles each publish span by its own confirm", async () => {
    // amqplib 1.x and later queue a confirm callback after sending its
    // message, 0.10 before: neither may hand one publish's callback and
    // span to the next.
    const ch = await connection.createConfirmChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const customers = ["c-A", "c-B", "c-C"];
    const traceIds: string[] = [];
    const seen: Array<[string, string | undefined, string | undefined]> = [];
    for (const customer of customers)
      withCustomer(customer, () =>
        trace.getTracer("t").startActiveSpan("request", (root) => {
          traceIds.push(root.spanContext().traceId);
          ch.sendToQueue(
            q,
            Buffer.from(customer),
            { messageId: customer },
            () =>
              seen.push([
                customer,
                getCustomerId(),
                trace.getActiveSpan()?.spanContext().traceId,
              ]),
          );
          root.end();
        }),
      );
    await ch.waitForConfirms();
    assert.deepEqual(
      seen,
      customers.map((c, i) => [c, c, traceIds[i]]),
    );
    const spans = await receiver.waitForSpans(
      (s) => producers(s).length >= 3,
      "the publish spans",
    );
    assert.deepEqual(
      producers(spans)
        .map((p) => [
          p.attributes["messaging.message.id"],
          p.attributes["customer.id"],
          p.traceId,
          p.attributes["messaging.rabbitmq.settlement"],
        ])
        .sort(),
      customers.map((c, i) => [c, c, traceIds[i], "confirmed"]),
    );
    await ch.close();
  });

  it("ends a delivery's span at once for any truthy noAck, as amqplib reads it", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    let delivered = 0;
    await ch.consume(q, () => void delivered++, {
      noAck: 1 as unknown as boolean,
    });
    ch.sendToQueue(q, Buffer.from("auto"));
    await waitFor(() => delivered === 1, { what: "the delivery" });
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1,
      "the delivery's span, before its channel closes",
    );
    assert.equal(
      consumers(spans)[0]!.attributes["messaging.rabbitmq.settlement"],
      "auto",
    );
    await ch.close();
  });

  it("sends a message whose properties fill the frame without trace headers, not a frame the broker refuses", async () => {
    const amqpApi = loadAmqplib();
    const small = await amqpApi.connect(`${brokerUrl}?frameMax=8192`);
    let closed = false;
    small.on("close", () => (closed = true));
    small.on("error", () => {});
    const ch = await small.createConfirmChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    await new Promise<void>((resolve, reject) =>
      ch.sendToQueue(
        q,
        Buffer.from("big headers"),
        { headers: { big: "z".repeat(8100) } },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const got = await ch.get(q, { noAck: true });
    assert.ok(got !== false, "the message arrived");
    assert.equal(
      (got.properties.headers as Record<string, string>)["big"]?.length,
      8100,
    );
    assert.equal(closed, false, "the connection lives");
    await small.close();
  });

  it("sends a message whose copied trace headers fill the frame without trace headers, not a frame the broker refuses", async () => {
    // Headers that already carry a traceparent take the copy path: the
    // trace headers go into a copy of them, which amqplib encodes unchecked.
    const amqpApi = loadAmqplib();
    const small = await amqpApi.connect(`${brokerUrl}?frameMax=8192`);
    let closed = false;
    small.on("close", () => (closed = true));
    small.on("error", () => {});
    try {
      const ch = await small.createConfirmChannel();
      const q = queueName();
      await ch.assertQueue(q, { autoDelete: true });
      const theirs = "00-11111111111111111111111111111111-2222222222222222-01";
      // 8167 bytes as the application made it; the customer's baggage and
      // the sent-at header would take it past 8192.
      const headers = { traceparent: theirs, big: "z".repeat(8060) };
      await new Promise<void>((resolve, reject) =>
        withCustomer("c-full", () =>
          ch.sendToQueue(q, Buffer.from("big headers"), { headers }, (err) =>
            err ? reject(err) : resolve(),
          ),
        ),
      );
      const got = await ch.get(q, { noAck: true });
      assert.ok(got !== false, "the message arrived");
      const arrived = got.properties.headers as Record<string, unknown>;
      assert.equal((arrived["big"] as string).length, 8060);
      // Neither ours, which do not fit, nor theirs, copied from elsewhere.
      assert.equal(arrived["traceparent"], undefined);
      assert.equal(arrived["baggage"], undefined);
      assert.equal(closed, false, "the connection lives");
    } finally {
      await small.close().catch(() => {});
    }
  });

  it("settles the publishes a confirm channel closes on as channel_closed, not as nacked", async () => {
    const ch = await connection.createConfirmChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const answers: string[] = [];
    // Closed before the broker's confirms can arrive: amqplib drops those
    // that come while it closes, and answers every waiting callback with an
    // error.
    for (const id of ["m-1", "m-2", "m-3"])
      ch.sendToQueue(q, Buffer.from(id), { messageId: id }, (err) =>
        answers.push(err ? (err as Error).message : "confirmed"),
      );
    await ch.close();
    assert.deepEqual(answers, Array(3).fill("channel closed"));
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) => producers(s).length >= 3,
      "the publish spans",
    );
    assert.deepEqual(
      producers(spans)
        .map((p) => [
          p.attributes["messaging.message.id"],
          p.attributes["messaging.rabbitmq.settlement"],
          p.status.code,
          p.status.message,
          p.attributes["error.type"],
        ])
        .sort(),
      ["m-1", "m-2", "m-3"].map((id) => [
        id,
        "channel_closed",
        2,
        "the channel closed before the broker confirmed the message",
        "channel_closed",
      ]),
    );
  });

  it("counts a confirmed publish the broker nacks, or whose channel closes first, as a failed send", async () => {
    const ch = await connection.createConfirmChannel();
    const q = queueName();
    // Series are per exchange: one of this test's own counts its messages alone.
    const exchange = `x-${q}`;
    await ch.assertExchange(exchange, "direct", { durable: false });
    // A full queue that refuses more: the broker nacks the second message.
    await ch.assertQueue(q, {
      autoDelete: true,
      arguments: { "x-max-length": 1, "x-overflow": "reject-publish" },
    });
    await ch.bindQueue(q, exchange, q);
    const answers: string[] = [];
    for (const id of ["m-1", "m-2"])
      await new Promise<void>((resolve) =>
        ch.publish(exchange, q, Buffer.from(id), {}, (err) => {
          answers.push(err ? "nacked" : "confirmed");
          resolve();
        }),
      );
    assert.deepEqual(answers, ["confirmed", "nacked"]);
    await ch.deleteQueue(q);
    await ch.deleteExchange(exchange);
    await ch.close();
    // To an exchange that does not exist: the broker closes the channel.
    const doomed = await connection.createConfirmChannel();
    const closed = new Promise((resolve) => doomed.on("error", resolve));
    doomed.publish(`no-such-${q}`, q, Buffer.from("m-3"), {}, () => {});
    await closed;
    await threadline.forceFlush();
    const series = new Map<string, unknown>();
    for (const p of receiver.metrics
      .filter((m) => m.name === "messaging.client.sent.messages")
      .flatMap((m) => m.points)
      .filter((p) =>
        String(p.attributes["messaging.destination.name"]).endsWith(q),
      ))
      series.set(
        `${String(p.attributes["messaging.destination.name"])} ${String(p.attributes["error.type"])}`,
        p.value,
      );
    assert.deepEqual([...series].sort(), [
      [`no-such-${q} channel_closed`, 1],
      [`x-${q} nack`, 1],
      [`x-${q} undefined`, 1],
    ]);
    // Each failed span carries the error.type its message is counted with.
    const spans = producers(
      await receiver.waitForSpans(
        (s) =>
          producers(s).filter((p) =>
            String(p.attributes["messaging.destination.name"]).endsWith(q),
          ).length >= 3,
        "the publish spans",
      ),
    ).filter((p) =>
      String(p.attributes["messaging.destination.name"]).endsWith(q),
    );
    assert.deepEqual(
      spans
        .map((p) => [
          p.attributes["messaging.destination.name"],
          p.attributes["messaging.rabbitmq.settlement"],
          p.status.code,
          p.attributes["error.type"],
        ])
        .sort(),
      [
        [`no-such-${q}`, "channel_closed", 2, "channel_closed"],
        [`x-${q}`, "confirmed", 0, undefined],
        [`x-${q}`, "nack", 2, "nack"],
      ],
    );
  });

  /**
   * An exchange of this test's own (series are per exchange: its messages
   * are counted alone) routing the key `routed` to a queue, and the
   * message ids the channel's own `return` listener is given.
   */
  /** The publish spans to `exchange`, once there are `n` of them. */
  const publishesTo = async (exchange: string, n: number) => {
    const to = (spans: ReceivedSpan[]) =>
      producers(spans).filter(
        (p) => p.attributes["messaging.destination.name"] === exchange,
      );
    return to(
      await receiver.waitForSpans(
        (s) => to(s).length >= n,
        `${n} publish spans to ${exchange}`,
      ),
    );
  };

  const routedExchange = async (ch: amqp.Channel) => {
    const q = queueName();
    const exchange = `x-${q}`;
    await ch.assertExchange(exchange, "direct", { autoDelete: true });
    await ch.assertQueue(q, { autoDelete: true });
    await ch.bindQueue(q, exchange, "routed");
    const returned: string[] = [];
    ch.on("return", (msg: amqp.Message) =>
      returned.push(String(msg.properties.messageId)),
    );
    return { exchange, returned };
  };

  it("records a mandatory publish the broker returns on a confirm channel as a failed send, returned", async () => {
    const ch = await connection.createConfirmChannel();
    const { exchange, returned } = await routedExchange(ch);
    // The broker returns an unroutable mandatory message, then confirms it.
    for (const [id, key] of [
      ["m-routed", "routed"],
      ["m-unroutable", "nowhere"],
    ] as const)
      await new Promise<void>((resolve, reject) =>
        ch.publish(
          exchange,
          key,
          Buffer.from(id),
          { mandatory: true, messageId: id },
          (err) => (err ? reject(err as Error) : resolve()),
        ),
      );
    assert.deepEqual(returned, ["m-unroutable"], "the application's listener");
    assert.deepEqual(
      (await publishesTo(exchange, 2))
        .map((p) => [
          p.attributes["messaging.message.id"],
          p.attributes["messaging.rabbitmq.settlement"],
          p.status.code,
          p.attributes["error.type"],
        ])
        .sort(),
      [
        ["m-routed", "confirmed", 0, undefined],
        ["m-unroutable", "returned", 2, "returned"],
      ],
    );
    await threadline.forceFlush();
    const sent = (
      receiver.metrics.findLast(
        (m) => m.name === "messaging.client.sent.messages",
      )?.points ?? []
    )
      .filter((p) => p.attributes["messaging.destination.name"] === exchange)
      .map((p) => [String(p.attributes["error.type"]), p.value]);
    assert.deepEqual(sent.sort(), [
      ["returned", 1],
      ["undefined", 1],
    ]);
    await ch.close();
  });

  it("records a mandatory message the broker returns on a channel without confirms as a span of its own in the publisher's trace", async () => {
    const ch = await connection.createChannel();
    const { exchange, returned } = await routedExchange(ch);
    const tracer = trace.getTracer("test");
    const traceId = await withCustomer("c-42", () =>
      tracer.startActiveSpan("checkout", (parent) => {
        for (const [id, key] of [
          ["m-routed", "routed"],
          ["m-unroutable", "nowhere"],
        ] as const)
          ch.publish(exchange, key, Buffer.from(id), {
            mandatory: true,
            messageId: id,
          });
        parent.end();
        return parent.spanContext().traceId;
      }),
    );
    await waitFor(() => returned.length === 1, {
      what: "the application's return listener",
    });
    assert.deepEqual(returned, ["m-unroutable"]);
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.name === `return ${exchange}`),
      "the return span",
    );
    const publish = producers(spans).find(
      (p) => p.attributes["messaging.message.id"] === "m-unroutable",
    )!;
    const ret = spans.filter((x) => x.name === `return ${exchange}`);
    assert.equal(ret.length, 1, "only the returned message has one");
    assert.equal(ret[0]!.traceId, traceId);
    assert.equal(ret[0]!.parentSpanId, publish.spanId);
    assert.equal(ret[0]!.status.code, 2);
    assert.equal(
      ret[0]!.status.message,
      "the broker returned the message: NO_ROUTE",
    );
    assert.deepEqual(
      [
        ret[0]!.attributes["error.type"],
        ret[0]!.attributes["messaging.rabbitmq.settlement"],
        ret[0]!.attributes["messaging.rabbitmq.destination.routing_key"],
        ret[0]!.attributes["customer.id"],
      ],
      ["returned", "returned", "nowhere", "c-42"],
    );
    // The channel still works.
    await ch.checkExchange(exchange);
    await ch.close();
  });

  it("returns a mandatory message to a confirm channel that does not listen for returns without failing it", async () => {
    const ch = await connection.createConfirmChannel();
    const exchange = `x-${queueName()}`;
    await ch.assertExchange(exchange, "direct", { autoDelete: true });
    await new Promise<void>((resolve, reject) =>
      ch.publish(
        exchange,
        "nowhere",
        Buffer.from("x"),
        { mandatory: true },
        (err) => (err ? reject(err as Error) : resolve()),
      ),
    );
    const spans = await receiver.waitForSpans(
      (s) =>
        producers(s).some(
          (p) => p.attributes["messaging.destination.name"] === exchange,
        ),
      "the publish span",
    );
    const span = producers(spans).find(
      (p) => p.attributes["messaging.destination.name"] === exchange,
    );
    assert.equal(span?.attributes["messaging.rabbitmq.settlement"], "returned");
    // The channel still works.
    await ch.checkExchange(exchange);
    await ch.close();
  });

  it("keeps recording returns after the application removes every return listener", async () => {
    const confirm = await connection.createConfirmChannel();
    const plain = await connection.createChannel();
    const exchange = `x-${queueName()}`;
    await plain.assertExchange(exchange, "direct", { autoDelete: true });
    const returnSpans = async (n: number) =>
      (
        await receiver.waitForSpans(
          (s) => s.filter((x) => x.name === `return ${exchange}`).length >= n,
          `${n} return spans`,
        )
      ).filter((x) => x.name === `return ${exchange}`).length;
    for (const round of [1, 2]) {
      await new Promise<void>((resolve, reject) =>
        confirm.publish(
          exchange,
          "nowhere",
          Buffer.from("x"),
          { mandatory: true, messageId: `confirm-${round}` },
          (err) => (err ? reject(err as Error) : resolve()),
        ),
      );
      plain.publish(exchange, "nowhere", Buffer.from("x"), {
        mandatory: true,
        messageId: `plain-${round}`,
      });
      assert.equal(await returnSpans(round), round);
      // The application swaps its handlers: ours go with them.
      confirm.removeAllListeners("return");
      plain.removeAllListeners("return");
    }
    assert.deepEqual(
      (await publishesTo(exchange, 4))
        .map((p) => [
          p.attributes["messaging.message.id"],
          p.attributes["messaging.rabbitmq.settlement"],
        ])
        .sort(),
      [
        ["confirm-1", "returned"],
        ["confirm-2", "returned"],
        ["plain-1", undefined],
        ["plain-2", undefined],
      ],
    );
    await confirm.close();
    await plain.close();
  });

  it("ends every publish span of a confirm channel that closes, and each once", async () => {
    const ch = await connection.createConfirmChannel();
    ch.on("error", () => {});
    const q = queueName();
    await ch.assertQueue(q, { durable: true, autoDelete: true });
    // A publish amqplib refuses after queueing its confirm callback.
    assert.throws(() =>
      ch.sendToQueue(q, "not a buffer" as unknown as Buffer, {}, () => {}),
    );
    // The broker confirms an unroutable message at once and a persistent
    // one once written: out of order, which amqplib's close does not follow.
    const big = Buffer.alloc(100_000, 1);
    for (let i = 0; i < 20; i++) {
      ch.sendToQueue(q, big, { persistent: true });
      ch.publish("amq.direct", "nowhere", Buffer.from("x"));
    }
    // A publish to an exchange that does not exist closes the channel.
    ch.publish(`no-such-${q}`, "", Buffer.from("x"));
    await new Promise<void>((resolve) => ch.once("close", () => resolve()));
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) => producers(s).length >= 42,
      "every publish span",
    );
    await new Promise((r) => setTimeout(r, 100));
    await threadline.forceFlush();
    assert.equal(producers(receiver.spans).length, 42, "each ended once");
    assert.ok(producers(spans).some((p) => p.status.code === 2));
  });
});

describe("closed channels", () => {
  it("records a publish on a closed channel as a failed publish, and the application still gets the error", async () => {
    const q = queueName();
    const closedByApp = await connection.createChannel();
    await closedByApp.assertQueue(q, { autoDelete: true });
    await closedByApp.close();
    // The broker closes a channel that publishes to an exchange that does
    // not exist.
    const closedByBroker = await connection.createConfirmChannel();
    closedByBroker.on("error", () => {});
    const closed = new Promise((resolve) =>
      closedByBroker.once("close", resolve),
    );
    closedByBroker.publish(`no-such-${q}`, "", Buffer.from("x"));
    await closed;
    await threadline.forceFlush();
    receiver.clear();

    const thrown: unknown[] = [];
    // Exchanges of this test's own (nothing reaches the broker): series
    // are per exchange.
    const root = trace.getTracer("t").startActiveSpan("request", (span) => {
      const publishes = [
        () => closedByApp.publish(`app-${q}`, q, Buffer.from("x")),
        () =>
          closedByBroker.publish(`broker-${q}`, q, Buffer.from("x"), {}, () => {
            thrown.push("confirmed");
          }),
      ];
      for (const publish of publishes) {
        try {
          publish();
        } catch (err) {
          thrown.push(err);
        }
      }
      span.end();
      return span.spanContext();
    });
    assert.deepEqual(
      thrown.map((e) => (e as Error).name),
      ["IllegalOperationError", "IllegalOperationError"],
    );

    await threadline.forceFlush();
    const spans = producers(
      await receiver.waitForSpans(
        (s) => producers(s).length >= 2,
        "the failed publishes' spans",
      ),
    );
    assert.deepEqual(
      spans
        .map((p) => [
          p.name,
          p.status.code,
          p.attributes["error.type"],
          p.parentSpanId,
        ])
        .sort(),
      [
        [`publish app-${q}`, 2, "IllegalOperationError", root.spanId],
        [`publish broker-${q}`, 2, "IllegalOperationError", root.spanId],
      ],
    );
    for (const p of spans)
      assert.deepEqual(
        p.events.map((e) => e.attributes["exception.type"]),
        ["IllegalOperationError"],
      );
    const failed = receiver.metrics
      .filter((m) => m.name === "messaging.client.sent.messages")
      .flatMap((m) => m.points)
      .filter((p) =>
        [`app-${q}`, `broker-${q}`].includes(
          String(p.attributes["messaging.destination.name"]),
        ),
      );
    assert.deepEqual(
      failed
        .map((p) => [
          p.attributes["messaging.destination.name"],
          p.attributes["error.type"],
          p.value,
        ])
        .sort(),
      [
        [`app-${q}`, "IllegalOperationError", 1],
        [`broker-${q}`, "IllegalOperationError", 1],
      ],
    );
  });
});

describe("metrics", () => {
  it("counts messages per exchange and operation, never per routing key", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    const events = `events-${q}`;
    const audit = `audit-${q}`;
    await ch.assertExchange(events, "topic", { durable: false });
    await ch.assertExchange(audit, "fanout", { durable: false });
    await ch.assertQueue(q, { autoDelete: true });
    await ch.bindQueue(q, audit, "");
    // Routing keys that carry an id, as many as an instrument holds series:
    // counted per key, they would push later series (another exchange's)
    // into the overflow series.
    const keys = 2000;
    for (let id = 0; id < keys; id++)
      ch.publish(events, `order.${id}.created`, Buffer.from("x"));
    ch.publish(audit, "", Buffer.from("one"));
    ch.publish(audit, "", Buffer.from("two"));
    const got = await waitFor(async () => ch.get(q), { what: "a message" });
    ch.ack(got);
    const delivered = new Promise<void>((resolve) => {
      void ch.consume(q, (msg) => {
        if (msg === null) return;
        ch.ack(msg);
        resolve();
      });
    });
    await delivered;
    await threadline.forceFlush();
    const latest = (name: string) =>
      receiver.metrics.findLast((m) => m.name === name)?.points ?? [];
    const ours = (points: ReturnType<typeof latest>) =>
      points.filter((p) =>
        [events, audit].includes(
          String(p.attributes["messaging.destination.name"]),
        ),
      );
    const sent = latest("messaging.client.sent.messages");
    assert.deepEqual(
      ours(sent)
        .map((p) => [p.attributes, p.value])
        .sort((a, b) => Number(b[1]) - Number(a[1])),
      [
        [
          {
            "messaging.system": "rabbitmq",
            "messaging.operation.name": "publish",
            "messaging.destination.name": events,
          },
          keys,
        ],
        [
          {
            "messaging.system": "rabbitmq",
            "messaging.operation.name": "publish",
            "messaging.destination.name": audit,
          },
          2,
        ],
      ],
    );
    for (const name of [
      "messaging.client.sent.messages",
      "messaging.client.consumed.messages",
      "messaging.process.duration",
      "threadline.messaging.delivery.latency",
    ])
      for (const p of latest(name)) {
        assert.equal(p.attributes["otel.metric.overflow"], undefined, name);
        assert.equal(
          p.attributes["messaging.rabbitmq.destination.routing_key"],
          undefined,
          name,
        );
      }
    // Deliveries carry the operation their spans name: consume() or get().
    const byQueue = (name: string) =>
      latest(name)
        .filter(
          (p) => p.attributes["messaging.destination.subscription.name"] === q,
        )
        .map((p) => [
          p.attributes["messaging.operation.name"],
          p.value ?? p.count,
        ])
        .sort();
    for (const name of [
      "messaging.client.consumed.messages",
      "messaging.process.duration",
      "threadline.messaging.delivery.latency",
    ])
      assert.deepEqual(
        byQueue(name),
        [
          ["consume", 1],
          ["get", 1],
        ],
        name,
      );
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 2,
      "the consumer spans",
    );
    assert.deepEqual(
      consumersOf(spans, q)
        .map((c) => c.attributes["messaging.operation.name"])
        .sort(),
      ["consume", "get"],
    );
    // The routing key stays on the spans.
    assert.ok(
      producers(spans).some(
        (p) =>
          p.attributes["messaging.rabbitmq.destination.routing_key"] ===
          "order.7.created",
      ),
    );
    await ch.deleteExchange(events);
    await ch.deleteExchange(audit);
    await ch.close();
  });

  it("links a delivery's latency to its consumer span", async () => {
    const { ch, q, delivered } = await ackingQueue();
    await trace.getTracer("t").startActiveSpan("publish job", async (root) => {
      ch.sendToQueue(q, Buffer.from("m"));
      root.end();
    });
    await waitFor(() => delivered() === 1, { what: "the delivery" });
    await assertLinkedToConsumer("threadline.messaging.delivery.latency", q);
    await ch.close();
  });

  it("links a delivery's processing time to its consumer span, whatever context acks it", async () => {
    let acked = 0;
    // Acked later, in a span of its own (as a batch acker would), which is
    // not the delivery's.
    const { ch, q } = await ackingQueue((ch, msg) =>
      setTimeout(
        () =>
          trace.getTracer("t").startActiveSpan("ack later", (span) => {
            ch.ack(msg);
            acked++;
            span.end();
          }),
        5,
      ),
    );
    ch.sendToQueue(q, Buffer.from("m"));
    await waitFor(() => acked === 1, { what: "the ack" });
    await assertLinkedToConsumer("messaging.process.duration", q);
    await ch.close();
  });

  it("takes no delivery latency from a sent-at time before the epoch", async () => {
    const { ch, q, delivered } = await ackingQueue();
    // A publisher that is no service of ours, claiming its message waited
    // nearly three hundred thousand years.
    await publishRaw(q, [
      { content: "m", headers: { "threadline-sent-at": -9e15 } },
    ]);
    await waitFor(() => delivered() === 1, { what: "the delivery" });
    assert.equal(
      (await deliveryPoints("messaging.client.consumed.messages", q)).length,
      1,
    );
    assert.deepEqual(
      await deliveryPoints("threadline.messaging.delivery.latency", q),
      [],
    );
    await ch.close();
  });

  it("counts the queues the broker names as one, so the service's own queues keep their series", async () => {
    // As many server-named queues as an instrument holds series: exclusive
    // reply queues, one per call, or anonymous queues declared again at
    // every reconnect.
    const anonymous = 2000;
    const ch = await connection.createChannel();
    const declared = await Promise.all(
      Array.from({ length: anonymous }, () =>
        ch.assertQueue("", { exclusive: true }),
      ),
    );
    let got = 0;
    await Promise.all(
      declared.map(({ queue }) =>
        ch.consume(queue, (msg) => {
          if (msg === null) return;
          got++;
          ch.ack(msg);
        }),
      ),
    );
    for (const { queue } of declared) ch.sendToQueue(queue, Buffer.from("r"));
    await waitFor(() => got === anonymous, {
      what: "the anonymous queues' deliveries",
    });
    // And a reply fetched with get().
    const { queue: reply } = await ch.assertQueue("", { exclusive: true });
    ch.sendToQueue(reply, Buffer.from("r"));
    ch.ack(await waitFor(async () => ch.get(reply), { what: "the reply" }));
    const named = await ackingQueue();
    named.ch.sendToQueue(named.q, Buffer.from("m"));
    await waitFor(() => named.delivered() === 1, { what: "the delivery" });
    await threadline.forceFlush();
    for (const name of [
      "messaging.client.consumed.messages",
      "messaging.process.duration",
      "threadline.messaging.delivery.latency",
    ]) {
      const points =
        receiver.metrics.findLast((m) => m.name === name)?.points ?? [];
      const byQueue = (q: string) =>
        points
          .filter(
            (p) =>
              p.attributes["messaging.destination.subscription.name"] === q,
          )
          .map((p) => [
            p.attributes["messaging.operation.name"],
            p.value ?? p.count,
          ])
          .sort();
      assert.deepEqual(byQueue(named.q), [["consume", 1]], name);
      assert.deepEqual(
        byQueue("amq.gen-*"),
        [
          ["consume", anonymous],
          ["get", 1],
        ],
        name,
      );
      const queues = points.map((p) =>
        String(p.attributes["messaging.destination.subscription.name"]),
      );
      assert.deepEqual(
        queues.filter((q) => q.startsWith("amq.gen-") && q !== "amq.gen-*"),
        [],
        name,
      );
      assert.ok(
        points.every((p) => p.attributes["otel.metric.overflow"] === undefined),
        name,
      );
    }
    // The spans keep the queue's own name.
    const first = declared[0]!.queue;
    assert.equal((await consumerOf(first)).name, `process ${first}`);
    await named.ch.close();
    await ch.close();
  });
});

/**
 * The broker behind a TCP proxy whose sockets can be cut, as a network
 * fault or a broker restart cuts them; `ready()` is the health report's
 * status (as /readyz answers it) and its components for the connections
 * through the proxy.
 */
async function proxiedBroker(
  report: () => Promise<{
    code: number;
    components: Array<{ name: string; status: string }>;
  }>,
) {
  const broker = new URL(brokerUrl);
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(broker.port), broker.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  const url = new URL(brokerUrl);
  url.host = `127.0.0.1:${port}`;
  const name = `rabbitmq 127.0.0.1:${port}`;
  return {
    url: url.href,
    name,
    ready: async () => {
      const { code, components } = await report();
      return {
        code,
        viaProxy: components
          .filter((c) => c.name.startsWith(name))
          .map((c) => `${c.name}: ${c.status}`),
      };
    },
    /** Cuts every connection through the proxy. */
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

describe("a connection's health across a failover", () => {
  // Read from the registry /readyz answers from: this file's first start
  // has no health endpoint, and is the one whose connect() amqplib's
  // promise API calls (a later start's is not, as in an application,
  // which starts Threadline once).
  const registry = async () => {
    const components = await health.run();
    const unhealthy = components.some((c) => c.status === "unhealthy");
    return { code: unhealthy ? 503 : 200, components };
  };
  const brokerProxy = () => proxiedBroker(registry);

  it("takes a dropped connection's report back once the application reconnects to another node of the broker", async () => {
    // Two ways to the same broker, as two nodes of a cluster (or one
    // name's several addresses) are to an application that fails over.
    const [one, other] = [await brokerProxy(), await brokerProxy()];
    const amqpApi = loadAmqplib();
    const ready = async () => {
      const [a, b] = [await one.ready(), await other.ready()];
      return { code: b.code, components: [...a.viaProxy, ...b.viaProxy] };
    };
    try {
      const first = await amqpApi.connect(one.url);
      first.on("error", () => {});
      await first.createChannel();
      const closed = new Promise((resolve) => first.on("close", resolve));
      one.cut();
      await closed;
      assert.deepEqual(await ready(), {
        code: 503,
        components: [`${one.name}: unhealthy`],
      });

      const second = await amqpApi.connect(other.url);
      second.on("error", () => {});
      await second.createChannel();
      assert.deepEqual(
        await ready(),
        { code: 200, components: [`${other.name}: healthy`] },
        "the connection through the other node replaces the dropped one",
      );
      await second.close();
    } finally {
      await one.close();
      await other.close();
    }
  });
});

describe("a restart of the SDK", () => {
  it("records returns on a channel opened before a restart of the SDK", async () => {
    const ch = await connection.createChannel();
    const exchange = `x-${queueName()}`;
    await ch.assertExchange(exchange, "direct", { autoDelete: true });
    const publishReturned = async (id: string) => {
      const traceId = trace.getTracer("test").startActiveSpan(id, (parent) => {
        ch.publish(exchange, "nowhere", Buffer.from(id), {
          mandatory: true,
          messageId: id,
        });
        parent.end();
        return parent.spanContext().traceId;
      });
      const spans = await receiver.waitForSpans(
        (s) =>
          s.some(
            (x) => x.name === `return ${exchange}` && x.traceId === traceId,
          ),
        `the return span of ${id}`,
      );
      return spans.filter((x) => x.name === `return ${exchange}`).length;
    };
    assert.equal(await publishReturned("before"), 1);
    await threadline.shutdown();
    start();
    assert.equal(await publishReturned("after"), 2);
    await ch.close();
  });
});

describe("propagators without tracecontext", () => {
  before(async () => {
    await threadline.shutdown();
    process.env["OTEL_PROPAGATORS"] = "baggage";
    start();
  });
  after(() => {
    delete process.env["OTEL_PROPAGATORS"];
  });

  it("sends the application's own traceparent and tracestate as it set them, never a baggage it copied", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const seen: Array<{
      customer: string | undefined;
      headers: Record<string, unknown>;
    }> = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      const { baggage, ...headers } = msg.properties.headers ?? {};
      delete headers["threadline-sent-at"];
      seen.push({
        customer: getCustomerId(),
        headers: { ...headers, baggage: String(baggage) },
      });
      ch.ack(msg);
    });
    // The application carries its trace context itself (a mesh, or its
    // own tracer); it forwards a caller's baggage too.
    const headers = {
      traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
      tracestate: "app=1",
      baggage: "customer.id=victim-42",
    };
    withCustomer("c-1", () =>
      ch.sendToQueue(q, Buffer.from("traced"), { headers }),
    );
    context.with(suppressTracing(context.active()), () =>
      ch.sendToQueue(q, Buffer.from("untraced"), { headers }),
    );
    await waitFor(() => seen.length === 2, { what: "both deliveries" });
    const own = {
      traceparent: headers.traceparent,
      tracestate: headers.tracestate,
    };
    assert.deepEqual(seen, [
      {
        customer: "c-1",
        headers: { ...own, baggage: "customer.id=c-1" },
      },
      { customer: undefined, headers: { ...own, baggage: "undefined" } },
    ]);
    await ch.close();
  });

  it("makes no span of a returned message whose traceparent is the application's own", async () => {
    const ch = await connection.createChannel();
    const exchange = `x-${queueName()}`;
    await ch.assertExchange(exchange, "direct", { autoDelete: true });
    const returned: string[] = [];
    ch.on("return", (msg: amqp.Message) =>
      returned.push(String(msg.properties.messageId)),
    );
    const traceId = trace.getTracer("test").startActiveSpan("send", (span) => {
      ch.publish(exchange, "nowhere", Buffer.from("x"), {
        mandatory: true,
        messageId: "own-traceparent",
        headers: {
          traceparent:
            "00-11111111111111111111111111111111-2222222222222222-01",
        },
      });
      span.end();
      return span.spanContext().traceId;
    });
    await waitFor(() => returned.length === 1, {
      what: "the application's return listener",
    });
    await receiver.waitForSpans(
      (s) => s.some((x) => x.name === "send" && x.traceId === traceId),
      "the application's span",
    );
    await threadline.forceFlush();
    assert.deepEqual(
      receiver.spans
        .filter((x) => x.name.startsWith("return "))
        .map((x) => x.traceId),
      [],
    );
    await ch.close();
  });
});

describe("link mode", () => {
  before(async () => {
    await threadline.shutdown();
    start({ amqpConsumerContext: "link" });
  });

  it("starts a new trace linked to the producer, keeping the customer id", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const customers: Array<string | undefined> = [];
    await ch.consume(q, (msg) => {
      if (msg === null) return;
      customers.push(getCustomerId());
      ch.ack(msg);
    });
    withCustomer("c-42", () =>
      trace.getTracer("t").startActiveSpan("request", (root) => {
        ch.sendToQueue(q, Buffer.from("linked"));
        root.end();
      }),
    );
    await waitFor(() => customers.length === 1, { what: "the delivery" });
    assert.equal(customers[0], "c-42");
    const spans = await receiver.waitForSpans(
      (s) => consumers(s).length >= 1 && producers(s).length >= 1,
      "both spans",
    );
    const producer = producers(spans)[0]!;
    const consumer = consumers(spans)[0]!;
    assert.notEqual(consumer.traceId, producer.traceId);
    assert.equal(consumer.parentSpanId, "");
    assert.deepEqual(
      consumer.links.map((l) => [l.traceId, l.spanId]),
      [[producer.traceId, producer.spanId]],
    );
    assert.equal(consumer.attributes["customer.id"], "c-42");
    await ch.close();
  });
});

describe("external exchanges", () => {
  before(async () => {
    await threadline.shutdown();
    start({ amqpExternalExchanges: ["partner.out"] });
  });

  it("sends trace context and the application's headers, never baggage or the customer id", async () => {
    const ch = await connection.createChannel();
    await ch.assertExchange("partner.out", "fanout", { autoDelete: true });
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    await ch.bindQueue(q, "partner.out", "");
    // What the partner receives, read without any instrumentation's help.
    const received: Array<Record<string, unknown>> = [];
    void ch.consume(q, (msg) => {
      if (msg === null) return;
      received.push({ ...msg.properties.headers });
      ch.ack(msg);
    });
    let traceId = "";
    withCustomer("c-secret", () =>
      trace.getTracer("t").startActiveSpan("request", (root) => {
        traceId = root.spanContext().traceId;
        // With the application's own baggage header, and without.
        ch.publish("partner.out", "", Buffer.from("{}"), {
          headers: { app: "x", baggage: "customer.id=c-secret" },
        });
        ch.publish("partner.out", "", Buffer.from("{}"), {
          headers: { app: "x" },
        });
        // Forwarded headers in other spellings, in a watched request.
        context.with(
          propagation.extract(context.active(), {
            baggage: `threadline.watch=debug;until=${Math.floor(Date.now() / 1000) + 60}`,
          }),
          () =>
            ch.publish("partner.out", "", Buffer.from("{}"), {
              headers: {
                app: "x",
                Baggage: "customer.id=c-secret",
                "X-Customer-Id": "c-secret",
              },
            }),
        );
        root.end();
      }),
    );
    await waitFor(() => received.length === 3, { what: "every delivery" });
    for (const headers of received) {
      assert.equal(headers["app"], "x");
      assert.match(
        String(headers["traceparent"]),
        new RegExp(`^00-${traceId}-`),
      );
      assert.equal(headers["baggage"], undefined);
      assert.equal(headers["threadline-sent-at"], undefined);
      assert.doesNotMatch(JSON.stringify(headers), /c-secret/);
      assert.doesNotMatch(JSON.stringify(headers), /threadline\.watch/);
    }
    await ch.close();
  });

  it("publishes neither baggage nor the customer header there with tracing suppressed", async () => {
    const ch = await connection.createChannel();
    await ch.assertExchange("partner.out", "fanout", { autoDelete: true });
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    await ch.bindQueue(q, "partner.out", "");
    const received = new Promise<Record<string, unknown>>((resolve) => {
      void ch.consume(q, (msg) => {
        if (msg === null) return;
        resolve({ ...msg.properties.headers });
        ch.ack(msg);
      });
    });
    withCustomer("c-secret", () =>
      context.with(suppressTracing(context.active()), () =>
        ch.publish("partner.out", "", Buffer.from("{}"), {
          headers: {
            app: "x",
            baggage: "customer.id=c-secret",
            "X-Customer-Id": "c-secret",
          },
        }),
      ),
    );
    assert.deepEqual(await received, { app: "x" });
    await ch.close();
  });

  it("keeps internal exchanges' baggage", async () => {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const received = new Promise<Record<string, unknown>>((resolve) => {
      void ch.consume(q, (msg) => {
        if (msg === null) return;
        resolve({ ...msg.properties.headers });
        ch.ack(msg);
      });
    });
    withCustomer("c-inside", () => ch.sendToQueue(q, Buffer.from("{}")));
    const headers = await received;
    assert.match(String(headers["baggage"]), /customer\.id=c-inside/);
    assert.equal(typeof headers["threadline-sent-at"], "number");
    await ch.close();
  });
});

describe("the default exchange declared external", () => {
  /** What a consumer of queue `q` receives from `publish`, read without any instrumentation's help. */
  async function receivedFrom(
    publish: (ch: amqp.Channel, q: string) => void,
    count: number,
  ): Promise<Array<Record<string, unknown>>> {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const received: Array<Record<string, unknown>> = [];
    void ch.consume(q, (msg) => {
      if (msg === null) return;
      received.push({ ...msg.properties.headers });
      ch.ack(msg);
    });
    withCustomer("c-secret", () => publish(ch, q));
    await waitFor(() => received.length === count, { what: "every delivery" });
    await ch.close();
    return received;
  }
  const copied = { app: "x", baggage: "customer.id=c-secret" };
  const forwarded = { app: "x", "X-Customer-Id": "c-secret" };

  function assertSentAsExternal(received: Array<Record<string, unknown>>) {
    for (const headers of received) {
      assert.equal(headers["app"], "x");
      assert.equal(headers["baggage"], undefined);
      assert.equal(headers["threadline-sent-at"], undefined);
      assert.doesNotMatch(JSON.stringify(headers), /c-secret/);
    }
  }

  it("is named amq.default in THREADLINE_AMQP_EXTERNAL_EXCHANGES, as its spans name it", async () => {
    await threadline.shutdown();
    process.env["THREADLINE_AMQP_EXTERNAL_EXCHANGES"] =
      "partner.out,amq.default";
    try {
      start();
    } finally {
      delete process.env["THREADLINE_AMQP_EXTERNAL_EXCHANGES"];
    }
    const received = await receivedFrom((ch, q) => {
      ch.sendToQueue(q, Buffer.from("{}"), { headers: copied });
      ch.sendToQueue(q, Buffer.from("{}"), { headers: forwarded });
      context.with(suppressTracing(context.active()), () =>
        ch.sendToQueue(q, Buffer.from("{}"), {
          headers: { ...copied, ...forwarded },
        }),
      );
    }, 3);
    assertSentAsExternal(received);
    assert.equal(
      received.filter((h) => typeof h["traceparent"] === "string").length,
      2,
      "the traced publishes carry their trace context",
    );
    const spans = await receiver.waitForSpans(
      (s) => producers(s).length >= 2,
      "the publish spans",
    );
    for (const span of producers(spans))
      assert.equal(span.name, "publish amq.default");
  });

  it("is named amq.default in amqpExternalExchanges, published to as amqplib names it", async () => {
    await threadline.shutdown();
    start({ amqpExternalExchanges: ["amq.default"] });
    assertSentAsExternal(
      await receivedFrom((ch, q) => {
        ch.publish("", q, Buffer.from("{}"), { headers: copied });
        ch.sendToQueue(q, Buffer.from("{}"), { headers: forwarded });
      }, 2),
    );
  });
});

describe("the customer header on internal exchanges", () => {
  /**
   * The headers each message published by `publish` arrives with, by its
   * `n` header, read without any instrumentation's help.
   */
  async function receivedFrom(
    publish: (send: (headers: Record<string, unknown>) => void) => void,
    count: number,
  ): Promise<Map<unknown, Record<string, unknown>>> {
    const ch = await connection.createChannel();
    const q = queueName();
    await ch.assertQueue(q, { autoDelete: true });
    const received = new Map<unknown, Record<string, unknown>>();
    void ch.consume(q, (msg) => {
      if (msg === null) return;
      const headers = { ...msg.properties.headers };
      for (const [k, v] of Object.entries(headers))
        if (Buffer.isBuffer(v)) headers[k] = v.toString("utf8");
      received.set(headers["n"], headers);
      ch.ack(msg);
    });
    publish((headers) => ch.sendToQueue(q, Buffer.from("{}"), { headers }));
    await waitFor(() => received.size === count, { what: "every delivery" });
    await ch.close();
    return received;
  }
  /** The headers named `name` in any spelling, with their values. */
  const named = (headers: Record<string, unknown> | undefined, name: string) =>
    Object.entries(headers ?? {}).filter(([k]) => k.toLowerCase() === name);

  it("passes one on only when it names the customer of the publishing context, traced or not", async () => {
    await threadline.shutdown();
    start();
    const suppressed = (fn: () => void) =>
      context.with(suppressTracing(context.active()), fn);
    const received = await receivedFrom((send) => {
      withCustomer("c-inside", () => {
        for (const untraced of [false, true]) {
          const as = untraced ? suppressed : (fn: () => void) => fn();
          const n = (label: string) => `${label}${untraced ? " untraced" : ""}`;
          as(() => {
            send({ n: n("own"), "x-customer-id": "c-inside" });
            send({ n: n("own, spelt"), "X-Customer-Id": "c-inside" });
            send({
              n: n("own, bytes"),
              "x-customer-id": Buffer.from("c-inside"),
            });
            // Copied for a baggage header that does not go as it is.
            send({
              n: n("own, copied"),
              "x-customer-id": "c-inside",
              baggage: "customer.id=c-other",
            });
            send({ n: n("another"), "X-Customer-Id": "c-other", app: "x" });
            send({
              n: n("twice"),
              "x-customer-id": "c-inside",
              "X-Customer-ID": "c-inside",
            });
          });
        }
      });
      // No customer in the context: a forwarded header names none of its.
      send({ n: "no customer", "x-customer-id": "c-planted" });
      suppressed(() =>
        send({ n: "no customer untraced", "x-customer-id": "c-planted" }),
      );
    }, 14);
    for (const untraced of ["", " untraced"]) {
      assert.deepEqual(named(received.get(`own${untraced}`), "x-customer-id"), [
        ["x-customer-id", "c-inside"],
      ]);
      assert.deepEqual(
        named(received.get(`own, spelt${untraced}`), "x-customer-id"),
        [["X-Customer-Id", "c-inside"]],
      );
      assert.deepEqual(
        named(received.get(`own, bytes${untraced}`), "x-customer-id"),
        [["x-customer-id", "c-inside"]],
      );
      assert.deepEqual(
        named(received.get(`own, copied${untraced}`), "x-customer-id"),
        [["x-customer-id", "c-inside"]],
      );
      assert.doesNotMatch(
        String(received.get(`own, copied${untraced}`)?.["baggage"]),
        /c-other/,
      );
      for (const removed of ["another", "twice", "no customer"])
        assert.deepEqual(
          named(received.get(`${removed}${untraced}`), "x-customer-id"),
          [],
          `${removed}${untraced}: the header is removed`,
        );
      assert.equal(received.get(`another${untraced}`)?.["app"], "x");
    }
    // The customer still goes in baggage.
    assert.match(
      String(received.get("another")?.["baggage"]),
      /customer\.id=c-inside/,
    );
  });

  it("passes on a number that names the customer as its digits do, as the http client does", async () => {
    await threadline.shutdown();
    start();
    const received = await receivedFrom((send) => {
      withCustomer(42, () => {
        send({ n: "number", "x-customer-id": 42 });
        send({ n: "text", "x-customer-id": "42" });
        send({ n: "another number", "x-customer-id": 43 });
      });
    }, 3);
    assert.deepEqual(named(received.get("number"), "x-customer-id"), [
      ["x-customer-id", 42],
    ]);
    assert.deepEqual(named(received.get("text"), "x-customer-id"), [
      ["x-customer-id", "42"],
    ]);
    assert.deepEqual(
      named(received.get("another number"), "x-customer-id"),
      [],
    );
  });

  it("judges the header configured as the customer header, and no other", async () => {
    await threadline.shutdown();
    start({ customerHeader: "x-tenant" });
    const received = await receivedFrom(
      (send) =>
        withCustomer("c-inside", () => {
          send({ n: "own", "X-Tenant": "c-inside" });
          send({ n: "another", "x-tenant": "c-other", "x-customer-id": "c-x" });
        }),
      2,
    );
    assert.deepEqual(named(received.get("own"), "x-tenant"), [
      ["X-Tenant", "c-inside"],
    ]);
    assert.deepEqual(named(received.get("another"), "x-tenant"), []);
    assert.equal(received.get("another")?.["x-customer-id"], "c-x");
  });
});

describe("untrusted publishers (trustMessageBaggage off)", () => {
  before(async () => {
    await threadline.shutdown();
    start({ amqpTrustMessageBaggage: false });
  });

  it("takes neither the customer id nor a delivery latency from their headers", async () => {
    const { ch, q, delivered } = await ackingQueue();
    await publishRaw(q, [
      {
        content: "m",
        headers: {
          baggage: "customer.id=c-planted",
          // An hour in a queue, as a caller would like the histogram to say.
          "threadline-sent-at": Date.now() - 3_600_000,
        },
      },
    ]);
    await waitFor(() => delivered() === 1, { what: "the delivery" });
    const span = await consumerOf(q);
    assert.equal(span.attributes["customer.id"], undefined);
    assert.equal(
      (await deliveryPoints("messaging.client.consumed.messages", q)).length,
      1,
    );
    assert.deepEqual(
      await deliveryPoints("threadline.messaging.delivery.latency", q),
      [],
    );
    await ch.close();
  });
});

describe("the connection's health", () => {
  let healthUrl: string;
  before(async () => {
    await threadline.shutdown();
    healthUrl = `http://127.0.0.1:${await freePort()}`;
    start({ health: { port: Number(new URL(healthUrl).port) } });
  });

  const readyz = async () => {
    const res = await fetch(`${healthUrl}/readyz`);
    const report = (await res.json()) as {
      components: Array<{ name: string; status: string }>;
    };
    return { code: res.status, components: report.components };
  };
  const brokerProxy = () => proxiedBroker(readyz);

  it("reports a dropped connection until the application has reconnected to the same broker", async () => {
    const { url, name, ready, cut, close } = await brokerProxy();
    const amqpApi = loadAmqplib();
    const publishOn = async (conn: amqp.ChannelModel) => {
      conn.on("error", () => {});
      const ch = await conn.createChannel();
      ch.sendToQueue(queueName(), Buffer.from("hello"));
      return ch;
    };
    try {
      const first = await amqpApi.connect(url);
      await publishOn(first);
      assert.deepEqual(await ready(), {
        code: 200,
        viaProxy: [`${name}: healthy`],
      });

      const closed = new Promise((resolve) => first.on("close", resolve));
      cut();
      await closed;
      assert.deepEqual(
        await ready(),
        { code: 503, viaProxy: [`${name}: unhealthy`] },
        "a drop without a reconnect is reported",
      );

      const second = await amqpApi.connect(url);
      await publishOn(second);
      assert.deepEqual(
        await ready(),
        { code: 200, viaProxy: [`${name}: healthy`] },
        "the reconnected connection takes the dropped one's place",
      );
      await second.close();
    } finally {
      await close();
    }
  });

  it("reports the connection of a worker that only fetches with get()", async () => {
    const { url, name, ready, cut, close } = await brokerProxy();
    const amqpApi = loadAmqplib();
    const q = queueName();
    try {
      const conn = await amqpApi.connect(url);
      conn.on("error", () => {});
      const ch = await conn.createChannel();
      // Watched from its first channel, whatever that is used for.
      assert.deepEqual(await ready(), {
        code: 200,
        viaProxy: [`${name}: healthy`],
      });
      await ch.assertQueue(q, { autoDelete: true });
      assert.equal(await ch.get(q), false);

      const closed = new Promise((resolve) => conn.on("close", resolve));
      cut();
      await closed;
      assert.deepEqual(await ready(), {
        code: 503,
        viaProxy: [`${name}: unhealthy`],
      });

      // Reconnected, so the other tests' /readyz is theirs.
      const again = await amqpApi.connect(url);
      await again.createChannel();
      assert.equal((await ready()).code, 200);
      await again.close();
    } finally {
      await close();
    }
  });
});
