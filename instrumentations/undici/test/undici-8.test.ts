// The undici tests against undici 8, as an application installs it
// (installed here under the name undici-8, beside undici 7). undici 8
// needs Node 22.19 or later; the packages accept 22.15.
import { test } from "node:test";
import { undiciTests, type Undici } from "./undici-suite.ts";

const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major > 22 || (major === 22 && minor >= 19)) {
  // undici 8's types differ from undici 7's in the dispatcher handler API,
  // which the tests do not use; the calls they make are the same in both.
  undiciTests((await import("undici-8")) as unknown as Undici, 8);
} else {
  test("undici 8", {
    skip: `undici 8 needs Node 22.19 or later, this is ${process.version}`,
  });
}
