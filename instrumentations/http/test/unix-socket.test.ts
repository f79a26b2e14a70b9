// A service listening on a unix socket (behind nginx or a sidecar on the
// same host) has callers without an address. Only this host can reach the
// socket, so its callers are loopback callers: trusted for baggage, the
// customer header and X-Forwarded-For as far as `loopback` is listed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Gateways } from "./gateways.ts";

const dir = mkdtempSync(join(tmpdir(), "threadline-unix-"));

let gateways: Gateways;

/** The gateway fixture listening on a socket in `dir` named after it. */
async function service(
  name: string,
  env: Record<string, string>,
): Promise<string> {
  const socketPath = join(dir, `${name}.sock`);
  await gateways.start(name, { LISTEN_PATH: socketPath, ...env });
  return socketPath;
}

before(async () => {
  gateways = await Gateways.open();
});

after(async () => {
  await gateways.close();
  rmSync(dir, { recursive: true, force: true });
});

let calls = 0;

/** The customer.id and client.address of the SERVER span of a request over `socketPath` with these headers. */
async function recorded(
  socketPath: string,
  headers: Record<string, string>,
): Promise<[unknown, unknown]> {
  const path = `/call-${++calls}`;
  await new Promise<void>((resolve, reject) => {
    http
      .get({ socketPath, path, headers }, (res) => {
        res.resume();
        res.on("end", resolve);
      })
      .on("error", reject);
  });
  const span = await gateways.serverSpan(path);
  return [span.attributes["customer.id"], span.attributes["client.address"]];
}

describe("an internal service on a unix socket", () => {
  let socketPath: string;
  before(async () => {
    socketPath = await service("unix-internal", {});
  });

  it("takes the customer from its caller's baggage", async () => {
    assert.deepEqual(
      await recorded(socketPath, { baggage: "customer.id=c-9" }),
      ["c-9", undefined],
    );
  });

  it("takes the customer from its caller's customer header", async () => {
    assert.deepEqual(await recorded(socketPath, { "x-customer-id": "c-8" }), [
      "c-8",
      undefined,
    ]);
  });
});

describe("an internal service on a unix socket that trusts no loopback caller", () => {
  let socketPath: string;
  before(async () => {
    socketPath = await service("unix-private-only", {
      THREADLINE_TRUSTED_CALLERS: "private",
      THREADLINE_TRUSTED_PROXIES: "private",
    });
  });

  it("reads neither baggage, the customer header nor X-Forwarded-For", async () => {
    assert.deepEqual(
      await recorded(socketPath, {
        baggage: "customer.id=c-9",
        "x-customer-id": "c-8",
        "x-forwarded-for": "203.0.113.66",
      }),
      [undefined, undefined],
    );
  });
});

describe("an edge service on a unix socket behind a proxy on the same host", () => {
  let socketPath: string;
  before(async () => {
    socketPath = await service("unix-edge", { THREADLINE_EDGE: "true" });
  });

  it("takes the client the proxy names", async () => {
    assert.deepEqual(
      await recorded(socketPath, { "x-forwarded-for": "203.0.113.66" }),
      [undefined, "203.0.113.66"],
    );
  });

  it("still reads no baggage", async () => {
    assert.deepEqual(
      await recorded(socketPath, { baggage: "customer.id=c-9" }),
      [undefined, undefined],
    );
  });
});
