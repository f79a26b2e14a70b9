import assert from "node:assert/strict";
import { it } from "node:test";
import { retryAfterMs } from "../src/retry-after.ts";

it("reads Retry-After as seconds or an HTTP date", () => {
  assert.equal(retryAfterMs("0"), 0);
  assert.equal(retryAfterMs("2"), 2000);
  const soon = retryAfterMs(new Date(Date.now() + 60_000).toUTCString())!;
  assert.ok(soon > 55_000 && soon <= 60_000, String(soon));
  // A date gone by asks for no wait, as "0" does.
  assert.equal(retryAfterMs(new Date(Date.now() - 60_000).toUTCString()), 0);
});

it("takes an empty or unreadable Retry-After for none", () => {
  // Number() reads an empty or blank value as 0: "retry now".
  for (const value of [undefined, "", " ", "\t", "soon"])
    assert.equal(retryAfterMs(value), undefined, JSON.stringify(value));
});
