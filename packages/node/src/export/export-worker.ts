// The export worker: everything about getting telemetry to the Collector
// that does not need the application's thread.
//
// - Spans arrive already encoded (cheap, on the main thread, in batches);
//   log lines arrive as the logger wrote them and are parsed and encoded
//   here, so the application never parses its own log output.
// - Each signal has a FIFO of payloads bounded in bytes. A full buffer drops
//   the incoming payload; a payload that cannot be delivered within the
//   retry budget is dropped; both are counted by reason.
// - Retries follow the OTLP/HTTP rules: 429, 502, 503 and 504 and network
//   errors are retried with exponential backoff and jitter, Retry-After is
//   honoured; other statuses are final. One backoff per signal, so a dead
//   Collector is probed, not hammered.
// - A flush sends everything at once, ignoring backoff; a final flush
//   (shutdown, exit) gives up at its deadline and counts what was left.
//   Completion is signalled through a shared Int32 so the main thread can
//   wait for it synchronously in an 'exit' handler.
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { parentPort, workerData } from "node:worker_threads";
import { gzipSync } from "node:zlib";
import {
  LogsEncoder,
  type Attributes,
  type LogRecordData,
} from "@threadline/otlp";
import {
  CONTROL_FLUSHED,
  counterIndex,
  type EndpointSettings,
  type FlushMessage,
  type FromWorker,
  type LogsMessage,
  type Signal,
  type ToWorker,
  type WorkerCounter,
  type WorkerSettings,
} from "./protocol.ts";
import { pollWatchSource } from "./watch-source.ts";

const settings = workerData as WorkerSettings;
const counters = new Float64Array(settings.counters);
const control = new Int32Array(settings.control);
const port = parentPort!;

// Short enough that export resumes within seconds of the Collector's return.
const MAX_BACKOFF_MS = 5_000;
const MAX_RETRY_AFTER_MS = 300_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

const WHAT: Record<Signal, string> = {
  traces: "spans",
  logs: "log records",
  metrics: "metric points",
};

function add(signal: Signal, counter: WorkerCounter, n: number): void {
  counters[counterIndex(signal, counter)]! += n;
}

function post(msg: FromWorker): void {
  port.postMessage(msg);
}

/** The URL without user info, safe to print. */
function printable(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

interface Payload {
  body: Buffer;
  count: number;
  enqueuedAt: number;
  /** Set when a final flush gave up on this payload while it was in flight. */
  abandoned: boolean;
  /** The flush round in which this payload was last attempted (0: none). */
  round: number;
}

type Outcome =
  | { kind: "ok"; rejected: number }
  | { kind: "retry"; reason: string; retryAfterMs: number | undefined }
  | { kind: "fail"; reason: string };

class Channel {
  readonly #signal: Signal;
  readonly #endpoint: EndpointSettings;
  readonly #url: URL;
  readonly #agent: HttpAgent;
  readonly #queue: Payload[] = [];
  readonly #inflight = new Set<Payload>();
  #pendingBytes = 0;
  #failures = 0;
  #nextAttemptAt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Current flush round; 0 when not flushing. */
  #round = 0;

  constructor(signal: Signal, endpoint: EndpointSettings) {
    this.#signal = signal;
    this.#endpoint = endpoint;
    this.#url = new URL(endpoint.url);
    this.#agent =
      this.#url.protocol === "https:"
        ? new HttpsAgent({ keepAlive: true, maxSockets: 4 })
        : new HttpAgent({ keepAlive: true, maxSockets: 4 });
  }

  /** During a flush: every payload was attempted once in this round and nothing is in flight. */
  get settled(): boolean {
    if (this.#inflight.size > 0) return false;
    for (const p of this.#queue) if (p.round !== this.#round) return false;
    return true;
  }

  #syncGauges(): void {
    counters[counterIndex(this.#signal, "pendingBytes")] = this.#pendingBytes;
    let items = 0;
    for (const p of this.#queue) items += p.count;
    for (const p of this.#inflight) items += p.count;
    counters[counterIndex(this.#signal, "pendingItems")] = items;
  }

  enqueue(raw: Uint8Array | string, count: number): void {
    let body: Buffer =
      typeof raw === "string"
        ? Buffer.from(raw)
        : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (this.#endpoint.compression === "gzip") body = gzipSync(body);
    if (this.#pendingBytes + body.length > settings.maxPendingBytes) {
      add(this.#signal, "queueFull", count);
      post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-buffer-full`,
        message: `dropped ${WHAT[this.#signal]}: the export buffer is full (${settings.maxPendingBytes} bytes) while ${printable(this.#endpoint.url)} is not accepting data`,
      });
      return;
    }
    this.#pendingBytes += body.length;
    this.#queue.push({
      body,
      count,
      enqueuedAt: Date.now(),
      abandoned: false,
      round: 0,
    });
    this.#syncGauges();
    this.pump();
  }

  /** Starts flush round `round`: every queued payload is attempted once now, ignoring backoff. */
  hurry(round: number): void {
    this.#round = round;
    this.pump();
  }

  /** Ends the flush round; pending payloads go back to the normal schedule. */
  calm(): void {
    this.#round = 0;
    if (this.#queue.length > 0)
      this.#schedule(Math.max(0, this.#nextAttemptAt - Date.now()));
  }

  pump(): void {
    if (this.#round !== 0) {
      for (let i = 0; i < this.#queue.length && this.#inflight.size < 4;) {
        const p = this.#queue[i]!;
        if (p.round === this.#round) {
          i++;
          continue;
        }
        this.#queue.splice(i, 1);
        p.round = this.#round;
        this.#start(p);
      }
      return;
    }
    // While failing, probe with one request at a time: one failure per round of backoff.
    const limit = this.#failures > 0 ? 1 : 2;
    while (this.#inflight.size < limit && this.#queue.length > 0) {
      const wait = this.#nextAttemptAt - Date.now();
      if (wait > 0) {
        this.#schedule(wait);
        return;
      }
      this.#start(this.#queue.shift()!);
    }
  }

  #start(p: Payload): void {
    this.#inflight.add(p);
    void this.#send(p).then((outcome) => this.#settle(p, outcome));
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.pump();
    }, ms);
  }

  #settle(p: Payload, outcome: Outcome): void {
    this.#inflight.delete(p);
    if (p.abandoned) {
      checkFlush();
      return;
    }
    const what = WHAT[this.#signal];
    if (outcome.kind === "ok") {
      this.#pendingBytes -= p.body.length;
      this.#failures = 0;
      add(this.#signal, "exported", p.count - outcome.rejected);
      if (outcome.rejected > 0) {
        add(this.#signal, "rejected", outcome.rejected);
        post({
          t: "diag",
          level: "warn",
          key: `${this.#signal}-partial`,
          message: `the Collector rejected ${outcome.rejected} ${what}`,
        });
      }
    } else if (outcome.kind === "fail") {
      this.#pendingBytes -= p.body.length;
      add(this.#signal, "rejected", p.count);
      post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-rejected`,
        message: `dropped ${p.count} ${what}: ${printable(this.#endpoint.url)} refused them (${outcome.reason}); not retried`,
      });
    } else if (Date.now() - p.enqueuedAt >= settings.maxRetryMs) {
      this.#pendingBytes -= p.body.length;
      add(this.#signal, "retriesExhausted", p.count);
      post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-retries`,
        message: `dropped ${p.count} ${what} after retrying for ${Math.round(settings.maxRetryMs / 1000)} s: ${printable(this.#endpoint.url)} ${outcome.reason}`,
      });
    } else {
      this.#failures++;
      const backoff = Math.min(
        MAX_BACKOFF_MS,
        1000 * 2 ** (this.#failures - 1),
      );
      const delay =
        outcome.retryAfterMs ?? backoff / 2 + (Math.random() * backoff) / 2;
      this.#nextAttemptAt = Math.max(this.#nextAttemptAt, Date.now() + delay);
      this.#queue.unshift(p);
      post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-retry`,
        message: `could not export ${what} to ${printable(this.#endpoint.url)}: ${outcome.reason}; retrying with backoff`,
      });
    }
    this.#syncGauges();
    if (this.#round !== 0) this.pump();
    else if (this.#queue.length > 0)
      this.#schedule(Math.max(0, this.#nextAttemptAt - Date.now()));
    checkFlush();
  }

  /** Final flush deadline: everything not yet delivered is lost. */
  abandon(): number {
    let lost = 0;
    for (const p of this.#queue) lost += p.count;
    for (const p of this.#inflight) {
      lost += p.count;
      p.abandoned = true;
    }
    this.#queue.length = 0;
    this.#inflight.clear();
    this.#pendingBytes = 0;
    if (lost > 0) add(this.#signal, "shutdownDeadline", lost);
    this.#syncGauges();
    return lost;
  }

  #send(p: Payload): Promise<Outcome> {
    const e = this.#endpoint;
    return new Promise<Outcome>((resolve) => {
      let done = false;
      const finish = (o: Outcome) => {
        if (!done) {
          done = true;
          resolve(o);
        }
      };
      const headers: Record<string, string | number> = {
        ...e.headers,
        "content-type":
          e.protocol === "http/json"
            ? "application/json"
            : "application/x-protobuf",
        "content-length": p.body.length,
      };
      if (e.compression === "gzip") headers["content-encoding"] = "gzip";
      const request =
        this.#url.protocol === "https:" ? httpsRequest : httpRequest;
      let req;
      try {
        req = request(this.#url, {
          method: "POST",
          headers,
          agent: this.#agent,
          timeout: e.timeoutMs,
        });
      } catch (err) {
        finish({ kind: "fail", reason: (err as Error).message });
        return;
      }
      req.on("timeout", () => {
        req.destroy(new Error(`no answer within ${e.timeoutMs} ms`));
      });
      req.on("error", (err: NodeJS.ErrnoException) =>
        finish({
          kind: "retry",
          reason: err.code ?? err.message,
          retryAfterMs: undefined,
        }),
      );
      req.on("response", (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
        });
        res.on("error", () =>
          finish({
            kind: "retry",
            reason: "the response broke off",
            retryAfterMs: undefined,
          }),
        );
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            finish({
              kind: "ok",
              rejected: rejectedCount(
                Buffer.concat(chunks),
                e.protocol,
                res.headers["content-type"],
              ),
            });
          } else if (
            status === 429 ||
            status === 502 ||
            status === 503 ||
            status === 504
          ) {
            finish({
              kind: "retry",
              reason: `answered HTTP ${status}`,
              retryAfterMs: retryAfter(res.headers["retry-after"]),
            });
          } else {
            finish({ kind: "fail", reason: `HTTP ${status}` });
          }
        });
      });
      req.end(p.body);
    });
  }
}

/** Parses Retry-After (seconds or an HTTP date) into a delay in ms. */
function retryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  let ms: number;
  if (Number.isFinite(seconds) && seconds >= 0) ms = seconds * 1000;
  else {
    const at = Date.parse(value);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - Date.now());
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** Reads partial_success.rejected_{spans,log_records} from an export response. */
function rejectedCount(
  body: Buffer,
  protocol: string,
  contentType: string | undefined,
): number {
  if (body.length === 0) return 0;
  try {
    if (protocol === "http/json" || contentType?.includes("json")) {
      const parsed = JSON.parse(body.toString("utf8")) as {
        partialSuccess?: Record<string, unknown>;
      };
      const ps = parsed.partialSuccess;
      const n = Number(
        ps?.["rejectedSpans"] ?? ps?.["rejectedLogRecords"] ?? 0,
      );
      return Number.isFinite(n) && n > 0 ? n : 0;
    }
    // field 1 (partial_success, LEN) -> field 1 (rejected count, varint)
    let i = 0;
    while (i < body.length) {
      const tag = body[i++]!;
      if (tag === 0x0a) {
        let len = 0;
        let shift = 0;
        let b;
        do {
          b = body[i++]!;
          len += (b & 0x7f) * 2 ** shift;
          shift += 7;
        } while (b & 0x80);
        const end = i + len;
        while (i < end) {
          const inner = body[i++]!;
          if (inner === 0x08) {
            let n = 0;
            shift = 0;
            do {
              b = body[i++]!;
              n += (b & 0x7f) * 2 ** shift;
              shift += 7;
            } while (b & 0x80);
            return n;
          }
          return 0;
        }
        return 0;
      }
      return 0;
    }
  } catch {
    return 0;
  }
  return 0;
}

const PINO_KEYS_DROPPED = new Set([
  "level",
  "time",
  "pid",
  "hostname",
  "trace_id",
  "span_id",
  "trace_flags",
  "trace.id",
  "span.id",
]);

/** Turns one logger line into a log record; unparsable lines become a string body. */
function toRecord(m: LogsMessage, i: number): LogRecordData {
  const line = m.lines[i]!;
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
      const msgKey = m.messageKeys[i] ?? "msg";
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
    observedTime: m.observed[i]!,
    severityNumber: m.severityNumbers[i]!,
    severityText: m.severityTexts[i],
    body,
    attributes: attributes as Attributes | undefined,
    traceId: m.traceIds[i],
    spanId: m.spanIds[i],
    traceFlags: m.traceFlags[i]!,
  };
}

const channels = {
  traces: new Channel("traces", settings.traces),
  logs: new Channel("logs", settings.logs),
  metrics: new Channel("metrics", settings.metrics),
};
const logsEncoder = new LogsEncoder(settings.resource, settings.logScope);

let flushing: FlushMessage | undefined;
let flushTimer: NodeJS.Timeout | undefined;
const queuedFlushes: FlushMessage[] = [];

function completeFlush(): void {
  const f = flushing!;
  flushing = undefined;
  if (flushTimer !== undefined) clearTimeout(flushTimer);
  flushTimer = undefined;
  if (f.final) {
    // Whatever one last attempt could not deliver is lost with the process.
    for (const c of Object.values(channels)) c.abandon();
  }
  for (const c of Object.values(channels)) c.calm();
  Atomics.store(control, CONTROL_FLUSHED, f.id);
  Atomics.notify(control, CONTROL_FLUSHED);
  post({ t: "flushed", id: f.id });
  const next = queuedFlushes.shift();
  if (next !== undefined) startFlush(next);
}

function checkFlush(): void {
  if (flushing !== undefined && Object.values(channels).every((c) => c.settled))
    completeFlush();
}

function startFlush(f: FlushMessage): void {
  if (flushing !== undefined) {
    queuedFlushes.push(f);
    return;
  }
  flushing = f;
  flushTimer = setTimeout(completeFlush, Math.max(0, f.deadline - Date.now()));
  for (const c of Object.values(channels)) c.hurry(f.id);
  checkFlush();
}

port.on("message", (msg: ToWorker) => {
  try {
    switch (msg.t) {
      case "traces":
        channels.traces.enqueue(msg.body, msg.count);
        break;
      case "metrics":
        channels.metrics.enqueue(msg.body, msg.count);
        break;
      case "logs": {
        const records: LogRecordData[] = [];
        for (let i = 0; i < msg.lines.length; i++)
          records.push(toRecord(msg, i));
        channels.logs.enqueue(
          settings.logs.protocol === "http/json"
            ? logsEncoder.encodeJson(records)
            : logsEncoder.encode(records),
          records.length,
        );
        break;
      }
      case "flush":
        startFlush(msg);
        break;
      case "watch-source":
        pollWatchSource(msg, post);
        break;
    }
  } catch (err) {
    post({
      t: "diag",
      level: "warn",
      key: "worker-error",
      message: `export worker error: ${(err as Error).message}`,
    });
  }
});
