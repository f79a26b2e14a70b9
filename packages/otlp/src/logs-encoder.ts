// ExportLogsServiceRequest encoding, protobuf and JSON.
import {
  anyValueToJson,
  keyValuesToJson,
  writeAnyValue,
  writeKeyValues,
} from "./any-value.ts";
import type { Attributes, LogRecordData, Scope } from "./model.ts";
import {
  jsonId,
  ProtoWriter,
  type Allocate,
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_VARINT,
} from "./proto-writer.ts";
import { msToNanosString, writeResource, writeScope } from "./trace-encoder.ts";
import { scopeToJson } from "./scope.ts";

/** Encodes log records of one scope as OTLP ExportLogsServiceRequest messages for one resource. */
export class LogsEncoder {
  readonly #resource: Attributes;
  readonly #scope: Scope;
  readonly #writer = new ProtoWriter();
  /** Where the ResourceLogs and ScopeLogs of the request being built begin. */
  #resourceLogs = 0;
  #scopeLogs = 0;
  /** Where that ScopeLogs begins, and where its records do (none while the writer is there). */
  #scopeStart = 0;
  #scopeAt = 0;

  readonly #allocate: Allocate | undefined;

  /** `allocate` gives the memory of each finished request (see TraceEncoder). */
  constructor(
    resource: Attributes,
    scope: Scope,
    { allocate }: { allocate?: Allocate } = {},
  ) {
    this.#resource = resource;
    this.#scope = scope;
    this.#allocate = allocate;
  }

  /** One request holding `records`. */
  encode(records: readonly LogRecordData[]): Uint8Array {
    this.start();
    for (const r of records) this.append(r);
    return this.finish();
  }

  /**
   * Starts a request to which records are appended one at a time, so the
   * caller need never hold a whole batch of record objects.
   */
  start(): void {
    const w = this.#writer;
    w.reset();
    this.#resourceLogs = w.begin(1);
    writeResource(w, 1, this.#resource);
    this.#beginScope(this.#scope);
  }

  /**
   * Ends the records of the scope being written and begins those of
   * `scope`: the records appended from here on are its. A scope that got
   * no record is left out of the request.
   */
  scope(scope: Scope): void {
    const w = this.#writer;
    if (w.length === this.#scopeAt) w.truncate(this.#scopeStart);
    else w.end(this.#scopeLogs);
    this.#beginScope(scope);
  }

  #beginScope(scope: Scope): void {
    const w = this.#writer;
    this.#scopeStart = w.length;
    this.#scopeLogs = w.begin(2);
    writeScope(w, 1, scope);
    this.#scopeAt = w.length;
  }

  /** Appends one record; throws, having kept nothing of it, when it cannot be encoded. */
  append(r: LogRecordData): void {
    const w = this.#writer;
    const at = w.length;
    try {
      const m = w.begin(2);
      if (r.time !== undefined) {
        w.tag(1, WIRE_FIXED64);
        w.fixed64Nanos(r.time);
      }
      if (r.severityNumber > 0) {
        w.tag(2, WIRE_VARINT);
        w.uvarint(r.severityNumber);
      }
      if (r.severityText) w.stringField(3, r.severityText);
      if (r.body !== undefined) {
        const b = w.begin(5);
        writeAnyValue(w, r.body);
        w.end(b);
      }
      if (r.attributes !== undefined) writeKeyValues(w, 6, r.attributes);
      if (r.droppedAttributesCount) {
        w.tag(7, WIRE_VARINT);
        w.uvarint(r.droppedAttributesCount);
      }
      if (r.traceFlags) {
        w.tag(8, WIRE_FIXED32);
        w.fixed32(r.traceFlags & 0xff);
      }
      if (r.traceId) w.hexField(9, r.traceId, 16);
      if (r.spanId) w.hexField(10, r.spanId, 8);
      w.tag(11, WIRE_FIXED64);
      w.fixed64Nanos(r.observedTime);
      if (r.eventName) w.stringField(12, r.eventName);
      w.end(m);
    } catch (err) {
      w.truncate(at);
      throw err;
    }
  }

  /**
   * Appends one record whose fields `write` puts into the request itself
   * (LogRecord's fields, in field order), for a caller that encodes
   * straight from bytes it holds. False, with nothing of the record kept,
   * when `write` returns false (it cannot write this one) or throws.
   */
  appendWritten<T>(
    write: (w: ProtoWriter, arg: T) => boolean,
    arg: T,
  ): boolean {
    const w = this.#writer;
    const at = w.length;
    let written = false;
    try {
      const m = w.begin(2);
      written = write(w, arg);
      if (written) w.end(m);
    } finally {
      if (!written) w.truncate(at);
    }
    return written;
  }

  /** The request started by {@link start}, with every record appended since. */
  finish(): Uint8Array {
    const w = this.#writer;
    w.end(this.#scopeLogs);
    w.end(this.#resourceLogs);
    return w.finish(this.#allocate);
  }

  /**
   * One request holding `records`, as OTLP/JSON, and after them those of
   * other scopes; as {@link scope} does, a scope with no record is left
   * out (the encoder's own stays in a request with none at all).
   */
  encodeJson(
    records: readonly LogRecordData[],
    others: ReadonlyArray<{
      scope: Scope;
      records: readonly LogRecordData[];
    }> = [],
  ): string {
    const all = [{ scope: this.#scope, records }, ...others];
    const used = all.filter((g) => g.records.length > 0);
    return JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: keyValuesToJson(this.#resource) },
          scopeLogs: (used.length > 0 ? used : all.slice(0, 1)).map((g) => ({
            scope: scopeToJson(g.scope),
            logRecords: g.records.map(recordToJson),
          })),
        },
      ],
    });
  }
}

function recordToJson(r: LogRecordData) {
  return {
    ...(r.time !== undefined ? { timeUnixNano: msToNanosString(r.time) } : {}),
    observedTimeUnixNano: msToNanosString(r.observedTime),
    ...(r.severityNumber ? { severityNumber: r.severityNumber } : {}),
    ...(r.severityText ? { severityText: r.severityText } : {}),
    ...(r.body !== undefined ? { body: anyValueToJson(r.body) } : {}),
    attributes: keyValuesToJson(r.attributes),
    ...(r.droppedAttributesCount
      ? { droppedAttributesCount: r.droppedAttributesCount }
      : {}),
    ...(r.traceFlags ? { flags: r.traceFlags & 0xff } : {}),
    traceId: jsonId(r.traceId, 16),
    spanId: jsonId(r.spanId, 8),
    ...(r.eventName ? { eventName: r.eventName } : {}),
  };
}
