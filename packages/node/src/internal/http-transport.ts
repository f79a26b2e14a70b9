// How the exporter and the watch-list reader reach an address: a POST with a
// body and its length, or a GET, answered with a status, a few headers and a
// small body, over kept-alive sockets. No redirects, no proxies, no Expect,
// no upgrades. https: goes through node:https; plain http: (the usual case,
// a Collector on the same host or in the same pod) through our own client,
// PlainHttpClient.
//
// Why not node:http's client: its requests and responses go through the
// same functions of Node.js core (HTTP parsing, headers, streams) as the
// application's own server, with objects of other shapes, and V8's inline
// caches in those functions turn megamorphic, slowing every request the
// application serves, not only the exports (figures in the package README).
// A bare socket with one listener of each kind for its whole life leaves
// them much as the application alone would.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { TlsFiles } from "../config.ts";

/** An answer: header names lower-cased, the last of a repeated header kept. */
export interface PlainResponse {
  status: number;
  headers: Map<string, string>;
  /** The first `maxBodyBytes` of the body. */
  body: Buffer;
  /**
   * The body went on past `maxBodyBytes`: the rest was not read, and the
   * connection was closed.
   */
  truncated: boolean;
}

const MAX_HEAD_BYTES = 16 * 1024;
const CRLFCRLF = Buffer.from("\r\n\r\n");
const HTTP_SLASH = Buffer.from("HTTP/");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * What went wrong, with Node.js's code for a socket's error; `final` when
 * sending the same request again cannot help (a header that is not valid,
 * a server that speaks another protocol).
 */
export class PlainHttpError extends Error {
  readonly code: string | undefined;
  readonly final: boolean;
  constructor(message: string, code?: string, final = false) {
    super(message);
    this.code = code;
    this.final = final;
  }
}

/** Sends one request; the answer, or a PlainHttpError. */
export type Send = (
  headers: Record<string, string | number>,
  body: Buffer,
  timeoutMs: number,
) => Promise<PlainResponse>;

export interface Transport {
  send: Send;
  /** Closes the idle connections. */
  close(): void;
}

type Method = "POST" | "GET";

/**
 * The transport for `url`, keeping the first `maxBodyBytes` of each answer:
 * node:https for https:, PlainHttpClient for http:.
 */
export function transportFor(
  url: URL,
  maxBodyBytes: number,
  method: Method,
  tls: TlsFiles = {},
): Transport {
  return url.protocol === "https:"
    ? httpsTransport(url, maxBodyBytes, method, tls)
    : new PlainHttpClient(url, maxBodyBytes, method);
}

function httpsTransport(
  url: URL,
  maxBodyBytes: number,
  method: Method,
  tls: TlsFiles,
): Transport {
  const https = process.getBuiltinModule("node:https");
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ...tls });
  const send: Send = (headers, body, timeoutMs) =>
    new Promise((resolve, reject) => {
      let req;
      try {
        req = https.request(url, {
          method,
          headers,
          agent,
        });
      } catch (err) {
        // Nothing was sent: the TLS files or the headers cannot be used,
        // and will not be next time either.
        reject(
          new PlainHttpError(
            (err as Error).message,
            (err as NodeJS.ErrnoException).code,
            true,
          ),
        );
        return;
      }
      // A request in flight never keeps the process alive on its own.
      req.on("socket", (socket) => socket.unref());
      // The whole exchange, as for plain HTTP.
      const deadline =
        timeoutMs > 0
          ? setTimeout(
              () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)),
              timeoutMs,
            ).unref()
          : undefined;
      req.on("close", () => clearTimeout(deadline));
      req.on("error", (err: NodeJS.ErrnoException) =>
        reject(
          notTls(err)
            ? new PlainHttpError(
                "the server does not speak TLS (use an http:// endpoint?)",
                err.code,
                true,
              )
            : err,
        ),
      );
      req.on("response", (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const answer = (truncated: boolean) => {
          const headers = new Map<string, string>();
          for (const [k, v] of Object.entries(res.headers))
            if (typeof v === "string") headers.set(k, v);
          resolve({
            status: res.statusCode ?? 0,
            headers,
            body: Buffer.concat(chunks),
            truncated,
          });
        };
        res.on("data", (c: Buffer) => {
          if (size + c.length <= maxBodyBytes) {
            chunks.push(c);
            size += c.length;
            return;
          }
          // As for plain HTTP (see Connection.#keep): no more is read, and
          // the socket goes with the response, never back to the agent.
          if (size < maxBodyBytes) {
            chunks.push(c.subarray(0, maxBodyBytes - size));
            size = maxBodyBytes;
          }
          res.removeAllListeners("data");
          res.destroy();
          answer(true);
        });
        res.on("error", () => reject(new Error("the response broke off")));
        res.on("end", () => answer(false));
      });
      req.end(body);
    });
  return { send, close: () => agent.destroy() };
}

/**
 * OpenSSL's "wrong version number": what came back is not a TLS record,
 * most often a plain-HTTP server's answer to the handshake. Every attempt
 * would meet the same server.
 */
function notTls(err: NodeJS.ErrnoException): boolean {
  return (
    err.code === "ERR_SSL_WRONG_VERSION_NUMBER" ||
    (typeof err.message === "string" &&
      err.message.includes(":wrong version number:"))
  );
}

/**
 * When the first bytes of an answer cannot begin HTTP/1.x, a final error
 * saying what they look like: the endpoint names a server of another
 * protocol (gRPC's port, a TLS port), and every attempt would meet it
 * again. Looked at only once the exchange has failed.
 */
function notHttp(head: Buffer | undefined): PlainHttpError | undefined {
  if (head === undefined || head.length === 0) return undefined;
  const n = Math.min(head.length, HTTP_SLASH.length);
  if (head.compare(HTTP_SLASH, 0, n, 0, n) === 0) return undefined;
  // A TLS record (an alert, or a handshake): 0x15 or 0x16, then version 3.x.
  if ((head[0] === 0x15 || head[0] === 0x16) && head[1] === 0x03)
    return new PlainHttpError(
      "the server answered in TLS (use an https:// endpoint)",
      undefined,
      true,
    );
  // An HTTP/2 server's first frame, SETTINGS (type 4): a gRPC server's too.
  if (head.length >= 4 && head[0] === 0 && head[3] === 0x04)
    return new PlainHttpError(
      "the server answered in HTTP/2 (a gRPC port? OTLP/HTTP listens on 4318)",
      undefined,
      true,
    );
  return new PlainHttpError(
    `the server did not answer in HTTP/1.x (its answer began ${firstBytes(head)})`,
    undefined,
    true,
  );
}

/** The first bytes of an answer, quoted when printable, else in hex. */
function firstBytes(head: Buffer): string {
  const start = head.subarray(0, 16);
  for (const b of start)
    if (b < 0x20 || b > 0x7e)
      return [...start.subarray(0, 8)]
        .map((x) => x.toString(16).padStart(2, "0"))
        .join(" ");
  return JSON.stringify(start.toString("latin1"));
}

/** One request's reading state. */
interface Exchange {
  resolve: (r: PlainResponse) => void;
  reject: (e: PlainHttpError) => void;
  /** Bytes of the head not yet complete. */
  head: Buffer | undefined;
  status: number;
  headers: Map<string, string>;
  /** How the body ends: by length, in chunks, or when the server closes. */
  framing: "length" | "chunked" | "close";
  remaining: number;
  /** Chunked: partial chunk-size line or trailer bytes awaiting CRLF. */
  line: Buffer | undefined;
  /** Chunked: reading the CRLF after a chunk's data, or the trailers. */
  chunkState: "size" | "data" | "data-end" | "trailers";
  body: Buffer[];
  bodyBytes: number;
  /** The body went on past maxBodyBytes (see PlainResponse). */
  truncated: boolean;
  reusable: boolean;
  timeoutMs: number;
}

/** A kept-alive socket and the exchange on it, if any. */
class Connection {
  readonly socket: Socket;
  #exchange: Exchange | undefined;
  #deadline: NodeJS.Timeout | undefined;
  readonly #client: PlainHttpClient;

  constructor(client: PlainHttpClient, socket: Socket) {
    this.#client = client;
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => this.#read(chunk));
    socket.on("error", (err: NodeJS.ErrnoException) =>
      this.#fail(new PlainHttpError(err.message, err.code)),
    );
    socket.on("close", () => {
      const x = this.#exchange;
      if (x !== undefined && x.framing === "close" && x.head === undefined)
        this.#complete(x, false);
      else
        this.#fail(
          new PlainHttpError(
            "the connection closed before the answer was complete",
            "ECONNRESET",
          ),
        );
    });
  }

  send(request: Buffer, body: Buffer, exchange: Exchange): void {
    this.#exchange = exchange;
    const s = this.socket;
    // The whole exchange, not each silence in it: a server that answers a
    // byte at a time must not hold an export (and the flush awaiting it).
    if (exchange.timeoutMs > 0) {
      this.#deadline = setTimeout(() => {
        if (this.#exchange === exchange)
          this.#fail(
            new PlainHttpError(`no answer within ${exchange.timeoutMs} ms`),
          );
      }, exchange.timeoutMs);
      this.#deadline.unref();
    }
    s.cork();
    s.write(request);
    if (body.length > 0) s.write(body);
    s.uncork();
  }

  /**
   * Ends the exchange with `err`, unless what the server sent so far cannot
   * begin HTTP/1.x: then with the error saying what it is (see notHttp).
   */
  #fail(err: PlainHttpError): void {
    const x = this.#exchange;
    this.#exchange = undefined;
    clearTimeout(this.#deadline);
    this.#client.forget(this);
    this.socket.destroy();
    x?.reject(notHttp(x.head) ?? err);
  }

  #complete(x: Exchange, reusable: boolean): void {
    this.#exchange = undefined;
    clearTimeout(this.#deadline);
    // Answered before the request was all written: what is left of it is
    // never sent (the caller may reuse its body's memory once answered), and
    // the connection's framing cannot be trusted.
    if (this.socket.writableLength > 0) reusable = false;
    if (reusable) this.#client.release(this);
    else {
      this.#client.forget(this);
      this.socket.destroy();
    }
    x.resolve({
      status: x.status,
      headers: x.headers,
      body:
        x.body.length === 1 ? x.body[0]! : Buffer.concat(x.body, x.bodyBytes),
      truncated: x.truncated,
    });
  }

  #read(chunk: Buffer): void {
    const x = this.#exchange;
    // Bytes nobody asked for: the connection cannot be trusted any more.
    if (x === undefined) {
      this.#fail(new PlainHttpError("unexpected data from the server"));
      return;
    }
    let data = chunk;
    if (x.head !== undefined) {
      const head = x.head.length === 0 ? data : Buffer.concat([x.head, data]);
      const end = head.indexOf(CRLFCRLF);
      if (end < 0) {
        x.head = head;
        if (head.length > MAX_HEAD_BYTES)
          this.#fail(new PlainHttpError("the answer's headers are too long"));
        return;
      }
      x.head = head;
      if (!this.#parseHead(x, head, end)) return;
      data = head.subarray(end + 4);
      // An interim answer (100 Continue and the like): the real one follows.
      if (x.status >= 100 && x.status < 200) {
        x.head = Buffer.alloc(0);
        x.headers = new Map();
        if (data.length > 0) this.#read(data);
        return;
      }
      x.head = undefined;
      if (x.framing === "length" && x.remaining === 0) {
        if (data.length > 0) x.reusable = false;
        this.#complete(x, x.reusable);
        return;
      }
    }
    if (x.framing === "chunked") this.#readChunked(x, data);
    else {
      const take =
        x.framing === "length"
          ? Math.min(x.remaining, data.length)
          : data.length;
      if (!this.#keep(x, data.subarray(0, take))) return;
      if (x.framing === "length") {
        x.remaining -= take;
        if (x.remaining === 0)
          this.#complete(x, x.reusable && take === data.length);
      }
    }
  }

  #parseHead(x: Exchange, head: Buffer, end: number): boolean {
    const lines = head.toString("latin1", 0, end).split("\r\n");
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
    if (m === null) {
      this.#fail(new PlainHttpError("the server did not answer in HTTP/1.x"));
      return false;
    }
    x.status = Number(m[2]);
    let keepAlive = m[1] === "1";
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon <= 0) {
        this.#fail(new PlainHttpError("the answer has a malformed header"));
        return false;
      }
      x.headers.set(
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
    const connection = x.headers.get("connection")?.toLowerCase();
    if (connection !== undefined) {
      if (/\bclose\b/.test(connection)) keepAlive = false;
      else if (/\bkeep-alive\b/.test(connection)) keepAlive = true;
    }
    x.reusable = keepAlive;
    const te = x.headers.get("transfer-encoding");
    const cl = x.headers.get("content-length");
    if (x.status === 204 || x.status === 304 || x.status < 200) {
      x.framing = "length";
      x.remaining = 0;
    } else if (te !== undefined && /\bchunked\s*$/i.test(te)) {
      x.framing = "chunked";
      x.chunkState = "size";
    } else if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) {
        this.#fail(new PlainHttpError("the answer has a malformed length"));
        return false;
      }
      x.framing = "length";
      x.remaining = Number(cl);
    } else {
      x.framing = "close";
      x.reusable = false;
    }
    return true;
  }

  #readChunked(x: Exchange, data: Buffer): void {
    let i = 0;
    while (i < data.length) {
      if (x.chunkState === "data") {
        const take = Math.min(x.remaining, data.length - i);
        if (!this.#keep(x, data.subarray(i, i + take))) return;
        x.remaining -= take;
        i += take;
        if (x.remaining === 0) x.chunkState = "data-end";
        continue;
      }
      // A line: a chunk's size, the CRLF after its data, or a trailer.
      const nl = data.indexOf(10, i);
      const piece = data.subarray(i, nl < 0 ? data.length : nl + 1);
      const line =
        x.line === undefined ? piece : Buffer.concat([x.line, piece]);
      i += piece.length;
      if (nl < 0) {
        if (line.length > MAX_HEAD_BYTES) {
          this.#fail(new PlainHttpError("the answer's chunks are malformed"));
          return;
        }
        x.line = line;
        continue;
      }
      x.line = undefined;
      const text = line.toString("latin1").replace(/\r?\n$/, "");
      if (x.chunkState === "data-end") {
        if (text !== "") {
          this.#fail(new PlainHttpError("the answer's chunks are malformed"));
          return;
        }
        x.chunkState = "size";
      } else if (x.chunkState === "size") {
        const size = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(text.trim());
        if (size === null) {
          this.#fail(new PlainHttpError("the answer's chunks are malformed"));
          return;
        }
        x.remaining = parseInt(size[1]!, 16);
        x.chunkState = x.remaining === 0 ? "trailers" : "data";
      } else if (text === "") {
        // The end of the trailers, and of the answer.
        this.#complete(x, x.reusable && i === data.length);
        return;
      }
    }
  }

  /**
   * Keeps `piece` of the body; false once the body goes on past
   * maxBodyBytes, which ends the exchange there. The rest is never read:
   * reading it, an endpoint answering with an endless body (or a length of
   * hundreds of megabytes) would take the CPU the application needs, each
   * export until its deadline. The connection is closed, since what is left
   * of the answer would be read as the next one's.
   */
  #keep(x: Exchange, piece: Buffer): boolean {
    const room = this.#client.maxBodyBytes - x.bodyBytes;
    if (piece.length > room) {
      if (room > 0) {
        x.body.push(piece.subarray(0, room));
        x.bodyBytes += room;
      }
      x.truncated = true;
      this.#complete(x, false);
      return false;
    }
    if (piece.length > 0) {
      x.body.push(piece);
      x.bodyBytes += piece.length;
    }
    return true;
  }
}

/** Requests one http: URL over up to as many sockets as requests in flight. */
export class PlainHttpClient implements Transport {
  readonly maxBodyBytes: number;
  readonly #host: string;
  readonly #port: number;
  readonly #requestLine: string;
  readonly #hostLine: string;
  readonly #idle: Connection[] = [];

  constructor(url: URL, maxBodyBytes: number, method: Method = "POST") {
    if (url.protocol !== "http:")
      throw new Error(`${url.protocol} is not plain HTTP`);
    this.maxBodyBytes = maxBodyBytes;
    this.#host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.#port = url.port === "" ? 80 : Number(url.port);
    this.#requestLine = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
    this.#hostLine = `Host: ${url.host}\r\n`;
  }

  readonly send: Send = (headers, body, timeoutMs) => {
    let fields = "Connection: keep-alive\r\n";
    let host = this.#hostLine;
    for (const name in headers) {
      const value = String(headers[name]);
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value))
        return Promise.reject(
          new PlainHttpError(
            `header ${JSON.stringify(name)} is not valid`,
            undefined,
            true,
          ),
        );
      // A Host of the caller's (a proxy's routing, say) replaces the URL's.
      if (name.length === 4 && name.toLowerCase() === "host")
        host = `Host: ${value}\r\n`;
      else fields += `${name}: ${value}\r\n`;
    }
    const head = `${this.#requestLine}${host}${fields}\r\n`;
    return new Promise((resolve, reject) => {
      const exchange: Exchange = {
        resolve,
        reject,
        head: Buffer.alloc(0),
        status: 0,
        headers: new Map(),
        framing: "length",
        remaining: 0,
        line: undefined,
        chunkState: "size",
        body: [],
        bodyBytes: 0,
        truncated: false,
        reusable: false,
        timeoutMs,
      };
      const c = this.#idle.pop() ?? this.#connect();
      c.send(Buffer.from(head, "latin1"), body, exchange);
    });
  };

  /** A connection whose answer is complete and may carry another request. */
  release(c: Connection): void {
    this.#idle.push(c);
  }

  /** A connection that closed or broke. */
  forget(c: Connection): void {
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
  }

  close(): void {
    for (const c of this.#idle.splice(0)) c.socket.destroy();
  }

  #connect(): Connection {
    const net = process.getBuiltinModule("node:net");
    const socket = net.connect({ host: this.#host, port: this.#port });
    socket.setNoDelay(true);
    // An export in flight, or an idle connection, never keeps the process alive.
    socket.unref();
    return new Connection(this, socket);
  }
}
