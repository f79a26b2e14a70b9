import assert from "node:assert/strict";
import Module from "node:module";
import { describe, it } from "node:test";
import { hookModule, modulesLeftUnhooked } from "../src/module-hooks.ts";

type Extensions = Record<string, unknown>;

describe("module hooks", () => {
  it("names the hooked modules only when the loader wrapper is missing", () => {
    const extensions = (Module as unknown as { _extensions: Extensions })
      ._extensions;
    const js = extensions[".js"];
    const hook = hookModule({
      module: "left-out",
      file: "index.js",
      onLoad: () => undefined,
    });
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
});
