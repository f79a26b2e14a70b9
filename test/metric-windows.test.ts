// Every collector of the metrics (the OTLP export, a Prometheus scrape, the
// alarm rules) reads the event loop's delay and utilisation since its own
// last collection: a stall of the loop reaches each of them, whoever
// collected in between.
import assert from "node:assert/strict";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  startOtlpReceiver,
  startService,
  waitFor,
  writeRulesFile,
  type OtlpReceiver,
  type ReceivedMetric,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** How long the service holds its loop, and what a window holding it reads at least. */
const STALL_MS = 400;
const STALLED_S = 0.3;

/** Each OTLP export's `max` event-loop delay and utilisation, in order. */
function exported(receiver: OtlpReceiver): { max: number; busy: number }[] {
  const of = (name: string): ReceivedMetric[] =>
    receiver.metrics.filter((m) => m.name === name);
  const delays = of("nodejs.eventloop.delay");
  // One of each per export, at the same time: paired by it.
  const busy = new Map(
    of("nodejs.eventloop.utilization").map((m) => [
      m.points[0]!.timeUnixNano,
      m.points[0]!.value!,
    ]),
  );
  return delays.map((m) => {
    const max = m.points.find(
      (p) => p.attributes["nodejs.eventloop.delay.percentile"] === "max",
    )!;
    return { max: max.value!, busy: busy.get(max.timeUnixNano) ?? NaN };
  });
}

/** The exports after `seen` of them, once there are `more`. */
function nextExports(receiver: OtlpReceiver, seen: number, more: number) {
  return waitFor(
    () => {
      const all = exported(receiver);
      return all.length >= seen + more && all.slice(seen);
    },
    { what: `${more} more metric exports`, timeoutMs: 20_000 },
  );
}

for (const [what, metric] of [
  // A histogram: evaluations need no observable callback at all.
  ["a histogram", "threadline.messaging.delivery.latency"],
  // An observable gauge: evaluations read it through windows of their own.
  ["the event loop's utilisation", "nodejs.eventloop.utilization"],
] as const)
  it(`an alarm rule on ${what}, evaluated between exports, leaves them the loop's stall`, async () => {
    // `for` shorter than the export interval: the evaluations cannot wait
    // for the exports' values.
    const rules = writeRulesFile({
      rules: [{ name: "watched", kind: "metric", metric, above: 5, for: "1s" }],
    });
    const rulesFile = rules.path;
    const receiver = await startOtlpReceiver();
    const svc = await startService({
      entry: "stall.cjs",
      cwd: fixtures,
      execArgv: ["-r", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "stalling",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        THREADLINE_WATCH_URL: "none",
        OTEL_METRIC_EXPORT_INTERVAL: "2000",
        THREADLINE_ALARMS_FILE: rulesFile,
        THREADLINE_ALARMS_INTERVAL: "200",
      },
    });
    try {
      const seen = (await nextExports(receiver, 0, 1)).length;
      await (await fetch(`${svc.url}/stall/${STALL_MS}`)).text();
      // The first may have been collected before the stall.
      const after = await nextExports(receiver, seen, 2);
      const stalled = after.find((e) => e.max >= STALLED_S);
      assert.ok(
        stalled,
        `an export after the stall has its delay: max ${after.map((e) => e.max).join(", ")} s`,
      );
      // 400 ms of the 2 s since the export before.
      assert.ok(stalled.busy >= 0.15, `utilisation ${stalled.busy}`);
      assert.deepEqual(
        svc.stderr.filter((l) => l.includes("alarm")),
        [],
        "the rule was taken and raised nothing",
      );
    } finally {
      await svc.stop();
      await receiver.close();
      rules.remove();
    }
  });

it("a Prometheus scrape and the OTLP export each see a stall of the loop, whichever collects first", async () => {
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const svc = await startService({
    entry: "stall.cjs",
    cwd: fixtures,
    execArgv: ["-r", "@threadline/node/register"],
    env: {
      OTEL_SERVICE_NAME: "stalling",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      THREADLINE_WATCH_URL: "none",
      OTEL_METRICS_EXPORTER: "otlp,prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
      OTEL_METRIC_EXPORT_INTERVAL: "1000",
      THREADLINE_ALARMS: "false",
    },
  });
  const scrape = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    return {
      max: value(
        /^nodejs_eventloop_delay_seconds\{nodejs_eventloop_delay_percentile="max",[^}]*\} (\S+)$/m,
      ),
      busy: value(/^nodejs_eventloop_utilization_ratio\{[^}]*\} (\S+)$/m),
    };
  };
  const stall = async () =>
    (await fetch(`${svc.url}/stall/${STALL_MS}`)).text();
  try {
    let seen = (await nextExports(receiver, 0, 1)).length;
    await scrape();

    // Scraped first: the export after the scrape still has the stall.
    await stall();
    const scraped = await scrape();
    assert.ok(scraped.max >= STALLED_S, `the scrape's max ${scraped.max} s`);
    const after = await nextExports(receiver, seen, 2);
    seen += after.length;
    assert.ok(
      after.some((e) => e.max >= STALLED_S),
      `the exports' max after a scrape: ${after.map((e) => e.max).join(", ")} s`,
    );

    // Exported first: the scrape after the export still has the stall.
    await stall();
    const exports = await nextExports(receiver, seen, 2);
    assert.ok(
      exports.some((e) => e.max >= STALLED_S),
      `the exports' max: ${exports.map((e) => e.max).join(", ")} s`,
    );
    const late = await scrape();
    assert.ok(
      late.max >= STALLED_S,
      `the scrape's max after exports ${late.max} s`,
    );
    // 400 ms of the few seconds since the scrape before.
    assert.ok(late.busy >= 0.08, `the scrape's utilisation ${late.busy}`);
  } finally {
    await svc.stop();
    await receiver.close();
  }
});
