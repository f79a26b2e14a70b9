// The hello-world handler: the cost of tracing an HTTP request on its own.
const http = require("node:http");

const body = JSON.stringify({ hello: "world" });
const server = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
// A normal exit on Ctrl-C/SIGINT, so agents flush and --cpu-prof writes its profile.
process.on("SIGINT", () => process.exit(0));
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () =>
  console.log(`listening on ${server.address().port}`),
);
