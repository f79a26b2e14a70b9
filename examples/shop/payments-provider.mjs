// A stand-in for a third-party payments API: a plain HTTP server, not
// instrumented, recording the headers it received (GET /_received) and
// answering with rate-limit headers the way real providers do. Charges
// above 1000.00 are declined (402), as a card limit would; charges above
// 500.00 are reviewed for a second first, as fraud checks are.
import http from "node:http";

const received = [];
const limit = 1000;
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/_received") {
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify(received));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    received.push({ method: req.method, path: req.url, headers: req.headers });
    let amount = 0;
    try {
      amount = JSON.parse(Buffer.concat(chunks).toString()).amount ?? 0;
    } catch {
      // not JSON: charged as zero
    }
    const declined = amount > 100_000;
    const reviewMs = amount > 50_000 && !declined ? 1000 : 0;
    setTimeout(answer, reviewMs, declined);
  });
  const answer = (declined) => {
    res.writeHead(declined ? 402 : 200, {
      "content-type": "application/json",
      "x-ratelimit-limit": String(limit),
      "x-ratelimit-remaining": String(Math.max(0, limit - received.length)),
      "x-ratelimit-reset": "60",
    });
    res.end(
      JSON.stringify(
        declined
          ? { error: "card_declined" }
          : { id: `ch_${received.length}`, status: "succeeded" },
      ),
    );
  };
});

server.listen(
  Number(process.env.PORT ?? 3109),
  process.env.HOST ?? "127.0.0.1",
  () => {
    console.log(`payments-provider listening on ${server.address().port}`);
  },
);
