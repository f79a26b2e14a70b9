// `npm run demo`: starts the local viewer (`threadline dev`) and the example
// shop (gateway, orders, worker, a stand-in payments provider) with
// Threadline, sends orders for several customers, and shows how to find
// customer c-42's requests: in the viewer, and with `threadline search`
// and `threadline trace`. It keeps running so you can explore; Ctrl-C
// stops everything (`--once` stops after printing).
//
// PostgreSQL: DATABASE_URL if set, otherwise an embedded PGlite served over
// the wire protocol. RabbitMQ: AMQP_URL if set, otherwise a throw-away
// broker from the system's rabbitmq-server. The viewer keeps its store in
// THREADLINE_DB or the default file, so `npx threadline search` works after
// the demo too. --port / --otlp-port move the viewer off 4320 / 4318.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import {
  defaultDbPath,
  formatSearch,
  formatTrace,
  startDevServer,
} from "@threadline/cli";
import {
  startPglite,
  startRabbitMQ,
  startShop,
} from "@threadline/test-support";

const { values } = parseArgs({
  options: {
    once: { type: "boolean" },
    port: { type: "string" },
    "otlp-port": { type: "string" },
  },
});
const cleanup = [];
async function stopAll() {
  for (const stop of cleanup.splice(0).reverse()) await stop().catch(() => {});
}
process.on("SIGINT", () => void stopAll().then(() => process.exit(0)));
process.on("SIGTERM", () => void stopAll().then(() => process.exit(0)));

async function database() {
  if (process.env.DATABASE_URL)
    return { url: process.env.DATABASE_URL, note: "DATABASE_URL" };
  const pg = await startPglite();
  cleanup.push(pg.stop);
  return {
    url: pg.url,
    note: "embedded PGlite (set DATABASE_URL to use your own PostgreSQL)",
  };
}

async function broker() {
  if (process.env.AMQP_URL)
    return { url: process.env.AMQP_URL, note: "AMQP_URL" };
  try {
    const rabbit = await startRabbitMQ();
    cleanup.push(rabbit.stop);
    return {
      url: rabbit.url,
      note: "a local RabbitMQ started for the demo (set AMQP_URL to use your own)",
    };
  } catch (err) {
    console.error(
      `The demo needs RabbitMQ for the orders -> worker hop, and could not start one: ${err.message}\n` +
        "Either install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server) and run the demo again,\n" +
        "or point AMQP_URL at a running broker, e.g. AMQP_URL=amqp://guest:guest@127.0.0.1:5672 npm run demo",
    );
    await stopAll();
    process.exit(1);
  }
}

try {
  const dbPath = defaultDbPath();
  mkdirSync(dirname(dbPath), { recursive: true });
  const dev = await startDevServer({
    dbPath,
    otlpPort: Number(values["otlp-port"] ?? 4318),
    viewerPort: Number(values.port ?? 4320),
  });
  cleanup.push(() => dev.close());
  const [db, mq] = await Promise.all([database(), broker()]);
  console.log(
    `viewer:     ${dev.viewerUrl}  (OTLP receiver ${dev.otlpUrl}, store ${dbPath})`,
  );
  console.log(`PostgreSQL: ${db.note}\nRabbitMQ:   ${mq.note}\n`);

  const shop = await startShop({
    otlpEndpoint: dev.otlpUrl,
    databaseUrl: db.url,
    amqpUrl: mq.url,
    exchange: "shop",
    env: { OTEL_BSP_SCHEDULE_DELAY: "200", OTEL_BLRP_SCHEDULE_DELAY: "200" },
  });
  cleanup.push(() => shop.stop());
  console.log(
    `shop: gateway ${shop.gateway.url}, orders ${shop.orders.url}, worker (RabbitMQ consumer), payments provider (third party) ${shop.payments.url}\n`,
  );

  const orders = [
    ["c-7", "book"],
    ["c-42", "lamp"],
    ["c-13", "pen"],
    ["c-42", "pen"],
    ["c-7", "lamp"],
    ["c-42", "teapot"],
    ["c-13", "book"],
  ];
  for (const [customer, item] of orders) {
    const res = await fetch(`${shop.gateway.url}/orders`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-customer-id": customer,
      },
      body: JSON.stringify({ item, quantity: 2 }),
    });
    console.log(`POST /orders as ${customer} (${item}): ${res.status}`);
  }
  const planted = await fetch(`${shop.gateway.url}/orders`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      baggage: "customer.id=evil",
    },
    body: JSON.stringify({ item: "pen", quantity: 1 }),
  });
  console.log(
    `POST /orders with a planted "baggage: customer.id=evil": ${planted.status} (the gateway is an edge: it ignores that baggage)\n`,
  );

  // Wait until all three of c-42's orders are in the store, the two paid
  // ones complete, so the listing below is whole: 9 spans and 5 log lines
  // each. Spans and log lines are exported apart, so one can land first.
  const paidWhole = (t) =>
    t.spanCount >= 9 &&
    (dev.store.getTraceSync(t.traceId)?.logs.length ?? 0) >= 5;
  const deadline = Date.now() + 30_000;
  let c42 = [];
  while (Date.now() < deadline) {
    dev.store.flush();
    c42 = dev.store.searchSync({
      customer: "c-42",
      fromUs: (Date.now() - 600_000) * 1000,
    });
    if (c42.length >= 3 && c42.filter(paidWhole).length >= 2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log("$ npx threadline search --customer c-42 --since 10m");
  console.log(formatSearch(c42));
  const paid = c42.find(paidWhole) ?? c42[0];
  if (paid) {
    console.log(`$ npx threadline trace ${paid.traceId}`);
    console.log(formatTrace(dev.store.getTraceSync(paid.traceId)));
  }
  const evil = dev.store.searchSync({ customer: "evil" }).length;
  console.log(`traces for the planted customer id "evil": ${evil}`);
  const received = await shop.paymentsReceived();
  console.log(
    `the payments provider got ${received.length} calls: ${received.filter((r) => r.headers.traceparent).length} with traceparent, ${received.filter((r) => r.headers.baggage).length} with baggage\n`,
  );
  console.log(
    `Find customer c-42 in the viewer: ${dev.viewerUrl}/?customer=c-42`,
  );
  console.log(`or on the command line: npx threadline search --customer c-42`);
  console.log(
    `Each service's request rates, runtime, health and alarms (after its first metric exports, every 15 s): ${dev.viewerUrl}/services`,
  );
  if (values.once) {
    await stopAll();
  } else {
    console.log(
      "\nThe shop and the viewer keep running; send more orders or press Ctrl-C to stop.",
    );
  }
} catch (err) {
  console.error(`demo failed: ${err.message}`);
  await stopAll();
  process.exit(1);
}
