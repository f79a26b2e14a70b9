// `threadline watch` / `threadline unwatch`: edit a watch list, either the
// one a running `threadline dev` serves to local services, or a fleet's
// watch-list file (served to services over HTTP or read as a file).
import { randomBytes } from "node:crypto";
import type { BigIntStats, Stats } from "node:fs";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import {
  chmod,
  chown,
  lstat,
  readFile,
  readlink,
  realpath,
  rename,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import {
  MAX_WATCHED,
  parseWatchDocument,
  toWatchDocument,
  watchLevelName,
  type WatchEntry,
  type WatchLevel,
  untraced,
  withoutBom,
} from "@threadline/core";
import { causeOf, viewerTokenError } from "./backends/remote.ts";

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

function entriesOf(
  text: string,
  where: string,
  countLimit = true,
): WatchEntry[] {
  const doc = parseWatchDocument(text, Date.now(), { countLimit });
  if (!doc.ok)
    throw new Error(`the watch list at ${where} is not valid: ${doc.problem}`);
  return doc.entries;
}

/** The watch list of a running `threadline dev`, through its API. */
export class ViewerWatchTarget implements WatchTarget {
  readonly name: string;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #token: boolean;

  constructor(url: string, token?: string) {
    this.#url = url.replace(/\/+$/, "");
    this.name = `viewer ${this.#url}`;
    this.#token = Boolean(token);
    this.#headers = token ? { authorization: `Bearer ${token}` } : {};
  }

  async #call(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await untraced(() =>
        fetch(`${this.#url}${path}`, {
          ...init,
          headers: {
            ...this.#headers,
            ...(init.headers as Record<string, string>),
          },
          signal: AbortSignal.timeout(10_000),
        }),
      );
    } catch (err) {
      throw new Error(
        `no threadline viewer answers at ${this.#url} (${causeOf(err)}); start one with \`npx threadline dev\`, or pass --file for a fleet's watch-list file`,
      );
    }
  }

  async #entries(res: Response): Promise<WatchEntry[]> {
    const text = await res.text();
    if (res.status === 401) throw viewerTokenError(this.name, this.#token);
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
 * The file `path` names, through any links. One not there yet is made
 * where its link points, if it is one, keeping the link.
 */
async function fileOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  let at = path;
  for (let links = 0; links < 40; links++) {
    let to: string;
    try {
      to = await readlink(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Not a link (EINVAL), or nothing there: the file to make.
      if (code === "EINVAL" || code === "ENOENT") return at;
      throw err;
    }
    // Relative to the link's directory as the system finds it, `..`
    // included.
    at = resolve(await realpath(dirname(at)), to);
  }
  throw new Error(`${path}: too many levels of links`);
}

/** How long an edit of a watch-list file waits for others to finish with it, ms. */
const LOCK_WAIT_MS = 10_000;
/**
 * A lock older than this was left by an edit that was killed: an edit holds
 * it for the few milliseconds of a read and a write, seconds on a slow
 * network filesystem. Well past LOCK_WAIT_MS, so that an edit still running
 * has its lock waited for, and the one waiting gives up saying so, rather
 * than taking the lock from under it. Ms.
 */
const LOCK_STALE_MS = 30_000;

/**
 * Takes the lock file `lock`, made only if absent (O_EXCL), so that one
 * edit at a time reads and rewrites the list: each writes the file whole,
 * and one made between another's read and write would be lost. Waits for
 * others' edits to finish, up to LOCK_WAIT_MS. Resolves to what the lock
 * holds, a token no other edit's lock holds (threads share a pid).
 */
async function takeLock(lock: string): Promise<string> {
  const token = `${process.pid} ${hostname()} ${randomBytes(8).toString("hex")}\n`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await writeFile(lock, token, { flag: "wx" });
      return token;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    // The lock's own age, not that of what it may point to: a link left
    // dangling would otherwise have no age, and be neither waited for nor
    // taken over. Released in between (ENOENT): tried again below.
    const seen = await lstat(lock, { bigint: true }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    });
    if (seen && Date.now() - Number(seen.mtimeMs) > LOCK_STALE_MS)
      await removeStale(lock, seen);
    // Every way round goes through the deadline and a pause, so that no
    // lock the edit cannot take has it spin.
    if (Date.now() >= deadline)
      throw new Error(
        `${lock} was held by another edit of the watch list for the ${LOCK_WAIT_MS / 1000}s this one waited; try again, or remove ${lock} if no threadline watch or unwatch is running (a lock is taken over by itself once ${LOCK_STALE_MS / 1000}s old)`,
      );
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
  }
}

/**
 * Removes the lock `seen` at `lock`, stale, unless it is gone already. Edits
 * finding it stale at once each saw it at a different moment: one that
 * removed it and took a new lock would have that removed in turn by another
 * whose look came first. So one edit per stale lock removes it, the one
 * that makes a claim file named after that lock (O_EXCL), and only after
 * looking again, claim in hand, that the lock there is still that one:
 * nothing else removes it then (its own edit was killed), so the one it
 * removes is the one it saw. Later claimants find it gone. An edit killed
 * while it holds the claim, for a moment, leaves the stale lock (and the
 * claim, named after it alone) to be removed by hand, as the waiting edits'
 * error says.
 */
async function removeStale(lock: string, seen: BigIntStats): Promise<void> {
  const claim = `${lock}.${seen.ino}-${seen.mtimeNs}.stale`;
  try {
    await writeFile(claim, "", { flag: "wx" });
  } catch (err) {
    // Another edit is removing it.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  try {
    const now = await lstat(lock, { bigint: true }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    });
    if (
      now &&
      now.dev === seen.dev &&
      now.ino === seen.ino &&
      now.mtimeNs === seen.mtimeNs
    )
      await unlink(lock).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      });
  } finally {
    await unlink(claim).catch(() => {});
  }
}

/**
 * Removes the lock `lock` if it is still this edit's, holding `token`: one
 * held up past LOCK_STALE_MS may have had it taken over, and the lock there
 * now is another edit's.
 */
async function releaseLock(lock: string, token: string): Promise<void> {
  const held = await readFile(lock, "utf8").catch(() => undefined);
  if (held === token) await unlink(lock).catch(() => {});
}

/** A watch-list file as read: its entries, and its text while there is one. */
interface FileRead {
  file: string;
  entries: WatchEntry[];
  text?: string;
}

/**
 * A watch-list file: what a fleet serves to its services (any static HTTP
 * server) or mounts next to them, reached through any links. Written
 * whole, through a rename, so a service never reads half a file, with the
 * owner, group and permissions it had (it names customers, and may be kept
 * from other users) and the fields services do not read (notes, an entry's
 * ticket) kept as they were. An edit holds a lock file next to it
 * (`<file>.lock`) from its read to its write.
 */
export class FileWatchTarget implements WatchTarget {
  readonly name: string;
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
    this.name = `file ${path}`;
  }

  /**
   * The entries of `file` (the one the path names, through any links), and
   * its text (undefined while there is no file).
   */
  async #readFile(file: string): Promise<FileRead> {
    let text: string;
    try {
      // Written back without the byte order mark: JSON needs none.
      text = withoutBom(await readFile(file, "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        return { file, entries: [] };
      throw err;
    }
    // Over the limit too: unwatching is what brings such a file back
    // within it, and watch() adds nobody past it.
    return { file, entries: entriesOf(text, this.#path, false), text };
  }

  async list(): Promise<WatchEntry[]> {
    return (await this.#readFile(await fileOf(this.#path))).entries;
  }

  /** Reads the file and has `edit` change it, holding its lock. */
  async #edit<T>(edit: (read: FileRead) => Promise<T>): Promise<T> {
    const file = await fileOf(this.#path);
    const lock = `${file}.lock`;
    const token = await takeLock(lock).catch((err: unknown) => {
      // The lock is made next to the file: its directory is not there.
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw new Error(
          `cannot edit the watch list ${file}: its directory ${dirname(file)} does not exist`,
        );
      throw err;
    });
    try {
      return await edit(await this.#readFile(file));
    } finally {
      await releaseLock(lock, token);
    }
  }

  /** Writes `entries` over `file`, which read as `text`. */
  async #write(
    file: string,
    entries: WatchEntry[],
    text: string | undefined,
  ): Promise<void> {
    const fresh = toWatchDocument(entries);
    let doc: Record<string, unknown> = fresh;
    if (text !== undefined) {
      // Valid, or entriesOf would have refused it.
      const was = JSON.parse(text) as Record<string, unknown> & {
        watch: Array<Record<string, unknown>>;
      };
      const fields = new Map<unknown, Record<string, unknown>>();
      for (const e of was.watch)
        if (!fields.has(e["customer"])) fields.set(e["customer"], e);
      doc = {
        ...was,
        watch: fresh.watch.map((e) => ({ ...fields.get(e.customer), ...e })),
      };
    }
    let was: Stats | undefined;
    try {
      was = await stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const mode = was === undefined ? 0o666 : was.mode & 0o7777;
    // Next to the file, not the link to it, which the rename would replace.
    const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, `${JSON.stringify(doc, null, 2)}\n`, {
      flag: "wx",
      mode,
    });
    try {
      if (was !== undefined) {
        // Services may read the file as its owner or through its group, so
        // the new one gets the old one's (only when it differs: some
        // filesystems refuse any chown).
        const made = await stat(tmp);
        if (made.uid !== was.uid || made.gid !== was.gid)
          await chown(tmp, was.uid, was.gid).catch((err: unknown) => {
            if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
            throw new Error(
              `${file} is owned by uid ${was.uid} and gid ${was.gid}, which this user (uid ${made.uid}, gid ${made.gid}) cannot give the rewritten file, and services reading it as its owner or through its group would have kept their old list; it was left as it was: edit it as its owner or as root`,
            );
          });
        // After chown, which may clear set-id bits; and the umask may have
        // taken bits the file had.
        await chmod(tmp, mode);
      }
      // Not over a file that changed since it was read: by hand, or by an
      // edit the lock did not keep out (one held up past LOCK_STALE_MS, or
      // whose lock file was removed by hand).
      const now = await readFile(file, "utf8").then(
        withoutBom,
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
          return undefined;
        },
      );
      if (now !== text)
        throw new Error(
          `${file} changed while this edit was being made, and was left as it was: try again`,
        );
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async watch(
    customer: string,
    forMs: number,
    level: WatchLevel,
  ): Promise<WatchEntry[]> {
    return this.#edit(async ({ file, entries: all, text }) => {
      const others = all.filter((e) => e.customer !== customer);
      if (others.length >= MAX_WATCHED)
        throw new Error(
          `${MAX_WATCHED} customers are watched already; unwatch one first`,
        );
      const entries = [
        ...others,
        { customer, until: Date.now() + forMs, level },
      ].sort((a, b) => a.until - b.until);
      await this.#write(file, entries, text);
      return entries;
    });
  }

  async unwatch(customer: string): Promise<WatchEntry[] | undefined> {
    return this.#edit(async ({ file, entries, text }) => {
      const rest = entries.filter((e) => e.customer !== customer);
      if (rest.length === entries.length) return undefined;
      await this.#write(file, rest, text);
      return rest;
    });
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
