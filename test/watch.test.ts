// Watching one customer while the system runs: the example shop samples 10%
// of traffic and logs at info; `threadline watch c-42` (the CLI, against a
// running `threadline dev`) makes c-42's next requests fully traced with
// debug lines from every service, while c-7 keeps info-only logs and ~10%
// sampling; when the watch expires c-42 is back to normal. No service is
// restarted. Everything is asserted on the OTLP the services send.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { startDevServer } from "@threadline/cli";
import {
  cleanEnv,
  startOtlpReceiver,
  startShop,
  stopTestServers,
  testBroker,
  testDatabase,
  waitFor,
  type OtlpReceiver,
  type ReceivedLog,
  type ReceivedSpan,
  type Shop,
} from "@threadline/test-support";

const SERVER = 2;
const DEBUG = 5; // OTLP severity number of pino's debug
const INFO = 9;
const POLL_MS = 300;
const WATCH_S = 12;
const cli = join(
  dirname(
    createRequire(import.meta.url).resolve("@threadline/cli/package.json"),
  ),
  "bin/threadline.js",
);

const service = (x: { resource: Record<string, unknown> }) =>
  x.resource["service.name"];

async function order(
  shop: Shop,
  customer: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const res = await fetch(`${shop.gateway.url}/orders`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-customer-id": customer,
      ...headers,
    },
    body: JSON.stringify({ item: "pen", quantity: 1 }),
  });
  await res.text();
  assert.equal(res.status, 201);
}

/** Gateway root spans of `customer` started in [from, to) (ms). */
function roots(
  spans: ReceivedSpan[],
  customer: string,
  from: number,
  to = Infinity,
): ReceivedSpan[] {
  return spans.filter((s) => {
    const ms = Number(s.startTimeUnixNano / 1_000_000n);
    return (
      service(s) === "gateway" &&
      s.kind === SERVER &&
      s.attributes["customer.id"] === customer &&
      ms >= from &&
      ms < to
    );
  });
}

function logsOf(logs: ReceivedLog[], customer: string): ReceivedLog[] {
  return logs.filter((l) => l.attributes["customer.id"] === customer);
}

describe("watching one customer", () => {
  let receiver: OtlpReceiver;
  let dev: Awaited<ReturnType<typeof startDevServer>>;
  let shop: Shop;

  before(async () => {
    const [databaseUrl, amqpUrl] = await Promise.all([
      testDatabase(),
      testBroker(),
    ]);
    receiver = await startOtlpReceiver();
    // The watch list comes from a real `threadline dev`; telemetry goes to the test receiver.
    dev = await startDevServer({
      dbPath: ":memory:",
      otlpPort: 0,
      viewerPort: 0,
    });
    shop = await startShop({
      otlpEndpoint: receiver.url,
      databaseUrl,
      amqpUrl,
      env: {
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.1",
        OTEL_BSP_SCHEDULE_DELAY: "200",
        OTEL_BLRP_SCHEDULE_DELAY: "200",
        THREADLINE_WATCH_URL: `${dev.otlpUrl}/threadline/v1/watch`,
        THREADLINE_WATCH_INTERVAL: String(POLL_MS),
      },
    });
  });

  after(async () => {
    await shop?.stop();
    await dev?.close();
    await receiver?.close();
    await stopTestServers();
  });

  const threadline = async (...args: string[]) =>
    promisify(execFile)(process.execPath, [cli, ...args], {
      env: cleanEnv() as NodeJS.ProcessEnv,
    });

  it("traces and debug-logs c-42 everywhere while watched, and nobody else", async () => {
    // Before: c-42 and c-7 are ordinary customers.
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) {
      await Promise.all([
        ...Array.from({ length: 5 }, () => order(shop, "c-7")),
        order(shop, "c-42"),
      ]);
    }

    const watched = await threadline(
      "watch",
      "c-42",
      "--for",
      `${WATCH_S}s`,
      "--viewer",
      dev.viewerUrl,
      "--json",
    );
    const list = JSON.parse(watched.stdout) as {
      watch: Array<{ customer: string; until: string; level: string }>;
    };
    assert.deepEqual(
      list.watch.map((e) => [e.customer, e.level]),
      [["c-42", "debug"]],
    );
    const watchEnd = Date.parse(list.watch[0]!.until);
    // Every service reads the list every POLL_MS; give each a few reads.
    await new Promise((r) => setTimeout(r, POLL_MS * 5));

    // The next 20 requests of c-42, with c-7's traffic going on beside them;
    // half of c-7's try to plant a watch: the gateway is an edge and ignores it.
    const t1 = Date.now();
    const others: Array<Promise<void>> = [];
    const planted = {
      baggage: `threadline.watch=debug;until=${Math.floor(watchEnd / 1000)}`,
    };
    for (let i = 0; i < 20; i++) {
      others.push(order(shop, "c-7"), order(shop, "c-7", planted));
      await order(shop, "c-42");
    }
    await Promise.all(others);
    const t2 = Date.now();
    assert.ok(
      t2 < watchEnd - 1000,
      "the 20 watched requests finished well before the watch expired",
    );

    const watchedRoots = await waitFor(
      () => {
        const r = roots(receiver.spans, "c-42", t1, t2);
        return r.length === 20 && r;
      },
      { what: "all 20 watched requests traced", timeoutMs: 20_000 },
    );
    for (const root of watchedRoots) {
      assert.equal(root.attributes["threadline.watch"], "debug");
      // End to end: all three services, and debug lines from each.
      const trace = await waitFor(
        () => {
          const t = receiver.spans.filter((s) => s.traceId === root.traceId);
          return t.length === 9 && t;
        },
        { what: `the whole trace ${root.traceId}` },
      );
      assert.deepEqual([...new Set(trace.map(service))].sort(), [
        "gateway",
        "orders",
        "worker",
      ]);
      const debugFrom = await waitFor(
        () => {
          const s = new Set(
            receiver.logs
              .filter(
                (l) => l.traceId === root.traceId && l.severityNumber === DEBUG,
              )
              .map(service),
          );
          return s.size === 3 && s;
        },
        { what: `debug lines of ${root.traceId} from every service` },
      );
      assert.deepEqual([...debugFrom].sort(), ["gateway", "orders", "worker"]);
    }
    // Nothing of c-42's went to the payments provider beyond trace context.
    for (const r of await shop.paymentsReceived())
      assert.equal(r.headers.baggage, undefined);

    // c-7 meanwhile: 90 requests at 10%, and not one debug line. (Each
    // order logs 5 info lines, sampled or not.)
    await waitFor(() => logsOf(receiver.logs, "c-7").length >= 90 * 5, {
      what: "every line of c-7",
    });
    const c7 = roots(receiver.spans, "c-7", t0).length;
    assert.ok(c7 >= 1 && c7 <= 25, `c-7 sampled ${c7} of 90 requests`);
    assert.ok(
      logsOf(receiver.logs, "c-7").every((l) => l.severityNumber >= INFO),
      "c-7 has info lines only",
    );
    // Before the watch, c-42 was ordinary too.
    assert.ok(
      logsOf(receiver.logs, "c-42")
        .filter((l) => Number(l.timeUnixNano / 1_000_000n) < t1 - POLL_MS * 5)
        .every((l) => l.severityNumber >= INFO),
    );

    // After expiry: back to normal, with no restart and nothing else done.
    await new Promise((r) =>
      setTimeout(r, Math.max(0, watchEnd - Date.now()) + POLL_MS * 3),
    );
    const listed = await threadline("watch", "--viewer", dev.viewerUrl);
    assert.match(listed.stdout, /nobody is watched/);
    const t3 = Date.now();
    for (let i = 0; i < 6; i++)
      await Promise.all(Array.from({ length: 5 }, () => order(shop, "c-42")));
    const late = await waitFor(
      () => {
        const l = logsOf(receiver.logs, "c-42").filter(
          (x) => Number(x.timeUnixNano / 1_000_000n) >= t3,
        );
        return l.length >= 30 * 5 && l;
      },
      { what: "every line of c-42 after expiry" },
    );
    const after = roots(receiver.spans, "c-42", t3);
    assert.ok(after.length <= 12, `c-42 sampled ${after.length} of 30 after`);
    assert.ok(
      after.every((s) => s.attributes["threadline.watch"] === undefined),
    );
    assert.ok(
      late.every((l) => l.severityNumber >= INFO),
      "c-42 has info lines only after expiry",
    );
  });
});
