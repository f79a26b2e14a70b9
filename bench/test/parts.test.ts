import assert from "node:assert/strict";
import { it } from "node:test";
import { pathToFileURL } from "node:url";
import { partOfUrl, placeOf } from "../src/parts.ts";

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
