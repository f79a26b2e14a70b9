// A captured logger line as an OTLP log record: the line is parsed once, at
// export, its message becomes the body and its other fields the attributes.
// Flat lines skip the parse (json-record.ts) and come out the same.
import type {
  Attributes,
  LogRecordData,
  LogsEncoder,
  ProtoWriter,
} from "@threadline/otlp";
import {
  epochMillis,
  NO_LOG_LIMITS,
  PINO_KEYS_DROPPED,
  writeStagedRecord,
  type LogLimits,
} from "./json-record.ts";
import { StagedLogReader, type StagedLog } from "./log-stage.ts";
import { truncate } from "../internal/truncate.ts";

/**
 * One OTLP request (protobuf) from a staged batch, parsed and encoded a
 * record at a time so the batch's record objects are never alive
 * together. A record that cannot be encoded is left out and counted.
 */
export function encodeStagedLogs(
  encoder: LogsEncoder,
  staged: Uint8Array,
  limits: LogLimits = NO_LOG_LIMITS,
): { body: Uint8Array; rejected: number } {
  const reader = new StagedLogReader(staged);
  const write =
    limits === NO_LOG_LIMITS
      ? writeStagedRecord
      : (w: ProtoWriter, r: StagedLogReader) => writeStagedRecord(w, r, limits);
  let rejected = 0;
  encoder.start();
  while (reader.advance()) {
    try {
      if (encoder.appendWritten(write, reader)) continue;
    } catch {
      // The line is left to the parse below, which knows what to make of it.
    }
    reader.decode();
    try {
      encoder.append(toLogRecord(reader.log, limits));
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
  limits: LogLimits = NO_LOG_LIMITS,
): string {
  const reader = new StagedLogReader(staged);
  const records: LogRecordData[] = [];
  while (reader.next()) records.push(toLogRecord(reader.log, limits));
  return encoder.encodeJson(records);
}

/**
 * Turns one logger line into a log record; unparsable lines become a string
 * body. The limits apply to the attributes (strings, and strings within
 * arrays and objects, cut to the length limit; attributes past the count
 * limit left out and counted), as they do to a span's.
 */
export function toLogRecord(
  m: StagedLog,
  limits: LogLimits = NO_LOG_LIMITS,
): LogRecordData {
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
      // A message that is not a string (pino writes what it is given) is
      // still the body.
      body = parsed[msgKey] as LogRecordData["body"];
      const t = parsed["time"];
      if (typeof t === "number") time = epochMillis(t);
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
  let dropped = 0;
  if (attributes !== undefined && limits !== NO_LOG_LIMITS) {
    const limited: typeof attributes = {};
    let kept = 0;
    for (const key in attributes) {
      if (kept === limits.attributeCountLimit) {
        dropped++;
        continue;
      }
      limited[key] = cut(attributes[key], limits.attributeValueLengthLimit);
      kept++;
    }
    attributes = limited;
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
    ...(dropped > 0 ? { droppedAttributesCount: dropped } : {}),
  };
}

function cut(v: LogRecordData["body"], length: number): LogRecordData["body"] {
  if (typeof v === "string") return truncate(v, length);
  if (Array.isArray(v)) return v.map((x) => cut(x, length));
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const out: Record<string, LogRecordData["body"]> = {};
    for (const k in v)
      out[k] = cut((v as Record<string, LogRecordData["body"]>)[k], length);
    return out;
  }
  return v;
}
