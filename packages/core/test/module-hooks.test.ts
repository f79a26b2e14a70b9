import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { hookModule, modulesLeftUnhooked } from "../src/module-hooks.ts";

type Extensions = Record<string, unknown>;

describe("module hooks", () => {
  it("names the hooked modules only when the loader wrapper is missing", () => {
    const extensions = (Module as unknown as { _extensions: Extensions })
      ._extensions;
    const hook = hookModule({
      module: "left-out",
      file: "index.js",
      onLoad: () => undefined,
    });
    // Ours, put back after each change below.
    const js = extensions[".js"];
    try {
      assert.deepEqual(modulesLeftUnhooked(), []);
      // As in a bundle or a runtime without the CommonJS loader's table.
      delete extensions[".js"];
      assert.deepEqual(modulesLeftUnhooked(), ["left-out"]);
    } finally {
      extensions[".js"] = js;
      hook.unhook();
    }
    delete extensions[".js"];
    try {
      assert.deepEqual(modulesLeftUnhooked(), [], "nothing asked for a hook");
    } finally {
      extensions[".js"] = js;
    }
  });

  it("runs a hook once when a later .js loader calls the one it replaced", () => {
    const extensions = (Module as unknown as { _extensions: Extensions })
      ._extensions;
    const dir = mkdtempSync(join(tmpdir(), "threadline-hooks-"));
    const pkg = join(dir, "node_modules", "chained");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "index.js"), "module.exports = { n: 1 };");
    let calls = 0;
    const hook = hookModule({
      module: "chained",
      file: "index.js",
      onLoad: (exports) => {
        calls++;
        return { replaced: exports };
      },
    });
    type Load = (module: unknown, filename: string) => void;
    const ours = extensions[".js"] as Load;
    assert.equal(ours.name, "threadlineLoad");
    // As a loader that compiles some files itself and leaves the rest to
    // the loader it found.
    extensions[".js"] = (module: unknown, filename: string) =>
      ours(module, filename);
    try {
      const loaded = createRequire(join(dir, "index.js"))("chained") as {
        replaced?: unknown;
      };
      assert.deepEqual(loaded, { replaced: { n: 1 } });
      assert.equal(calls, 1);
    } finally {
      extensions[".js"] = ours;
      hook.unhook();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
