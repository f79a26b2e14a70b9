// The shop's public API. It knows nothing of Threadline: it is started with
//   THREADLINE_EDGE=true node --import @threadline/node/register gateway.mjs
// and the customer id comes from the x-customer-id header its clients send
// (a stand-in for real authentication).
import express from "express";
import pino from "pino";

const log = pino({ name: "gateway" });
const orders = process.env.ORDERS_URL ?? "http://127.0.0.1:3101";
const app = express();
app.use(express.json());

app.post("/orders", async (req, res) => {
  const { item, quantity = 1 } = req.body ?? {};
  if (typeof item !== "string")
    return res.status(400).json({ error: "item is required" });
  log.info({ item, quantity }, "order requested");
  log.debug({ item, quantity, orders }, "forwarding the order to orders");
  const upstream = await fetch(`${orders}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ item, quantity }),
  });
  const body = await upstream.json();
  log.info({ orderId: body.id, status: upstream.status }, "order answered");
  res.status(upstream.status).json(body);
});

app.get("/orders/:id", async (req, res) => {
  const upstream = await fetch(
    `${orders}/orders/${encodeURIComponent(req.params.id)}`,
  );
  res.status(upstream.status).json(await upstream.json());
});

const server = app.listen(
  Number(process.env.PORT ?? 3100),
  process.env.HOST ?? "127.0.0.1",
  () => {
    console.log(`gateway listening on ${server.address().port}`);
  },
);
