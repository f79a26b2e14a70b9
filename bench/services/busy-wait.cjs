// Not an agent: a yardstick. Preloaded into a bench service with no agent,
// it makes the application's thread busy-wait BUSY_WAIT_US microseconds at
// the start of every request and changes nothing else, so the run shows
// what that much of the thread's time per request costs in throughput on
// this machine, under the same load as the agents.
const http = require("node:http");

const waitNs = BigInt(Math.round(Number(process.env.BUSY_WAIT_US ?? 0) * 1000));
const createServer = http.createServer;
http.createServer = function (...args) {
  const at = args.findIndex((a) => typeof a === "function");
  if (at !== -1) {
    const listener = args[at];
    args[at] = function (req, res) {
      const until = process.hrtime.bigint() + waitNs;
      while (process.hrtime.bigint() < until);
      return listener.call(this, req, res);
    };
  }
  return createServer.apply(this, args);
};
