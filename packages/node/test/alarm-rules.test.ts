import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import {
  DEFAULT_RULES,
  attributeMatcher,
  loadRules,
  parseRules,
} from "../src/alarms/rules.ts";

it("adds a file's rules to the defaults, replacing those of the same name", () => {
  const { rules, problems } = parseRules(
    JSON.stringify({
      rules: [
        {
          name: "event_loop_delay",
          kind: "event_loop_delay",
          aboveSeconds: 0.5,
          for: "2m",
          severity: "minor",
        },
        {
          name: "orders_queue_slow",
          kind: "metric",
          metric: "threadline.messaging.delivery.latency",
          above: 5,
          for: 30,
        },
      ],
    }),
  );
  assert.deepEqual(problems, []);
  assert.equal(rules.length, DEFAULT_RULES.length + 1);
  const loop = rules.find((r) => r.name === "event_loop_delay")!;
  assert.equal(loop.forMs, 120_000);
  assert.equal(loop.severity, "minor");
  assert.equal(
    rules.find((r) => r.name === "orders_queue_slow")!.forMs,
    30_000,
  );
});

it("can drop the defaults", () => {
  const { rules } = parseRules(
    JSON.stringify({
      defaults: false,
      rules: [{ name: "db", kind: "health", component: "postgresql*" }],
    }),
  );
  assert.deepEqual(
    rules.map((r) => r.name),
    ["db"],
  );
});

it("names every problem of a bad file", () => {
  const { problems } = parseRules(
    JSON.stringify({
      rules: [
        { kind: "metric", above: 1 },
        { name: "x", kind: "nope" },
        { name: "y", kind: "event_loop_delay", for: "soon", severity: "high" },
        { name: "z", kind: "http_error_ratio", above: 7, minRequests: -1 },
        { name: "x", kind: "event_loop_delay", aboveSeconds: -0.1 },
      ],
      defaults: "false",
    }),
  );
  assert.deepEqual(problems, [
    '"defaults" must be true or false',
    'rule 1: "name" is required',
    'rule 1: "metric" is required',
    'rule 2 (x): "kind" must be event_loop_delay, http_error_ratio, metric or health',
    'rule 3 (y): "severity" must be one of critical, major, minor, warning, indeterminate',
    'rule 3 (y): "for" must be like "90s", "2m" or a number of seconds',
    'rule 3 (y): "aboveSeconds" is required, a number of seconds >= 0',
    'rule 4 (z): "above" must be a share between 0 and 1',
    'rule 4 (z): "minRequests" must be a whole number >= 1',
    "rule 5 (x): another rule of the file has this name",
    'rule 5 (x): "aboveSeconds" is required, a number of seconds >= 0',
  ]);
  assert.deepEqual(parseRules("{").problems.length, 1);
  assert.match(parseRules("[]").problems[0]!, /"rules" array/);
});

it("names each key a rule's kind does not take, and refuses the file for it", () => {
  const text = JSON.stringify({
    rules: [
      {
        name: "slow_loop",
        kind: "event_loop_delay",
        percentle: 90,
        aboveSeconds: 0.5,
        duration: "5m",
      },
      // Keys of other kinds are not this kind's.
      { name: "db", kind: "health", component: "postgresql*", above: 1 },
      {
        name: "ok",
        kind: "metric",
        metric: "m",
        above: 1,
        below: 0,
        attributes: {},
        for: "1m",
        severity: "minor",
        description: "every key a metric rule takes",
      },
    ],
    default: false,
  });
  const takes = "name, kind, severity, for, clearFor, description";
  assert.deepEqual(parseRules(text).problems, [
    '"default" is not a key of the file (it takes rules, defaults)',
    `rule 1 (slow_loop): "percentle" is not a key of event_loop_delay rules (they take ${takes}, percentile, aboveSeconds)`,
    `rule 1 (slow_loop): "duration" is not a key of event_loop_delay rules (they take ${takes}, percentile, aboveSeconds)`,
    `rule 2 (db): "above" is not a key of health rules (they take ${takes}, component, when)`,
  ]);
  // Through the file the service reads: refused whole, the defaults kept.
  const dir = mkdtempSync(join(tmpdir(), "threadline-rules-"));
  try {
    const file = join(dir, "alarms.json");
    writeFileSync(file, text);
    const loaded = loadRules(file);
    assert.equal(loaded.rules, DEFAULT_RULES);
    assert.equal(loaded.problems.length, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("reads a rules file that begins with a byte order mark", () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-rules-"));
  try {
    const file = join(dir, "alarms.json");
    writeFileSync(
      file,
      "\ufeff" +
        JSON.stringify({
          rules: [{ kind: "health", name: "db", component: "pg" }],
        }),
    );
    const loaded = loadRules(file);
    assert.deepEqual(loaded.problems, []);
    assert.ok(loaded.rules.some((r) => r.name === "db"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("matches a metric rule's attributes by their string form, however the file writes them", () => {
  const { rules, problems } = parseRules(
    JSON.stringify({
      defaults: false,
      rules: [
        {
          name: "failed_gets",
          kind: "metric",
          metric: "http.server.request.duration",
          attributes: {
            "http.response.status_code": 500,
            "http.request.method": "GET",
            "messaging.destination.temporary": false,
          },
          above: 0,
        },
        {
          name: "failed_as_text",
          kind: "metric",
          metric: "http.server.request.duration",
          attributes: { "http.response.status_code": "500" },
          above: 0,
        },
      ],
    }),
  );
  assert.deepEqual(problems, []);
  const [numeric, text] = rules.map((r) =>
    attributeMatcher(r.kind === "metric" ? r.attributes : undefined),
  );
  const point = {
    "http.response.status_code": 500,
    "http.request.method": "GET",
    "messaging.destination.temporary": false,
  };
  assert.equal(numeric!(point), true);
  assert.equal(text!(point), true);
  assert.equal(text!({ "http.response.status_code": "500" }), true);
  assert.equal(text!({ "http.response.status_code": 404 }), false);
  assert.equal(text!({}), false);
  assert.equal(numeric!({ ...point, "http.request.method": "POST" }), false);
  assert.equal(
    numeric!({ ...point, "messaging.destination.temporary": true }),
    false,
  );
  // Another spelling of the number is another string.
  const spelled = attributeMatcher({ "http.response.status_code": "500.0" });
  assert.equal(spelled({ "http.response.status_code": 500 }), false);

  const refused = parseRules(
    JSON.stringify({
      rules: [
        {
          name: "m",
          kind: "metric",
          metric: "x",
          attributes: { a: { b: 1 } },
          above: 0,
        },
      ],
    }),
  );
  assert.deepEqual(refused.problems, [
    'rule 1 (m): "attributes" must map names to strings, numbers or booleans',
  ]);
});

it("refuses a metric rule whose floor is over its limit, which every value would break", () => {
  const rule = (above: number, below: number) => ({
    name: "band",
    kind: "metric",
    metric: "nodejs.eventloop.utilization",
    above,
    below,
  });
  const inverted = parseRules(JSON.stringify({ rules: [rule(0.05, 0.9)] }));
  assert.deepEqual(inverted.problems, [
    'rule 1 (band): "below" (0.9) is over "above" (0.05), so any value would raise the alarm; together they are a band the metric is to stay within, "below" its floor and "above" its limit',
  ]);
  // A band, and one of a single value, are what both mean.
  for (const [above, below] of [
    [0.9, 0.05],
    [1, 1],
  ] as const)
    assert.deepEqual(
      parseRules(JSON.stringify({ rules: [rule(above, below)] })).problems,
      [],
    );
});

it("names a null, empty or out-of-range value as a problem rather than taking a default for it", () => {
  const { problems } = parseRules(
    JSON.stringify({
      defaults: false,
      rules: [
        { name: "a", kind: "health", component: "db", severity: null },
        { name: "b", kind: "health", component: "db", description: 42 },
        { name: "c", kind: "health", component: "db", for: 1e306 },
        { name: "d", kind: "health", component: "db", for: "9999999999h" },
        { name: "e", kind: "health", component: "" },
        { name: "f", kind: "metric", metric: "", above: 1 },
        { name: "   ", kind: "health", component: "db" },
        { name: "g", kind: "health", component: "db", for: null, when: null },
        { name: "h", kind: "health", component: "db", description: " " },
      ],
    }),
  );
  assert.deepEqual(problems, [
    'rule 1 (a): "severity" must be one of critical, major, minor, warning, indeterminate',
    'rule 2 (b): "description" must be text',
    'rule 3 (c): "for" must be at most 24h',
    'rule 4 (d): "for" must be at most 24h',
    'rule 5 (e): "component" is required',
    'rule 6 (f): "metric" is required',
    'rule 7 (   ): "name" is required',
    'rule 8 (g): "for" must be like "90s", "2m" or a number of seconds',
    'rule 8 (g): "when" must be unhealthy or degraded',
    'rule 9 (h): "description" must be text',
  ]);
  // Through the file the service reads: refused whole, the defaults kept.
  const dir = mkdtempSync(join(tmpdir(), "threadline-rules-"));
  try {
    const file = join(dir, "alarms.json");
    writeFileSync(
      file,
      JSON.stringify({
        rules: [
          { name: "db", kind: "health", component: "db", severity: null },
        ],
      }),
    );
    const loaded = loadRules(file);
    assert.equal(loaded.rules, DEFAULT_RULES);
    assert.equal(loaded.problems.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The longest time taken, and every spelling of it.
  for (const longest of ["24h", "1440m", 86_400])
    assert.deepEqual(
      parseRules(
        JSON.stringify({
          rules: [{ name: "x", kind: "health", component: "db", for: longest }],
        }),
      ).problems,
      [],
    );
});

it("takes a rule's clearFor as its for is taken, three evaluation intervals when absent", () => {
  const { rules, problems } = parseRules(
    JSON.stringify({
      defaults: false,
      rules: [
        { name: "a", kind: "health", component: "db", clearFor: "2m" },
        { name: "b", kind: "health", component: "db", clearFor: 0 },
        { name: "c", kind: "health", component: "db" },
      ],
    }),
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(
    rules.map((r) => r.clearForMs),
    [120_000, 0, undefined],
  );
  assert.deepEqual(
    parseRules(
      JSON.stringify({
        rules: [
          { name: "a", kind: "health", component: "db", clearFor: "soon" },
          { name: "b", kind: "health", component: "db", clearFor: "25h" },
          { name: "c", kind: "health", component: "db", clearFor: null },
        ],
      }),
    ).problems,
    [
      'rule 1 (a): "clearFor" must be like "90s", "2m" or a number of seconds',
      'rule 2 (b): "clearFor" must be at most 24h',
      'rule 3 (c): "clearFor" must be like "90s", "2m" or a number of seconds',
    ],
  );
  // The defaults take the engine's three intervals: 30 s at the default 10 s.
  assert.deepEqual(
    DEFAULT_RULES.map((r) => r.clearForMs),
    DEFAULT_RULES.map(() => undefined),
  );
});
