import assert from "node:assert/strict";
import { after, it } from "node:test";
import { customerIdOf, withCustomer } from "../src/customer.ts";
import { diag } from "../src/diagnostics.ts";

after(() => diag.setSink(undefined));

it("takes integers as their decimal digits", () => {
  assert.equal(customerIdOf(1007), "1007");
  assert.equal(customerIdOf(-3), "-3");
  assert.equal(customerIdOf(10n ** 20n), "100000000000000000000");
  assert.equal(customerIdOf(10n ** 127n), `1${"0".repeat(127)}`);
  assert.equal(customerIdOf(1.5), undefined);
  assert.equal(customerIdOf(2 ** 53), undefined);
});

it("refuses a bigint over 128 digits, as it refuses a string that long, with the same warning", () => {
  assert.equal(customerIdOf(10n ** 128n), undefined);
  const warnings: string[] = [];
  diag.setSink((_level, message) => warnings.push(message));
  assert.equal(
    withCustomer(10n ** 150n, () => "ran"),
    "ran",
  );
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /withCustomer\(\) was given a value of type bigint that is no valid customer id/,
  );
});
