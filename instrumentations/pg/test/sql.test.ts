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
    ]) {
      assert.ok(!sanitizeSql(q).includes(secret), q);
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
