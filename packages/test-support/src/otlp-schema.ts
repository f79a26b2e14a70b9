// The OTLP trace and logs request messages, described for protobufjs from
// the OTLP specification's field numbers. Tests decode what arrives on the
// wire with this instead of with anything of ours, so an encoder bug cannot
// hide behind a matching decoder bug.
import protobuf from "protobufjs";

const common = {
  AnyValue: {
    oneofs: {
      value: {
        oneof: [
          "stringValue",
          "boolValue",
          "intValue",
          "doubleValue",
          "arrayValue",
          "kvlistValue",
          "bytesValue",
        ],
      },
    },
    fields: {
      stringValue: { type: "string", id: 1 },
      boolValue: { type: "bool", id: 2 },
      intValue: { type: "int64", id: 3 },
      doubleValue: { type: "double", id: 4 },
      arrayValue: { type: "ArrayValue", id: 5 },
      kvlistValue: { type: "KeyValueList", id: 6 },
      bytesValue: { type: "bytes", id: 7 },
    },
  },
  ArrayValue: {
    fields: { values: { rule: "repeated", type: "AnyValue", id: 1 } },
  },
  KeyValueList: {
    fields: { values: { rule: "repeated", type: "KeyValue", id: 1 } },
  },
  KeyValue: {
    fields: {
      key: { type: "string", id: 1 },
      value: { type: "AnyValue", id: 2 },
    },
  },
  InstrumentationScope: {
    fields: {
      name: { type: "string", id: 1 },
      version: { type: "string", id: 2 },
      attributes: { rule: "repeated", type: "KeyValue", id: 3 },
      droppedAttributesCount: { type: "uint32", id: 4 },
    },
  },
  Resource: {
    fields: {
      attributes: { rule: "repeated", type: "KeyValue", id: 1 },
      droppedAttributesCount: { type: "uint32", id: 2 },
    },
  },
};

const trace = {
  ExportTraceServiceRequest: {
    fields: {
      resourceSpans: { rule: "repeated", type: "ResourceSpans", id: 1 },
    },
  },
  ResourceSpans: {
    fields: {
      resource: { type: "Resource", id: 1 },
      scopeSpans: { rule: "repeated", type: "ScopeSpans", id: 2 },
      schemaUrl: { type: "string", id: 3 },
    },
  },
  ScopeSpans: {
    fields: {
      scope: { type: "InstrumentationScope", id: 1 },
      spans: { rule: "repeated", type: "Span", id: 2 },
      schemaUrl: { type: "string", id: 3 },
    },
  },
  Span: {
    fields: {
      traceId: { type: "bytes", id: 1 },
      spanId: { type: "bytes", id: 2 },
      traceState: { type: "string", id: 3 },
      parentSpanId: { type: "bytes", id: 4 },
      flags: { type: "fixed32", id: 16 },
      name: { type: "string", id: 5 },
      kind: { type: "int32", id: 6 },
      startTimeUnixNano: { type: "fixed64", id: 7 },
      endTimeUnixNano: { type: "fixed64", id: 8 },
      attributes: { rule: "repeated", type: "KeyValue", id: 9 },
      droppedAttributesCount: { type: "uint32", id: 10 },
      events: { rule: "repeated", type: "Event", id: 11 },
      droppedEventsCount: { type: "uint32", id: 12 },
      links: { rule: "repeated", type: "Link", id: 13 },
      droppedLinksCount: { type: "uint32", id: 14 },
      status: { type: "Status", id: 15 },
    },
  },
  Event: {
    fields: {
      timeUnixNano: { type: "fixed64", id: 1 },
      name: { type: "string", id: 2 },
      attributes: { rule: "repeated", type: "KeyValue", id: 3 },
      droppedAttributesCount: { type: "uint32", id: 4 },
    },
  },
  Link: {
    fields: {
      traceId: { type: "bytes", id: 1 },
      spanId: { type: "bytes", id: 2 },
      traceState: { type: "string", id: 3 },
      attributes: { rule: "repeated", type: "KeyValue", id: 4 },
      droppedAttributesCount: { type: "uint32", id: 5 },
      flags: { type: "fixed32", id: 6 },
    },
  },
  Status: {
    fields: {
      message: { type: "string", id: 2 },
      code: { type: "int32", id: 3 },
    },
  },
};

const logs = {
  ExportLogsServiceRequest: {
    fields: { resourceLogs: { rule: "repeated", type: "ResourceLogs", id: 1 } },
  },
  ResourceLogs: {
    fields: {
      resource: { type: "Resource", id: 1 },
      scopeLogs: { rule: "repeated", type: "ScopeLogs", id: 2 },
      schemaUrl: { type: "string", id: 3 },
    },
  },
  ScopeLogs: {
    fields: {
      scope: { type: "InstrumentationScope", id: 1 },
      logRecords: { rule: "repeated", type: "LogRecord", id: 2 },
      schemaUrl: { type: "string", id: 3 },
    },
  },
  LogRecord: {
    fields: {
      timeUnixNano: { type: "fixed64", id: 1 },
      observedTimeUnixNano: { type: "fixed64", id: 11 },
      severityNumber: { type: "int32", id: 2 },
      severityText: { type: "string", id: 3 },
      body: { type: "AnyValue", id: 5 },
      attributes: { rule: "repeated", type: "KeyValue", id: 6 },
      droppedAttributesCount: { type: "uint32", id: 7 },
      flags: { type: "fixed32", id: 8 },
      traceId: { type: "bytes", id: 9 },
      spanId: { type: "bytes", id: 10 },
      eventName: { type: "string", id: 12 },
    },
  },
};

const metrics = {
  ExportMetricsServiceRequest: {
    fields: {
      resourceMetrics: { rule: "repeated", type: "ResourceMetrics", id: 1 },
    },
  },
  ResourceMetrics: {
    fields: {
      resource: { type: "Resource", id: 1 },
      scopeMetrics: { rule: "repeated", type: "ScopeMetrics", id: 2 },
    },
  },
  ScopeMetrics: {
    fields: {
      scope: { type: "InstrumentationScope", id: 1 },
      metrics: { rule: "repeated", type: "Metric", id: 2 },
      schemaUrl: { type: "string", id: 3 },
    },
  },
  Metric: {
    oneofs: { data: { oneof: ["gauge", "sum", "histogram"] } },
    fields: {
      name: { type: "string", id: 1 },
      description: { type: "string", id: 2 },
      unit: { type: "string", id: 3 },
      gauge: { type: "Gauge", id: 5 },
      sum: { type: "Sum", id: 7 },
      histogram: { type: "Histogram", id: 9 },
    },
  },
  Gauge: {
    fields: {
      dataPoints: { rule: "repeated", type: "NumberDataPoint", id: 1 },
    },
  },
  Sum: {
    fields: {
      dataPoints: { rule: "repeated", type: "NumberDataPoint", id: 1 },
      aggregationTemporality: { type: "int32", id: 2 },
      isMonotonic: { type: "bool", id: 3 },
    },
  },
  Histogram: {
    fields: {
      dataPoints: { rule: "repeated", type: "HistogramDataPoint", id: 1 },
      aggregationTemporality: { type: "int32", id: 2 },
    },
  },
  NumberDataPoint: {
    oneofs: { value: { oneof: ["asDouble", "asInt"] } },
    fields: {
      attributes: { rule: "repeated", type: "KeyValue", id: 7 },
      startTimeUnixNano: { type: "fixed64", id: 2 },
      timeUnixNano: { type: "fixed64", id: 3 },
      asDouble: { type: "double", id: 4 },
      asInt: { type: "sfixed64", id: 6 },
      exemplars: { rule: "repeated", type: "Exemplar", id: 5 },
    },
  },
  HistogramDataPoint: {
    fields: {
      attributes: { rule: "repeated", type: "KeyValue", id: 9 },
      startTimeUnixNano: { type: "fixed64", id: 2 },
      timeUnixNano: { type: "fixed64", id: 3 },
      count: { type: "fixed64", id: 4 },
      sum: { type: "double", id: 5 },
      bucketCounts: { rule: "repeated", type: "fixed64", id: 6 },
      explicitBounds: { rule: "repeated", type: "double", id: 7 },
      exemplars: { rule: "repeated", type: "Exemplar", id: 8 },
      min: { type: "double", id: 11 },
      max: { type: "double", id: 12 },
    },
  },
  Exemplar: {
    oneofs: { value: { oneof: ["asDouble", "asInt"] } },
    fields: {
      timeUnixNano: { type: "fixed64", id: 2 },
      asDouble: { type: "double", id: 3 },
      asInt: { type: "sfixed64", id: 6 },
      spanId: { type: "bytes", id: 4 },
      traceId: { type: "bytes", id: 5 },
    },
  },
};

const root = protobuf.Root.fromJSON({
  nested: { otlp: { nested: { ...common, ...trace, ...logs, ...metrics } } },
});

export const ExportTraceServiceRequest = root.lookupType(
  "otlp.ExportTraceServiceRequest",
);
export const ExportLogsServiceRequest = root.lookupType(
  "otlp.ExportLogsServiceRequest",
);
export const ExportMetricsServiceRequest = root.lookupType(
  "otlp.ExportMetricsServiceRequest",
);
