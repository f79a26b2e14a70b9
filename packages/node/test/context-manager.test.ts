import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { describe, it } from "node:test";
import { createContextKey, ROOT_CONTEXT } from "@opentelemetry/api";
import { AlsContextManager } from "../src/internal/context-manager.ts";

const KEY = createContextKey("test key");
const request = ROOT_CONTEXT.setValue(KEY, "request");
const other = ROOT_CONTEXT.setValue(KEY, "other");

describe("AlsContextManager", () => {
  const manager = new AlsContextManager();
  const seen = () => manager.active().getValue(KEY);

  for (const [how, bindTo] of [
    ["the active context", () => manager.active()],
    ["another context", () => request],
  ] as const) {
    it(`runs a callback bound to ${how} in that context, wherever it is called`, async () => {
      const calls: unknown[] = [];
      const callback = function (this: unknown, a: number, b: number) {
        calls.push([seen(), this, a, b]);
        return a + b;
      };
      const bound =
        how === "the active context"
          ? manager.with(request, () => manager.bind(bindTo(), callback))
          : manager.bind(bindTo(), callback);
      assert.equal(bound.length, 2);
      const self = { name: "caller" };
      const result = manager.with(other, () => bound.call(self, 1, 2));
      assert.equal(result, 3);
      await new Promise<void>((resolve) =>
        manager.with(other, () =>
          setImmediate(() => {
            bound.call(undefined, 3, 4);
            resolve();
          }),
        ),
      );
      assert.deepEqual(calls, [
        ["request", self, 1, 2],
        ["request", undefined, 3, 4],
      ]);
      assert.equal(seen(), undefined, "the caller's context is back");
    });
  }

  it("brings the application's own async-local values back with the active context", () => {
    const tenant = new AsyncLocalStorage<string>();
    const bound = tenant.run("tenant-a", () =>
      manager.with(request, () =>
        manager.bind(manager.active(), () => [tenant.getStore(), seen()]),
      ),
    );
    assert.deepEqual(
      tenant.run("tenant-b", () => manager.with(other, bound)),
      ["tenant-a", "request"],
    );
  });

  it("runs a function in a context and puts the caller's back, values of the application's own included", () => {
    const tenant = new AsyncLocalStorage<string>();
    const self = { name: "caller" };
    tenant.run("tenant-a", () => {
      const inside = manager.with(
        request,
        function (this: unknown, a: number, b: number) {
          return [seen(), tenant.getStore(), this, a + b];
        },
        self,
        1,
        2,
      );
      assert.deepEqual(inside, ["request", "tenant-a", self, 3]);
      assert.equal(seen(), undefined);
      assert.equal(tenant.getStore(), "tenant-a");
      // What a callee's enterWith() into another store leaves behind, read
      // from AsyncLocalStorage.run() itself: with() leaves the same.
      const store = new AsyncLocalStorage<string>();
      assert.throws(() =>
        store.run("x", () => {
          tenant.enterWith("tenant-b");
          throw new Error("boom");
        }),
      );
      const afterRun = tenant.getStore();
      tenant.enterWith("tenant-a");
      manager.with(other, () => {
        assert.throws(
          () =>
            manager.with(request, () => {
              tenant.enterWith("tenant-b");
              throw new Error("boom");
            }),
          /boom/,
        );
        assert.equal(seen(), "other");
        assert.equal(
          tenant.getStore(),
          afterRun,
          "as after AsyncLocalStorage.run()",
        );
      });
    });
  });

  it("keeps the callback's arity, which some libraries read", () => {
    const arities = [
      () => 0,
      (_a: 1) => 1,
      (_a: 1, _b: 2, _c: 3) => 3,
      (_a: 1, _b: 2, _c: 3, _d: 4, _e: 5, _f: 6) => 6,
    ];
    for (const f of arities) {
      assert.equal(manager.bind(manager.active(), f).length, f.length);
      assert.equal(manager.bind(request, f).length, f.length);
      assert.equal(
        manager.bind(
          request,
          f,
        )(...([1, 2, 3, 4, 5, 6] as unknown as Parameters<typeof f>)),
        f.length,
      );
    }
  });

  it("leaves the caller's context in place when the callback throws", () => {
    const bound = manager.with(request, () =>
      manager.bind(manager.active(), () => {
        throw new Error("boom");
      }),
    );
    manager.with(other, () => {
      assert.throws(bound, /boom/);
      assert.equal(seen(), "other");
    });
  });
});
