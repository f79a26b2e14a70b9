// Threadline runs on the Node its package.json's engines name, and on an
// older one leaves the application alone, saying why.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { unsupportedNode } from "../src/sdk.ts";

describe("the Node it runs on", () => {
  it("takes the Node versions package.json's engines name, and refuses older ones with a reason", () => {
    const engines = (
      JSON.parse(
        readFileSync(new URL("../package.json", import.meta.url), "utf8"),
      ) as { engines: { node: string } }
    ).engines.node;
    assert.equal(engines, ">=22.15");
    for (const version of ["22.15.0", "22.16.1", "23.0.0", "24.22.3", "30.1.0"])
      assert.equal(unsupportedNode(version), undefined, version);
    for (const version of ["20.20.2", "22.14.0", "22.2.0", "18.0.0"])
      assert.match(
        unsupportedNode(version) ?? "",
        new RegExp(
          `^Threadline needs Node 22\\.15 or later, and this is Node ${version.replaceAll(".", "\\.")}; the application runs without telemetry$`,
        ),
        version,
      );
    assert.equal(unsupportedNode(), undefined, "the Node running the tests");
  });
});
