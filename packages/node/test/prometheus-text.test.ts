import assert from "node:assert/strict";
import { it } from "node:test";
import { toPrometheusText } from "../src/metrics/prometheus.ts";

const scope = { name: "app", version: "" };

it("writes text a strict parser reads, whatever the descriptions and attributes", () => {
  const text = toPrometheusText([
    {
      scope,
      name: "jobs.done",
      description: "Jobs done per C:\\queue\nand worker",
      unit: "{job}",
      kind: "sum",
      monotonic: true,
      points: [
        {
          attributes: { "a.b": "dot", a_b: "underscore", q: 'say "hi"\\' },
          startTime: 0,
          time: 0,
          value: 3,
        },
      ],
    },
    {
      scope,
      name: "job.duration",
      description: "",
      unit: "s",
      kind: "histogram",
      points: [
        {
          attributes: { le: "mine" },
          startTime: 0,
          time: 0,
          count: 2,
          sum: 1.5,
          min: 0.5,
          max: 1,
          bounds: [1],
          counts: [2, 0],
        },
      ],
    },
  ]);
  assert.equal(
    text,
    [
      "# HELP jobs_done_total Jobs done per C:\\\\queue\\nand worker",
      "# TYPE jobs_done_total counter",
      'jobs_done_total{a_b="dot;underscore",q="say \\"hi\\"\\\\"} 3',
      "# TYPE job_duration_seconds histogram",
      'job_duration_seconds_bucket{otel_le="mine",le="1"} 2',
      'job_duration_seconds_bucket{otel_le="mine",le="+Inf"} 2',
      'job_duration_seconds_sum{otel_le="mine"} 1.5',
      'job_duration_seconds_count{otel_le="mine"} 2',
      "",
    ].join("\n"),
  );
});
