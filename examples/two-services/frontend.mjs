// The edge service (ESM). Started with:
//   node --import @threadline/node/register frontend.mjs
// It takes the customer id from the x-customer-id header (THREADLINE_EDGE=true
// makes it ignore any baggage a public caller sends), and calls the backend
// once with fetch() and once with http.request().
import http from "node:http";
import pino from "pino";
import { getCustomerId, setHttpRoute } from "@threadline/node";

const log = pino({ name: "frontend" });
const backend = process.env.BACKEND_URL ?? "http://127.0.0.1:3002";

function postJson(url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", headers: { "content-type": "application/json" } },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (data += c));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            body: data ? JSON.parse(data) : undefined,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  try {
    if (req.method === "GET" && url.pathname === "/checkout") {
      setHttpRoute("/checkout");
      const item = url.searchParams.get("item") ?? "book";
      log.info({ item }, "checkout started");
      const price = await fetch(
        `${backend}/price?item=${encodeURIComponent(item)}`,
      ).then((r) => r.json());
      const reservation = await postJson(`${backend}/reserve`, { item });
      log.info({ item, amount: price.amount }, "checkout done");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          customer: getCustomerId() ?? null,
          price,
          reservation: reservation.body,
        }),
      );
      return;
    }
    res.writeHead(404).end();
  } catch (err) {
    log.error({ err }, "checkout failed");
    res
      .writeHead(502, { "content-type": "application/json" })
      .end(JSON.stringify({ error: err.message }));
  }
});

server.listen(Number(process.env.PORT ?? 3001), "127.0.0.1", () => {
  console.log(`frontend listening on ${server.address().port}`);
});
