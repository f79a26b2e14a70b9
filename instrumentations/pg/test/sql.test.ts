import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sanitizeSql, summarizeSql } from "../src/sql.ts";

describe("sanitizeSql", () => {
  const cases: Array<[string, string]> = [
    ["SELECT * FROM orders WHERE id = 42", "SELECT * FROM orders WHERE id = ?"],
    [
      "SELECT * FROM t1 WHERE name = 'O''Brien' AND x > 3.5e-2",
      "SELECT * FROM t1 WHERE name = ? AND x > ?",
    ],
    ["SELECT E'it\\'s a \\\\ secret', 'ok'", "SELECT ?, ?"],
    ["SELECT $$dollar 'quoted' body$$, $tag$other$tag$", "SELECT ?, ?"],
    [
      "INSERT INTO orders (customer, qty) VALUES ($1, $2)",
      "INSERT INTO orders (customer, qty) VALUES ($1, $2)",
    ],
    [
      'SELECT "Weird""Name" FROM "Orders" WHERE a = 0x1F',
      'SELECT "Weird""Name" FROM "Orders" WHERE a = ?',
    ],
    ["SELECT 1 -- a comment with 'quote'\n, 2", "SELECT ? --?\n, ?"],
    // A carriage return ends a line comment too.
    ["SELECT 1 -- note\r, 'x'", "SELECT ? --?\r, ?"],
    ["SELECT /* 'x' */ .5", "SELECT /*?*/ ?"],
    // PostgreSQL nests block comments: all of this one is comment.
    ["SELECT /* a /* b */ 'x' 2 */ 1", "SELECT /*?*/ ?"],
    // A comment's body goes, like a literal: tags and notes hold values.
    ["SELECT 1 /* customer='alice' */", "SELECT ? /*?*/"],
    ["SELECT 1 -- email alice@example.com", "SELECT ? --?"],
    ["SELECT 1 /* never closed 'x'", "SELECT ? /*?*/"],
    ["SELECT 'unterminated", "SELECT ?"],
    // PostgreSQL 16's integer literals: other radixes, digits grouped.
    ["SELECT 0b1011, 0o17, 0XFF, 1_000_000", "SELECT ?, ?, ?, ?"],
  ];
  for (const [input, expected] of cases) {
    it(`sanitises ${JSON.stringify(input)}`, () =>
      assert.equal(sanitizeSql(input), expected));
  }

  it("never lets a literal through", () => {
    const secret = "s3cr3t-card-4242";
    for (const q of [
      `SELECT '${secret}'`,
      `SELECT E'${secret}'`,
      `SELECT $x$${secret}$x$`,
      `UPDATE t SET c = '${secret}' WHERE id = 1`,
      // a quote in a nested comment's outer part opens no string
      `/* note /* inner */ isn't SQL */ SELECT '${secret}'`,
    ]) {
      // not a word of it: a literal read as SQL loses only its numbers
      assert.ok(!sanitizeSql(q).includes("s3cr3t"), q);
    }
  });
});

describe("summarizeSql", () => {
  it("reads the operation and the main table", () => {
    assert.deepEqual(
      summarizeSql("select id from public.orders o where o.id = 1"),
      {
        text: "select id from public.orders o where o.id = ?",
        summary: "SELECT public.orders",
        operation: "SELECT",
        collection: "public.orders",
      },
    );
    assert.equal(
      summarizeSql("INSERT INTO orders(a) VALUES (1)").collection,
      "orders",
    );
    assert.equal(
      summarizeSql('UPDATE "Orders" SET a = 1').collection,
      "Orders",
    );
    assert.equal(
      summarizeSql("DELETE FROM only orders WHERE true").collection,
      "orders",
    );
    assert.equal(summarizeSql("BEGIN").operation, "BEGIN");
    assert.equal(summarizeSql("BEGIN").collection, undefined);
    assert.equal(
      summarizeSql("SELECT * FROM (SELECT 1) s").collection,
      undefined,
    );
  });

  it("summarises each operation and its tables in order, naming one only when it is alone", () => {
    // [statement, db.query.summary, db.operation.name, db.collection.name]
    const cases: Array<[string, string?, string?, string?]> = [
      // more than one operation or table: the summary alone says so
      ["SELECT 1; DELETE FROM orders WHERE id = 7", "SELECT DELETE orders"],
      [
        "WITH x AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN (SELECT id FROM x)",
        "SELECT orders DELETE orders SELECT",
      ],
      [
        "select id from public.orders o join items i on true where o.id = 1",
        "SELECT public.orders items",
        "SELECT",
      ],
      [
        "INSERT INTO archive (id) SELECT id FROM orders",
        "INSERT archive SELECT orders",
      ],
      [
        "UPDATE orders SET a = c.a FROM customers c WHERE c.id = orders.customer",
        "UPDATE orders customers",
        "UPDATE",
      ],
      [
        "DELETE FROM orders USING customers c WHERE c.id = 1",
        "DELETE orders customers",
        "DELETE",
      ],
      [
        "MERGE INTO orders o USING staged s ON o.id = s.id WHEN MATCHED THEN UPDATE SET n = s.n WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)",
        "MERGE orders staged",
        "MERGE",
      ],
      ["SELECT * FROM a, b AS bb, c x(y) WHERE true", "SELECT a b c", "SELECT"],
      [
        "SELECT * FROM orders WHERE id IN (SELECT order_id FROM items) ORDER BY a, b",
        "SELECT orders SELECT items",
        "SELECT",
      ],
      [
        "SELECT x FROM t1 UNION ALL SELECT x FROM t2",
        "SELECT t1 SELECT t2",
        "SELECT",
      ],
      [
        "WITH a AS (SELECT 1), b AS (INSERT INTO log (x) VALUES (1) RETURNING x) SELECT * FROM a, b",
        "SELECT INSERT log SELECT",
      ],
      [
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM orders",
        "EXPLAIN DELETE orders",
      ],
      // Statements that make, change or empty tables, often temporary
      // ones named per call: their kind alone.
      ["TRUNCATE TABLE ONLY orders, items", "TRUNCATE", "TRUNCATE"],
      ["TRUNCATE tmp_8f3a2b9c", "TRUNCATE", "TRUNCATE"],
      [
        "CREATE TEMP TABLE tmp_8f3a2b9c (id int)",
        "CREATE TEMP TABLE",
        "CREATE TEMP TABLE",
      ],
      ["DROP TABLE IF EXISTS tmp_8f3a2b9c", "DROP TABLE", "DROP TABLE"],
      ["SELECT * INTO TEMP TABLE tmp_8f FROM t", "SELECT t", "SELECT", "t"],
      ["SELECT * INTO UNLOGGED tmp_8f FROM t", "SELECT t", "SELECT", "t"],
      ["LOCK TABLE orders", "LOCK", "LOCK"],
      // Tables named like keywords are tables.
      ["UPDATE if SET a = 1", "UPDATE if", "UPDATE", "if"],
      ["INSERT INTO exists VALUES (1)", "INSERT exists", "INSERT", "exists"],
      ["PREPARE p AS UPDATE orders SET x = $1", "PREPARE UPDATE orders"],
      // a function's FROM, a set-returning function and ONLY are no tables
      [
        "SELECT EXTRACT(YEAR FROM created_at) FROM orders",
        "SELECT orders",
        "SELECT",
        "orders",
      ],
      [
        "SELECT trim(both 'x' from email) FROM users",
        "SELECT users",
        "SELECT",
        "users",
      ],
      [
        "SELECT substring(email from 2 for 3) FROM users",
        "SELECT users",
        "SELECT",
        "users",
      ],
      [
        "SELECT overlay(a placing 'x' from 2) FROM t",
        "SELECT t",
        "SELECT",
        "t",
      ],
      ["SELECT * FROM unnest($1::int[]) AS u(id)", "SELECT", "SELECT"],
      [
        "SELECT * FROM generate_series(1, 3) g, orders o WHERE g = o.id",
        "SELECT orders",
        "SELECT",
        "orders",
      ],
      [
        "SELECT 1 FROM ROWS FROM (generate_series(1, 2)) AS r",
        "SELECT",
        "SELECT",
      ],
      ["select * from only orders", "SELECT orders", "SELECT", "orders"],
      ["SELECT * FROM a WHERE b IS DISTINCT FROM c", "SELECT a", "SELECT", "a"],
      ["SELECT * FROM orders FOR UPDATE", "SELECT orders", "SELECT", "orders"],
      [
        "INSERT INTO orders (id, email) VALUES (1, 'x@y.z') ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email",
        "INSERT orders",
        "INSERT",
        "orders",
      ],
      // the same operation on the same table, twice, is still one of each
      [
        "SELECT * FROM (SELECT * FROM orders) s",
        "SELECT SELECT orders",
        "SELECT",
        "orders",
      ],
      [
        "SELECT ARRAY(SELECT id FROM orders)",
        "SELECT SELECT orders",
        "SELECT",
        "orders",
      ],
      [
        "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
        "SELECT SELECT",
        "SELECT",
      ],
      // comments of either kind are skipped
      [
        "-- fetch orders\nSELECT * FROM orders WHERE email = 'a@b.c'",
        "SELECT orders",
        "SELECT",
        "orders",
      ],
      [
        "/* app */ SELECT /* from audit */ * FROM -- x\n orders",
        "SELECT orders",
        "SELECT",
        "orders",
      ],
      ["SELECT id -- x\rFROM orders", "SELECT orders", "SELECT", "orders"],
      // other statements: their kind, and the table only where it is one
      [
        "CREATE TABLE IF NOT EXISTS orders (id int, update timestamptz)",
        "CREATE TABLE",
        "CREATE TABLE",
      ],
      ["DROP INDEX IF EXISTS orders_idx", "DROP INDEX", "DROP INDEX"],
      ["COPY orders (id) FROM STDIN", "COPY", "COPY"],
      ["TABLE orders", "TABLE orders", "TABLE", "orders"],
      ["SAVEPOINT sp_12345", "SAVEPOINT", "SAVEPOINT"],
      ["LISTEN user_42", "LISTEN", "LISTEN"],
      ["GRANT SELECT, INSERT ON orders TO bob", "GRANT", "GRANT"],
      ["FETCH 10 FROM c1", "FETCH", "FETCH"],
      ["/* a /* b */ SELECT 1 FROM t"],
      ["/* only a comment */"],
    ];
    for (const [sql, summary, operation, collection] of cases)
      assert.deepEqual(
        (({ summary, operation, collection }) => ({
          summary,
          operation,
          collection,
        }))(summarizeSql(sql)),
        { summary, operation, collection },
        sql,
      );
  });

  it("keeps literals and the names statements make per call out of the summary", () => {
    for (const sql of [
      "SELECT * FROM orders WHERE email = 's3cr3t@example.com'",
      "SELECT $x$s3cr3t$x$ FROM orders",
      "UPDATE orders SET note = E's3cr3t\\'' WHERE id = 4242",
      "SET application_name = 's3cr3t'",
      "NOTIFY orders_4242, 's3cr3t'",
      "CALL pay('s3cr3t', 4242)",
      "SAVEPOINT s3cr3t_4242",
      "LISTEN s3cr3t_4242",
      "SELECT * FROM orders o JOIN s3cr3t_fn('x') f ON true WHERE id = 4242",
      `SELECT "col's3cr3t" FROM orders WHERE c = 's3cr3t'`,
    ]) {
      const { summary } = summarizeSql(sql);
      assert.ok(
        summary !== undefined &&
          !summary.includes("s3cr3t") &&
          !summary.includes("4242"),
        `${sql} => ${summary}`,
      );
    }
  });

  it("cuts a long summary at the last whole part within 255 characters", () => {
    const tables = Array.from({ length: 40 }, (_, i) => `table_number_${i}`);
    const { summary, operation, collection } = summarizeSql(
      `SELECT * FROM ${tables.join(", ")}`,
    );
    assert.ok(summary!.length <= 255, summary);
    assert.ok(summary!.length > 230, summary);
    assert.equal(
      summary,
      ["SELECT", ...tables].join(" ").slice(0, summary!.length),
    );
    assert.ok(tables.some((t) => summary!.endsWith(` ${t}`)));
    assert.equal(operation, "SELECT");
    assert.equal(collection, undefined);
  });

  it("reads the operation and the table past nested leading comments", () => {
    const read = (sql: string) => {
      const { operation, collection } = summarizeSql(sql);
      return { operation, collection };
    };
    assert.deepEqual(
      read(
        "/* app:checkout /* caller: pay() */ */ DELETE FROM carts WHERE id = $1",
      ),
      { operation: "DELETE", collection: "carts" },
    );
    assert.deepEqual(read("/* a /* nested */ comment */ SELECT 1"), {
      operation: "SELECT",
      collection: undefined,
    });
    // The table is the statement's, never a word of a comment before it.
    assert.deepEqual(read("/* from audit */ DELETE FROM carts"), {
      operation: "DELETE",
      collection: "carts",
    });
    assert.deepEqual(read("/* app:checkout */ UPDATE carts SET n = 1"), {
      operation: "UPDATE",
      collection: "carts",
    });
    // A comment that never closes holds the rest of the statement.
    assert.deepEqual(read("/* a /* b */ SELECT 1 FROM t"), {
      operation: undefined,
      collection: undefined,
    });
  });

  it("reads past many leading comments in one pass, whatever follows them", () => {
    // In a process of its own, stopped if it runs away: with comments
    // matched ambiguously, each more comment before text that is no keyword
    // doubled the work, and forty held the thread for good.
    const comments = "/* c */ ".repeat(40);
    const statements = [
      `${comments}(SELECT 1)`,
      `${comments}-- x\nSELECT 1`,
      `${comments}/* a * b / c */ select 1 from t`,
      "/**/update t set a = 1",
      "/* x */",
      `${"/* a /* b */ c */ ".repeat(40)}(SELECT 1)`,
      `${"/* a /* b /* c */ */ */ ".repeat(40)}select 1`,
      `/*${"/* ".repeat(40)}`,
    ];
    const run = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { summarizeSql } = await import(${JSON.stringify(new URL("../src/sql.ts", import.meta.url).href)});
         console.log(JSON.stringify(${JSON.stringify(statements)}.map((s) => summarizeSql(s).operation ?? null)));`,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(run.signal, null, "summarizeSql did not finish in 30 s");
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), [
      "SELECT",
      "SELECT",
      "SELECT",
      "UPDATE",
      null,
      "SELECT",
      "SELECT",
      null,
    ]);
  });

  it("summarises a statement too long to cache the same way, every time", () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `(${i}, 'o${i}')`);
    const sql = `INSERT INTO orders (id, owner) VALUES ${rows.join(", ")}`;
    const expected = {
      text: `INSERT INTO orders (id, owner) VALUES ${rows.map(() => "(?, ?)").join(", ")}`,
      summary: "INSERT orders",
      operation: "INSERT",
      collection: "orders",
    };
    assert.ok(sql.length > 4096);
    assert.deepEqual(summarizeSql(sql), expected);
    assert.deepEqual(summarizeSql(sql), expected);
  });
});
