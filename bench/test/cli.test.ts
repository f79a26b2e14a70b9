// The bench scripts refuse a bad command line before starting anything,
// with one line saying what is wrong and how they are used.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { it } from "node:test";

const src = fileURLToPath(new URL("../src/", import.meta.url));

function run(script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [src + script, ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

it("names an unknown option and shows the usage", () => {
  const r = run("run.ts", "--bogus");
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /^Unknown option '--bogus'\nusage: node bench\/src\/run\.ts /,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});

it("refuses a count that is not a positive whole number", () => {
  for (const [script, option] of [
    ["run.ts", "--rounds"],
    ["profile.ts", "--requests"],
    ["reliability.ts", "--rate"],
  ] as const)
    for (const value of ["x", "0", "-3", "2.5", ""]) {
      const r = run(script, `${option}=${value}`);
      assert.equal(r.status, 2, `${script} ${option} ${value}`);
      assert.match(
        r.stderr,
        new RegExp(
          `^${option} takes a positive whole number, not "${value}"\nusage: `,
        ),
      );
    }
});
