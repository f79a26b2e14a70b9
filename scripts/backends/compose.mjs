// Builds the Docker Compose v2 CLI plugin from its Go module into the
// per-user cache, installs it as a docker CLI plugin, and validates compose
// files with it.
//
//   node scripts/backends/compose.mjs                    build if needed, install the plugin, print the binary path
//   node scripts/backends/compose.mjs build [--force] [--no-plugin]
//   node scripts/backends/compose.mjs config [file ...]  `docker-compose -f <file> config --quiet` (default: docker-compose.yml)
//
// THREADLINE_COMPOSE_BIN=/path/to/docker-compose makes every function use
// that binary instead of building one; THREADLINE_COMPOSE_VERSION picks
// another v2 release where the module proxy serves it.
//
// Importable: ensureCompose(), installComposePlugin(), validateComposeFile().
//
// How it is built, and why this way:
//  - `go install github.com/docker/compose/v2/cmd@v2.40.3` is refused: the
//    module's go.mod has exclude directives, which `go install pkg@version`
//    does not accept. So the build happens in a small wrapper module that
//    requires Compose at the pinned version, copies its replace and exclude
//    directives, and `go build`s ./cmd from there.
//  - The version string comes from the same -X flag Compose's Makefile sets,
//    so `docker compose version` reports the release.
//  - v2.40.3 is the newest v2 release the module proxy serves (v2.40.4 and
//    v2.41.0 are refused with 403; so is v2.40.1).
//
// The same binary works standalone (`docker-compose ...`) and as a docker CLI
// plugin when it sits at $DOCKER_CONFIG/cli-plugins/docker-compose
// (default ~/.docker/cli-plugins), which makes `docker compose` work.
// `config` only reads and resolves files, so it needs no Docker engine.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

import {
  buildGoProgram,
  isMain,
  log,
  repoRoot,
  run,
  sha256,
} from "./common.mjs";

export const COMPOSE_MODULE = "github.com/docker/compose/v2";
export const COMPOSE_VERSION =
  process.env.THREADLINE_COMPOSE_VERSION || "v2.40.3";
export const COMPOSE_FILE = join(repoRoot, "docker-compose.yml");

/** Builds Compose if the cached binary does not match; returns its path. */
export function ensureCompose({ force = false } = {}) {
  if (process.env.THREADLINE_COMPOSE_BIN)
    return resolve(process.env.THREADLINE_COMPOSE_BIN);
  return buildGoProgram({
    label: `Docker Compose ${COMPOSE_VERSION}`,
    module: COMPOSE_MODULE,
    version: COMPOSE_VERSION,
    pkg: `${COMPOSE_MODULE}/cmd`,
    cacheName: "compose",
    binName: "docker-compose",
    ldflags: [`-X ${COMPOSE_MODULE}/internal.Version=${COMPOSE_VERSION}`],
    force,
  });
}

/** Where the docker CLI looks for the `compose` plugin. */
export function composePluginPath() {
  const config = process.env.DOCKER_CONFIG || join(homedir(), ".docker");
  return join(config, "cli-plugins", "docker-compose");
}

/**
 * Copies the binary to the docker CLI's plugin directory (unless the same
 * file is already there), so that `docker compose` runs it.
 */
export function installComposePlugin(bin = ensureCompose()) {
  const target = composePluginPath();
  const same =
    existsSync(target) &&
    statSync(target).size === statSync(bin).size &&
    sha256(readFileSync(target)) === sha256(readFileSync(bin));
  if (!same) {
    mkdirSync(dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    copyFileSync(bin, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
    log(`installed the docker CLI plugin at ${target}`);
  }
  return target;
}

/**
 * `docker-compose -f <file> config --quiet`: resolves and validates the
 * file against the Compose specification; throws with the tool's message
 * when it is invalid. Returns whatever it printed (warnings).
 */
export function validateComposeFile(file = COMPOSE_FILE, { env = {} } = {}) {
  const bin = ensureCompose();
  const path = resolve(file);
  const r = run(bin, ["-f", path, "config", "--quiet"], {
    cwd: dirname(path),
    env: { ...process.env, ...env },
  });
  return `${r.stdout}${r.stderr}`.trim();
}

if (isMain(import.meta.url)) {
  const [cmd, ...args] = process.argv.slice(2);
  try {
    if (!cmd || cmd === "build") {
      const bin = ensureCompose({ force: args.includes("--force") });
      if (!args.includes("--no-plugin")) installComposePlugin(bin);
      console.log(bin);
    } else if (cmd === "config") {
      for (const f of args.length ? args : [COMPOSE_FILE]) {
        const out = validateComposeFile(f);
        console.log(`${f}: valid${out ? `\n${out}` : ""}`);
      }
    } else {
      console.error(
        "usage: node scripts/backends/compose.mjs [build [--force] [--no-plugin] | config [file ...]]",
      );
      process.exit(2);
    }
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
