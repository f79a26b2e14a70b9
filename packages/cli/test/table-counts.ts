// The rows in a store file's traces, spans and logs tables, counted by a
// connection of the test's own: what the store's kept counts must equal.
import type { DatabaseSync } from "node:sqlite";

export function tableCounts(db: DatabaseSync): {
  traces: number;
  spans: number;
  logs: number;
} {
  const one = (table: string) =>
    (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  return { traces: one("traces"), spans: one("spans"), logs: one("logs") };
}
