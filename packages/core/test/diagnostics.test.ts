import assert from "node:assert/strict";
import { it } from "node:test";
import { Diagnostics } from "../src/diagnostics.ts";

it("takes OTEL_LOG_LEVEL's names, and no property every object has", () => {
  const d = new Diagnostics();
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"])
    assert.equal(d.setLevel(name), false, name);
  assert.equal(d.enabled("warn"), true, "an unknown level changes nothing");
  assert.equal(d.setLevel(" ERROR "), true);
  assert.equal(d.enabled("warn"), false);
  assert.equal(d.enabled("error"), true);
  assert.equal(d.setLevel("all"), true);
  assert.equal(d.enabled("verbose"), true);
});
