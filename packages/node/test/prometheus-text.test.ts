import assert from "node:assert/strict";
import { it } from "node:test";
import { diag } from "@threadline/core";
import type { MetricData } from "@threadline/otlp";
import {
  prometheusName,
  scrapeWaitMs,
  toPrometheusText,
} from "../src/metrics/prometheus.ts";

const scope = { name: "app", version: "" };

it("writes text a strict parser reads, whatever the descriptions and attributes", () => {
  const text = toPrometheusText(
    [
      {
        scope,
        name: "jobs.done",
        description: "Jobs done per C:\\queue\nand worker",
        unit: "{job}",
        kind: "sum",
        monotonic: true,
        points: [
          {
            attributes: {
              "a.b": "dot",
              a_b: "underscore",
              q: 'say "hi"\\',
              // The scope's label: the attribute gives way to it.
              "otel.scope.name": "mine",
            },
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
    ],
    { "service.name": "orders", "k8s.pod.name": 'pod "7"', "a.b": 1 },
  );
  assert.equal(
    text,
    [
      "# HELP target_info Target metadata",
      "# TYPE target_info gauge",
      'target_info{service_name="orders",k8s_pod_name="pod \\"7\\"",a_b="1"} 1',
      "# HELP jobs_done_total Jobs done per C:\\\\queue\\nand worker",
      "# TYPE jobs_done_total counter",
      'jobs_done_total{a_b="dot;underscore",q="say \\"hi\\"\\\\",otel_scope_name="app"} 3',
      "# TYPE job_duration_seconds histogram",
      'job_duration_seconds_bucket{otel_le="mine",otel_scope_name="app",le="1"} 2',
      'job_duration_seconds_bucket{otel_le="mine",otel_scope_name="app",le="+Inf"} 2',
      'job_duration_seconds_sum{otel_le="mine",otel_scope_name="app"} 1.5',
      'job_duration_seconds_count{otel_le="mine",otel_scope_name="app"} 2',
      "",
    ].join("\n"),
  );
});

it("names metrics by the specification's unit mapping", () => {
  const name = (
    unit: string,
    kind: "sum" | "gauge" | "histogram" = "gauge",
    monotonic = false,
    metric = "app.thing",
  ) => prometheusName({ name: metric, unit, kind, monotonic });
  const cases: Array<[string, string]> = [
    ["s", "app_thing_seconds"],
    ["ms", "app_thing_milliseconds"],
    ["us", "app_thing_microseconds"],
    ["ns", "app_thing_nanoseconds"],
    ["min", "app_thing_minutes"],
    ["h", "app_thing_hours"],
    ["d", "app_thing_days"],
    ["By", "app_thing_bytes"],
    ["KiBy", "app_thing_kibibytes"],
    ["MiBy", "app_thing_mebibytes"],
    ["GiBy", "app_thing_gibibytes"],
    ["TiBy", "app_thing_tebibytes"],
    ["kBy", "app_thing_kilobytes"],
    ["MBy", "app_thing_megabytes"],
    ["GBy", "app_thing_gigabytes"],
    ["TBy", "app_thing_terabytes"],
    ["m", "app_thing_meters"],
    ["V", "app_thing_volts"],
    ["A", "app_thing_amperes"],
    ["J", "app_thing_joules"],
    ["W", "app_thing_watts"],
    ["g", "app_thing_grams"],
    ["Cel", "app_thing_celsius"],
    ["Hz", "app_thing_hertz"],
    ["%", "app_thing_percent"],
    // Rates: the time in the singular.
    ["m/s", "app_thing_meters_per_second"],
    ["By/s", "app_thing_bytes_per_second"],
    ["{request}/min", "app_thing_per_minute"],
    ["1/h", "app_thing_per_hour"],
    // Annotations say what is counted: no unit.
    ["{request}", "app_thing"],
    ["By{compressed}", "app_thing_bytes"],
    ["", "app_thing"],
    // A unit with no word is kept, made fit for a name.
    ["requests", "app_thing_requests"],
    ["km/h", "app_thing_km_per_hour"],
    ["mg.dL", "app_thing_mg_dL"],
    // A gauge of 1 is a ratio.
    ["1", "app_thing_ratio"],
  ];
  for (const [unit, expected] of cases)
    assert.equal(name(unit), expected, unit);
  // A count of 1 is no ratio; counters end in _total after the unit.
  assert.equal(name("1", "sum", true), "app_thing_total");
  assert.equal(name("1", "sum", false), "app_thing");
  assert.equal(name("1", "histogram"), "app_thing");
  assert.equal(name("KiBy", "sum", true), "app_thing_kibibytes_total");
  assert.equal(name("s", "histogram"), "app_thing_seconds");
  // A name that ends with its unit already keeps it once.
  assert.equal(
    name("s", "sum", true, "process.cpu.time.seconds"),
    "process_cpu_time_seconds_total",
  );
});

it("writes each metric's unit words into its name in the text", () => {
  const point = { attributes: {}, startTime: 0, time: 0, value: 2 };
  const text = toPrometheusText([
    {
      scope,
      name: "custom.bytes.sent",
      description: "",
      unit: "KiBy",
      kind: "sum",
      monotonic: true,
      points: [point],
    },
    {
      scope,
      name: "custom.speed",
      description: "",
      unit: "m/s",
      kind: "gauge",
      points: [point],
    },
    {
      scope,
      name: "custom.hits",
      description: "",
      unit: "1",
      kind: "sum",
      monotonic: true,
      points: [point],
    },
    {
      scope,
      name: "custom.level",
      description: "",
      unit: "1",
      kind: "gauge",
      points: [point],
    },
    {
      scope,
      name: "custom.open",
      description: "",
      unit: "{conn}",
      kind: "sum",
      monotonic: false,
      points: [point],
    },
    {
      scope,
      name: "custom.temp",
      description: "",
      unit: "Cel",
      kind: "histogram",
      points: [
        {
          attributes: {},
          startTime: 0,
          time: 0,
          count: 1,
          sum: 20,
          min: 20,
          max: 20,
          bounds: [0],
          counts: [0, 1],
        },
      ],
    },
  ]);
  assert.equal(
    text,
    [
      "# TYPE custom_bytes_sent_kibibytes_total counter",
      'custom_bytes_sent_kibibytes_total{otel_scope_name="app"} 2',
      "# TYPE custom_speed_meters_per_second gauge",
      'custom_speed_meters_per_second{otel_scope_name="app"} 2',
      "# TYPE custom_hits_total counter",
      'custom_hits_total{otel_scope_name="app"} 2',
      "# TYPE custom_level_ratio gauge",
      'custom_level_ratio{otel_scope_name="app"} 2',
      "# TYPE custom_open gauge",
      'custom_open{otel_scope_name="app"} 2',
      "# TYPE custom_temp_celsius histogram",
      'custom_temp_celsius_bucket{otel_scope_name="app",le="0"} 0',
      'custom_temp_celsius_bucket{otel_scope_name="app",le="+Inf"} 1',
      'custom_temp_celsius_sum{otel_scope_name="app"} 20',
      'custom_temp_celsius_count{otel_scope_name="app"} 1',
      "",
    ].join("\n"),
  );
});

it("leaves out a metric named as a histogram's _bucket, _sum or _count line, or a histogram whose lines would take another's name", () => {
  const lines: string[] = [];
  diag.reset();
  diag.setSink((_level, message) => lines.push(message));
  try {
    const batch = { name: "batch", version: "" };
    const histogram = (name: string, s = batch): MetricData => ({
      scope: s,
      name,
      description: "",
      unit: "{item}",
      kind: "histogram",
      points: [
        {
          attributes: {},
          startTime: 0,
          time: 0,
          count: 1,
          sum: 40,
          min: 40,
          max: 40,
          bounds: [50],
          counts: [1, 0],
        },
      ],
    });
    const gauge = (name: string, s = batch): MetricData => ({
      scope: s,
      name,
      description: "",
      unit: "{item}",
      kind: "gauge",
      points: [{ attributes: {}, startTime: 0, time: 0, value: 7 }],
    });
    const histogramLines = [
      "# TYPE batch_size histogram",
      'batch_size_bucket{otel_scope_name="batch",le="50"} 1',
      'batch_size_bucket{otel_scope_name="batch",le="+Inf"} 1',
      'batch_size_sum{otel_scope_name="batch"} 40',
      'batch_size_count{otel_scope_name="batch"} 1',
      "",
    ].join("\n");
    // The histogram first: the gauge would write batch_size_count again.
    assert.equal(
      toPrometheusText([
        histogram("batch.size"),
        gauge("batch.size.count"),
        gauge("batch.size.sum", scope),
        histogram("batch.size.bucket"),
      ]),
      histogramLines,
    );
    // The gauge first: the histogram's count would be a second series of it.
    assert.equal(
      toPrometheusText([gauge("batch.size.count"), histogram("batch.size")]),
      [
        "# TYPE batch_size_count gauge",
        'batch_size_count{otel_scope_name="batch"} 7',
        "",
      ].join("\n"),
    );
    assert.deepEqual(
      lines.map((l) => l.replace(/;.*/, "")),
      [
        "metric batch.size.count of scope batch is a gauge, but batch_size_count on /metrics is already a line of the histogram batch_size (scope batch)",
        "metric batch.size.sum of scope app is a gauge, but batch_size_sum on /metrics is already a line of the histogram batch_size (scope batch)",
        "metric batch.size.bucket of scope batch is a histogram, but batch_size_bucket on /metrics is already a line of the histogram batch_size (scope batch)",
        "metric batch.size of scope batch is a histogram, but its batch_size_count on /metrics is already a gauge (scope batch)",
      ],
    );
    assert.ok(
      lines.every((l) =>
        l.endsWith(
          "; a Prometheus name holds one type, so /metrics leaves the " +
            / is a (\w+)/.exec(l)![1]! +
            " out",
        ),
      ),
      lines.join("\n"),
    );
  } finally {
    diag.setSink(undefined);
    diag.reset();
  }
});

it("prefixes an attribute whose label would start with __, which Prometheus keeps for its own", () => {
  const text = toPrometheusText(
    [
      {
        scope,
        name: "jobs.open",
        description: "",
        unit: "{job}",
        kind: "gauge",
        points: [
          {
            attributes: {
              __name__: "other_metric",
              "__meta.source": "app",
              "._x": "dot",
              _y: "one underscore",
            },
            startTime: 0,
            time: 0,
            value: 3,
          },
        ],
      },
    ],
    { "service.name": "orders", __address__: "10.0.0.1" },
  );
  assert.equal(
    text,
    [
      "# HELP target_info Target metadata",
      "# TYPE target_info gauge",
      'target_info{service_name="orders",key___address__="10.0.0.1"} 1',
      "# TYPE jobs_open gauge",
      'jobs_open{key___name__="other_metric",key___meta_source="app",key___x="dot",_y="one underscore",otel_scope_name="app"} 3',
      "",
    ].join("\n"),
  );
});

it("writes attribute sets that become the same labels as one series: a sum's and a histogram's added up, a gauge's last, warning once per metric", () => {
  const lines: string[] = [];
  diag.reset();
  diag.setSink((_level, message) => lines.push(message));
  try {
    const point = (attributes: Record<string, unknown>, value: number) => ({
      attributes: attributes as Record<string, string>,
      startTime: 0,
      time: 0,
      value,
    });
    const histogramPoint = (
      attributes: Record<string, string>,
      counts: number[],
    ) => ({
      attributes,
      startTime: 0,
      time: 0,
      count: counts.reduce((a, b) => a + b, 0),
      sum: counts.reduce((a, b) => a + b, 0),
      min: 0,
      max: 1,
      bounds: [1],
      counts,
    });
    const metrics: MetricData[] = [
      {
        scope,
        name: "answers",
        description: "",
        unit: "",
        kind: "sum",
        monotonic: true,
        points: [
          point({ code: 200 }, 1),
          point({ code: "200" }, 2),
          point({ code: 404 }, 5),
        ],
      },
      {
        scope,
        name: "queue.size",
        description: "",
        unit: "",
        kind: "gauge",
        points: [point({ "a.b": "x" }, 7), point({ a_b: "x" }, 9)],
      },
      {
        scope,
        name: "job.duration",
        description: "",
        unit: "s",
        kind: "histogram",
        points: [
          histogramPoint({ "otel.scope.name": "mine", k: "1" }, [1, 0]),
          histogramPoint({ k: "1" }, [2, 3]),
        ],
      },
    ];
    const text = toPrometheusText(metrics);
    assert.equal(
      text,
      [
        "# TYPE answers_total counter",
        'answers_total{code="200",otel_scope_name="app"} 3',
        'answers_total{code="404",otel_scope_name="app"} 5',
        "# TYPE queue_size gauge",
        'queue_size{a_b="x",otel_scope_name="app"} 9',
        "# TYPE job_duration_seconds histogram",
        'job_duration_seconds_bucket{k="1",otel_scope_name="app",le="1"} 3',
        'job_duration_seconds_bucket{k="1",otel_scope_name="app",le="+Inf"} 6',
        'job_duration_seconds_sum{k="1",otel_scope_name="app"} 6',
        'job_duration_seconds_count{k="1",otel_scope_name="app"} 6',
        "",
      ].join("\n"),
    );
    toPrometheusText(metrics);
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.match(lines[0]!, /answers_total.*code="200".*sum/);
    assert.match(lines[1]!, /queue_size.*last/);
    assert.match(lines[2]!, /job_duration_seconds.*sum/);
  } finally {
    diag.setSink(undefined);
    diag.reset();
  }
});

it("leaves out an attribute with an empty name, which no label can have, warning once", () => {
  const lines: string[] = [];
  diag.reset();
  diag.setSink((_level, message) => lines.push(message));
  try {
    const metrics: MetricData[] = [
      {
        scope,
        name: "jobs.done",
        description: "",
        unit: "",
        kind: "sum",
        monotonic: true,
        points: [
          { attributes: { "": "x", k: "1" }, startTime: 0, time: 0, value: 2 },
        ],
      },
    ];
    const resource = { "service.name": "orders", "": "r" };
    const text = toPrometheusText(metrics, resource);
    assert.equal(
      text,
      [
        "# HELP target_info Target metadata",
        "# TYPE target_info gauge",
        'target_info{service_name="orders"} 1',
        "# TYPE jobs_done_total counter",
        'jobs_done_total{k="1",otel_scope_name="app"} 2',
        "",
      ].join("\n"),
    );
    toPrometheusText(metrics, resource);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, /empty name/);
  } finally {
    diag.setSink(undefined);
    diag.reset();
  }
});

it("waits for callbacks the scraper's timeout less a margin, and Prometheus's default less it when the scraper says none", () => {
  assert.equal(scrapeWaitMs("10"), 9500);
  assert.equal(scrapeWaitMs("1.5"), 1000);
  assert.equal(scrapeWaitMs("0.2"), 0);
  for (const odd of [undefined, "", "soon", "-1", "0", "Infinity", ["1", "2"]])
    assert.equal(scrapeWaitMs(odd), 9500, String(odd));
});
