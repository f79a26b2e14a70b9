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

it("reads the obsolete HTTP date forms, as GMT", () => {
  // RFC 850 and asctime forms, which RFC 9110 still has a recipient accept;
  // asctime names no zone and means GMT, whatever the process's zone is.
  const zone = process.env.TZ;
  process.env.TZ = "America/New_York";
  try {
    const at = new Date(Date.now() + 120_000);
    const days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday"];
    const weekday = [...days, "Friday", "Saturday"][at.getUTCDay()]!;
    const [, date, month, year, time] = at.toUTCString().split(" ");
    const dayOfMonth = String(at.getUTCDate()).padStart(2, " ");
    for (const value of [
      `${weekday}, ${date}-${month}-${year!.slice(2)} ${time} GMT`,
      `${weekday.slice(0, 3)} ${month} ${dayOfMonth} ${time} ${year}`,
    ]) {
      const ms = retryAfterMs(value);
      assert.ok(ms !== undefined && ms > 110_000 && ms <= 120_000, value);
    }
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  }
});

it("takes a Retry-After in neither RFC 9110 form for none", () => {
  // Number() and Date.parse() read far more than whole seconds and HTTP
  // dates: "-5" as a date in 2001 (a wait of 0), "1.5e3" and "0x10" as
  // seconds. A value a server did not mean as a wait asks for none.
  for (const value of [
    "-5",
    "-0",
    "+5",
    "1.5",
    "1.5e3",
    "0x10",
    "0b11",
    "1e3",
    "Infinity",
    "5 seconds",
    "5, 6",
    "2031-01-01",
    "2031-01-01T00:00:00Z",
    "1 Jan 2031",
    "Wed, 01 Jan 2031 00:00:00 +0000",
    "Wed, 01 Jan 2031 00:00:00 UTC",
    "Wed, 1 Jan 2031 00:00:00 GMT",
    "Wed, 31 Feb 2031 00:00:00 GMT",
    "Wed, 01 Jan 2031 24:00:00 GMT",
    "wed, 01 jan 2031 00:00:00 gmt",
    "Wednesday, 01-Jan-2031 00:00:00 GMT",
    "Wed Jan 1 00:00:00 2031",
  ])
    assert.equal(retryAfterMs(value), undefined, JSON.stringify(value));
});
