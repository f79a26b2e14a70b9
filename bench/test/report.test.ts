import assert from "node:assert/strict";
import { it } from "node:test";
import {
  pairedDifference,
  pairedRatio,
  summarize,
  type Measurement,
  type ReportInput,
} from "../src/report.ts";

/** Three rounds on a machine whose speed drifts: the third contender's rounds fall in other phases. */
function input(): ReportInput {
  const results: Measurement[] = [];
  const add = (contender: string, round: number, rps: number, cpu: number) =>
    results.push({
      contender,
      handler: "realistic",
      round,
      rps,
      p50: 1,
      p99: 2,
      cpuUsPerRequest: cpu,
      mainThreadUsPerRequest: cpu / 2,
      rssBytes: 100 * 2 ** 20,
      startupMs: 50,
      stolenShare: 0,
    });
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
    handlers: [{ name: "realistic", amount: 100 }],
    machine: "test",
    versions: {},
    date: "2026-01-01",
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
