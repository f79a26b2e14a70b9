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
});
