// A watch decision carried from upstream belongs to the customer it was made
// for. Inside a watched request of c-42, an internal service does a step on
// behalf of c-7 (withCustomer) and calls the next service: c-7 is watched
// nowhere, so neither that service nor the next logs c-7's debug lines or
// marks c-7's spans watched, while c-42's request is watched end to end.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const SERVER = 2;
const CLIENT = 3;
const DEBUG = 5; // OTLP severity number of pino's debug
const INFO = 9;

describe("a carried watch", () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-watch-"));
  let receiver: OtlpReceiver;
  const services: RunningService[] = [];

  before(async () => {
    const list = join(dir, "watch.json");
    writeFileSync(
      list,
      JSON.stringify({
        watch: [
          {
            customer: "c-42",
            until: new Date(Date.now() + 120_000).toISOString(),
          },
        ],
      }),
    );
    receiver = await startOtlpReceiver();
    const hop = async (name: string, env: Record<string, string>) => {
      const svc = await startService({
        entry: "watch-hop.mjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: {
          OTEL_SERVICE_NAME: name,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_BSP_SCHEDULE_DELAY: "50",
          OTEL_BLRP_SCHEDULE_DELAY: "50",
          THREADLINE_WATCH_URL: list,
          THREADLINE_WATCH_INTERVAL: "100",
          ...env,
        },
      });
      services.push(svc);
      return svc;
    };
    const c = await hop("c", {});
    const b = await hop("b", { NEXT: c.url, STEP_FOR: "c-7" });
    await hop("a", { THREADLINE_EDGE: "true", NEXT: b.url });
  });

  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("does not watch another customer's step inside a watched request, here or downstream", async () => {
    const edge = services[2]!;
    // Once the edge has read the list, c-42's request is watched.
    const root = await waitFor(
      async () => {
        const path = `/r/${Math.random().toString(36).slice(2)}`;
        const res = await fetch(`${edge.url}${path}`, {
          headers: { "x-customer-id": "c-42" },
        });
        assert.equal(await res.text(), "ok");
        const span = await receiver.waitForServerSpan(path);
        return span.attributes["threadline.watch"] === "debug" && span;
      },
      { what: "a watched request of c-42" },
    );
    const { traceId } = root;
    const of = (x: {
      resource: Record<string, unknown>;
      attributes: Record<string, unknown>;
    }) =>
      `${String(x.resource["service.name"])} ${String(x.attributes["customer.id"])}`;

    // Every info line of the request: a, b and c as c-42, b's step and
    // c's request as c-7. Debug lines are logged right after each.
    await waitFor(
      () =>
        receiver.logs.filter(
          (l) => l.traceId === traceId && l.severityNumber === INFO,
        ).length === 5,
      { what: "the request's info lines from every service" },
    );
    const debug = receiver.logs
      .filter((l) => l.traceId === traceId && l.severityNumber === DEBUG)
      .map(of)
      .sort();
    assert.deepEqual(debug, ["a c-42", "b c-42", "c c-42"]);

    const spans = await waitFor(
      () => {
        const t = receiver.spans.filter((s) => s.traceId === traceId);
        return t.length === 7 && t;
      },
      { what: "the request's spans from every service" },
    );
    const watched = spans
      .map((s) => `${of(s)} ${String(s.attributes["threadline.watch"])}`)
      .sort();
    assert.deepEqual(watched, [
      "a c-42 debug",
      "a c-42 debug",
      "b c-42 debug",
      "b c-42 debug",
      "b c-7 undefined",
      "c c-42 debug",
      "c c-7 undefined",
    ]);
  });
});

// The README's advice for a session read asynchronously: the handler calls
// withCustomer once it knows who is calling. By then the edge's server span
// was sampled out (here nothing is sampled but watched traffic), while the
// watch travels on in baggage and the next service samples. The edge must
// record its spans from that point on, or the next service's spans hang
// from a parent nobody exported.
describe("a watch that begins in the handler", () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-watch-"));
  let receiver: OtlpReceiver;
  const services: RunningService[] = [];

  before(async () => {
    const list = join(dir, "watch.json");
    writeFileSync(
      list,
      JSON.stringify({
        watch: [
          {
            customer: "c-42",
            until: new Date(Date.now() + 120_000).toISOString(),
          },
        ],
      }),
    );
    receiver = await startOtlpReceiver();
    const hop = async (name: string, env: Record<string, string>) => {
      const svc = await startService({
        entry: "watch-hop.mjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: {
          OTEL_SERVICE_NAME: name,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_BSP_SCHEDULE_DELAY: "50",
          OTEL_BLRP_SCHEDULE_DELAY: "50",
          OTEL_TRACES_SAMPLER: "parentbased_always_off",
          THREADLINE_WATCH_URL: list,
          THREADLINE_WATCH_INTERVAL: "100",
          ...env,
        },
      });
      services.push(svc);
      return svc;
    };
    // The next service follows no list: only a decision the edge made and
    // passed on watches it.
    const b = await hop("b", { THREADLINE_WATCH_URL: "none" });
    await hop("a", { THREADLINE_EDGE: "true", NEXT: b.url });
  });

  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("records the edge's spans from withCustomer on, so no exported span lacks its parent", async () => {
    const edge = services[1]!;
    const service = (x: { resource: Record<string, unknown> }) =>
      x.resource["service.name"];
    // Once the edge has read the list, c-42's requests are watched downstream.
    const downstream = await waitFor(
      async () => {
        const res = await fetch(`${edge.url}/r`, {
          headers: { "x-session": "c-42" },
        });
        assert.equal(await res.text(), "ok");
        await new Promise((r) => setTimeout(r, 200));
        return receiver.spans.find(
          (s) =>
            service(s) === "b" &&
            s.kind === SERVER &&
            s.attributes["threadline.watch"] === "debug",
        );
      },
      { what: "a watched request of c-42 at the next service" },
    );
    const { traceId } = downstream;
    const call = await waitFor(
      () =>
        receiver.spans.find((s) => s.traceId === traceId && service(s) === "a"),
      { what: "the edge's span of the watched request" },
    );
    assert.equal(call.kind, CLIENT);
    assert.equal(call.attributes["customer.id"], "c-42");
    assert.equal(call.attributes["threadline.watch"], "debug");
    assert.equal(downstream.parentSpanId, call.spanId);
    // Only the edge's server span, which began before anyone knew the
    // customer, is missing from the trace.
    await new Promise((r) => setTimeout(r, 300));
    const spans = receiver.spans.filter((s) => s.traceId === traceId);
    const ids = new Set(spans.map((s) => s.spanId));
    const orphans = spans.filter(
      (s) => s.parentSpanId !== "" && !ids.has(s.parentSpanId),
    );
    assert.deepEqual(
      orphans.map((s) => s.spanId),
      [call.spanId],
    );
    assert.ok(
      receiver.logs.some(
        (l) =>
          l.traceId === traceId &&
          service(l) === "a" &&
          l.severityNumber === DEBUG,
      ),
      "the edge logged the request's debug line",
    );
  });
});

// A request carried a 30-minute watch into a service that does not watch
// the customer itself (its list has nobody yet), and runs for longer than
// a minute. The decision holds until its end: the request logs its debug
// lines and passes the watch on to the next service all along.
describe("a carried watch on a request that runs for minutes", () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-watch-"));
  let receiver: OtlpReceiver;
  const services: RunningService[] = [];

  before(async () => {
    const list = join(dir, "watch.json");
    writeFileSync(list, JSON.stringify({ watch: [] }));
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      OTEL_TRACES_SAMPLER: "parentbased_always_off",
    };
    const next = await startService({
      entry: "watch-hop.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: { ...env, OTEL_SERVICE_NAME: "next", THREADLINE_WATCH_URL: "none" },
    });
    services.push(next);
    services.push(
      await startService({
        entry: "watch-long.mjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: {
          ...env,
          OTEL_SERVICE_NAME: "long",
          THREADLINE_WATCH_URL: list,
          THREADLINE_WATCH_INTERVAL: "100",
          NEXT: next.url,
          AHEAD_MS: "61000",
        },
      }),
    );
  });

  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("logs its debug lines and passes the watch on after the first minute", async () => {
    const long = services[1]!;
    const until = Math.floor(Date.now() / 1000) + 1800;
    const res = await fetch(`${long.url}/export`, {
      headers: {
        baggage: `customer.id=c-42,threadline.watch=debug;until=${until}`,
      },
    });
    assert.equal(await res.text(), "ok");
    const service = (x: { resource: Record<string, unknown> }) =>
      x.resource["service.name"];
    const server = await waitFor(
      () =>
        receiver.spans.find((s) => service(s) === "long" && s.kind === SERVER),
      { what: "the long request's span" },
    );
    const { traceId } = server;
    await waitFor(
      () =>
        receiver.logs.some(
          (l) => l.traceId === traceId && service(l) === "next",
        ) && receiver.spans.filter((s) => s.traceId === traceId).length === 3,
      { what: "the next service's line and every span of the request" },
    );
    const debug = receiver.logs
      .filter((l) => l.traceId === traceId && l.severityNumber === DEBUG)
      .map((l) => `${String(service(l))} ${String(l.body)}`)
      .sort();
    assert.deepEqual(debug, [
      "long first step",
      "long later step",
      "next hop detail",
    ]);
    const watched = receiver.spans
      .filter((s) => s.traceId === traceId)
      .map(
        (s) =>
          `${String(service(s))} ${s.kind} ${String(s.attributes["threadline.watch"])}`,
      )
      .sort();
    assert.deepEqual(watched, [
      `long ${SERVER} debug`,
      `long ${CLIENT} debug`,
      `next ${SERVER} debug`,
    ]);
  });
});
