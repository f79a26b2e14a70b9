import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { LoopDelay, RESOLUTION_MS } from "../src/internal/loop-delay.ts";

it("measures how late its ticks run, by window", async () => {
  const delay = new LoopDelay();
  delay.start();
  try {
    await sleep(100);
    const window = delay.take();
    assert.ok(window.count > 0);
    // A tick measures how late it ran: on a loop doing nothing, next to nothing.
    assert.ok(window.p50 > 0 && window.p50 < 0.05, `p50 ${window.p50}`);
    assert.ok(window.max >= window.p99 && window.p99 >= window.p50);
    assert.equal(delay.take().count, 0, "a new window starts empty");
  } finally {
    delay.stop();
  }
});

it("reports a held loop in the next window when one closes before the next tick", async () => {
  const delay = new LoopDelay();
  delay.start();
  try {
    await sleep(50);
    delay.take();
    const end = Date.now() + 200;
    while (Date.now() < end); // the loop is held; no tick can run
    // The window closes at once, as a collection right after a blocking
    // handler does. monitorEventLoopDelay's reset() would lose the hold here.
    assert.equal(delay.take().count, 0);
    await sleep(50);
    const next = delay.take();
    // The tick was due at most one resolution into the hold.
    assert.ok(next.max >= 0.2 - RESOLUTION_MS / 1000, `max ${next.max}`);
  } finally {
    delay.stop();
  }
});

it("keeps each window apart, on one timer", async () => {
  const metrics = new LoopDelay();
  const alarms = new LoopDelay();
  metrics.start();
  alarms.start();
  try {
    await sleep(60);
    assert.ok(metrics.take().count > 0);
    // Closing one window leaves the other's ticks alone.
    assert.ok(alarms.take().count > 0);
    metrics.stop();
    await sleep(40);
    assert.ok(alarms.take().count > 0, "still ticking for the other");
    assert.equal(metrics.take().count, 0, "a stopped window gets no ticks");
  } finally {
    metrics.stop();
    alarms.stop();
  }
});
