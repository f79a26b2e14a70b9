// pino's root loggers keep fast properties in an instrumented service.
//
// pino() gives a logger more properties than V8 keeps in fast mode on an
// ordinary object, so every property pino reads while writing a line is a
// hash lookup; Threadline has V8 make the loggers pino() returns fast. The
// fixture logs with a root logger and prints V8's view of it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

async function loggerShape(
  execArgv: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--allow-natives-syntax", ...execArgv, "pino-shape.cjs"],
    {
      cwd: fixtures,
      env: {
        ...process.env,
        OTEL_SERVICE_NAME: "pino-shape",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
        ...env,
      },
    },
  );
  return stdout.trim();
}

describe("pino under Threadline", () => {
  it("keeps a root logger's properties fast", async (t) => {
    const bare = await loggerShape([]);
    assert.ok(
      bare === "fast" || bare === "dictionary",
      `the fixture printed ${JSON.stringify(bare)}`,
    );
    if (bare === "fast") {
      t.skip("this pino and Node.js keep root loggers fast without help");
      return;
    }
    assert.equal(
      await loggerShape(["-r", "@threadline/node/register"]),
      "fast",
    );
    // With redaction off, pino() is wrapped for this alone.
    assert.equal(
      await loggerShape(["-r", "@threadline/node/register"], {
        THREADLINE_LOG_REDACT: "false",
      }),
      "fast",
    );
  });
});
