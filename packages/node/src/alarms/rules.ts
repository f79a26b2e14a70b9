// Alarm rules: what raises an alarm, how bad it is, and for how long the
// condition must hold. One JSON file per service (THREADLINE_ALARMS_FILE)
// replaces or adds to the defaults below; a file with any invalid rule is
// refused whole, with every problem named.

// Not an ESM import of node:fs (see core/module-hooks.ts).
const { readFileSync } = process.getBuiltinModule("node:fs");

export const SEVERITIES = [
  "critical",
  "major",
  "minor",
  "warning",
  "indeterminate",
] as const;
export type Severity = (typeof SEVERITIES)[number];

interface RuleBase {
  /** Unique; the alarm's name. */
  name: string;
  severity: Severity;
  /** How long the condition must hold before the alarm is raised (ms). */
  forMs: number;
  /**
   * How long the condition must have stopped holding before a raised
   * alarm is cleared (ms); three evaluation intervals when undefined. A
   * condition that comes and goes (a dependency failing every other
   * check) keeps its alarm raised rather than raising and clearing it,
   * a page and a resolve, at every other evaluation.
   */
  clearForMs?: number;
  /** Shown in notifications. */
  description?: string;
}

/** Event-loop delay (the engine's own sampling) above a limit. */
export interface EventLoopRule extends RuleBase {
  kind: "event_loop_delay";
  percentile: 50 | 90 | 99 | 100;
  aboveSeconds: number;
}

/** Share of HTTP server requests answered 5xx (or ended with no status sent) above a limit. */
export interface HttpErrorRatioRule extends RuleBase {
  kind: "http_error_ratio";
  above: number;
  /**
   * The ratio is of every request within the rule's time (its window);
   * fewer than this there say nothing.
   */
  minRequests: number;
}

/**
 * Any metric above or below a limit: a gauge's or up-down counter's
 * value, a counter's increase since the last evaluation, or a histogram's
 * mean since the last evaluation; the highest matching series is held to
 * `above`, the lowest to `below`.
 */
export interface MetricThresholdRule extends RuleBase {
  kind: "metric";
  metric: string;
  /**
   * Only points with these attributes, each value in its string form (a
   * file may write it as a number or a boolean); see {@link attributeMatcher}.
   */
  attributes?: Record<string, string>;
  above?: number;
  below?: number;
}

/** A health component (by name, `*` at the end for a prefix) not healthy. */
export interface HealthRule extends RuleBase {
  kind: "health";
  component: string;
  /** Raise on `unhealthy` only (default), or on `degraded` too. */
  when: "unhealthy" | "degraded";
}

export type AlarmRule =
  EventLoopRule | HttpErrorRatioRule | MetricThresholdRule | HealthRule;

/** The defaults every service gets. */
export const DEFAULT_RULES: readonly AlarmRule[] = [
  {
    name: "event_loop_delay",
    kind: "event_loop_delay",
    percentile: 99,
    aboveSeconds: 0.2,
    forMs: 60_000,
    severity: "major",
    description: "event-loop delay p99 above 200 ms",
  },
  {
    name: "http_5xx_ratio",
    kind: "http_error_ratio",
    above: 0.05,
    minRequests: 20,
    forMs: 120_000,
    severity: "major",
    description:
      "more than 5% of the last 2 minutes' HTTP requests failed (5xx, or ended with no status sent)",
  },
  {
    name: "dependency_unhealthy",
    kind: "health",
    component: "*",
    when: "unhealthy",
    forMs: 0,
    severity: "critical",
    description: "a dependency is unhealthy",
  },
  {
    name: "exporter_degraded",
    kind: "health",
    component: "exporter",
    when: "degraded",
    forMs: 0,
    severity: "warning",
    description: "telemetry is being dropped or is piling up",
  },
];

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;

/**
 * The keys a rule of each kind takes. Any other is refused: a misspelt
 * key (`duration` for `for`, `percentle`) would otherwise leave its
 * setting at the default without a word.
 */
const COMMON_KEYS = [
  "name",
  "kind",
  "severity",
  "for",
  "clearFor",
  "description",
];
const KIND_KEYS: Record<AlarmRule["kind"], readonly string[]> = {
  event_loop_delay: ["percentile", "aboveSeconds"],
  http_error_ratio: ["above", "minRequests"],
  metric: ["metric", "attributes", "above", "below"],
  health: ["component", "when"],
};
const DOCUMENT_KEYS = ["rules", "defaults"];

/**
 * The longest `for` (or `clearFor`) a rule takes. Longer is taken for a mistake: a number
 * of seconds written as milliseconds, or one so large the time never ends
 * (1e306 s is no time at all in milliseconds) and the alarm never raises.
 */
const MAX_DURATION_MS = 24 * 3_600_000;

/** A rule's duration key in ms; absent is 0. */
function durationMs(
  r: Record<string, unknown>,
  key: string,
  where: string,
  problems: string[],
): number {
  const v = r[key];
  if (v === undefined) return 0;
  const m = typeof v === "string" ? DURATION.exec(v.trim()) : null;
  const ms =
    typeof v === "number" && v >= 0
      ? v * 1000
      : m === null
        ? undefined
        : Number(m[1]) *
          { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  if (ms === undefined) {
    problems.push(
      `${where}: "${key}" must be like "90s", "2m" or a number of seconds`,
    );
    return 0;
  }
  if (!(ms <= MAX_DURATION_MS)) {
    problems.push(`${where}: "${key}" must be at most 24h`);
    return 0;
  }
  return ms;
}

/** Whether `v` is text with something in it besides spaces. */
function isText(v: unknown): v is string {
  return typeof v === "string" && v.trim() !== "";
}

/** Parses a rules document: `{ "rules": [...], "defaults": true|false }`. */
export function parseRules(text: string): {
  rules: AlarmRule[];
  problems: string[];
} {
  const problems: string[] = [];
  let doc: unknown;
  try {
    // A byte order mark first, as some Windows editors write one, is not
    // the document's.
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    return { rules: [], problems: [`not JSON: ${(err as Error).message}`] };
  }
  const d = doc as { rules?: unknown; defaults?: unknown };
  if (typeof doc !== "object" || doc === null || !Array.isArray(d.rules))
    return { rules: [], problems: ['expected an object with a "rules" array'] };
  if (d.defaults !== undefined && typeof d.defaults !== "boolean")
    problems.push('"defaults" must be true or false');
  for (const key of Object.keys(doc))
    if (!DOCUMENT_KEYS.includes(key))
      problems.push(
        `"${key}" is not a key of the file (it takes ${DOCUMENT_KEYS.join(", ")})`,
      );
  const out: AlarmRule[] = d.defaults === false ? [] : [...DEFAULT_RULES];
  const named = new Set<string>();
  d.rules.forEach((raw: unknown, i) => {
    const r = raw as Record<string, unknown>;
    const where = `rule ${i + 1}${typeof r?.["name"] === "string" ? ` (${r["name"]})` : ""}`;
    if (typeof r !== "object" || r === null) {
      problems.push(`${where}: not an object`);
      return;
    }
    if (!isText(r["name"])) problems.push(`${where}: "name" is required`);
    else if (named.has(r["name"]))
      problems.push(`${where}: another rule of the file has this name`);
    else named.add(r["name"]);
    // Only an absent key takes its default: a null is a value, and not one
    // of the key's.
    const severity = (
      r["severity"] === undefined ? "major" : r["severity"]
    ) as Severity;
    if (!SEVERITIES.includes(severity))
      problems.push(
        `${where}: "severity" must be one of ${SEVERITIES.join(", ")}`,
      );
    const base = {
      name: String(r["name"]),
      severity,
      forMs: durationMs(r, "for", where, problems),
      ...(r["clearFor"] === undefined
        ? {}
        : { clearForMs: durationMs(r, "clearFor", where, problems) }),
      ...(isText(r["description"]) ? { description: r["description"] } : {}),
    };
    if (r["description"] !== undefined && !isText(r["description"]))
      problems.push(`${where}: "description" must be text`);
    const num = (k: string): number | undefined => {
      const v = r[k];
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !Number.isFinite(v)) {
        problems.push(`${where}: "${k}" must be a number`);
        return undefined;
      }
      return v;
    };
    switch (r["kind"]) {
      case "event_loop_delay": {
        const p = num("percentile") ?? 99;
        if (![50, 90, 99, 100].includes(p))
          problems.push(`${where}: "percentile" must be 50, 90, 99 or 100`);
        const above = num("aboveSeconds");
        if (above === undefined || above < 0)
          problems.push(
            `${where}: "aboveSeconds" is required, a number of seconds >= 0`,
          );
        out.push({
          ...base,
          kind: "event_loop_delay",
          percentile: p as EventLoopRule["percentile"],
          aboveSeconds: above ?? 0,
        });
        break;
      }
      case "http_error_ratio": {
        const above = num("above");
        if (above === undefined || above < 0 || above > 1)
          problems.push(`${where}: "above" must be a share between 0 and 1`);
        const minRequests = num("minRequests") ?? 20;
        if (!Number.isInteger(minRequests) || minRequests < 1)
          problems.push(`${where}: "minRequests" must be a whole number >= 1`);
        out.push({
          ...base,
          kind: "http_error_ratio",
          above: above ?? 1,
          minRequests,
        });
        break;
      }
      case "metric": {
        if (!isText(r["metric"]))
          problems.push(`${where}: "metric" is required`);
        const above = num("above");
        const below = num("below");
        if (above === undefined && below === undefined)
          problems.push(`${where}: "above" or "below" is required`);
        // The alarm holds while a value is over `above` or under `below`:
        // with the floor over the limit, every value breaks one of them.
        else if (above !== undefined && below !== undefined && below > above)
          problems.push(
            `${where}: "below" (${below}) is over "above" (${above}), so any value would raise the alarm; together they are a band the metric is to stay within, "below" its floor and "above" its limit`,
          );
        const attrs = r["attributes"];
        if (
          attrs !== undefined &&
          (typeof attrs !== "object" ||
            attrs === null ||
            Array.isArray(attrs) ||
            Object.values(attrs).some(
              (v) =>
                typeof v !== "string" &&
                typeof v !== "boolean" &&
                !(typeof v === "number" && Number.isFinite(v)),
            ))
        )
          problems.push(
            `${where}: "attributes" must map names to strings, numbers or booleans`,
          );
        out.push({
          ...base,
          kind: "metric",
          metric: String(r["metric"]),
          ...(typeof attrs !== "object" || attrs === null
            ? {}
            : {
                attributes: Object.fromEntries(
                  Object.entries(attrs).map(([k, v]) => [k, String(v)]),
                ),
              }),
          ...(above === undefined ? {} : { above }),
          ...(below === undefined ? {} : { below }),
        });
        break;
      }
      case "health": {
        if (!isText(r["component"]))
          problems.push(`${where}: "component" is required`);
        const when = r["when"] === undefined ? "unhealthy" : r["when"];
        if (when !== "unhealthy" && when !== "degraded")
          problems.push(`${where}: "when" must be unhealthy or degraded`);
        out.push({
          ...base,
          kind: "health",
          component: String(r["component"]),
          when: when as HealthRule["when"],
        });
        break;
      }
      default:
        problems.push(
          `${where}: "kind" must be event_loop_delay, http_error_ratio, metric or health`,
        );
        return;
    }
    const kind = r["kind"] as AlarmRule["kind"];
    const known = [...COMMON_KEYS, ...KIND_KEYS[kind]];
    for (const key of Object.keys(r))
      if (!known.includes(key))
        problems.push(
          `${where}: "${key}" is not a key of ${kind} rules (they take ${known.join(", ")})`,
        );
  });
  // A rule of the file replaces a default of the same name.
  const byName = new Map<string, AlarmRule>();
  for (const rule of out) byName.set(rule.name, rule);
  return { rules: [...byName.values()], problems };
}

/** The rules of a file, or the defaults (with the problems) when it cannot be used. */
export function loadRules(path: string | undefined): {
  rules: readonly AlarmRule[];
  problems: string[];
} {
  if (path === undefined) return { rules: DEFAULT_RULES, problems: [] };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return {
      rules: DEFAULT_RULES,
      problems: [
        `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ],
    };
  }
  const parsed = parseRules(text);
  return parsed.problems.length > 0
    ? { rules: DEFAULT_RULES, problems: parsed.problems }
    : parsed;
}

/**
 * Whether a point's attributes hold a rule's `attributes`, each compared by
 * its string form: a status code recorded as 500 meets `"500"` and `500`
 * alike. The typed form of each value is worked out here, once per rule,
 * so a point is matched without converting any of its values.
 */
export function attributeMatcher(
  attributes: Record<string, string> | undefined,
): (point: Record<string, unknown>) => boolean {
  if (attributes === undefined) return () => true;
  const wanted = Object.entries(attributes).map(([key, text]) => ({
    key,
    text,
    typed: typedForm(text),
  }));
  return (point) => {
    for (const w of wanted) {
      const v = point[w.key];
      if (v !== w.text && (w.typed === undefined || v !== w.typed))
        return false;
    }
    return true;
  };
}

/** The number or boolean whose string form is `text`, if there is one. */
function typedForm(text: string): number | boolean | undefined {
  if (text === "true") return true;
  if (text === "false") return false;
  const n = Number(text);
  return String(n) === text ? n : undefined;
}
