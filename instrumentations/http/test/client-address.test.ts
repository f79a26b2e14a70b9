// client.address on SERVER spans: the caller's socket address, or the client
// an X-Forwarded-For names when, and only as far as, trusted proxies wrote
// it. Anyone else's header is words the caller chose, and an address it
// chose for itself would send an abuse investigation after someone else.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import {
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";
import { Gateways } from "./gateways.ts";

const SERVER = 2;

let receiver: OtlpReceiver;
let gateways: Gateways;

before(async () => {
  gateways = await Gateways.open();
  receiver = gateways.receiver;
});

after(() => gateways.close());

let calls = 0;

/** The client.address and network.peer.address of a request to `svc` from `from` with this X-Forwarded-For. */
async function recorded(
  svc: RunningService,
  forwardedFor: string | undefined,
  from = "127.0.0.1",
): Promise<[unknown, unknown]> {
  const path = `/call-${++calls}`;
  await new Promise<void>((resolve, reject) => {
    http
      .get(
        `${svc.url}${path}`,
        {
          headers:
            forwardedFor === undefined
              ? {}
              : { "x-forwarded-for": forwardedFor },
          localAddress: from,
        },
        (res) => {
          res.resume();
          res.on("end", resolve);
        },
      )
      .on("error", reject);
  });
  const [span] = await receiver
    .waitForSpans(
      (all) =>
        all.filter(
          (s) => s.kind === SERVER && s.attributes["url.path"] === path,
        ).length === 1,
      `the span of ${path}`,
    )
    .then((all) =>
      all.filter((s) => s.kind === SERVER && s.attributes["url.path"] === path),
    );
  return [
    span!.attributes["client.address"],
    span!.attributes["network.peer.address"],
  ];
}

describe("an edge service behind a load balancer on loopback (the default proxies)", () => {
  let edge: RunningService;
  before(async () => {
    edge = await gateways.start("edge-lb", {
      THREADLINE_EDGE: "true",
      THREADLINE_TRUSTED_CALLERS: "none",
    });
  });

  it("takes the client the load balancer names", async () => {
    assert.deepEqual(await recorded(edge, "203.0.113.66"), [
      "203.0.113.66",
      "127.0.0.1",
    ]);
    assert.deepEqual(await recorded(edge, "203.0.113.5:8080"), [
      "203.0.113.5",
      "127.0.0.1",
    ]);
    assert.deepEqual(await recorded(edge, "[2001:db8::1]:4711"), [
      "2001:db8::1",
      "127.0.0.1",
    ]);
  });

  it("does not believe what the client wrote left of it", async () => {
    assert.deepEqual(
      await recorded(edge, "198.51.100.7, 203.0.113.9, 10.0.0.1"),
      ["203.0.113.9", "127.0.0.1"],
    );
  });

  it("records the peer when an entry is not an address", async () => {
    assert.deepEqual(await recorded(edge, "evil <script>, 10.0.0.1"), [
      "127.0.0.1",
      "127.0.0.1",
    ]);
    assert.deepEqual(await recorded(edge, "unknown"), [
      "127.0.0.1",
      "127.0.0.1",
    ]);
  });

  it("records the peer without the header", async () => {
    assert.deepEqual(await recorded(edge, undefined), [
      "127.0.0.1",
      "127.0.0.1",
    ]);
  });
});

describe("a service that trusts no proxy", () => {
  let svc: RunningService;
  before(async () => {
    svc = await gateways.start("no-proxy", {
      THREADLINE_TRUSTED_PROXIES: "none",
    });
  });

  it("records the caller's own address, whatever its X-Forwarded-For says", async () => {
    assert.deepEqual(await recorded(svc, "evil <script>, 10.0.0.1"), [
      "127.0.0.1",
      "127.0.0.1",
    ]);
    assert.deepEqual(await recorded(svc, "203.0.113.66"), [
      "127.0.0.1",
      "127.0.0.1",
    ]);
  });
});

describe("a service that trusts one proxy", () => {
  let svc: RunningService;
  before(async () => {
    svc = await gateways.start("one-proxy", {
      THREADLINE_TRUSTED_PROXIES: "127.0.0.1",
    });
  });

  it("reads only that proxy's header", async () => {
    assert.deepEqual(await recorded(svc, "203.0.113.66", "127.0.0.4"), [
      "127.0.0.4",
      "127.0.0.4",
    ]);
    assert.deepEqual(await recorded(svc, "203.0.113.66", "127.0.0.1"), [
      "203.0.113.66",
      "127.0.0.1",
    ]);
  });

  it("stops at the first address that is not that proxy", async () => {
    assert.deepEqual(
      await recorded(svc, "203.0.113.66, 127.0.0.4", "127.0.0.1"),
      ["127.0.0.4", "127.0.0.1"],
    );
  });
});
