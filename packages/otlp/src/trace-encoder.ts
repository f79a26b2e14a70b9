// ExportTraceServiceRequest encoding, protobuf and JSON.
import {
  DEEPER_START,
  jsonString,
  keyValuesToJson,
  writeKeyValues,
} from "./any-value.ts";
import type { Attributes, Scope, SpanData } from "./model.ts";
import { groupByScope, scopeToJson } from "./scope.ts";
import {
  jsonId,
  ProtoWriter,
  type Allocate,
  varintSize,
  writeVarintAt,
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_LEN,
  WIRE_VARINT,
} from "./proto-writer.ts";

const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

const MAX_NANOS = 2n ** 64n - 1n;

/**
 * Decimal string of epoch nanoseconds, as OTLP/JSON writes 64-bit
 * integers; a time the uint64 cannot hold as the nearest one it can, as
 * ProtoWriter.fixed64Nanos writes it.
 */
export function msToNanosString(ms: number): string {
  if (!(ms > 0)) return "0";
  if (ms === Infinity) return MAX_NANOS.toString();
  const whole = Math.floor(ms);
  const nanos =
    BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
  return (nanos > MAX_NANOS ? MAX_NANOS : nanos).toString();
}

export function writeResource(
  w: ProtoWriter,
  field: number,
  attributes: Attributes,
): void {
  const m = w.begin(field);
  writeKeyValues(w, 1, attributes);
  w.end(m);
}

export function writeScope(w: ProtoWriter, field: number, scope: Scope): void {
  const m = w.begin(field);
  w.stringField(1, scope.name);
  if (scope.version) w.stringField(2, scope.version);
  w.end(m);
}

function encodeResource(attributes: Attributes): Uint8Array {
  const w = new ProtoWriter(1024);
  writeResource(w, 1, attributes);
  return w.finish();
}

function encodeScope(scope: Scope): Uint8Array {
  const w = new ProtoWriter(256);
  writeScope(w, 1, scope);
  return w.finish();
}

function writeSpan(w: ProtoWriter, s: SpanData): void {
  const m = w.begin(2);
  w.hexField(1, s.traceId, 16);
  w.hexField(2, s.spanId, 8);
  if (s.traceState) w.stringField(3, s.traceState);
  if (s.parentSpanId) w.hexField(4, s.parentSpanId, 8);
  w.stringField(5, s.name);
  w.tag(6, WIRE_VARINT);
  w.uvarint(s.kind + 1);
  w.tag(7, WIRE_FIXED64);
  w.fixed64Nanos(s.startTime);
  w.tag(8, WIRE_FIXED64);
  w.fixed64Nanos(s.endTime);
  writeKeyValues(w, 9, s.attributes);
  if (s.droppedAttributesCount > 0) {
    w.tag(10, WIRE_VARINT);
    w.uvarint(s.droppedAttributesCount);
  }
  if (s.events !== undefined) {
    for (const e of s.events) {
      const em = w.begin(11);
      w.tag(1, WIRE_FIXED64);
      w.fixed64Nanos(e.time);
      w.stringField(2, e.name);
      if (e.attributes !== undefined)
        writeKeyValues(w, 3, e.attributes, DEEPER_START);
      if (e.droppedAttributesCount > 0) {
        w.tag(4, WIRE_VARINT);
        w.uvarint(e.droppedAttributesCount);
      }
      w.end(em);
    }
  }
  if (s.droppedEventsCount > 0) {
    w.tag(12, WIRE_VARINT);
    w.uvarint(s.droppedEventsCount);
  }
  if (s.links !== undefined) {
    for (const l of s.links) {
      const lm = w.begin(13);
      w.hexField(1, l.traceId, 16);
      w.hexField(2, l.spanId, 8);
      if (l.traceState) w.stringField(3, l.traceState);
      if (l.attributes !== undefined)
        writeKeyValues(w, 4, l.attributes, DEEPER_START);
      if (l.droppedAttributesCount > 0) {
        w.tag(5, WIRE_VARINT);
        w.uvarint(l.droppedAttributesCount);
      }
      w.tag(6, WIRE_FIXED32);
      w.fixed32(l.traceFlags & 0xff);
      w.end(lm);
    }
  }
  if (s.droppedLinksCount > 0) {
    w.tag(14, WIRE_VARINT);
    w.uvarint(s.droppedLinksCount);
  }
  if (s.statusCode !== 0 || s.statusMessage) {
    const st = w.begin(15);
    if (s.statusMessage) w.stringField(2, s.statusMessage);
    if (s.statusCode !== 0) {
      w.tag(3, WIRE_VARINT);
      w.uvarint(s.statusCode);
    }
    w.end(st);
  }
  w.tag(16, WIRE_FIXED32);
  w.fixed32(
    (s.traceFlags & 0xff) | HAS_IS_REMOTE | (s.parentIsRemote ? IS_REMOTE : 0),
  );
  w.end(m);
}

/**
 * Encodes spans as OTLP ExportTraceServiceRequest messages for one
 * resource: a batch at once with {@link TraceEncoder.encode}, or span by
 * span with {@link TraceEncoder.append}, keeping only the bytes until
 * {@link TraceEncoder.take} (what the SDK does).
 */
export class TraceEncoder {
  readonly #resource: Attributes;
  /** Spans appended since the last take(), encoded, per instrumentation scope. */
  readonly #scopes = new Map<Scope, ProtoWriter>();
  #pending = 0;
  #bytes = 0;
  /** ResourceSpans.resource, encoded once. */
  #resourceBytes: Uint8Array | undefined;
  /** ScopeSpans.scope of each scope, encoded once. */
  #scopeBytes: WeakMap<Scope, Uint8Array> | undefined;

  readonly #allocate: Allocate;
  readonly #keepBytes: number;
  /** The scope of the span appended last, and where it begins in its buffer. */
  #lastScope: Scope | undefined;
  #lastAt = 0;

  /**
   * `allocate` gives the memory of each request {@link take} assembles
   * (for a caller that reuses it once the request is sent). A scope's
   * buffer grown past `keepBytes` is let go after its batch, not kept at
   * that size.
   */
  constructor(
    resource: Attributes,
    {
      allocate = Buffer.allocUnsafeSlow,
      keepBytes = Infinity,
    }: { allocate?: Allocate; keepBytes?: number } = {},
  ) {
    this.#resource = resource;
    this.#allocate = allocate;
    this.#keepBytes = keepBytes;
  }

  /** Spans appended and not yet taken. */
  get pending(): number {
    return this.#pending;
  }

  /** Bytes of the spans appended and not yet taken. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Encodes one span now (protobuf) into its scope's buffer and keeps only
   * its bytes until {@link take}. Throws, having kept nothing of the span,
   * when it cannot be encoded.
   */
  append(span: SpanData): void {
    let w = this.#scopes.get(span.scope);
    if (w === undefined) {
      // Encoded now, not at take(): a scope that cannot be encoded (a
      // name that is no string) fails its spans alone, not each request.
      this.#scopeHead(span.scope);
      this.#scopes.set(span.scope, (w = new ProtoWriter(16 * 1024)));
    }
    const at = w.length;
    try {
      writeSpan(w, span);
    } catch (err) {
      w.truncate(at);
      throw err;
    }
    this.#pending++;
    this.#bytes += w.length - at;
    this.#lastScope = span.scope;
    this.#lastAt = at;
  }

  /**
   * One protobuf request holding every span appended since the last take()
   * but the last one, which stays for the next take(): `bytes` is what
   * {@link bytes} was before that span was appended. The only split there
   * is, for a span too large to share a request (see the SDK's
   * EncodingQueue): one too large for the exporter's buffer is then
   * dropped alone, not with the spans that ended before it.
   */
  takeBefore(bytes: number): Uint8Array {
    const scope = this.#lastScope;
    const w = scope === undefined ? undefined : this.#scopes.get(scope);
    const size = this.#bytes - bytes;
    if (
      scope === undefined ||
      w === undefined ||
      this.#pending < 2 ||
      w.length - this.#lastAt !== size
    )
      throw new RangeError("takeBefore() splits off the last span alone");
    const last = new ProtoWriter(size);
    last.raw(w.view().subarray(this.#lastAt));
    w.truncate(this.#lastAt);
    this.#pending--;
    this.#bytes = bytes;
    const out = this.take();
    this.#scopes.set(scope, last);
    this.#pending = 1;
    this.#bytes = size;
    return out;
  }

  /** One protobuf request holding every span appended since the last take(). */
  take(): Uint8Array {
    // The request is assembled in one allocation and one copy of each
    // scope's spans: the enclosing messages' lengths are known up front.
    this.#resourceBytes ??= encodeResource(this.#resource);
    let scopesLength = 0;
    const parts: Array<[scopeBytes: Uint8Array, spans: Uint8Array]> = [];
    for (const [scope, spans] of this.#scopes) {
      // A scope with nothing in this batch is forgotten, so scopes of
      // short-lived tracers do not accumulate.
      if (spans.length === 0) {
        this.#scopes.delete(scope);
        continue;
      }
      const head = this.#scopeHead(scope);
      const content = head.length + spans.length;
      scopesLength += 1 + varintSize(content) + content;
      parts.push([head, spans.view()]);
    }
    const rsContent = this.#resourceBytes.length + scopesLength;
    const out = this.#allocate(1 + varintSize(rsContent) + rsContent);
    let pos = 0;
    out[pos++] = (1 << 3) | WIRE_LEN; // ExportTraceServiceRequest.resource_spans
    pos = writeVarintAt(out, pos, rsContent);
    out.set(this.#resourceBytes, pos);
    pos += this.#resourceBytes.length;
    for (const [head, spans] of parts) {
      out[pos++] = (2 << 3) | WIRE_LEN; // ResourceSpans.scope_spans
      pos = writeVarintAt(out, pos, head.length + spans.length);
      out.set(head, pos);
      pos += head.length;
      out.set(spans, pos);
      pos += spans.length;
    }
    this.#clear();
    return out;
  }

  /** ScopeSpans.scope of `scope`, encoded the first time. */
  #scopeHead(scope: Scope): Uint8Array {
    const heads = (this.#scopeBytes ??= new WeakMap());
    let head = heads.get(scope);
    if (head === undefined) heads.set(scope, (head = encodeScope(scope)));
    return head;
  }

  /**
   * Protobuf (`application/x-protobuf`): a batch in hand, appended and
   * taken at once (spans appended before and not yet taken go with it). A
   * span that cannot be encoded is left out and handed to `onError`;
   * without `onError`, its error is thrown and nothing is kept.
   */
  encode(
    spans: readonly SpanData[],
    onError?: (err: unknown, span: SpanData) => void,
  ): Uint8Array {
    for (const s of spans) {
      try {
        this.append(s);
      } catch (err) {
        if (onError === undefined) {
          this.#clear();
          throw err;
        }
        onError(err, s);
      }
    }
    return this.take();
  }

  #clear(): void {
    for (const [scope, spans] of this.#scopes) {
      // A buffer grown for a batch of unusually large spans is let go,
      // not kept at that size for the rest of the process.
      if (spans.capacity > this.#keepBytes) this.#scopes.delete(scope);
      else spans.reset();
    }
    this.#pending = 0;
    this.#bytes = 0;
  }

  /**
   * OTLP/JSON (`application/json`). A span that cannot be encoded is left
   * out and handed to `onError`, as {@link encode} does; without
   * `onError`, its error is thrown.
   */
  encodeJson(
    spans: readonly SpanData[],
    onError?: (err: unknown, span: SpanData) => void,
  ): string {
    const scopeSpans = [];
    for (const [scope, list] of groupByScope(spans)) {
      const json: unknown[] = [];
      for (const s of list) {
        try {
          // As protobuf writes the scope with its first span: one that
          // cannot be written leaves out its spans.
          if (json.length === 0) {
            jsonString(scope.name, "its scope's name");
            if (scope.version) jsonString(scope.version, "its scope's version");
          }
          json.push(spanToJson(s));
        } catch (err) {
          if (onError === undefined) throw err;
          onError(err, s);
        }
      }
      if (json.length > 0)
        scopeSpans.push({ scope: scopeToJson(scope), spans: json });
    }
    return JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: keyValuesToJson(this.#resource) },
          scopeSpans,
        },
      ],
    });
  }
}

function spanToJson(s: SpanData): unknown {
  return {
    traceId: jsonId(s.traceId, 16),
    spanId: jsonId(s.spanId, 8),
    ...(s.traceState ? { traceState: s.traceState } : {}),
    parentSpanId: jsonId(s.parentSpanId, 8),
    flags:
      (s.traceFlags & 0xff) |
      HAS_IS_REMOTE |
      (s.parentIsRemote ? IS_REMOTE : 0),
    name: jsonString(s.name, "the span's name"),
    kind: s.kind + 1,
    startTimeUnixNano: msToNanosString(s.startTime),
    endTimeUnixNano: msToNanosString(s.endTime),
    attributes: keyValuesToJson(s.attributes),
    ...(s.droppedAttributesCount
      ? { droppedAttributesCount: s.droppedAttributesCount }
      : {}),
    ...(s.events
      ? {
          events: s.events.map((e) => ({
            timeUnixNano: msToNanosString(e.time),
            name: e.name,
            attributes: keyValuesToJson(e.attributes, DEEPER_START),
            ...(e.droppedAttributesCount
              ? { droppedAttributesCount: e.droppedAttributesCount }
              : {}),
          })),
        }
      : {}),
    ...(s.droppedEventsCount
      ? { droppedEventsCount: s.droppedEventsCount }
      : {}),
    ...(s.links
      ? {
          links: s.links.map((l) => ({
            traceId: jsonId(l.traceId, 16),
            spanId: jsonId(l.spanId, 8),
            ...(l.traceState ? { traceState: l.traceState } : {}),
            attributes: keyValuesToJson(l.attributes, DEEPER_START),
            ...(l.droppedAttributesCount
              ? { droppedAttributesCount: l.droppedAttributesCount }
              : {}),
            flags: l.traceFlags & 0xff,
          })),
        }
      : {}),
    ...(s.droppedLinksCount ? { droppedLinksCount: s.droppedLinksCount } : {}),
    status: {
      ...(s.statusMessage ? { message: s.statusMessage } : {}),
      ...(s.statusCode ? { code: s.statusCode } : {}),
    },
  };
}
