// A stand-in for a third-party payments API: a plain HTTP server, not
// instrumented, that records the headers it received so one can check what
// left the system. GET /_received lists them.
import http from "node:http";

const received = [];
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
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(
        JSON.stringify({ id: `ch_${received.length}`, status: "succeeded" }),
      );
  });
});

server.listen(Number(process.env.PORT ?? 3009), "127.0.0.1", () => {
  console.log(`payments-provider listening on ${server.address().port}`);
});
