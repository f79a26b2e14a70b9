// init() called from JavaScript, or with settings read at run time, may be
// given an option of another type than it takes: that option is warned
// about and left out, and the service starts with the rest, telemetry on.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
} from "@threadline/test-support";
import { MISTYPED_OPTIONS } from "../packages/node/test/mistyped-options.ts";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

describe("init() options of another type", () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  /** Runs the fixture with these options; its Threadline warnings. */
  async function run(name: string, options: unknown): Promise<string[]> {
    const app = await startService({
      entry: "mistyped-options.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        INIT_OPTIONS: JSON.stringify(options),
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRICS_EXPORTER: "none",
        THREADLINE_WATCH_URL: "none",
        THREADLINE_ALARMS: "false",
      },
    });
    const { code } = await exitWithin(app, "the service");
    const stderr = app.stderr.join("\n");
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      app.stdout,
      ["enabled true", "answer 200 ok"],
      `${app.stdout.join("\n")}\n${stderr}`,
    );
    assert.doesNotMatch(stderr, /could not start|threadline error/);
    // Telemetry flows all the same: the request's spans and its line.
    const spans = receiver.spans.filter(
      (s) => s.resource["service.name"] === name,
    );
    assert.deepEqual(
      spans
        .map((s) => `${s.kind === 2 ? "server" : "client"} ${s.name}`)
        .sort(),
      ["client GET", "server GET"],
      stderr,
    );
    assert.deepEqual(
      receiver.logs
        .filter((l) => l.resource["service.name"] === name)
        .map((l) => l.body),
      ["answered"],
    );
    return app.stderr.filter((l) => l.startsWith("threadline warn: "));
  }

  it("starts with the rest, and names each option once, what it was and what it takes", async () => {
    const warnings = await run("mistyped", MISTYPED_OPTIONS);
    for (const option of Object.keys(MISTYPED_OPTIONS))
      assert.equal(
        warnings.filter((w) => w.startsWith(`threadline warn: ${option} `))
          .length,
        1,
        `${option} in\n${warnings.join("\n")}`,
      );
    assert.ok(
      warnings.includes(
        "threadline warn: endpoint is a number, not a string or a URL; using OTEL_EXPORTER_OTLP_ENDPOINT",
      ),
      warnings.join("\n"),
    );
  });

  it("names the option, not its variable, for an entry of a trust list it cannot use", async () => {
    const warnings = await run("bad-entries", {
      trustedCallers: ["loopback", "gateway.internal"],
      trustedProxies: "10.0.0.0/33",
      internalHosts: ["*bad*"],
      thirdParties: { "https://x/y": "partner" },
    });
    for (const option of [
      "trustedCallers",
      "trustedProxies",
      "internalHosts",
      "thirdParties",
    ])
      assert.equal(
        warnings.filter((w) =>
          w.startsWith(`threadline warn: the ${option} option entry "`),
        ).length,
        1,
        `${option} in\n${warnings.join("\n")}`,
      );
    assert.doesNotMatch(warnings.join("\n"), /THREADLINE_/);
  });

  it("takes options that are no object as none, with a warning", async () => {
    for (const options of [null, "orders"])
      assert.deepEqual(await run(`options-${String(options)}`, options), [
        `threadline warn: init() takes an object of options, not ${options === null ? "null" : "a string"}; using the environment's settings`,
      ]);
  });
});
