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
