import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import {
  historyFileOf,
  listRuns,
  recordRun,
  summarizeRun,
} from "../src/history.ts";
import {
  pairedDifference,
  pairedRatio,
  renderReport,
  summarize,
  type Measurement,
  type ReportInput,
} from "../src/report.ts";

/** A measured run: `m`'s figures, and those of a quiet one-second run for the rest. */
function measurement(
  m: Pick<Measurement, "contender" | "round" | "rps"> & Partial<Measurement>,
): Measurement {
  return {
    handler: "realistic",
    p50: 1,
    p99: 2,
    cpuUsPerRequest: 100,
    mainThreadUsPerRequest: 50,
    rssBytes: 100 * 2 ** 20,
    startupMs: 50,
    stolenShare: 0,
    ...m,
  };
}

/** Three rounds on a machine whose speed drifts: the third contender's rounds fall in other phases. */
function input(): ReportInput {
  const results: Measurement[] = [];
  const add = (contender: string, round: number, rps: number, cpu: number) =>
    results.push(
      measurement({
        contender,
        round,
        rps,
        cpuUsPerRequest: cpu,
        mainThreadUsPerRequest: cpu / 2,
      }),
    );
  add("none", 0, 1000, 100);
  add("none", 1, 500, 200);
  add("none", 2, 250, 400);
  add("threadline-100", 0, 600, 150);
  add("threadline-100", 1, 200, 500);
  add("threadline-100", 2, 400, 240);
  return {
    results,
    breakdowns: [],
    micro: {} as ReportInput["micro"],
    contenders: [
      { name: "none", label: "no agent" },
      { name: "threadline-100", label: "Threadline" },
    ],
    rounds: 3,
    connections: 20,
    turns: 5,
    handlers: [{ name: "realistic", amount: 100 }],
    warmUp: 50,
    machine: "test",
    versions: {},
    date: "2026-01-01",
  };
}

/** Micro-benchmark figures that render (their values do not matter here). */
function micro(): ReportInput["micro"] {
  const share = { median: 1, range: [1, 1] as [number, number] };
  return {
    pinoPlain: 1,
    pinoCorrelated: 1,
    pinoCorrelatedShare: share,
    pinoCorrelatedExported: 1,
    pinoCorrelatedExportedShare: share,
    rounds: 3,
    turns: 5,
    debugPlain: 1,
    debugGated: 1,
    debugGatedShare: share,
    exportThreadline: 1,
    exportUpstream: 1,
  };
}

it("compares contenders within each round, for differences as for ratios", () => {
  const i = input();
  // Per round: +50, +300, -160. The difference of the two medians (240 - 200)
  // would mix rounds run in different phases of the machine.
  assert.equal(
    pairedDifference(
      i,
      "realistic",
      "threadline-100",
      "none",
      "cpuUsPerRequest",
    ),
    50,
  );
  const share = pairedRatio(i, "realistic", "threadline-100", "none");
  assert.equal(share.median, 0.6);
  assert.deepEqual(share.range, [0.4, 1.6]);
  const tl = summarize(i).find((s) => s.contender === "threadline-100")!;
  assert.equal(tl.cpuAdded, 50);
  assert.equal(tl.mainThreadAdded, 25);
  assert.equal(tl.rssAddedMb, 0);
});

it("compares a contender with the turns no agent took beside it", () => {
  const i = input();
  // Each contender's turns of no agent ran at another speed than no agent's
  // round as a whole; the comparison is with those turns.
  const withBaseline = (
    contender: string,
    round: number,
    rps: number,
    cpu: number,
    base: { rps: number; cpu: number },
  ) =>
    i.results.push(
      measurement({
        contender,
        round,
        rps,
        cpuUsPerRequest: cpu,
        mainThreadUsPerRequest: cpu,
        rssBytes: 150 * 2 ** 20,
        startupMs: 80,
        baseline: {
          rps: base.rps,
          p50: 1,
          p99: 1,
          cpuUsPerRequest: base.cpu,
          mainThreadUsPerRequest: base.cpu,
          stolenShare: 0,
        },
      }),
    );
  i.results = i.results.filter((r) => r.contender === "none");
  withBaseline("threadline-100", 0, 800, 130, { rps: 1000, cpu: 100 });
  withBaseline("threadline-100", 1, 160, 450, { rps: 200, cpu: 400 });
  withBaseline("threadline-100", 2, 240, 420, { rps: 300, cpu: 380 });
  withBaseline("otel", 0, 250, 300, { rps: 500, cpu: 200 });
  withBaseline("otel", 1, 400, 300, { rps: 1000, cpu: 150 });
  withBaseline("otel", 2, 200, 500, { rps: 400, cpu: 300 });
  i.contenders.push({ name: "otel", label: "upstream" });
  const share = pairedRatio(i, "realistic", "threadline-100", "none");
  assert.equal(share.median, 0.8);
  assert.deepEqual(share.range, [0.8, 0.8]);
  // Against another contender: a share over a share (0.8 / 0.5, 0.8 / 0.4, 0.8 / 0.5).
  const over = pairedRatio(i, "realistic", "threadline-100", "otel");
  assert.equal(over.median, 1.6);
  assert.deepEqual(over.range, [1.6, 2]);
  // Additions: +30, +50, +40 against +100, +150, +200.
  assert.equal(
    pairedDifference(
      i,
      "realistic",
      "threadline-100",
      "none",
      "cpuUsPerRequest",
    ),
    40,
  );
  assert.equal(
    pairedDifference(
      i,
      "realistic",
      "otel",
      "threadline-100",
      "cpuUsPerRequest",
    ),
    100,
  );
  // Memory and start-up do not drift: they are read against no agent's own process.
  const tl = summarize(i).find((s) => s.contender === "threadline-100")!;
  assert.equal(tl.rssAddedMb, 50);
  assert.equal(tl.startupAddedMs, 30);
});

it("reports a contender only with the handlers it ran, and reads the yardstick against Threadline", () => {
  const i = input();
  const add = (
    contender: string,
    handler: string,
    round: number,
    rps: number,
    main: number,
  ) =>
    i.results.push(
      measurement({
        contender,
        handler,
        round,
        rps,
        cpuUsPerRequest: main,
        mainThreadUsPerRequest: main,
      }),
    );
  // The yardstick runs with the realistic handler only.
  // No agent's thread: 50, 100 and 200 µs a request.
  add("busy-wait-30", "realistic", 0, 900, 80);
  add("busy-wait-30", "realistic", 1, 400, 130);
  add("busy-wait-30", "realistic", 2, 200, 230);
  for (let round = 0; round < 3; round++) {
    add("none", "hello", round, 10_000, 10);
    add("threadline-100", "hello", round, 7000, 14);
  }
  i.handlers.push({ name: "hello", amount: 100 });
  i.contenders.splice(1, 0, {
    name: "busy-wait-30",
    label: "no agent, 30 µs of busy waiting (a yardstick)",
  });
  i.micro = micro();
  const summary = summarize(i);
  assert.ok(
    summary.some(
      (s) => s.handler === "realistic" && s.contender === "busy-wait-30",
    ),
  );
  assert.ok(
    !summary.some(
      (s) => s.handler === "hello" && s.contender === "busy-wait-30",
    ),
  );
  const { markdown, svg } = renderReport(i);
  const table = (title: string) =>
    markdown.slice(markdown.indexOf(`### ${title}`)).split("\n\n")[2]!;
  const realistic = table("Realistic handler");
  const hello = table("Hello-world handler");
  assert.match(hello, /^\| contender \|/);
  assert.match(realistic, /\| no agent, 30 µs of busy waiting/);
  assert.doesNotMatch(hello, /busy waiting/);
  // Rounds 0.9, 0.8, 0.8 of no agent; +30 µs on the thread in each round.
  assert.match(
    markdown,
    /A yardstick \(realistic\): the service with no agent and 30 µs of busy waiting at the start of each request, nothing else changed, keeps 0\.80 \(0\.80–0\.90\) of no-agent throughput, its application thread measured at \+30 µs per request\. Threadline at 100% sampling adds \+25 µs to that thread and keeps 0\.60\./,
  );
  assert.doesNotMatch(markdown, /A yardstick \(hello\)/);
  assert.match(markdown, /it is not among the contenders above\./);
  // One bar for the yardstick: the realistic group's.
  assert.equal(svg.match(/fill="#d0d0d0"/g)?.length, 1);
});

it("weighs export on a worker thread against export on the application's thread", () => {
  const i = input();
  i.micro = micro();
  const add = (round: number, rps: number, rssMb: number) =>
    i.results.push(
      measurement({
        contender: "threadline-worker",
        round,
        rps,
        rssBytes: rssMb * 2 ** 20,
      }),
    );
  // Threadline keeps 0.6, 0.4 and 1.6 of no agent; the worker 0.9, 0.6, 1.6.
  add(0, 900, 120);
  add(1, 300, 120);
  add(2, 400, 120);
  i.contenders.push({ name: "threadline-worker", label: "worker" });
  const { markdown } = renderReport(i);
  assert.match(
    markdown,
    /measured here as a contender, realistic: 0\.90 of no agent against 0\.60 \(1\.50x \(1\.00–1\.50\) round by round\), RSS \+20\.0 MB against \+0\.0 MB\./,
  );
});

it("says a correlated line cost less when its profile came out cheaper than plain pino's", () => {
  const parts = (native: number) => ({
    instrumentation: 0,
    export: 0,
    application: 0.05,
    node: 0.02,
    builtins: 0.03,
    native,
    gc: 0.1,
  });
  const cheaper = input();
  cheaper.micro = micro();
  cheaper.breakdowns = [
    { handler: "pino", none: parts(2.8), threadline: parts(2.75) },
  ];
  const less = renderReport(cheaper).markdown;
  assert.match(less, /a correlated line cost 50 ns less than a plain one/);
  assert.doesNotMatch(less, /costs -\d/);

  const dearer = input();
  dearer.micro = micro();
  dearer.breakdowns = [
    { handler: "pino", none: parts(2.8), threadline: parts(3.1) },
  ];
  assert.match(
    renderReport(dearer).markdown,
    /A correlated line costs 300 ns more than a plain one/,
  );
});

it("shows a share that misses its goal by less than rounding with a third digit", () => {
  const goalRow = (share: number) => {
    const i = { ...input(), micro: micro() };
    i.results = i.results.filter((r) => r.contender === "none");
    for (const [round, rps] of [1000, 500, 250].entries())
      i.results.push(
        measurement({ contender: "threadline-100", round, rps: rps * share }),
      );
    return renderReport(i)
      .markdown.split("\n")
      .find((l) => l.startsWith("| Realistic handler at 100% sampling"));
  };
  assert.match(goalRow(0.796)!, /\| 0\.796 \(.*\| \*\*not met\*\* \|$/);
  assert.match(goalRow(0.804)!, /\| 0\.80 \(.*\| met \|$/);
  assert.match(goalRow(0.75)!, /\| 0\.75 \(.*\| \*\*not met\*\* \|$/);
});

it("shows correlation's own cost against plain pino with fast properties, when the run measured it", () => {
  const row = (m: ReportInput["micro"]) =>
    renderReport({ ...input(), micro: m })
      .markdown.split("\n")
      .find((l) =>
        l.startsWith("| pino with Threadline's correlation against"),
      );
  assert.equal(row(micro()), undefined);
  const measured = {
    ...micro(),
    pinoPlain: 600_000,
    pinoPlainFast: 690_000,
    pinoCorrelatedOverFastShare: {
      median: 0.87,
      range: [0.84, 0.9] as [number, number],
    },
  };
  assert.match(row(measured)!, /\| 0\.87 \(rounds 0\.84–0\.90\) \|$/);
  assert.match(
    renderReport({ ...input(), micro: measured }).markdown,
    /\| 690000 \(1\.15 of plain\) \|/,
  );
});

it("shows how long an idle worker thread's terminate() takes with and without Threadline, when the run measured it", () => {
  const row = (m: ReportInput["micro"]) =>
    renderReport({ ...input(), micro: m })
      .markdown.split("\n")
      .find((l) => l.startsWith("| ms a worker thread's terminate() takes"));
  assert.equal(row(micro()), undefined);
  assert.match(
    row({ ...micro(), workerTerminateMs: { threadline: 2.46, plain: 1.81 } })!,
    /\| 2\.5, 1\.8 \|$/,
  );
});

it("names the part a correlated line spends less in, when one fell", () => {
  const parts = (builtins: number, application: number) => ({
    instrumentation: 0,
    export: 0,
    application,
    node: 0.02,
    builtins,
    native: 2.8,
    gc: 0.1,
  });
  const i = input();
  i.micro = micro();
  i.breakdowns = [
    { handler: "pino", none: parts(0.5, 0.75), threadline: parts(0.4, 0.9) },
  ];
  const text = renderReport(i).markdown;
  assert.match(text, /A correlated line costs 50 ns more than a plain one/);
  assert.match(
    text,
    /the largest increase is in the application and its libraries \(\+150 ns\)/,
  );
  assert.match(text, /less is spent in V8's builtins.* \(-100 ns;/);
});

it("adds the whole machine's CPU per request beside the service's, and says where Threadline's went", () => {
  const i = input();
  i.micro = micro();
  const parts = (service: number, postgres: number, rest: number) => ({
    service,
    postgres,
    rabbitmq: 30,
    consumer: 10,
    sink: 0,
    load: 40,
    rest,
  });
  const total = (p: ReturnType<typeof parts>) =>
    Object.values(p).reduce((a, b) => a + b, 0);
  i.results = i.results.filter((r) => r.contender === "none");
  for (const r of i.results) {
    // No agent's own rounds: 200, 210 and 220 µs of the machine a request.
    const p = parts(100, 20 + 10 * r.round, 0);
    r.machineParts = p;
    r.machineUsPerRequest = total(p);
  }
  // Beside its turns of no agent, Threadline adds to the service +30, +40,
  // +35, to PostgreSQL +5, +9, +7 and to the rest +1, +2, +3: +36, +51, +45.
  const rounds: Array<[number, number, number, number]> = [
    [0, 30, 5, 1],
    [1, 40, 9, 2],
    [2, 35, 7, 3],
  ];
  for (const [round, service, postgres, rest] of rounds) {
    const base = parts(100, 20, 0);
    const mine = parts(100 + service, 20 + postgres, rest);
    i.results.push(
      measurement({
        contender: "threadline-100",
        round,
        rps: 800,
        machineUsPerRequest: total(mine),
        machineParts: mine,
        baseline: {
          rps: 1000,
          p50: 1,
          p99: 2,
          cpuUsPerRequest: 100,
          mainThreadUsPerRequest: 50,
          stolenShare: 0,
          machineUsPerRequest: total(base),
          machineParts: base,
        },
      }),
    );
  }
  const tl = summarize(i).find((s) => s.contender === "threadline-100")!;
  assert.equal(tl.machineAdded, 45);
  const { markdown } = renderReport(i);
  assert.match(
    markdown,
    /\| service CPU µs\/request added \| machine CPU µs\/request added \|/,
  );
  assert.match(
    markdown,
    /\| Threadline \| 800 \| \*\*0\.80\*\* \(0\.80–0\.80\) \| \+0 \| \+45 \|/,
  );
  // Each part is the median of its own rounds, so they need not add up to the whole.
  assert.match(
    markdown,
    /- realistic, across the machine: a request with no agent takes 210 µs of the machine's CPU; Threadline at 100% sampling adds \+45 µs: the service \+35, PostgreSQL \+7, RabbitMQ \+0, the queue's consumer \(no agent in it\) \+0, the telemetry sink \+0, the load generator \+0, the rest \(the kernel's own threads and interrupts, the other service waiting\) \+2\. Were the machine's CPU all that set the pace, keeping 0\.80 of no-agent throughput would allow 53 µs more\./,
  );
});

it("leaves the machine's figures out of runs made before they were measured", () => {
  const i = input();
  i.micro = micro();
  const tl = summarize(i).find((s) => s.contender === "threadline-100")!;
  assert.ok(Number.isNaN(tl.machineAdded));
  const { markdown } = renderReport(i);
  assert.match(
    markdown,
    /\| Threadline \| 400 \| \*\*0\.60\*\* \(0\.40–1\.60\) \| \+50 \| – \|/,
  );
  assert.doesNotMatch(markdown, /across the machine/);
});

it("keeps each full run's headline figures once, and sets this run among the earlier ones", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "bench-history-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const i = { ...input(), micro: micro(), commit: "abc1234" };
  const run = summarizeRun(i)!;
  // Shares are medians of the rounds' ratios: 0.6, 0.4 and 1.6.
  assert.deepEqual(run, {
    date: "2026-01-01",
    commit: "abc1234",
    rounds: 3,
    noAgentRps: 500,
    realisticShare: 0.6,
  });
  const file = historyFileOf(join(dir, "benchmarks.md"));
  assert.equal(file, join(dir, "benchmarks-history.json"));
  const earlier = {
    date: "2025-12-31",
    commit: "0000000",
    rounds: 9,
    noAgentRps: 1000,
    noAgentMachineUs: 150,
    realisticShare: 0.82,
    overUpstream: 1.6,
    helloShare: 0.7,
  };
  recordRun(file, earlier);
  recordRun(file, run);
  // Rendered again from the same figures: nothing more is kept.
  const history = recordRun(file, run);
  assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), [earlier, run]);
  const markdown = renderReport(i, listRuns(history, run)).markdown;
  const rows = markdown
    .slice(markdown.indexOf("### Runs so far"))
    .split("\n")
    .filter((l) => /^\| 20/.test(l));
  assert.deepEqual(rows, [
    "| 2025-12-31 | 0000000 | 9 | 1000 | 150 | 0.82 | 1.60x | 0.70 |",
    "| 2026-01-01 (this run) | abc1234 | 3 | 500 | – | 0.60 | – | – |",
  ]);
  assert.match(
    markdown,
    /differs by up to 2\.0x between these runs[^]*ranged from 0\.60 to 0\.82 \(median 0\.71\) and reached 0\.80 in 1 of them/,
  );
  // A share just under the goal is not rounded onto it.
  assert.match(
    renderReport(i, listRuns([{ ...earlier, realisticShare: 0.797 }, run], run))
      .markdown,
    /reached 0\.80 in 0 of them[^]*\| 1000 \| 150 \| 0\.797 \|/,
  );
  // A run alone has nothing to be set beside.
  assert.doesNotMatch(
    renderReport(i, listRuns([run], run)).markdown,
    /Runs so far/,
  );
});

it("knows a run made before the figures named their commit by its date and speed", () => {
  const i = { ...input(), micro: micro() };
  const run = summarizeRun(i)!;
  const other = { ...run, noAgentRps: 900 };
  const markdown = renderReport(
    i,
    listRuns([other, run], summarizeRun(i)),
  ).markdown;
  assert.match(markdown, /\| 2026-01-01 \| – \| 3 \| 900 \|/);
  assert.match(markdown, /\| 2026-01-01 \(this run\) \| – \| 3 \| 500 \|/);
});

it("says which part of memory each contender added, beside no agent as its turns ended", () => {
  const i = { ...input(), micro: micro() };
  const MB = 2 ** 20;
  const parts = (
    young: number,
    code: number,
    other: number,
    outside: number,
  ) => ({
    rss: (young + code + other + outside) * MB,
    young: young * MB,
    code: code * MB,
    otherHeap: other * MB,
    compilerPeak: (outside / 2) * MB,
  });
  i.results = i.results.filter((r) => r.contender === "none");
  // Young generation: doubled in two rounds of three (+14, +14, +0).
  const rounds: Array<[number, number]> = [
    [28, 14],
    [28, 14],
    [14, 14],
  ];
  for (const [round, [young, bareYoung]] of rounds.entries())
    i.results.push(
      measurement({
        contender: "threadline-100",
        round,
        rps: 800,
        memory: parts(young, 4, 10 + round, 60),
        baseline: {
          rps: 1000,
          p50: 1,
          p99: 1,
          cpuUsPerRequest: 100,
          mainThreadUsPerRequest: 50,
          stolenShare: 0,
          memory: parts(bareYoung, 2, 8, 50),
        },
      }),
    );
  const { markdown } = renderReport(i);
  const section = markdown.slice(
    markdown.indexOf("## Where the added memory goes"),
  );
  assert.match(
    section,
    /\| no agent, its own \| 74\.0 \| 14\.0 \| 2\.0 \| 8\.0 \| 50\.0 \| 25\.0 \|/,
  );
  // RSS +28, +28, +15; young +14, +14, 0; code +2; rest +2, +3, +4; outside +10; peak +5.
  assert.match(
    section,
    /\| Threadline \| \+28\.0 \| \+14\.0 \| \+2\.0 \| \+3\.0 \| \+10\.0 \| \+5\.0 \|/,
  );
  assert.match(
    section,
    /larger young generation than no agent beside it in 2 of 3 rounds/,
  );
});

it("leaves the memory section out of runs that did not read memory", () => {
  const i = { ...input(), micro: micro() };
  assert.doesNotMatch(renderReport(i).markdown, /Where the added memory goes/);
});

it("sets each agent's memory beside no agent's over the long run, and judges the goal at its end", () => {
  const MB = 2 ** 20;
  const points = (rss: number[], young: number[]) =>
    [50_000, 800_000].map((requests, i) => ({
      requests,
      peakRss: rss[i]! * MB,
      memory: {
        rss: rss[i]! * MB,
        young: young[i]! * MB,
        code: 0,
        otherHeap: 0,
        compilerPeak: 0,
      },
    }));
  const i: ReportInput = {
    ...input(),
    micro: micro(),
    longRuns: [
      { contender: "none", points: points([100, 220], [8, 100]) },
      { contender: "threadline-100", points: points([135, 250], [24, 100]) },
    ],
  };
  const { markdown } = renderReport(i);
  const section = markdown.slice(markdown.indexOf("## Memory over a long run"));
  assert.match(
    section,
    /\| MB, after this many requests \| 50,000 \| 800,000 \|/,
  );
  assert.match(section, /\| no agent: peak RSS \| 100\.0 \| 220\.0 \|/);
  assert.match(section, /: RSS added \| \+35\.0 \| \+30\.0 \|/);
  assert.match(section, /: young generation added \| \+16\.0 \| \+0\.0 \|/);
  assert.match(
    section,
    /the size of no agent's \(1 of 2 counts\), it added 30\.0 MB\./,
  );
  assert.match(
    markdown,
    /\| the same after 800,000 requests in one stretch [^|]*\| 30\.0 MB \| met \|/,
  );
  const behind = structuredClone(i);
  behind.longRuns![1]!.points[1]!.peakRss = 270 * MB;
  assert.match(
    renderReport(behind).markdown,
    /in one stretch [^|]*\| 50\.0 MB \| \*\*not met\*\* \|/,
  );
});

it("leaves the long run out of runs made before it was measured", () => {
  const { markdown } = renderReport({ ...input(), micro: micro() });
  assert.doesNotMatch(markdown, /Memory over a long run|in one stretch/);
});
