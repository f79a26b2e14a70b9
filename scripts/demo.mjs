// `npm run demo`: starts the example services with Threadline, sends
// requests for a few customers, and prints what Threadline recorded for
// customer c-42: one trace across services, with its log lines.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOtlpReceiver } from "@threadline/test-support";

const dir = fileURLToPath(
  new URL("../examples/two-services/", import.meta.url),
);
const children = [];

function start(entry, execArgv, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, entry], {
      cwd: dir,
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    let buffered = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const m = /listening on (\d+)/.exec(buffered);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    child.on("exit", (code) =>
      reject(new Error(`${entry} exited with ${code}`)),
    );
  });
}

function stopAll() {
  for (const c of children) c.kill("SIGTERM");
}
process.on("SIGINT", () => {
  stopAll();
  process.exit(130);
});

const receiver = await startOtlpReceiver();
const otel = {
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_BSP_SCHEDULE_DELAY: "200",
  OTEL_BLRP_SCHEDULE_DELAY: "200",
};
try {
  const payments = await start("payments-provider.mjs", [], {});
  const port = new URL(payments).port;
  const backend = await start(
    "backend.cjs",
    ["-r", "@threadline/node/register"],
    {
      ...otel,
      OTEL_SERVICE_NAME: "backend",
      PAYMENTS_URL: payments,
      THREADLINE_THIRD_PARTIES: `127.0.0.1:${port}=payments`,
    },
  );
  const frontend = await start(
    "frontend.mjs",
    ["--import", "@threadline/node/register"],
    {
      ...otel,
      OTEL_SERVICE_NAME: "frontend",
      THREADLINE_EDGE: "true",
      BACKEND_URL: backend,
    },
  );
  console.log(
    `frontend ${frontend}, backend ${backend}, payments provider (third party) ${payments}\n`,
  );

  for (const customer of ["c-7", "c-42", "c-13"]) {
    const res = await fetch(`${frontend}/checkout?item=book`, {
      headers: { "x-customer-id": customer },
    });
    console.log(`GET /checkout as ${customer}: ${res.status}`);
  }
  const planted = await fetch(`${frontend}/checkout?item=pen`, {
    headers: { baggage: "customer.id=evil" },
  });
  console.log(
    `GET /checkout with a planted baggage customer.id=evil: ${planted.status} (customer ${(await planted.json()).customer})\n`,
  );

  const deadline = Date.now() + 10_000;
  while (
    Date.now() < deadline &&
    (receiver.spans.length < 24 || receiver.logs.length < 16)
  )
    await new Promise((r) => setTimeout(r, 100));

  const c42 = receiver.spans.filter(
    (s) => s.attributes["customer.id"] === "c-42",
  );
  const traceId = c42[0]?.traceId;
  const spans = receiver.spans.filter((s) => s.traceId === traceId);
  const t0 = spans.reduce(
    (m, s) => (s.startTimeUnixNano < m ? s.startTimeUnixNano : m),
    spans[0].startTimeUnixNano,
  );
  const ms = (ns) => (Number(ns) / 1e6).toFixed(1);
  const children_ = (id) =>
    spans
      .filter((s) => s.parentSpanId === id)
      .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));
  const kind = ["", "internal", "server", "client", "producer", "consumer"];
  console.log(
    `customer c-42: trace ${traceId}, ${spans.length} spans in ${new Set(spans.map((s) => s.resource["service.name"])).size} services`,
  );
  const print = (span, depth) => {
    const peer = span.attributes["peer.service"]
      ? ` -> third party "${span.attributes["peer.service"]}"`
      : "";
    console.log(
      `${"  ".repeat(depth)}${span.resource["service.name"]}  ${kind[span.kind]} ${span.name}${peer}  +${ms(span.startTimeUnixNano - t0)} ms, ${ms(span.endTimeUnixNano - span.startTimeUnixNano)} ms`,
    );
    for (const c of children_(span.spanId)) print(c, depth + 1);
  };
  for (const root of spans.filter(
    (s) => !spans.some((p) => p.spanId === s.parentSpanId),
  ))
    print(root, 1);
  console.log("\nits log lines:");
  const logs = receiver.logs
    .filter((x) => x.traceId === traceId)
    .sort((a, b) => (a.timeUnixNano < b.timeUnixNano ? -1 : 1));
  for (const l of logs) {
    console.log(
      `  ${l.resource["service.name"]}  ${l.severityText}  ${l.body}  (span ${l.spanId}, customer ${l.attributes["customer.id"]})`,
    );
  }
  const evil = JSON.stringify(receiver.spans, (_k, v) =>
    typeof v === "bigint" ? String(v) : v,
  ).includes("evil");
  console.log(
    `\nthe planted customer id "evil" appears in ${evil ? "SOME" : "no"} span.`,
  );
  console.log(
    "The same telemetry goes to any OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT.",
  );
} finally {
  stopAll();
  await receiver.close();
}
