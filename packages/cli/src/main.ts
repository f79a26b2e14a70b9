// The `threadline` command.
//
//   threadline dev      local OTLP receiver + store + viewer
//   threadline search   find traces (by customer first)
//   threadline trace    print one trace as a tree
//   threadline watch    debug logs and every trace for one customer, for a while
//   threadline unwatch  stop watching a customer
//
// search and trace read a backend: by default the local one (a running
// `threadline dev`, or its store file when none is running).
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { ElasticsearchBackend } from "./backends/elasticsearch-backend.ts";
import { JaegerBackend } from "./backends/jaeger-backend.ts";
import { DEFAULT_LIMIT } from "./backends/remote.ts";
import { ViewerBackend } from "./backends/viewer-backend.ts";
import { DEFAULT_OTLP_PORT, startDevServer } from "./dev-server.ts";
import { formatSearch, formatTrace } from "./format.ts";
import { jsonValue, type SearchQuery, type TraceBackend } from "./model.ts";
import { defaultDbPath, defaultViewerUrl } from "./paths.ts";
import {
  MAX_LIMIT,
  parseAttribute,
  parseDuration,
  parseLimit,
  parseTime,
} from "./query.ts";
import { Store } from "./store.ts";
import {
  FileWatchTarget,
  ViewerWatchTarget,
  formatWatchList,
  type WatchTarget,
} from "./watch.ts";
import {
  MAX_WATCHED,
  MAX_WATCH_MS,
  WATCH_DEBUG,
  isValidCustomerId,
  parseWatchLevel,
  toWatchDocument,
} from "@threadline/core";

// Each command's usage, printed by `threadline <command> --help`; all of
// them together by `threadline help`.
const DEV_USAGE = `  threadline dev [options]
      --host <addr>        listen address (default 127.0.0.1; anything else needs --token)
      --otlp-port <n>      OTLP/HTTP receiver port (default 4318)
      --port <n>           viewer and JSON API port (default 4320)
      --db <file>          store file (default ${defaultDbPath()}; THREADLINE_DB)
      --memory             keep data in memory only
      --max-size <size>    prune oldest data above this size (default 1GB)
      --max-age <dur>      prune data older than this (default 7d)
      --token <t>          require this token (THREADLINE_VIEWER_TOKEN)
`;

const SEARCH_USAGE = `  threadline search [filters] [--json] [--backend <b>]
      --customer <id>      the customer (the main search)
      --service <name>     traces touching this service
      --operation <name>   a span name or HTTP route anywhere in the trace
      --errors             traces with an error
      --min-duration <d>   e.g. 250ms
      --since <d>          e.g. 1h (default: no limit; Jaeger: 30 days)
      --from <time>        from this time: ISO 8601 or epoch milliseconds (wins over --since)
      --to <time>          up to this time: ISO 8601 or epoch milliseconds
      --attr <key=value>   attribute equality, repeatable
      --limit <n>          default 50, at most 1000
      --json               print JSON instead of a table
`;

const TRACE_USAGE = `  threadline trace <trace-id> [--json] [--backend <b>]
      --json               print JSON instead of a tree
`;

const WATCH_USAGE = `  threadline watch <customer> [--for <d>] [--level debug|trace]
      services log at debug (or trace) level and sample every trace for this
      customer until the time is up (default --for 30m, at most 7d); they pick
      the change up within seconds, without a restart
  threadline watch                 list who is watched
  threadline unwatch <customer>
      --viewer <url>       the threadline dev whose list to edit (default ${defaultViewerUrl()}; THREADLINE_VIEWER_URL)
      --file <path>        edit a fleet's watch-list file instead (see the README)
      --json               print the list as JSON
`;

const BACKEND_USAGE = `  --backend local                 a running threadline dev, else its store file (default)
  --backend viewer=<url>          a threadline dev at <url>
  --backend jaeger=<url>          Jaeger v2's query API v3: http://host:16686, or grpc://host:16685;
                                  user:password in the URL, or a bearer token in THREADLINE_JAEGER_TOKEN
  --backend elasticsearch=<url>   Elasticsearch filled by the gateway Collector (ECS); logs too;
                                  user:password in the URL, or an API key in THREADLINE_ELASTICSEARCH_API_KEY
  --db <file>                     with local: read this store file
`;

const HELP = `threadline: follow one customer's requests across services

${DEV_USAGE}
${SEARCH_USAGE}
${TRACE_USAGE}
${WATCH_USAGE}
${BACKEND_USAGE}
  threadline <command> --help     one command's usage
`;

class UsageError extends Error {}

function usage(...sections: string[]): number {
  process.stdout.write(sections.join("\n"));
  return 0;
}

const MIN_STORE_BYTES = 1024 ** 2;

function sizeBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*$/i.exec(text);
  if (m === null)
    throw new UsageError(
      `${JSON.stringify(text)} is not a size like 500MB or 2GB`,
    );
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 }[
    (m[2] ?? "b").toLowerCase() as "b"
  ];
  const bytes = Math.floor(Number(m[1]) * unit);
  // Smaller than its own tables and indexes, a store would be emptied
  // whole at every prune.
  if (bytes < MIN_STORE_BYTES)
    throw new UsageError(`--max-size must be at least 1MB, not ${text}`);
  return bytes;
}

/** Runs the local viewer until a signal; returns -1 while it runs. */
async function dev(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      host: { type: "string" },
      "otlp-port": { type: "string" },
      port: { type: "string" },
      db: { type: "string" },
      memory: { type: "boolean" },
      "max-size": { type: "string" },
      "max-age": { type: "string" },
      token: { type: "string" },
    },
    strict: true,
  });
  if (values.help) return usage(DEV_USAGE);
  const dbPath = values.memory ? ":memory:" : (values.db ?? defaultDbPath());
  if (dbPath !== ":memory:") mkdirSync(dirname(dbPath), { recursive: true });
  const port = (v: string | undefined, d: number) => {
    if (v === undefined) return d;
    // Digits only: Number() reads "" as 0 (any free port) and "0x1f90" as 8080.
    const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
    if (!(n <= 65535))
      throw new UsageError(`${JSON.stringify(v)} is not a port`);
    return n;
  };
  const token = values.token ?? process.env["THREADLINE_VIEWER_TOKEN"];
  const server = await startDevServer({
    host: values.host ?? "127.0.0.1",
    otlpPort: port(values["otlp-port"], DEFAULT_OTLP_PORT),
    viewerPort: port(values.port, 4320),
    dbPath,
    maxBytes: sizeBytes(values["max-size"] ?? "1GB"),
    maxAgeMs: durationWithUnit("--max-age", values["max-age"] ?? "7d", 60_000),
    token,
  });
  // With a token, the viewer is opened through a link that carries it.
  const viewerLink =
    token === undefined
      ? server.viewerUrl
      : `${server.viewerUrl}/?token=${encodeURIComponent(token)}`;
  // Services export to http://localhost:4318 unless told otherwise.
  const otlp = new URL(server.otlpUrl);
  const otlpNote =
    otlp.port === String(DEFAULT_OTLP_PORT) &&
    ["127.0.0.1", "[::1]", "localhost"].includes(otlp.hostname)
      ? "(the SDK's default endpoint)"
      : `(services need OTEL_EXPORTER_OTLP_ENDPOINT=${server.otlpUrl})`;
  process.stdout.write(
    `threadline dev\n  OTLP/HTTP receiver  ${server.otlpUrl}   ${otlpNote}\n  viewer and API      ${viewerLink}\n  store               ${dbPath === ":memory:" ? "in memory" : dbPath}\n`,
  );
  const stop = () => {
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(
          `threadline dev: could not close the store: ${(err as Error).message}\n`,
        );
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return -1;
}

/**
 * A duration option that must name its unit (`30m`, `2h`, `7d`): a bare
 * number is milliseconds to the query options, and `--max-age 30` would
 * empty the store, `--for 30` end a watch before any service read it,
 * `--since 30` search the last 30 ms.
 */
function durationWithUnit(option: string, text: string, minMs: number): number {
  if (!/[a-zµ]\s*$/i.test(text))
    throw new UsageError(
      `${option} ${JSON.stringify(text)} needs a unit, like 30m, 2h or 7d`,
    );
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`);
  }
  if (ms < minMs)
    throw new UsageError(
      `${option} must be at least ${minMs >= 60_000 ? `${minMs / 60_000}m` : `${minMs / 1000}s`}`,
    );
  return ms;
}

async function backendFrom(
  spec: string | undefined,
  db: string | undefined,
): Promise<TraceBackend> {
  const s = spec ?? "local";
  if (s === "local") {
    if (db !== undefined) return openStore(db);
    const viewer = new ViewerBackend(
      defaultViewerUrl(),
      process.env["THREADLINE_VIEWER_TOKEN"],
    );
    if (await viewer.reachable()) return viewer;
    return openStore(defaultDbPath());
  }
  const eq = s.indexOf("=");
  const kind = eq === -1 ? s : s.slice(0, eq);
  const url = eq === -1 ? "" : s.slice(eq + 1);
  if (kind === "viewer") {
    if (!url)
      throw new UsageError(
        "--backend viewer=<url>, e.g. viewer=http://127.0.0.1:4320",
      );
    return new ViewerBackend(url, process.env["THREADLINE_VIEWER_TOKEN"]);
  }
  try {
    if (kind === "jaeger") {
      if (!url)
        throw new UsageError(
          "--backend jaeger=<url>, e.g. jaeger=http://127.0.0.1:16686 or jaeger=grpc://127.0.0.1:16685",
        );
      return new JaegerBackend(url);
    }
    if (kind === "elasticsearch") {
      if (!url)
        throw new UsageError(
          "--backend elasticsearch=<url>, e.g. elasticsearch=http://127.0.0.1:9200",
        );
      return new ElasticsearchBackend(url);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
  throw new UsageError(
    `unknown backend ${JSON.stringify(kind)}: use local, viewer=<url>, jaeger=<url> or elasticsearch=<url>`,
  );
}

function openStore(path: string): TraceBackend {
  if (!existsSync(path)) {
    throw new UsageError(
      `no local store at ${path}: start one with \`npx threadline dev\` (or pass --db / --backend)`,
    );
  }
  try {
    return new Store({ path, readonly: true });
  } catch (err) {
    throw new Error(
      `${path} is not a readable threadline store: ${(err as Error).message}`,
    );
  }
}

async function search(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      customer: { type: "string" },
      service: { type: "string" },
      operation: { type: "string" },
      errors: { type: "boolean" },
      "min-duration": { type: "string" },
      since: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      attr: { type: "string", multiple: true },
      limit: { type: "string" },
      json: { type: "boolean" },
      backend: { type: "string" },
      db: { type: "string" },
    },
    strict: true,
  });
  if (values.help) return usage(SEARCH_USAGE, BACKEND_USAGE);
  // An empty value is a mistake (an unset shell variable, say), not a
  // search for everything: refused, as a missing value is.
  const given = (option: string, value: string | undefined) => {
    if (value?.trim() === "") throw new UsageError(`${option} needs a value`);
    return value;
  };
  const q: SearchQuery = {
    customer: given("--customer", values.customer),
    service: given("--service", values.service),
    operation: given("--operation", values.operation),
    errorsOnly: values.errors === true,
  };
  const minDuration = given("--min-duration", values["min-duration"]);
  const since = given("--since", values.since);
  const from = given("--from", values.from);
  const to = given("--to", values.to);
  const limit = given("--limit", values.limit);
  if (minDuration !== undefined)
    q.minDurationUs = durationWithUnit("--min-duration", minDuration, 0) * 1000;
  if (since !== undefined)
    q.fromUs = (Date.now() - durationWithUnit("--since", since, 0)) * 1000;
  try {
    if (from !== undefined) q.fromUs = parseTime(from);
    if (to !== undefined) q.toUs = parseTime(to);
    if (values.attr) q.attributes = values.attr.map(parseAttribute);
    if (limit !== undefined) q.limit = parseLimit(limit, "--limit");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const backend = await backendFrom(values.backend, values.db);
  try {
    const traces = await backend.search(q);
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ backend: backend.name, traces }, null, 2)}\n`
        : formatSearch(traces),
    );
    for (const note of backend.notes ?? []) process.stderr.write(`${note}\n`);
    // A full page may not be all: said, on stderr, so the table stays one.
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (traces.length >= limit)
      process.stderr.write(
        `the newest ${limit} shown; more may match (narrow the search, or --limit up to ${MAX_LIMIT})\n`,
      );
    return 0;
  } finally {
    await backend.close();
  }
}

async function trace(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      json: { type: "boolean" },
      backend: { type: "string" },
      db: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return usage(TRACE_USAGE, BACKEND_USAGE);
  const id = positionals[0]?.toLowerCase();
  if (id === undefined || !/^[0-9a-f]{32}$/.test(id))
    throw new UsageError(
      "threadline trace <trace-id>: a trace id is 32 hex characters",
    );
  const backend = await backendFrom(values.backend, values.db);
  try {
    const t = await backend.getTrace(id);
    if (t === undefined) {
      process.stderr.write(`trace ${id} not found in ${backend.name}\n`);
      return 1;
    }
    process.stdout.write(
      values.json ? `${JSON.stringify(t, jsonValue, 2)}\n` : formatTrace(t),
    );
    return 0;
  } finally {
    await backend.close();
  }
}

function watchTarget(values: { viewer?: string; file?: string }): WatchTarget {
  if (values.viewer !== undefined && values.file !== undefined)
    throw new UsageError("pass --viewer or --file, not both");
  if (values.file !== undefined) return new FileWatchTarget(values.file);
  return new ViewerWatchTarget(
    values.viewer ?? defaultViewerUrl(),
    process.env["THREADLINE_VIEWER_TOKEN"],
  );
}

async function watch(argv: string[], stop: boolean): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      for: { type: "string" },
      level: { type: "string" },
      viewer: { type: "string" },
      file: { type: "string" },
      json: { type: "boolean" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return usage(WATCH_USAGE);
  if (positionals.length > 1)
    throw new UsageError(
      `one customer at a time: ${positionals.slice(1).join(" ")} left over`,
    );
  if (stop && (values.for !== undefined || values.level !== undefined))
    throw new UsageError(
      "threadline unwatch takes no --for or --level: it ends the customer's watch, whatever its end and level",
    );
  const target = watchTarget(values);
  const customer = positionals[0];
  const print = (entries: Parameters<typeof formatWatchList>[0]) => {
    process.stdout.write(
      values.json
        ? // As the watch-list document spells them: ISO times, level names.
          `${JSON.stringify({ target: target.name, ...toWatchDocument(entries) }, null, 2)}\n`
        : formatWatchList(entries),
    );
    // A file can (written while some entries had expired, or by hand);
    // nothing else would tell that no service applies it.
    if (entries.length > MAX_WATCHED)
      process.stderr.write(
        `threadline: ${target.name} names ${entries.length} customers, more than the ${MAX_WATCHED} watched at once: services refuse it and keep their last good list until unwatching or expiries bring it within the limit\n`,
      );
  };
  if (customer === undefined) {
    if (stop) throw new UsageError("threadline unwatch <customer>");
    print(await target.list());
    return 0;
  }
  if (!isValidCustomerId(customer))
    throw new UsageError(
      `${JSON.stringify(customer)} is not a customer id (printable ASCII without spaces, commas, semicolons, quotes or backslashes, at most 128)`,
    );
  if (stop) {
    const rest = await target.unwatch(customer);
    if (rest === undefined) {
      process.stderr.write(`${customer} was not watched (${target.name})\n`);
      return 1;
    }
    if (!values.json) process.stdout.write(`stopped watching ${customer}\n`);
    print(rest);
    return 0;
  }
  const forMs = durationWithUnit("--for", values.for ?? "30m", 1000);
  if (forMs > MAX_WATCH_MS)
    throw new UsageError("--for must be at least 1s and at most 7d");
  const level =
    values.level === undefined ? WATCH_DEBUG : parseWatchLevel(values.level);
  if (level === undefined)
    throw new UsageError("--level must be debug or trace");
  const entries = await target.watch(customer, forMs, level);
  if (!values.json)
    process.stdout.write(
      `watching ${customer} (${target.name}): ${values.level ?? "debug"} logs and every trace, services pick it up within seconds\n`,
    );
  print(entries);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "dev":
        return await dev(rest);
      case "search":
        return await search(rest);
      case "trace":
        return await trace(rest);
      case "watch":
        return await watch(rest, false);
      case "unwatch":
        return await watch(rest, true);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const usage =
      err instanceof UsageError ||
      (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"));
    process.stderr.write(
      `threadline: ${(err as Error).message}\n${usage ? "run `threadline help` for usage\n" : ""}`,
    );
    return usage ? 2 : 1;
  }
}
