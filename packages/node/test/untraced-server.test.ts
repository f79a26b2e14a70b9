// The SDK's own listeners (Prometheus, health) never take the host down.
import assert from "node:assert/strict";
import { it } from "node:test";
import { startUntracedServer } from "../src/internal/untraced-server.ts";

it("resolves to nothing, without throwing, on a port out of range", async () => {
  const server = await startUntracedServer(
    { what: "the test endpoint", variable: "THREADLINE_TEST_PORT" },
    "127.0.0.1",
    70_000,
    (_req, res) => res.end(),
  );
  assert.equal(server, undefined);
});

it("listens on an IPv6 host given in brackets, as URLs write it", async () => {
  const server = await startUntracedServer(
    { what: "the test endpoint", variable: "THREADLINE_TEST_PORT" },
    "[::1]",
    0,
    (_req, res) => res.end("ok"),
  );
  assert.ok(server, "the server listens");
  try {
    assert.match(server.origin, /^http:\/\/\[::1\]:\d+$/);
    const res = await fetch(server.origin);
    assert.equal(await res.text(), "ok");
  } finally {
    await server.close(100);
  }
});
