// disable() puts back every method of pino's logger prototype that enable()
// replaced, and a second enable() replaces them again.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { it } from "node:test";
import { PinoInstrumentation } from "@threadline/instrumentation-pino";

const require = createRequire(import.meta.url);

/** The prototype's own methods, by key. */
function methods(proto: object): Map<PropertyKey, unknown> {
  const out = new Map<PropertyKey, unknown>();
  for (const key of Reflect.ownKeys(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, key);
    if (typeof d?.value === "function") out.set(key, d.value);
  }
  return out;
}

it("puts pino's methods back on disable, and takes them again on enable", () => {
  const instrumentation = new PinoInstrumentation();
  instrumentation.enable();
  const pino = require("pino") as (o?: object, s?: object) => object;
  // A logger's prototype is made per logger, from the shared one.
  const proto = Object.getPrototypeOf(
    Object.getPrototypeOf(pino({}, { write() {} })),
  ) as object;
  const patched = methods(proto);
  instrumentation.disable();
  const plain = methods(proto);
  const changed = [...patched.keys()].filter(
    (k) => patched.get(k) !== plain.get(k),
  );
  // asJson, setLevel, isLevelEnabled, child and setBindings.
  assert.equal(changed.length, 5, changed.map(String).join(", "));
  assert.deepEqual([...plain.keys()], [...patched.keys()]);
  for (const k of changed)
    assert.doesNotMatch(
      (plain.get(k) as () => void).toString(),
      /threadline|self\.#enabled/,
      String(k),
    );
  instrumentation.enable();
  const again = methods(proto);
  instrumentation.disable();
  for (const k of changed) assert.notEqual(again.get(k), plain.get(k));
});
