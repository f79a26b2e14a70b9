// Baggage a trusted caller sends goes on to the service's internal calls,
// with http and fetch alike, in the form it came in: values that allow their
// characters as they are keep them, so a header does not grow from hop to
// hop until the size limit drops its members.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startRecordingServer,
  startService,
  waitFor,
  type RecordingServer,
  type RunningService,
} from "@threadline/test-support";

let internal: RecordingServer;
let service: RunningService;

before(async () => {
  internal = await startRecordingServer();
  service = await startService({
    entry: "calling-service.mjs",
    cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
    env: {
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
    },
  });
});

after(async () => {
  await service.stop();
  await internal.close();
});

/** The baggage header each of the service's calls, with http and with fetch, sent on for a caller's `baggage`. */
async function forwarded(baggage: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const how of ["http", "fetch"]) {
    const path = `/${how}-${internal.requests.length}`;
    const q = new URLSearchParams({ how, url: `${internal.url}${path}` });
    const res = await fetch(`${service.url}/work?${q}`, {
      headers: { baggage },
    });
    assert.equal(res.status, 200, await res.text());
    const seen = await waitFor(
      () => internal.requests.find((r) => r.path === path),
      { what: `the ${how} call` },
    );
    out[how] = seen.headers["baggage"];
  }
  return out;
}

describe("baggage from a trusted caller", () => {
  it("goes on in the form it came in, URL-like values included", async () => {
    const baggage = "ref=https://shop.example/search?q=red%20shoes";
    assert.deepEqual(await forwarded(baggage), {
      http: baggage,
      fetch: baggage,
    });
  });

  it("keeps a value whose percent-encoded bytes are not UTF-8, with U+FFFD in their place", async () => {
    const replaced = "name=Jos%EF%BF%BD,ok=1";
    assert.deepEqual(await forwarded("name=Jos%E9,ok=1"), {
      http: replaced,
      fetch: replaced,
    });
  });

  it("goes on whole when it is within the limits", async () => {
    const baggage = `ref=https://shop.example/a/b/c?q=red%20shoes&x=${"/".repeat(2800)},tenant=acme`;
    assert.equal(baggage.length, 2859);
    assert.deepEqual(await forwarded(baggage), {
      http: baggage,
      fetch: baggage,
    });
  });
});
