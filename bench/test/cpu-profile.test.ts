import assert from "node:assert/strict";
import { it } from "node:test";
import { pathToFileURL } from "node:url";
import { placeOf, timeByPart, type CpuProfile } from "../src/cpu-profile.ts";

const repo = new URL("../../", import.meta.url);
const inRepo = (path: string) => new URL(path, repo).href;

const frames = [
  { functionName: "(root)", url: "" },
  {
    functionName: "writeSpan",
    url: inRepo("packages/otlp/dist/trace-encoder.js"),
  },
  {
    functionName: "onEnd",
    url: inRepo("packages/node/dist/export/pipeline.js"),
  },
  {
    functionName: "startSpan",
    url: inRepo("packages/node/dist/trace/tracer.js"),
  },
  {
    functionName: "threadlineEmit",
    url: inRepo("instrumentations/http/dist/http-instrumentation.js"),
  },
  {
    functionName: "with",
    url: inRepo("node_modules/@opentelemetry/api/build/src/api/context.js"),
  },
  { functionName: "query", url: inRepo("node_modules/pg/lib/client.js") },
  { functionName: "emit", url: "node:events" },
  { functionName: "writev", url: "" },
  { functionName: "(garbage collector)", url: "" },
  { functionName: "(idle)", url: "" },
];

/** One sample per frame after the root, 10 µs apart, starting at 1000 µs. */
const profile: CpuProfile = {
  nodes: frames.map((callFrame, id) => ({
    id,
    callFrame: { ...callFrame, lineNumber: 0 },
  })),
  samples: frames.slice(1).map((_, i) => i + 1),
  timeDeltas: frames.slice(1).map(() => 10),
  startTime: 1000,
};

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

it("splits self time into parts and leaves idle time out", () => {
  assert.deepEqual(timeByPart(profile), {
    instrumentation: 30, // tracer, http instrumentation, the API
    export: 20, // encoder and pipeline
    application: 10,
    node: 10,
    native: 10,
    gc: 10,
  });
});

it("counts only the samples inside the window", () => {
  // Samples are stamped 1010, 1020, … 1100: the window holds the 4th to the 7th.
  const parts = timeByPart(profile, 1040, 1070);
  assert.deepEqual(parts, {
    instrumentation: 20,
    export: 0,
    application: 10,
    node: 10,
    native: 0,
    gc: 0,
  });
});
