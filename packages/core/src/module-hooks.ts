// Lets an instrumentation patch a CommonJS module the moment it is loaded.
//
// Design: one wrapper around Node's loader for `.js` files
// (Module._extensions['.js']) sees every CommonJS file Node evaluates,
// whether it was reached by `require()` or by `import` (Node routes ESM
// imports of CommonJS through the same loader), and whether our code was
// started with --import, -r or a first import. Hooks name a file inside a
// package (`pg` + `lib/client.js`), so patching works on the package's own
// internal classes, which is where prototypes live. Modules that were
// already loaded when a hook is registered are found in the require cache
// and patched there; they are reported so start-up can warn about them.
// A loader started later that replaces ours (tsx's) is wrapped in turn on
// the next file's load; one that compiles files past Node's CommonJS loader
// altogether is found by the self-check, from the require cache.
//
// Cost: per loaded file, one comparison and one Map lookup on the file's
// basename; nothing at all for require() of a cached module.
import Module from "node:module";
import { sep } from "node:path";
// Not an ESM import of node:fs: its namespace reads fs.promises, which
// loads a dozen more modules (about 3 MB) the application may never use.
const { readFileSync } = process.getBuiltinModule("node:fs");

/** A request to be called when a file of a package is loaded. */
export interface ModuleHook {
  /** Package name as installed under node_modules, e.g. `pg` or `@scope/name`. */
  module: string;
  /** Path of the file inside the package, with `/` separators, e.g. `lib/client.js`. */
  file: string;
  /**
   * Called once per loaded copy of the file with its exports. Patch them in
   * place; a returned value other than `undefined` replaces the exports.
   */
  onLoad(exports: unknown, info: LoadedModuleInfo): unknown;
}

/** What is known about a loaded file. */
export interface LoadedModuleInfo {
  /** The package's version from its package.json, if readable. */
  version: string | undefined;
  /** Absolute file name. */
  filename: string;
  /** True when the file had been loaded before the hook was registered. */
  late: boolean;
}

type Loader = (this: unknown, module: NodeJS.Module, filename: string) => void;
interface LoaderInternals {
  _extensions: Record<string, Loader>;
  _cache: Record<string, NodeJS.Module | undefined>;
  prototype: { load(this: NodeJS.Module, filename: string): void };
}

interface Registered {
  hook: ModuleHook;
  suffix: string;
  seen: WeakSet<object>;
}

const internals = Module as unknown as LoaderInternals;
const byBasename = new Map<string, Registered[]>();
const versions = new Map<string, string | undefined>();
let installed = false;

function basename(filename: string): string {
  return filename.slice(filename.lastIndexOf(sep) + 1);
}

function run(
  entry: Registered,
  module: NodeJS.Module,
  filename: string,
  late: boolean,
): void {
  const exports = module.exports as unknown;
  if (
    (typeof exports !== "object" && typeof exports !== "function") ||
    exports === null
  )
    return;
  if (entry.seen.has(exports)) return;
  entry.seen.add(exports);
  try {
    const replaced = entry.hook.onLoad(exports, {
      version: readVersion(filename, entry),
      filename,
      late,
    });
    if (replaced !== undefined) {
      module.exports = replaced;
      // Not patched again when a second wrapper sees the same load.
      if (typeof replaced === "object" || typeof replaced === "function")
        entry.seen.add(replaced as object);
    }
  } catch {
    // A failing patch must never break the application's own require().
  }
}

function readVersion(filename: string, entry: Registered): string | undefined {
  const pkgRoot =
    filename.slice(0, filename.length - entry.suffix.length) +
    `${sep}node_modules${sep}${entry.hook.module.split("/").join(sep)}`;
  if (versions.has(pkgRoot)) return versions.get(pkgRoot);
  let version: string | undefined;
  try {
    const pkg = JSON.parse(
      readFileSync(`${pkgRoot}${sep}package.json`, "utf8"),
    ) as { version?: unknown };
    version = typeof pkg.version === "string" ? pkg.version : undefined;
  } catch {
    version = undefined;
  }
  versions.set(pkgRoot, version);
  return version;
}

/**
 * Modules a hook saw load, for the life of the process: patched again by a
 * later start (after a shutdown), they are not reported as loaded before
 * Threadline, which they were not.
 */
const seenLoading = new WeakSet<NodeJS.Module>();
/** Modules that were already loaded when a hook was registered, and patched then. */
const patchedLate = new WeakSet<NodeJS.Module>();

function onLoaded(module: NodeJS.Module, filename: string): void {
  const candidates = byBasename.get(basename(filename));
  if (candidates === undefined) return;
  for (const entry of candidates)
    if (filename.endsWith(entry.suffix)) {
      seenLoading.add(module);
      run(entry, module, filename, false);
    }
}

/** Every loader wrapper made here, so that none is wrapped again. */
const wrappers = new WeakSet<Loader>();

function wrap(loader: Loader): Loader {
  const wrapper = function threadlineLoad(
    this: unknown,
    module: NodeJS.Module,
    filename: string,
  ): void {
    loader.call(this, module, filename);
    onLoaded(module, filename);
  };
  wrappers.add(wrapper);
  return wrapper;
}

function install(): void {
  if (installed) return;
  installed = true;
  const original = internals._extensions[".js"];
  if (typeof original !== "function") return;
  internals._extensions[".js"] = wrap(original);
  // A loader put in place after ours, as tsx's is when it is started after
  // Threadline, compiles .js files itself and never calls the one it
  // replaced: no hook would see pg, pino or amqplib load. So every file's
  // load first looks whether the .js loader is still one of ours, and wraps
  // the new one otherwise. A later loader that does call the one it
  // replaced (for the files it leaves alone) reaches our older wrapper too,
  // which is harmless: a hook runs once per loaded copy of a file.
  const load = internals.prototype.load;
  internals.prototype.load = function threadlineCheckLoader(
    this: NodeJS.Module,
    filename: string,
  ): void {
    const current = internals._extensions[".js"];
    if (typeof current === "function" && !wrappers.has(current))
      internals._extensions[".js"] = wrap(current);
    load.call(this, filename);
  };
}

/**
 * Registers `hook`. Returns the names of files that were already loaded and
 * were patched late (empty when the hook came first, as it should, and for
 * files an earlier hook saw load: a start after a shutdown).
 */
export function hookModule(hook: ModuleHook): {
  late: string[];
  unhook: () => void;
} {
  install();
  const file = hook.file.split("/").join(sep);
  const entry: Registered = {
    hook,
    suffix: `${sep}node_modules${sep}${hook.module.split("/").join(sep)}${sep}${file}`,
    seen: new WeakSet(),
  };
  const base = basename(file);
  const list = byBasename.get(base) ?? [];
  list.push(entry);
  byBasename.set(base, list);

  const late: string[] = [];
  for (const [filename, module] of Object.entries(internals._cache)) {
    if (
      module !== undefined &&
      module.loaded &&
      filename.endsWith(entry.suffix)
    ) {
      if (!seenLoading.has(module)) late.push(filename);
      patchedLate.add(module);
      run(entry, module, filename, true);
    }
  }
  return {
    late,
    unhook: () => {
      const current = byBasename.get(base);
      if (current === undefined) return;
      const i = current.indexOf(entry);
      if (i !== -1) current.splice(i, 1);
      if (current.length === 0) byBasename.delete(base);
    },
  };
}

/**
 * The modules hooks were registered for that will never see a load: the
 * loader wrapper could not be put in place (bundles, exotic runtimes).
 * Empty when it is in place or nothing asked for a hook.
 */
export function modulesLeftUnhooked(): string[] {
  if (typeof internals._extensions[".js"] === "function") return [];
  const modules = new Set<string>();
  for (const entries of byBasename.values())
    for (const e of entries) modules.add(e.hook.module);
  return [...modules];
}

/**
 * The hooked modules that were loaded after their hooks were registered
 * without any hook seeing them load, so they are not instrumented: a loader
 * compiled them without Node's CommonJS loader (an ES module loader's `load`
 * hook that returns the source of a CommonJS file, say). For the start-up
 * self-check: one pass over the require cache.
 */
export function modulesLoadedPastHooks(): string[] {
  if (byBasename.size === 0) return [];
  const modules = new Set<string>();
  for (const [filename, module] of Object.entries(internals._cache)) {
    if (
      module === undefined ||
      !module.loaded ||
      seenLoading.has(module) ||
      patchedLate.has(module)
    )
      continue;
    for (const entry of byBasename.get(basename(filename)) ?? [])
      if (filename.endsWith(entry.suffix)) modules.add(entry.hook.module);
  }
  return [...modules].sort();
}

/**
 * The self-check message for a module that was loaded before its hook;
 * `lost` says what that costs, where it is more than the work done so far.
 */
export function lateLoadProblem(
  module: string,
  lost = "work done before now was not traced",
): string {
  return (
    `${module} was loaded before Threadline started and patched late; ${lost}. ` +
    "Start Threadline first: node --import @threadline/node/register app.js"
  );
}
