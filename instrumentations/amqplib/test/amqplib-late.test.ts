// An amqplib loaded before Threadline started (a late start, which start-up
// warns about): its encoder is not wrapped, and publishes still carry the
// trace headers, in a copy of the application's headers.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { ChannelModel } from "amqplib";
import { trace } from "@opentelemetry/api";
import {
  startOtlpReceiver,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";
import { init, withCustomer, type ThreadlineHandle } from "@threadline/node";
import { loadAmqplib, loadDefs } from "./fixtures/amqplib-under-test.ts";

// Before Threadline starts.
const amqp = loadAmqplib();

let receiver: OtlpReceiver;
let threadline: ThreadlineHandle;
let connection: ChannelModel;

before(async () => {
  receiver = await startOtlpReceiver();
  const url = await testBroker();
  threadline = init({
    serviceName: "amqp-late-test",
    endpoint: receiver.url,
    exportLogs: false,
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
  });
  connection = await amqp.connect(url);
});

after(async () => {
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
  await waitFor(() => receiver.spans.some((s) => s.name === `process ${q}`), {
    what: "the consumer span",
  });
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
