import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { health } from "@threadline/core";
import {
  startRecordingServer,
  waitFor,
  type RecordedRequest,
  type RecordingServer,
} from "@threadline/test-support";
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

/** An engine on a clock of the test's, with one health rule on `component`. */
function clockedEngine(
  component: string,
  url: string,
  clock: () => number,
): AlarmEngine {
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
    intervalMs: 10_000,
    service: "search",
    instance: "i-1",
    meterProvider: new MeterProvider(),
    clock,
    notifiers: [webhookNotifier(`${url}/alarms`)],
    log: () => {},
  });
}

/**
 * An engine on a clock of the test's, paging a recording webhook for the
 * health check `check`, unhealthy until `status` says otherwise.
 */
async function clockedAlarm(
  check: string,
  answer: (
    r: RecordedRequest,
    requests: RecordedRequest[],
  ) => { status: number },
) {
  const webhook: RecordingServer = await startRecordingServer((r) =>
    answer(r, webhook.requests),
  );
  let now = 0;
  const engine = clockedEngine(check, webhook.url, () => now);
  const alarm = {
    webhook,
    engine,
    status: "unhealthy" as "healthy" | "unhealthy",
    /** Moves the clock on, evaluates, lets the webhook answer; its requests so far. */
    async evaluation(afterMs: number): Promise<number> {
      now += afterMs;
      await engine.evaluate();
      await setTimeout(300);
      return webhook.requests.length;
    },
    actions: () =>
      webhook.requests.map(
        (r) => (JSON.parse(r.body) as { action: string }).action,
      ),
    async close(): Promise<void> {
      remove();
      await engine.stop();
      await webhook.close();
    },
  };
  const remove = health.register(check, () => ({ status: alarm.status }));
  return alarm;
}

it("sends a raise again, once a minute, while its alarm is active and the receiver was down for all its tries", async () => {
  let down = true;
  const alarm = await clockedAlarm("orders-db", () => ({
    status: down ? 503 : 200,
  }));
  const { webhook, evaluation } = alarm;
  try {
    await evaluation(0);
    // The webhook is down for the raise's four tries, about 13 s.
    await waitFor(() => webhook.requests.length === 4, {
      what: "the raise's four tries",
      timeoutMs: 30_000,
    });
    await setTimeout(300);
    assert.equal(await evaluation(30_000), 4, "not within the minute");
    assert.equal(await evaluation(30_000), 5, "once, a minute after");
    // Back, but the last try failed 30 s ago.
    down = false;
    assert.equal(await evaluation(30_000), 5);
    assert.equal(await evaluation(30_000), 6, "delivered");
    assert.equal(await evaluation(120_000), 6, "and not sent again");
    alarm.status = "healthy";
    assert.equal(await evaluation(10_000), 7, "then its clear");
    const events = webhook.requests.map(
      (r) => JSON.parse(r.body) as { action: string; eventId: string },
    );
    assert.deepEqual(
      events.map((e) => e.action),
      ["raise", "raise", "raise", "raise", "raise", "raise", "clear"],
    );
    assert.equal(
      new Set(events.slice(0, 6).map((e) => e.eventId)).size,
      1,
      "each the same event, for the receiver to know a copy",
    );
  } finally {
    await alarm.close();
  }
});

it("sends a clear again, once a minute, until it is delivered, when the receiver was down for all its tries", async () => {
  let down = false;
  const alarm = await clockedAlarm("ledger-db", () => ({
    status: down ? 503 : 200,
  }));
  const { webhook, evaluation } = alarm;
  try {
    await evaluation(0);
    await waitFor(() => webhook.requests.length === 1, { what: "the raise" });
    // The webhook goes down as the alarm clears: the clear's four tries fail.
    down = true;
    alarm.status = "healthy";
    await evaluation(10_000);
    await waitFor(() => webhook.requests.length === 5, {
      what: "the clear's four tries",
      timeoutMs: 30_000,
    });
    await setTimeout(300);
    assert.equal(await evaluation(30_000), 5, "not within the minute");
    assert.equal(await evaluation(30_000), 6, "once, a minute after");
    down = false;
    assert.equal(await evaluation(30_000), 6);
    assert.equal(await evaluation(30_000), 7, "delivered");
    assert.equal(await evaluation(120_000), 7, "and not sent again");
    const events = webhook.requests.map(
      (r) => JSON.parse(r.body) as { action: string; eventId: string },
    );
    assert.deepEqual(
      events.map((e) => e.action),
      ["raise", "clear", "clear", "clear", "clear", "clear", "clear"],
    );
    assert.equal(
      new Set(events.slice(1).map((e) => e.eventId)).size,
      1,
      "each the same event, for the receiver to know a copy",
    );
  } finally {
    await alarm.close();
  }
});

it("sends an undelivered clear no more once its alarm is raised again", async () => {
  // The clear is refused (400): one try, not delivered.
  const alarm = await clockedAlarm("stock-db", (r, requests) =>
    requests[1] === r ? { status: 400 } : { status: 200 },
  );
  try {
    await alarm.evaluation(0);
    alarm.status = "healthy";
    await alarm.evaluation(10_000);
    alarm.status = "unhealthy";
    await alarm.evaluation(10_000);
    for (let i = 0; i < 3; i++) await alarm.evaluation(60_000);
    assert.deepEqual(alarm.actions(), ["raise", "clear", "raise"]);
    assert.equal(alarm.engine.active().length, 1);
  } finally {
    await alarm.close();
  }
});

it("sends neither a raise again nor its clear once an alarm whose raise was never delivered is cleared", async () => {
  // The raise is refused (400); anything after it would be taken.
  const webhook = await startRecordingServer((r) =>
    webhook.requests[0] === r ? { status: 400 } : { status: 200 },
  );
  let now = 0;
  const engine = clockedEngine("payments-db", webhook.url, () => now);
  let status: "healthy" | "unhealthy" = "unhealthy";
  const remove = health.register("payments-db", () => ({ status }));
  try {
    await engine.evaluate();
    await waitFor(() => webhook.requests.length === 1, { what: "the raise" });
    await setTimeout(300);
    status = "healthy";
    now += 10_000;
    await engine.evaluate();
    for (let i = 0; i < 3; i++) {
      now += 60_000;
      await engine.evaluate();
    }
    await setTimeout(300);
    assert.deepEqual(
      webhook.requests.map(
        (r) => (JSON.parse(r.body) as { action: string }).action,
      ),
      ["raise"],
    );
  } finally {
    remove();
    await engine.stop();
    await webhook.close();
  }
});

/**
 * A webhook that records each notification as it arrives and answers as
 * `answer` says: at once, or only after a while (a receiver that does its
 * work first, or is slow to recover).
 */
async function startSlowWebhook(
  answer: (action: string, n: number) => { status: number; afterMs: number },
) {
  const events: { action: string; instanceStopped?: true; at: number }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      const event = JSON.parse(body) as {
        action: string;
        instanceStopped?: true;
      };
      events.push({ ...event, at: performance.now() });
      const a = answer(event.action, events.length);
      const reply = () => {
        res.statusCode = a.status;
        res.end();
      };
      if (a.afterMs === 0) reply();
      else globalThis.setTimeout(reply, a.afterMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

it("sends the clear at once when the instance ends while a raise sent again awaits its answer", async () => {
  // The raise is refused (503, all four tries); a minute later it is sent
  // again, to a receiver back but slow (8 s); the clear is answered at once.
  let down = true;
  const webhook = await startSlowWebhook((action) =>
    action === "clear"
      ? { status: 200, afterMs: 0 }
      : down
        ? { status: 503, afterMs: 0 }
        : { status: 200, afterMs: 8000 },
  );
  let now = 0;
  const engine = clockedEngine("orders-db", webhook.url, () => now);
  const remove = health.register("orders-db", () => ({
    status: "unhealthy" as const,
  }));
  try {
    await engine.evaluate();
    await waitFor(() => webhook.events.length === 4, {
      what: "the raise's four tries",
      timeoutMs: 30_000,
    });
    await setTimeout(300);
    down = false;
    now += 61_000;
    await engine.evaluate();
    await waitFor(() => webhook.events.length === 5, {
      what: "the raise sent again",
    });
    const start = performance.now();
    await engine.end("SIGTERM", 3000);
    const ended = performance.now();
    // The receiver may have the raise: it is sent the clear, before the
    // process would exit and within the shutdown budget.
    const clear = webhook.events[5];
    assert.equal(clear?.action, "clear", "no clear before end() resolved");
    assert.equal(clear.instanceStopped, true);
    assert.ok(clear.at <= ended, "the clear came after end() resolved");
    assert.ok(
      clear.at - start < 1000,
      `the clear came ${clear.at - start} ms after end()`,
    );
  } finally {
    remove();
    await webhook.close();
  }
});

it("sends the clear at once when the instance ends while the raise's first try awaits its answer", async () => {
  // Does its work (8 s) before it answers a raise; answers a clear at once.
  const webhook = await startSlowWebhook((action) => ({
    status: 200,
    afterMs: action === "raise" ? 8000 : 0,
  }));
  const engine = webhookEngine("ticketing", webhook.url);
  const remove = health.register("ticketing", () => ({
    status: "unhealthy" as const,
  }));
  try {
    await engine.evaluate();
    await waitFor(() => webhook.events.length === 1, { what: "the raise" });
    const start = performance.now();
    await engine.end("shutdown", 3000);
    const ended = performance.now();
    const clear = webhook.events[1];
    assert.equal(clear?.action, "clear", "no clear before end() resolved");
    assert.ok(clear.at <= ended, "the clear came after end() resolved");
    assert.ok(
      clear.at - start < 1000,
      `the clear came ${clear.at - start} ms after end()`,
    );
  } finally {
    remove();
    await webhook.close();
  }
});

it("ends at once, sending nothing more, when the instance ends while a refused raise waits for its next try", async () => {
  // The raise's first try is refused (503); its next would be taken, but
  // slowly (8 s): begun within the shutdown budget, its clear could not be.
  const webhook = await startSlowWebhook((action, n) =>
    n === 1 ? { status: 503, afterMs: 0 } : { status: 200, afterMs: 8000 },
  );
  const engine = webhookEngine("search-index", webhook.url);
  const remove = health.register("search-index", () => ({
    status: "unhealthy" as const,
  }));
  try {
    await engine.evaluate();
    await waitFor(() => webhook.events.length === 1, { what: "the raise" });
    const start = performance.now();
    await engine.end("SIGTERM", 3000);
    const took = performance.now() - start;
    assert.ok(took < 500, `end() took ${took} ms`);
    await setTimeout(1500);
    // Neither the raise nor its clear: nothing is left open.
    assert.deepEqual(
      webhook.events.map((e) => e.action),
      ["raise"],
    );
  } finally {
    remove();
    await webhook.close();
  }
});
