import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeMetricsRequest } from "@threadline/test-support";
import {
  decodeMetricsJson,
  decodeMetricsProto,
  MetricsEncoder,
  type MetricData,
} from "../src/index.ts";

const scope = { name: "meter", version: "1" };
const metrics: MetricData[] = [
  {
    scope,
    name: "http.server.request.duration",
    description: "Duration of HTTP server requests.",
    unit: "s",
    kind: "histogram",
    points: [
      {
        attributes: {
          "http.route": "/orders",
          "http.response.status_code": 201,
        },
        startTime: 1_700_000_000_000,
        time: 1_700_000_010_000,
        count: 3,
        sum: 0.35,
        min: 0.05,
        max: 0.2,
        bounds: [0.1, 0.25],
        counts: [1, 2, 0],
        exemplars: [
          {
            time: 1_700_000_005_000,
            value: 0.2,
            traceId: "0af7651916cd43dd8448eb211c80319c",
            spanId: "b7ad6b7169203331",
          },
        ],
      },
    ],
  },
  {
    scope,
    name: "requests",
    description: "",
    unit: "{request}",
    kind: "sum",
    monotonic: true,
    points: [
      {
        attributes: {},
        startTime: 1_700_000_000_000,
        time: 1_700_000_010_000,
        value: 42,
      },
    ],
  },
  {
    scope,
    name: "queue.depth",
    description: "",
    unit: "{message}",
    kind: "gauge",
    points: [
      {
        attributes: { queue: "q" },
        startTime: 1_700_000_000_000,
        time: 1_700_000_010_000,
        value: -1.5,
      },
    ],
  },
];

for (const format of ["protobuf", "json"] as const) {
  describe(`MetricsEncoder (${format})`, () => {
    it("writes sums, gauges and histograms with exemplars", () => {
      const encoder = new MetricsEncoder({ "service.name": "orders" });
      const decoded = decodeMetricsRequest(
        format === "json"
          ? encoder.encodeJson(metrics)
          : encoder.encode(metrics),
      );
      assert.deepEqual(
        decoded.map((m) => [m.name, m.kind, m.unit, m.monotonic]),
        [
          ["http.server.request.duration", "histogram", "s", false],
          ["requests", "sum", "{request}", true],
          ["queue.depth", "gauge", "{message}", false],
        ],
      );
      const h = decoded[0]!.points[0]!;
      assert.deepEqual(h.attributes, {
        "http.route": "/orders",
        "http.response.status_code": 201,
      });
      assert.equal(h.count, 3);
      assert.equal(h.sum, 0.35);
      assert.deepEqual(h.bucketCounts, [1, 2, 0]);
      assert.deepEqual(h.explicitBounds, [0.1, 0.25]);
      assert.equal(h.min, 0.05);
      assert.equal(h.max, 0.2);
      assert.deepEqual(h.exemplars, [
        {
          traceId: "0af7651916cd43dd8448eb211c80319c",
          spanId: "b7ad6b7169203331",
          value: 0.2,
        },
      ]);
      assert.equal(h.timeUnixNano, 1_700_000_010_000_000_000n);
      assert.equal(decoded[1]!.points[0]!.value, 42);
      assert.equal(decoded[2]!.points[0]!.value, -1.5);
      assert.equal(decoded[0]!.resource["service.name"], "orders");
      assert.deepEqual(
        decoded.map((m) => m.temporality),
        ["cumulative", "cumulative", undefined],
      );
    });

    it("writes delta temporality, and a histogram's min and max only when known", () => {
      const encoder = new MetricsEncoder({ "service.name": "orders" });
      const [histogram, sum] = metrics as [
        Extract<MetricData, { kind: "histogram" }>,
        Extract<MetricData, { kind: "sum" }>,
      ];
      const delta: MetricData[] = [
        {
          ...histogram,
          temporality: "delta",
          points: [{ ...histogram.points[0]!, min: undefined, max: 0.2 }],
        },
        { ...sum, temporality: "delta" },
      ];
      const decoded = decodeMetricsRequest(
        format === "json" ? encoder.encodeJson(delta) : encoder.encode(delta),
      );
      assert.deepEqual(
        decoded.map((m) => m.temporality),
        ["delta", "delta"],
      );
      const h = decoded[0]!.points[0]!;
      assert.ok(Number.isNaN(h.min), "no min on the wire");
      assert.equal(h.max, 0.2);
      assert.equal(h.startTimeUnixNano, 1_700_000_000_000_000_000n);
    });

    it("writes NaN and the infinities in every double, as proto3's JSON mapping spells them", () => {
      const encoder = new MetricsEncoder({ "service.name": "orders" });
      const [histogram, sum] = metrics as [
        Extract<MetricData, { kind: "histogram" }>,
        Extract<MetricData, { kind: "sum" }>,
      ];
      const exemplar = histogram.points[0]!.exemplars![0]!;
      const odd: MetricData[] = [
        {
          ...histogram,
          points: [
            {
              ...histogram.points[0]!,
              sum: Infinity,
              min: -Infinity,
              max: Infinity,
              bounds: [0.1, Infinity],
              exemplars: [{ ...exemplar, value: NaN }],
            },
          ],
        },
        {
          ...sum,
          points: [{ ...sum.points[0]!, value: Infinity }],
        },
      ];
      const body =
        format === "json" ? encoder.encodeJson(odd) : encoder.encode(odd);
      if (typeof body === "string") {
        assert.doesNotMatch(body, /null/);
        assert.match(body, /"sum":"Infinity"/);
      }
      // The receiver refuses a double it cannot read, as the Collector does.
      const decoded = decodeMetricsRequest(body);
      const h = decoded[0]!.points[0]!;
      assert.deepEqual(
        [h.sum, h.min, h.max, h.explicitBounds, decoded[1]!.points[0]!.value],
        [Infinity, -Infinity, Infinity, [0.1, Infinity], Infinity],
      );
      assert.ok(Number.isNaN(h.exemplars[0]!.value));
      // And so do the viewer's decoders.
      const ours =
        typeof body === "string"
          ? decodeMetricsJson(JSON.parse(body))
          : decodeMetricsProto(body);
      const [hist, total] = ours[0]!.scopes[0]!.metrics;
      assert.deepEqual(
        [
          hist!.points[0]!.sum,
          hist!.points[0]!.bounds,
          total!.points[0]!.value,
        ],
        [Infinity, [0.1, Infinity], Infinity],
      );
    });

    it("leaves out a metric it cannot encode, or a scope, reports each metric, and encodes the rest", () => {
      const encoder = new MetricsEncoder({ "service.name": "orders" });
      const encode = (
        list: MetricData[],
        onError?: (err: unknown, m: MetricData) => void,
      ) =>
        format === "json"
          ? encoder.encodeJson(list, onError)
          : encoder.encode(list, onError);
      const [histogram, sum, gauge] = metrics as [
        MetricData,
        MetricData,
        MetricData,
      ];
      const odd = { name: 7 } as unknown as MetricData["scope"];
      const bad = [
        { ...sum, description: { en: "requests" } as unknown as string },
        { ...gauge, unit: undefined as unknown as string },
        { ...gauge, name: "other.depth", scope: odd },
      ];
      const errors: Array<[unknown, MetricData]> = [];
      const list = [bad[0]!, histogram, bad[1]!, bad[2]!, sum];
      const body = encode(list, (err, m) => errors.push([err, m]));
      // The receiver refuses a request with a field of the wrong type, as
      // the Collector does.
      assert.deepEqual(
        decodeMetricsRequest(body).map((m) => [m.scope.name, m.name]),
        [
          ["meter", "http.server.request.duration"],
          ["meter", "requests"],
        ],
      );
      assert.deepEqual(
        errors.map(([err, m]) => [err instanceof TypeError, m]),
        bad.map((m) => [true, m]),
      );
      assert.throws(() => encode(list));
      // What was left out leaves nothing behind for the next encoding.
      assert.deepEqual(
        decodeMetricsRequest(encode([sum])).map((m) => m.name),
        ["requests"],
      );
    });
  });
}
