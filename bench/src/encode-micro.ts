// Span encoding alone: the three spans of one realistic request (a pg
// query, an amqplib publish, the HTTP server span, with the attributes the
// instrumentations give them), appended to a TraceEncoder and taken in
// batches of 512, as the export pipeline does. Prints nanoseconds per
// request, a few times over: the first figures include warming up.
//
//   node bench/src/encode-micro.ts
import { randomBytes } from "node:crypto";
import {
  TraceEncoder,
  type ApiSpanKind,
  type SpanData,
} from "@threadline/otlp";

const REQUESTS = 300_000;
const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const scopes = new Map<string, { name: string; version: string }>();

function span(
  scope: string,
  name: string,
  kind: ApiSpanKind,
  attributes: SpanData["attributes"],
): SpanData {
  let s = scopes.get(scope);
  if (s === undefined)
    scopes.set(scope, (s = { name: scope, version: "0.1.0" }));
  return {
    scope: s,
    traceId: hex(16),
    spanId: hex(8),
    parentSpanId: hex(8),
    parentIsRemote: false,
    traceState: undefined,
    traceFlags: 1,
    name,
    kind,
    startTime: 1_796_314_552_627.218,
    endTime: 1_796_314_552_628.218,
    attributes,
    droppedAttributesCount: 0,
    events: undefined,
    droppedEventsCount: 0,
    links: undefined,
    droppedLinksCount: 0,
    statusCode: 0,
    statusMessage: undefined,
  };
}

/** Request `i`'s spans: ten client connections, a wait for the pool that varies, a body size that now and then does. */
function request(i: number): SpanData[] {
  return [
    span("@threadline/instrumentation-pg", "SELECT products", 2, {
      "db.system.name": "postgresql",
      "db.namespace": "postgres",
      "server.address": "127.0.0.1",
      "server.port": 28667,
      "db.operation.name": "SELECT",
      "db.collection.name": "products",
      "db.query.text":
        "SELECT id, name, price_cents FROM products WHERE id = $1",
      "db.client.connection.wait_time_ms": (i % 97) / 31,
    }),
    span("@threadline/instrumentation-amqplib", "publish amq.default", 3, {
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": "amq.default",
      "messaging.rabbitmq.destination.routing_key": "bench",
      "messaging.message.body.size": i % 50 === 0 ? 44 : 43,
    }),
    span("@threadline/instrumentation-http", "GET", 1, {
      "http.request.method": "GET",
      "url.path": "/",
      "url.scheme": "http",
      "server.address": "127.0.0.1",
      "server.port": 37423,
      "network.peer.address": "127.0.0.1",
      "network.peer.port": 41500 + ((i * 7) % 10),
      "client.address": "127.0.0.1",
      "network.protocol.version": "1.1",
      "user_agent.original": "node",
      "http.response.status_code": 200,
    }),
  ];
}

const encoder = new TraceEncoder({ "service.name": "bench" });
const requests = Array.from({ length: 3000 }, (_, i) => request(i));
for (let round = 0; round < 7; round++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    for (const s of requests[i % requests.length]!) encoder.append(s);
    if (encoder.pending >= 512) encoder.take();
  }
  const ns = Number(process.hrtime.bigint() - t0) / REQUESTS;
  console.log(`${Math.round(ns)} ns per request`);
}
