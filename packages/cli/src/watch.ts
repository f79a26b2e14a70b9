// `threadline watch` / `threadline unwatch`: edit a watch list, either the
// one a running `threadline dev` serves to local services, or a fleet's
// watch-list file (served to services over HTTP or read as a file).
import { randomBytes } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import {
  MAX_WATCHED,
  formatWatchDocument,
  parseWatchDocument,
  watchLevelName,
  type WatchEntry,
  type WatchLevel,
} from "@threadline/core";

/** Where a watch list lives. */
export interface WatchTarget {
  readonly name: string;
  list(): Promise<WatchEntry[]>;
  watch(
    customer: string,
    forMs: number,
    level: WatchLevel,
  ): Promise<WatchEntry[]>;
  /** Resolves to undefined when the customer was not watched. */
  unwatch(customer: string): Promise<WatchEntry[] | undefined>;
}

function entriesOf(text: string, where: string): WatchEntry[] {
  const doc = parseWatchDocument(text);
  if (!doc.ok)
    throw new Error(`the watch list at ${where} is not valid: ${doc.problem}`);
  return doc.entries;
}

/** The watch list of a running `threadline dev`, through its API. */
export class ViewerWatchTarget implements WatchTarget {
  readonly name: string;
  readonly #url: string;
  readonly #headers: Record<string, string>;

  constructor(url: string, token?: string) {
    this.#url = url.replace(/\/+$/, "");
    this.name = `viewer ${this.#url}`;
    this.#headers = token ? { authorization: `Bearer ${token}` } : {};
  }

  async #call(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${this.#url}${path}`, {
        ...init,
        headers: {
          ...this.#headers,
          ...(init.headers as Record<string, string>),
        },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      const cause =
        (err as { cause?: { code?: string } }).cause?.code ??
        (err as Error).message;
      throw new Error(
        `no threadline viewer answers at ${this.#url} (${cause}); start one with \`npx threadline dev\`, or pass --file for a fleet's watch-list file`,
      );
    }
  }

  async #entries(res: Response): Promise<WatchEntry[]> {
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // not JSON: the text as it is
      }
      throw new Error(`${this.name}: ${message || res.status}`);
    }
    return entriesOf(text, this.name);
  }

  async list(): Promise<WatchEntry[]> {
    return this.#entries(await this.#call("/api/watch"));
  }

  async watch(
    customer: string,
    forMs: number,
    level: WatchLevel,
  ): Promise<WatchEntry[]> {
    return this.#entries(
      await this.#call("/api/watch", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ customer, forMs, level: watchLevelName(level) }),
      }),
    );
  }

  async unwatch(customer: string): Promise<WatchEntry[] | undefined> {
    const res = await this.#call(
      `/api/watch?customer=${encodeURIComponent(customer)}`,
      { method: "DELETE" },
    );
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    return this.#entries(res);
  }
}

/**
 * A watch-list file: what a fleet serves to its services (any static HTTP
 * server) or mounts next to them. Written whole, through a rename, so a
 * service never reads half a file.
 */
export class FileWatchTarget implements WatchTarget {
  readonly name: string;
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
    this.name = `file ${path}`;
  }

  async list(): Promise<WatchEntry[]> {
    let text: string;
    try {
      text = await readFile(this.#path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return entriesOf(text, this.#path);
  }

  async #write(entries: WatchEntry[]): Promise<void> {
    const tmp = `${this.#path}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, formatWatchDocument(entries));
    await rename(tmp, this.#path);
  }

  async watch(
    customer: string,
    forMs: number,
    level: WatchLevel,
  ): Promise<WatchEntry[]> {
    const others = (await this.list()).filter((e) => e.customer !== customer);
    if (others.length >= MAX_WATCHED)
      throw new Error(
        `${MAX_WATCHED} customers are watched already; unwatch one first`,
      );
    const entries = [
      ...others,
      { customer, until: Date.now() + forMs, level },
    ].sort((a, b) => a.until - b.until);
    await this.#write(entries);
    return entries;
  }

  async unwatch(customer: string): Promise<WatchEntry[] | undefined> {
    const entries = await this.list();
    const rest = entries.filter((e) => e.customer !== customer);
    if (rest.length === entries.length) return undefined;
    await this.#write(rest);
    return rest;
  }
}

function minutesLeft(until: number): string {
  const s = Math.max(0, Math.round((until - Date.now()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** The list as a table, one customer per line. */
export function formatWatchList(entries: readonly WatchEntry[]): string {
  if (entries.length === 0) return "nobody is watched\n";
  const rows = entries.map((e) => [
    e.customer,
    watchLevelName(e.level),
    new Date(e.until).toISOString().replace("T", " ").slice(0, 19),
    minutesLeft(e.until),
  ]);
  const head = ["CUSTOMER", "LOGS", "UNTIL (UTC)", "LEFT"];
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i]!.length)),
  );
  return `${[head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}
