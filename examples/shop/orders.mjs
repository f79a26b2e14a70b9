// Orders: stores orders in PostgreSQL and announces them on RabbitMQ.
// Started with: node --import @threadline/node/register orders.mjs
import amqp from "amqplib";
import express from "express";
import pg from "pg";
import pino from "pino";

const log = pino({ name: "orders" });
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.PG_POOL_SIZE ?? 4),
});

await pool.query(
  `CREATE TABLE IF NOT EXISTS products (sku text PRIMARY KEY, price_cents integer NOT NULL)`,
);
await pool.query(`CREATE TABLE IF NOT EXISTS orders (
  id serial PRIMARY KEY, sku text NOT NULL, quantity integer NOT NULL,
  amount_cents integer NOT NULL, status text NOT NULL DEFAULT 'pending', created_at timestamptz NOT NULL DEFAULT now())`);
await pool.query(
  `INSERT INTO products (sku, price_cents) VALUES ('book', 1200), ('pen', 150), ('lamp', 4500) ON CONFLICT DO NOTHING`,
);

const exchange = process.env.SHOP_EXCHANGE ?? "shop";
const connection = await amqp.connect(
  process.env.AMQP_URL ?? "amqp://127.0.0.1",
);
const channel = await connection.createConfirmChannel();
await channel.assertExchange(exchange, "topic", { durable: false });

const app = express();
app.use(express.json());

app.post("/orders", async (req, res) => {
  const { item, quantity } = req.body;
  const product = await pool.query(
    "SELECT price_cents FROM products WHERE sku = $1",
    [item],
  );
  if (product.rowCount === 0) {
    log.warn({ item }, "unknown product");
    return res.status(404).json({ error: `no product ${item}` });
  }
  const amount = product.rows[0].price_cents * quantity;
  log.debug(
    { item, priceCents: product.rows[0].price_cents, quantity },
    "priced the order",
  );
  const inserted = await pool.query(
    "INSERT INTO orders (sku, quantity, amount_cents) VALUES ($1, $2, $3) RETURNING id",
    [item, quantity, amount],
  );
  const id = inserted.rows[0].id;
  await new Promise((resolve, reject) =>
    channel.publish(
      exchange,
      "order.created",
      Buffer.from(JSON.stringify({ id, item, quantity, amount })),
      { messageId: `order-${id}`, contentType: "application/json" },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  log.info({ orderId: id, amount }, "order stored and announced");
  res.status(201).json({ id, status: "pending", amount });
});

app.get("/orders/:id", async (req, res) => {
  const r = await pool.query(
    "SELECT id, sku, quantity, amount_cents, status FROM orders WHERE id = $1",
    [Number(req.params.id)],
  );
  if (r.rowCount === 0) return res.status(404).json({ error: "not found" });
  res.json(r.rows[0]);
});

const server = app.listen(
  Number(process.env.PORT ?? 3101),
  process.env.HOST ?? "127.0.0.1",
  () => {
    console.log(`orders listening on ${server.address().port}`);
  },
);
