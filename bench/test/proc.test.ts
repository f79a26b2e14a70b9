import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  machineTicks,
  parseMachineStat,
  parseStat,
  processTicks,
} from "../src/proc.ts";

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

describe("parseMachineStat", () => {
  it("splits the machine's ticks into busy, all and stolen, leaving guest time counted once and stolen time out of busy", () => {
    const stat =
      "cpu  176441 70 50626 142264 7095 0 5916 2249 300 0\ncpu0 88000 35 25000 71000 3500 0 2900 1100 150 0\n";
    const total = 176441 + 70 + 50626 + 142264 + 7095 + 0 + 5916 + 2249;
    assert.deepEqual(parseMachineStat(stat), {
      busy: 176441 + 70 + 50626 + 5916,
      total,
      steal: 2249,
    });
  });

  it("reads this machine's ticks, which only grow", () => {
    const a = machineTicks();
    const b = machineTicks();
    assert.ok(a.total > 0 && a.busy + a.steal <= a.total && a.steal >= 0);
    assert.ok(b.total >= a.total && b.steal >= a.steal);
  });
});

describe("processTicks", () => {
  it("reads every process's ticks, this one's under its own id and command", () => {
    const a = processTicks();
    const self = a.get(process.pid);
    assert.ok(self !== undefined);
    assert.equal(
      self.command,
      parseStat(readFileSync("/proc/self/stat", "utf8")).command,
    );
    assert.ok(self.ticks >= 0);
    // PID 1 is always there.
    assert.ok(a.has(1));
    const b = processTicks();
    assert.ok(b.get(process.pid)!.ticks >= self.ticks);
  });
});
