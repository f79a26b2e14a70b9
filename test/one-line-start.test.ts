// Every documented way to start Threadline, each in a real child process.
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import https from "node:https";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  freePort,
  selfSignedCertificate,
  startOtlpReceiver,
  startRecordingServer,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

describe("starting Threadline", () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  const env = (name: string) => ({
    OTEL_SERVICE_NAME: name,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    OTEL_BLRP_SCHEDULE_DELAY: "50",
  });
  const spansOf = (name: string) =>
    receiver.spans.filter((s) => s.resource["service.name"] === name);

  const oneLine: Array<[string, string, string[]]> = [
    [
      "a CommonJS app with --import",
      "hello.cjs",
      ["--import", "@threadline/node/register"],
    ],
    [
      "a CommonJS app with -r",
      "hello.cjs",
      ["-r", "@threadline/node/register"],
    ],
    ["an ES module app with a first import", "hello-first-import.mjs", []],
  ];
  for (const [title, entry, execArgv] of oneLine) {
    it(`traces ${title}`, async () => {
      const name = `svc-${entry}-${execArgv.join("")}`;
      const app = await startService({
        entry,
        cwd: fixtures,
        execArgv,
        env: env(name),
      });
      try {
        const res = await fetch(`${app.url}/hello`);
        assert.equal(res.status, 200);
        const spans = await waitFor(
          () =>
            spansOf(name).find(
              (s) => s.kind === 2 && s.attributes["url.path"] === "/hello",
            ) && spansOf(name),
          {
            what: `${title}: server span`,
          },
        );
        const server = spans.find(
          (s) => s.attributes["url.path"] === "/hello",
        )!;
        const log = await waitFor(
          () => receiver.logs.find((l) => l.resource["service.name"] === name),
          { what: "log record" },
        );
        assert.equal(log.traceId, server.traceId);
        const raw = await waitFor(
          () => app.stdout.find((l) => l.startsWith("{")),
          { what: "the log line on stdout" },
        );
        const line = JSON.parse(raw) as Record<string, unknown>;
        assert.equal(line?.["trace_id"], server.traceId);
        assert.deepEqual(
          app.stderr.filter((l) => l.includes("threadline")),
          [],
          "no warnings",
        );
      } finally {
        await app.stop();
      }
    });
  }

  // tsx's CommonJS hook, started after Threadline, replaces the loader for
  // .js files with one that never calls the one it replaced.
  for (const execArgv of [
    [
      "--import",
      "@threadline/node/register",
      "--import",
      "./own-js-loader.cjs",
    ],
    ["-r", "@threadline/node/register", "-r", "./own-js-loader.cjs"],
  ])
    it(`traces and redacts when a loader that compiles .js files itself starts after Threadline (${execArgv[2]})`, async () => {
      const name = `svc-own-loader${execArgv[2]}`;
      const app = await startService({
        entry: "hello.cjs",
        cwd: fixtures,
        execArgv,
        env: { ...env(name), THREADLINE_LOG_REDACT: "path" },
      });
      try {
        assert.equal((await fetch(`${app.url}/secret`)).status, 200);
        const server = await waitFor(
          () => spansOf(name).find((s) => s.kind === 2),
          { what: "the server span" },
        );
        const raw = await waitFor(
          () => app.stdout.find((l) => l.startsWith("{")),
          { what: "the log line on stdout" },
        );
        const line = JSON.parse(raw) as Record<string, unknown>;
        assert.equal(line["path"], "[Redacted]");
        assert.equal(line["trace_id"], server.traceId);
      } finally {
        await app.stop();
      }
      assert.deepEqual(
        app.stderr.filter((l) => l.includes("threadline")),
        [],
        "no warnings",
      );
    });

  it("warns when pino was compiled past the load hooks, from source an ES module loader handed Node", async () => {
    const app = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: [
        "--import",
        "@threadline/node/register",
        "--import",
        "./own-esm-loader.mjs",
      ],
      env: env("svc-esm-loader"),
    });
    try {
      await waitFor(() => app.stderr.some((l) => l.includes("self-check")), {
        what: "the self-check's warning",
      });
    } finally {
      await app.stop();
    }
    const warnings = app.stderr.filter((l) => l.includes("self-check"));
    assert.equal(warnings.length, 1, app.stderr.join("\n"));
    assert.match(
      warnings[0]!,
      /pino was loaded by a loader that compiles files itself, past Threadline's module load hooks, so it is not instrumented and pino writes secrets unredacted; start Threadline after the other loaders \(node --import tsx --import @threadline\/node\/register app.ts\).*have the loader leave CommonJS files to Node/,
    );
  });

  it("loads none of Node's heavier modules to export or to poll the watch list", async () => {
    const name = "svc-modules";
    const watchReads = () =>
      receiver.attempts.filter((a) => a.path === "/threadline/v1/watch").length;
    const readsBefore = watchReads();
    const app = await startService({
      entry: "modules.cjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: env(name),
    });
    try {
      assert.equal((await fetch(`${app.url}/hello`)).status, 200);
      await waitFor(
        () =>
          spansOf(name).length > 0 &&
          receiver.logs.some((l) => l.resource["service.name"] === name) &&
          watchReads() > readsBefore,
        { what: "spans and logs exported and the watch list read" },
      );
      const loaded = (await (
        await fetch(`${app.url}/modules`)
      ).json()) as string[];
      assert.ok(loaded.includes("NativeModule http"), "the list is Node's");
      // fetch()'s undici, http2, fs/promises (and the readline it pulls in),
      // zlib without compression, https and tls in a service that serves
      // plain http, node:util's lazily loaded parts: megabytes of memory in
      // every service.
      for (const heavy of [
        "internal/deps/undici/undici",
        "http2",
        "fs/promises",
        "zlib",
        "https",
        "tls",
        "internal/util/parse_args/parse_args",
      ])
        assert.ok(
          !loaded.includes(`NativeModule ${heavy}`),
          `${heavy} was loaded`,
        );
    } finally {
      await app.stop();
    }
  });

  for (const listenAfterMs of [0, 100])
    it(`traces an https server whose application loads node:https after Threadline started, listening ${listenAfterMs} ms later`, async () => {
      const name = `svc-late-https-${listenAfterMs}`;
      const { key, cert } = selfSignedCertificate("late-https", "IP:127.0.0.1");
      const app = await startService({
        entry: "late-https.cjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: {
          ...env(name),
          TLS_KEY: key,
          TLS_CERT: cert,
          LISTEN_AFTER_MS: String(listenAfterMs),
        },
      });
      try {
        const body = await new Promise<string>((resolve, reject) => {
          https
            .get(`https://127.0.0.1:${app.port}/first`, { ca: cert }, (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (chunk: string) => (text += chunk));
              res.on("end", () => resolve(text));
            })
            .on("error", reject);
        });
        assert.equal(body, "secure /first");
        const [span] = await waitFor(
          () => {
            const found = spansOf(name).filter((s) => s.kind === 2);
            return found.length > 0 ? found : undefined;
          },
          { what: "the https request's SERVER span" },
        );
        assert.equal(span!.attributes["url.scheme"], "https");
        assert.equal(span!.attributes["url.path"], "/first");
        assert.deepEqual(
          app.stderr.filter((l) => l.includes("threadline")),
          [],
          "no warnings",
        );
      } finally {
        await app.stop();
      }
    });

  it("init() in code flushes everything on shutdown() and honours options", async () => {
    const target = await startRecordingServer();
    try {
      const app = await startService({
        entry: "programmatic.mjs",
        cwd: fixtures,
        ready: false,
        env: {
          ...env("ignored"),
          OTEL_BSP_SCHEDULE_DELAY: "60000",
          OTEL_BLRP_SCHEDULE_DELAY: "60000",
          TARGET_URL: target.url,
        },
      });
      const { code } = await app.exited;
      assert.equal(code, 0, app.stderr.join("\n"));
      const spans = spansOf("programmatic");
      assert.deepEqual(spans.map((s) => s.name).sort(), ["GET", "job"]);
      for (const s of spans) {
        assert.equal(s.attributes["customer.id"], "c-9");
        assert.equal(s.resource["deployment.environment.name"], "test");
      }
      assert.equal(target.requests[0]?.headers["baggage"], "customer.id=c-9");
      const stats = JSON.parse(app.stdout.at(-1)!) as {
        traces: { created: number; exported: number };
        logs: { exported: number };
      };
      assert.equal(stats.traces.created, 2);
      assert.equal(stats.traces.exported, 2);
      assert.equal(stats.logs.exported, 1);
    } finally {
      await target.close();
    }
  });

  it("warns once when pino was loaded before Threadline, and still correlates its loggers", async () => {
    const app = await startService({
      entry: "late-pino.mjs",
      cwd: fixtures,
      ready: false,
      env: env("late"),
    });
    await app.exited;
    const warnings = app.stderr.filter((l) => l.includes("self-check"));
    assert.equal(warnings.length, 1, app.stderr.join("\n"));
    assert.match(warnings[0]!, /pino was loaded before Threadline started/);
    assert.match(warnings[0]!, /without secret redaction/);
    const line = JSON.parse(
      app.stdout.find((l) => l.includes("correlated anyway"))!,
    ) as Record<string, unknown>;
    assert.match(String(line["trace_id"]), /^[0-9a-f]{32}$/);
  });

  it("warns when Express was loaded before Threadline", async () => {
    const app = await startService({
      entry: "late-express.mjs",
      cwd: fixtures,
      ready: false,
      env: env("late-express"),
    });
    await app.exited;
    const warnings = app.stderr.filter((l) => l.includes("self-check"));
    assert.equal(warnings.length, 1, app.stderr.join("\n"));
    assert.match(warnings[0]!, /express was loaded before Threadline started/);
  });

  it("warns when incoming requests would not be traced", async () => {
    const app = await startService({
      entry: "emit-replaced.mjs",
      cwd: fixtures,
      ready: false,
      env: env("replaced"),
    });
    await app.exited;
    assert.ok(
      app.stderr.some((l) =>
        /self-check: incoming http requests are not traced/.test(l),
      ),
      app.stderr.join("\n"),
    );
  });

  it("starts, warns and redacts the rest when pino refuses a THREADLINE_LOG_REDACT path", async () => {
    const app = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: ["-r", "@threadline/node/register"],
      env: { ...env("redacting"), THREADLINE_LOG_REDACT: "path,a[" },
    });
    try {
      assert.equal((await fetch(`${app.url}/secret`)).status, 200);
      const line = await waitFor(
        () => app.stdout.find((l) => l.includes('"hello"')),
        { what: "the log line" },
      );
      assert.equal(JSON.parse(line).path, "[Redacted]");
    } finally {
      await app.stop();
    }
    assert.ok(
      app.stderr.some((l) =>
        l.includes('pino refused the redaction paths "a["'),
      ),
      app.stderr.join("\n"),
    );
  });

  it("does not warn about instrumentations that were left off", async () => {
    const app = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: ["-r", "@threadline/node/register"],
      env: { ...env("http-only"), OTEL_NODE_ENABLED_INSTRUMENTATIONS: "http" },
    });
    try {
      assert.equal((await fetch(`${app.url}/hello`)).status, 200);
      await waitFor(() => spansOf("http-only").find((s) => s.kind === 2), {
        what: "the server span",
      });
    } finally {
      await app.stop();
    }
    assert.deepEqual(
      app.stderr.filter((l) => l.includes("self-check")),
      [],
    );
  });

  it("takes the customer id from customerFromRequest at the edge, ignoring the header", async () => {
    const app = await startService({
      entry: "customer-function.mjs",
      cwd: fixtures,
      env: env("ignored"),
    });
    try {
      await fetch(`${app.url}/a`, {
        headers: {
          authorization: "Bearer customer:c-77",
          "x-customer-id": "c-1",
        },
      });
      await fetch(`${app.url}/b`, { headers: { "x-customer-id": "c-1" } });
      const spans = await waitFor(
        () =>
          spansOf("custom-customer").filter((s) => s.kind === 2).length >= 2 &&
          spansOf("custom-customer"),
        { what: "two server spans" },
      );
      const byPath = (p: string) =>
        spans.find((s) => s.attributes["url.path"] === p)!;
      assert.equal(byPath("/a").attributes["customer.id"], "c-77");
      assert.equal(byPath("/b").attributes["customer.id"], undefined);
    } finally {
      await app.stop();
    }
  });

  it("takes a numeric id from customerFromRequest as its digits", async () => {
    const app = await startService({
      entry: "customer-lookup.mjs",
      cwd: fixtures,
      env: { ...env("ignored"), LOOKUP: "number" },
    });
    try {
      const res = await fetch(app.url, { headers: { "x-account": "42" } });
      assert.deepEqual(await res.json(), { customer: "42" });
      const span = await waitFor(
        () => spansOf("customer-lookup-number").find((s) => s.kind === 2),
        { what: "the server span" },
      );
      assert.equal(span.attributes["customer.id"], "42");
    } finally {
      await app.stop();
    }
  });

  it("warns once that customerFromRequest must not return a promise", async () => {
    const app = await startService({
      entry: "customer-lookup.mjs",
      cwd: fixtures,
      env: { ...env("ignored"), LOOKUP: "async" },
    });
    try {
      for (const account of ["7", "8"]) {
        const res = await fetch(app.url, { headers: { "x-account": account } });
        assert.deepEqual(await res.json(), { customer: null });
      }
    } finally {
      // Stopped first: its stderr is complete once it has exited.
      await app.stop();
    }
    const warned = app.stderr.filter((l) =>
      l.includes("customerFromRequest returned"),
    );
    assert.equal(warned.length, 1, app.stderr.join("\n"));
    assert.match(warned[0]!, /synchronously, as a string/);
  });

  /**
   * Runs `entry` (a tool that starts hello.cjs as a child process) with
   * NODE_OPTIONS loading Threadline, and checks that only the application
   * started it: its health port is the application's, and one process
   * exports as the service.
   */
  async function startsInTheApplicationOnly(
    name: string,
    start: { entry: string; args: string[]; cwd: string },
    more: Record<string, string> = {},
  ) {
    const healthPort = await freePort();
    const app = await startService({
      ...start,
      env: {
        ...env(name),
        NODE_OPTIONS: "--import @threadline/node/register",
        THREADLINE_HEALTH_PORT: String(healthPort),
        OTEL_METRIC_EXPORT_INTERVAL: "100",
        ...more,
      },
    });
    try {
      assert.equal(await (await fetch(`${app.url}/hello`)).text(), "hi");
      await waitFor(
        () => spansOf(name).some((s) => s.attributes["url.path"] === "/hello"),
        { what: "the application's span" },
      );
      const ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
      assert.equal(ready.status, 200);
      await waitFor(
        () => receiver.metrics.some((m) => m.resource["service.name"] === name),
        { what: "the application's metrics" },
      );
      // A few more export intervals, for the tool's to come if it started too.
      await new Promise((done) => setTimeout(done, 500));
      const pids = new Set(
        [...receiver.spans, ...receiver.metrics]
          .filter((r) => r.resource["service.name"] === name)
          .map((r) => r.resource["process.pid"]),
      );
      assert.equal(pids.size, 1, [...pids].join(", "));
      assert.ok(!pids.has(app.child.pid), `${name}: the tool exported`);
      assert.deepEqual(
        app.stderr.filter((l) => l.includes("could not listen")),
        [],
      );
    } finally {
      await app.stop();
    }
  }

  it("starts in the application, not in npm, when NODE_OPTIONS loads it for `npm start`", async () => {
    // npm as a container's `CMD npm start` runs it: the file on PATH (a
    // link into npm's package, most often), under this Node, which the
    // script's `node` is too.
    const bin = dirname(process.execPath);
    const PATH = [bin, process.env["PATH"] ?? ""].join(delimiter);
    const npm = PATH.split(delimiter)
      .map((dir) => join(dir, "npm"))
      .find((file) => existsSync(file));
    assert.ok(npm, "npm is on PATH");
    await startsInTheApplicationOnly(
      "npm-started",
      { entry: npm, args: ["start"], cwd: join(fixtures, "npm-script") },
      { npm_config_update_notifier: "false", PATH },
    );
  });

  describe("under a launcher that runs the application as its child", () => {
    // Each launcher's files as its package installs them, the command on
    // PATH a link into it, each starting the application as they do: a
    // child process of Node with the same environment. (Their own work,
    // compiling TypeScript, watching files, keeping processes up, plays no
    // part here.)
    const LAUNCHERS: Array<[string, string, string, string | undefined]> = [
      // [package, file in it, what runs it, its link in node_modules/.bin]
      ["tsx", "dist/cli.mjs", "tsx", "tsx"],
      ["nodemon", "bin/nodemon.js", "nodemon", "nodemon"],
      ["pm2", "bin/pm2-runtime", "pm2-runtime", "pm2-runtime"],
      // The daemon `pm2 start` leaves running, which forks the application.
      ["pm2", "lib/Daemon.js", "pm2's daemon", undefined],
      ["@nestjs/cli", "bin/nest.js", "nest start", "nest"],
      ["ts-node-dev", "lib/bin.js", "ts-node-dev", "ts-node-dev"],
      ["node-dev", "bin/node-dev", "node-dev", "node-dev"],
      ["cross-env", "src/bin/cross-env.js", "cross-env", "cross-env"],
      ["concurrently", "dist/bin/concurrently.js", "concurrently", undefined],
    ];
    // As a module or a script alike (tsx's is a module).
    const LAUNCH = `const { spawn } = process.getBuiltinModule("node:child_process");
const child = spawn(process.execPath, process.argv.slice(2), { stdio: "inherit" });
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => child.kill(s));
child.on("exit", (code) => process.exit(code ?? 1));
`;
    let root: string;
    before(() => {
      root = mkdtempSync(join(tmpdir(), "threadline-launchers-"));
      mkdirSync(join(root, "node_modules", ".bin"), { recursive: true });
      for (const [pkg, file, , link] of LAUNCHERS) {
        const dir = join(root, "node_modules", pkg);
        mkdirSync(join(dir, dirname(file)), { recursive: true });
        writeFileSync(join(dir, "package.json"), JSON.stringify({ name: pkg }));
        writeFileSync(join(dir, file), LAUNCH);
        if (link !== undefined)
          symlinkSync(
            join("..", pkg, file),
            join(root, "node_modules", ".bin", link),
          );
      }
    });
    after(() => rmSync(root, { recursive: true, force: true }));
    for (const [pkg, file, what, link] of LAUNCHERS)
      it(`starts in the application, not in ${what}, when NODE_OPTIONS loads it`, async () => {
        const entry =
          link === undefined
            ? join(root, "node_modules", pkg, file)
            : join(root, "node_modules", ".bin", link);
        await startsInTheApplicationOnly(
          `${what.replace(/\W+/g, "-")}-started`,
          { entry, args: [join(fixtures, "hello.cjs")], cwd: fixtures },
        );
      });
  });

  it("does nothing at all with OTEL_SDK_DISABLED=true", async () => {
    const before = receiver.requests.length;
    const app = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: { ...env("disabled"), OTEL_SDK_DISABLED: "true" },
    });
    try {
      assert.equal(await (await fetch(`${app.url}/hello`)).text(), "hi");
      const raw = await waitFor(
        () => app.stdout.find((l) => l.startsWith("{")),
        { what: "the log line" },
      );
      const line = JSON.parse(raw) as Record<string, unknown>;
      assert.equal(line["trace_id"], undefined);
    } finally {
      await app.stop();
    }
    assert.equal(receiver.requests.length, before);
  });
});
