// `threadline dev`: the OTLP/HTTP receiver (standard port 4318) and the
// viewer with its JSON API (port 4320), over one store.
//
// Both listen on loopback unless told otherwise; bound anywhere else they
// require a token (Authorization: Bearer <token>, or ?token= for the live
// stream) on the OTLP paths and every /api/ path, and refuse to start
// without one. The viewer's own files are served to anyone: they hold no
// data, and the page passes the token from its URL to the API. Ingested data is
// written in batches every flushIntervalMs; each batch's changed traces are
// pushed to live-view subscribers (server-sent events) that match their
// customer/service filter. Batches are numbered (the events' ids) and the
// last LIVE_REPLAY changes kept in memory, so a stream opened again after
// the page went elsewhere (?after=, or Last-Event-ID when the browser
// reconnects by itself) first gets what it missed, or is told that it cannot
// (an `incomplete` event) when that is older than what is kept. A trace's
// read says which batch it is up to (`live`), so a page can follow the trace
// from there without reading it again. A stream that still has
// LIVE_MAX_UNSENT bytes unsent when a batch comes is closed: its reader
// stopped reading, and the viewer would otherwise hold all it is sent.
import { readFile } from "node:fs/promises";
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { isIP } from "node:net";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash, timingSafeEqual } from "node:crypto";
import {
  MAX_WATCH_MS,
  WATCH_PATH,
  canonicalHost,
  formatWatchDocument,
  isValidCustomerId,
  parseWatchLevel,
  WATCH_DEBUG,
  markUntraced,
} from "@threadline/core";
import {
  formatCursor,
  parseDuration,
  parseLimit,
  queryFromParams,
} from "./query.ts";
import { OtlpReceiver } from "./receiver.ts";
import { Store, type ChangedTrace, type ChangedTraces } from "./store.ts";

/** The standard OTLP/HTTP port: where services export unless told otherwise. */
export const DEFAULT_OTLP_PORT = 4318;

export interface DevServerOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 4318 */
  otlpPort?: number;
  /** @default 4320 */
  viewerPort?: number;
  /** SQLite file, or `:memory:`. */
  dbPath: string;
  maxBytes?: number;
  maxAgeMs?: number;
  /** Required when host is not a loopback address. */
  token?: string | undefined;
  /** @default 100 */
  flushIntervalMs?: number;
  /** How often the store is pruned after the prune at start. @default 60000 */
  pruneIntervalMs?: number;
  maxBodyBytes?: number;
  maxPending?: number;
}

export interface DevServer {
  readonly otlpUrl: string;
  readonly viewerUrl: string;
  readonly store: Store;
  readonly receiver: OtlpReceiver;
  close(): Promise<void>;
}

export class DevServerError extends Error {
  readonly code = "THREADLINE_DEV_SERVER";
}

/** The most spans a trace's page can ask for (`?limit=`). */
const MAX_TRACE_ROWS = 999_999_999;
const UI_DIR = fileURLToPath(new URL("../ui/", import.meta.url));
const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** In any spelling: `LOCALHOST.`, `[0:0:0:0:0:0:0:1]`, `::ffff:127.0.0.1`. */
function isLoopback(host: string): boolean {
  return isCanonicalLoopback(canonicalHost(host));
}

function isCanonicalLoopback(h: string): boolean {
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1";
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new DevServerError(
          err.code === "EADDRINUSE"
            ? `port ${port} on ${host} is already in use (another threadline dev or Collector?)`
            : err.message,
        ),
      ),
    );
    server.listen(port, host, () =>
      resolve((server.address() as { port: number }).port),
    );
  });
}

/**
 * The request's target read as a URL, undefined when it does not read as
 * one: `//[` reads as a host `[` with no path, and a web page can send it
 * to a port on loopback.
 */
function requestUrl(req: IncomingMessage): URL | undefined {
  return URL.parse(req.url ?? "/", "http://localhost") ?? undefined;
}

const BAD_TARGET = "the request target is not a valid URL path";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * `handler`, with what it throws answered 500 (`fail`) instead of ending the
 * process: one request would otherwise take down the receiver, the viewer,
 * every live stream and what the store had not yet written.
 */
function guarded(
  handler: Handler,
  fail: (res: ServerResponse, message: string) => void,
): Handler {
  return (req, res) => {
    try {
      handler(req, res);
    } catch (err) {
      req.resume();
      if (res.headersSent) res.destroy();
      else fail(res, (err as Error).message);
    }
  };
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.destroy();
        reject(new Error(`the body is larger than ${limit} bytes`));
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** A trace's summary as the live stream sends it, numbered for Last-Event-ID. */
function traceEvent(seq: number, trace: ChangedTrace): string {
  return `id: ${seq}\nevent: trace\ndata: ${JSON.stringify(trace)}\n\n`;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
  });
  res.end(JSON.stringify(body));
}

/** How many changed traces the live feed keeps to replay to a returning page. */
const LIVE_REPLAY = 1000;

/**
 * Bytes a live stream may still have unsent when the next batch comes: a
 * page drains its stream between batches, and one past this has stopped
 * reading. It is closed, or the viewer would hold everything sent to it; a
 * page that comes back reconnects and gets what it missed from the replay.
 */
const LIVE_MAX_UNSENT = 4 * 1024 * 1024;

interface LiveClient {
  res: ServerResponse;
  customer: string | undefined;
  service: string | undefined;
}

/**
 * Without a token the servers listen on loopback only, and a request must
 * name a loopback host too: a web page whose own name an attacker points at
 * 127.0.0.1 (DNS rebinding) sends its name in Host, and gets nothing.
 */
function namesLoopback(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return true; // HTTP/1.0: no name to check
  const name = hostHeader.startsWith("[")
    ? hostHeader.slice(0, hostHeader.indexOf("]") + 1)
    : hostHeader.replace(/:\d*$/, "");
  const h = canonicalHost(name);
  return isCanonicalLoopback(h) || h.endsWith(".localhost");
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const host = o.host ?? "127.0.0.1";
  const token = o.token && o.token.length > 0 ? o.token : undefined;
  if (!isLoopback(host) && token === undefined) {
    throw new DevServerError(
      `refusing to listen on ${host} without a token: anyone who can reach it could read your telemetry. Pass --token (or THREADLINE_VIEWER_TOKEN), or keep the default 127.0.0.1`,
    );
  }
  let store: Store;
  try {
    store = new Store({
      path: o.dbPath,
      ...(o.maxBytes === undefined ? {} : { maxBytes: o.maxBytes }),
      ...(o.maxAgeMs === undefined ? {} : { maxAgeMs: o.maxAgeMs }),
    });
  } catch (err) {
    // SQLite's reason alone ("file is not a database") does not say which.
    throw new DevServerError(
      `${o.dbPath} is not a usable threadline store: ${(err as Error).message}`,
    );
  }
  const live = new Set<LiveClient>();
  /**
   * The number of the last batch that changed traces. A run starts at the
   * microseconds since the epoch, past any number an earlier run reached
   * (a batch takes longer than a microsecond to write) unless the clock was
   * set back, so a page still holding one of those is told that what it
   * missed cannot be replayed, rather than sent this run's changes after a
   * number that meant another batch.
   */
  let liveSeq = Date.now() * 1000;
  /** The latest changes, oldest first: at most 2 × LIVE_REPLAY, trimmed in one go. */
  let recent: Array<{ seq: number; trace: ChangedTrace }> = [];
  /** Every change after this batch is still in `recent`. */
  let replayFrom = liveSeq;
  /**
   * Whether a changed trace has a customer, asked of the store at most once
   * per (customer, trace) for one batch: live pages often share a customer.
   */
  const customerCheck = () => {
    const asked = new Map<string, Map<string, boolean>>();
    return (t: ChangedTrace, customer: string): boolean => {
      let byTrace = asked.get(customer);
      if (byTrace === undefined) asked.set(customer, (byTrace = new Map()));
      let has = byTrace.get(t.traceId);
      if (has === undefined) {
        has = store.traceHasCustomer(t.traceId, t.startUs, customer);
        byTrace.set(t.traceId, has);
      }
      return has;
    };
  };
  /**
   * `t` as `c` sees it, undefined when it is not for `c`. A customer matches
   * as a search for it does: any span of the trace may carry it, not only
   * the summary's (its first span with a customer), and the trace is shown
   * under the customer asked for, as a search shows it.
   */
  const seenBy = (
    c: LiveClient,
    t: ChangedTrace,
    hasCustomer: (t: ChangedTrace, customer: string) => boolean,
  ): ChangedTrace | undefined => {
    if (c.service !== undefined && !t.services.includes(c.service))
      return undefined;
    if (c.customer === undefined || t.customer === c.customer) return t;
    return hasCustomer(t, c.customer)
      ? { ...t, customer: c.customer }
      : undefined;
  };
  /** Closes `c` if it stopped reading: true when it did. */
  const stalled = (c: LiveClient): boolean => {
    if (c.res.writableLength <= LIVE_MAX_UNSENT) return false;
    live.delete(c);
    c.res.destroy();
    return true;
  };
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = () => {
    flushTimer = undefined;
    let changed: ChangedTraces;
    const pending = store.pending;
    try {
      changed = store.flush();
    } catch (err) {
      // Kept for another try only when another process held the file.
      const lost = store.pending === 0 ? pending : 0;
      process.stderr.write(
        `threadline dev: could not write to the store: ${(err as Error).message}${lost > 0 ? `; ${lost} spans and log lines received were lost` : ""}\n`,
      );
      // What the store kept for another try (the file was busy) is tried
      // again even if nothing more arrives.
      if (store.pending > 0) flushTimer ??= setTimeout(flush, 1000);
      return;
    }
    if (changed.length === 0) return;
    const seq = ++liveSeq;
    for (const trace of changed) recent.push({ seq, trace });
    if (recent.length > 2 * LIVE_REPLAY) {
      replayFrom = recent[recent.length - LIVE_REPLAY - 1]!.seq;
      recent = recent.slice(-LIVE_REPLAY);
    }
    const hasCustomer = customerCheck();
    for (const c of live) {
      if (stalled(c)) continue;
      let events = "";
      for (const t of changed) {
        const seen = seenBy(c, t, hasCustomer);
        if (seen !== undefined) events += traceEvent(seq, seen);
      }
      if (events !== "") c.res.write(events);
    }
  };
  const scheduleFlush = () => {
    if (store.pending > 20_000) flush();
    else flushTimer ??= setTimeout(flush, o.flushIntervalMs ?? 100);
  };
  const receiver = new OtlpReceiver({
    store,
    onAccepted: scheduleFlush,
    ...(o.maxBodyBytes === undefined ? {} : { maxBodyBytes: o.maxBodyBytes }),
    ...(o.maxPending === undefined ? {} : { maxPending: o.maxPending }),
  });

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (token === undefined) return true;
    const given =
      /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ??
      url.searchParams.get("token") ??
      "";
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  /** The watch list as services read it, with an ETag so unchanged polls cost a 304. */
  const sendWatchDocument = (req: IncomingMessage, res: ServerResponse) => {
    const body = formatWatchDocument(store.watchEntries());
    const etag = `"${createHash("sha1").update(body).digest("base64url")}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "no-cache",
      etag,
    });
    res.end(body);
  };

  /** Refuses (403) a request naming another host, when there is no token. */
  const refusedHost = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (token !== undefined || namesLoopback(req.headers.host)) return false;
    req.resume();
    res
      .writeHead(403, { "content-type": "text/plain" })
      .end(
        "threadline dev answers requests to localhost or 127.0.0.1 only; start it with --token to reach it by another name",
      );
    return true;
  };

  const plainText = (res: ServerResponse, status: number, message: string) =>
    res.writeHead(status, { "content-type": "text/plain" }).end(message);

  // The viewer's own traffic is no service's: a shell that loads Threadline
  // into every Node process (NODE_OPTIONS) loads it here too, and the
  // viewer would trace each OTLP request it receives and export those spans
  // to itself, without end. Its servers, and the CLI's own calls, are
  // untraced.
  const otlp = markUntraced(
    createServer(
      guarded(handleOtlp, (res, message) => plainText(res, 500, message)),
    ),
  );

  function handleOtlp(req: IncomingMessage, res: ServerResponse): void {
    if (refusedHost(req, res)) return;
    const url = requestUrl(req);
    if (url === undefined) {
      req.resume();
      plainText(res, 400, BAD_TARGET);
      return;
    }
    if (!authorized(req, url)) {
      req.resume();
      res
        .writeHead(401, { "content-type": "text/plain" })
        .end("a token is required");
      return;
    }
    if (url.pathname === WATCH_PATH && req.method === "GET") {
      sendWatchDocument(req, res);
      return;
    }
    if (!receiver.handle(req, res))
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end("not an OTLP path: use /v1/traces, /v1/logs or /v1/metrics");
  }

  const viewer = markUntraced(
    createServer(
      guarded(
        (req, res) => {
          if (refusedHost(req, res)) return;
          void serveViewer(req, res).catch((err: unknown) => {
            if (!res.headersSent)
              sendJson(res, 500, { error: (err as Error).message });
            else res.end();
          });
        },
        (res, message) => sendJson(res, 500, { error: message }),
      ),
    ),
  );

  async function serveViewer(
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const url = requestUrl(req);
    if (url === undefined) {
      req.resume();
      sendJson(res, 400, { error: BAD_TARGET });
      return;
    }
    const path = url.pathname;
    // The token guards the data; the page's own files hold none.
    if (path.startsWith("/api/") && !authorized(req, url)) {
      sendJson(res, 401, {
        error:
          "a token is required: add ?token=… or an Authorization: Bearer header",
      });
      return;
    }
    if (path === "/api/search") {
      let q;
      try {
        q = queryFromParams(url.searchParams);
      } catch (err) {
        sendJson(res, 400, { error: (err as Error).message });
        return;
      }
      const { traces, next } = store.searchPage(q);
      sendJson(res, 200, {
        traces,
        ...(next !== undefined ? { next: formatCursor(next) } : {}),
      });
      return;
    }
    const traceMatch = /^\/api\/traces\/([0-9a-fA-F]{32})$/.exec(path);
    if (traceMatch) {
      // A page draws a few thousand rows of a trace at most, and asks for
      // no more: a trace of 100,000 spans takes the viewer a second or more
      // to read and send whole, and it answers nothing else meanwhile.
      const given = url.searchParams.get("limit");
      let limit: number | undefined;
      try {
        limit =
          given === null
            ? undefined
            : parseLimit(given, "limit", MAX_TRACE_ROWS);
      } catch (err) {
        sendJson(res, 400, { error: (err as Error).message });
        return;
      }
      // Read in the same turn as the number: no batch is written between
      // the two, so a stream opened after it announces every change the
      // read did not see.
      const trace = store.getTraceSync(traceMatch[1]!.toLowerCase(), limit);
      if (trace === undefined)
        sendJson(res, 404, {
          error: "no such trace in the local store",
          live: liveSeq,
        });
      else sendJson(res, 200, { ...trace, live: liveSeq });
      return;
    }
    if (path === "/api/watch") {
      if (req.method === "GET") {
        sendWatchDocument(req, res);
        return;
      }
      // The customer in the query: ids such as `..` cannot be a path segment.
      if (req.method === "DELETE") {
        const customer = url.searchParams.get("customer") ?? "";
        if (!store.unwatch(customer)) {
          sendJson(res, 404, { error: `${customer} is not watched` });
          return;
        }
        sendWatchDocument(req, res);
        return;
      }
      if (req.method !== "POST") {
        sendJson(res, 405, { error: "use GET, POST or DELETE" });
        return;
      }
      // JSON only: a cross-site form cannot send it without a CORS preflight, which is never granted.
      if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) {
        req.resume();
        sendJson(res, 415, { error: "send application/json" });
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(await readBody(req, 4096));
      } catch (err) {
        sendJson(res, 400, { error: (err as Error).message });
        return;
      }
      if (
        parsed === null ||
        typeof parsed !== "object" ||
        Array.isArray(parsed)
      ) {
        sendJson(res, 400, {
          error: 'send a JSON object: {"customer", "forMs", "level"}',
        });
        return;
      }
      const body = parsed as {
        customer?: unknown;
        forMs?: unknown;
        level?: unknown;
      };
      const level =
        body.level === undefined ? WATCH_DEBUG : parseWatchLevel(body.level);
      if (!isValidCustomerId(body.customer)) {
        sendJson(res, 400, { error: "customer: not a valid customer id" });
        return;
      }
      if (
        typeof body.forMs !== "number" ||
        !Number.isFinite(body.forMs) ||
        body.forMs <= 0 ||
        body.forMs > MAX_WATCH_MS
      ) {
        sendJson(res, 400, {
          error: `forMs: a duration in ms, at most ${MAX_WATCH_MS} (7 days)`,
        });
        return;
      }
      if (level === undefined) {
        sendJson(res, 400, { error: 'level: "debug" or "trace"' });
        return;
      }
      try {
        store.watch({
          customer: body.customer,
          until: Date.now() + body.forMs,
          level,
        });
      } catch (err) {
        sendJson(res, 409, { error: (err as Error).message });
        return;
      }
      sendWatchDocument(req, res);
      return;
    }
    if (path === "/api/metrics") {
      const service = url.searchParams.get("service") ?? "";
      let since: number;
      try {
        since = parseDuration(url.searchParams.get("since") ?? "1h");
      } catch (err) {
        sendJson(res, 400, { error: (err as Error).message });
        return;
      }
      const services = store.metricServices();
      const chosen = service || services[0] || "";
      const events = chosen === "" ? [] : store.alarmEvents(chosen);
      sendJson(res, 200, {
        services,
        service: chosen,
        panels:
          chosen === ""
            ? undefined
            : store.servicePanels(chosen, Date.now() - since),
        alarms: {
          // The newest event of each alarm of each instance says whether
          // it is still active, however old: one instance's clear leaves
          // another's raise standing.
          active: chosen === "" ? [] : store.activeAlarms(chosen),
          history: events,
        },
      });
      return;
    }
    if (path === "/api/services") {
      sendJson(res, 200, { services: store.services() });
      return;
    }
    if (path === "/api/stats") {
      sendJson(res, 200, {
        ...store.counts(),
        sizeBytes: store.sizeBytes(),
        received: receiver.stats,
        path: store.path,
      });
      return;
    }
    if (path === "/api/live") {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
      });
      res.write(": live\n\n");
      const client: LiveClient = {
        res,
        customer: url.searchParams.get("customer") || undefined,
        service: url.searchParams.get("service") || undefined,
      };
      // A browser reconnecting by itself sends the last id it heard, newer
      // than the ?after= the page opened the stream with.
      const resume =
        req.headers["last-event-id"] ?? url.searchParams.get("after");
      const after = resume ? Number(resume) : NaN;
      if (Number.isSafeInteger(after) && after >= 0) {
        // A number older than the changes kept (an earlier run's among
        // them), or beyond ours, leaves changes out of the replay: the
        // stream says so first, so that a page reads again what it shows,
        // and then sends all that is kept.
        const whole = after >= replayFrom && after <= liveSeq;
        if (!whole) res.write(`event: incomplete\ndata: ${replayFrom}\n\n`);
        const from = whole ? after : 0;
        // Each trace once, as it is now, in the order it last changed.
        const latest = new Map<string, { seq: number; trace: ChangedTrace }>();
        // Only a trace's latest change is matched: its services and the
        // customers its spans carry only grow, and its summary's customer
        // never changes once set, so an earlier change matches no more.
        for (const e of recent)
          if (e.seq > from) {
            latest.delete(e.trace.traceId);
            latest.set(e.trace.traceId, e);
          }
        const hasCustomer = customerCheck();
        for (const { seq, trace } of latest.values()) {
          const seen = seenBy(client, trace, hasCustomer);
          if (seen !== undefined) res.write(traceEvent(seq, seen));
        }
      }
      // Where the stream starts, so that a page that heard nothing yet can
      // still come back for what it missed.
      res.write(`id: ${liveSeq}\nevent: position\ndata: ${liveSeq}\n\n`);
      live.add(client);
      req.on("close", () => live.delete(client));
      return;
    }
    if (path.startsWith("/api/")) {
      sendJson(res, 404, { error: `no API endpoint ${path}` });
      return;
    }
    // Static UI: every page path serves the single-page app.
    const file =
      path === "/" || !extname(path)
        ? "index.html"
        : normalize(path).replace(/^([/\\])+/, "");
    if (file.includes("..")) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(UI_DIR, file));
      res.writeHead(200, {
        "content-type": MIME[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-cache",
      });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  }

  const heartbeat = setInterval(() => {
    for (const c of live) if (!stalled(c)) c.res.write(": keep-alive\n\n");
  }, 15_000);
  heartbeat.unref();
  // While serving, a prune goes in rounds that let requests in between: a
  // large store takes seconds, longer than an exporter waits for an answer.
  // The one at start runs whole, before anyone is answered.
  let pruning = false;
  const pruneTimer = setInterval(() => {
    if (pruning) return;
    pruning = true;
    store
      .pruneInRounds()
      .catch((err: unknown) => {
        process.stderr.write(
          `threadline dev: pruning failed: ${(err as Error).message}\n`,
        );
      })
      .finally(() => {
        pruning = false;
      });
  }, o.pruneIntervalMs ?? 60_000);
  pruneTimer.unref();
  store.prune();

  let otlpPort: number;
  let viewerPort: number;
  try {
    otlpPort = await listen(otlp, o.otlpPort ?? DEFAULT_OTLP_PORT, host);
    viewerPort = await listen(viewer, o.viewerPort ?? 4320, host);
  } catch (err) {
    otlp.close();
    clearInterval(heartbeat);
    clearInterval(pruneTimer);
    await store.close();
    throw err;
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    otlpUrl: `http://${shown}:${otlpPort}`,
    viewerUrl: `http://${shown}:${viewerPort}`,
    store,
    receiver,
    close: async () => {
      clearInterval(heartbeat);
      clearInterval(pruneTimer);
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      for (const c of live) c.res.end();
      live.clear();
      await Promise.all([
        new Promise<void>((r) => {
          otlp.closeAllConnections();
          otlp.close(() => r());
        }),
        new Promise<void>((r) => {
          viewer.closeAllConnections();
          viewer.close(() => r());
        }),
      ]);
      await store.close();
    },
  };
}
