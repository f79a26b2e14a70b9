import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { health } from "@threadline/core";
import { startRecordingServer, waitFor } from "@threadline/test-support";
import { AlarmEngine } from "../src/alarms/engine.ts";
import { setTimeout } from "node:timers/promises";
import { pagerDutyNotifier, webhookNotifier } from "../src/alarms/notifiers.ts";
import { MeterProvider } from "../src/metrics/meter-provider.ts";

it("sends PagerDuty's trigger again after a 503, and its resolve after it", async () => {
  // PagerDuty is briefly unavailable: its first answer is a 503.
  const pagerduty = await startRecordingServer((r) =>
    pagerduty.requests[0] === r
      ? { status: 503, body: { status: "unavailable" } }
      : { status: 202, body: { status: "success" } },
  );
  const engine = new AlarmEngine({
    rules: [
      {
        name: "dependency_unhealthy",
        kind: "health",
        component: "search-index",
        when: "unhealthy",
        forMs: 0,
        clearForMs: 0,
        severity: "critical",
      },
    ],
    intervalMs: 60_000,
    service: "search",
    instance: "i-1",
    meterProvider: new MeterProvider(),
    metricsCollectedEveryMs: undefined,
    notifiers: [pagerDutyNotifier("R0UT1NGKEY", `${pagerduty.url}/v2/enqueue`)],
    log: () => {},
  });
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("search-index", () => ({ status }));
  try {
    await engine.evaluate();
    // The trigger's first send is answered 503; the index is back at once.
    await waitFor(() => pagerduty.requests.length === 1, {
      what: "the first trigger",
    });
    status = "healthy";
    await engine.evaluate();
    const actions = await waitFor(
      () =>
        pagerduty.requests.length >= 3 &&
        pagerduty.requests.map(
          (r) => (JSON.parse(r.body) as { event_action: string }).event_action,
        ),
      { what: "the trigger sent again, then the resolve" },
    );
    // The incident opens and is resolved: none is left open for good.
    assert.deepEqual(actions, ["trigger", "trigger", "resolve"]);
  } finally {
    remove();
    await engine.stop();
    await pagerduty.close();
  }
});

/** An engine with one health rule on `component`, notifying `url`'s webhook. */
function webhookEngine(component: string, url: string): AlarmEngine {
  return new AlarmEngine({
    rules: [
      {
        name: "dependency_unhealthy",
        kind: "health",
        component,
        when: "unhealthy",
        forMs: 0,
        clearForMs: 0,
        severity: "critical",
      },
    ],
    intervalMs: 60_000,
    service: "search",
    instance: "i-1",
    meterProvider: new MeterProvider(),
    metricsCollectedEveryMs: undefined,
    notifiers: [webhookNotifier(`${url}/alarms`)],
    log: () => {},
  });
}

it("waits at most 30 s when a Retry-After asks for longer, then sends the raise and its clear", async () => {
  const arrivals: number[] = [];
  const webhook = await startRecordingServer(() =>
    arrivals.push(performance.now()) === 1
      ? { status: 429, headers: { "retry-after": "45" } }
      : { status: 200 },
  );
  const engine = webhookEngine("slow-index", webhook.url);
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("slow-index", () => ({ status }));
  try {
    await engine.evaluate();
    await waitFor(() => webhook.requests.length === 1, { what: "the raise" });
    status = "healthy";
    await engine.evaluate();
    await waitFor(() => webhook.requests.length === 3, {
      what: "the raise sent again, then the clear",
      timeoutMs: 40_000,
    });
    const waited = arrivals[1]! - arrivals[0]!;
    assert.ok(waited >= 29_000 && waited < 32_000, `waited ${waited} ms`);
    assert.deepEqual(
      webhook.requests.map(
        (r) => (JSON.parse(r.body) as { action: string }).action,
      ),
      ["raise", "raise", "clear"],
    );
  } finally {
    remove();
    await engine.stop();
    await webhook.close();
  }
});

it("sends no clear for a raise the receiver never got", async () => {
  // The raise is refused for good (400); the clear is answered.
  const webhook = await startRecordingServer((r) =>
    webhook.requests[0] === r ? { status: 400 } : { status: 200 },
  );
  const engine = webhookEngine("flaky-index", webhook.url);
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("flaky-index", () => ({ status }));
  try {
    await engine.evaluate();
    status = "healthy";
    await engine.evaluate();
    // Raised again: this raise arrives, and so does its clear.
    status = "unhealthy";
    await engine.evaluate();
    status = "healthy";
    await engine.evaluate();
    const actions = await waitFor(
      () =>
        webhook.requests.length >= 3 &&
        webhook.requests.map(
          (r) => (JSON.parse(r.body) as { action: string }).action,
        ),
      { what: "the second raise and its clear" },
    );
    await setTimeout(300);
    assert.deepEqual(actions, ["raise", "raise", "clear"]);
    assert.equal(webhook.requests.length, 3);
  } finally {
    remove();
    await engine.stop();
    await webhook.close();
  }
});

it("sends a notification once to a receiver that answers after 7 s", async () => {
  const arrivals: number[] = [];
  const answered: number[] = [];
  // Does its work (7 s) before it answers.
  const slow = createServer((req, res) => {
    arrivals.push(performance.now());
    req.resume();
    globalThis.setTimeout(() => {
      answered.push(performance.now());
      res.end("ok");
    }, 7000);
  });
  await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
  const engine = webhookEngine(
    "ticketing",
    `http://127.0.0.1:${(slow.address() as AddressInfo).port}`,
  );
  const remove = health.register("ticketing", () => ({
    status: "unhealthy" as const,
  }));
  try {
    await engine.evaluate();
    await waitFor(() => answered.length === 1, {
      what: "the raise answered",
    });
    await setTimeout(1500);
    assert.equal(arrivals.length, 1, "sent again although it arrived");
  } finally {
    remove();
    await engine.stop();
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  }
});

it("gives each raise and clear an event id of its own, kept by its retries", async () => {
  const webhook = await startRecordingServer((r) =>
    webhook.requests[0] === r ? { status: 503 } : { status: 200 },
  );
  const engine = webhookEngine("queue", webhook.url);
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("queue", () => ({ status }));
  try {
    await engine.evaluate();
    status = "healthy";
    await engine.evaluate();
    const events = await waitFor(
      () =>
        webhook.requests.length === 3 &&
        webhook.requests.map(
          (r) => JSON.parse(r.body) as { action: string; eventId: string },
        ),
      { what: "the raise, its retry and the clear" },
    );
    assert.deepEqual(
      events.map((e) => e.action),
      ["raise", "raise", "clear"],
    );
    const [raise, retry, clear] = events.map((e) => e.eventId);
    assert.match(raise!, /^[0-9a-f-]{36}$/);
    assert.equal(retry, raise, "a retry is the same event");
    assert.notEqual(clear, raise);
  } finally {
    remove();
    await engine.stop();
    await webhook.close();
  }
});
