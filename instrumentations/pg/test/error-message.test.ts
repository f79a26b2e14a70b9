import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { maskedMessage } from "../src/error-message.ts";
import { literalsOf } from "../src/sql.ts";

describe("maskedMessage", () => {
  it("masks each value wherever it appears, the longest first", () => {
    assert.equal(
      maskedMessage(
        "no account for alice@example.com (alice)",
        ["alice", "alice@example.com"],
        undefined,
      ),
      "no account for ? (?)",
    );
  });

  it("leaves a value shorter than three characters outside quotes", () => {
    assert.equal(
      maskedMessage("row 1 of 12 is ok", ["1", "ok"], "SELECT $1, $2"),
      "row 1 of 12 is ok",
    );
  });

  it("keeps a quoted name the statement writes, as written or folded to lower case", () => {
    const statement = 'SELECT * FROM "Orders" JOIN Items USING (id)';
    for (const message of [
      'relation "Orders" does not exist',
      'relation "items" does not exist',
      'column "id" does not exist',
    ])
      assert.equal(maskedMessage(message, [], statement), message);
    assert.equal(
      maskedMessage('relation "orders" does not exist', [], statement),
      'relation "?" does not exist',
    );
  });

  it("keeps a qualified name whose every part the statement writes", () => {
    const statement = "SELECT * FROM public.orders";
    assert.equal(
      maskedMessage('relation "public.orders" does not exist', [], statement),
      'relation "public.orders" does not exist',
    );
    assert.equal(
      maskedMessage('relation "public.secret" does not exist', [], statement),
      'relation "?" does not exist',
    );
  });

  it("masks a name the statement writes that a value holds", () => {
    assert.equal(
      maskedMessage(
        'schema "Accounts" does not exist',
        ["accounts.token-1"],
        "SELECT nextval($1) FROM accounts",
      ),
      'schema "?" does not exist',
    );
  });

  it("masks quoted parts next to each other as one, and only a kept name divides them", () => {
    assert.equal(
      maskedMessage(
        'invalid input syntax for type date: "x "secret-2" y"',
        [],
        "SELECT d::date FROM t",
      ),
      'invalid input syntax for type date: "?"',
    );
    assert.equal(
      maskedMessage(
        'null value in column "a" of relation "t" violates not-null constraint "b" now',
        [],
        "SELECT a FROM t",
      ),
      'null value in column "a" of relation "t" violates not-null constraint "?" now',
    );
    assert.equal(
      maskedMessage(
        'new row for relation "x" violates check constraint "y" now',
        [],
        "SELECT 1",
      ),
      'new row for relation "?" now',
    );
  });

  it("masks all after a quote left open", () => {
    assert.equal(
      maskedMessage('value "abc" is "secret-3 wrong', [], "SELECT abc"),
      'value "abc" is "?"',
    );
  });

  it("takes an apostrophe for no quote, and keeps the quote a masked part opened with", () => {
    assert.equal(
      maskedMessage("customer's card 'O'Brien' declined", [], "SELECT f()"),
      "customer's card '?' declined",
    );
  });

  it("keeps an operator or a bracket of the statement's, and masks others", () => {
    assert.equal(
      maskedMessage('syntax error at or near ","', [], "SELECT a, b c"),
      'syntax error at or near ","',
    );
    assert.equal(
      maskedMessage('syntax error at or near "@@"', [], "SELECT a"),
      'syntax error at or near "?"',
    );
  });

  it("keeps a constraint's name in an integrity constraint violation, unless a value is that name", () => {
    const statement = "INSERT INTO orders (member) VALUES ($1)";
    for (const [message, code] of [
      ['duplicate key value violates unique constraint "orders_pkey"', "23505"],
      [
        'insert or update on table "orders" violates foreign key constraint "orders_member_fkey"',
        "23503",
      ],
      [
        'new row for relation "orders" violates check constraint "orders_member_check"',
        "23514",
      ],
    ] as const)
      assert.equal(maskedMessage(message, [], statement, code), message);
    // A table the statement does not write is masked still, as is a name
    // after `constraint` in an error of another class, or one a value is.
    assert.equal(
      maskedMessage(
        'update or delete on table "members" violates foreign key constraint "orders_member_fkey" on table "audits"',
        [],
        "DELETE FROM members WHERE id = $1",
        "23503",
      ),
      'update or delete on table "members" violates foreign key constraint "orders_member_fkey" on table "?"',
    );
    assert.equal(
      maskedMessage('no constraint "ck" here', [], "SELECT 1", "P0001"),
      'no constraint "?" here',
    );
    assert.equal(
      maskedMessage(
        'duplicate key value violates unique constraint "ck"',
        ["ck"],
        statement,
        "23505",
      ),
      'duplicate key value violates unique constraint "?"',
    );
    assert.equal(
      maskedMessage(
        'duplicate key value violates unique constraint "a_secret_key"',
        ["a_secret_key"],
        statement,
        "23505",
      ),
      'duplicate key value violates unique constraint "?"',
    );
  });

  it("masks a number bound as a value, but within another number or a type's modifier", () => {
    const masked = (message: string) =>
      maskedMessage(message, ["100", "10.5"], "SELECT $1, $2", "22001");
    for (const message of [
      "value too long for type character varying(100)",
      "value too long for type character(100)",
      "numeric field overflow in numeric(100, 2)",
      "row 1000 of 2100 is 10.55 wide",
    ])
      assert.equal(masked(message), message);
    assert.equal(masked("card 100 declined"), "card ? declined");
    assert.equal(masked("card:100, limit 10.5"), "card:?, limit ?");
    assert.equal(masked("charge(100) failed"), "charge(?) failed");
    assert.equal(masked("id100x"), "id?x");
  });

  it("reads a type's modifier in the characters before its number, however far into the message", () => {
    const masked = (message: string) =>
      maskedMessage(message, ["100"], "SELECT $1", "22001");
    const far = `${"row of values, ".repeat(40)}too long for type character varying(100)`;
    assert.equal(masked(far), far);
    // A name that only ends like a type's is none, even where the
    // characters read before the number begin in the middle of it.
    const cut = `${"-".repeat(100)}xvarchar(${" ".repeat(55)}100)`;
    assert.equal(masked(cut), cut.replace("100", "?"));
    assert.equal(masked("xvarchar(100)"), "xvarchar(?)");
  });

  it("keeps only the SQLSTATE of a message too long to mask for its values", () => {
    // An array bound where one value was expected is written back whole,
    // and each of its items is a value: masking it would hold up the
    // application for seconds.
    const ids = Array.from({ length: 10_000 }, (_, i) => String(100_000 + i));
    const message = `invalid input syntax for type integer: "{${ids.map((id) => `"${id}"`).join(",")}}"`;
    assert.equal(
      maskedMessage(message, ids, "SELECT $1::int", "22P02"),
      "SQLSTATE 22P02",
    );
    assert.equal(maskedMessage(message, ids, undefined), "?");
    // Without values, there is nothing to read it for.
    assert.equal(maskedMessage(message, [], undefined), message);
    // A hundred values in a message of a thousand characters are masked.
    const some = ids.slice(0, 100);
    const shorter = `invalid input syntax for type integer: "{${some.join(",")}}"`;
    assert.equal(
      maskedMessage(shorter, some, undefined),
      `invalid input syntax for type integer: "{${some.map(() => "?").join(",")}}"`,
    );
  });

  it("leaves quotes alone in a message PostgreSQL did not send", () => {
    const message = "Prepared statements must be unique - 'by-id' was used";
    assert.equal(maskedMessage(message, ["token-1"], undefined), message);
  });
});

describe("literalsOf", () => {
  it("reads each literal as PostgreSQL does, and no comment", () => {
    assert.deepEqual(
      literalsOf(
        "SELECT 'O''Brien', E'it\\'s\\n', $t$body$t$, 42 /* 'note' */, 'open",
      ),
      ["O'Brien", "it's\n", "body", "42", "open"],
    );
  });

  it("reads the literals written in a DO block's body, dollar-quoted or in quotes", () => {
    assert.deepEqual(
      literalsOf("DO $$ BEGIN PERFORM check_card('4111111111111111'); END $$"),
      [
        " BEGIN PERFORM check_card('4111111111111111'); END ",
        "4111111111111111",
      ],
    );
    assert.deepEqual(
      literalsOf(
        "do 'BEGIN EXECUTE ''SELECT check_card(''''4111'''')''; PERFORM 42; END'",
      ),
      [
        "BEGIN EXECUTE 'SELECT check_card(''4111'')'; PERFORM 42; END",
        "SELECT check_card('4111')",
        "4111",
        "42",
      ],
    );
    // Elsewhere a string is a value, not code.
    assert.deepEqual(literalsOf("SELECT 'it''s 100'"), ["it's 100"]);
  });
});
