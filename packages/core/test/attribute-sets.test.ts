import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AttributeSets } from "../src/instruments.ts";

describe("AttributeSets", () => {
  const sets = () =>
    new AttributeSets(
      (
        method: string,
        status: number | undefined,
        route: string | undefined,
      ) => {
        const a: Record<string, string | number> = { method };
        if (status !== undefined) a["status"] = status;
        if (route !== undefined) a["route"] = route;
        return a;
      },
    );

  it("gives the same frozen object for the same values", () => {
    const s = sets();
    const first = s.get("GET", 200, "/a", undefined, undefined);
    assert.deepEqual(first, { method: "GET", status: 200, route: "/a" });
    assert.ok(Object.isFrozen(first));
    // Equal strings built apart compare equal.
    const route = ["", "a"].join("/");
    assert.equal(s.get("GET", 200, route, undefined, undefined), first);
    const other = s.get("GET", 500, "/a", undefined, undefined);
    assert.notEqual(other, first);
    assert.deepEqual(other, { method: "GET", status: 500, route: "/a" });
    assert.equal(s.get("GET", 200, "/a", undefined, undefined), first);
    assert.deepEqual(s.get("GET", undefined, undefined, undefined, undefined), {
      method: "GET",
    });
  });

  it("keeps objects for the first eight sets only, and builds the rest each time", () => {
    const s = sets();
    const kept = [];
    for (let i = 0; i < 8; i++)
      kept.push(s.get("GET", 200, `/r${i}`, undefined, undefined));
    const late = s.get("GET", 200, "/late", undefined, undefined);
    assert.deepEqual(late, { method: "GET", status: 200, route: "/late" });
    assert.ok(!Object.isFrozen(late));
    assert.notEqual(s.get("GET", 200, "/late", undefined, undefined), late);
    for (let i = 0; i < 8; i++)
      assert.equal(s.get("GET", 200, `/r${i}`, undefined, undefined), kept[i]);
  });
});
