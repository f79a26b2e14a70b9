import assert from "node:assert/strict";
import { it } from "node:test";
import {
  HealthChecks,
  HealthRegistry,
  registerNumbered,
} from "../src/health.ts";

const healthy = () => ({ status: "healthy" as const });

it("numbers checks to the same place from the lowest free suffix, and hands freed ones out again", async () => {
  const registry = new HealthRegistry();
  const names = async () => (await registry.run()).map((c) => c.name).sort();
  const a = registerNumbered("db", healthy, registry);
  const b = registerNumbered("db", healthy, registry);
  const c = registerNumbered("db", healthy, registry);
  assert.deepEqual([a.name, b.name, c.name], ["db", "db #2", "db #3"]);
  b.unregister();
  a.unregister();
  a.unregister(); // once is enough; a second call frees nothing twice
  assert.equal(registerNumbered("db", healthy, registry).name, "db");
  assert.equal(registerNumbered("db", healthy, registry).name, "db #2");
  assert.equal(registerNumbered("db", healthy, registry).name, "db #4");
  // A name someone else took meanwhile is skipped.
  registry.register("db #5", healthy);
  assert.equal(registerNumbered("db", healthy, registry).name, "db #6");
  assert.deepEqual(await names(), [
    "db",
    "db #2",
    "db #3",
    "db #4",
    "db #5",
    "db #6",
  ]);
});

it("names a check without looking through the checks registered before", () => {
  // A job that makes a pool per run while others stay open.
  let lookups = 0;
  class Counting extends HealthRegistry {
    override has(name: string): boolean {
      lookups++;
      return super.has(name);
    }
  }
  const registry = new Counting();
  for (let i = 0; i < 1000; i++) registerNumbered("db", healthy, registry);
  lookups = 0;
  for (let i = 0; i < 100; i++)
    registerNumbered("db", healthy, registry).unregister();
  assert.ok(lookups <= 100, `${lookups} lookups for 100 names`);
});

it("removes at clear() the checks an owner registered and has not removed itself", async () => {
  const registry = new HealthRegistry();
  registry.register("other", healthy);
  const checks = new HealthChecks(registry);
  const unregister = checks.register("db", healthy);
  checks.register("db", healthy);
  checks.register("queue", healthy);
  unregister();
  assert.equal(registerNumbered("db", healthy, registry).name, "db");
  checks.clear();
  assert.deepEqual((await registry.run()).map((c) => c.name).sort(), [
    "db",
    "other",
  ]);
});

it("calls a check once for runs that come while its call is under way, and again once it has answered", async () => {
  const registry = new HealthRegistry();
  let calls = 0;
  let answer!: () => void;
  registry.register("db", () => {
    calls++;
    return new Promise((resolve) => {
      answer = () => resolve({ status: "healthy" });
    });
  });
  // Probes at once, the first two before the check answers, the third
  // after its time is up and it still has not.
  const first = registry.run(1000);
  const second = registry.run(1000);
  const late = await registry.run(20);
  assert.equal(calls, 1);
  assert.equal(late[0]!.status, "unhealthy");
  answer();
  assert.deepEqual(
    [(await first)[0]!.status, (await second)[0]!.status],
    ["healthy", "healthy"],
  );
  // Answered: the next run calls it afresh.
  const next = registry.run(1000);
  await Promise.resolve();
  answer();
  assert.equal((await next)[0]!.status, "healthy");
  assert.equal(calls, 2);
});

it("calls afresh a check that threw, and one replaced under the same name", async () => {
  const registry = new HealthRegistry();
  let calls = 0;
  registry.register("db", () => {
    calls++;
    throw new Error("refused");
  });
  for (let i = 0; i < 2; i++)
    assert.equal((await registry.run())[0]!.reason, "refused");
  assert.equal(calls, 2);
  registry.register("db", () => new Promise(() => {}));
  assert.equal((await registry.run(20))[0]!.status, "unhealthy");
  registry.register("db", healthy);
  assert.equal((await registry.run(50))[0]!.status, "healthy");
});
