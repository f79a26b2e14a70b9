import assert from "node:assert/strict";
import { it } from "node:test";
import { parseLargeLine } from "../src/export/large-line.ts";

/** A seeded generator, so that a failure comes back the same. */
function random(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

it("reads any JSON object with small fields as JSON.parse does", () => {
  const rnd = random(42);
  // What ends or escapes a string, or looks like structure inside one.
  const chars = [
    "a",
    '"',
    "\\",
    "}",
    "]",
    "{",
    "[",
    ",",
    ":",
    "\u00e9",
    "\n",
    "\u2028",
    " ",
    "0",
  ];
  const text = () =>
    Array.from(
      { length: Math.floor(rnd() * 8) },
      () => chars[Math.floor(rnd() * chars.length)],
    ).join("");
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.3) return text();
    if (r < 0.45) return Math.floor(rnd() * 1e6) - 5e5;
    if (r < 0.5) return rnd() * 100;
    if (r < 0.55) return [true, false, null][Math.floor(rnd() * 3)];
    if (r < 0.75)
      return Array.from({ length: Math.floor(rnd() * 4) }, () =>
        value(depth + 1),
      );
    return Object.fromEntries(
      Array.from({ length: Math.floor(rnd() * 4) }, () => [
        text(),
        value(depth + 1),
      ]),
    );
  };
  for (let n = 0; n < 300; n++) {
    const o: Record<string, unknown> = { pad: "x".repeat(70_000) };
    for (let k = 0; k < 10; k++) o[text() + k] = value(0);
    const line = `${JSON.stringify(o, null, n % 2 === 0 ? 1 : undefined)}\n`;
    const { fields, texts } = parseLargeLine(line);
    assert.equal(texts.size, 0);
    assert.deepEqual(fields, JSON.parse(line), line.slice(70_000));
    assert.throws(
      () => parseLargeLine(line.replace('"pad"', "pad")),
      SyntaxError,
    );
  }
});
