import assert from "node:assert/strict";
import { it } from "node:test";
import {
  ALL_OWN_FIELDS as CORE_ALL_OWN_FIELDS,
  OwnField,
} from "@threadline/core";
import {
  ALL_OWN_FIELDS,
  LogStage,
  OWN_CUSTOMER,
  OWN_HOSTNAME,
  OWN_LEVEL,
  OWN_PID,
  OWN_TIME,
  StagedLogReader,
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
  ownFields: ALL_OWN_FIELDS,
  sdk: false,
};

function readAll(body: Uint8Array): StagedLog[] {
  const reader = new StagedLogReader(body);
  const out: StagedLog[] = [];
  while (reader.next()) out.push({ ...reader.log });
  return out;
}

it("gives back every record as it was captured, in order", () => {
  const stage = new LogStage({ initialSize: 64 });
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
    { ...base, line: "", messageKey: "", traceId: undefined },
    { ...base, severityNumber: 17, severityText: "error", spanId: undefined },
    { ...base, traceId: undefined, spanId: undefined, sdk: true },
  ];
  for (const r of records) stage.append({ ...r });
  assert.equal(stage.pending, records.length);
  const body = stage.take();
  assert.equal(stage.pending, 0);
  assert.deepEqual(readAll(body), records);
});

it("leaves out ids that are not as long as they should be, or not ASCII", () => {
  const stage = new LogStage();
  stage.append({ ...base, traceId: "0af76519", spanId: "b7ad6b7169203331ff" });
  stage.append({ ...base, traceId: "é".repeat(32), spanId: "☕".repeat(16) });
  for (const r of readAll(stage.take())) {
    assert.equal(r.traceId, undefined);
    assert.equal(r.spanId, undefined);
    assert.equal(r.line, base.line);
  }
});

it("starts each batch empty, and a batch is its bytes alone", () => {
  const stage = new LogStage({ initialSize: 64 });
  stage.append({ ...base, line: "first", severityText: "warn" });
  const first = stage.take();
  stage.append({ ...base, line: "second" });
  const second = stage.take();
  assert.deepEqual(
    readAll(first).map((r) => [r.line, r.severityText]),
    [["first", "warn"]],
  );
  assert.deepEqual(
    readAll(second).map((r) => [r.line, r.severityText]),
    [["second", "info"]],
  );
  // A batch holds only its own records: nothing else goes to the worker.
  assert.equal(first.buffer.byteLength, first.byteLength);
  assert.equal(readAll(stage.take()).length, 0);
});

it("lets go of the room one very long line made it take", () => {
  const stage = new LogStage({
    initialSize: 64 * 1024,
    keepBytes: 8 * 1024 * 1024,
  });
  // An ordinary batch of 1.4 MB keeps its room.
  for (let i = 0; i < 700; i++)
    stage.append({ ...base, line: `{"msg":"${"x".repeat(2000)}"}\n` });
  const grown = stage.capacity;
  assert.ok(grown > 1024 * 1024);
  stage.take();
  assert.equal(stage.capacity, grown);
  const long = { ...base, line: `{"msg":"${"x".repeat(4_000_000)}"}\n` };
  stage.append(long);
  assert.ok(stage.capacity >= 12_000_000, "room for 3 bytes a character");
  assert.equal(readAll(stage.take())[0]!.line, long.line);
  assert.equal(stage.capacity, 64 * 1024);
  stage.append(base);
  assert.deepEqual(readAll(stage.take()), [base]);
});

it("hands out the records before a point and keeps those after it", () => {
  const stage = new LogStage({ initialSize: 64 });
  stage.append({ ...base });
  stage.append({ ...base, messageKey: "message" });
  const end = stage.bytes;
  const large = { ...base, line: "m".repeat(10_000), severityText: "warn" };
  stage.append({ ...large });
  assert.deepEqual(readAll(stage.takeBefore(end)), [
    base,
    { ...base, messageKey: "message" },
  ]);
  assert.equal(stage.pending, 1);
  stage.append({ ...base, severityText: "error" });
  assert.deepEqual(readAll(stage.take()), [
    large,
    { ...base, severityText: "error" },
  ]);
});

it("numbers a logger's own fields as @threadline/core does", () => {
  assert.deepEqual(
    {
      level: OWN_LEVEL,
      time: OWN_TIME,
      pid: OWN_PID,
      hostname: OWN_HOSTNAME,
      customer: OWN_CUSTOMER,
    },
    { ...OwnField },
  );
  assert.equal(ALL_OWN_FIELDS, CORE_ALL_OWN_FIELDS);
});
