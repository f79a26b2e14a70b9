// An amqplib loaded before Threadline started (a late start, which start-up
// warns about): its encoder is not wrapped, and publishes still carry the
// trace headers, in a copy of the application's headers; callback API
// operations still answer in their caller's context. A channel opened
// before the start still has its connection's health checked.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { Channel, ChannelModel } from "amqplib";
import type amqpCallback from "amqplib/callback_api.js";
import { trace } from "@opentelemetry/api";
import {
  freePort,
  startOtlpReceiver,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";
import {
  getCustomerId,
  init,
  withCustomer,
  type ThreadlineHandle,
} from "@threadline/node";
import {
  loadAmqplib,
  loadCallbackApi,
  loadDefs,
} from "./fixtures/amqplib-under-test.ts";

// Before Threadline starts.
const amqp = loadAmqplib();
const amqpCallbackApi = loadCallbackApi();

let receiver: OtlpReceiver;
let threadline: ThreadlineHandle;
let connection: ChannelModel;
let brokerUrl: string;
let early: ChannelModel;
let earlyChannel: Channel;
let healthPort: number;

before(async () => {
  receiver = await startOtlpReceiver();
  brokerUrl = await testBroker();
  early = await amqp.connect(brokerUrl);
  earlyChannel = await early.createChannel();
  healthPort = await freePort();
  threadline = init({
    serviceName: "amqp-late-test",
    endpoint: receiver.url,
    exportLogs: false,
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
    health: { port: healthPort },
  });
  connection = await amqp.connect(brokerUrl);
});

after(async () => {
  await early.close();
  await connection.close();
  await threadline.shutdown();
  await receiver.close();
  await stopTestServers();
});

it("carries trace context, baggage and the application's headers", async () => {
  const defs = loadDefs();
  assert.notEqual(defs.encodeProperties.name, "threadlineEncodeProperties");
  const ch = await connection.createChannel();
  const q = `q-late-${process.pid}`;
  await ch.assertQueue(q, { autoDelete: true });
  const received = new Promise<Record<string, unknown>>((resolve) => {
    void ch.consume(q, (msg) => {
      if (msg === null) return;
      resolve({ ...msg.properties.headers });
      ch.ack(msg);
    });
  });
  const headers = { app: "x" };
  let traceId = "";
  withCustomer("c-late", () =>
    trace.getTracer("t").startActiveSpan("request", (root) => {
      traceId = root.spanContext().traceId;
      ch.sendToQueue(q, Buffer.from("{}"), { headers });
      root.end();
    }),
  );
  const got = await received;
  assert.deepEqual(headers, { app: "x" });
  assert.equal(got["app"], "x");
  assert.match(String(got["traceparent"]), new RegExp(`^00-${traceId}-`));
  assert.match(String(got["baggage"]), /customer\.id=c-late/);
  assert.equal(typeof got["threadline-sent-at"], "number");
  const consumer = await waitFor(
    () => receiver.spans.find((s) => s.name === `process ${q}`),
    { what: "the consumer span" },
  );
  // The URL it connected with was not seen: the broker is named by the
  // connection's peer address.
  const broker = new URL(brokerUrl);
  const producer = receiver.spans.find(
    (s) => s.spanId === consumer.parentSpanId,
  );
  for (const span of [producer, consumer])
    assert.deepEqual(
      [span?.attributes["server.address"], span?.attributes["server.port"]],
      [broker.hostname, Number(broker.port)],
    );
  await ch.close();
});

it("sends a message whose headers table would overflow without trace headers, not a broken frame", async () => {
  const ch = await connection.createConfirmChannel();
  const q = `q-late-full-${process.pid}`;
  await ch.assertQueue(q, { autoDelete: true });
  // amqplib encodes a table in 64 KiB: this one fits, with trace headers
  // it would not.
  const big = "z".repeat(65_400);
  await new Promise<void>((resolve, reject) =>
    withCustomer("c-late", () =>
      trace.getTracer("t").startActiveSpan("request", (root) => {
        ch.sendToQueue(q, Buffer.from("{}"), { headers: { big } }, (err) =>
          err ? reject(err) : resolve(),
        );
        root.end();
      }),
    ),
  );
  const got = await ch.get(q, { noAck: true });
  assert.ok(got !== false, "the message arrived");
  const headers = got.properties.headers as Record<string, unknown>;
  assert.equal(headers["big"], big);
  assert.equal(headers["traceparent"], undefined);
  await ch.close();
});

it("answers a callback API channel's operations in their caller's context", async () => {
  const conn = await new Promise<amqpCallback.Connection>((resolve, reject) =>
    amqpCallbackApi.connect(
      brokerUrl,
      (err: unknown, c: amqpCallback.Connection) =>
        err ? reject(err) : resolve(c),
    ),
  );
  let closed = false;
  try {
    const seen: Array<[string, string | undefined]> = [];
    const ch = await withCustomer(
      "c-create",
      () =>
        new Promise<amqpCallback.Channel>((resolve, reject) =>
          conn.createChannel((err: unknown, c: amqpCallback.Channel) => {
            seen.push(["createChannel", getCustomerId()]);
            return err ? reject(err) : resolve(c);
          }),
        ),
    );
    const q = `q-late-cb-${process.pid}`;
    await withCustomer(
      "c-assert",
      () =>
        new Promise<void>((resolve, reject) =>
          ch.assertQueue(q, { autoDelete: true }, (err: unknown) => {
            seen.push(["assertQueue", getCustomerId()]);
            return err ? reject(err) : resolve();
          }),
        ),
    );
    await withCustomer(
      "c-close",
      () =>
        new Promise<void>((resolve) =>
          ch.close(() => {
            seen.push(["close", getCustomerId()]);
            resolve();
          }),
        ),
    );
    await withCustomer(
      "c-bye",
      () =>
        new Promise<void>((resolve) =>
          conn.close(() => {
            closed = true;
            seen.push(["connection close", getCustomerId()]);
            resolve();
          }),
        ),
    );
    assert.deepEqual(seen, [
      ["createChannel", "c-create"],
      ["assertQueue", "c-assert"],
      ["close", "c-close"],
      ["connection close", "c-bye"],
    ]);
  } finally {
    if (!closed)
      await new Promise<void>((resolve) => conn.close(() => resolve()));
  }
});

it("checks the connection of a channel opened before the start from its first get()", async () => {
  const rabbitmq = async () => {
    const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    const report = (await res.json()) as {
      components: Array<{ name: string; status: string }>;
    };
    return report.components
      .filter((c) => c.name.startsWith("rabbitmq "))
      .map((c) => c.status);
  };
  const q = `q-late-get-${process.pid}`;
  await earlyChannel.assertQueue(q, { autoDelete: true });
  const before = await rabbitmq();
  assert.equal(await earlyChannel.get(q), false);
  assert.deepEqual(await rabbitmq(), [...before, "healthy"]);
});
