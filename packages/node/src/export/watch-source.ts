// Reads the watch-list document for the exporter (untraced, like all of the
// exporter's traffic). It posts the text only when it changed (the SDK
// validates and applies it), a failure each time one happens, and a bare
// message when a read succeeds again after failures.
import { fileURLToPath } from "node:url";
import type { WatchReadMessage, WatchSourceMessage } from "./protocol.ts";
import { PlainHttpClient } from "../internal/plain-http.ts";
// Not an ESM import of node:fs (see core/module-hooks.ts).
const { readFile } = process.getBuiltinModule("node:fs");

/** A watch list never needs more than this (100 entries are ~10 KB). */
const MAX_BYTES = 256 * 1024;
const NOT_FOUND_INTERVAL_MS = 60_000;

class NotFound extends Error {}

function readHttp(
  src: WatchSourceMessage,
  etag: string | undefined,
): Promise<{ text: string | undefined; etag: string | undefined }> {
  const headers: Record<string, string> = { ...src.headers };
  if (etag !== undefined) headers["if-none-match"] = etag;
  const url = new URL(src.url);
  const timeoutMs = Math.min(10_000, Math.max(1000, src.intervalMs));
  // Not fetch(): the first fetch() loads undici, some 15 MB of memory in
  // every service for one small GET every few seconds. Plain HTTP as the
  // exporter sends it (internal/plain-http.ts says why not node:http).
  const answer =
    url.protocol === "https:"
      ? readHttps(url, headers, timeoutMs)
      : readPlain(url, headers, timeoutMs);
  return answer.then(({ status, header, body }) => {
    if (status === 304) return { text: undefined, etag };
    if (status === 404) throw new NotFound("HTTP 404");
    // Redirects are not followed: the watch list's address is configured.
    if (status < 200 || status > 299) throw new Error(`HTTP ${status}`);
    if (body.byteLength > MAX_BYTES)
      throw new Error(`the document is larger than ${MAX_BYTES} bytes`);
    return { text: body.toString("utf8"), etag: header("etag") };
  });
}

interface Answer {
  status: number;
  header: (name: string) => string | undefined;
  body: Buffer;
}

async function readPlain(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Answer> {
  // One more byte than allowed, to tell a document that is too large.
  const client = new PlainHttpClient(url, MAX_BYTES + 1, "GET");
  try {
    const res = await client.post(headers, Buffer.alloc(0), timeoutMs);
    return {
      status: res.status,
      header: (name) => res.headers.get(name),
      body: res.body,
    };
  } finally {
    client.close();
  }
}

function readHttps(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Answer> {
  const { request } = process.getBuiltinModule("node:https");
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: timeoutMs });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size <= MAX_BYTES) chunks.push(chunk);
        else {
          res.destroy();
          reject(new Error(`the document is larger than ${MAX_BYTES} bytes`));
        }
      });
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          header: (name) => {
            const v = res.headers[name];
            return typeof v === "string" ? v : undefined;
          },
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.end();
  });
}

function readFileSource(url: string): Promise<string> {
  return new Promise((resolve, reject) =>
    readFile(fileURLToPath(url), (err, buf) => {
      if (err !== null) reject(err);
      else if (buf.byteLength > MAX_BYTES)
        reject(new Error(`the document is larger than ${MAX_BYTES} bytes`));
      else resolve(buf.toString("utf8"));
    }),
  );
}

/** Polls `src` until stopped (or the thread ends); `post` receives every read's outcome. */
export function pollWatchSource(
  src: WatchSourceMessage,
  post: (msg: WatchReadMessage) => void,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastText: string | undefined;
  let etag: string | undefined;
  let failing = false;
  const isFile = src.url.startsWith("file:");
  const poll = async () => {
    let next = src.intervalMs;
    try {
      let text: string | undefined;
      if (isFile) text = await readFileSource(src.url);
      else ({ text, etag } = await readHttp(src, etag));
      if (text !== undefined && text !== lastText) {
        lastText = text;
        post({ t: "watch", text });
      } else if (failing) {
        post({ t: "watch" });
      }
      failing = false;
    } catch (err) {
      failing = true;
      if (err instanceof NotFound && src.slowOnNotFound)
        next = NOT_FOUND_INTERVAL_MS;
      const e = err as NodeJS.ErrnoException;
      post({ t: "watch", error: e.code ?? e.message });
    }
    if (stopped) return;
    timer = setTimeout(() => void poll(), next);
    timer.unref();
  };
  void poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
