// What `customerFromRequest` returns is the customer id of every request:
// a value that is no customer id leaves them all without one, and the
// application is told so, once, without the value being quoted (an id that
// fails is as likely as not a person's name or e-mail address).
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { waitFor, type RunningService } from "@threadline/test-support";
import { Gateways } from "./gateways.ts";

let edge: RunningService;
let gateways: Gateways;

/** An edge gateway whose customerFromRequest is the fixture's `from`. */
function gateway(from: string): Promise<RunningService> {
  return gateways.start(`customer-from-${from}`, {
    THREADLINE_EDGE: "true",
    CUSTOMER_FROM: from,
  });
}

before(async () => {
  gateways = await Gateways.open();
  edge = await gateway("user");
});

after(() => gateways.close());

let calls = 0;

/** The customer.id of the SERVER span of a request to the edge with these headers (raw: name and value in turn). */
async function recorded(headers: string[], svc = edge): Promise<unknown> {
  const path = `/call-${++calls}`;
  await new Promise<void>((resolve, reject) => {
    http
      .get(
        `${svc.url}${path}`,
        { headers: ["Host", new URL(svc.url).host, ...headers] },
        (res) => {
          res.resume();
          res.on("end", resolve);
        },
      )
      .on("error", reject);
  });
  return (await gateways.serverSpan(path)).attributes["customer.id"];
}

/** The warning about `customerFromRequest` that mentions `why`. */
const warned = (why: RegExp, svc = edge) =>
  waitFor(
    () =>
      svc.stderr.find(
        (line) => line.includes("customerFromRequest") && why.test(line),
      ),
    { what: `a warning that ${why}` },
  );

describe("customerFromRequest returning a string that is no customer id", () => {
  it("takes a valid one", async () => {
    assert.equal(await recorded(["X-User", "c-1"]), "c-1");
  });

  it("warns of two copies of the header, joined with a comma, without quoting them", async () => {
    assert.equal(await recorded(["X-User", "c-1", "X-User", "c-2"]), undefined);
    const line = await warned(/character/);
    assert.match(line, /these requests have no customer id/);
    assert.doesNotMatch(line, /c-1|c-2/);
  });

  it("drops a name with a space, which the same warning said", async () => {
    assert.equal(await recorded(["X-User", "John Doe"]), undefined);
    assert.ok(!edge.stderr.some((line) => line.includes("John")));
  });

  it("warns of an id over 128 characters", async () => {
    assert.equal(await recorded(["X-User", "u".repeat(200)]), undefined);
    const line = await warned(/200 characters/);
    assert.match(line, /128/);
    assert.doesNotMatch(line, /uuuu/);
  });

  it("takes an empty string for no customer, without a warning", async () => {
    const before = edge.stderr.length;
    assert.equal(await recorded(["X-User", ""]), undefined);
    assert.equal(edge.stderr.length, before);
  });
});

describe("customerFromRequest returning a bigint", () => {
  let accounts: RunningService;
  before(async () => {
    accounts = await gateway("account");
  });

  it("takes its digits", async () => {
    assert.equal(
      await recorded(["X-Account", "1".repeat(128)], accounts),
      "1".repeat(128),
    );
  });

  it("warns of one over 128 digits, which the next service would refuse", async () => {
    assert.equal(
      await recorded(["X-Account", `1${"0".repeat(150)}`], accounts),
      undefined,
    );
    assert.match(await warned(/151 characters/, accounts), /128/);
  });
});
