// A running `threadline dev`, read through its JSON API: works whether it
// keeps its store in a file or in memory.
import { untraced } from "@threadline/core";
import type {
  SearchQuery,
  TraceBackend,
  TraceDetail,
  TraceSummary,
} from "../model.ts";
import { paramsFromQuery } from "../query.ts";
import { causeOf, viewerTokenError } from "./remote.ts";

/**
 * How long the viewer may take to start its answer, and then to send more
 * of it: a trace of many spans takes longer than that to send whole, and
 * is read to its end as long as it keeps coming.
 */
const ANSWER_TIMEOUT_MS = 10_000;

/** A wait that ran out, and what was being waited for. */
class TimedOut extends Error {}

/** An answer read whole. */
interface Answer {
  status: number;
  ok: boolean;
  contentType: string;
  text: string;
}

export class ViewerBackend implements TraceBackend {
  readonly name: string;
  readonly #url: string;
  readonly #token: string | undefined;

  constructor(url: string, token?: string) {
    this.#url = url.replace(/\/+$/, "");
    this.#token = token;
    this.name = `viewer ${this.#url}`;
  }

  async #get(path: string): Promise<Answer> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const allow = (what: string) => {
      clearTimeout(timer);
      timer = setTimeout(
        () => controller.abort(new TimedOut(what)),
        ANSWER_TIMEOUT_MS,
      );
    };
    const seconds = ANSWER_TIMEOUT_MS / 1000;
    allow(`did not answer within ${seconds} s`);
    let res: Response;
    try {
      res = await untraced(() =>
        fetch(`${this.#url}${path}`, {
          headers: this.#token
            ? { authorization: `Bearer ${this.#token}` }
            : {},
          signal: controller.signal,
        }),
      );
    } catch (err) {
      clearTimeout(timer);
      // Busy is not absent: a viewer sending a large trace to another
      // page answers late, and saying it is not running would mislead.
      if (err instanceof TimedOut)
        throw new Error(
          `the threadline viewer at ${this.#url} ${err.message}; it may be busy (sending a large trace, say): try again`,
        );
      throw new Error(
        `no threadline viewer answers at ${this.#url} (${causeOf(err)}); is \`threadline dev\` running?`,
      );
    }
    if (res.status === 401) {
      clearTimeout(timer);
      await res.body?.cancel().catch(() => {});
      throw viewerTokenError(this.name, Boolean(this.#token));
    }
    try {
      const chunks: Uint8Array[] = [];
      allow(`stopped sending its answer for ${seconds} s`);
      if (res.body !== null)
        for await (const chunk of res.body) {
          allow(`stopped sending its answer for ${seconds} s`);
          chunks.push(chunk);
        }
      return {
        status: res.status,
        ok: res.ok,
        contentType: res.headers.get("content-type") ?? "",
        text: Buffer.concat(chunks).toString("utf8"),
      };
    } catch (err) {
      const why =
        err instanceof TimedOut
          ? err.message
          : `broke off its answer (${causeOf(err)})`;
      throw new Error(`the threadline viewer at ${this.#url} ${why}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether a viewer answers at the URL. */
  async reachable(): Promise<boolean> {
    try {
      const res = await untraced(() =>
        fetch(`${this.#url}/api/stats`, {
          signal: AbortSignal.timeout(1000),
          headers: this.#token
            ? { authorization: `Bearer ${this.#token}` }
            : {},
        }),
      );
      return res.status === 200 || res.status === 401;
    } catch {
      return false;
    }
  }

  async search(query: SearchQuery): Promise<TraceSummary[]> {
    const res = await this.#get(
      `/api/search?${paramsFromQuery(query).toString()}`,
    );
    const body = this.#json(res) as {
      traces?: TraceSummary[];
      error?: string;
    };
    if (!res.ok) throw new Error(`${this.name}: ${body.error ?? res.status}`);
    return body.traces ?? [];
  }

  async getTrace(traceId: string): Promise<TraceDetail | undefined> {
    const res = await this.#get(`/api/traces/${encodeURIComponent(traceId)}`);
    if (res.status === 404) return undefined;
    const body = this.#json(res) as TraceDetail & {
      error?: string;
      live?: number;
    };
    if (!res.ok) throw new Error(`${this.name}: ${body.error ?? res.status}`);
    // The live stream's position is the viewer's own: the trace is printed
    // as the store's file gives it.
    delete body.live;
    return body;
  }

  /** The answer as JSON, or an error saying what answered instead (the OTLP port, say). */
  #json(res: Answer): unknown {
    if (/^application\/json\b/.test(res.contentType))
      return JSON.parse(res.text);
    throw new Error(
      `${this.name}: not a threadline viewer (HTTP ${res.status}: ${JSON.stringify(res.text.slice(0, 200))}); the viewer's port is 4320 by default`,
    );
  }

  async close(): Promise<void> {}
}
