// The OTLP/HTTP receiver of `threadline dev`: POST /v1/traces, /v1/logs
// and /v1/metrics, protobuf or JSON, optionally gzip-compressed.
//
// Hostile input is expected: the body is read up to a byte limit (checked
// again after decompression, so a gzip bomb stops at the same limit), and
// a request that cannot be decoded answers 400 with the reason, in the
// request's own encoding (a google.rpc.Status), before anything reaches the
// store. A request that decodes but holds invalid spans or log records (an
// all-zero id, an unknown kind, a span with no start time or one before
// 2000, one ending more than a day ahead) has the valid ones stored and
// answers 200
// with OTLP's partial_success (how many were left out, and why): exporters
// do not retry a 400, so the whole batch would be lost. When the store
// falls behind, new data gets 429 with Retry-After instead of growing
// memory: OTLP exporters retry those.
import type { IncomingMessage, ServerResponse } from "node:http";
import { gunzip } from "node:zlib";
import {
  decodeLogsJson,
  decodeMetricsJson,
  decodeMetricsProto,
  decodeLogsProto,
  decodeTracesJson,
  decodeTracesProto,
  OtlpDecodeError,
  ProtoWriter,
} from "@threadline/otlp";
import type { Store } from "./store.ts";

export interface ReceiverOptions {
  store: Store;
  /** Largest request body, before and after decompression. @default 16 MiB */
  maxBodyBytes?: number;
  /** Buffered, unwritten items above which requests get 429. @default 200000 */
  maxPending?: number;
  /** Called after data was accepted (to schedule a flush). */
  onAccepted?: () => void;
}

export interface ReceiverStats {
  spans: number;
  logs: number;
  metricRequests: number;
  /** Requests refused as bad input: answered 400, 413 or 415. */
  rejected: number;
  /** Invalid spans left out of requests otherwise stored. */
  rejectedSpans: number;
  /** Invalid log records left out of requests otherwise stored. */
  rejectedLogRecords: number;
  throttled: number;
}

class RequestError extends Error {
  readonly status: number;
  /** The rest of the body is not read: the connection closes once answered. */
  readonly close: boolean;
  constructor(status: number, message: string, close = false) {
    super(message);
    this.status = status;
    this.close = close;
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      reject(
        new RequestError(
          413,
          `payload of ${declared} bytes exceeds the limit of ${limit} bytes`,
          true,
        ),
      );
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(
          new RequestError(
            413,
            `payload exceeds the limit of ${limit} bytes`,
            true,
          ),
        );
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (!failed) reject(err);
    });
  });
}

function inflate(body: Buffer, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gunzip(
      body,
      { maxOutputLength: limit },
      (err: NodeJS.ErrnoException | null, out) => {
        if (err)
          reject(
            new RequestError(
              err.code === "ERR_BUFFER_TOO_LARGE" ? 413 : 400,
              err.code === "ERR_BUFFER_TOO_LARGE"
                ? `decompressed payload exceeds the limit of ${limit} bytes`
                : `invalid gzip body: ${err.message}`,
            ),
          );
        else resolve(out);
      },
    );
  });
}

/**
 * ExportTraceServiceResponse / ExportLogsServiceResponse with
 * partial_success (1) { rejected_spans or rejected_log_records = 1;
 * error_message = 2 }.
 */
function partialSuccessProto(rejected: number, message: string): Uint8Array {
  const w = new ProtoWriter(256);
  const mark = w.begin(1);
  w.tag(1, 0);
  w.uvarint(rejected);
  w.stringField(2, message);
  w.end(mark);
  return w.finish();
}

/** google.rpc.Status { code = 1; message = 2 } */
function statusProto(code: number, message: string): Uint8Array {
  const w = new ProtoWriter(256);
  w.tag(1, 0);
  w.uvarint(code);
  w.stringField(2, message);
  return w.finish();
}

function answer(
  res: ServerResponse,
  json: boolean,
  status: number,
  message?: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const grpcCode =
    status === 400 || status === 415
      ? 3
      : status === 413 || status === 429
        ? 8
        : status === 401
          ? 16
          : 2;
  if (json) {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(
      message === undefined
        ? "{}"
        : JSON.stringify({ code: grpcCode, message }),
    );
  } else {
    res.writeHead(status, {
      "content-type": "application/x-protobuf",
      ...headers,
    });
    res.end(message === undefined ? undefined : statusProto(grpcCode, message));
  }
}

export class OtlpReceiver {
  readonly #store: Store;
  readonly #maxBody: number;
  readonly #maxPending: number;
  readonly #onAccepted: () => void;
  readonly stats: ReceiverStats = {
    spans: 0,
    logs: 0,
    metricRequests: 0,
    rejected: 0,
    rejectedSpans: 0,
    rejectedLogRecords: 0,
    throttled: 0,
  };

  constructor(o: ReceiverOptions) {
    this.#store = o.store;
    this.#maxBody = o.maxBodyBytes ?? 16 * 1024 * 1024;
    this.#maxPending = o.maxPending ?? 200_000;
    this.#onAccepted = o.onAccepted ?? (() => {});
  }

  /** Handles a request if it is for an OTLP path; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/v1/traces" && path !== "/v1/logs" && path !== "/v1/metrics")
      return false;
    const type = String(req.headers["content-type"] ?? "")
      .split(";")[0]!
      .trim()
      .toLowerCase();
    const json = type === "application/json";
    void this.#receive(req, res, path, type, json).catch((err: unknown) => {
      const status =
        err instanceof RequestError
          ? err.status
          : err instanceof OtlpDecodeError || err instanceof SyntaxError
            ? 400
            : 500;
      if (status >= 400 && status < 500 && status !== 405)
        this.stats.rejected++;
      const reason =
        err instanceof SyntaxError
          ? `invalid JSON: ${err.message}`
          : (err as Error).message;
      // Node closes a connection so answered once the answer is sent: a
      // client still streaming an oversized body is not read to its end.
      const close = err instanceof RequestError && err.close;
      answer(res, json, status, reason, close ? { connection: "close" } : {});
    });
    return true;
  }

  async #receive(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    type: string,
    json: boolean,
  ): Promise<void> {
    if (req.method !== "POST") throw new RequestError(405, "use POST");
    if (type !== "application/x-protobuf" && type !== "application/json") {
      req.resume();
      throw new RequestError(
        415,
        `unsupported content-type ${JSON.stringify(type)}; send application/x-protobuf or application/json`,
      );
    }
    if (this.#store.pending >= this.#maxPending) {
      this.stats.throttled++;
      req.resume();
      answer(res, json, 429, "the viewer's store is busy; retry shortly", {
        "retry-after": "1",
      });
      return;
    }
    let body = await readBody(req, this.#maxBody);
    const encoding = String(
      req.headers["content-encoding"] ?? "identity",
    ).toLowerCase();
    if (encoding === "gzip") body = await inflate(body, this.#maxBody);
    else if (encoding !== "identity")
      throw new RequestError(
        400,
        `unsupported content-encoding ${JSON.stringify(encoding)}`,
      );
    let invalid = 0;
    let reason = "";
    const options = {
      onInvalid: (r: string) => {
        if (invalid++ === 0) reason = r;
      },
      // A trace's summary starts at its earliest span and is pruned by its
      // time: one span dated 1970 would hide the trace from every search
      // by time and have it pruned at once, good spans included.
      strictTimes: true,
    };
    if (path === "/v1/traces") {
      const decoded = json
        ? decodeTracesJson(JSON.parse(body.toString("utf8")), options)
        : decodeTracesProto(body, options);
      this.stats.spans += this.#store.ingestSpans(decoded);
      this.stats.rejectedSpans += invalid;
    } else if (path === "/v1/logs") {
      const decoded = json
        ? decodeLogsJson(JSON.parse(body.toString("utf8")), options)
        : decodeLogsProto(body, options);
      this.stats.logs += this.#store.ingestLogs(decoded);
      this.stats.rejectedLogRecords += invalid;
    } else {
      const decoded = json
        ? decodeMetricsJson(JSON.parse(body.toString("utf8")))
        : decodeMetricsProto(body);
      this.#store.ingestMetrics(decoded);
      this.stats.metricRequests++;
    }
    if (invalid === 0) answer(res, json, 200);
    else {
      const message =
        invalid > 1 ? `${reason} (the first of ${invalid})` : reason;
      if (json) {
        res.writeHead(200, { "content-type": "application/json" });
        // int64 as a string, as the protobuf JSON mapping writes it.
        const count =
          path === "/v1/traces" ? "rejectedSpans" : "rejectedLogRecords";
        res.end(
          JSON.stringify({
            partialSuccess: { [count]: String(invalid), errorMessage: message },
          }),
        );
      } else {
        res.writeHead(200, { "content-type": "application/x-protobuf" });
        res.end(partialSuccessProto(invalid, message));
      }
    }
    this.#onAccepted();
  }
}
