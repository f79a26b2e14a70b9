// What users install: every publishable package packed as npm publishes it,
// installed from those tarballs into a project outside the repository (the
// third-party dependencies from the registry, as users get them), and used
// the way the READMEs say. Inside the workspace every package is a symlink to
// its source directory, which hides a dependency left out of package.json, a
// file left out of "files", an export missing from an "exports" map and a
// declaration file that needs a devDependency; here each of those fails.
//
// Takes 6 to 10 s on two cores once npm's cache holds the third-party
// packages (the first run fetches them from the registry).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const root = fileURLToPath(new URL("../", import.meta.url));
const fixtures = fileURLToPath(
  new URL("./fixtures/packaged/", import.meta.url),
);
const run = promisify(execFile);

interface Manifest {
  name: string;
  private?: boolean;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const manifest = (dir: string) =>
  JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) as Manifest;

// The workspaces npm would publish: every one not marked private.
const publishable = (manifest(".").workspaces ?? [])
  .flatMap((pattern) =>
    pattern.endsWith("/*")
      ? readdirSync(join(root, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => `${pattern.slice(0, -2)}/${d.name}`)
      : [pattern],
  )
  .filter((dir) => !manifest(dir).private);

// The versions the repository already uses, so a warm cache serves them.
const rootDev = manifest(".").devDependencies ?? {};
const supportDev = manifest("packages/test-support").devDependencies ?? {};
const thirdParty = [
  `pino@${supportDev["pino"]}`,
  `typescript@${rootDev["typescript"]}`,
  `@types/node@${rootDev["@types/node"]}`,
];

// npm run passes its own settings to scripts as npm_* variables; one of them
// (npm_config_local_prefix) would make the install below land in the
// repository. Only those saying where packages come from are kept.
const KEEP = new Set([
  "npm_config_cache",
  "npm_config_registry",
  "npm_config_userconfig",
  "npm_config_globalconfig",
]);
const npmEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !k.toLowerCase().startsWith("npm_") || KEEP.has(k.toLowerCase()),
  ),
);
const npm = (args: string[], cwd: string) =>
  run("npm", args, { cwd, env: npmEnv, maxBuffer: 64 << 20 });

// Module specifiers in compiled JavaScript and declaration files: static
// imports and re-exports (`import … from "x"`, `export … from "x"`,
// `import "x"`), `import("x")` and `require("x")`.
const IMPORTS =
  /^(?:import|export)\s[^;"]*?\bfrom\s*"([^"]+)"|^import\s*"([^"]+)"|\b(?:import|require)\s*\(\s*"([^"]+)"\s*\)/gm;

describe("the packages as published", () => {
  let work: string;
  let app: string;
  let receiver: OtlpReceiver;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "threadline-packaging-"));
    app = join(work, "app");
    const tarballs = join(work, "tarballs");
    cpSync(fixtures, app, { recursive: true });
    mkdirSync(tarballs);
    const { stdout } = await npm(
      [
        "pack",
        "--json",
        "--pack-destination",
        tarballs,
        ...publishable.flatMap((dir) => ["--workspace", dir]),
      ],
      root,
    );
    const packed = JSON.parse(stdout) as Array<{ filename: string }>;
    assert.equal(packed.length, publishable.length);
    await npm(
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        ...packed.map((p) => join(tarballs, p.filename)),
        ...thirdParty,
      ],
      app,
    );
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("are published with package.json as written", async () => {
    // npm rewrites, or drops, what it finds malformed ("bin", "main",
    // "repository"...) and only says so at publish time.
    const { stderr } = await npm(
      [
        "publish",
        "--dry-run",
        "--offline",
        "--loglevel=warn",
        ...publishable.flatMap((dir) => ["--workspace", dir]),
      ],
      root,
    );
    assert.doesNotMatch(stderr, /auto-corrected|errors corrected/, stderr);
  });

  it("import only what their package.json depends on", () => {
    // The install above hoists every package's dependencies side by side,
    // and so would hide one a package forgot to declare; its files say.
    const installed = join(app, "node_modules", "@threadline");
    const problems: string[] = [];
    for (const dir of readdirSync(installed)) {
      const pkg = JSON.parse(
        readFileSync(join(installed, dir, "package.json"), "utf8"),
      ) as Manifest & { peerDependencies?: Record<string, string> };
      const declared = new Set([
        ...Object.keys(pkg.dependencies ?? {}),
        ...Object.keys(pkg.peerDependencies ?? {}),
      ]);
      const files = readdirSync(join(installed, dir), { recursive: true })
        .map(String)
        .filter((f) => !f.includes("node_modules") && /\.(js|d\.ts)$/.test(f));
      for (const file of files) {
        const text = readFileSync(join(installed, dir, file), "utf8");
        for (const [, a, b, c] of text.matchAll(IMPORTS)) {
          const specifier = (a ?? b ?? c)!;
          if (specifier.startsWith(".") || isBuiltin(specifier)) continue;
          const name = specifier
            .split("/")
            .slice(0, specifier.startsWith("@") ? 2 : 1)
            .join("/");
          if (!declared.has(name))
            problems.push(`${pkg.name}: ${file} imports ${specifier}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it("hold the code that runs in applications to Latin-1, so that V8 keeps its source one byte a character", () => {
    // V8 keeps every module's source text for as long as the module lives;
    // one character past U+00FF, in a comment or not, makes the whole file
    // a two-byte string, twice its size on the application's heap.
    const installed = join(app, "node_modules", "@threadline");
    const problems: string[] = [];
    for (const dir of readdirSync(installed)) {
      if (dir === "cli") continue; // runs in its own process
      const at = join(installed, dir);
      const code = readdirSync(at, { recursive: true })
        .map(String)
        .filter((f) => !f.includes("node_modules") && f.endsWith(".js"));
      assert.ok(code.length > 0, `${dir}: no code`);
      for (const file of code) {
        const text = readFileSync(join(at, file), "utf8");
        const wide = /[^\u0000-\u00ff]/.exec(text);
        if (wide)
          problems.push(
            `${dir}/${file}: ${JSON.stringify(text.slice(Math.max(0, wide.index - 30), wide.index + 5))}`,
          );
      }
    }
    assert.deepEqual(problems, []);
  });

  it("carry the licence they name, and the sources their maps point to", () => {
    const installed = join(app, "node_modules", "@threadline");
    const problems: string[] = [];
    for (const dir of readdirSync(installed)) {
      const at = join(installed, dir);
      if (!existsSync(join(at, "LICENSE"))) problems.push(`${dir}: no LICENSE`);
      const maps = readdirSync(at, { recursive: true })
        .map(String)
        .filter((f) => !f.includes("node_modules") && f.endsWith(".map"));
      for (const map of maps) {
        const { sources } = JSON.parse(readFileSync(join(at, map), "utf8")) as {
          sources: string[];
        };
        for (const source of sources)
          if (!existsSync(join(at, dirname(map), source)))
            problems.push(`${dir}: ${map} names ${source}`);
      }
    }
    assert.deepEqual(problems.slice(0, 10), []);
  });

  const oneLine: Array<[string, string, string[]]> = [
    ["an ES module app started with --import", "app.mjs", ["--import"]],
    ["a CommonJS app started with -r", "app.cjs", ["-r"]],
  ];
  for (const [title, entry, [flag]] of oneLine) {
    it(`trace ${title}, with its fetch calls and pino lines`, async () => {
      const name = `packaged-${entry}`;
      const service = await startService({
        entry,
        cwd: app,
        execArgv: [flag!, "@threadline/node/register"],
        env: {
          OTEL_SERVICE_NAME: name,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_BSP_SCHEDULE_DELAY: "50",
          OTEL_BLRP_SCHEDULE_DELAY: "50",
        },
      });
      try {
        assert.equal(
          await (await fetch(`${service.url}/hello`)).text(),
          "echo",
        );
        const spans = await receiver.waitForSpans(
          (all) =>
            all.filter((s) => s.resource["service.name"] === name).length >= 3,
          `${title}: the request's spans`,
        );
        const mine = spans.filter((s) => s.resource["service.name"] === name);
        const hello = mine.find(
          (s) => s.kind === 2 && s.attributes["url.path"] === "/hello",
        );
        assert.ok(hello, "the server span of /hello");
        const call = mine.find(
          (s) => s.kind === 3 && s.parentSpanId === hello.spanId,
        );
        assert.ok(call, "fetch()'s client span, a child of /hello's");
        const log = await waitFor(
          () => receiver.logs.find((l) => l.resource["service.name"] === name),
          { what: `${title}: the pino line` },
        );
        assert.equal(log.traceId, hello.traceId);
        assert.deepEqual(
          service.stderr.filter((l) => l.includes("threadline")),
          [],
          "no warnings",
        );
      } finally {
        await service.stop();
      }
    });
  }

  it("start once when a second copy of @threadline/node calls init() in the same thread", async () => {
    // Operations start Threadline from a copy of their own (NODE_OPTIONS),
    // and the service's code calls init() from the one it installed.
    const ops = join(work, "ops", "node_modules");
    for (const scope of ["@threadline", "@opentelemetry"])
      cpSync(join(app, "node_modules", scope), join(ops, scope), {
        recursive: true,
      });
    const register = join(ops, "@threadline", "node", "lib", "register.js");
    const name = "packaged-two-copies";
    const service = await startService({
      entry: "own-init.mjs",
      cwd: app,
      env: {
        NODE_OPTIONS: `--import ${register}`,
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
      },
    });
    let ended: Awaited<typeof service.exited>;
    try {
      assert.equal(await (await fetch(`${service.url}/hello`)).text(), "echo");
      await receiver.waitForSpans(
        (all) =>
          all.filter((s) => s.resource["service.name"] === name).length >= 3,
        "the request's spans",
      );
    } finally {
      ended = await service.stop("SIGTERM", 10_000);
    }
    // Two Threadlines would each take the other's SIGTERM listener for the
    // application's, and leave the process running.
    assert.equal(ended.signal, "SIGTERM", "ended by SIGTERM, not killed");
    // Stopped: whatever either copy held has been sent by now.
    const mine = receiver.spans.filter(
      (s) => s.resource["service.name"] === name,
    );
    const count = (kind: number, path?: string) =>
      mine.filter(
        (s) =>
          s.kind === kind &&
          (path === undefined || s.attributes["url.path"] === path),
      ).length;
    assert.equal(count(2, "/hello"), 1, "one server span of /hello");
    assert.equal(count(2, "/echo"), 1, "one server span of /echo");
    assert.equal(count(3), 1, "one client span, of the call to /echo");
    assert.deepEqual(
      receiver.spans
        .map((s) => String(s.resource["service.name"]))
        .filter((n) => n === "packaged-own-init" || n.startsWith("unknown")),
      [],
      "no spans under another service name",
    );
    const said = service.stderr.filter((l) => l.includes("threadline"));
    assert.equal(said.length, 1, service.stderr.join("\n"));
    assert.match(said[0]!, /init\(\) was called more than once/);
    assert.match(said[0]!, /serviceName/);
  });

  it("give the threadline command of @threadline/cli", async () => {
    const bin = join(app, "node_modules", ".bin", "threadline");
    const help = await run(process.execPath, [bin, "--help"], { cwd: app });
    assert.match(help.stdout, /threadline dev \[options\]/);
    const dev = await startService({
      entry: bin,
      args: ["dev", "--memory", "--otlp-port", "0", "--port", "0"],
      cwd: app,
      ready: /viewer and API\s+http:\/\/127\.0\.0\.1:(\d+)/,
    });
    try {
      const page = await fetch(`${dev.url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<script type="module" src="\/app\.js">/);
      const script = await fetch(`${dev.url}/app.js`);
      assert.equal(
        script.status,
        200,
        "the viewer's scripts are in the package",
      );
      await script.arrayBuffer();
      const stats = (await (await fetch(`${dev.url}/api/stats`)).json()) as {
        traces: number;
      };
      assert.equal(stats.traces, 0);
    } finally {
      await dev.stop();
    }
  });

  it("type-check a strict TypeScript application using what the READMEs show", async () => {
    // skipLibCheck off: our declaration files are checked as the
    // application's compiler sees them, with only their own dependencies.
    const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
    await run(process.execPath, [tsc, "-p", "."], { cwd: app }).catch(
      (err: Error & { stdout?: string }) => {
        assert.fail(`tsc found errors:\n${err.stdout ?? err.message}`);
      },
    );
  });

  it("give their types to a CommonJS application on the older module resolution", async () => {
    const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
    await run(process.execPath, [tsc, "-p", "tsconfig.cjs.json"], {
      cwd: app,
    }).catch((err: Error & { stdout?: string }) => {
      assert.fail(`tsc found errors:\n${err.stdout ?? err.message}`);
    });
  });
});
