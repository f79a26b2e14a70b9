// A captured logger line as an OTLP log record: the line is parsed once, at
// export, its message becomes the body and its other fields the attributes.
// Flat lines skip the parse (json-record.ts) and come out the same.
import type { Attributes, LogRecordData, LogsEncoder } from "@threadline/otlp";
import { PINO_KEYS_DROPPED, writeStagedRecord } from "./json-record.ts";
import { StagedLogReader, type StagedLog } from "./log-stage.ts";

/**
 * One OTLP request (protobuf) from a staged batch, parsed and encoded a
 * record at a time so the batch's record objects are never alive
 * together. A record that cannot be encoded is left out and counted.
 */
export function encodeStagedLogs(
  encoder: LogsEncoder,
  staged: Uint8Array,
): { body: Uint8Array; rejected: number } {
  const reader = new StagedLogReader(staged);
  let rejected = 0;
  encoder.start();
  while (reader.advance()) {
    try {
      if (encoder.appendWritten(writeStagedRecord, reader)) continue;
    } catch {
      // The line is left to the parse below, which knows what to make of it.
    }
    reader.decode();
    try {
      encoder.append(toLogRecord(reader.log));
    } catch {
      // Nothing of it was kept; the batch goes on without it.
      rejected++;
    }
  }
  return { body: encoder.finish(), rejected };
}

/** The same request as OTLP/JSON, a debugging format. */
export function encodeStagedLogsJson(
  encoder: LogsEncoder,
  staged: Uint8Array,
): string {
  const reader = new StagedLogReader(staged);
  const records: LogRecordData[] = [];
  while (reader.next()) records.push(toLogRecord(reader.log));
  return encoder.encodeJson(records);
}

/** Turns one logger line into a log record; unparsable lines become a string body. */
export function toLogRecord(m: StagedLog): LogRecordData {
  const line = m.line;
  let body: LogRecordData["body"] = line.endsWith("\n")
    ? line.slice(0, -1)
    : line;
  let attributes: Record<string, LogRecordData["body"]> | undefined;
  let time: number | undefined;
  try {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (
      parsed !== null &&
      typeof parsed === "object" &&
      !Array.isArray(parsed)
    ) {
      const msgKey = m.messageKey || "msg";
      body =
        typeof parsed[msgKey] === "string"
          ? (parsed[msgKey] as string)
          : undefined;
      const t = parsed["time"];
      if (typeof t === "number") time = t;
      else if (typeof t === "string") {
        const parsedTime = Date.parse(t);
        if (!Number.isNaN(parsedTime)) time = parsedTime;
      }
      attributes = {};
      for (const key in parsed) {
        if (key === msgKey || PINO_KEYS_DROPPED.has(key)) continue;
        attributes[key] = parsed[key] as LogRecordData["body"];
      }
      const err = parsed["err"];
      if (err !== null && typeof err === "object") {
        const e = err as Record<string, unknown>;
        if (typeof e["type"] === "string")
          attributes["exception.type"] = e["type"];
        if (typeof e["message"] === "string")
          attributes["exception.message"] = e["message"];
        if (typeof e["stack"] === "string")
          attributes["exception.stacktrace"] = e["stack"];
      }
    }
  } catch {
    // not JSON (a custom formatter): keep the raw line as the body
  }
  return {
    time,
    observedTime: m.observed,
    severityNumber: m.severityNumber,
    severityText: m.severityText,
    body,
    attributes: attributes as Attributes | undefined,
    traceId: m.traceId,
    spanId: m.spanId,
    traceFlags: m.traceFlags,
  };
}
