import assert from "node:assert/strict";
import { it } from "node:test";
import { ExportMetricsServiceRequest } from "@threadline/test-support/schema";
import { emptyGroups } from "./empty-groups.ts";
import {
  decodeMetricsJson,
  decodeMetricsProto,
  MetricsEncoder,
  OtlpDecodeError,
  type MetricData,
} from "../src/index.ts";

const scope = { name: "s", version: "1" };
const time = 1_700_000_000_000;
const metrics: MetricData[] = [
  {
    scope,
    name: "http.server.request.duration",
    description: "",
    unit: "s",
    kind: "histogram",
    points: [
      {
        attributes: {
          "http.route": "/orders",
          "http.response.status_code": 201,
        },
        startTime: time - 1000,
        time,
        count: 3,
        sum: 0.75,
        min: 0.1,
        max: 0.4,
        bounds: [0.1, 0.5],
        counts: [1, 2, 0],
      },
    ],
  },
  {
    scope,
    name: "process.cpu.time",
    description: "",
    unit: "s",
    kind: "sum",
    monotonic: true,
    points: [
      { attributes: { "cpu.mode": "user" }, startTime: time, time, value: 1.5 },
    ],
  },
  {
    scope,
    name: "nodejs.eventloop.utilization",
    description: "",
    unit: "1",
    kind: "gauge",
    points: [{ attributes: {}, startTime: time, time, value: 0.25 }],
  },
];

it("decodes what the SDK encodes, protobuf and JSON alike", () => {
  const enc = new MetricsEncoder({ "service.name": "orders" });
  for (const decoded of [
    decodeMetricsProto(enc.encode(metrics)),
    decodeMetricsJson(JSON.parse(enc.encodeJson(metrics))),
  ]) {
    assert.equal(decoded[0]!.resource["service.name"], "orders");
    const [h, c, g] = decoded[0]!.scopes[0]!.metrics;
    assert.deepEqual(h, {
      name: "http.server.request.duration",
      unit: "s",
      kind: "histogram",
      monotonic: false,
      delta: false,
      points: [
        {
          attributes: {
            "http.route": "/orders",
            "http.response.status_code": 201,
          },
          timeMs: time,
          count: 3,
          sum: 0.75,
          bounds: [0.1, 0.5],
          counts: [1, 2, 0],
        },
      ],
    });
    assert.equal(c!.kind, "sum");
    assert.equal(c!.monotonic, true);
    assert.equal(c!.points[0]!.value, 1.5);
    assert.equal(g!.kind, "gauge");
    assert.equal(g!.points[0]!.value, 0.25);
  }
});

it("tells delta sums and histograms from cumulative ones", () => {
  const enc = new MetricsEncoder({ "service.name": "orders" });
  const delta = metrics.map((m) =>
    m.kind === "gauge" ? m : { ...m, temporality: "delta" as const },
  );
  for (const decoded of [
    decodeMetricsProto(enc.encode(delta)),
    decodeMetricsJson(JSON.parse(enc.encodeJson(delta))),
  ])
    assert.deepEqual(
      decoded[0]!.scopes[0]!.metrics.map((m) => [m.kind, m.delta]),
      [
        ["histogram", true],
        ["sum", true],
        ["gauge", false],
      ],
    );
});

it("refuses malformed requests with a reason", () => {
  assert.throws(
    () => decodeMetricsProto(Uint8Array.of(0x0a, 0x05, 0x01)),
    OtlpDecodeError,
  );
  assert.throws(
    () => decodeMetricsJson({ resourceMetrics: 7 }),
    OtlpDecodeError,
  );
});

it("reads a negative integer point (sfixed64) as itself, not rounded", () => {
  // Written by protobufjs from the specification's schema, as an
  // up-down counter or a gauge of integers sends it.
  const values = [
    -7,
    -12,
    -123456789,
    1048576,
    Number.MIN_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER,
    -(2 ** 63),
  ];
  const msg = ExportMetricsServiceRequest.fromObject({
    resourceMetrics: [
      {
        scopeMetrics: [
          {
            metrics: [
              {
                name: "queue.depth.change",
                gauge: {
                  dataPoints: values.map((asInt) => ({
                    timeUnixNano: "1700000000000000000",
                    asInt,
                  })),
                },
              },
            ],
          },
        ],
      },
    ],
  });
  const [rm] = decodeMetricsProto(
    ExportMetricsServiceRequest.encode(msg).finish(),
  );
  assert.deepEqual(
    rm!.scopes[0]!.metrics[0]!.points.map((p) => p.value),
    values,
  );
});

it("keeps a metric with an empty name, protobuf and JSON alike", () => {
  // An instrument created with the name "", which the OpenTelemetry JS
  // SDK exports as it is: in protobuf the name field is absent.
  const request = {
    resourceMetrics: [
      {
        scopeMetrics: [
          {
            metrics: ["http.requests", ""].map((name) => ({
              name,
              sum: {
                aggregationTemporality: 2,
                isMonotonic: true,
                dataPoints: [
                  { timeUnixNano: "1700000000000000000", asDouble: 1 },
                ],
              },
            })),
          },
        ],
      },
    ],
  };
  const bytes = ExportMetricsServiceRequest.encode(
    ExportMetricsServiceRequest.fromObject(request),
  ).finish();
  for (const decoded of [decodeMetricsProto(bytes), decodeMetricsJson(request)])
    assert.deepEqual(
      decoded[0]!.scopes[0]!.metrics.map((m) => [m.name, m.points[0]!.value]),
      [
        ["http.requests", 1],
        ["", 1],
      ],
    );
});

it("leaves out empty resource and scope groups, protobuf and JSON alike", () => {
  const empty = emptyGroups(4 * 1024 * 1024);
  assert.equal(decodeMetricsProto(empty).length, 0);
  const enc = new MetricsEncoder({ "service.name": "orders" });
  const [rm, ...more] = decodeMetricsProto(
    Buffer.concat([empty, enc.encode(metrics)]),
  );
  assert.equal(more.length, 0);
  assert.equal(rm!.scopes.length, 1);
  assert.equal(rm!.scopes[0]!.metrics.length, 3);
  assert.deepEqual(
    decodeMetricsJson({
      resourceMetrics: [{}, { scopeMetrics: [{}, { scope: { name: "s" } }] }],
    }),
    [],
  );
});
