import { homedir } from "node:os";
import { join } from "node:path";

/** Where `threadline dev` keeps its store unless told otherwise (THREADLINE_DB, --db). */
export function defaultDbPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env["THREADLINE_DB"]) return env["THREADLINE_DB"];
  const base = env["XDG_DATA_HOME"] || join(homedir(), ".local", "share");
  return join(base, "threadline", "dev.sqlite");
}

/** The viewer's address unless told otherwise (THREADLINE_VIEWER_URL). */
export function defaultViewerUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env["THREADLINE_VIEWER_URL"] || "http://127.0.0.1:4320";
}
