// A span as the OTLP encoders take it, for tests that send spans of their
// own making: an ended server span, sampled, with nothing dropped, and
// whatever the test sets over it.
import type { SpanData } from "@threadline/otlp";

export function spanData(
  over: Partial<SpanData> & Pick<SpanData, "traceId" | "spanId">,
): SpanData {
  const now = Date.now();
  return {
    scope: { name: "t" },
    parentSpanId: undefined,
    parentIsRemote: false,
    traceState: undefined,
    traceFlags: 1,
    name: "GET /orders",
    kind: 1,
    startTime: now,
    endTime: now + 5,
    attributes: {},
    droppedAttributesCount: 0,
    events: undefined,
    droppedEventsCount: 0,
    links: undefined,
    droppedLinksCount: 0,
    statusCode: 0,
    statusMessage: undefined,
    ...over,
  };
}
