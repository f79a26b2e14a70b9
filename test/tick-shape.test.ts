// process.nextTick() stays on V8's fast path in an instrumented service.
//
// nextTick() queues an object literal with computed keys; V8 holds the hidden
// classes that literal's feedback remembers weakly, and full collections
// with no tick queued take them. The next tick then builds new classes and
// the feedback turns megamorphic for the life of the process: every tick
// defines its keys through the runtime. Threadline keeps one tick object
// alive so that cannot happen. The fixture provokes it and prints V8's view
// of nextTick's feedback.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

async function literalFeedback(execArgv: string[]): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--allow-natives-syntax", "--expose-gc", ...execArgv, "tick-feedback.cjs"],
    {
      cwd: fixtures,
      env: {
        ...process.env,
        OTEL_SERVICE_NAME: "tick-shape",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
      },
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return stdout
    .split("\n")
    .filter((l) => l.includes("DefineKeyedOwnPropertyInLiteral"));
}

describe("process.nextTick under Threadline", () => {
  it("keeps the tick literal's feedback monomorphic across full collections", async (t) => {
    // Whether a collection takes the classes depends on V8's own heuristics
    // (it retains recently used classes for a few collections), so the
    // uninstrumented process gets a few tries to show the problem.
    let bare: string[] = [];
    for (let i = 0; i < 3; i++) {
      bare = await literalFeedback([]);
      assert.ok(
        bare.length > 0,
        "V8 printed no feedback for nextTick's literal; the fixture needs updating for this Node.js",
      );
      if (bare.some((l) => l.includes("MEGAMORPHIC"))) break;
    }
    if (!bare.some((l) => l.includes("MEGAMORPHIC"))) {
      t.skip(
        "this Node.js keeps nextTick's feedback across collections without help",
      );
      return;
    }
    const instrumented = await literalFeedback([
      "-r",
      "@threadline/node/register",
    ]);
    assert.ok(instrumented.length > 0, "no feedback printed under Threadline");
    assert.deepEqual(
      instrumented.filter((l) => !l.includes("MONOMORPHIC")),
      [],
      "nextTick's literal went megamorphic under Threadline",
    );
  });
});
