// A running `threadline dev`, read through its JSON API: works whether it
// keeps its store in a file or in memory.
import type {
  SearchQuery,
  TraceBackend,
  TraceDetail,
  TraceSummary,
} from "../model.ts";
import { paramsFromQuery } from "../query.ts";

export class ViewerBackend implements TraceBackend {
  readonly name: string;
  readonly #url: string;
  readonly #token: string | undefined;

  constructor(url: string, token?: string) {
    this.#url = url.replace(/\/+$/, "");
    this.#token = token;
    this.name = `viewer ${this.#url}`;
  }

  async #get(path: string): Promise<Response> {
    try {
      return await fetch(`${this.#url}${path}`, {
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      const cause =
        (err as { cause?: { code?: string } }).cause?.code ??
        (err as Error).message;
      throw new Error(
        `no threadline viewer answers at ${this.#url} (${cause}); is \`threadline dev\` running?`,
      );
    }
  }

  /** Whether a viewer answers at the URL. */
  async reachable(): Promise<boolean> {
    try {
      const res = await fetch(`${this.#url}/api/stats`, {
        signal: AbortSignal.timeout(1000),
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
      });
      return res.status === 200 || res.status === 401;
    } catch {
      return false;
    }
  }

  async search(query: SearchQuery): Promise<TraceSummary[]> {
    const res = await this.#get(
      `/api/search?${paramsFromQuery(query).toString()}`,
    );
    const body = (await this.#json(res)) as {
      traces?: TraceSummary[];
      error?: string;
    };
    if (!res.ok) throw new Error(`${this.name}: ${body.error ?? res.status}`);
    return body.traces ?? [];
  }

  async getTrace(traceId: string): Promise<TraceDetail | undefined> {
    const res = await this.#get(`/api/traces/${encodeURIComponent(traceId)}`);
    if (res.status === 404) return undefined;
    const body = (await this.#json(res)) as TraceDetail & { error?: string };
    if (!res.ok) throw new Error(`${this.name}: ${body.error ?? res.status}`);
    return body;
  }

  /** The answer as JSON, or an error saying what answered instead (the OTLP port, say). */
  async #json(res: Response): Promise<unknown> {
    if (/^application\/json\b/.test(res.headers.get("content-type") ?? ""))
      return res.json();
    const text = (await res.text()).slice(0, 200);
    throw new Error(
      `${this.name}: not a threadline viewer (HTTP ${res.status}: ${JSON.stringify(text)}); the viewer's port is 4320 by default`,
    );
  }

  async close(): Promise<void> {}
}
