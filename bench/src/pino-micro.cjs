// pino lines per second, plain or with Threadline's correlation (started
// with -r @threadline/node/register), logging inside an active span. The
// loop yields every 500 lines so the export pipeline runs as it would in a
// service; the destination is /dev/null, so formatting is what is measured.
// CALL=debug measures calls to a disabled level instead (the logger is at
// info): what the watch list's gate costs every other request. CUSTOMER=id
// (with Threadline) logs inside a request of that customer, whose lines
// carry customer.id as well.
const pino = require("pino");
const { trace } = require("@opentelemetry/api");

const log = pino(
  pino.destination({ dest: "/dev/null", sync: process.env.SYNC !== "false" }),
);
// FAST=1 (plain pino) gives the logger fast properties the way Threadline
// gives pino's loggers them, making it a prototype: the like-for-like
// baseline for what correlation costs on its own.
if (process.env.FAST === "1") Object.create(log);
const LINES = process.env.CALL === "debug" ? 20_000_000 : 1_000_000;
const tick = () => new Promise((r) => setImmediate(r));

const DEBUG = process.env.CALL === "debug";

async function run(lines) {
  const t0 = performance.now();
  for (let i = 0; i < lines; i += 500) {
    if (DEBUG)
      for (let j = 0; j < 500; j++)
        log.debug({ order: i + j, customerTier: "gold" }, "order details");
    else
      for (let j = 0; j < 500; j++)
        log.info({ order: i + j, customerTier: "gold" }, "order placed");
    await tick();
  }
  return lines / ((performance.now() - t0) / 1000);
}

// WINDOW=1 also prints the measured loop's bounds on the monotonic clock
// (microseconds, the clock perf stamps its samples with), its line count and
// the process id, to cut a recording to the loop's thread and time.
const clockUs = () => Number(process.hrtime.bigint() / 1000n);
async function measured() {
  await run(LINES / 4);
  const from = clockUs();
  const rate = await run(LINES);
  if (process.env.WINDOW === "1")
    console.log(`window ${from} ${clockUs()} ${LINES} ${process.pid}`);
  return rate;
}

// TURNS=n: after the warm-up, prints "ready", then runs a turn of LINES/n
// lines for each line read from stdin, printing the lines and milliseconds
// it took, until stdin ends. The bench runs the loggers it compares side by
// side and gives them turns, so that both see the machine at the same speed.
async function turns(n) {
  await run(LINES / 4);
  console.log("ready");
  const lines = LINES / n;
  for await (const _ of require("node:readline").createInterface({
    input: process.stdin,
  })) {
    const rate = await run(lines);
    console.log(`${lines} ${(lines / rate) * 1000}`);
  }
}

const work = process.env.TURNS
  ? () => turns(Number(process.env.TURNS))
  : measured;

async function main() {
  const customer = process.env.CUSTOMER;
  const inRequest = customer
    ? () => require("@threadline/node").withCustomer(customer, work)
    : work;
  if (process.env.MODE === "span") {
    return trace.getTracer("bench").startActiveSpan("request", async (span) => {
      const rate = await inRequest();
      span.end();
      return rate;
    });
  }
  return inRequest();
}

main().then((rate) => {
  if (rate !== undefined) console.log(Math.round(rate));
});
