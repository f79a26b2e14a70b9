// Installs Elasticsearch's minimal "integ-test-zip" distribution from Maven
// Central (through `mvn dependency:copy`) into the per-user cache, and starts
// throw-away single-node clusters on loopback for tests and local runs.
//
//   node scripts/backends/elasticsearch.mjs                install if needed, print ES_HOME
//   node scripts/backends/elasticsearch.mjs start [--port 9200] [--keep]
//                                                           run a node until Ctrl-C
//   node scripts/backends/elasticsearch.mjs lacks [--port 9200]
//                                                           probe a fresh node for missing features
//
// Importable: ensureElasticsearch(), startElasticsearch({ port }),
// installIndexTemplates(url), probeMissingFeatures(url).
//
// What this distribution is: the server with only the apm, transport-netty4,
// x-pack-core and x-pack-security modules and no bundled JDK. It runs on the
// system Java 17. What it lacks, and how Threadline copes, is in
// collector-config/README.md; probeMissingFeatures() checks it live.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import {
  cacheRoot,
  isMain,
  log,
  readStamp,
  run,
  startProcess,
  waitFor,
  which,
  writeStamp,
} from "./common.mjs";

// 8.19.x is the last line that runs on Java 17 (9.x needs 21) and the newest
// integ-test-zip published for it; 8.12+ is what the Collector's
// elasticsearch exporter needs for `require_data_stream`.
export const ES_VERSION = "8.19.21";
export const ES_ARTIFACT = `org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ES_VERSION}:zip`;
const MIN_JAVA = 17;
// Elasticsearch refuses to run as root; when we are root the node runs as
// this system user, created on first use.
export const ES_USER = "threadline-es";

/** Downloads and unpacks the distribution if needed; returns ES_HOME. */
export function ensureElasticsearch() {
  const root = join(cacheRoot(), "elasticsearch");
  const home = join(root, `elasticsearch-${ES_VERSION}`);
  const stamp = readStamp(root);
  if (
    stamp?.version === ES_VERSION &&
    existsSync(join(home, "bin", "elasticsearch"))
  ) {
    return home;
  }
  const mvn = which("mvn");
  if (!mvn)
    throw new Error("Maven (mvn) is required to download Elasticsearch");
  mkdirSync(root, { recursive: true });
  const downloads = join(root, "downloads");
  log(`downloading ${ES_ARTIFACT} with Maven`);
  const dl = run(mvn, [
    "-q",
    "-B",
    "dependency:copy",
    `-Dartifact=${ES_ARTIFACT}`,
    `-DoutputDirectory=${downloads}`,
  ]);
  const zip = join(downloads, `elasticsearch-${ES_VERSION}.zip`);
  if (!existsSync(zip)) throw new Error(`Maven finished but ${zip} is missing`);
  log(`downloaded in ${dl.seconds.toFixed(1)} s; unpacking`);
  const staging = mkdtempSync(join(root, "unpack-"));
  unzip(zip, staging);
  rmSync(home, { recursive: true, force: true });
  renameSync(join(staging, `elasticsearch-${ES_VERSION}`), home);
  rmSync(staging, { recursive: true, force: true });
  // Unpackers other than unzip(1) drop the executable bits.
  for (const f of readdirSync(join(home, "bin")))
    chmodSync(join(home, "bin", f), 0o755);
  rmSync(zip);
  writeStamp(root, {
    version: ES_VERSION,
    artifact: ES_ARTIFACT,
    downloadSeconds: dl.seconds,
  });
  return home;
}

function unzip(zip, dest) {
  if (which("unzip")) return run("unzip", ["-q", zip, "-d", dest]);
  if (which("jar")) return run("jar", ["xf", zip], { cwd: dest });
  const py = which("python3");
  if (py) return run(py, ["-m", "zipfile", "-e", zip, dest]);
  throw new Error("need unzip, jar or python3 to unpack the Elasticsearch zip");
}

/** JAVA_HOME of a Java >= 17: $ES_JAVA_HOME, $JAVA_HOME, or `java` on PATH. */
export function findJavaHome() {
  const candidates = [process.env.ES_JAVA_HOME, process.env.JAVA_HOME];
  const onPath = which("java");
  if (onPath) candidates.push(dirname(dirname(realpathSync(onPath))));
  for (const home of candidates.filter(Boolean)) {
    const java = join(home, "bin", "java");
    if (!existsSync(java)) continue;
    const r = spawnSync(java, ["-XshowSettings:properties", "-version"], {
      encoding: "utf8",
    });
    const m = /java\.specification\.version = (\d+)/.exec(r.stderr ?? "");
    if (m && Number(m[1]) >= MIN_JAVA) return home;
  }
  throw new Error(
    `Elasticsearch ${ES_VERSION} needs Java ${MIN_JAVA}+ (set ES_JAVA_HOME)`,
  );
}

function isRoot() {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function ensureEsUser() {
  if (spawnSync("id", ["-u", ES_USER]).status === 0) return;
  log(`creating system user ${ES_USER} to run Elasticsearch (it refuses root)`);
  run("useradd", [
    "--system",
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin",
    ES_USER,
  ]);
}

/**
 * The cache sits in root's home, which other users cannot enter, so when
 * running as root the node runs from a world-readable copy in the temp dir
 * (made once per version).
 */
function runnableHome(home) {
  if (!isRoot()) return home;
  const shared = join(tmpdir(), `threadline-elasticsearch-${ES_VERSION}`);
  if (readStamp(shared)?.version !== ES_VERSION) {
    rmSync(shared, { recursive: true, force: true });
    cpSync(home, shared, { recursive: true });
    chmodSync(shared, 0o755);
    writeStamp(shared, { version: ES_VERSION });
  }
  return shared;
}

/**
 * Starts a single-node cluster on 127.0.0.1 with security off and a
 * throw-away data directory. Resolves to { url, stop, dataDir, pid, output }
 * once the cluster is at least yellow. `stop()` ends the node and removes its
 * directory unless `keep` is set.
 */
export async function startElasticsearch({
  port = 9200,
  heap = "512m",
  keep = false,
  templates = true,
  timeoutMs = 120_000,
} = {}) {
  const home = runnableHome(ensureElasticsearch());
  const javaHome = findJavaHome();
  const work = mkdtempSync(join(tmpdir(), "threadline-es-"));
  const conf = join(work, "config");
  // The node writes its keystore into the config directory, so each node
  // gets its own copy instead of touching the shared installation.
  cpSync(join(home, "config"), conf, { recursive: true });
  for (const d of ["data", "logs", "tmp"]) mkdirSync(join(work, d));
  if (isRoot()) {
    ensureEsUser();
    chmodSync(work, 0o755);
    run("chown", ["-R", ES_USER, work]);
  }
  const settings = {
    "cluster.name": `threadline-${port}`,
    "node.name": `threadline-${port}`,
    "discovery.type": "single-node",
    "network.host": "127.0.0.1",
    "http.port": String(port),
    // A range, so two nodes started side by side do not collide.
    "transport.port": "19300-19399",
    "path.data": join(work, "data"),
    "path.logs": join(work, "logs"),
    "xpack.security.enabled": "false",
    // A throw-away node on a busy disk must not turn read-only.
    "cluster.routing.allocation.disk.threshold_enabled": "false",
  };
  const args = Object.entries(settings).flatMap(([k, v]) => [
    "-E",
    `${k}=${v}`,
  ]);
  const env = {
    ...process.env,
    ES_JAVA_HOME: javaHome,
    ES_PATH_CONF: conf,
    ES_TMPDIR: join(work, "tmp"),
    ES_JAVA_OPTS: `-Xms${heap} -Xmx${heap}`,
    // The launcher's own JVM, whose check of the node's JVM flags leaves a
    // directory in the temporary one each start: in `work`, it goes with it.
    CLI_JAVA_OPTS: `-Djava.io.tmpdir=${join(work, "tmp")}`,
  };
  const launcher = join(home, "bin", "elasticsearch");
  const [cmd, cmdArgs] = isRoot()
    ? ["runuser", ["-u", ES_USER, "--", launcher, ...args]]
    : [launcher, args];
  const started = Date.now();
  const proc = startProcess(cmd, cmdArgs, {
    env,
    cwd: work,
    logFile: join(work, "console.log"),
    name: "elasticsearch",
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await proc.stop();
    if (!keep) rmSync(work, { recursive: true, force: true });
  };
  try {
    await waitFor(
      `Elasticsearch on ${url}`,
      async () => {
        const r = await fetch(
          `${url}/_cluster/health?wait_for_status=yellow&timeout=1s`,
        );
        return r.ok && (await r.json()).status !== "red";
      },
      { child: proc.child, timeoutMs },
    );
  } catch (e) {
    const out = proc.output().slice(-4000);
    await stop();
    throw new Error(`${e.message}\n${out}`);
  }
  log(
    `Elasticsearch ${ES_VERSION} up on ${url} in ${((Date.now() - started) / 1000).toFixed(1)} s (data in ${work})`,
  );
  if (templates) await installIndexTemplates(url);
  return { url, stop, dataDir: work, pid: proc.pid, output: proc.output };
}

async function esRequest(url, method, path, body) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json };
}

/**
 * Data-stream templates for the Collector's ECS documents. A full
 * Elasticsearch ships built-in `logs-*-*` / `traces-*-*` templates (x-pack
 * stack); this distribution has none, and the exporter writes with
 * `require_data_stream`, so without a template every write fails. Priority 50
 * keeps the built-ins (priority 100) in charge wherever they exist.
 *
 * Every service's attributes are top-level fields of one data stream, so
 * one service's `user` (a value) meets another's `user.id` (which makes
 * `user` an object), or `order.id` first a number then `"ord-17"`, and
 * Elasticsearch refuses the later document. `subobjects: false` keeps
 * dotted names flat, so `user` and `user.id` are two fields; with
 * `ignore_malformed` a value that does not parse as its field's type is
 * kept in `_source`, unindexed, instead of failing the document (the
 * built-in `logs@settings` does the same).
 */
export async function installIndexTemplates(url) {
  const mappings = {
    subobjects: false,
    dynamic_templates: [
      { message_as_text: { path_match: "message", mapping: { type: "text" } } },
      // Ids, names and labels are matched exactly (trace.id, customer.id...).
      {
        strings_as_keyword: {
          match_mapping_type: "string",
          mapping: { type: "keyword", ignore_above: 1024 },
        },
      },
    ],
    properties: {
      "@timestamp": { type: "date_nanos" },
      "trace.id": { type: "keyword" },
      "span.id": { type: "keyword" },
      "span.name": { type: "keyword" },
      "service.name": { type: "keyword" },
      "customer.id": { type: "keyword" },
    },
  };
  for (const [name, pattern] of [
    ["threadline-logs", "logs-*-*"],
    ["threadline-traces", "traces-*-*"],
  ]) {
    const r = await esRequest(url, "PUT", `/_index_template/${name}`, {
      index_patterns: [pattern],
      priority: 50,
      data_stream: {},
      template: {
        settings: {
          number_of_shards: 1,
          number_of_replicas: 0,
          "mapping.ignore_malformed": true,
        },
        mappings,
      },
      _meta: { managed_by: "threadline" },
    });
    if (r.status !== 200) {
      throw new Error(
        `PUT _index_template/${name}: ${r.status} ${JSON.stringify(r.body)}`,
      );
    }
  }
}

/**
 * Asks a running node for the features Threadline (or Jaeger, or the
 * Collector) might reach for; returns [{ feature, available, detail }].
 */
export async function probeMissingFeatures(url) {
  const probes = [
    ["GET / (cluster info; clients' version sniffing)", "GET", "/"],
    ["HEAD / (ping; health checks)", "HEAD", "/"],
    ["_data_stream API", "GET", "/_data_stream"],
    [
      "composable index templates",
      "PUT",
      "/_index_template/threadline-probe",
      { index_patterns: ["threadline-probe-*"], priority: 1 },
    ],
    [
      "component templates",
      "PUT",
      "/_component_template/threadline-probe",
      { template: { settings: { number_of_replicas: 0 } } },
    ],
    [
      "ILM (_ilm/policy)",
      "PUT",
      "/_ilm/policy/threadline-probe",
      { policy: { phases: { hot: { actions: {} } } } },
    ],
    [
      "ingest processors (ingest-common)",
      "PUT",
      "/_ingest/pipeline/threadline-probe",
      { processors: [{ set: { field: "a", value: "b" } }] },
    ],
    [
      "painless scripting",
      "POST",
      "/_scripts/painless/_execute",
      { script: { source: "1 + 1", lang: "painless" } },
    ],
    [
      "_reindex",
      "POST",
      "/_reindex",
      {
        source: { index: "threadline-probe-a" },
        dest: { index: "threadline-probe-b" },
      },
    ],
    [
      "_delete_by_query",
      "POST",
      "/threadline-probe-x/_delete_by_query",
      { query: { match_none: {} } },
    ],
    [
      "keyword, date_nanos, nested, flattened",
      "PUT",
      "/threadline-probe-core",
      {
        mappings: {
          properties: {
            a: { type: "keyword" },
            b: { type: "date_nanos" },
            c: { type: "nested" },
            d: { type: "flattened" },
          },
        },
      },
    ],
    [
      "match_only_text (mapper-extras)",
      "PUT",
      "/threadline-probe-mot",
      { mappings: { properties: { a: { type: "match_only_text" } } } },
    ],
    [
      "scaled_float (mapper-extras)",
      "PUT",
      "/threadline-probe-sf",
      {
        mappings: {
          properties: { a: { type: "scaled_float", scaling_factor: 10 } },
        },
      },
    ],
    [
      "constant_keyword (x-pack)",
      "PUT",
      "/threadline-probe-ck",
      { mappings: { properties: { a: { type: "constant_keyword" } } } },
    ],
    [
      "wildcard (x-pack)",
      "PUT",
      "/threadline-probe-wc",
      { mappings: { properties: { a: { type: "wildcard" } } } },
    ],
    [
      "keyword tokenizer / lowercase filter (analysis-common)",
      "POST",
      "/_analyze",
      { tokenizer: "keyword", filter: ["lowercase"], text: "A" },
    ],
    ["SQL", "POST", "/_sql", { query: "SELECT 1" }],
    ["ES|QL", "POST", "/_query", { query: "ROW a = 1" }],
    [
      "built-in logs-*-* template (x-pack stack)",
      "GET",
      "/_index_template/logs",
    ],
  ];
  const results = [];
  for (const [feature, method, path, body] of probes) {
    const r = await esRequest(url, method, path, body);
    const ok = r.status >= 200 && r.status < 300;
    const detail =
      typeof r.body === "string"
        ? r.body.slice(0, 160)
        : JSON.stringify(
            r.body?.error?.root_cause?.[0]?.reason ?? r.body?.error ?? "",
          ).slice(0, 160);
    results.push({
      feature,
      available: ok,
      status: r.status,
      detail: ok ? "" : detail,
    });
  }
  // The _data_stream API is missing, yet data streams themselves work: a
  // template with `data_stream` plus a `require_data_stream` write creates
  // one. That is what the Collector's exporter relies on.
  {
    await esRequest(url, "PUT", "/_index_template/threadline-probe-ds", {
      index_patterns: ["threadline-probe-ds-*"],
      priority: 10, // above the threadline-probe-* template probed above
      data_stream: {},
    });
    const r = await fetch(`${url}/_bulk?refresh=true`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body:
        `${JSON.stringify({ create: { _index: "threadline-probe-ds-x", require_data_stream: true } })}\n` +
        `${JSON.stringify({ "@timestamp": new Date().toISOString() })}\n`,
    });
    const body = await r.json();
    const item = body.items?.[0]?.create;
    const ok = r.ok && !body.errors && item?._index?.startsWith(".ds-");
    results.push({
      feature: "data streams created on write (template + require_data_stream)",
      available: ok,
      status: item?.status ?? r.status,
      detail: ok ? "" : JSON.stringify(item?.error ?? body).slice(0, 160),
    });
    await esRequest(url, "DELETE", "/_index_template/threadline-probe-ds");
  }
  for (const p of [
    "threadline-probe-core",
    "threadline-probe-mot",
    "threadline-probe-sf",
    "threadline-probe-ck",
    "threadline-probe-wc",
  ]) {
    await esRequest(url, "DELETE", `/${p}`);
  }
  await esRequest(url, "DELETE", "/_index_template/threadline-probe");
  await esRequest(url, "DELETE", "/_component_template/threadline-probe");
  return results;
}

if (isMain(import.meta.url)) {
  const [cmd, ...args] = process.argv.slice(2);
  const portArg = args.indexOf("--port");
  const port = portArg >= 0 ? Number(args[portArg + 1]) : 9200;
  try {
    if (!cmd || cmd === "install") {
      console.log(ensureElasticsearch());
    } else if (cmd === "start") {
      const es = await startElasticsearch({
        port,
        keep: args.includes("--keep"),
      });
      console.log(es.url);
      const shutdown = async () => {
        await es.stop();
        process.exit(0);
      };
      process.on("SIGINT", shutdown);
      process.on("SIGTERM", shutdown);
      setInterval(() => {}, 1 << 30);
    } else if (cmd === "lacks") {
      const es = await startElasticsearch({ port, templates: false });
      try {
        for (const r of await probeMissingFeatures(es.url)) {
          console.log(
            `${r.available ? "present" : "MISSING"}  ${r.feature}${r.available ? "" : `  [${r.status}] ${r.detail}`}`,
          );
        }
      } finally {
        await es.stop();
      }
    } else {
      console.error(
        "usage: node scripts/backends/elasticsearch.mjs [install | start [--port N] [--keep] | lacks [--port N]]",
      );
      process.exit(2);
    }
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
