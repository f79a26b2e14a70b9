// Accepts and discards whatever the agents send, answering each the way its
// own backend would (OTLP, the Datadog agent, the Elastic APM server), so
// network and backend cost are the same for everyone.
const http = require("node:http");

let requests = 0;
let bytes = 0;
const paths = {};
const server = http.createServer((req, res) => {
  req.on("data", (c) => (bytes += c.length));
  req.on("end", () => {
    requests++;
    const url = req.url ?? "";
    const path = url.split("?")[0];
    paths[path] = (paths[path] ?? 0) + 1;
    if (url.startsWith("/_stats")) {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ requests, bytes, paths }));
    } else if (url.startsWith("/v0.")) {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end('{"rate_by_service":{}}');
    } else if (url.startsWith("/intake/")) {
      res.writeHead(202).end();
    } else if (url.startsWith("/config/")) {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    } else if (url.startsWith("/threadline/")) {
      // No watch list here: the SDK stays quiet and does without.
      res.writeHead(404).end();
    } else if (url.startsWith("/v1/")) {
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    } else {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () =>
  console.log(`listening on ${server.address().port}`),
);
