// The core promise, end to end: a request to the edge service with
// x-customer-id: c-42 becomes ONE trace across two services and a call to a
// third party; every span and log line carries c-42; the third party gets
// traceparent but never baggage; a public caller cannot plant a customer id,
// nor can an untrusted caller of an internal service.
// The services run as child processes started the way the README says, and
// everything is asserted on what a real OTLP/HTTP receiver decoded.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
  type RunningService,
} from "@threadline/test-support";

const dir = fileURLToPath(
  new URL("../examples/two-services/", import.meta.url),
);
const SERVER = 2;
const CLIENT = 3;

interface System {
  receiver: OtlpReceiver;
  frontend: RunningService;
  backend: RunningService;
  payments: RunningService;
  stop(): Promise<void>;
}

async function startSystem(
  protocol: "http/protobuf" | "http/json",
): Promise<System> {
  const receiver = await startOtlpReceiver();
  const common = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    OTEL_BLRP_SCHEDULE_DELAY: "50",
    PORT: "0",
  };
  const payments = await startService({
    entry: "payments-provider.mjs",
    cwd: dir,
    env: { PORT: "0" },
  });
  const backend = await startService({
    entry: "backend.cjs",
    cwd: dir,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      ...common,
      OTEL_SERVICE_NAME: "backend",
      PAYMENTS_URL: payments.url,
      THREADLINE_THIRD_PARTIES: `127.0.0.1:${payments.port}=payments`,
    },
  });
  const frontend = await startService({
    entry: "frontend.mjs",
    cwd: dir,
    execArgv: ["--import", "@threadline/node/register"],
    env: {
      ...common,
      OTEL_SERVICE_NAME: "frontend",
      THREADLINE_EDGE: "true",
      BACKEND_URL: backend.url,
    },
  });
  return {
    receiver,
    frontend,
    backend,
    payments,
    async stop() {
      await Promise.all([frontend.stop(), backend.stop(), payments.stop()]);
      await receiver.close();
    },
  };
}

const service = (s: ReceivedSpan) => s.resource["service.name"];

async function receivedByProvider(
  payments: RunningService,
): Promise<Array<{ path: string; headers: Record<string, string> }>> {
  return (await fetch(`${payments.url}/_received`)).json() as Promise<
    Array<{ path: string; headers: Record<string, string> }>
  >;
}

function jsonLines(lines: string[]): Array<Record<string, unknown>> {
  return lines
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

for (const protocol of ["http/protobuf", "http/json"] as const) {
  describe(`two services, exported as ${protocol}`, () => {
    let sys: System;
    before(async () => {
      sys = await startSystem(protocol);
    });
    after(async () => {
      await sys?.stop();
    });

    it("turns one customer request into one trace across both services", async () => {
      const res = await fetch(`${sys.frontend.url}/checkout?item=book`, {
        headers: { "x-customer-id": "c-42" },
      });
      assert.equal(res.status, 200);
      assert.equal(
        ((await res.json()) as { customer: string }).customer,
        "c-42",
      );

      const spans = await sys.receiver.waitForSpans(
        (all) => all.length >= 6,
        "the checkout's six spans",
      );
      const traceIds = new Set(spans.map((s) => s.traceId));
      assert.equal(traceIds.size, 1, "all spans belong to one trace");
      assert.equal(spans.length, 6);

      const root = spans.find(
        (s) => service(s) === "frontend" && s.kind === SERVER,
      )!;
      assert.ok(root, "frontend server span");
      assert.equal(root.parentSpanId, "");
      assert.equal(root.name, "GET /checkout");
      assert.equal(root.attributes["http.route"], "/checkout");
      assert.equal(root.attributes["http.response.status_code"], 200);

      const frontendClients = spans.filter(
        (s) => service(s) === "frontend" && s.kind === CLIENT,
      );
      assert.deepEqual(frontendClients.map((s) => s.name).sort(), [
        "GET",
        "POST",
      ]);
      for (const c of frontendClients)
        assert.equal(c.parentSpanId, root.spanId);

      const backendServers = spans.filter(
        (s) => service(s) === "backend" && s.kind === SERVER,
      );
      assert.deepEqual(backendServers.map((s) => s.name).sort(), [
        "GET /price",
        "POST /reserve",
      ]);
      for (const b of backendServers) {
        const caller = frontendClients.find((c) => c.spanId === b.parentSpanId);
        assert.ok(caller, `${b.name} is a child of a frontend client span`);
        assert.equal(caller.name, b.name.split(" ")[0]);
      }

      const toProvider = spans.filter(
        (s) => service(s) === "backend" && s.kind === CLIENT,
      );
      assert.equal(toProvider.length, 1);
      const reserve = backendServers.find((s) => s.name === "POST /reserve")!;
      assert.equal(toProvider[0]!.parentSpanId, reserve.spanId);
      assert.equal(toProvider[0]!.attributes["peer.service"], "payments");

      for (const s of spans)
        assert.equal(
          s.attributes["customer.id"],
          "c-42",
          `${service(s)} ${s.name} carries the customer`,
        );

      const received = await receivedByProvider(sys.payments);
      assert.equal(received.length, 1);
      const headers = received[0]!.headers;
      assert.match(
        headers["traceparent"] ?? "",
        new RegExp(`^00-${root.traceId}-${toProvider[0]!.spanId}-0[13]$`),
      );
      assert.equal(
        headers["baggage"],
        undefined,
        "no baggage to the third party",
      );

      // Log lines: on stdout as the service wrote them, and over OTLP.
      await waitFor(
        () =>
          jsonLines(sys.frontend.stdout).length >= 2 &&
          jsonLines(sys.backend.stdout).length >= 2,
        { what: "log lines" },
      );
      for (const line of [
        ...jsonLines(sys.frontend.stdout),
        ...jsonLines(sys.backend.stdout),
      ]) {
        assert.equal(line["trace_id"], root.traceId, JSON.stringify(line));
        assert.equal(line["customer.id"], "c-42");
        assert.ok(
          spans.some((s) => s.spanId === line["span_id"]),
          "span_id names a span of the trace",
        );
      }
      const logs = await sys.receiver.waitForLogs(
        (all) => all.length >= 4,
        "four exported log records",
      );
      for (const l of logs) {
        assert.equal(l.traceId, root.traceId);
        assert.equal(l.attributes["customer.id"], "c-42");
        assert.equal(l.severityNumber, 9);
        assert.equal(typeof l.body, "string");
      }
      assert.deepEqual(
        new Set(logs.map((l) => l.resource["service.name"])),
        new Set(["frontend", "backend"]),
      );
      assert.deepEqual(sys.receiver.errors, []);
    });

    it("never lets a public caller plant a customer id through baggage", async () => {
      sys.receiver.clear();
      const before = (await receivedByProvider(sys.payments)).length;
      const res = await fetch(`${sys.frontend.url}/checkout?item=pen`, {
        headers: { baggage: "customer.id=evil,other=x" },
      });
      assert.equal(res.status, 200);
      assert.equal(
        ((await res.json()) as { customer: unknown }).customer,
        null,
      );
      const spans = await sys.receiver.waitForSpans(
        (all) => all.length >= 6,
        "six spans",
      );
      await sys.receiver.waitForLogs(
        (all) => all.length >= 4,
        "four log records",
      );
      const everything = JSON.stringify(
        { spans, logs: sys.receiver.logs },
        (_k, v) => (typeof v === "bigint" ? String(v) : v),
      );
      assert.ok(
        !everything.includes("evil"),
        "evil appears in no span and no log record",
      );
      // The second request's lines must have arrived, or the check below proves nothing.
      await waitFor(
        () =>
          jsonLines(sys.frontend.stdout).length >= 4 &&
          jsonLines(sys.backend.stdout).length >= 4,
        {
          what: "the second request's log lines",
        },
      );
      assert.ok(!sys.frontend.stdout.join("\n").includes("evil"));
      assert.ok(!sys.backend.stdout.join("\n").includes("evil"));
      for (const s of spans)
        assert.equal(s.attributes["customer.id"], undefined);
      const received = (await receivedByProvider(sys.payments)).slice(before);
      assert.equal(received[0]?.headers["baggage"], undefined);
    });

    it("keeps the customer from the edge header even when baggage claims another", async () => {
      sys.receiver.clear();
      await fetch(`${sys.frontend.url}/checkout`, {
        headers: { "x-customer-id": "c-7", baggage: "customer.id=evil" },
      });
      const spans = await sys.receiver.waitForSpans(
        (all) => all.length >= 6,
        "six spans",
      );
      for (const s of spans) assert.equal(s.attributes["customer.id"], "c-7");
    });
  });
}

describe("an internal service and its callers", () => {
  let receiver: OtlpReceiver;
  const started: RunningService[] = [];
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await receiver?.close();
  });

  /** backend.cjs as an internal service; its caller here is loopback. */
  async function backend(
    name: string,
    trustedCallers: string,
    env: Record<string, string> = {},
  ) {
    const svc = await startService({
      entry: "backend.cjs",
      cwd: dir,
      execArgv: ["-r", "@threadline/node/register"],
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_SERVICE_NAME: name,
        THREADLINE_TRUSTED_CALLERS: trustedCallers,
        PORT: "0",
        ...env,
      },
    });
    started.push(svc);
    return svc;
  }

  async function customerSeenBy(
    svc: RunningService,
    name: string,
    headers: Record<string, string>,
  ) {
    const res = await fetch(`${svc.url}/price?item=pen`, { headers });
    assert.equal(res.status, 200);
    const spans = await receiver.waitForSpans(
      (all) => all.some((s) => service(s) === name && s.kind === SERVER),
      `${name}'s server span`,
    );
    const logs = await receiver.waitForLogs(
      (all) => all.some((l) => l.resource["service.name"] === name),
      `${name}'s log record`,
    );
    const line = JSON.parse(
      await waitFor(() => svc.stdout.find((l) => l.includes("price looked"))),
    ) as Record<string, unknown>;
    return {
      span: spans.find((s) => service(s) === name)!.attributes["customer.id"],
      log: logs.find((l) => l.resource["service.name"] === name)!.attributes[
        "customer.id"
      ],
      line: line["customer.id"],
    };
  }

  it("takes the customer from a trusted caller's baggage, else its header", async () => {
    const svc = await backend("trusting", "loopback");
    assert.deepEqual(
      await customerSeenBy(svc, "trusting", { "x-customer-id": "c-9" }),
      { span: "c-9", log: "c-9", line: "c-9" },
    );
    receiver.clear();
    svc.stdout.length = 0;
    assert.deepEqual(
      await customerSeenBy(svc, "trusting", {
        "x-customer-id": "c-9",
        baggage: "customer.id=c-8",
      }),
      { span: "c-8", log: "c-8", line: "c-8" },
    );
  });

  it("takes neither baggage nor the customer header from an untrusted caller", async () => {
    const svc = await backend("wary", "10.0.0.0/8");
    assert.deepEqual(
      await customerSeenBy(svc, "wary", {
        "x-customer-id": "c-9",
        baggage: "customer.id=c-8",
      }),
      { span: undefined, log: undefined, line: undefined },
    );
  });

  it("keeps baggage from a payments provider declared by its URL or its address range", async () => {
    const payments = await startService({
      entry: "payments-provider.mjs",
      cwd: dir,
      env: { PORT: "0" },
    });
    started.push(payments);
    for (const [name, declared] of [
      ["by-url", `http://127.0.0.1:${payments.port}`],
      ["by-range", `127.0.0.0/8:${payments.port}`],
    ] as const) {
      const svc = await backend(name, "loopback", {
        PAYMENTS_URL: payments.url,
        THREADLINE_THIRD_PARTIES: `${declared}=payments`,
      });
      const before = (await receivedByProvider(payments)).length;
      const res = await fetch(`${svc.url}/reserve`, {
        method: "POST",
        headers: { "x-customer-id": "c-42" },
        body: JSON.stringify({ item: "pen" }),
      });
      assert.equal(res.status, 201);
      const received = (await receivedByProvider(payments)).slice(before);
      assert.equal(received.length, 1, declared);
      assert.equal(received[0]!.headers["baggage"], undefined, declared);
      assert.match(received[0]!.headers["traceparent"] ?? "", /^00-/);
      const spans = await receiver.waitForSpans(
        (all) => all.some((s) => service(s) === name && s.kind === CLIENT),
        `${name}'s call to the provider`,
      );
      const call = spans.find((s) => service(s) === name && s.kind === CLIENT)!;
      assert.equal(call.attributes["peer.service"], "payments", declared);
      assert.equal(call.attributes["customer.id"], "c-42");
    }
  });

  it("warns about a third party declared in a form that cannot match", async () => {
    const svc = await backend("unmatchable", "loopback", {
      THREADLINE_THIRD_PARTIES:
        "pay.example.com/v1=pay,*stripe.com=stripe,http://10.0.0.0/16=bank",
    });
    const entries = [
      "pay.example.com/v1=pay",
      "*stripe.com=stripe",
      "http://10.0.0.0/16=bank",
    ];
    await waitFor(
      () =>
        entries.every((entry) =>
          svc.stderr.some((l) =>
            l.includes(`THREADLINE_THIRD_PARTIES entry "${entry}"`),
          ),
        ),
      { what: `a warning for each of ${entries.join(" ")}` },
    );
  });
});
