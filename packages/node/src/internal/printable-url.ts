/**
 * A URL as it may be printed: without user info or query (where credentials
 * and tokens hide); a file URL as its path.
 */
export function printableUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    return u.protocol === "file:" ? decodeURIComponent(u.pathname) : u.href;
  } catch {
    return "(invalid URL)";
  }
}
