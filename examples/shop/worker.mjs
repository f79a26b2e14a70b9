// Worker: takes new orders from RabbitMQ, charges them at the payments
// provider (a third party) and marks them paid in PostgreSQL.
// Started with: node --import @threadline/node/register worker.mjs
import amqp from "amqplib";
import pg from "pg";
import pino from "pino";

const log = pino({ name: "worker" });
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: 2,
});
const payments = process.env.PAYMENTS_URL ?? "http://127.0.0.1:3109";

const exchange = process.env.SHOP_EXCHANGE ?? "shop";
const connection = await amqp.connect(
  process.env.AMQP_URL ?? "amqp://127.0.0.1",
);
const channel = await connection.createChannel();
await channel.assertExchange(exchange, "topic", { durable: false });
const { queue } = await channel.assertQueue(`${exchange}.payments`, {
  durable: false,
  autoDelete: true,
});
await channel.bindQueue(queue, exchange, "order.created");
await channel.prefetch(10);

await channel.consume(queue, async (message) => {
  const order = JSON.parse(message.content.toString());
  log.info({ orderId: order.id }, "charging order");
  log.debug(
    {
      orderId: order.id,
      amount: order.amount,
      redelivered: message.fields.redelivered,
    },
    "calling the payments provider",
  );
  try {
    const charge = await fetch(`${payments}/v1/charges`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": `order-${order.id}`,
      },
      body: JSON.stringify({
        amount: order.amount,
        currency: "eur",
        reference: `order-${order.id}`,
      }),
    });
    if (!charge.ok)
      throw new Error(`payment provider answered ${charge.status}`);
    await pool.query("UPDATE orders SET status = 'paid' WHERE id = $1", [
      order.id,
    ]);
    log.info({ orderId: order.id }, "order paid");
    channel.ack(message);
  } catch (err) {
    log.error({ err, orderId: order.id }, "payment failed");
    channel.nack(message, false, false);
  }
});

console.log(`worker listening on 0 (consuming ${queue})`);
