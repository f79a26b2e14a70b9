// Reads the watch-list document for the exporter (untraced, like all of the
// exporter's traffic). It posts the text only when it changed (the SDK
// validates and applies it), a failure each time one happens, and a bare
// message when a read succeeds again after failures.
import type { Stats } from "node:fs";
import { fileURLToPath } from "node:url";
import type { WatchReadMessage, WatchSourceMessage } from "./protocol.ts";
import { transportFor } from "../internal/http-transport.ts";
// Not an ESM import of node:fs (see core/module-hooks.ts).
const fs = process.getBuiltinModule("node:fs");

/** A watch list never needs more than this (100 entries are ~10 KB). */
const MAX_BYTES = 256 * 1024;
const NOT_FOUND_INTERVAL_MS = 60_000;

class NotFound extends Error {}

async function readHttp(
  src: WatchSourceMessage,
  etag: string | undefined,
): Promise<{ text: string | undefined; etag: string | undefined }> {
  const headers: Record<string, string> = { ...src.headers };
  if (etag !== undefined) headers["if-none-match"] = etag;
  // Not fetch(): the first fetch() loads undici, some 15 MB of memory in
  // every service for one small GET every few seconds. One more byte than
  // allowed is kept, to tell a document that is too large.
  const transport = transportFor(new URL(src.url), MAX_BYTES + 1, "GET");
  let res;
  try {
    res = await transport.send(
      headers,
      Buffer.alloc(0),
      Math.min(10_000, Math.max(1000, src.intervalMs)),
    );
  } finally {
    transport.close();
  }
  const status = res.status;
  if (status === 304) return { text: undefined, etag };
  if (status === 404) throw new NotFound("HTTP 404");
  // Redirects are not followed: the watch list's address is configured.
  if (status < 200 || status > 299) throw new Error(`HTTP ${status}`);
  if (res.body.byteLength > MAX_BYTES)
    throw new Error(`the document is larger than ${MAX_BYTES} bytes`);
  return { text: res.body.toString("utf8"), etag: res.headers.get("etag") };
}

/**
 * The file's text. Only a regular file is read, and no more of it than a
 * document may have: the URL may name a large file by mistake, read every
 * few seconds, or a FIFO, whose opening waits for a writer with no end (a
 * thread of libuv's pool held, and the list never read again).
 */
async function readFileSource(url: string): Promise<string> {
  const path = fileURLToPath(url);
  const tooLarge = () =>
    new Error(`the document is larger than ${MAX_BYTES} bytes`);
  const stats = await new Promise<Stats>((resolve, reject) =>
    fs.stat(path, (err, st) => (err === null ? resolve(st) : reject(err))),
  );
  if (!stats.isFile()) throw new Error(`${path} is not a regular file`);
  if (stats.size > MAX_BYTES) throw tooLarge();
  const fd = await new Promise<number>((resolve, reject) =>
    fs.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK, (err, fd) =>
      err === null ? resolve(fd) : reject(err),
    ),
  );
  try {
    // One byte more than allowed, to tell a file that grew past it.
    const buf = Buffer.allocUnsafe(MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(fd, buf, length, buf.length - length, null, (err, n) =>
          err === null ? resolve(n) : reject(err),
        ),
      );
      if (n === 0) break;
      length += n;
      if (length > MAX_BYTES) throw tooLarge();
    }
    return buf.toString("utf8", 0, length);
  } finally {
    fs.close(fd, () => {});
  }
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
