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
    [
      "SELECT 1 -- a comment with 'quote'\n, 2",
      "SELECT ? -- a comment with 'quote'\n, ?",
    ],
    ["SELECT /* 'x' */ .5", "SELECT /* 'x' */ ?"],
    // PostgreSQL nests block comments: all of this one is comment.
    ["SELECT /* a /* b */ 'x' 2 */ 1", "SELECT /* a /* b */ 'x' 2 */ ?"],
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
      summarizeSql(
        "select id from public.orders o join items i on true where o.id = 1",
      ),
      {
        text: "select id from public.orders o join items i on true where o.id = ?",
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
      null,
      null,
      "SELECT",
      "UPDATE",
      null,
      null,
      "SELECT",
      null,
    ]);
  });

  it("summarises a statement too long to cache the same way, every time", () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `(${i}, 'o${i}')`);
    const sql = `INSERT INTO orders (id, owner) VALUES ${rows.join(", ")}`;
    const expected = {
      text: `INSERT INTO orders (id, owner) VALUES ${rows.map(() => "(?, ?)").join(", ")}`,
      operation: "INSERT",
      collection: "orders",
    };
    assert.ok(sql.length > 4096);
    assert.deepEqual(summarizeSql(sql), expected);
    assert.deepEqual(summarizeSql(sql), expected);
  });
});
