// Drains the benchmark queue so RabbitMQ never backs up; the same for every contender.
const amqp = require("amqplib");

(async () => {
  const connection = await amqp.connect(process.env.AMQP_URL);
  const channel = await connection.createChannel();
  const queue = process.env.BENCH_QUEUE ?? "bench";
  await channel.assertQueue(queue, { durable: false });
  let consumed = 0;
  await channel.consume(queue, () => consumed++, { noAck: true });
  console.log("listening on 0 (consuming)");
  process.on("SIGTERM", () => {
    console.log(`consumed ${consumed}`);
    process.exit(0);
  });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
