// NODE_OPTIONS reaches every Node process started under it, and a
// container's `ENV NODE_OPTIONS=--import @threadline/node/register` with
// `CMD npm start` starts npm before the application. Threadline started
// there would take the health and Prometheus ports first (the
// application's then fail, and probes get npm's answers), report npm as
// an instance of the service and trace its registry calls; started in the
// `threadline` command, it would trace the viewer exporting to itself.
// Not an ESM import of node:fs or node:path (see core/module-hooks.ts).
const { readFileSync, realpathSync } = process.getBuiltinModule("node:fs");
const { basename, dirname } = process.getBuiltinModule("node:path");

// The file a package manager's command runs, without .js/.cjs/.mjs, in
// every layout it comes in: npm-cli.js in Node's own npm, corepack's
// shims (corepack/dist/yarn.js, pnpm.js, npx.js), the packages corepack,
// Volta or a global install keep (yarn/bin/yarn.js, pnpm/bin/pnpm.cjs),
// a project's checked-in Yarn (.yarn/releases/yarn-4.5.1.cjs).
const TOOLS = new Set([
  "npm",
  "npm-cli",
  "npx",
  "npx-cli",
  "yarn",
  "yarnpkg",
  "pnpm",
  "pnpx",
  "corepack",
]);
const YARN_RELEASE = /^yarn-\d/;

/**
 * Whether `script` (process.argv[1]) is a package manager or the
 * `threadline` command, which `@threadline/node/register` leaves alone.
 */
export function isToolScript(script: string | undefined): boolean {
  if (typeof script !== "string" || script === "") return false;
  let file = script;
  try {
    // A command on PATH is most often a link into its package.
    file = realpathSync(script);
  } catch {
    // Not a file (node -e, a REPL): judged by the name as given.
  }
  const name = basename(file).replace(/\.[cm]?js$/i, "");
  if (TOOLS.has(name.toLowerCase()) || YARN_RELEASE.test(name)) return true;
  // @threadline/cli's bin/threadline.js, wherever the package lies.
  if (name !== "threadline") return false;
  try {
    const pkg = JSON.parse(
      readFileSync(`${dirname(dirname(file))}/package.json`, "utf8"),
    ) as { name?: unknown };
    return pkg.name === "@threadline/cli";
  } catch {
    return false;
  }
}
