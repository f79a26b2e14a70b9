// Run by each package's prepack: puts the repository's LICENSE beside the
// package.json being packed, so the tarball carries the licence its
// "license" field names (npm packs a package's LICENSE file by itself).
import { copyFileSync } from "node:fs";

copyFileSync(new URL("../LICENSE", import.meta.url), "LICENSE");
