// The exporter: everything about getting telemetry to the Collector once
// the pipeline has batched it. It runs on the application's thread by
// default (network I/O is asynchronous, and everything here works a batch at
// a time, never inside a request) or on a worker thread
// (`export-worker.ts`, THREADLINE_EXPORT_THREAD=worker), and is the same code
// in both: messages in, messages and shared counters out.
//
// - Spans arrive already encoded (as each span ended); log lines arrive as
//   the logger wrote them and are parsed and encoded here, a batch at a time.
// - Each signal has a FIFO of payloads bounded in bytes. A full buffer drops
//   the incoming payload; a payload that cannot be delivered within the
//   retry budget is dropped; both are counted by reason.
// - Retries follow the OTLP/HTTP rules: 429, 502, 503 and 504 and network
//   errors are retried with exponential backoff and jitter, Retry-After is
//   honoured (one shorter than the backoff only on a first failure); other
//   statuses are final, and so is a server that speaks another protocol
//   (HTTP/2 on a gRPC port, TLS for http:, plain HTTP for https:). One backoff per signal, so a dead or overloaded
//   Collector is probed, not hammered.
// - A flush sends everything at once, ignoring backoff, and is done once
//   what the exporter held when it was asked for has been attempted (or its
//   deadline passed): payloads are numbered as they arrive, so those that
//   come meanwhile (the next metrics, a busy service's spans) do not hold it
//   up, were the Collector slower than they come. A final flush (shutdown,
//   exit) waits for everything, gives up at its deadline and counts what
//   was left.
//   Completion is signalled through a shared Int32 so the main thread can
//   wait for it synchronously in an 'exit' handler (on a worker then: see
//   takeUndelivered()).
// - Requests go through internal/http-transport.ts (our own client for
//   plain http:, node:https for https:; it says why not node:http). The
//   modules, node:zlib too, are taken with getBuiltinModule when needed.
import { LogsEncoder, ProtoReader } from "@threadline/otlp";
import { retryAfterMs } from "@threadline/core/retry-after";
import { printableUrl } from "@threadline/core/user-info";
import {
  CONTROL_FLUSHED,
  counterIndex,
  SIGNALS,
  type EndpointSettings,
  type FlushMessage,
  type FromWorker,
  type PayloadMessage,
  type Signal,
  type ToWorker,
  type WorkerCounter,
  type WorkerSettings,
} from "./protocol.ts";
import { bodyPool } from "./body-pool.ts";
import { encodeStagedLogs, encodeStagedLogsJson } from "./log-record.ts";
import { pollWatchSource } from "./watch-source.ts";
import {
  PlainHttpError,
  transportFor,
  type PlainResponse,
  type Send,
} from "../internal/http-transport.ts";
import { VERSION } from "../version.ts";

/** Names the exporter to the Collector, as the OTLP exporter specification asks. */
const USER_AGENT = `Threadline-Node/${VERSION} (Node.js ${process.version})`;

// Short enough that export resumes within seconds of the Collector's return.
const MAX_BACKOFF_MS = 5_000;
const MAX_RETRY_AFTER_MS = 300_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

const WHAT: Record<Signal, string> = {
  traces: "spans",
  logs: "log records",
  metrics: "metric points",
};

const ONE: Record<Signal, string> = {
  traces: "a span",
  logs: "a log record",
  metrics: "a metric point",
};

/** What a channel needs from its exporter. */
interface ChannelOwner {
  readonly settings: WorkerSettings;
  add(signal: Signal, counter: WorkerCounter, n: number): void;
  gauge(signal: Signal, counter: WorkerCounter, value: number): void;
  post(msg: FromWorker): void;
  checkFlush(): void;
  /** Numbers a payload as it arrives (from 1), for the flushes to tell old from new. */
  stamp(): number;
}

interface Payload {
  body: Buffer;
  count: number;
  /** Its number, from the exporter's stamp(). */
  seq: number;
  enqueuedAt: number;
  /** Set when a final flush gave up on this payload while it was in flight. */
  abandoned: boolean;
  /** The flush round in which this payload was last attempted (0: none). */
  round: number;
}

/** A body being compressed before it is queued. */
interface Compressing {
  body: Buffer;
  count: number;
  seq: number;
  /** Handed to another exporter meanwhile: the result is not queued here. */
  taken: boolean;
}

type Outcome =
  | { kind: "ok"; rejected: number; message: string }
  | { kind: "retry"; reason: string; retryAfterMs: number | undefined }
  | { kind: "fail"; reason: string; unanswered?: true };

class Channel {
  readonly #owner: ChannelOwner;
  /**
   * What a warning quoting the Collector masks, worked out at the first
   * answer that has something to say.
   */
  #secrets: readonly string[] | undefined;
  readonly #signal: Signal;
  readonly #endpoint: EndpointSettings;
  readonly #url: URL;
  readonly #transport: Send;
  readonly #queue: Payload[] = [];
  readonly #inflight = new Set<Payload>();
  readonly #compressing = new Set<Compressing>();
  #pendingBytes = 0;
  /**
   * Set when the buffer had no room for a body, until something leaves it:
   * until then another would find it as full (see Exporter.#encodeLogs).
   */
  #full = false;
  #failures = 0;
  #nextAttemptAt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Current flush round; 0 when not flushing. */
  #round = 0;
  /** Set at exit: payloads wait to be taken out, none is started here. */
  #held = false;

  constructor(owner: ChannelOwner, signal: Signal, endpoint: EndpointSettings) {
    this.#owner = owner;
    this.#signal = signal;
    this.#endpoint = endpoint;
    this.#url = new URL(endpoint.url);
    this.#transport = transportFor(
      this.#url,
      MAX_RESPONSE_BYTES,
      "POST",
      endpoint.tls,
    ).send;
  }

  /**
   * During a flush: every payload numbered up to `upTo` was attempted once
   * in this round, and none of them is still in flight or being compressed.
   */
  settled(upTo: number): boolean {
    for (const p of this.#inflight) if (p.seq <= upTo) return false;
    for (const job of this.#compressing) if (job.seq <= upTo) return false;
    for (const p of this.#queue)
      if (p.seq <= upTo && p.round !== this.#round) return false;
    return true;
  }

  /** Whether a request of its own is under way or a body being compressed. */
  busy(): boolean {
    return this.#inflight.size > 0 || this.#compressing.size > 0;
  }

  #syncGauges(): void {
    this.#owner.gauge(this.#signal, "pendingBytes", this.#pendingBytes);
    let items = 0;
    for (const p of this.#queue) items += p.count;
    for (const p of this.#inflight) items += p.count;
    this.#owner.gauge(this.#signal, "pendingItems", items);
  }

  enqueue(raw: Uint8Array | string, count: number): void {
    const seq = this.#owner.stamp();
    // A Buffer is kept as it is: the body pool knows its bodies by identity.
    let body: Buffer =
      typeof raw === "string"
        ? Buffer.from(raw)
        : Buffer.isBuffer(raw)
          ? raw
          : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (this.#endpoint.compression !== "gzip") {
      this.enqueueReady(body, count, seq);
      return;
    }
    // On libuv's thread pool: the exporter may share the application's thread.
    const job: Compressing = { body, count, seq, taken: false };
    this.#compressing.add(job);
    process.getBuiltinModule("node:zlib").gzip(body, (err, out) => {
      this.#compressing.delete(job);
      if (job.taken) return;
      bodyPool.release(body);
      if (err !== null) {
        this.#owner.add(this.#signal, "rejected", count);
        this.#owner.post({
          t: "diag",
          level: "warn",
          key: `${this.#signal}-gzip`,
          message: `dropped ${count} ${WHAT[this.#signal]}: could not compress them (${err.message})`,
        });
        this.#owner.checkFlush();
        return;
      }
      this.enqueueReady(out, count, seq);
    });
  }

  /** Queues a body that is ready to send (compressed if it should be). */
  enqueueReady(
    body: Buffer,
    count: number,
    seq: number = this.#owner.stamp(),
  ): void {
    const { settings } = this.#owner;
    if (this.#pendingBytes + body.length > settings.maxPendingBytes) {
      const tooLarge = body.length > settings.maxPendingBytes;
      if (tooLarge) {
        this.#owner.add(this.#signal, "queueFull", count);
        // Apart: one item too large for the buffer says nothing of the Collector.
        this.#owner.post({
          t: "diag",
          level: "warn",
          key: `${this.#signal}-too-large`,
          message:
            count === 1
              ? `dropped ${ONE[this.#signal]} of ${body.length} bytes, more than the whole export buffer (${settings.maxPendingBytes} bytes, THREADLINE_EXPORT_MAX_BYTES)`
              : `dropped ${count} ${WHAT[this.#signal]}: together ${body.length} bytes, more than the whole export buffer (${settings.maxPendingBytes} bytes, THREADLINE_EXPORT_MAX_BYTES)`,
        });
      } else {
        this.#full = true;
        this.dropFull(count);
      }
      bodyPool.release(body);
      return;
    }
    this.#pendingBytes += body.length;
    this.#queue.push({
      body,
      count,
      seq,
      enqueuedAt: Date.now(),
      abandoned: false,
      round: 0,
    });
    this.#syncGauges();
    this.pump();
  }

  /** Whether the buffer is full: see #full. */
  get full(): boolean {
    return this.#full;
  }

  /** Drops `count` items for want of room in the buffer, counted and said. */
  dropFull(count: number): void {
    const { settings } = this.#owner;
    this.#owner.add(this.#signal, "queueFull", count);
    this.#owner.post({
      t: "diag",
      level: "warn",
      key: `${this.#signal}-buffer-full`,
      message: `dropped ${WHAT[this.#signal]}: the export buffer is full (${settings.maxPendingBytes} bytes, THREADLINE_EXPORT_MAX_BYTES): more came than ${printableUrl(this.#endpoint.url)} took in time`,
    });
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

  /**
   * Starts nothing more on this thread. A request started at exit can reach
   * the Collector before the process dies, and would be sent again by the
   * worker that takes it over.
   */
  hold(): void {
    this.#held = true;
  }

  pump(): void {
    if (this.#held) return;
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
    // Retries never keep the process alive; a flush waits for them itself.
    this.#timer.unref();
  }

  #settle(p: Payload, outcome: Outcome): void {
    this.#inflight.delete(p);
    if (p.abandoned) {
      this.#owner.checkFlush();
      return;
    }
    const what = WHAT[this.#signal];
    const retry =
      outcome.kind === "retry" &&
      Date.now() - p.enqueuedAt < this.#owner.settings.maxRetryMs;
    if (!retry) {
      // Done with, whatever the outcome: nothing reads the body any more.
      this.#pendingBytes -= p.body.length;
      this.#full = false;
      bodyPool.release(p.body);
    }
    if (outcome.kind === "ok") {
      this.#failures = 0;
      // A Collector cannot reject more than it was sent.
      const rejected = Math.min(outcome.rejected, p.count);
      this.#owner.add(this.#signal, "exported", p.count - rejected);
      const why = outcome.message === "" ? "" : `: ${outcome.message}`;
      if (rejected > 0) {
        this.#owner.add(this.#signal, "rejected", rejected);
        this.#owner.post({
          t: "diag",
          level: "warn",
          key: `${this.#signal}-partial`,
          message: `the Collector rejected ${rejected} of ${p.count} ${what}${why}`,
        });
      } else if (why !== "") {
        this.#owner.post({
          t: "diag",
          level: "warn",
          key: `${this.#signal}-partial-warning`,
          message: `the Collector took the ${what} with a warning${why}`,
        });
      }
    } else if (outcome.kind === "fail") {
      this.#owner.add(this.#signal, "rejected", p.count);
      this.#owner.post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-rejected`,
        message: outcome.unanswered
          ? `dropped ${p.count} ${what}: could not export them to ${printableUrl(this.#endpoint.url)}: ${outcome.reason}; not retried`
          : `dropped ${p.count} ${what}: ${printableUrl(this.#endpoint.url)} refused them (${outcome.reason}); not retried`,
      });
    } else if (!retry) {
      this.#owner.add(this.#signal, "retriesExhausted", p.count);
      this.#owner.post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-retries`,
        message: `dropped ${p.count} ${what} after retrying for ${Math.round(this.#owner.settings.maxRetryMs / 1000)} s: ${printableUrl(this.#endpoint.url)} ${outcome.reason}`,
      });
    } else {
      this.#failures++;
      const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.#failures - 1));
      const backoff = base / 2 + (Math.random() * base) / 2;
      // A Retry-After longer than the data may still wait is cut to the
      // time it has left: waiting longer would only end in dropping it.
      const left = Math.max(
        0,
        this.#owner.settings.maxRetryMs - (Date.now() - p.enqueuedAt),
      );
      const asked =
        outcome.retryAfterMs === undefined
          ? undefined
          : Math.min(outcome.retryAfterMs, left);
      // A Retry-After shorter than the backoff is believed only after a
      // success: a Collector shedding the odd request takes it back at
      // once, but one that answers every request "0" (or a date gone by)
      // is overloaded, and believing it each time would send each batch
      // again as fast as the answers come, for the whole retry time.
      const delay =
        asked === undefined
          ? backoff
          : this.#failures === 1
            ? asked
            : Math.max(asked, backoff);
      this.#nextAttemptAt = Math.max(this.#nextAttemptAt, Date.now() + delay);
      this.#queue.unshift(p);
      this.#owner.post({
        t: "diag",
        level: "warn",
        key: `${this.#signal}-retry`,
        message: `could not export ${what} to ${printableUrl(this.#endpoint.url)}: ${outcome.reason}; ${delay === asked ? `retrying in ${Math.ceil(delay / 1000)} s (Retry-After)` : "retrying with backoff"}`,
      });
    }
    this.#syncGauges();
    if (this.#round !== 0) this.pump();
    else if (this.#queue.length > 0)
      this.#schedule(Math.max(0, this.#nextAttemptAt - Date.now()));
    this.#owner.checkFlush();
  }

  /**
   * Gives up on everything this channel holds, counted under `reason`:
   * the final flush's deadline passed, or its one last attempt failed
   * before it.
   */
  abandon(
    reason: "shutdownDeadline" | "retriesExhausted" = "shutdownDeadline",
  ): number {
    let lost = 0;
    for (const p of this.#queue) lost += p.count;
    for (const p of this.#inflight) {
      lost += p.count;
      p.abandoned = true;
    }
    for (const job of this.#compressing) {
      lost += job.count;
      job.taken = true;
    }
    this.#queue.length = 0;
    this.#inflight.clear();
    this.#compressing.clear();
    this.#pendingBytes = 0;
    this.#full = false;
    if (lost > 0) {
      this.#owner.add(this.#signal, reason, lost);
      if (reason === "retriesExhausted")
        this.#owner.add(this.#signal, "lastAttemptFailed", lost);
    }
    this.#syncGauges();
    return lost;
  }

  /**
   * Removes every payload not yet delivered (in flight too: those answers
   * will be ignored) without counting it as lost; the caller sends it on.
   */
  takeUndelivered(): Array<{ body: Buffer; count: number; ready: boolean }> {
    const out = [...this.#inflight, ...this.#queue].map((p) => ({
      body: p.body,
      count: p.count,
      ready: true,
    }));
    for (const job of this.#compressing) {
      job.taken = true;
      out.push({ body: job.body, count: job.count, ready: false });
    }
    this.#compressing.clear();
    for (const p of this.#inflight) p.abandoned = true;
    this.#queue.length = 0;
    this.#inflight.clear();
    this.#pendingBytes = 0;
    this.#full = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#syncGauges();
    return out;
  }

  #send(p: Payload): Promise<Outcome> {
    const e = this.#endpoint;
    const headers: Record<string, string | number> = {
      "user-agent": USER_AGENT,
      ...e.headers,
      "content-type":
        e.protocol === "http/json"
          ? "application/json"
          : "application/x-protobuf",
      "content-length": p.body.length,
    };
    if (e.compression === "gzip") headers["content-encoding"] = "gzip";
    return this.#transport(headers, p.body, e.timeoutMs).then(
      (res): Outcome => {
        const status = res.status;
        if (res.truncated)
          this.#owner.post({
            t: "diag",
            level: "warn",
            key: `${this.#signal}-long-answer`,
            message: `${printableUrl(e.url)} answered HTTP ${status} with more than ${MAX_RESPONSE_BYTES} bytes, which no OTLP answer needs: the rest was not read, and the connection closed (is it an OTLP/HTTP Collector?)`,
          });
        // A 2xx whose body was cut is delivered all the same: the status is
        // the Collector's verdict on the data and arrived whole, and sending
        // the data again could only deliver it twice. The body can only add
        // a partial success, read from what was kept (none if that cannot be
        // read); another status is acted on as it would be whole.
        if (status >= 200 && status < 300) {
          const { rejected, message } = partialSuccess(
            res.body,
            e.protocol,
            res.headers.get("content-type"),
          );
          return {
            kind: "ok",
            rejected,
            message:
              message === "" ? "" : printableReason(message, this.#secretsOf()),
          };
        }
        if (
          status === 429 ||
          status === 502 ||
          status === 503 ||
          status === 504
        )
          return {
            kind: "retry",
            reason: `answered ${this.#refusal(res)}`,
            retryAfterMs: retryAfter(res.headers.get("retry-after")),
          };
        return { kind: "fail", reason: this.#refusal(res) };
      },
      (err: NodeJS.ErrnoException): Outcome =>
        err instanceof PlainHttpError && err.final
          ? {
              kind: "fail",
              reason: err.message,
              unanswered: true,
            }
          : {
              kind: "retry",
              reason: untrustedCertificate(err.code)
                ? `${err.code}: the Collector's certificate is not trusted here (OTEL_EXPORTER_OTLP_CERTIFICATE names the CA to trust)`
                : errorText(err),
              retryAfterMs: undefined,
            },
    );
  }

  /**
   * A refusal as a warning says it: its status, and the Collector's reason
   * (the google.rpc.Status OTLP answers with, or a proxy's line of text), or
   * for a redirect where to, since none is followed. Worked out only for
   * answers other than 2xx.
   */
  #refusal(res: PlainResponse): string {
    const status = res.status;
    if (status >= 300 && status < 400) {
      const to = redirectTarget(res.headers.get("location"), this.#url);
      return `HTTP ${status}: redirected${to === undefined ? "" : ` to ${to}`}, and redirects are not followed`;
    }
    const why = statusMessage(
      res.body,
      res.headers.get("content-type"),
      this.#secretsOf(),
    );
    return why === "" ? `HTTP ${status}` : `HTTP ${status}: ${why}`;
  }

  #secretsOf(): readonly string[] {
    return (this.#secrets ??= secretsOf(this.#endpoint.headers));
  }
}

const MAX_REASON_CHARS = 200;

/**
 * Status.message (field 2) from a protobuf or JSON body, or the first line
 * of a text one, as printableReason leaves it. Empty when there is none, or
 * it cannot be read.
 */
function statusMessage(
  body: Buffer,
  contentType: string | undefined,
  secrets: readonly string[],
): string {
  if (body.length === 0) return "";
  const type = contentType?.toLowerCase() ?? "";
  let text = "";
  try {
    if (type.includes("protobuf")) {
      const r = new ProtoReader(body);
      while (!r.done) {
        const [field, wire] = r.tag();
        if (field === 2 && wire === 2) text = r.string();
        else r.skip(wire);
      }
    } else if (
      type.includes("json") ||
      (type === "" && body[0] === 0x7b) // "{"
    ) {
      const message = (
        JSON.parse(body.toString("utf8")) as Record<string, unknown>
      )["message"];
      if (typeof message === "string") text = message;
    } else if (type === "" || type.startsWith("text/plain")) {
      text = /^[^\r\n]*/.exec(body.toString("utf8"))![0];
    }
  } catch {
    return "";
  }
  return printableReason(text, secrets);
}

/**
 * A reason the Collector gave as a warning may print it: control characters
 * (and those that reorder text) left out, cut to MAX_REASON_CHARS. A server
 * may quote the request back: `secrets` (see secretsOf) are masked before
 * anything is cut.
 */
function printableReason(text: string, secrets: readonly string[]): string {
  for (const secret of secrets) text = text.replaceAll(secret, "***");
  text = text
    .replace(
      /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g,
      " ",
    )
    .trim();
  return text.length > MAX_REASON_CHARS
    ? `${text.slice(0, MAX_REASON_CHARS)}...`
    : text;
}

/** A redirect's target as it may be printed; undefined when there is none. */
function redirectTarget(
  location: string | undefined,
  base: URL,
): string | undefined {
  if (location === undefined || location === "") return undefined;
  try {
    return printableUrl(new URL(location, base).href);
  } catch {
    return undefined;
  }
}

/**
 * What must not be printed of the request: each header's value, and of a
 * Basic authorization its user name and password.
 */
function secretsOf(headers: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    out.push(value);
    const basic = /^basic\s+(\S+)/i.exec(value);
    if (name.toLowerCase() === "authorization" && basic !== null) {
      const plain = Buffer.from(basic[1]!, "base64").toString("utf8");
      const colon = plain.indexOf(":");
      out.push(basic[1]!, plain, plain.slice(0, colon), plain.slice(colon + 1));
    }
  }
  // Two characters or fewer are no secret, and masked would hide the
  // message; the longest first, as a value may hold another.
  return out.filter((v) => v.length > 2).sort((a, b) => b.length - a.length);
}

/** OpenSSL's codes for a certificate chain this process does not trust. */
const UNTRUSTED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

function untrustedCertificate(code: string | undefined): boolean {
  return code !== undefined && UNTRUSTED.has(code);
}

/**
 * An error as a warning says it: its code, with the message when that adds
 * something (Node's "connect ECONNREFUSED 10.0.0.7:4318" repeats the code
 * and the address the warning names already), and of OpenSSL's message only
 * its reason ("sslv3 alert handshake failure"), not the error's number and
 * source file around it.
 */
function errorText(err: NodeJS.ErrnoException): string {
  const openssl = /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:\n]+)/.exec(err.message);
  const message = openssl?.[1] ?? err.message;
  const code = err.code;
  if (code === undefined) return message;
  return message.includes(code) ? code : `${code}: ${message}`;
}

/** A Retry-After's delay in ms, at most MAX_RETRY_AFTER_MS. */
function retryAfter(value: string | undefined): number | undefined {
  const ms = retryAfterMs(value);
  return ms === undefined ? undefined : Math.min(ms, MAX_RETRY_AFTER_MS);
}

/**
 * partial_success from an export response: how many items the Collector
 * rejected (rejected_spans, rejected_log_records or rejected_data_points,
 * field 1) and why (error_message, field 2), which it may send with none
 * rejected, as a warning. Unreadable: nothing rejected, nothing said.
 */
function partialSuccess(
  body: Buffer,
  protocol: string,
  contentType: string | undefined,
): { rejected: number; message: string } {
  const none = { rejected: 0, message: "" };
  if (body.length === 0) return none;
  try {
    if (protocol === "http/json" || contentType?.includes("json")) {
      const parsed = JSON.parse(body.toString("utf8")) as {
        partialSuccess?: Record<string, unknown>;
      };
      const ps = parsed.partialSuccess;
      const n = Number(
        ps?.["rejectedSpans"] ??
          ps?.["rejectedLogRecords"] ??
          ps?.["rejectedDataPoints"] ??
          0,
      );
      const message = ps?.["errorMessage"];
      return {
        rejected: Number.isFinite(n) && n > 0 ? n : 0,
        message: typeof message === "string" ? message : "",
      };
    }
    // The response's field 1 (partial_success), then its fields.
    const r = new ProtoReader(body);
    while (!r.done) {
      const [field, wire] = r.tag();
      if (field !== 1 || wire !== 2) {
        r.skip(wire);
        continue;
      }
      const ps = r.message();
      const out = { rejected: 0, message: "" };
      while (!ps.done) {
        const [f, w] = ps.tag();
        if (f === 1 && w === 0) out.rejected = ps.varint();
        else if (f === 2 && w === 2) out.message = ps.string();
        else ps.skip(w);
      }
      return out;
    }
  } catch {
    return none;
  }
  return none;
}

/** Sends what the pipeline hands it; see the top of this file. */
export class Exporter implements ChannelOwner {
  readonly settings: WorkerSettings;
  readonly #counters: Float64Array;
  readonly #control: Int32Array;
  readonly #post: (msg: FromWorker) => void;
  readonly #channels: Record<Signal, Channel>;
  readonly #logsEncoder: LogsEncoder;
  /** The flush under way, and the last payload number it waits for. */
  #flushing: { msg: FlushMessage; upTo: number } | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #queuedFlushes: Array<{ msg: FlushMessage; upTo: number }> = [];
  #stamped = 0;
  #stopWatchSource: (() => void) | undefined;

  constructor(settings: WorkerSettings, post: (msg: FromWorker) => void) {
    this.settings = settings;
    this.#counters = new Float64Array(settings.counters);
    this.#control = new Int32Array(settings.control);
    this.#post = post;
    this.#channels = {
      traces: new Channel(this, "traces", settings.traces),
      logs: new Channel(this, "logs", settings.logs),
      metrics: new Channel(this, "metrics", settings.metrics),
    };
    this.#logsEncoder = new LogsEncoder(settings.resource, settings.logScope, {
      allocate: bodyPool.acquire,
    });
  }

  add(signal: Signal, counter: WorkerCounter, n: number): void {
    this.#counters[counterIndex(signal, counter)]! += n;
  }

  gauge(signal: Signal, counter: WorkerCounter, value: number): void {
    this.#counters[counterIndex(signal, counter)] = value;
  }

  post(msg: FromWorker): void {
    this.#post(msg);
  }

  stamp(): number {
    return ++this.#stamped;
  }

  #encodeLogs(staged: Uint8Array, count: number): void {
    // Lines that would find the buffer full are dropped before they are
    // parsed: parsing them took the time the buffer needed to empty (this
    // thread's own network I/O, when it is the application's or a busy
    // worker's).
    if (this.#channels.logs.full) {
      bodyPool.release(staged);
      this.#channels.logs.dropFull(count);
      return;
    }
    // Each line that cannot be encoded goes as its text; should the batch
    // fail all the same, its lines are counted, and its buffer goes back.
    let encoded: { body: Uint8Array | string; rejected: number };
    try {
      encoded =
        this.settings.logs.protocol === "http/json"
          ? {
              body: encodeStagedLogsJson(
                this.#logsEncoder,
                staged,
                this.settings.logLimits,
                this.settings.sdkScope,
              ),
              rejected: 0,
            }
          : encodeStagedLogs(
              this.#logsEncoder,
              staged,
              this.settings.logLimits,
              this.settings.sdkScope,
            );
    } catch (err) {
      this.add("logs", "rejected", count);
      throw err;
    } finally {
      bodyPool.release(staged);
    }
    const { body, rejected } = encoded;
    if (rejected > 0) this.add("logs", "rejected", rejected);
    this.#channels.logs.enqueue(body, count - rejected);
  }

  handle(msg: ToWorker): void {
    try {
      switch (msg.t) {
        case "traces":
          this.#channels.traces.enqueue(msg.body, msg.count);
          break;
        case "metrics":
          this.#channels.metrics.enqueue(msg.body, msg.count);
          break;
        case "logs":
          this.#encodeLogs(msg.body, msg.count);
          break;
        case "payload": {
          const channel = this.#channels[msg.signal];
          if (msg.ready)
            channel.enqueueReady(
              Buffer.from(
                msg.body.buffer,
                msg.body.byteOffset,
                msg.body.byteLength,
              ),
              msg.count,
            );
          else channel.enqueue(msg.body, msg.count);
          break;
        }
        case "flush":
          // What is here now; a final flush waits for whatever comes too.
          this.#startFlush({
            msg,
            upTo: msg.final ? Infinity : this.#stamped,
          });
          break;
        case "watch-source":
          this.#stopWatchSource?.();
          this.#stopWatchSource = pollWatchSource(msg, (m) => this.#post(m));
          break;
      }
    } catch (err) {
      this.#post({
        t: "diag",
        level: "warn",
        key: "worker-error",
        message: `export error: ${(err as Error).message}`,
      });
    }
  }

  /**
   * Takes out everything not yet delivered, ready to send (requests in
   * flight included: they are sent again rather than lost), for another
   * exporter to send: the 'exit' flush hands it to a worker thread, the only
   * place left where network I/O can still complete.
   */
  /** See Channel.hold: for the 'exit' flush, before anything is added. */
  hold(): void {
    for (const signal of SIGNALS) this.#channels[signal].hold();
  }

  /**
   * Whether a request is under way, or a body being compressed for one:
   * taken out now, it would be sent again, and may reach the Collector twice.
   */
  busy(): boolean {
    return SIGNALS.some((signal) => this.#channels[signal].busy());
  }

  takeUndelivered(): PayloadMessage[] {
    const out: PayloadMessage[] = [];
    for (const signal of SIGNALS)
      for (const p of this.#channels[signal].takeUndelivered())
        out.push({
          t: "payload",
          signal,
          body: p.body,
          count: p.count,
          ready: p.ready,
        });
    return out;
  }

  /** Stops reading the watch list and forgets what is pending, uncounted. */
  close(): void {
    this.#stopWatchSource?.();
    this.#stopWatchSource = undefined;
    this.takeUndelivered();
  }

  /** `timedOut`: its deadline came before everything settled. */
  #completeFlush(timedOut: boolean): void {
    const f = this.#flushing!.msg;
    this.#flushing = undefined;
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const channels = Object.values(this.#channels);
    if (f.final) {
      // Whatever one last attempt could not deliver is lost with the
      // process: for want of time, or because that attempt failed (the
      // Collector unreachable, or asking to retry) with time to spare.
      // Told by which came first, not by the clock: a timer may fire a
      // little before Date.now() reaches its deadline.
      const reason = timedOut ? "shutdownDeadline" : "retriesExhausted";
      for (const c of channels) c.abandon(reason);
    }
    for (const c of channels) c.calm();
    Atomics.store(this.#control, CONTROL_FLUSHED, f.id);
    Atomics.notify(this.#control, CONTROL_FLUSHED);
    this.#post({ t: "flushed", id: f.id });
    const next = this.#queuedFlushes.shift();
    if (next !== undefined) this.#startFlush(next);
  }

  checkFlush(): void {
    const upTo = this.#flushing?.upTo;
    if (
      upTo !== undefined &&
      Object.values(this.#channels).every((c) => c.settled(upTo))
    )
      this.#completeFlush(false);
  }

  #startFlush(f: { msg: FlushMessage; upTo: number }): void {
    if (this.#flushing !== undefined) {
      this.#queuedFlushes.push(f);
      return;
    }
    this.#flushing = f;
    this.#flushTimer = setTimeout(
      () => this.#completeFlush(true),
      Math.max(0, f.msg.deadline - Date.now()),
    );
    this.#flushTimer.unref();
    for (const c of Object.values(this.#channels)) c.hurry(f.msg.id);
    this.checkFlush();
  }
}
