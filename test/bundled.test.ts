// Applications built into one file with a bundler, run as their users run
// them: what is inside the bundle cannot be hooked, and what is missing
// beside it cannot be loaded, but the service must start and say so.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { build as esbuild } from "esbuild";
import {
  exitWithin,
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "threadline-bundled-"));
// Where the packages a bundle leaves external are found, as beside an
// application's own.
symlinkSync(
  fileURLToPath(new URL("../node_modules", import.meta.url)),
  join(dir, "node_modules"),
);
after(() => rmSync(dir, { recursive: true, force: true }));

describe("Threadline bundled into a CommonJS application", () => {
  let receiver: OtlpReceiver;
  const bundle = join(dir, "app.cjs");
  before(async () => {
    receiver = await startOtlpReceiver();
    await esbuild({
      entryPoints: [join(fixtures, "bundle-entry.cjs")],
      bundle: true,
      platform: "node",
      format: "cjs",
      outfile: bundle,
      // import.meta is empty in CommonJS output, which esbuild warns about.
      logLevel: "silent",
    });
  });
  after(async () => {
    await receiver.close();
  });

  for (const thread of ["main", "worker"]) {
    it(`starts, traces, exports and says it is bundled (THREADLINE_EXPORT_THREAD=${thread})`, async () => {
      const name = `bundled-${thread}`;
      const app = await startService({
        entry: bundle,
        cwd: dir,
        env: {
          OTEL_SERVICE_NAME: name,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_BSP_SCHEDULE_DELAY: "50",
          THREADLINE_EXPORT_THREAD: thread,
        },
      });
      try {
        assert.equal(await (await fetch(`${app.url}/hello`)).text(), "hi");
        await waitFor(
          () =>
            receiver.spans.some(
              (s) =>
                s.resource["service.name"] === name &&
                s.attributes["url.path"] === "/hello",
            ),
          { what: "the request's span" },
        );
        await waitFor(
          () => app.stderr.some((l) => l.includes("appears to be bundled")),
          { what: "the self-check's warning" },
        );
        if (thread === "worker")
          assert.ok(
            app.stderr.some((l) =>
              l.includes("THREADLINE_EXPORT_THREAD=worker is not possible"),
            ),
            app.stderr.join("\n"),
          );
        // process.exit() leaves no worker to send what is left: said, not thrown.
        await fetch(`${app.url}/exit`).catch(() => {});
        const { code } = await exitWithin(app, "the exit");
        assert.equal(code, 0, app.stderr.join("\n"));
        assert.ok(
          !app.stderr.some((l) => /TypeError|Error:/.test(l)),
          app.stderr.join("\n"),
        );
      } finally {
        await app.stop();
      }
    });
  }
});

describe("pg and pino bundled into an application, Threadline not", () => {
  const build = async (file: string, external: string[]) => {
    const outfile = join(dir, file);
    await esbuild({
      entryPoints: [join(fixtures, "bundle-libraries.mjs")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      external,
      // What ES module bundles of CommonJS libraries need to require Node's modules.
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
      logLevel: "silent",
    });
    return outfile;
  };
  const run = async (bundle: string) => {
    const app = await startService({
      entry: bundle,
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
    });
    try {
      assert.equal(await (await fetch(`${app.url}/hello`)).text(), "hi");
      // The self-check runs on the first turn of the event loop, long gone.
      await new Promise((done) => setTimeout(done, 200));
      return {
        warned: app.stderr.filter((l) => l.includes("self-check")),
        line: JSON.parse(
          app.stdout.find((l) => l.startsWith("{")) ?? "{}",
        ) as Record<string, unknown>,
      };
    } finally {
      await app.stop();
    }
  };

  it("says they are inside the bundle, untraced, and how to keep them out", async () => {
    const bundle = await build("libraries.mjs", ["pg-native"]);
    const { warned, line } = await run(bundle);
    assert.equal(line["trace_id"], undefined);
    assert.equal(warned.length, 1, warned.join("\n"));
    assert.match(
      warned[0]!,
      /pg and pino are bundled into .*libraries\.mjs.*not instrumented.*--packages=external/,
    );
  });

  it("says nothing when they are kept external, and they are traced", async () => {
    const bundle = await build("external.mjs", ["pg", "pino"]);
    const { warned, line } = await run(bundle);
    assert.deepEqual(warned, []);
    assert.match(String(line["trace_id"]), /^[0-9a-f]{32}$/);
  });
});
