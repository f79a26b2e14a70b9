import assert from "node:assert/strict";
import { it } from "node:test";
import {
  LogStage,
  stagedLogs,
  type StagedLog,
} from "../src/export/log-stage.ts";

const base: StagedLog = {
  line: '{"level":30,"msg":"order placed"}\n',
  severityNumber: 9,
  severityText: "info",
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: 1,
  observed: 1763800000123.25,
  messageKey: "msg",
};

it("gives back every record as it was captured, in order", () => {
  const stage = new LogStage(64);
  const records: StagedLog[] = [
    base,
    {
      ...base,
      line: '{"msg":"naïve café ☕ 𝄞 — 注文"}',
      severityText: undefined,
      traceId: undefined,
      spanId: undefined,
      traceFlags: 0,
      messageKey: "message",
    },
    { ...base, line: "x".repeat(100_000), severityText: "crítico" },
    { ...base, line: "", messageKey: "" },
  ];
  for (const r of records) stage.append({ ...r });
  assert.equal(stage.pending, 4);
  const body = stage.take();
  assert.equal(stage.pending, 0);
  assert.deepEqual([...stagedLogs(body)], records);
});

it("leaves out ids that are not the hex they should be", () => {
  const stage = new LogStage();
  stage.append({ ...base, traceId: "z".repeat(32), spanId: "b7ad6b71" });
  stage.append({ ...base, traceId: "0AF7651916CD43DD8448EB211C80319C" });
  const [bad, upper] = [...stagedLogs(stage.take())];
  assert.equal(bad!.traceId, undefined);
  assert.equal(bad!.spanId, undefined);
  assert.equal(bad!.line, base.line);
  assert.equal(upper!.traceId, base.traceId);
});

it("starts each batch empty, and the batch owns its bytes", () => {
  const stage = new LogStage(64);
  stage.append({ ...base, line: "first" });
  const first = stage.take();
  stage.append({ ...base, line: "second" });
  const second = stage.take();
  assert.deepEqual(
    [...stagedLogs(first)].map((r) => r.line),
    ["first"],
  );
  assert.deepEqual(
    [...stagedLogs(second)].map((r) => r.line),
    ["second"],
  );
  // Transferable to the export worker: nothing else lives in its buffer.
  assert.equal(first.byteOffset, 0);
  assert.equal(first.buffer.byteLength, first.byteLength);
  assert.equal([...stagedLogs(stage.take())].length, 0);
});
