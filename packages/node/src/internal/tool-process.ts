// NODE_OPTIONS reaches every Node process started under it, and a
// container's `ENV NODE_OPTIONS=--import @threadline/node/register` with
// `CMD npm start` starts npm before the application. Threadline started
// there would take the health and Prometheus ports first (the
// application's then fail, and probes get npm's answers), report npm as
// an instance of the service and trace its registry calls; started in the
// `threadline` command, it would trace the viewer exporting to itself.
// The same goes for the launchers that run the application as a child
// process of their own (`tsx server.ts`, `nodemon`, `pm2-runtime`): each
// would be a second instance of the service, holding the application's
// ports.
// Not an ESM import of node:fs or node:path (see core/module-hooks.ts).
const { readFileSync, realpathSync } = process.getBuiltinModule("node:fs");
const { basename, dirname } = process.getBuiltinModule("node:path");

// The file a package manager's command runs, without .js/.cjs/.mjs, in
// every layout it comes in: npm-cli.js in Node's own npm, corepack's
// shims (corepack/dist/yarn.js, pnpm.js, npx.js), the packages corepack,
// Volta or a global install keep (yarn/bin/yarn.js, pnpm/bin/pnpm.cjs),
// a project's checked-in Yarn (.yarn/releases/yarn-4.5.1.cjs).
// The launchers' commands too: nodemon's bin/nodemon.js, pm2's bin/pm2,
// pm2-runtime (whose own process manages the application's), pm2-docker
// and pm2-dev; node-dev's, cross-env's and concurrently's, which start
// the application (or the command that does) as a child. (pm2's
// ProcessContainer.js and ProcessContainerFork.js are not among them: they
// load the application into their process.)
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
  "nodemon",
  "pm2",
  "pm2-runtime",
  "pm2-docker",
  "pm2-dev",
  "node-dev",
  "cross-env",
  "cross-env-shell",
  "concurrently",
]);
const YARN_RELEASE = /^yarn-\d/;

// Files whose name says too little to go by, and the package whose own
// they are (its package.json two folders up): @threadline/cli's
// bin/threadline.js, tsx's dist/cli.mjs (the `tsx` command),
// lib/Daemon.js, the daemon `pm2 start` leaves running, and the launchers
// @nestjs/cli's bin/nest.js (`nest start`) and ts-node-dev's lib/bin.js.
const PACKAGED = new Map([
  ["threadline", "@threadline/cli"],
  ["cli", "tsx"],
  ["Daemon", "pm2"],
  ["nest", "@nestjs/cli"],
  ["bin", "ts-node-dev"],
]);

/**
 * Whether `script` (process.argv[1]) is a package manager, a launcher of
 * the application or the `threadline` command, which
 * `@threadline/node/register` leaves alone.
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
  // Wherever the package lies.
  const owner = PACKAGED.get(name);
  if (owner === undefined) return false;
  try {
    const pkg = JSON.parse(
      readFileSync(`${dirname(dirname(file))}/package.json`, "utf8"),
    ) as { name?: unknown };
    return pkg.name === owner;
  } catch {
    return false;
  }
}
