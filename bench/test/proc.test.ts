import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseStat } from "../src/proc.ts";

describe("parseStat", () => {
  it("reads user and system ticks after a command that has spaces and parentheses", () => {
    // Fields after the command: state ppid pgrp session tty tpgid flags
    // minflt cminflt majflt cmajflt utime stime …
    const stat =
      "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 731 95 0 0 20 0 11 0";
    assert.deepEqual(parseStat(stat), {
      command: "node (x) y",
      user: 731,
      system: 95,
    });
  });

  it("reads this process's own stat", () => {
    const s = parseStat(readFileSync("/proc/self/stat", "utf8"));
    assert.ok(Number.isInteger(s.user) && s.user >= 0);
    assert.ok(Number.isInteger(s.system) && s.system >= 0);
  });
});
