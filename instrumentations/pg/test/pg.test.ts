// pg instrumentation against a real PostgreSQL server, inside one process.
import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import net from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { after, before, beforeEach, describe, it } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import Cursor from "pg-cursor";
import QueryStream from "pg-query-stream";
import { context, trace } from "@opentelemetry/api";
import { suppressTracing } from "@threadline/core";
import {
  freePort,
  startOtlpReceiver,
  startService,
  stopTestServers,
  testDatabase,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
} from "@threadline/test-support";
import {
  getCustomerId,
  init,
  withCustomer,
  type InitOptions,
  type ThreadlineHandle,
} from "@threadline/node";

const CLIENT = 3;
let receiver: OtlpReceiver;
let threadline: ThreadlineHandle;
let databaseUrl: string;

function start(options: InitOptions = {}): void {
  threadline = init({
    serviceName: "pg-test",
    endpoint: receiver.url,
    exportLogs: false,
    // The receiver runs in this process: its OTLP and watch-list paths are not traced.
    ignoreIncomingPaths: ["/v1/*", "/threadline/*"],
    ...options,
  });
}

before(async () => {
  process.env["OTEL_BSP_SCHEDULE_DELAY"] = "20";
  receiver = await startOtlpReceiver();
  databaseUrl = await testDatabase();
  start();
  const setup = new pg.Client({ connectionString: databaseUrl });
  await setup.connect();
  await setup.query(
    "CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL)",
  );
  await setup.query(
    "INSERT INTO accounts (owner, balance) SELECT 'owner-' || i, i * 100 FROM generate_series(1, 20) i",
  );
  await setup.end();
});

after(async () => {
  await threadline.shutdown();
  await receiver.close();
  await stopTestServers();
});

beforeEach(async () => {
  await threadline.forceFlush();
  receiver.clear();
});

const querySpans = (spans: ReceivedSpan[]) =>
  spans.filter(
    (s) => s.kind === CLIENT && s.attributes["db.system.name"] === "postgresql",
  );

describe("pg queries", () => {
  it("links each query's duration to its own span, in the promise and callback forms", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const traceId = await trace
      .getTracer("t")
      .startActiveSpan("request", async (root) => {
        await client.query("SELECT relname FROM pg_class WHERE relname = 'x'");
        await new Promise<void>((resolve, reject) =>
          client.query(
            "SELECT typname FROM pg_type WHERE typname = 'x'",
            (err) => (err ? reject(err) : resolve()),
          ),
        );
        root.end();
        return root.spanContext().traceId;
      });
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) =>
        ["SELECT pg_class", "SELECT pg_type"].every((name) =>
          querySpans(s).some((q) => q.name === name),
        ),
      "both queries' spans",
    );
    await threadline.forceFlush();
    const points =
      receiver.metrics.findLast(
        (m) => m.name === "db.client.operation.duration",
      )?.points ?? [];
    for (const summary of ["SELECT pg_class", "SELECT pg_type"]) {
      const span = querySpans(spans).find((q) => q.name === summary)!;
      assert.equal(span.traceId, traceId);
      const point = points.find(
        (p) => p.attributes["db.query.summary"] === summary,
      );
      // The newest measurement of its bucket: its exemplar is this query's.
      assert.ok(
        point?.exemplars.some(
          (e) => e.traceId === span.traceId && e.spanId === span.spanId,
        ),
        `${summary}: exemplars ${JSON.stringify(point?.exemplars)}, span ${span.spanId}`,
      );
    }
  });

  it("traces the promise, callback and submittable forms with the database conventions", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await trace.getTracer("t").startActiveSpan("request", async (root) => {
      await client.query(
        "SELECT balance FROM accounts WHERE owner = 'owner-3'",
      );
      await new Promise<void>((resolve, reject) =>
        client.query(
          "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
          [5, 1],
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      const cursor = client.query(
        new Cursor("SELECT id FROM accounts WHERE balance > $1", [1000]),
      );
      await new Promise<void>((resolve, reject) =>
        cursor.read(100, (err) =>
          err ? reject(err) : cursor.close(() => resolve()),
        ),
      );
      const stream = client.query(
        new QueryStream("SELECT id FROM accounts ORDER BY id"),
      );
      for await (const _row of stream) void _row;
      root.end();
    });
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) => querySpans(s).length >= 4 && s.some((x) => x.name === "request"),
      "four query spans and their parent",
    );
    const root = spans.find((s) => s.name === "request")!;
    const queries = querySpans(spans);
    for (const q of queries) {
      assert.equal(q.parentSpanId, root.spanId, q.name);
      assert.equal(
        q.attributes["db.namespace"],
        new URL(databaseUrl).pathname.slice(1),
      );
      assert.equal(q.attributes["server.address"], "127.0.0.1");
      assert.equal(typeof q.attributes["server.port"], "number");
    }
    const select = queries.find(
      (q) =>
        q.name === "SELECT accounts" &&
        String(q.attributes["db.query.text"]).includes("owner"),
    )!;
    assert.equal(
      select.attributes["db.query.text"],
      "SELECT balance FROM accounts WHERE owner = ?",
    );
    assert.equal(select.attributes["db.operation.name"], "SELECT");
    assert.equal(select.attributes["db.collection.name"], "accounts");
    const update = queries.find((q) => q.name === "UPDATE accounts")!;
    assert.equal(
      update.attributes["db.query.text"],
      "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
    );
    assert.equal(
      update.attributes["db.query.parameter.0"],
      undefined,
      "parameters are not recorded by default",
    );
    assert.ok(
      queries.some(
        (q) =>
          q.attributes["db.query.text"] ===
          "SELECT id FROM accounts WHERE balance > $1",
      ),
      "cursor",
    );
    assert.ok(
      queries.some(
        (q) =>
          q.attributes["db.query.text"] ===
          "SELECT id FROM accounts ORDER BY id",
      ),
      "stream",
    );
  });

  it("names a statement after its operation and table past nested leading comments", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    // PostgreSQL nests block comments: it runs this as a DELETE.
    const sql =
      "/* app:checkout /* caller: pay() */ */ DELETE FROM accounts WHERE id = $1";
    const result = await client.query(sql, [-1]);
    await client.end();
    assert.equal(result.command, "DELETE");
    const spans = await receiver.waitForSpans(
      (s) => querySpans(s).length >= 1,
      "the statement's span",
    );
    const [span] = querySpans(spans);
    assert.equal(span!.name, "DELETE accounts");
    assert.equal(span!.attributes["db.operation.name"], "DELETE");
    assert.equal(span!.attributes["db.collection.name"], "accounts");
    assert.equal(
      span!.attributes["db.query.text"],
      "/*?*/ DELETE FROM accounts WHERE id = $1",
    );
  });

  it("ends a line comment where PostgreSQL does, at a carriage return too", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    // PostgreSQL ends a -- comment at \r as at \n: what follows is SQL.
    const literal = await client.query(
      "SELECT 1 AS a -- note\r, 'SECRET_CR' AS b",
    );
    const table = await client.query(
      "SELECT id -- note\rFROM accounts WHERE id = $1",
      [1],
    );
    await client.end();
    assert.equal(literal.rows[0].b, "SECRET_CR");
    assert.equal(table.rows.length, 1);
    const spans = querySpans(
      await receiver.waitForSpans(
        (s) => querySpans(s).length >= 2,
        "both statements' spans",
      ),
    );
    for (const span of spans)
      assert.ok(
        !String(span.attributes["db.query.text"]).includes("SECRET_CR"),
        String(span.attributes["db.query.text"]),
      );
    assert.ok(
      spans.some((s) => s.name === "SELECT accounts"),
      spans.map((s) => s.name).join(", "),
    );
  });

  it("keeps what comments say out of the recorded text", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    // [statement, its db.query.text]
    const cases: Array<[string, string]> = [
      ["SELECT 1 AS a /* customer='SECRET_COMMENT' */", "SELECT ? AS a /*?*/"],
      [
        "SELECT 2 AS b -- email alice@SECRET_LINE.com\n, 3 AS c",
        "SELECT ? AS b --?\n, ? AS c",
      ],
      [
        "/* app /* SECRET_NESTED */ still comment */ SELECT id FROM accounts WHERE id = $1",
        "/*?*/ SELECT id FROM accounts WHERE id = $1",
      ],
    ];
    for (const [sql] of cases)
      await client.query(sql, sql.includes("$1") ? [1] : []);
    await client.end();
    const spans = querySpans(
      await receiver.waitForSpans(
        (s) => querySpans(s).length >= cases.length,
        "each statement's span",
      ),
    );
    assert.deepEqual(
      spans.map((s) => s.attributes["db.query.text"]).sort(),
      cases.map(([, text]) => text).sort(),
    );
    assert.ok(spans.some((s) => s.name === "SELECT accounts"));
  });

  it("names a statement by its summary, with an operation and a table only when it has one of each", async () => {
    // [statement, values, span name and db.query.summary, db.operation.name, db.collection.name]
    const cases: Array<
      [string, unknown[] | undefined, string, string?, string?]
    > = [
      [
        "SELECT 1 AS several; DELETE FROM accounts WHERE id = -7",
        undefined,
        "SELECT DELETE accounts",
      ],
      [
        "WITH gone AS (SELECT id FROM accounts WHERE id < 0) DELETE FROM accounts WHERE id IN (SELECT id FROM gone)",
        undefined,
        "SELECT accounts DELETE accounts SELECT",
      ],
      [
        "SELECT EXTRACT(YEAR FROM now()) AS y FROM accounts LIMIT 1",
        undefined,
        "SELECT accounts",
        "SELECT",
        "accounts",
      ],
      [
        "SELECT trim(both 'x' from owner) AS trimmed FROM accounts LIMIT 1",
        undefined,
        "SELECT accounts",
        "SELECT",
        "accounts",
      ],
      [
        "SELECT * FROM unnest($1::int[]) AS u(id)",
        [[1, 2]],
        "SELECT",
        "SELECT",
      ],
      [
        "-- balances\nselect balance from only accounts where id = 1",
        undefined,
        "SELECT accounts",
        "SELECT",
        "accounts",
      ],
    ];
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    for (const [sql, values] of cases) await client.query(sql, values);
    await client.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) => querySpans(s).length >= cases.length,
      "every statement's span",
    );
    // One client, one statement after another: the spans start in order.
    const queries = querySpans(spans).sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    assert.equal(queries.length, cases.length);
    const points = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points);
    for (const [
      n,
      [sql, , summary, operation, collection],
    ] of cases.entries()) {
      const span = queries[n]!;
      assert.equal(span.name, summary, sql);
      assert.equal(span.attributes["db.query.summary"], summary, sql);
      assert.equal(span.attributes["db.operation.name"], operation, sql);
      assert.equal(span.attributes["db.collection.name"], collection, sql);
      const point = points.find(
        (p) => p.attributes["db.query.summary"] === summary,
      );
      assert.ok(point, `a duration point for ${summary}`);
      if (operation === undefined)
        assert.ok(
          points.some(
            (p) =>
              p.attributes["db.query.summary"] === summary &&
              p.attributes["db.operation.name"] === undefined &&
              p.attributes["db.collection.name"] === undefined,
          ),
          `${summary} is counted with no operation or table`,
        );
    }
  });

  it("records errors with their SQLSTATE", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await assert.rejects(client.query("SELECT * FROM later_table"));
    // The same statement on the same connection, once it can succeed: the
    // first failure must not stick to it.
    await client.query("CREATE TABLE later_table (id integer)");
    await client.query("SELECT * FROM later_table");
    await client.end();
    await threadline.forceFlush();
    const selects = (
      await receiver.waitForSpans(
        (s) =>
          querySpans(s).filter((q) => q.name === "SELECT later_table").length >=
          2,
        "the failed and the successful query",
      )
    ).filter((q) => q.name === "SELECT later_table");
    const [failed, succeeded] = selects.sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    assert.equal(failed!.status.code, 2);
    assert.equal(failed!.attributes["db.response.status_code"], "42P01");
    assert.equal(failed!.attributes["error.type"], "42P01");
    assert.equal(succeeded!.status.code, 0);
    assert.equal(succeeded!.attributes["error.type"], undefined);
    assert.equal(succeeded!.attributes["db.response.status_code"], undefined);
    // forceFlush() above sent the metrics as they stood, well before their interval.
    const points = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points)
      .filter((p) => p.attributes["db.collection.name"] === "later_table");
    assert.ok(
      points.some((x) => x.attributes["error.type"] === "42P01") &&
        points.some((x) => x.attributes["error.type"] === undefined),
      "a failed and a successful duration point",
    );
    assert.ok(points.every((p) => p.count === 1));
    // The conventions want the status code on the metric too: SQLSTATEs
    // are a fixed set, and error.type already splits series by them.
    assert.deepEqual(
      points
        .map((p) => [
          p.attributes["error.type"],
          p.attributes["db.response.status_code"],
        ])
        .sort(),
      [
        [undefined, undefined],
        ["42P01", "42P01"],
      ],
    );
  });

  it("puts the SQLSTATE of a pool's failed connection on its operation's duration", async () => {
    const url = new URL(databaseUrl);
    url.pathname = "/no_such_database";
    const pool = new pg.Pool({ connectionString: url.href });
    await assert.rejects(pool.query("SELECT 1 AS unserved"), {
      code: "3D000",
    });
    await pool.end();
    await threadline.forceFlush();
    const point = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points)
      .find((p) => p.attributes["db.namespace"] === "no_such_database");
    assert.equal(point?.attributes["error.type"], "3D000");
    assert.equal(point?.attributes["db.response.status_code"], "3D000");
  });
});

describe("pg memory", () => {
  it("forgets the health check of a pool dropped without end(), once it is collected", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const registry = (globalThis as Record<symbol, unknown>)[
      Symbol.for("threadline.health")
    ] as { has(name: string): boolean };
    // Nothing listens there: each pool's connect fails, and is watched.
    const base = "postgresql 127.0.0.1:1/dropped";
    const named = (i: number) => (i === 1 ? base : `${base} #${i}`);
    const makeAndDrop = async () => {
      for (let i = 0; i < 20; i++) {
        const pool = new pg.Pool({
          host: "127.0.0.1",
          port: 1,
          database: "dropped",
          connectionTimeoutMillis: 1000,
        });
        await pool.query("SELECT 1").catch(() => undefined);
      }
    };
    await makeAndDrop();
    assert.ok(registry.has(named(20)), "a check per pool while it lives");
    // No health endpoint or alarm runs the checks: the pools go with them.
    const left = () =>
      [...Array(20).keys()]
        .map((i) => named(i + 1))
        .filter(registry.has, registry);
    await waitFor(
      async () => {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
        return left().length === 0;
      },
      { what: "the dropped pools' checks gone", timeoutMs: 5000 },
    ).catch(() => assert.deepEqual(left(), []));
  });

  it("keeps no long statement alive once its query is done", async () => {
    // Statements with their values inline, as bulk inserts and pg-format
    // make them: each distinct, each a megabyte.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const heapUsed = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query("SELECT 1");
    const before = heapUsed();
    for (let i = 0; i < 50; i++) {
      const literal = `${i}-${"x".repeat(1_000_000)}`;
      const res = await client.query(`SELECT length('${literal}') AS n`);
      assert.equal(res.rows[0].n, literal.length);
    }
    // The spans, which hold the statements' summaries until sent. The
    // connection stays open: nothing it keeps may hold them either.
    await threadline.forceFlush();
    const grown = heapUsed() - before;
    await receiver.waitForSpans(
      (s) => querySpans(s).filter((q) => q.name === "SELECT").length >= 51,
      "every query's span",
    );
    assert.equal(
      querySpans(receiver.spans).at(-1)!.attributes["db.query.text"],
      "SELECT length(?) AS n",
    );
    await client.end();
    assert.ok(
      grown < 10_000_000,
      `50 MB of statements sent, ${(grown / 1e6).toFixed(1)} MB still on the heap`,
    );
  });
});

describe("the other forms pg accepts", () => {
  it("traces each of them, and keeps values out of error messages", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const refused = new pg.Pool({
      connectionString: "postgres://nobody@127.0.0.1:1/none",
    });
    await trace.getTracer("t").startActiveSpan("forms", async (root) => {
      // A callback inside the config object: pg returns nothing.
      await new Promise<void>((resolve, reject) => {
        const returned = client.query({
          text: "SELECT 1 AS config_callback",
          callback: (err: Error | null) => (err ? reject(err) : resolve()),
        } as pg.QueryConfig);
        assert.equal(returned, undefined);
      });
      // A Query with a callback reports its error there, with no event.
      await new Promise<void>((resolve) => {
        client.query(
          new pg.Query("SELECT * FROM no_such_table", [], () => resolve()),
        );
      });
      // A bad value bound as a parameter: PostgreSQL quotes it in its message.
      await assert.rejects(client.query("SELECT $1::int", ["123-45-6789"]));
      // A missing comma: the syntax error quotes the literal it stopped at.
      await assert.rejects(
        client.query("SELECT 'a' 'alice@example.com' AS missing_comma"),
      );
      await assert.rejects(client.query("SELEC 1 AS misspelt"));
      // A pool whose server is down: no client, so no query span.
      await assert.rejects(refused.query("SELECT 1 AS never_sent"));
      // A stream the application stops reading early.
      const stream = client.query(
        new QueryStream("SELECT g AS early FROM generate_series(1, 1000) g"),
      );
      for await (const _row of stream) break;
      // A prepared statement run again by its name alone.
      await client.query({
        name: "by-name",
        text: "SELECT id FROM accounts WHERE id = $1",
        values: [1],
      });
      await client.query({ name: "by-name", values: [2] } as pg.QueryConfig);
      // Prepared and run by name at once: the second waits behind the first.
      await Promise.all([
        client.query({
          name: "queued",
          text: "SELECT id FROM accounts WHERE id = $1 AND 'queued' <> ''",
          values: [1],
        }),
        client.query({ name: "queued", values: [2] } as pg.QueryConfig),
      ]);
      root.end();
    });
    await client.end();
    await refused.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) => querySpans(s).length >= 10 && s.some((x) => x.name === "forms"),
      "every form's span",
    );
    const root = spans.find((x) => x.name === "forms")!;
    const children = spans.filter((x) => x.parentSpanId === root.spanId);
    const text = (t: string) =>
      children.find((x) => x.attributes["db.query.text"] === t);
    assert.equal(text("SELECT ? AS config_callback")?.status.code, 0);
    const missing = text("SELECT * FROM no_such_table");
    assert.equal(missing?.status.code, 2);
    assert.equal(missing?.attributes["db.response.status_code"], "42P01");
    const bad = text("SELECT $1::int");
    assert.equal(bad?.status.code, 2);
    assert.equal(bad?.attributes["error.type"], "22P02");
    assert.match(bad!.status.message, /invalid input syntax/);
    assert.ok(
      !JSON.stringify(spans, (_k, v: unknown) =>
        typeof v === "bigint" ? String(v) : v,
      ).includes("123-45-6789"),
      "the bound value appears nowhere",
    );
    const comma = text("SELECT ? ? AS missing_comma");
    assert.equal(comma?.attributes["error.type"], "42601");
    assert.equal(comma?.status.message, 'syntax error at or near "?"');
    assert.ok(
      !JSON.stringify(spans, (_k, v: unknown) =>
        typeof v === "bigint" ? String(v) : v,
      ).includes("alice@example.com"),
      "the literal appears nowhere",
    );
    // A keyword or a name is no value: kept.
    assert.equal(
      text("SELEC ? AS misspelt")?.status.message,
      'syntax error at or near "SELEC"',
    );
    const connect = children.find((x) => x.name === "pg.pool.connect");
    assert.equal(connect?.status.code, 2);
    assert.equal(connect?.attributes["error.type"], "ECONNREFUSED");
    const early = children.find((x) =>
      String(x.attributes["db.query.text"]).includes("AS early"),
    );
    assert.equal(early?.status.code, 0);
    assert.equal(early?.attributes["error.type"], undefined);
    const named = children.filter(
      (x) =>
        x.attributes["db.query.text"] ===
        "SELECT id FROM accounts WHERE id = $1",
    );
    assert.equal(named.length, 2, "both runs of the named statement");
    assert.ok(named.every((x) => x.name === "SELECT accounts"));
    const queued = children.filter(
      (x) =>
        x.attributes["db.query.text"] ===
        "SELECT id FROM accounts WHERE id = $1 AND ? <> ?",
    );
    assert.equal(queued.length, 2, "a run queued behind its preparation");
  });

  it("ends a pg.Query given its callback as an argument, and calls it back in the caller's context", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const seen: Array<[string, string | undefined, string | undefined]> = [];
    // pg's types know no callback after a submittable.
    type Submit = {
      query(
        q: pg.Query,
        cb: (err: (Error & { code?: string }) | null) => void,
      ): void;
    };
    await trace.getTracer("t").startActiveSpan("argument", async (root) => {
      await withCustomer("c-argument", async () => {
        // pg makes the function given after a Query its callback, and then
        // reports an error there alone, with no "error" event.
        await new Promise<void>((resolve) =>
          (client as unknown as Submit).query(
            new pg.Query("SELECT * FROM no_such_table_a"),
            (err) => {
              seen.push(["client", err?.code, getCustomerId()]);
              resolve();
            },
          ),
        );
        await new Promise<void>((resolve) =>
          (client as unknown as Submit).query(
            new pg.Query("SELECT 1 AS fine"),
            () => {
              seen.push(["fine", undefined, getCustomerId()]);
              resolve();
            },
          ),
        );
        // pg-pool gives a submittable its own callback, in the third place.
        await new Promise<void>((resolve) =>
          (pool as unknown as Submit).query(
            new pg.Query("SELECT * FROM no_such_table_b"),
            (err) => {
              seen.push(["pool", err?.code, getCustomerId()]);
              resolve();
            },
          ),
        );
      });
      root.end();
    });
    await client.end();
    await pool.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).filter((x) =>
          String(x.attributes["db.query.text"]).includes("no_such_table"),
        ).length >= 2,
      "both failed queries' spans",
      5000,
    );
    const root = spans.find((x) => x.name === "argument")!;
    for (const table of ["no_such_table_a", "no_such_table_b"]) {
      const span = spans.find(
        (x) => x.attributes["db.query.text"] === `SELECT * FROM ${table}`,
      );
      assert.equal(span?.parentSpanId, root.spanId, table);
      assert.equal(span?.status.code, 2, table);
      assert.equal(span?.attributes["error.type"], "42P01", table);
      const points = receiver.metrics
        .filter((m) => m.name === "db.client.operation.duration")
        .flatMap((m) => m.points)
        .filter((p) => p.attributes["db.collection.name"] === table);
      assert.equal(points[0]?.attributes["error.type"], "42P01", table);
    }
    // Called back in the request's context, customer and all.
    assert.deepEqual(seen, [
      ["client", "42P01", "c-argument"],
      ["fine", undefined, "c-argument"],
      ["pool", "42P01", "c-argument"],
    ]);
  });
});

describe("COPY through pg-copy-streams", () => {
  it("records a COPY FROM STDIN the server refused as failed, and one it took as a success", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query("CREATE TEMP TABLE copied (n integer)");
    await trace.getTracer("t").startActiveSpan("copy", async (root) => {
      await pipeline(
        Readable.from(["1\n2\n"]),
        client.query(copyFrom("COPY copied FROM STDIN")),
      );
      // The stream's prototype has an empty callback(), which it calls as
      // it fails, before its "error": that call is no success.
      await assert.rejects(
        pipeline(
          Readable.from(["3\nnot a number\n"]),
          client.query(copyFrom("COPY copied (n) FROM STDIN")),
        ),
        { code: "22P02" },
      );
      root.end();
    });
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).filter((x) =>
          String(x.attributes["db.query.text"]).startsWith("COPY copied"),
        ).length >= 2,
      "both COPY spans",
    );
    const text = (t: string) =>
      spans.find((x) => x.attributes["db.query.text"] === t);
    const took = text("COPY copied FROM STDIN");
    assert.equal(took?.status.code, 0);
    assert.equal(took?.attributes["error.type"], undefined);
    const refused = text("COPY copied (n) FROM STDIN");
    assert.equal(refused?.status.code, 2);
    assert.equal(refused?.attributes["error.type"], "22P02");
    assert.match(refused!.status.message, /invalid input syntax/);
    await threadline.forceFlush();
    const points = (
      receiver.metrics.findLast(
        (m) => m.name === "db.client.operation.duration",
      )?.points ?? []
    ).filter((p) => p.attributes["db.query.summary"] === "COPY");
    const failed = points.filter((p) => p.attributes["error.type"] === "22P02");
    const succeeded = points.filter(
      (p) => p.attributes["error.type"] === undefined,
    );
    assert.deepEqual(
      [failed.map((p) => p.count), succeeded.map((p) => p.count)],
      [[1], [1]],
      "one failed and one successful COPY",
    );
  });
});

describe("errors the application does not listen for", () => {
  const run = async (execArgv: string[]) => {
    const app = await startService({
      entry: fileURLToPath(
        new URL("./fixtures/unhandled-error.mjs", import.meta.url),
      ),
      execArgv,
      ready: false,
      env: {
        DATABASE_URL: databaseUrl,
        OTEL_SERVICE_NAME: "pg-unhandled",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
      },
    });
    const { code } = await app.exited;
    assert.equal(code, 0, app.stderr.join("\n"));
    return app.stdout;
  };

  it("still throws them, as pg does alone, and ends their spans with them", async () => {
    // Without Threadline: a Query's and a stream's "error" with no listener
    // is thrown, and reaches the application's uncaughtException handler.
    const expected = [
      "done",
      'uncaught relation "no_such_table_query" does not exist',
      'uncaught relation "no_such_table_stream" does not exist',
    ];
    assert.deepEqual((await run([])).sort(), expected);
    assert.deepEqual(
      (await run(["--import", "@threadline/node/register"])).sort(),
      expected,
    );
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) =>
          String(x.attributes["db.query.text"]).startsWith(
            "SELECT * FROM no_such_table_",
          ),
        ).length >= 2,
      "both failed queries' spans",
    );
    for (const table of ["no_such_table_query", "no_such_table_stream"]) {
      const span = spans.find(
        (x) => x.attributes["db.query.text"] === `SELECT * FROM ${table}`,
      );
      assert.equal(span?.status.code, 2, table);
      assert.equal(span?.attributes["error.type"], "42P01", table);
      // Ended by the failure, not at the process's end.
      assert.equal(span?.attributes["threadline.unfinished"], undefined);
    }
  });
});

describe("values in PostgreSQL's error messages", () => {
  it("keeps a value out of the span whatever quotes and lines it holds", async () => {
    // PostgreSQL quotes the value as it is, doubling none of its own quotes.
    const cases: Array<{
      sql: string;
      values?: unknown[];
      recorded: string;
      message: string;
    }> = [
      {
        sql: "SELECT $1::int AS one_quote",
        values: ['12" secret-1 alice@example.com'],
        recorded: "SELECT $1::int AS one_quote",
        message: 'invalid input syntax for type integer: "?"',
      },
      {
        sql: "SELECT $1::date AS quoted_inside",
        values: ['x "secret-2" y'],
        recorded: "SELECT $1::date AS quoted_inside",
        message: 'invalid input syntax for type date: "?"',
      },
      {
        sql: "SELECT $1::int AS many_lines",
        values: ['7\n"secret-3"\n at or near "x"\nmore'],
        recorded: "SELECT $1::int AS many_lines",
        message: 'invalid input syntax for type integer: "?"',
      },
      {
        sql: "SELECT $1::smallint AS out_of_range",
        values: ["99999"],
        recorded: "SELECT $1::smallint AS out_of_range",
        message: 'value "?" is out of range for type smallint',
      },
      {
        sql: `UPDATE accounts SET owner 'carol" secret-4@example.com' WHERE id = 1`,
        recorded: "UPDATE accounts SET owner ? WHERE id = ?",
        message: 'syntax error at or near "?"',
      },
      {
        sql: `SELECT id AS unterminated FROM accounts WHERE owner = 'dave" secret-5\n"x"`,
        recorded: "SELECT id AS unterminated FROM accounts WHERE owner = ?",
        message: 'unterminated quoted string at or near "?"',
      },
    ];
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    for (const c of cases)
      await assert.rejects(client.query(c.sql, c.values), c.sql);
    await client.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) =>
        cases.every((c) =>
          querySpans(s).some(
            (q) => q.attributes["db.query.text"] === c.recorded,
          ),
        ),
      "every failed statement's span",
    );
    for (const c of cases) {
      const span = querySpans(spans).find(
        (q) => q.attributes["db.query.text"] === c.recorded,
      )!;
      assert.equal(span.status.code, 2, c.sql);
      assert.equal(span.status.message, c.message, c.sql);
      const exception = span.events.find((e) => e.name === "exception");
      assert.equal(exception?.attributes["exception.message"], c.message);
      const stack = String(exception?.attributes["exception.stacktrace"]);
      assert.ok(stack.startsWith(`error: ${c.message}\n    at `), stack);
    }
    const everything = JSON.stringify(spans, (_k, v: unknown) =>
      typeof v === "bigint" ? String(v) : v,
    );
    for (const secret of ["secret-", "example.com", "more"])
      assert.ok(!everything.includes(secret), `${secret} appears in a span`);
  });

  it("masks the values and literals of any failed statement, and each quoted part that is not a name it writes", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl });
    await pool.query(
      "CREATE FUNCTION charge(card text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'card % declined', card; END $$",
    );
    await pool.query("CREATE TABLE members (email text UNIQUE)");
    await pool.query("INSERT INTO members VALUES ($1)", ["alice@example.com"]);
    await pool.query(
      "CREATE TABLE ledgers (id int PRIMARY KEY, amount int CHECK (amount > 0), note varchar(100))",
    );
    await pool.query("CREATE TABLE entries (ledger int REFERENCES ledgers)");
    const cases: Array<{
      sql: string;
      values?: unknown[];
      recorded?: string;
      code: string;
      message: string;
    }> = [
      // Whatever a function raises, with a value given as text, or as pg
      // writes a number, a date, an array's element or a JSON field.
      {
        sql: "SELECT charge($1) AS by_text",
        values: ["4111-1111-1111-1111"],
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "SELECT charge($1) AS by_number",
        values: [4012888888881881],
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "SELECT charge($1) AS by_date",
        values: [new Date(2031, 4, 6, 7, 8, 9)],
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "SELECT charge(($1::text[])[2]) AS by_element",
        values: [["visa", "5500-0000-0000-0004"]],
        recorded: "SELECT charge(($1::text[])[?]) AS by_element",
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "SELECT charge($1::jsonb ->> 'number') AS by_field",
        values: [{ number: "3400-0000-0000-009" }],
        recorded: "SELECT charge($1::jsonb ->> ?) AS by_field",
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "SELECT charge('6011-0000-0000-0004') AS by_literal",
        recorded: "SELECT charge(?) AS by_literal",
        code: "P0001",
        message: "card ? declined",
      },
      // A literal in a DO block's body, dollar-quoted or in quotes.
      {
        sql: "DO $$ BEGIN PERFORM charge('6011-1111-0000-0001'); END $$",
        recorded: "DO ?",
        code: "P0001",
        message: "card ? declined",
      },
      {
        sql: "DO LANGUAGE plpgsql 'BEGIN PERFORM charge(''6011-2222-0000-0002''); END'",
        recorded: "DO LANGUAGE plpgsql ?",
        code: "P0001",
        message: "card ? declined",
      },
      // A value read as a name.
      {
        sql: "SELECT $1::regclass AS bound_name",
        values: ["secret-token-123"],
        code: "42P01",
        message: 'relation "?" does not exist',
      },
      {
        sql: "SELECT 'secret-token-456'::regclass AS literal_name",
        recorded: "SELECT ?::regclass AS literal_name",
        code: "42P01",
        message: 'relation "?" does not exist',
      },
      // Only a part of the value: nextval() cut it at its dot.
      {
        sql: "SELECT nextval($1) AS cut_value",
        values: ["seq_for_carol@example.com"],
        code: "3F000",
        message: 'schema "?" does not exist',
      },
      // Neither bound nor written: what the server read itself.
      {
        sql: "SELECT owner::int AS read_by_the_server FROM accounts WHERE id = $1",
        values: [1],
        code: "22P02",
        message: 'invalid input syntax for type integer: "?"',
      },
      // The value is in the detail, which is recorded nowhere; the
      // constraint's name, and a table the statement writes, are schema.
      {
        sql: "INSERT INTO members (email) VALUES ($1)",
        values: ["alice@example.com"],
        code: "23505",
        message:
          'duplicate key value violates unique constraint "members_email_key"',
      },
      {
        sql: "INSERT INTO ledgers (id, amount) VALUES ($1, $2)",
        values: [1, -5],
        code: "23514",
        message:
          'new row for relation "ledgers" violates check constraint "ledgers_amount_check"',
      },
      {
        sql: "INSERT INTO entries (ledger) VALUES ($1)",
        values: [777],
        code: "23503",
        message:
          'insert or update on table "entries" violates foreign key constraint "entries_ledger_fkey"',
      },
      // A number bound is no type's modifier.
      {
        sql: "INSERT INTO ledgers (id, amount, note) VALUES ($1, 1, repeat('x', 150))",
        values: [100],
        recorded:
          "INSERT INTO ledgers (id, amount, note) VALUES ($1, ?, repeat(?, ?))",
        code: "22001",
        message: "value too long for type character varying(100)",
      },
      // A name the statement writes is kept.
      {
        sql: "SELECT * FROM no_such_relation",
        code: "42P01",
        message: 'relation "no_such_relation" does not exist',
      },
    ];
    for (const c of cases)
      await assert.rejects(pool.query(c.sql, c.values), { code: c.code });
    await pool.end();
    await threadline.forceFlush();
    const recorded = (c: (typeof cases)[number]) => c.recorded ?? c.sql;
    const spans = await receiver.waitForSpans(
      (s) =>
        cases.every((c) =>
          querySpans(s).some(
            (q) => q.attributes["db.query.text"] === recorded(c),
          ),
        ),
      "every failed statement's span",
    );
    for (const c of cases) {
      const span = querySpans(spans).find(
        (q) => q.attributes["db.query.text"] === recorded(c),
      )!;
      assert.equal(span.status.code, 2, c.sql);
      assert.equal(span.attributes["db.response.status_code"], c.code, c.sql);
      assert.equal(span.attributes["error.type"], c.code, c.sql);
      assert.equal(span.status.message, c.message, c.sql);
      const exception = span.events.find((e) => e.name === "exception");
      assert.equal(exception?.attributes["exception.message"], c.message);
      const stack = String(exception?.attributes["exception.stacktrace"]);
      assert.ok(stack.startsWith(`error: ${c.message}\n    at `), stack);
    }
    const everything = JSON.stringify(spans, (_k, v: unknown) =>
      typeof v === "bigint" ? String(v) : v,
    );
    for (const secret of [
      "4111-",
      "4012888888881881",
      "2031-05-06",
      "5500-0000",
      "3400-0000",
      "6011-0000",
      "6011-1111",
      "6011-2222",
      "secret-token",
      "seq_for",
      "owner-1",
      "example",
    ])
      assert.ok(!everything.includes(secret), `${secret} appears in a span`);
  });

  it("calls back with pg's own error, and ends the span, when a bound value throws as it is read", async () => {
    // pg cannot send either: reading them for the masking throws too.
    class Lazy {
      constructor() {
        Object.defineProperty(this, "secret", {
          enumerable: true,
          get() {
            throw new Error("not loaded outside a transaction");
          },
        });
      }
    }
    const revoked = Proxy.revocable({ card: "4111" }, {});
    revoked.revoke();
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const failures: string[] = [];
    for (const [name, value] of [
      ["lazy", new Lazy()],
      ["revoked", revoked.proxy],
    ] as const) {
      const called = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no callback")), 5000);
        try {
          client.query(
            `SELECT $1::text AS ${name}_callback`,
            [value],
            (err: Error | null) => {
              clearTimeout(timer);
              resolve(err?.message ?? "no error");
            },
          );
        } catch (err) {
          clearTimeout(timer);
          reject(err as Error);
        }
      });
      failures.push(called);
      const rejected = await client
        .query(`SELECT $1::text AS ${name}_promise`, [value])
        .then(
          () => "no error",
          (err: Error) => err.message,
        );
      failures.push(rejected);
    }
    assert.ok(
      failures.every((m) => m !== "no error"),
      failures.join("\n"),
    );
    assert.equal(failures[0], "not loaded outside a transaction");
    // The connection is still of use.
    assert.deepEqual((await client.query("SELECT 1 AS one")).rows, [
      { one: 1 },
    ]);
    await client.end();
    await threadline.forceFlush();
    const names = ["lazy", "revoked"].flatMap((n) => [
      `${n}_callback`,
      `${n}_promise`,
    ]);
    const spans = await receiver.waitForSpans(
      (s) =>
        names.every((n) =>
          querySpans(s).some((q) =>
            String(q.attributes["db.query.text"]).includes(n),
          ),
        ),
      "each failed query's span",
    );
    for (const n of names) {
      const span = querySpans(spans).find((q) =>
        String(q.attributes["db.query.text"]).includes(n),
      )!;
      assert.equal(span.status.code, 2, n);
      assert.equal(span.status.message, "?", n);
    }
  });
});

describe("pg connections lost", () => {
  it("ends a pg-query-stream's span when its connection dies", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    client.on("error", () => {});
    const stream = client.query(
      new QueryStream("SELECT pg_sleep(5) AS streamed_then_killed"),
    );
    stream.on("data", () => {});
    stream.on("error", () => {});
    const killer = new pg.Client({ connectionString: databaseUrl });
    await killer.connect();
    await waitFor(
      async () =>
        (
          await killer.query(
            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5) AS streamed%'",
          )
        ).rowCount === 1,
      { what: "the query to be running" },
    );
    await killer.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some(
          (x) =>
            x.attributes["db.query.text"] ===
            "SELECT pg_sleep(?) AS streamed_then_killed",
        ),
      "the stream's span",
    );
    const span = spans.find(
      (x) =>
        x.attributes["db.query.text"] ===
        "SELECT pg_sleep(?) AS streamed_then_killed",
    );
    assert.equal(span?.status.code, 2);
  });
});

describe("failures pg raises itself", () => {
  it("ends the span of a query pg throws for as it is made", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const threw = (() => {
        try {
          void client.query({
            text: "SELECT 1 AS thrown_for",
            callback: "not a function",
          } as unknown as string);
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      assert.ok(threw instanceof Error, "pg throws, as it does untraced");
      await threadline.forceFlush();
      const span = (
        await receiver.waitForSpans(
          (s) =>
            querySpans(s).some(
              (q) =>
                q.name === "SELECT" &&
                String(q.attributes["db.query.text"]).includes("thrown_for"),
            ),
          "the span of the query pg threw for",
        )
      )
        .filter((q) =>
          String(q.attributes["db.query.text"]).includes("thrown_for"),
        )
        .at(-1)!;
      assert.equal(span.status.code, 2);
    } finally {
      await client.end();
    }
  });

  it("gives each a stable error.type, whichever form met it", async () => {
    // Refused, to a promise and to a callback.
    const dead = new pg.Pool({
      connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
    });
    await assert.rejects(dead.connect(), { code: "ECONNREFUSED" });
    await assert.rejects(
      new Promise<void>((resolve, reject) =>
        dead.connect((err, _client, release) => {
          if (err) return reject(err);
          release();
          resolve();
        }),
      ),
      { code: "ECONNREFUSED" },
    );
    await dead.end();
    // pg's query_timeout.
    const impatient = new pg.Pool({
      connectionString: databaseUrl,
      query_timeout: 50,
    });
    await assert.rejects(
      impatient.query("SELECT pg_sleep(0.5) AS read_timeout"),
      {
        message: "Query read timeout",
      },
    );
    await impatient.end();
    // pg-pool's connectionTimeoutMillis: no connection comes free in time.
    const busy = new pg.Pool({
      connectionString: databaseUrl,
      max: 1,
      connectionTimeoutMillis: 100,
    });
    const held = await busy.connect();
    await assert.rejects(busy.query("SELECT 1 AS waits_in_vain"), {
      message: "timeout exceeded when trying to connect",
    });
    held.release();
    await busy.end();
    // The connection drops mid-query: a proxy between closes both sides.
    const target = new URL(databaseUrl);
    const sockets: net.Socket[] = [];
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(Number(target.port), target.hostname);
      for (const s of [inbound, outbound]) s.on("error", () => {});
      sockets.push(inbound, outbound);
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const proxied = new URL(databaseUrl);
    proxied.port = String((proxy.address() as net.AddressInfo).port);
    const client = new pg.Client({ connectionString: proxied.href });
    client.on("error", () => {});
    await client.connect();
    const dropped = client.query("SELECT pg_sleep(5) AS dropped");
    const watcher = new pg.Client({ connectionString: databaseUrl });
    await watcher.connect();
    await waitFor(
      async () =>
        (
          await watcher.query(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5) AS dropped%'",
          )
        ).rowCount === 1,
      { what: "the query to be running" },
    );
    for (const s of sockets) s.destroy();
    await assert.rejects(dropped, {
      message: "Connection terminated unexpectedly",
    });
    await client.end();
    proxy.close();
    // PostgreSQL runs both sleeps to their end: gone now, they leave other
    // tests' views of pg_stat_activity alone.
    const mine =
      "FROM pg_stat_activity WHERE query LIKE '%AS read_timeout' OR query LIKE '%AS dropped'";
    await watcher.query(`SELECT pg_terminate_backend(pid) ${mine}`);
    await waitFor(
      async () => (await watcher.query(`SELECT 1 ${mine}`)).rowCount === 0,
      { what: "the sleeping backends to go" },
    );
    await watcher.end();
    await threadline.forceFlush();
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => x.name === "pg.pool.connect").length >= 4 &&
        s.some((x) =>
          String(x.attributes["db.query.text"]).includes("AS dropped"),
        ),
      "the failures' spans",
    );
    assert.deepEqual(
      spans
        .filter((x) => x.name === "pg.pool.connect" && x.status.code === 2)
        .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1))
        .map((x) => [x.status.code, x.attributes["error.type"]]),
      [
        [2, "ECONNREFUSED"],
        [2, "ECONNREFUSED"],
        [2, "pool_timeout"],
      ],
    );
    const typeOf = (alias: string) =>
      querySpans(spans).find((q) =>
        String(q.attributes["db.query.text"]).endsWith(alias),
      )?.attributes["error.type"];
    assert.equal(typeOf("AS read_timeout"), "query_timeout");
    assert.equal(typeOf("AS dropped"), "connection_lost");
    const points = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points);
    for (const type of ["query_timeout", "connection_lost"])
      assert.ok(
        points.some((p) => p.attributes["error.type"] === type),
        `a duration point with error.type ${type}`,
      );
  });
});

describe("queries that get no connection", () => {
  it("records a pool.query() the pool found no connection for as a failed operation", async () => {
    const deadPort = await freePort();
    const dead = new pg.Pool({
      connectionString: `postgres://postgres@127.0.0.1:${deadPort}/nowhere`,
    });
    await assert.rejects(dead.query("SELECT 1 AS refused"), {
      code: "ECONNREFUSED",
    });
    await dead.end();
    const busy = new pg.Pool({
      connectionString: databaseUrl,
      max: 1,
      connectionTimeoutMillis: 100,
    });
    const held = await busy.connect();
    await assert.rejects(
      new Promise((resolve, reject) =>
        busy.query("SELECT * FROM accounts", (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      ),
      { message: "timeout exceeded when trying to connect" },
    );
    held.release();
    await busy.end();
    await threadline.forceFlush();
    const points = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points)
      .filter((p) => p.attributes["error.type"] !== undefined);
    const refused = points.find(
      (p) => p.attributes["server.port"] === deadPort,
    );
    assert.deepEqual(refused?.attributes, {
      "db.system.name": "postgresql",
      "db.namespace": "nowhere",
      "server.address": "127.0.0.1",
      "server.port": deadPort,
      "db.query.summary": "SELECT",
      "db.operation.name": "SELECT",
      "error.type": "ECONNREFUSED",
    });
    const timedOut = points.find(
      (p) =>
        p.attributes["error.type"] === "pool_timeout" &&
        p.attributes["db.collection.name"] === "accounts",
    );
    assert.equal(timedOut?.attributes["db.operation.name"], "SELECT");
    assert.equal(timedOut?.count, 1);
    // pg-pool's timer runs on the event loop's clock, read once per turn in
    // whole milliseconds, so it may fire a little before 100 ms have passed
    // by the clock the duration is measured with: the point is that the
    // operation waited out the timeout rather than failing at once.
    assert.ok(
      Number(timedOut?.sum) >= 0.09,
      `it waited connectionTimeoutMillis (${timedOut?.sum} s)`,
    );
  });

  it("resolves a pool's address as pg does: a port given as text, the database named after the user", async () => {
    const deadPort = await freePort();
    // pg reads the port as a number, and connects to the user's database
    // when none is given.
    const dead = new pg.Pool({
      host: "127.0.0.1",
      port: String(deadPort) as unknown as number,
      user: "named_after_user",
    });
    await assert.rejects(dead.query("SELECT 1 AS refused"), {
      code: "ECONNREFUSED",
    });
    await dead.end();
    await threadline.forceFlush();
    const points = receiver.metrics
      .filter((m) => m.name === "db.client.operation.duration")
      .flatMap((m) => m.points)
      .filter(
        (p) =>
          p.attributes["error.type"] === "ECONNREFUSED" &&
          p.attributes["server.address"] === "127.0.0.1",
      );
    // Other tests' refusals are still in the cumulative metrics.
    assert.deepEqual(
      points
        .filter(
          (p) =>
            p.attributes["server.port"] === deadPort ||
            p.attributes["db.namespace"] === "named_after_user",
        )
        .map((p) => [
          p.attributes["server.port"],
          p.attributes["db.namespace"],
        ]),
      [[deadPort, "named_after_user"]],
    );
  });
});

describe("what a connection does by itself", () => {
  const NOTIFIED = "SELECT pg_backend_pid() AS notified";
  it("runs notifications and a pooled connection's failure as no request's, though a request opened them", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const listener = new pg.Client({ connectionString: databaseUrl });
    const seen: Array<[string, string | undefined, string | undefined]> = [];
    const who = (what: string) =>
      seen.push([
        what,
        getCustomerId(),
        trace.getActiveSpan()?.spanContext().traceId,
      ]);
    let requestTrace = "";
    // The pool's connection and the listener are opened inside c-first's request.
    await withCustomer("c-first", () =>
      trace.getTracer("t").startActiveSpan("request", async (root) => {
        requestTrace = root.spanContext().traceId;
        await pool.query("SELECT 1 AS opens_the_pool");
        await listener.connect();
        await listener.query("LISTEN jobs");
        root.end();
      }),
    );
    let handled!: (pid: number) => void;
    const handledNotification = new Promise<number>((r) => (handled = r));
    listener.on("notification", () => {
      who("notification");
      void pool
        .query<{ notified: number }>(NOTIFIED)
        .then((r) => handled(r.rows[0]!.notified));
    });
    let failed!: () => void;
    const poolFailed = new Promise<void>((r) => (failed = r));
    pool.on("error", () => {
      who("pool error");
      failed();
    });
    const other = new pg.Client({ connectionString: databaseUrl });
    await other.connect();
    await other.query("NOTIFY jobs, 'a job'");
    // The server ends the pool's idle connection.
    await other.query("SELECT pg_terminate_backend($1)", [
      await handledNotification,
    ]);
    await poolFailed;
    await other.end();
    await listener.end();
    await pool.end();
    assert.deepEqual(seen, [
      ["notification", undefined, undefined],
      ["pool error", undefined, undefined],
    ]);
    const spans = await receiver.waitForSpans(
      (s) =>
        s.some((x) => x.attributes["db.query.text"] === NOTIFIED) &&
        s.some((x) => x.name === "request"),
      "the notification's query",
    );
    const query = spans.find(
      (x) => x.attributes["db.query.text"] === NOTIFIED,
    )!;
    assert.notEqual(query.traceId, requestTrace, "not in c-first's trace");
    assert.equal(query.attributes["customer.id"], undefined);
  });
});

describe("rows read as they come", () => {
  it("runs a stream's, a pg.Query's and a cursor's events in the trace and customer of the request that read them", async () => {
    const app = await startService({
      entry: fileURLToPath(
        new URL("./fixtures/streamed-rows.mjs", import.meta.url),
      ),
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        DATABASE_URL: databaseUrl,
        OTEL_SERVICE_NAME: "pg-streamed-rows",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    try {
      const res = await withCustomer("c-streamer", () => fetch(app.url));
      assert.equal(res.status, 200, await res.text());
      const ours = (l: { resource: Record<string, unknown> }) =>
        l.resource["service.name"] === "pg-streamed-rows";
      const logs = (
        await receiver.waitForLogs(
          (l) => l.filter(ours).length >= 14,
          "a log record per row and end",
        )
      ).filter(ours);
      const spans = await receiver.waitForSpans(
        (s) => s.some((x) => ours(x) && x.kind === 2),
        "the request's span",
      );
      const request = spans.find((x) => ours(x) && x.kind === 2)!;
      assert.equal(request.attributes["customer.id"], "c-streamer");
      // The request's own span, as a query's callback and an awaited
      // query's continuation have it: not the query's.
      assert.deepEqual(
        logs.map((l) => [
          l.body,
          l.traceId === request.traceId && l.spanId === request.spanId,
          l.attributes["customer.id"],
        ]),
        [
          ...["stream row", "stream row", "stream row", "stream end"],
          ...["piped row", "piped row", "piped row"],
          ...["query row", "query row", "query row", "query end"],
          ...["cursor row", "cursor row", "cursor row"],
        ].map((body) => [body, true, "c-streamer"]),
      );
    } finally {
      await app.stop();
    }
  });
});

describe("pg pools under load", () => {
  it("keeps each queued query in the trace and customer of the request that issued it", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const seenInCallbacks: Array<[string, string | undefined]> = [];
    const requests = Array.from({ length: 8 }, (_, i) => `c-${i}`);
    await Promise.all(
      requests.map((customer) =>
        withCustomer(customer, () =>
          trace
            .getTracer("t")
            .startActiveSpan(`request ${customer}`, async (root) => {
              // Promise form, then callback form: both wait for the one connection.
              await pool.query("SELECT pg_sleep(0.01), $1::text AS who", [
                customer,
              ]);
              await new Promise<void>((resolve, reject) =>
                pool.query("SELECT $1::text AS who", [customer], (err) => {
                  seenInCallbacks.push([customer, getCustomerId()]);
                  if (err) reject(err);
                  else resolve();
                }),
              );
              root.end();
            }),
        ),
      ),
    );
    await pool.end();
    for (const [expected, seen] of seenInCallbacks)
      assert.equal(seen, expected, "the customer survives the pool callback");
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).length >= 16 &&
        s.filter((x) => x.name.startsWith("request ")).length >= 8,
      "all queries",
    );
    for (const root of spans.filter((s) => s.name.startsWith("request "))) {
      const customer = root.name.slice("request ".length);
      const mine = querySpans(spans).filter(
        (q) => q.parentSpanId === root.spanId,
      );
      assert.equal(mine.length, 2, `${customer} has both of its queries`);
      for (const q of mine) {
        assert.equal(q.traceId, root.traceId);
        assert.equal(q.attributes["customer.id"], customer);
      }
    }
    const waited = querySpans(spans).filter((q) =>
      q.events.some((e) => e.name === "pg.pool.connection_acquired"),
    );
    assert.equal(
      waited.length,
      16,
      "every pool query records when it got its connection",
    );
    assert.ok(
      waited.some(
        (q) =>
          Number(q.events[0]!.attributes["db.client.connection.wait_time_ms"]) >
          5,
      ),
      "some waited for the busy connection",
    );
  });

  it("calls back in the caller's context whatever pg calls back from", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const seen: Array<[string, string, string | undefined]> = [];
    const as = <T>(customer: string, fn: () => Promise<T>) =>
      withCustomer(customer, fn);
    // The connection was opened for c-0: later callbacks come from its socket.
    await as("c-0", () => pool.query("SELECT 1"));
    await Promise.all(
      ["c-1", "c-2"].map((customer) =>
        as(customer, async () => {
          const client = await pool.connect();
          try {
            await new Promise<void>((resolve) =>
              client.query(
                new pg.Query("SELECT 1 AS submitted", [], () => {
                  seen.push(["pg.Query", customer, getCustomerId()]);
                  resolve();
                }),
              ),
            );
            const cursor = client.query(
              new Cursor("SELECT g FROM generate_series(1, 3) g"),
            );
            await new Promise<void>((resolve) =>
              cursor.read(2, () => {
                seen.push(["cursor.read", customer, getCustomerId()]);
                cursor.close(() => {
                  seen.push(["cursor.close", customer, getCustomerId()]);
                  resolve();
                });
              }),
            );
            // pg passes its Query as `this` to a query's callback.
            await new Promise<void>((resolve) =>
              client.query("SELECT 1 AS this_kept", function (this: unknown) {
                seen.push([
                  "this",
                  customer,
                  this instanceof pg.Query ? customer : "not the Query",
                ]);
                resolve();
              }),
            );
          } finally {
            client.release();
          }
        }),
      ),
    );
    // The connection dies mid-query: pg-pool calls back from the client's
    // "error" event, on the socket of the connection c-0 opened.
    const killer = new pg.Client({ connectionString: databaseUrl });
    await killer.connect();
    await as("c-3", async () => {
      const answered = new Promise<void>((resolve) =>
        pool.query("SELECT pg_sleep(5) AS killed", (err: Error | null) => {
          seen.push(["pool.query error", "c-3", getCustomerId()]);
          assert.ok(err, "the query failed");
          resolve();
        }),
      );
      await waitFor(
        async () =>
          (
            await killer.query(
              "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5) AS killed%'",
            )
          ).rowCount === 1,
        { what: "the query to be running" },
      );
      await answered;
    });
    await killer.end();
    await pool.end();
    // pg calls an end() callback from the connection's "end" event, and
    // resolves its promise there.
    const ended = [
      new pg.Client({ connectionString: databaseUrl }),
      new pg.Client({ connectionString: databaseUrl }),
    ];
    await Promise.all(ended.map((c) => c.connect()));
    await as(
      "c-4",
      () =>
        new Promise<void>((resolve) =>
          ended[0]!.end(() => {
            seen.push(["client.end", "c-4", getCustomerId()]);
            resolve();
          }),
        ),
    );
    await as("c-5", async () => {
      await ended[1]!.end();
      seen.push(["await client.end", "c-5", getCustomerId()]);
    });
    assert.deepEqual(
      seen.filter(([, want, got]) => want !== got),
      [],
      "every callback ran for its own customer",
    );
    assert.equal(seen.length, 11);
  });

  it("hands a connection to a waiting caller in its context: acquire, connect, onConnect and verify too", async () => {
    const requestId = new AsyncLocalStorage<string>();
    const seen: Array<[string, string | undefined, string | undefined]> = [];
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max: 1,
      onConnect: () => {
        seen.push(["onConnect", getCustomerId(), requestId.getStore()]);
      },
      verify: (client, done) => {
        seen.push(["verify", getCustomerId(), requestId.getStore()]);
        client.query("SELECT 1 AS verified").then(() => done(), done);
      },
    });
    pool.on("connect", () =>
      seen.push(["connect", getCustomerId(), requestId.getStore()]),
    );
    pool.on("acquire", (client) => {
      seen.push(["acquire", getCustomerId(), requestId.getStore()]);
      void client.query("SELECT 1 AS acquired");
    });
    const tracer = trace.getTracer("t");
    const as = (customer: string, fn: () => Promise<void>) =>
      withCustomer(customer, () =>
        requestId.run(`request of ${customer}`, () =>
          tracer.startActiveSpan(`request ${customer}`, async (root) => {
            await fn();
            root.end();
          }),
        ),
      );
    const hold = () => new Promise((resolve) => setTimeout(resolve, 100));
    // c-alice holds the one connection while three callers queue for it,
    // each in one of the ways pg-pool can be asked: pool.query(), a
    // pool.connect() callback and an awaited pool.connect().
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const alice = as("c-alice", async () => {
      const client = await pool.connect();
      held();
      await hold();
      client.release();
    });
    await holding;
    const waiters = [
      as("c-bob", async () => {
        await pool.query("SELECT 1 AS bob");
      }),
      as(
        "c-carol",
        () =>
          new Promise<void>((resolve, reject) =>
            pool.connect((err, client, release) => {
              if (err) return reject(err);
              client!.query("SELECT 1 AS carol").then(() => {
                release();
                resolve();
              }, reject);
            }),
          ),
      ),
      as("c-dave", async () => {
        const client = await pool.connect();
        await client.query("SELECT 1 AS dave");
        client.release();
      }),
    ];
    await Promise.all([alice, ...waiters]);
    assert.equal(pool.totalCount, 1);
    // c-erin drops the connection while c-frank waits: c-frank is handed a
    // new one, opened from the code that dropped the old.
    let erinHolds!: () => void;
    const erinHolding = new Promise<void>((resolve) => (erinHolds = resolve));
    const erin = as("c-erin", async () => {
      const client = await pool.connect();
      erinHolds();
      await hold();
      client.release(new Error("dropped by the application"));
    });
    await erinHolding;
    const frank = as("c-frank", async () => {
      await pool.query("SELECT 1 AS frank");
    });
    await Promise.all([erin, frank]);
    await pool.end();
    const fresh = ["onConnect", "connect", "acquire", "verify"];
    const handOvers: Array<[string, string]> = [
      ...fresh.map((e) => [e, "c-alice"] as [string, string]),
      ["acquire", "c-bob"],
      ["acquire", "c-carol"],
      ["acquire", "c-dave"],
      ["acquire", "c-erin"],
      ...fresh.map((e) => [e, "c-frank"] as [string, string]),
    ];
    assert.deepEqual(
      seen,
      handOvers.map(([event, customer]) => [
        event,
        customer,
        `request of ${customer}`,
      ]),
      "each hand-over ran for the customer it was made for",
    );
    const customers = handOvers
      .filter(([event]) => event === "acquire")
      .map(([, customer]) => customer);
    const queriesNamed = (spans: ReceivedSpan[], text: string) =>
      querySpans(spans).filter((q) => q.attributes["db.query.text"] === text);
    const spans = await receiver.waitForSpans(
      (s) =>
        queriesNamed(s, "SELECT ? AS acquired").length >= customers.length &&
        queriesNamed(s, "SELECT ? AS verified").length >= 2 &&
        customers.every((c) => s.some((x) => x.name === `request ${c}`)),
      "the queries of every hand-over",
    );
    for (const [text, expected] of [
      ["SELECT ? AS acquired", customers],
      ["SELECT ? AS verified", ["c-alice", "c-frank"]],
    ] as const) {
      const queries = queriesNamed(spans, text);
      assert.deepEqual(
        queries.map((q) => q.attributes["customer.id"]).sort(),
        [...expected].sort(),
        `${text}: one for each customer handed a connection`,
      );
      for (const q of queries) {
        const root = spans.find(
          (s) => s.name === `request ${String(q.attributes["customer.id"])}`,
        )!;
        assert.equal(
          q.traceId,
          root.traceId,
          `${text}: in its request's trace`,
        );
      }
    }
  });

  it("traces an explicit pool.connect() wait as its own span, awaited or called back, and the first query from when it is sent", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const tracer = trace.getTracer("t");
    // The application's own work between getting its client and querying.
    const work = () => new Promise((resolve) => setTimeout(resolve, 300));
    await tracer.startActiveSpan("called back", async (root) => {
      await new Promise<void>((resolve, reject) =>
        pool.connect((err, client, release) => {
          if (err) return reject(err);
          work()
            .then(() => client!.query("SELECT 1 AS called_back"))
            .then(() => {
              release();
              resolve();
            }, reject);
        }),
      );
      root.end();
    });
    await tracer.startActiveSpan("awaited", async (root) => {
      const client = await pool.connect();
      await work();
      await client.query("SELECT 1 AS awaited");
      client.release();
      root.end();
    });
    await pool.end();
    // Each connect span ends before its request's query starts.
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).length >= 2 &&
        ["called back", "awaited"].every((n) => s.some((x) => x.name === n)),
      "both requests and their queries",
    );
    for (const [name, text] of [
      ["called back", "SELECT ? AS called_back"],
      ["awaited", "SELECT ? AS awaited"],
    ] as const) {
      const root = spans.find((s) => s.name === name)!;
      const connect = spans.find(
        (s) => s.name === "pg.pool.connect" && s.parentSpanId === root.spanId,
      );
      assert.ok(connect, `${name}: the wait is a span of the request`);
      const query = querySpans(spans).find(
        (q) => q.parentSpanId === root.spanId,
      );
      assert.equal(query?.attributes["db.query.text"], text);
      assert.deepEqual(
        query.events.map((e) => e.name),
        [],
        `${name}: the query's wait is the connect span, not an event`,
      );
      const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;
      const took = ms(query.startTimeUnixNano, query.endTimeUnixNano);
      assert.ok(took < 250, `${name}: the query took ${took} ms`);
      const after = ms(connect.endTimeUnixNano, query.startTimeUnixNano);
      assert.ok(
        after >= 250,
        `${name}: the query starts ${after} ms after the connection came, when it was sent`,
      );
    }
  });
});

describe("pg options", () => {
  before(async () => {
    await threadline.shutdown();
    start({ pgRecordParameters: true, pgSqlCommenter: true });
  });

  it("records bound parameters only when asked", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query("SELECT $1::int + $2::int AS sum", [2, 3]);
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).some((q) =>
          String(q.attributes["db.query.text"]).includes("sum"),
        ),
      "the query",
    );
    const q = querySpans(spans).find((x) =>
      String(x.attributes["db.query.text"]).includes("sum"),
    )!;
    assert.equal(q.attributes["db.query.parameter.0"], "2");
    assert.equal(q.attributes["db.query.parameter.1"], "3");
  });

  it("records each bound value as pg sends it, and binary data by its size", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    // An entity bound by its id: pg sends the id alone, not the rest.
    const customer = {
      id: 42,
      email: "someone@example.com",
      toPostgres: () => "42",
    };
    const at = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    const photo = Buffer.alloc(300_000, 1);
    await client.query(
      "SELECT $1::int AS sent_as_pg, $2::timestamptz, $3::bytea IS NOT NULL, $4::int[]",
      [customer, at, photo, [1, 2]],
    );
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).some((q) =>
          String(q.attributes["db.query.text"]).includes("sent_as_pg"),
        ),
      "the query",
    );
    const q = querySpans(spans).find((x) =>
      String(x.attributes["db.query.text"]).includes("sent_as_pg"),
    )!;
    assert.equal(q.attributes["db.query.parameter.0"], "42");
    // pg's own text for it (local time, as pg writes it by default), not
    // Date's toString().
    assert.match(
      String(q.attributes["db.query.parameter.1"]),
      /^2024-01-0[12]T\d{2}:04:05\.000[+-]\d{2}:\d{2}$/,
    );
    assert.equal(q.attributes["db.query.parameter.2"], "<300000 bytes>");
    assert.equal(q.attributes["db.query.parameter.3"], '{"1","2"}');
  });

  it("leaves PostgreSQL's error message as it is when parameters are recorded", async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await assert.rejects(
      client.query("SELECT $1::regclass AS recorded_name", ["token-789"]),
      { code: "42P01" },
    );
    await client.end();
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).some((q) =>
          String(q.attributes["db.query.text"]).includes("recorded_name"),
        ),
      "the failed query",
    );
    const q = querySpans(spans).find((x) =>
      String(x.attributes["db.query.text"]).includes("recorded_name"),
    )!;
    assert.equal(q.attributes["db.query.parameter.0"], "token-789");
    assert.equal(q.status.message, 'relation "token-789" does not exist');
    const exception = q.events.find((e) => e.name === "exception");
    assert.equal(
      exception?.attributes["exception.message"],
      'relation "token-789" does not exist',
    );
  });

  it("records the first 100 parameters of a statement that binds more", async () => {
    const values = Array.from({ length: 5000 }, (_, i) => i);
    const placeholders = values.map((_, i) => `($${i + 1}::int)`).join(",");
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const { rowCount } = await client.query(
      `SELECT n AS bulk FROM (VALUES ${placeholders}) AS v(n)`,
      values,
    );
    await client.end();
    assert.equal(rowCount, 5000);
    const spans = await receiver.waitForSpans(
      (s) =>
        querySpans(s).some((q) =>
          String(q.attributes["db.query.text"]).includes("bulk"),
        ),
      "the bulk query",
    );
    const q = querySpans(spans).find((x) =>
      String(x.attributes["db.query.text"]).includes("bulk"),
    )!;
    const recorded = Object.keys(q.attributes).filter((k) =>
      k.startsWith("db.query.parameter."),
    );
    assert.equal(recorded.length, 100);
    assert.equal(q.attributes["db.query.parameter.99"], "99");
    assert.equal(q.attributes["db.operation.name"], "SELECT");
  });

  it("puts traceparent and the service name where pg_stat_activity shows them", async () => {
    const worker = new pg.Client({ connectionString: databaseUrl });
    const observer = new pg.Client({ connectionString: databaseUrl });
    await Promise.all([worker.connect(), observer.connect()]);
    let traceId = "";
    const running = trace
      .getTracer("t")
      .startActiveSpan("request", async (root) => {
        traceId = root.spanContext().traceId;
        await worker.query("SELECT pg_sleep(1)");
        root.end();
      });
    const seen = await waitFor(
      async () => {
        const r = await observer.query(
          "SELECT query FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
        );
        return (r.rows[0] as { query?: string } | undefined)?.query;
      },
      { what: "the running statement in pg_stat_activity" },
    );
    await running;
    assert.match(
      seen,
      new RegExp(
        `^SELECT pg_sleep\\(1\\) /\\*service='pg-test',traceparent='00-${traceId}-[0-9a-f]{16}-0[13]'\\*/$`,
      ),
    );
    // A named prepared statement keeps one text across executions: only the service.
    await worker.query({
      name: "by-id",
      text: "SELECT owner FROM accounts WHERE id = $1",
      values: [1],
    });
    await worker.query({
      name: "by-id",
      text: "SELECT owner FROM accounts WHERE id = $1",
      values: [2],
    });
    await Promise.all([worker.end(), observer.end()]);
  });

  it("keeps a named statement usable whether its executions are traced, suppressed or untraced after shutdown", async () => {
    const member = {
      name: "get-member",
      text: "SELECT owner FROM accounts WHERE id = $1",
      values: [1],
    };
    const suppressed = <T>(fn: () => T): T =>
      context.with(suppressTracing(context.active()), fn);
    const prepared = async (client: pg.Client | pg.PoolClient) =>
      (
        await suppressed(() =>
          client.query(
            "SELECT statement FROM pg_prepared_statements WHERE name = 'get-member'",
          ),
        )
      ).rows.map((r: { statement: string }) => r.statement);
    const comment = "/*service='pg-test'*/";
    const owner = async (run: Promise<pg.QueryResult>) =>
      ((await run).rows[0] as { owner: string }).owner;
    const first = new pg.Client({ connectionString: databaseUrl });
    const second = new pg.Client({ connectionString: databaseUrl });
    await Promise.all([first.connect(), second.connect()]);
    try {
      // Traced first, then suppressed.
      assert.equal(await owner(first.query(member)), "owner-1");
      assert.equal(
        await owner(suppressed(() => first.query(member))),
        "owner-1",
      );
      assert.deepEqual(await prepared(first), [`${member.text} ${comment}`]);
      // Suppressed first, then traced.
      assert.equal(
        await owner(suppressed(() => second.query(member))),
        "owner-1",
      );
      assert.equal(await owner(second.query(member)), "owner-1");
      // Its text does not depend on whether the run that prepared it was traced.
      assert.deepEqual(await prepared(second), [`${member.text} ${comment}`]);
    } finally {
      await Promise.all([first.end(), second.end()]);
    }
    // Traced, then again on the same pooled connection after shutdown.
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    try {
      assert.equal(await owner(pool.query(member)), "owner-1");
      await threadline.shutdown();
      assert.equal(await owner(pool.query(member)), "owner-1");
      start({ pgRecordParameters: true, pgSqlCommenter: true });
      assert.equal(await owner(pool.query(member)), "owner-1");
    } finally {
      await pool.end();
    }
  });
});

describe("the pool's health", () => {
  let healthUrl: string;
  before(async () => {
    await threadline.shutdown();
    const port = await freePort();
    healthUrl = `http://127.0.0.1:${port}`;
    // No alarms: the endpoint is all that runs the checks.
    start({ health: { port }, alarms: false });
  });

  /** /readyz: its status code, and the checks of pools named from `prefix` on. */
  const readyz = async (prefix = "postgresql ") => {
    const res = await fetch(`${healthUrl}/readyz`);
    const report = (await res.json()) as {
      components: Array<{ name: string; status: string; reason?: string }>;
    };
    return {
      code: res.status,
      pools: report.components.filter((c) => c.name.startsWith(prefix)),
    };
  };
  const pools = async () =>
    (await readyz()).pools.map((c) => [c.name, c.status, c.reason]);

  /** A server that accepts connections and never answers, as a hung one or a black-holed network. */
  const silentServer = async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) =>
      silent.listen(0, "127.0.0.1", resolve),
    );
    return {
      port: (silent.address() as net.AddressInfo).port,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      },
    };
  };

  it("forgets a pool as it ends, and the next pool to the same database takes its name", async () => {
    // A job's pools, each made, used and ended in turn.
    for (let i = 0; i < 3; i++) {
      const job = new pg.Pool({ connectionString: databaseUrl, max: 1 });
      await job.query("SELECT 1");
      await job.end();
    }
    const url = new URL(databaseUrl);
    const name = `postgresql ${url.hostname}:${url.port}${url.pathname}`;
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    try {
      await pool.query("SELECT 1");
      assert.deepEqual(await pools(), [[name, "healthy", undefined]]);
    } finally {
      await pool.end();
    }
    assert.deepEqual(await pools(), []);
  });

  it("names a pool as pg resolves it: a port given as text, the database named after the user", async () => {
    const url = new URL(databaseUrl);
    const pool = new pg.Pool({
      host: url.hostname,
      port: url.port as unknown as number,
      user: "postgres",
      max: 1,
    });
    try {
      const { rows } = await pool.query("SELECT current_database() AS db");
      assert.equal(rows[0].db, "postgres");
      assert.deepEqual(await pools(), [
        [
          `postgresql ${url.hostname}:${url.port}/postgres`,
          "healthy",
          undefined,
        ],
      ]);
    } finally {
      await pool.end();
    }
  });

  it("reports a busy pool as degraded, never queueing its probe behind the application's queries", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    const held = new Set<pg.PoolClient>();
    const hold = async () => {
      const client = await pool.connect();
      held.add(client);
      return client;
    };
    const release = (client: pg.PoolClient) => {
      held.delete(client);
      client.release();
    };
    const ready = async () => {
      const { code, pools } = await readyz();
      assert.equal(pools.length, 1, "one pool is checked");
      return { code, status: pools[0]!.status, reason: pools[0]!.reason };
    };
    try {
      await pool.query("SELECT 1");
      assert.deepEqual(await ready(), {
        code: 200,
        status: "healthy",
        reason: undefined,
      });

      // The pool's one connection is busy and a query waits for it.
      const busy = await hold();
      const queued = pool.query("SELECT 2");
      assert.equal(pool.waitingCount, 1);
      for (let i = 0; i < 3; i++)
        assert.deepEqual(await ready(), {
          code: 200,
          status: "degraded",
          reason: "1 queries waiting for a connection",
        });
      assert.equal(
        pool.waitingCount,
        1,
        "only the application's query waits: no probe joined it",
      );
      release(busy);
      await queued;

      // Every connection in use, nothing waiting yet.
      const again = await hold();
      assert.deepEqual(await ready(), {
        code: 200,
        status: "degraded",
        reason: "all 1 connections of the pool are in use",
      });
      assert.equal(pool.waitingCount, 0);
      release(again);
      assert.deepEqual(await ready(), {
        code: 200,
        status: "healthy",
        reason: undefined,
      });
    } finally {
      for (const client of held) release(client);
      await pool.end();
    }
  });
  it("sends a server that stops answering one probe at a time, not a connection per check", async () => {
    // Accepts connections and never answers, as a hung server or a
    // black-holed network does.
    const silent = await silentServer();
    const { port } = silent;
    const pool = new pg.Pool({
      host: "127.0.0.1",
      port,
      user: "postgres",
      database: "silent",
      max: 5,
    });
    pool.on("error", () => {});
    const failed = pool.query("SELECT 1").catch((err: Error) => err);
    try {
      for (let i = 0; i < 2; i++) {
        const { code, pools } = await readyz(`postgresql 127.0.0.1:${port}`);
        assert.equal(code, 503);
        assert.deepEqual(
          pools.map((c) => [c.status, c.reason]),
          [["unhealthy", "no answer within 2000 ms"]],
        );
      }
      assert.equal(
        pool.totalCount,
        2,
        "the application's query and one probe, however many checks ran",
      );
    } finally {
      await silent.close();
      await failed;
      await pool.end();
    }
  });

  it("reports a busy pool that completes no query as unhealthy, as a hung server under load", async () => {
    // Accepts connections and never answers; the application's traffic
    // fills the pool and queues behind it.
    const silent = await silentServer();
    const { port } = silent;
    const pool = new pg.Pool({
      host: "127.0.0.1",
      port,
      user: "postgres",
      database: "silent",
      max: 2,
    });
    pool.on("error", () => {});
    const queries = Array.from({ length: 5 }, () =>
      pool.query("SELECT 1").catch((err: Error) => err),
    );
    const check = async () => {
      const { code, pools } = await readyz(`postgresql 127.0.0.1:${port}`);
      return { code, status: pools[0]?.status, reason: pools[0]?.reason };
    };
    try {
      assert.equal(pool.waitingCount, 3);
      assert.deepEqual(await check(), {
        code: 200,
        status: "degraded",
        reason: "3 queries waiting for a connection",
      });
      const stuck = await waitFor(
        async () => {
          const answer = await check();
          return answer.status !== "degraded" && answer;
        },
        { timeoutMs: 8000, what: "the check to stop answering degraded" },
      );
      assert.equal(stuck.code, 503);
      assert.equal(stuck.status, "unhealthy");
      assert.match(
        stuck.reason ?? "",
        /^no query completed in \d+ ms, 3 queries waiting for a connection$/,
      );
      assert.equal(pool.totalCount, 2, "no probe joined the queue");
    } finally {
      await silent.close();
      await Promise.all(queries);
      await pool.end();
    }
  });

  it("keeps a busy pool that completes queries degraded, however long it stays busy", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    let running = true;
    const traffic: Array<Promise<unknown>> = [];
    const next = (): Promise<unknown> =>
      pool
        .query("SELECT pg_sleep(0.1)")
        .then(() => (running ? next() : undefined));
    const statuses = new Set<string>();
    try {
      await pool.query("SELECT 1");
      for (let i = 0; i < 3; i++) traffic.push(next());
      const start = Date.now();
      // Longer than the checks' 2000 ms, with queries waiting throughout.
      while (Date.now() - start < 3000) {
        const res = await fetch(`${healthUrl}/readyz`);
        const report = (await res.json()) as {
          components: Array<{ name: string; status: string; reason?: string }>;
        };
        for (const c of report.components)
          if (c.name.startsWith("postgresql ")) statuses.add(c.status);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual([...statuses], ["degraded"]);
    } finally {
      running = false;
      await Promise.all(traffic);
      await pool.end();
    }
  });

  it("gives up a probe whose connection stopped answering, and probes again on another", async () => {
    // Forwards each connection to the server until it is frozen: then its
    // bytes are swallowed and its socket kept open, as a proxy that hangs
    // or a dropped flow does, while new connections work.
    const url = new URL(databaseUrl);
    const links: Array<{ client: net.Socket; server: net.Socket }> = [];
    const proxy = net.createServer((client) => {
      const server = net.connect(Number(url.port), url.hostname);
      client.on("error", () => {}).pipe(server);
      server.on("error", () => {}).pipe(client);
      client.on("close", () => server.destroy());
      server.on("close", () => client.destroy());
      links.push({ client, server });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const freeze = (link: { client: net.Socket; server: net.Socket }) => {
      link.client.unpipe(link.server);
      link.server.unpipe(link.client);
      link.client.resume();
      link.server.resume();
    };
    const port = (proxy.address() as net.AddressInfo).port;
    const pool = new pg.Pool({
      host: "127.0.0.1",
      port,
      user: url.username,
      password: url.password,
      database: url.pathname.slice(1),
      max: 4,
    });
    pool.on("error", () => {});
    const name = `postgresql 127.0.0.1:${port}${url.pathname}`;
    const check = async () => {
      const { code, pools } = await readyz(name);
      return pools
        .filter((c) => c.name === name)
        .map((c) => [code, c.status, c.reason]);
    };
    try {
      await pool.query("SELECT 1");
      assert.equal(links.length, 1);
      assert.deepEqual(await check(), [[200, "healthy", undefined]]);
      // The pool's one idle connection, which the next probe takes.
      freeze(links[0]!);
      assert.deepEqual(await check(), [
        [503, "unhealthy", "no answer within 2000 ms"],
      ]);
      // The application is served on another connection all along.
      const { rows } = await pool.query("SELECT 2 AS n");
      assert.equal(rows[0].n, 2);
      assert.deepEqual(await check(), [[200, "healthy", undefined]]);
      await waitFor(() => links[0]!.client.destroyed, {
        timeoutMs: 2000,
        what: "the frozen connection to be closed, not kept",
      });
      assert.equal(pool.totalCount, 1, "no probe left a connection behind");
    } finally {
      for (const { client, server } of links) {
        client.destroy();
        server.destroy();
      }
      await pool.end();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
