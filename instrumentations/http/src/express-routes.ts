// The route template of an Express request across mounted routers.
//
// Express leaves `req.route.path` (the leaf route's pattern) and
// `req.baseUrl`, but `baseUrl` is the path the mounts matched, parameter
// values included: `/api/users/42` for a router mounted at
// `/api/users/:userId`. A route built from it would put a user id in every
// span name and in the request-duration metric's labels. So the router's
// Layer (Express 4: express/lib/router/layer.js; Express 5: the router
// package's lib/layer.js) is hooked as it loads: each layer keeps the
// pattern it was made with, and a request handed into a mounted layer
// carries that pattern until the layer hands it on with next().
//
// A request that leaves its route's mounts (an error handled further out,
// or next() past the last layer) is named as it leaves, while the mounts
// are still known: by the route's template when it failed or had answered,
// by no route when the route passed it on unanswered. So is one that a
// later middleware of the route's own router gets, and one that reaches
// Express's final handler (finalhandler) from a route under no mount, which
// meets no hooked layer on its way there. Express keeps `req.route` on the
// last route reached, so only these exits write to the request.
import { hookModule } from "@threadline/core";
import type { IncomingMessage } from "node:http";

const PATTERN = Symbol("threadline.express.pattern");
const MOUNTS = Symbol("threadline.express.mounts");
/** A layer's mount pattern, worked out on its first request (null: none). */
const MOUNT = Symbol("threadline.express.mount");
/** The route that left its place in the routers, and its name then (null: none). */
const LEFT_ROUTE = Symbol("threadline.express.leftRoute");
const LEFT_NAME = Symbol("threadline.express.leftName");

/** Express 4's layers were made before the hook: their mounts go unnoted. */
let layersWithoutPatterns = false;

/** An array or regular expression route's path as text, made once (null: none). */
const PATH_TEXT = Symbol("threadline.express.pathText");

interface Route {
  path?: unknown;
  [PATH_TEXT]?: string | null;
}

interface RouteRequest {
  route?: Route;
  baseUrl?: unknown;
  [MOUNTS]?: string[];
  [LEFT_ROUTE]?: unknown;
  [LEFT_NAME]?: string | null;
}

interface Layer {
  route?: unknown;
  rawPath?: unknown;
  method?: unknown;
  [PATTERN]?: unknown;
  [MOUNT]?: string | null;
}
type Handle = (
  this: Layer,
  req: unknown,
  res: unknown,
  next: unknown,
) => unknown;
type LayerConstructor = {
  (this: Layer, path: unknown, options: unknown, fn: unknown): unknown;
  prototype: Record<string, unknown>;
};

/**
 * A path as the application wrote it: a string as is, a regular expression
 * as its literal (`/^\/legacy\/(\d+)$/`), an array as its paths joined with
 * "," (Express does not keep which one matched; OpenTelemetry's express
 * instrumentation names them the same way).
 */
function patternText(p: unknown): string | undefined {
  if (typeof p === "string") return p;
  if (p instanceof RegExp) return String(p);
  if (Array.isArray(p)) return p.map((one) => patternText(one) ?? "").join(",");
  return undefined;
}

/** What a mount adds to the route: `/api/users/:userId`; nothing for `/`. */
function mountPattern(layer: Layer): string | undefined {
  const p = layer.rawPath ?? layer[PATTERN];
  const one: unknown = Array.isArray(p) && p.length === 1 ? p[0] : p;
  const text = patternText(one);
  if (text === undefined) return undefined;
  // A path's trailing slash adds nothing; a regular expression's closing
  // slash is its literal's.
  const last: unknown = Array.isArray(one) ? one.at(-1) : one;
  const trimmed =
    text.endsWith("/") && !(last instanceof RegExp) ? text.slice(0, -1) : text;
  return trimmed === "" ? undefined : trimmed;
}

/** The template of `route` reached through the mounts the request is in. */
function templateOf(req: RouteRequest, route: Route): string | undefined {
  const path =
    typeof route.path === "string"
      ? route.path
      : (route[PATH_TEXT] ??= patternText(route.path) ?? null);
  if (path === null) return undefined;
  const mounts = req[MOUNTS];
  // No mounts entered: the route is the app's own, unless its layers keep
  // no pattern (Express 4 loaded before Threadline) and its mounts went
  // unnoted: for them, the matched path. baseUrl is the path of the layer
  // running now, which for an error handler under a path is not the route's.
  const base =
    mounts !== undefined
      ? mounts.join("")
      : layersWithoutPatterns && typeof req.baseUrl === "string"
        ? req.baseUrl
        : "";
  return base + path || "/";
}

/**
 * The request leaves the route it reached, unless it has none or already
 * left it (`failure`: with an error). A failed route, or one that answered
 * before, keeps its name; one that passed an unanswered request on names
 * nothing: a later route names it, or none does (a 404).
 */
function leaveRoute(req: RouteRequest, res: unknown, failure: unknown): void {
  const route = req.route;
  if (route === undefined || req[LEFT_ROUTE] === route) return;
  req[LEFT_ROUTE] = route;
  req[LEFT_NAME] =
    failure || (res as { headersSent?: unknown } | null)?.headersSent === true
      ? (templateOf(req, route) ?? null)
      : null;
}

function wrapHandle(original: Handle): Handle {
  return function threadlineLayerHandle(this: Layer, req, res, next) {
    // A route's own layers add nothing.
    if (
      this.route !== undefined ||
      typeof next !== "function" ||
      typeof req !== "object" ||
      req === null
    )
      return original.call(this, req, res, next);
    const holder = req as RouteRequest;
    // A layer after the route (not one of the route's own handlers, which
    // have a method): the route called next().
    if (!("method" in this)) leaveRoute(holder, res, undefined);
    // Layers mounted at `/` add nothing.
    const pattern = (this[MOUNT] ??= mountPattern(this) ?? null);
    if (pattern === null) return original.call(this, req, res, next);
    const mounts = (holder[MOUNTS] ??= []);
    const depth = mounts.length;
    mounts.push(pattern);
    return original.call(this, req, res, function (this: unknown) {
      // Handed on: the request left this mount, and the route it reached
      // in it, if any.
      leaveRoute(holder, res, arguments[0]);
      mounts.length = depth;
      return Reflect.apply(next as Handle, this, arguments);
    });
  };
}

type FinalHandler = (
  req: unknown,
  res: unknown,
  options: unknown,
) => (this: unknown, err?: unknown) => unknown;

function patchFinalHandler(exports: unknown): unknown {
  if (typeof exports !== "function") return undefined;
  const original = exports as FinalHandler;
  // Express makes a final handler for every request and calls it only for
  // one that no layer answered. The original is made when it is called, so
  // a request that never gets there still costs one closure, as before.
  return function finalhandler(req: unknown, res: unknown, options: unknown) {
    return function threadlineFinalHandler(this: unknown, err?: unknown) {
      // A request handed to Express's final handler leaves its route.
      if (typeof req === "object" && req !== null)
        leaveRoute(req as RouteRequest, res, err);
      return Reflect.apply(original(req, res, options), this, arguments);
    };
  };
}

function patchLayer(exports: unknown): unknown {
  if (typeof exports !== "function") return undefined;
  const Original = exports as LayerConstructor;
  const proto = Original.prototype;
  for (const name of ["handleRequest", "handle_request"])
    if (typeof proto[name] === "function")
      proto[name] = wrapHandle(proto[name] as Handle);
  // Express 4's layers keep no pattern of their own: note it as they are
  // made. The router package's (Express 5) keep it as rawPath.
  if (typeof proto["handle_request"] !== "function") return undefined;
  type Made = LayerConstructor & (new (...a: unknown[]) => Layer);
  const Layer = function Layer(
    this: Layer,
    path: unknown,
    options: unknown,
    fn: unknown,
  ): unknown {
    if (!(this instanceof Layer))
      return new (Layer as unknown as Made)(path, options, fn);
    Original.call(this, path, options, fn);
    this[PATTERN] = path;
    return this;
  } as unknown as Made;
  Layer.prototype = proto;
  Object.setPrototypeOf(Layer, Original);
  return Layer;
}

/**
 * Hooks Express's layers and final handler as they load. `late`: Express
 * was loaded before the hook, so routes made before now are reported as
 * matched, without their mounts' templates, and its final handler is the
 * original.
 */
export function hookExpressLayers(): { unhook: () => void; late: boolean } {
  const router = hookModule({
    module: "router",
    file: "lib/layer.js",
    onLoad: patchLayer,
  });
  const express4 = hookModule({
    module: "express",
    file: "lib/router/layer.js",
    onLoad: patchLayer,
  });
  const layers = [router, express4];
  // Express 4 loaded first makes its layers with the original constructor.
  if (express4.late.length > 0) layersWithoutPatterns = true;
  // Express 4 and 5 both take it as their application loads: one loaded
  // late already holds the original, and its layers say so.
  const finalHandler = hookModule({
    module: "finalhandler",
    file: "index.js",
    onLoad: patchFinalHandler,
  });
  return {
    unhook: () => {
      for (const h of layers) h.unhook();
      finalHandler.unhook();
    },
    late: layers.some((h) => h.late.length > 0),
  };
}

/** The route template of an Express request, or undefined when it has no route. */
export function expressRoute(
  req: IncomingMessage | undefined,
): string | undefined {
  if (req === undefined) return undefined;
  const r = req as IncomingMessage & RouteRequest;
  const route = r.route;
  if (route === undefined || route === null) return undefined;
  if (r[LEFT_ROUTE] === route) return r[LEFT_NAME] ?? undefined;
  return templateOf(r, route);
}
