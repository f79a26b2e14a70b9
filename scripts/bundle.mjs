// Builds what a package's "exports" point at: each runtime package's
// compiled modules (dist/, written by `tsc -b`) joined into a few files in
// lib/, one per entry point plus the chunks they share.
//
// Why: `--import @threadline/node/register` used to load some hundred of
// our modules one by one, and Node's resolving, reading and linking of each
// cost more start-up time than running them did. Each package is bundled on
// its own and imports the others by name, so an application that imports
// @threadline/core or an instrumentation directly still shares the one copy
// @threadline/node uses. The maps lead back to the TypeScript in src/.
//
// lib/ sits beside dist/, at the same depth, so the paths the code finds
// from import.meta.url (the package folder, its package.json, the export
// worker's script) stay true.
import { build } from "esbuild";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/**
 * Scripts a package starts by URL rather than imports, by their name in
 * lib/ and their compiled file: the export worker, which pipeline.ts looks
 * for beside its own code.
 */
const STARTED_BY_URL = {
  "packages/node": { "export-worker": "export/export-worker.js" },
};

/** The folders that may hold a runtime package; see entryPoints(). */
const WORKSPACE_FOLDERS = ["packages", "instrumentations"];

/**
 * The entry points a package's "exports" name in lib/: lib/<name>.js <-
 * dist/<name>.js. None for a package whose exports point elsewhere (the
 * cli's, which runs in a process of its own, and private ones).
 */
function entryPoints(pkg) {
  const dir = join(root, pkg);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const entries = {};
  for (const target of Object.values(manifest.exports ?? {})) {
    const file = typeof target === "string" ? target : target.default;
    const name = /^\.\/lib\/(.+)\.js$/.exec(file)?.[1];
    if (name === undefined) continue; // ./package.json
    entries[name] = join(dir, "dist", `${name}.js`);
  }
  if (Object.keys(entries).length === 0) return entries;
  for (const [name, file] of Object.entries(STARTED_BY_URL[pkg] ?? {}))
    entries[name] = join(dir, "dist", file);
  return entries;
}

/** The runtime packages, those whose exports point into lib/, with their entry points. */
const bundles = WORKSPACE_FOLDERS.flatMap((folder) =>
  readdirSync(join(root, folder), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => `${folder}/${d.name}`),
)
  .map((pkg) => [pkg, entryPoints(pkg)])
  .filter(([, entries]) => Object.keys(entries).length > 0);

// `--clean` (npm run clean) removes the bundles and builds none.
const clean = process.argv.includes("--clean");

for (const [pkg, entries] of bundles) {
  const dir = join(root, pkg);
  rmSync(join(dir, "lib"), { recursive: true, force: true });
  if (clean) continue;
  await build({
    entryPoints: entries,
    outdir: join(dir, "lib"),
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node22.15",
    // Other packages, ours included, stay imports: one copy of each.
    packages: "external",
    chunkNames: "shared-[hash]",
    sourcemap: "linked",
    sourcesContent: false,
    // The sources are published beside the code; their comments say it all.
    legalComments: "none",
    logLevel: "warning",
  });
}
