// The broad parts the report splits a thread's CPU time into, and where a
// JavaScript function lives: one of Threadline's packages, an npm package,
// a Node.js module.
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository's root directory, a prefix of its own modules' paths. */
const REPO_PATH = fileURLToPath(new URL("../../", import.meta.url));

/** Threadline's bundled files (see scripts/bundle.mjs), which join many sources. */
const BUNDLED = /^(?:packages|instrumentations)\/[^/]+\/lib\/[^/]+\.js$/;
const maps = new Map<string, SourceMap | undefined>();

/** The source map beside one of Threadline's bundled files; undefined for any other file. */
function sourceMapOf(path: string): SourceMap | undefined {
  if (
    !path.startsWith(REPO_PATH) ||
    !BUNDLED.test(path.slice(REPO_PATH.length))
  )
    return undefined;
  if (!maps.has(path)) {
    const file = `${path}.map`;
    maps.set(
      path,
      existsSync(file)
        ? new SourceMap(JSON.parse(readFileSync(file, "utf8")) as never)
        : undefined,
    );
  }
  return maps.get(path);
}

/**
 * Where the code at `url`, `line` and `column` (counted from 0) was
 * written: in one of Threadline's bundled files, the TypeScript source its
 * map names (so that a profile still tells the exporter from the tracer);
 * anywhere else, where it runs.
 */
export function sourceOf(
  url: string,
  line: number,
  column: number,
): { url: string; line: number; column: number } {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const entry = sourceMapOf(path)?.findEntry(line, column);
  if (entry === undefined || !("originalSource" in entry))
    return { url, line, column };
  return {
    url: new URL(entry.originalSource, pathToFileURL(path)).href,
    line: entry.originalLine,
    column: entry.originalColumn,
  };
}

/**
 * Where a function lives: an npm package name, `threadline:<package>/<file>`
 * for the project's own packages, a `node:` module, or `(native/gc)` for
 * code without a script (V8's and native code's pseudo-frames).
 */
export function placeOf(url: string): string {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  if (path.startsWith(REPO_PATH) && !path.includes("/node_modules/")) {
    const inRepo = path.slice(REPO_PATH.length).split("/");
    if (inRepo[0] === "packages" || inRepo[0] === "instrumentations")
      return `threadline:${inRepo.slice(1).join("/")}`;
  }
  if (path.includes("node_modules/")) {
    const after = path.slice(path.lastIndexOf("node_modules/") + 13);
    return after
      .split("/")
      .slice(0, after.startsWith("@") ? 2 : 1)
      .join("/");
  }
  if (path.startsWith("node:")) return path;
  if (path === "") return "(native/gc)";
  return path.split("/").slice(-2).join("/");
}

/** The package a place (see placeOf) belongs to: one of Threadline's, Node.js core, or the place itself. */
export function groupOf(where: string): string {
  if (where.startsWith("threadline:"))
    return `threadline ${where.split(":")[1]!.split("/")[0]}`;
  return where.startsWith("node:") ? "node core" : where;
}

export const PARTS = [
  "instrumentation",
  "export",
  "application",
  "node",
  "builtins",
  "native",
  "gc",
] as const;
export type Part = (typeof PARTS)[number];

export const PART_LABELS: Record<Part, string> = {
  instrumentation:
    "Threadline: instrumentation (contexts, spans, propagation, log correlation, request metrics)",
  export: "Threadline: export (encoding, log parsing, batching, sending)",
  application: "the application and its libraries",
  node: "Node.js core (JavaScript)",
  builtins:
    "V8's builtins, whichever function called them (string building, property and table lookups)",
  native: "native code and the kernel (system calls, sockets, files)",
  gc: "garbage collection (this thread's share)",
};

/** The part of a JavaScript function living at `url`. */
export function partOfUrl(url: string): Part {
  const place = placeOf(url);
  if (place.startsWith("threadline:"))
    return place.startsWith("threadline:otlp/") || place.includes("/export/")
      ? "export"
      : "instrumentation";
  // The API's context and propagation calls are made by the instrumentations.
  if (place === "@opentelemetry/api") return "instrumentation";
  if (place.startsWith("node:")) return "node";
  return "application";
}
