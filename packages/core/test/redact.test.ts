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
