// A stand-in for a third-party payments API: a plain HTTP server, not
// instrumented, recording the headers it received (GET /_received) and
// answering with rate-limit headers the way real providers do.
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
  req.resume();
  req.on("end", () => {
    received.push({ method: req.method, path: req.url, headers: req.headers });
    res.writeHead(200, {
      "content-type": "application/json",
      "x-ratelimit-limit": String(limit),
      "x-ratelimit-remaining": String(Math.max(0, limit - received.length)),
      "x-ratelimit-reset": "60",
    });
    res.end(
      JSON.stringify({ id: `ch_${received.length}`, status: "succeeded" }),
    );
  });
});

server.listen(Number(process.env.PORT ?? 3109), "127.0.0.1", () => {
  console.log(`payments-provider listening on ${server.address().port}`);
});
