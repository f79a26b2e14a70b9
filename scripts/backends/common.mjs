// Helpers shared by the backend installers: where the per-user cache lives,
// how external tools are run and timed, and how a started server is waited
// for and stopped. Node's standard library only, so the installers run
// before (and without) `npm install`.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(fileURLToPath(import.meta.url), "../../..");

/** Root of everything the installers download or build; never in the repo. */
export function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const dir = join(base, "threadline");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Progress goes to stderr so that stdout carries only the result path. */
export function log(...parts) {
  console.error("threadline:", ...parts);
}

export function sha256(...chunks) {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** First executable called `name` on PATH, then the given fallbacks. */
export function which(name, fallbacks = []) {
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return fallbacks.find((p) => existsSync(p)) ?? null;
}

/** Runs a command to completion, failing loudly with its output tail. */
export function run(cmd, args, opts = {}) {
  const started = Date.now();
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    stdio: opts.inherit ? "inherit" : "pipe",
    ...opts,
  });
  const seconds = (Date.now() - started) / 1000;
  if (r.error) throw r.error;
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n");
    throw new Error(
      `${cmd} ${args.join(" ")} exited with ${r.status}:\n${out.slice(-40).join("\n")}`,
    );
  }
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", seconds };
}

/**
 * A cache entry is complete only once its stamp is written, so an
 * interrupted build is redone rather than trusted.
 */
export function readStamp(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, "threadline-build.json"), "utf8"));
  } catch {
    return null;
  }
}

export function writeStamp(dir, stamp) {
  writeFileSync(
    join(dir, "threadline-build.json"),
    `${JSON.stringify({ ...stamp, builtAt: new Date().toISOString() }, null, 2)}\n`,
  );
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `probe` resolves truthy, or throws after `timeoutMs`. */
export async function waitFor(what, probe, { timeoutMs = 60_000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`${what} exited with ${child.exitCode} while starting`);
    }
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    await sleep(250);
  }
  throw new Error(
    `${what} not ready after ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ""}`,
  );
}

/**
 * Starts a long-running server in its own process group, so stopping it also
 * stops whatever it forked (Elasticsearch's launcher starts a second JVM).
 */
export function startProcess(cmd, args, { env, cwd, logFile, name }) {
  const child = spawn(cmd, args, {
    env,
    cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const chunks = [];
  let size = 0;
  const keep = (b) => {
    chunks.push(b);
    size += b.length;
    while (size > 1024 * 1024 && chunks.length > 1)
      size -= chunks.shift().length;
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const output = () => Buffer.concat(chunks).toString("utf8");
  const flush = () => {
    if (logFile) writeFileSync(logFile, output());
  };
  child.on("exit", flush);
  const stop = async (timeoutMs = 20_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    // Held until it has exited: otherwise, once the kill timer has fired,
    // nothing keeps the event loop alive, and a script stopping its servers
    // last ends there, the exit unseen and the servers after it not stopped.
    child.ref();
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    await exited;
    clearTimeout(timer);
    flush();
  };
  child.unref();
  return { child, pid: child.pid, output, stop, name };
}

/**
 * `<bin> validate --config=…` of an OpenTelemetry Collector distribution
 * (ours, or Jaeger v2); returns its combined output, throws on failure.
 */
export function validateOtelcol(bin, config, env = {}) {
  const r = run(bin, ["validate", `--config=${resolve(config)}`], {
    env: { ...process.env, ...env },
  });
  return `${r.stdout}${r.stderr}`.trim();
}

/**
 * Starts a Collector distribution with `config`; resolves once `readyUrl`
 * answers 2xx (stopping it and showing its output if it never does).
 */
export async function startOtelcol(
  bin,
  { config, env = {}, logFile, name, readyUrl, timeoutMs = 30_000 },
) {
  const proc = startProcess(bin, [`--config=${resolve(config)}`], {
    env: { ...process.env, ...env },
    logFile,
    name,
  });
  if (readyUrl) {
    await waitFor(
      `${name} (${readyUrl})`,
      async () => (await fetch(readyUrl)).ok,
      {
        child: proc.child,
        timeoutMs,
      },
    ).catch(async (e) => {
      await proc.stop();
      throw new Error(`${e.message}\n${proc.output().slice(-4000)}`);
    });
  }
  return proc;
}

/** True when this module is the script node was asked to run. */
export function isMain(metaUrl) {
  return process.argv[1] && resolve(process.argv[1]) === fileURLToPath(metaUrl);
}

/** `go` from PATH, else the official tarball's usual install location. */
export function goBinary() {
  const go = process.env.GO || which("go", ["/usr/local/go/bin/go"]);
  if (!go) {
    throw new Error("Go is required (set GO or put go on PATH)");
  }
  return go;
}

export function goVersion(go) {
  return run(go, ["env", "GOVERSION"]).stdout.trim();
}

/** Appends module patterns to a comma-separated Go environment list. */
export function withGoPatterns(env, name, patterns) {
  const existing = (env[name] || "").split(",").filter(Boolean);
  return [...new Set([...existing, ...patterns])].join(",");
}

/** Lines of every `keyword ( ... )` block and single `keyword x` line of a go.mod. */
function goModDirectives(gomod, keyword) {
  const lines = [];
  const block = new RegExp(`^${keyword}\\s+\\(\\s*\\n([\\s\\S]*?)^\\)`, "gm");
  for (const m of gomod.matchAll(block)) {
    lines.push(
      ...m[1]
        .split("\n")
        .map((l) => l.replace(/\/\/.*$/, "").trim())
        .filter(Boolean),
    );
  }
  const single = new RegExp(`^${keyword}\\s+([^(\\s].*)$`, "gm");
  for (const m of gomod.matchAll(single))
    lines.push(m[1].replace(/\/\/.*$/, "").trim());
  return lines;
}

/**
 * Builds a Go program from a module that `go install pkg@version` refuses
 * (a module path without its major version, or replace/exclude directives
 * in its go.mod): in a wrapper module that requires it at `version` and
 * copies its replace (non-local) and exclude directives. Cached under
 * <cache>/<cacheName>/<tag>-<key> while the version and toolchain are the
 * same; returns the binary's path.
 */
export function buildGoProgram({
  label,
  module,
  version,
  pkg,
  cacheName,
  tag = version,
  binName,
  ldflags = [],
  env = {},
  force = false,
  stamp = {},
}) {
  const go = goBinary();
  const toolchain = goVersion(go);
  const key = sha256(version, "\0", toolchain).slice(0, 16);
  const dir = join(cacheRoot(), cacheName, `${tag}-${key}`);
  const bin = join(dir, binName);
  if (!force && existsSync(bin) && readStamp(dir)?.key === key) return bin;

  rmSync(dir, { recursive: true, force: true });
  const src = join(dir, "build");
  mkdirSync(src, { recursive: true });
  const goEnv = { ...process.env, CGO_ENABLED: "0", ...env };
  const started = Date.now();
  log(`building ${label} (${module}@${version}, ${toolchain}) into ${dir}`);
  const header = [
    `module threadline.dev/${cacheName}-build`,
    "",
    "go 1.24",
    "",
  ];
  writeFileSync(join(src, "go.mod"), header.join("\n"));
  writeFileSync(
    join(src, "doc.go"),
    `// Package build only anchors the build of ${label}.\npackage build\n`,
  );
  const info = JSON.parse(
    run(go, ["mod", "download", "-json", `${module}@${version}`], {
      env: goEnv,
      cwd: src,
    }).stdout,
  );
  if (info.Error) throw new Error(info.Error);
  const gomod = readFileSync(info.GoMod, "utf8");
  writeFileSync(
    join(src, "go.mod"),
    [
      ...header,
      `require ${module} ${version}`,
      "",
      // Local-path replacements cannot apply outside the module's own tree.
      ...goModDirectives(gomod, "replace")
        .filter((l) => !/=>\s*\.{1,2}\//.test(l))
        .map((l) => `replace ${l}`),
      ...goModDirectives(gomod, "exclude").map((l) => `exclude ${l}`),
      "",
    ].join("\n"),
  );
  run(go, ["get", `${pkg}@${version}`], { env: goEnv, cwd: src });
  run(
    go,
    [
      "build",
      "-trimpath",
      `-ldflags=${["-s", "-w", ...ldflags].join(" ")}`,
      "-o",
      bin,
      pkg,
    ],
    { env: goEnv, cwd: src },
  );
  const seconds = (Date.now() - started) / 1000;
  const bytes = statSync(bin).size;
  writeStamp(dir, {
    key,
    module: `${module}@${version}`,
    toolchain,
    seconds,
    bytes,
    ...stamp,
  });
  log(
    `built ${binName} in ${seconds.toFixed(1)} s, ${(bytes / 1e6).toFixed(1)} MB`,
  );
  return bin;
}
