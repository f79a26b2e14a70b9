// An internal service (CommonJS). Started with:
//   node -r @threadline/node/register backend.cjs
// It trusts baggage from callers on private addresses, so the customer id
// arrives with each request, and it calls a third-party payments API that is
// declared in THREADLINE_THIRD_PARTIES, so that API gets trace context but
// never baggage.
const http = require("node:http");
const pino = require("pino");
const { setHttpRoute } = require("@threadline/node");

const log = pino({ name: "backend" });
const payments = process.env.PAYMENTS_URL ?? "http://127.0.0.1:3009";

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "GET" && url.pathname === "/price") {
    setHttpRoute("/price");
    log.info({ item: url.searchParams.get("item") }, "price looked up");
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ amount: 1200, currency: "EUR" }));
    return;
  }
  if (req.method === "POST" && url.pathname === "/reserve") {
    setHttpRoute("/reserve");
    let body = "";
    req.setEncoding("utf8");
    for await (const chunk of req) body += chunk;
    const { item } = JSON.parse(body || "{}");
    const charge = await fetch(`${payments}/v1/charges`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ item, amount: 1200 }),
    });
    log.info({ item, paymentStatus: charge.status }, "item reserved and paid");
    res
      .writeHead(201, { "content-type": "application/json" })
      .end(JSON.stringify({ reserved: item, paid: charge.ok }));
    return;
  }
  res.writeHead(404).end();
});

server.listen(Number(process.env.PORT ?? 3002), "127.0.0.1", () => {
  console.log(`backend listening on ${server.address().port}`);
});
