// Applications built into one file with a bundler, run as their users run
// them: what is inside the bundle cannot be hooked, and what is missing
// beside it cannot be loaded, but the service must start and say so.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import {
  exitWithin,
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "threadline-bundled-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("Threadline bundled into a CommonJS application", () => {
  let receiver: OtlpReceiver;
  const bundle = join(dir, "app.cjs");
  before(async () => {
    receiver = await startOtlpReceiver();
    await build({
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
