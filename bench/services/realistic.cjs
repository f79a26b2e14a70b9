// The realistic handler: one HTTP request reads a product from PostgreSQL,
// publishes an order message to RabbitMQ (consumed by another process),
// writes one pino log line and answers JSON. CommonJS, as most services in
// production still are, so every agent instruments it its usual way.
const http = require("node:http");
const amqp = require("amqplib");
const pg = require("pg");
const pino = require("pino");

const log = pino(pino.destination({ dest: "/dev/null", sync: false }));

async function main() {
  const pool = new pg.Pool({
    connectionString: process.env.DATABASE_URL,
    max: 10,
  });
  const connection = await amqp.connect(process.env.AMQP_URL);
  const channel = await connection.createChannel();
  const queue = process.env.BENCH_QUEUE ?? "bench";
  await channel.assertQueue(queue, { durable: false });
  let n = 0;
  const server = http.createServer(async (req, res) => {
    try {
      const id = (n++ % 1000) + 1;
      const { rows } = await pool.query(
        "SELECT id, name, price_cents FROM products WHERE id = $1",
        [id],
      );
      const order = {
        product: rows[0].id,
        price: rows[0].price_cents,
        at: Date.now(),
      };
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(order)));
      log.debug({ order }, "order details");
      log.info({ product: order.product }, "order placed");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(order));
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  server.keepAliveTimeout = 60_000;
  // A normal exit on SIGINT, so agents flush and --cpu-prof writes its profile.
  process.on("SIGINT", () => process.exit(0));
  server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () =>
    console.log(`listening on ${server.address().port}`),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
