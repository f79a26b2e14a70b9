// A container's `CMD ["node", "server.js"]` without --init makes Node PID 1
// of its PID namespace, and the kernel drops a signal whose action is the
// default for it: a service that handles no SIGTERM goes on serving. With
// Threadline there, its telemetry must go on as well. Run in a PID
// namespace of its own, as a container runs it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"];

// Creating a PID namespace needs root or user namespaces, which many
// machines and CI containers do not allow.
const probe = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), "true"], {
  stdio: "ignore",
});
const skip =
  probe.status === 0
    ? false
    : `unshare cannot create a PID namespace here (${probe.error?.message ?? `exit ${probe.status}`})`;

/** The process whose parent is `parent`: Node, started by unshare. */
function childOf(parent: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (new RegExp(`^PPid:\\s+${parent}$`, "m").test(status))
        return Number(entry);
    } catch {
      // Ended meanwhile.
    }
  }
  return undefined;
}

describe("Node as PID 1 of a container", { skip }, () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  it("goes on serving and sending telemetry after a SIGTERM nobody handles", async () => {
    const name = "pid-one";
    const app = await startService({
      entry: "pid-one.mjs",
      cwd: fixtures,
      launcher: UNSHARE,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_METRIC_EXPORT_INTERVAL: "300",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "cumulative",
      },
    });
    const node = childOf(app.child.pid!);
    try {
      assert.match(app.stdout.join("\n"), /as pid 1$/m);
      assert.ok(node, "Node's process under unshare");
      const spans = () =>
        receiver.spans.filter((s) => s.resource["service.name"] === name);
      const serverSpan = (path: string) =>
        spans().find((s) => s.kind === 2 && s.attributes["url.path"] === path);

      assert.equal(await (await fetch(`${app.url}/quick`)).text(), "ok");
      const slow = fetch(`${app.url}/slow`).then((r) => r.text());
      await new Promise((r) => setTimeout(r, 200));
      process.kill(node, "SIGTERM");
      const signalled = receiver.metrics.length;
      // Long enough for a flush and a re-raise to have ended the process.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(app.child.exitCode, null, "the process ended");
      assert.equal(await (await fetch(`${app.url}/after`)).text(), "ok");
      assert.equal(await slow, "slow");

      const afterSpan = await waitFor(() => serverSpan("/after"), {
        what: "the span of a request served after the signal",
      });
      assert.equal(afterSpan.status.code, 0);
      const slowSpan = await waitFor(() => serverSpan("/slow"), {
        what: "the span of the request in flight at the signal",
      });
      assert.equal(slowSpan.attributes["threadline.unfinished"], undefined);
      assert.notEqual(slowSpan.status.code, 2, slowSpan.status.message);
      // The metrics go on: an export after the signal counts all three.
      await waitFor(
        () =>
          receiver.metrics
            .slice(signalled)
            .filter(
              (m) =>
                m.name === "http.server.request.duration" &&
                m.resource["service.name"] === name,
            )
            .some(
              (m) => m.points.reduce((n, p) => n + (p.count ?? 0), 0) >= 3,
            ) || undefined,
        { what: "request metrics counting the requests after the signal" },
      );
      assert.equal(
        app.stderr.filter((l) => /unfinished|SIGTERM/i.test(l)).join("\n"),
        "",
      );
    } finally {
      // unshare passes no signal on: Node's process is killed itself, and
      // its namespace, and unshare, end with it.
      if (node !== undefined) process.kill(node, "SIGKILL");
      await app.stop("SIGKILL");
    }
  });
});
