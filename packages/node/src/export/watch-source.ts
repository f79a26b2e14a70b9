// Reads the watch-list document for the exporter (untraced, like all of the
// exporter's traffic). It posts the text only when it changed (the SDK
// validates and applies it), a failure each time one happens, and a bare
// message when a read succeeds again after failures.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { WatchReadMessage, WatchSourceMessage } from "./protocol.ts";

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
  const res = await fetch(src.url, {
    headers,
    redirect: "error",
    signal: AbortSignal.timeout(
      Math.min(10_000, Math.max(1000, src.intervalMs)),
    ),
  });
  if (res.status === 304) {
    await res.body?.cancel();
    return { text: undefined, etag };
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new NotFound("HTTP 404");
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const length = Number(res.headers.get("content-length") ?? 0);
  if (length > MAX_BYTES) {
    await res.body?.cancel();
    throw new Error(`the document is larger than ${MAX_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += (chunk as Uint8Array).byteLength;
    if (size > MAX_BYTES)
      throw new Error(`the document is larger than ${MAX_BYTES} bytes`);
    chunks.push(chunk as Uint8Array);
  }
  return {
    text: Buffer.concat(chunks).toString("utf8"),
    etag: res.headers.get("etag") ?? undefined,
  };
}

async function readFileSource(url: string): Promise<string> {
  const buf = await readFile(fileURLToPath(url));
  if (buf.byteLength > MAX_BYTES)
    throw new Error(`the document is larger than ${MAX_BYTES} bytes`);
  return buf.toString("utf8");
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
      const e = err as Error & { cause?: { code?: string } };
      post({
        t: "watch",
        error:
          e.cause?.code ??
          (e.name === "TimeoutError" ? "timed out" : e.message),
      });
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
