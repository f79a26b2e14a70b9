import assert from "node:assert/strict";
import { it } from "node:test";
import { redactQuery, redactUrl } from "../src/redact.ts";

it("redacts secret-looking query values and keeps the rest", () => {
  assert.equal(
    redactQuery("item=book&api_key=abc&access_token=t&page=2"),
    "item=book&api_key=REDACTED&access_token=REDACTED&page=2",
  );
  assert.equal(redactQuery("password="), "password=");
  assert.equal(redactQuery("q=1"), "q=1");
});

it("redacts user info and secret query values in URLs", () => {
  assert.equal(
    redactUrl("https://user:pw@api.example.com/x?sig=s&a=1#frag"),
    "https://REDACTED:REDACTED@api.example.com/x?sig=REDACTED&a=1#frag",
  );
});

it("redacts secrets in a URL or query string carried in a query value, two deep at most", () => {
  const e = encodeURIComponent;
  assert.equal(
    redactQuery(`redirect_uri=${e("https://x/cb?code=abc&state=1#f")}&a=1`),
    `redirect_uri=${e("https://x/cb?code=REDACTED&state=1#f")}&a=1`,
  );
  assert.equal(
    redactQuery("next=/v?token=t&state=a%3D1%26sig%3Ds"),
    `next=${e("/v?token=REDACTED")}&state=${e("a=1&sig=REDACTED")}`,
  );
  assert.equal(
    redactQuery(`to=${e(`/a?to=${e("/b?token=t")}`)}`),
    `to=${e(`/a?to=${e("/b?token=REDACTED")}`)}`,
  );
  const third = `to=${e(`/a?to=${e(`/b?to=${e("/c?token=t")}`)}`)}`;
  assert.equal(redactQuery(third), third);
  // Nothing to redact: the value stays as it came, however it is written.
  for (const q of ["next=/v?q=1+2&x=%2F", "r=%E0%A4%3Fa%3D1", "to=%ZZ"])
    assert.equal(redactQuery(q), q);
});

it("reads past an escape it cannot decode in a carried URL", () => {
  assert.equal(
    redactQuery("next=%ZZ%E0%A4%3Ftoken%3Dt%26q%3D%25&page=2"),
    "next=%25ZZ%25E0%25A4%3Ftoken%3DREDACTED%26q%3D%25&page=2",
  );
  assert.equal(redactQuery("to=%"), "to=%");
});
