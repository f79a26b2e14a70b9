// A consume handler, or a get() callback, that fails: the delivery's span
// records the failure, also when the handler settled its message first; an
// async function's rejection (bound with bind() or not) stays unhandled for the application,
// as it would be without Threadline, and a promise the application handles
// itself stays handled.
// In child processes, since an unhandled rejection ends one (and a
// handler's throw its connection).
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  stopTestServers,
  testBroker,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";
import { amqplibPath } from "./fixtures/amqplib-under-test.ts";

let receiver: OtlpReceiver;
let brokerUrl: string;

before(async () => {
  receiver = await startOtlpReceiver();
  brokerUrl = await testBroker();
});

after(async () => {
  await receiver.close();
  await stopTestServers();
});

/** Starts consumer fixture `entry` (named after it) on `queue`, exporting to the receiver. */
function startConsumer(entry: string, queue: string) {
  return startService({
    entry,
    cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
    execArgv: ["-r", "@threadline/node/register"],
    ready: false,
    env: {
      OTEL_SERVICE_NAME: entry.replace(/\.cjs$/, ""),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      AMQP_URL: brokerUrl,
      AMQPLIB_PATH: amqplibPath,
      QUEUE: queue,
    },
  });
}

/**
 * The span of `queue`'s delivery (`receive` for a get()), once exported,
 * after checking it failed with `message`, and with `errorType` (the
 * exception's, unless a later settlement failed it again).
 */
async function failedDelivery(
  queue: string,
  message: string,
  errorType = "Error",
  operation = "process",
) {
  const delivery = await waitFor(
    () => receiver.spans.find((s) => s.name === `${operation} ${queue}`),
    { what: "the delivery's span" },
  );
  assert.equal(delivery.status.code, 2);
  assert.equal(delivery.attributes["error.type"], errorType);
  assert.deepEqual(
    delivery.events.map((e) => e.attributes["exception.message"]),
    [message],
  );
  return delivery;
}

it("records an async handler's rejection on the delivery, and passes it on", async () => {
  const queue = `q-async-${process.pid}`;
  const app = await startConsumer("async-consumer.cjs", queue);
  try {
    // Nacked without requeue after the rejection: failed again, as a nack.
    const delivery = await failedDelivery(
      queue,
      "async handler failed",
      "nack",
    );
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "nack");
    await waitFor(
      () => app.stdout.includes("unhandled: async handler failed"),
      { what: "the application's own report of the rejection" },
    );
  } finally {
    await app.stop();
  }
});

it("never makes an unhandled rejection of a handler's promise the application handles", async () => {
  const queue = `q-handled-${process.pid}`;
  const app = await startConsumer("handled-rejection-consumer.cjs", queue);
  try {
    await waitFor(
      () => {
        if (app.child.exitCode !== null)
          throw new Error(`the consumer exited:\n${app.stderr.join("\n")}`);
        return app.stdout.includes("still running after the rejection");
      },
      { what: "the consumer to outlive its handled rejection" },
    );
    assert.deepEqual(app.stdout, [
      "handled: handled failure",
      "still running after the rejection",
    ]);
    const delivery = await failedDelivery(queue, "handled failure");
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "auto");
  } finally {
    await app.stop();
  }
});

it("exports a throwing handler's delivery span when the exception ends the process", async () => {
  const queue = `q-throw-${process.pid}`;
  const app = await startConsumer("throw-consumer.cjs", queue);
  try {
    const { code } = await app.exited;
    assert.equal(code, 1, "the unhandled error ends the process");
    const delivery = await failedDelivery(queue, "handler failed");
    assert.equal(
      delivery.attributes["messaging.rabbitmq.settlement"],
      undefined,
      "it was not settled",
    );
  } finally {
    await app.stop();
  }
});

it("records a handler's exception thrown after it acknowledged the message", async () => {
  const queue = `q-ack-throw-${process.pid}`;
  const app = await startConsumer("ack-then-throw-consumer.cjs", queue);
  try {
    const delivery = await failedDelivery(queue, "failed after ack");
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "ack");
    await waitFor(
      () => app.stdout.includes("connection error: failed after ack"),
      { what: "amqplib's report of the exception to the application" },
    );
  } finally {
    await app.stop();
  }
});

it("records an async handler's rejection after it acknowledged the message, and passes it on", async () => {
  const queue = `q-ack-reject-${process.pid}`;
  const app = await startConsumer("ack-then-reject-consumer.cjs", queue);
  try {
    const delivery = await failedDelivery(queue, "failed after ack");
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "ack");
    await waitFor(() => app.stdout.includes("unhandled: failed after ack"), {
      what: "the application's own report of the rejection",
    });
  } finally {
    await app.stop();
  }
});

it("passes on the rejection of a bound async method, as class-based consumers pass them", async () => {
  const queue = `q-bound-${process.pid}`;
  const app = await startConsumer("bound-async-consumer.cjs", queue);
  try {
    const delivery = await failedDelivery(queue, "bound async handler failed");
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "ack");
    await waitFor(
      () => app.stdout.includes("unhandled: bound async handler failed"),
      { what: "the application's own report of the rejection" },
    );
  } finally {
    await app.stop();
  }
});

it("records a get() callback's exception on the fetched message, as a consume() callback's", async () => {
  const queue = `q-get-throw-${process.pid}`;
  const app = await startConsumer("get-throw-consumer.cjs", queue);
  try {
    const { code } = await app.exited;
    assert.equal(code, 1, "the unhandled error ends the process");
    const delivery = await failedDelivery(
      queue,
      "get handler failed",
      "Error",
      "receive",
    );
    assert.equal(
      delivery.attributes["messaging.rabbitmq.settlement"],
      undefined,
      "it was not settled",
    );
  } finally {
    await app.stop();
  }
});

it("records an async get() callback's rejection after it acknowledged the message, and passes it on", async () => {
  const queue = `q-get-reject-${process.pid}`;
  const app = await startConsumer("get-reject-consumer.cjs", queue);
  try {
    const delivery = await failedDelivery(
      queue,
      "async get handler failed",
      "Error",
      "receive",
    );
    assert.equal(delivery.attributes["messaging.rabbitmq.settlement"], "ack");
    await waitFor(
      () => app.stdout.includes("unhandled: async get handler failed"),
      { what: "the application's own report of the rejection" },
    );
  } finally {
    await app.stop();
  }
});
