// The servers the production tier starts (scripts/backends/common.mjs) are
// stopped in the script's last steps, with nothing else keeping Node's event
// loop alive.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { it } from "node:test";

const common = new URL("../scripts/backends/common.mjs", import.meta.url).href;

it("a server that ignores SIGTERM is killed, and its stop() resolves", () => {
  const script = `
    import { startProcess } from ${JSON.stringify(common)};
    const p = startProcess("bash", ["-c", "trap '' TERM; sleep 30"], {
      env: process.env,
      name: "stubborn",
    });
    await new Promise((r) => setTimeout(r, 300));
    await p.stop(500);
    console.log("stopped", p.child.signalCode);
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "stopped SIGKILL");
});
