import assert from "node:assert/strict";
import { it } from "node:test";
import { decodeLogsProto, LogsEncoder } from "@threadline/otlp";
import { encodeStagedLogs } from "../src/export/log-record.ts";
import { LogStage, type StagedLog } from "../src/export/log-stage.ts";

/** What the exporter does with a batch. */
function exportBatch(stage: LogStage, encoder: LogsEncoder): Uint8Array {
  const { body, rejected } = encodeStagedLogs(encoder, stage.take());
  assert.equal(rejected, 0);
  return body;
}

const captured = (line: string, more: Partial<StagedLog> = {}): StagedLog => ({
  line,
  severityNumber: 9,
  severityText: "info",
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: 1,
  observed: 1763800000500,
  messageKey: "msg",
  ...more,
});

it("turns captured lines into one OTLP request per batch", () => {
  const stage = new LogStage();
  const encoder = new LogsEncoder(
    { "service.name": "orders" },
    { name: "pino", version: "10.4.0" },
  );
  stage.append(
    captured(
      '{"level":30,"time":1763800000123,"pid":7,"hostname":"h","msg":"order placed","order":42,"trace_id":"x"}\n',
    ),
  );
  stage.append(
    captured("not json at all\n", {
      severityNumber: 17,
      severityText: "error",
      traceId: undefined,
      spanId: undefined,
      traceFlags: 0,
    }),
  );
  stage.append(
    captured('{"message":"custom key","n":1}', { messageKey: "message" }),
  );
  assert.equal(stage.pending, 3);
  const [resourceLogs] = decodeLogsProto(exportBatch(stage, encoder));
  assert.equal(resourceLogs!.resource["service.name"], "orders");
  assert.equal(resourceLogs!.scopes[0]!.scope.name, "pino");
  const [placed, plain, custom] = resourceLogs!.scopes[0]!.logs;
  assert.equal(placed!.body, "order placed");
  assert.deepEqual(placed!.attributes, { order: 42 });
  assert.equal(placed!.timeUs, 1763800000123000);
  assert.equal(placed!.observedUs, 1763800000500000);
  assert.equal(placed!.traceId, "0af7651916cd43dd8448eb211c80319c");
  assert.equal(placed!.spanId, "b7ad6b7169203331");
  assert.equal(placed!.severityText, "info");
  assert.equal(plain!.body, "not json at all");
  assert.equal(plain!.severityNumber, 17);
  assert.equal(plain!.traceId, "");
  assert.equal(custom!.body, "custom key");
  assert.deepEqual(custom!.attributes, { n: 1 });
  // The next batch starts empty.
  stage.append(captured('{"msg":"next"}'));
  const [next] = decodeLogsProto(exportBatch(stage, encoder));
  assert.deepEqual(
    next!.scopes[0]!.logs.map((l) => l.body),
    ["next"],
  );
});
