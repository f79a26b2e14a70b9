import assert from "node:assert/strict";
import { it } from "node:test";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { partOfUrl, placeOf, sourceOf } from "../src/parts.ts";

const repo = new URL("../../", import.meta.url);
const inRepo = (path: string) => new URL(path, repo).href;

it("names the project's packages, npm packages, Node's modules and native frames", () => {
  assert.equal(
    placeOf(inRepo("packages/otlp/dist/trace-encoder.js")),
    "threadline:otlp/dist/trace-encoder.js",
  );
  assert.equal(
    placeOf(inRepo("node_modules/@opentelemetry/api/build/src/index.js")),
    "@opentelemetry/api",
  );
  assert.equal(placeOf("/srv/app/node_modules/pg/lib/client.js"), "pg");
  assert.equal(placeOf("node:events"), "node:events");
  assert.equal(placeOf(""), "(native/gc)");
  assert.equal(
    placeOf(pathToFileURL("/srv/app/server.js").href),
    "app/server.js",
  );
});

it("tells Threadline's instrumentation from its export, the application and Node.js", () => {
  const parts = Object.entries({
    "packages/otlp/dist/trace-encoder.js": "export",
    "packages/node/dist/export/pipeline.js": "export",
    "packages/node/dist/trace/tracer.js": "instrumentation",
    "instrumentations/http/dist/http-instrumentation.js": "instrumentation",
    "node_modules/@opentelemetry/api/build/src/api/context.js":
      "instrumentation",
    "node_modules/pg/lib/client.js": "application",
    "bench/services/realistic.cjs": "application",
  }).map(([path, part]) => [partOfUrl(inRepo(path)), part]);
  for (const [got, want] of parts) assert.equal(got, want);
  // CommonJS modules are named by path, ES modules by URL.
  assert.equal(
    partOfUrl(new URL("instrumentations/pg/dist/x.js", repo).pathname),
    "instrumentation",
  );
  assert.equal(partOfUrl("node:events"), "node");
});

it("follows a bundled file of Threadline's back to the TypeScript its code came from", () => {
  // The published packages join their modules into lib/ (scripts/bundle.mjs);
  // a profile of them must still tell the tracer from the exporter.
  const lib = new URL("packages/node/lib/", repo);
  const where = (code: RegExp) => {
    for (const file of readdirSync(lib).filter((f) => f.endsWith(".js"))) {
      const lines = readFileSync(new URL(file, lib), "utf8").split("\n");
      const line = lines.findIndex((l) => code.test(l));
      if (line >= 0)
        return sourceOf(
          new URL(file, lib).href,
          line,
          lines[line]!.search(code),
        );
    }
    throw new Error(`${code} is in no file of ${fileURLToPath(lib)}`);
  };
  const pipeline = where(/\bclass ExportPipeline\b|\bExportPipeline = class\b/);
  assert.equal(pipeline.url, inRepo("packages/node/src/export/pipeline.ts"));
  assert.equal(partOfUrl(pipeline.url), "export");
  const tracer = where(/\bstartSpan\(name,/);
  assert.equal(tracer.url, inRepo("packages/node/src/trace/tracer.ts"));
  assert.equal(partOfUrl(tracer.url), "instrumentation");
  // Where no map is, the place stays as it was.
  assert.deepEqual(sourceOf("node:events", 3, 4), {
    url: "node:events",
    line: 3,
    column: 4,
  });
});
