import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlState } from "../src/pg-instrumentation.ts";

describe("sqlState", () => {
  it("reads the SQLSTATE of an error PostgreSQL sent", () => {
    const err = Object.assign(new Error('relation "nope" does not exist'), {
      code: "42P01",
      severity: "ERROR",
    });
    assert.equal(sqlState(err), "42P01");
  });

  it("takes no system error of the connection for one, five capitals or not", () => {
    for (const code of ["EPIPE", "ENXIO", "EROFS", "ECONNRESET"])
      assert.equal(
        sqlState(Object.assign(new Error(code), { code, syscall: "write" })),
        undefined,
        code,
      );
  });

  it("gives nothing for what is no error", () => {
    for (const v of [undefined, null, "42P01", 42, { code: 42601 }])
      assert.equal(sqlState(v), undefined);
  });
});
