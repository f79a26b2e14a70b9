// The customer header a service forwards (a gateway copying its caller's
// headers onto its own call) reaches an internal service only when it names
// the customer the service took the request for. Internal services read
// that header from their trusted callers: a copy of an anonymous or
// untrusted caller's would make the next service take that caller's word
// for the customer, which the first one refused.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import {
  startRecordingServer,
  waitFor,
  type OtlpReceiver,
  type RecordingServer,
  type RunningService,
} from "@threadline/test-support";
import { Gateways } from "./gateways.ts";

const SERVER = 2;
/** How the gateway copies its caller's headers onto its call. */
const HOWS = ["object", "array", "late", "append", "headers", "fetch"];

let receiver: OtlpReceiver;
let internal: RecordingServer;
let gateways: Gateways;

before(async () => {
  gateways = await Gateways.open();
  receiver = gateways.receiver;
  internal = await startRecordingServer();
});

after(async () => {
  await gateways.close();
  await internal.close();
});

/**
 * Asks `svc` to forward the request's headers to `to` in the way `how`,
 * calling from `from`; the gateway's answer.
 */
function ask(
  svc: RunningService,
  how: string | undefined,
  to: string | undefined,
  headers: Record<string, string>,
  from = "127.0.0.1",
): Promise<string> {
  const q = new URLSearchParams();
  if (how !== undefined) q.set("how", how);
  if (to !== undefined) q.set("to", to);
  return new Promise((resolve, reject) => {
    http
      .get(
        `${svc.url}/forward?${q}`,
        { headers, localAddress: from },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () =>
            res.statusCode === 200
              ? resolve(body)
              : reject(new Error(`${res.statusCode}: ${body}`)),
          );
        },
      )
      .on("error", reject);
  });
}

/**
 * The customer header and baggage the internal service got, as `svc`
 * forwarded `headers`, by each way of copying them.
 */
async function forwarded(
  svc: RunningService,
  label: string,
  headers: Record<string, string>,
  from?: string,
): Promise<Record<string, [unknown, unknown]>> {
  const got: Record<string, [unknown, unknown]> = {};
  for (const how of HOWS) {
    const path = `/${label}/${how}`;
    await ask(svc, how, `${internal.url}${path}`, headers, from);
    const seen = await waitFor(
      () => internal.requests.find((r) => r.path === path),
      { what: path },
    );
    got[how] = [seen.headers["x-customer-id"], seen.headers["baggage"]];
  }
  return got;
}

/** The same `[customer header, baggage]` for every way of copying. */
const everyWay = (header: unknown, baggage: unknown) =>
  Object.fromEntries(HOWS.map((how) => [how, [header, baggage]]));

describe("a gateway at the edge that forwards its caller's headers", () => {
  let edge: RunningService;
  let orders: RunningService;
  before(async () => {
    orders = await gateways.start("orders", {});
    edge = await gateways.start("edge", {
      THREADLINE_EDGE: "true",
      CUSTOMER_FROM: "session",
    });
  });

  it("sends an internal service no customer header an anonymous caller sent, however it copies it", async () => {
    assert.deepEqual(
      await forwarded(edge, "anonymous", { "X-Customer-Id": "c-victim" }),
      everyWay(undefined, undefined),
    );
  });

  it("sends a signed-in caller's customer header on only when it names that customer", async () => {
    assert.deepEqual(
      await forwarded(edge, "other", {
        cookie: "sid=s1",
        "x-customer-id": "c-victim",
      }),
      everyWay(undefined, "customer.id=c-1"),
    );
    assert.deepEqual(
      await forwarded(edge, "same", {
        cookie: "sid=s1",
        "X-Customer-Id": "c-1",
      }),
      everyWay("c-1", "customer.id=c-1"),
    );
  });

  it("leaves the service behind it without the customer an anonymous caller names", async () => {
    const via = async (headers: Record<string, string>) =>
      JSON.parse(await ask(edge, "object", `${orders.url}/who`, headers)) as {
        customer: string | null;
      };
    assert.deepEqual(await via({ "x-customer-id": "c-victim" }), {
      customer: null,
    });
    assert.deepEqual(
      await via({ cookie: "sid=s1", "x-customer-id": "c-victim" }),
      { customer: "c-1" },
    );
    const spans = await receiver.waitForSpans(
      (all) =>
        all.filter((s) => s.resource["service.name"] === "orders").length >= 2,
      "the orders service's two server spans",
    );
    const customers = spans
      .filter((s) => s.resource["service.name"] === "orders")
      .filter((s) => s.kind === SERVER)
      .map((s) => s.attributes["customer.id"] ?? null);
    assert.deepEqual(customers.sort(), ["c-1", null]);
  });

  it("leaves the service behind it without the customer an anonymous upload names", async () => {
    // curl asks to continue with an upload, and the gateway copies that
    // header too: Node writes out such a request's header block at once.
    const seen = JSON.parse(
      await ask(edge, "object", `${orders.url}/who`, {
        expect: "100-continue",
        baggage: "customer.id=c-victim",
        "x-customer-id": "c-victim",
      }),
    ) as { customer: string | null };
    assert.deepEqual(seen, { customer: null });
  });

  it("takes no customer from an anonymous caller's baggage that the application extracts itself", async () => {
    const who = JSON.parse(
      await ask(edge, "extracted", `${orders.url}/who`, {
        baggage: "customer.id=c-victim,team=blue",
      }),
    ) as { customer: string | null };
    assert.deepEqual(who, { customer: null });
  });
});

describe("an internal service that forwards its caller's headers", () => {
  let inner: RunningService;
  before(async () => {
    inner = await gateways.start("inner", {
      THREADLINE_TRUSTED_CALLERS: "127.0.0.1",
    });
  });

  it("sends on no customer header an untrusted caller sent", async () => {
    assert.deepEqual(
      await forwarded(
        inner,
        "untrusted",
        { "x-customer-id": "c-victim", baggage: "customer.id=c-victim" },
        "127.0.0.4",
      ),
      everyWay(undefined, undefined),
    );
  });

  it("sends on the customer header of a trusted caller, the customer it took", async () => {
    assert.deepEqual(
      await forwarded(inner, "trusted", { "x-customer-id": "c-9" }),
      everyWay("c-9", "customer.id=c-9"),
    );
  });
});
