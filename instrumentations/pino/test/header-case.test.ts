// Header names are case-insensitive, and applications log outgoing headers
// in the case they send them with: the default redaction of secret headers
// holds in any case, in the lines written and the records exported, while
// the application's and the operator's own paths keep pino's exact match.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type ReceivedLog,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const SECRETS = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `cap-${n}`);

/** The fixture's stdout lines and exported records, by message. */
async function run(env: Record<string, string> = {}) {
  const receiver = await startOtlpReceiver();
  try {
    const svc = await startService({
      entry: "header-case.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "header-case",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
        ...env,
      },
    });
    await svc.exited;
    const count = env["THREADLINE_LOG_REDACT"] === undefined ? 5 : 6;
    const logs = await receiver.waitForLogs(
      (l) => l.length >= count,
      "the log records",
    );
    const lines = svc.stdout.map(
      (l) => JSON.parse(l) as Record<string, unknown>,
    );
    const line = (msg: string) => lines.find((l) => l["msg"] === msg);
    const record = (msg: string) => logs.find((l) => l.body === msg);
    const written = JSON.stringify({ lines, logs }, (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    return { line, record, written, logs };
  } finally {
    await receiver.close();
  }
}

function assertRedacted(
  line: (msg: string) => Record<string, unknown> | undefined,
  record: (msg: string) => ReceivedLog | undefined,
): void {
  for (const get of [
    (msg: string) => line(msg),
    (msg: string) => record(msg)?.attributes,
  ]) {
    assert.deepEqual(get("outgoing")?.["headers"], {
      Authorization: "[Redacted]",
      "Content-Type": "text/plain",
    });
    assert.deepEqual(get("upstream")?.["upstream"], {
      url: "/pay",
      headers: {
        COOKIE: "[Redacted]",
        "Set-Cookie": "[Redacted]",
        "Proxy-Authorization": "[Redacted]",
      },
    });
    assert.equal(get("fields")?.["Authorization"], "[Redacted]");
    assert.deepEqual(get("fields")?.["call"], { Cookie: "[Redacted]" });
    assert.deepEqual(get("served")?.["headers"], {
      "set-COOKIE": "[Redacted]",
    });
    assert.deepEqual(get("served")?.["req"], {
      method: "GET",
      headers: { AuthoriZation: "[Redacted]" },
    });
    // The application's own path matches as pino matches: exactly.
    assert.deepEqual(get("own paths")?.["headers"], {
      authorization: "[Redacted]",
      Authorization: "own-upper-2",
    });
  }
}

it("redacts secret headers in any letter case, and only the defaults so", async () => {
  const { line, record, written } = await run();
  assertRedacted(line, record);
  for (const secret of SECRETS)
    assert.ok(!written.includes(secret), `${secret} leaked`);
});

it("keeps the defaults in any case beside the operator's own paths", async () => {
  const { line, record, written } = await run({
    THREADLINE_LOG_REDACT: "order.card",
  });
  assertRedacted(line, record);
  for (const secret of SECRETS)
    assert.ok(!written.includes(secret), `${secret} leaked`);
  for (const get of [line("paid"), record("paid")?.attributes])
    assert.deepEqual(get?.["order"], {
      card: "[Redacted]",
      Card: "own-upper-3",
    });
});
