// `npm run demo` as a new user meets it (here with --once so it stops after
// printing): the shop and the viewer come up, orders flow, and the output
// shows customer c-42's traces, SQL, queue hop, third-party call and logs.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { cleanEnv, testBroker } from "@threadline/test-support";

it("runs the demo end to end and shows how to find c-42", async () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-demo-"));
  try {
    const amqpUrl = await testBroker();
    const demo = fileURLToPath(new URL("../scripts/demo.mjs", import.meta.url));
    // No DATABASE_URL: the demo's embedded PostgreSQL (PGlite) is part of what is tested.
    const child = spawn(
      process.execPath,
      [demo, "--once", "--port", "0", "--otlp-port", "0"],
      {
        env: {
          ...cleanEnv(),
          AMQP_URL: amqpUrl,
          THREADLINE_DB: join(dir, "demo.sqlite"),
        },
      },
    );
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c));
    const code = await new Promise<number | null>((resolve) =>
      child.on("close", resolve),
    );
    assert.equal(code, 0, out);
    for (const expected of [
      "embedded PGlite",
      "POST /orders as c-42 (lamp): 201",
      "POST /orders as c-42 (teapot): 404",
      "$ npx threadline search --customer c-42",
      "gateway POST /orders",
      "SQL SELECT price_cents FROM products WHERE sku = $1",
      "third party payments-provider: POST",
      "process shop.payments",
      "log info: order paid",
      'traces for the planted customer id "evil": 0',
      "with baggage",
      "/?customer=c-42",
    ]) {
      assert.ok(out.includes(expected), `${expected}\n---\n${out}`);
    }
    assert.match(
      out,
      /payments provider got \d+ calls: \d+ with traceparent, 0 with baggage/,
    );
    const rows = out
      .split("$ npx threadline search --customer c-42")[1]!
      .split("$ npx threadline trace")[0]!;
    assert.equal(
      rows
        .trim()
        .split("\n")
        .filter((l) => l.includes("c-42")).length,
      3,
      rows,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
