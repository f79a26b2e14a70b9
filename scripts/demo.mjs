// `npm run demo`: brings up the example shop (gateway, orders, worker and a
// stand-in payments provider) with Threadline, sends orders for a few
// customers, and shows what Threadline recorded for customer c-42: each
// order as one trace across services, with its SQL, its queue hop, its
// third-party call and its log lines.
//
// PostgreSQL: DATABASE_URL if set, otherwise an embedded PGlite served over
// the wire protocol. RabbitMQ: AMQP_URL if set, otherwise a throw-away
// broker from the system's rabbitmq-server.
import {
  startOtlpReceiver,
  startPglite,
  startRabbitMQ,
  startShop,
} from "@threadline/test-support";

const cleanup = [];
async function stopAll() {
  for (const stop of cleanup.splice(0).reverse()) await stop().catch(() => {});
}
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

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
    process.exit(1);
  }
}

const kind = ["", "internal", "server", "client", "producer", "consumer"];
const ms = (ns) => (Number(ns) / 1e6).toFixed(1);

function describeSpan(s) {
  const a = s.attributes;
  if (a["db.query.text"]) return `SQL: ${a["db.query.text"]}`;
  if (a["peer.service"])
    return `third party "${a["peer.service"]}": ${a["http.request.method"]} ${a["url.full"]} -> ${a["http.response.status_code"]}`;
  if (a["messaging.system"])
    return `${s.name} (routing key ${a["messaging.rabbitmq.destination.routing_key"]}${a["messaging.rabbitmq.settlement"] ? `, ${a["messaging.rabbitmq.settlement"]}` : ""})`;
  if (s.kind === 3)
    return `${s.name} ${a["url.full"]} -> ${a["http.response.status_code"]}`;
  return s.name;
}

function printTrace(receiver, traceId) {
  const spans = receiver.spans.filter((s) => s.traceId === traceId);
  const t0 = spans.reduce(
    (m, s) => (s.startTimeUnixNano < m ? s.startTimeUnixNano : m),
    spans[0].startTimeUnixNano,
  );
  const children = (id) =>
    spans
      .filter((s) => s.parentSpanId === id)
      .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));
  const print = (span, depth) => {
    console.log(
      `${"  ".repeat(depth)}${String(span.resource["service.name"]).padEnd(8)} ${kind[span.kind].padEnd(8)} ${describeSpan(span)}  [+${ms(span.startTimeUnixNano - t0)} ms, ${ms(span.endTimeUnixNano - span.startTimeUnixNano)} ms]`,
    );
    for (const c of children(span.spanId)) print(c, depth + 1);
  };
  for (const root of spans.filter(
    (s) => !spans.some((p) => p.spanId === s.parentSpanId),
  ))
    print(root, 1);
  const logs = receiver.logs
    .filter((l) => l.traceId === traceId)
    .sort((a, b) => (a.timeUnixNano < b.timeUnixNano ? -1 : 1));
  console.log("  log lines:");
  for (const l of logs)
    console.log(
      `    ${String(l.resource["service.name"]).padEnd(8)} ${l.severityText.padEnd(5)} ${l.body}  (customer ${l.attributes["customer.id"]})`,
    );
}

try {
  const receiver = await startOtlpReceiver();
  cleanup.push(() => receiver.close());
  const [db, mq] = await Promise.all([database(), broker()]);
  console.log(`PostgreSQL: ${db.note}\nRabbitMQ:   ${mq.note}\n`);
  const shop = await startShop({
    otlpEndpoint: receiver.url,
    databaseUrl: db.url,
    amqpUrl: mq.url,
    exchange: "shop",
    env: { OTEL_BSP_SCHEDULE_DELAY: "200", OTEL_BLRP_SCHEDULE_DELAY: "200" },
  });
  cleanup.push(() => shop.stop());
  console.log(
    `gateway ${shop.gateway.url}  orders ${shop.orders.url}  worker (RabbitMQ consumer)  payments provider (third party) ${shop.payments.url}\n`,
  );

  const customers = ["c-7", "c-42", "c-13", "c-42", "c-7", "c-13"];
  const items = ["book", "lamp", "pen", "pen", "lamp", "book"];
  for (const [i, customer] of customers.entries()) {
    const res = await fetch(`${shop.gateway.url}/orders`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-customer-id": customer,
      },
      body: JSON.stringify({ item: items[i], quantity: 1 + (i % 3) }),
    });
    console.log(
      `POST /orders as ${customer}: ${res.status} ${await res.text()}`,
    );
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
    `POST /orders with a planted "baggage: customer.id=evil": ${planted.status}\n`,
  );

  const deadline = Date.now() + 20_000;
  while (
    Date.now() < deadline &&
    receiver.spans.filter((s) => s.name === "UPDATE orders").length < 7
  )
    await new Promise((r) => setTimeout(r, 100));

  const c42 = [
    ...new Set(
      receiver.spans
        .filter((s) => s.attributes["customer.id"] === "c-42")
        .map((s) => s.traceId),
    ),
  ];
  console.log(
    `customer c-42: ${c42.length} orders, each one trace across ${new Set(receiver.spans.filter((s) => c42.includes(s.traceId)).map((s) => s.resource["service.name"])).size} services\n`,
  );
  for (const traceId of c42) {
    console.log(`trace ${traceId}`);
    printTrace(receiver, traceId);
    console.log("");
  }
  const evil = JSON.stringify(receiver.spans, (_k, v) =>
    typeof v === "bigint" ? String(v) : v,
  ).includes("evil");
  const received = await shop.paymentsReceived();
  console.log(
    `The planted customer id "evil" appears in ${evil ? "SOME" : "no"} span.`,
  );
  console.log(
    `The payments provider received ${received.length} calls, ${received.filter((r) => r.headers.traceparent).length} with traceparent and ${received.filter((r) => r.headers.baggage).length} with baggage.`,
  );
  console.log(
    "\nTo find c-42's requests in your own system: every span and log line carries customer.id=c-42;",
  );
  console.log(
    "search for it in the backend your OTEL_EXPORTER_OTLP_ENDPOINT points at.",
  );
} finally {
  await stopAll();
}
