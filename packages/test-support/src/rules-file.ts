// An alarm rules document in a file of its own, for a service started with
// THREADLINE_ALARMS_FILE.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RulesFile {
  path: string;
  /** Removes the file and its folder. */
  remove(): void;
}

/** Writes `doc` as JSON to a new rules.json; its path, and how to remove it. */
export function writeRulesFile(doc: unknown): RulesFile {
  const dir = mkdtempSync(join(tmpdir(), "threadline-alarm-rules-"));
  const path = join(dir, "rules.json");
  writeFileSync(path, JSON.stringify(doc));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
