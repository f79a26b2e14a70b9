/**
 * Takes the user and password out of `u` (so that no request URL, and no
 * message quoting it, carries them) and returns them as the value of an
 * `Authorization: Basic` header; undefined when the URL has none. Their
 * %-escapes are decoded, and a % that escapes nothing (`50%off`), which
 * the URL parser lets through, is taken as written.
 */
export function takeUserInfo(u: URL): string | undefined {
  if (u.username === "" && u.password === "") return undefined;
  const credentials = `${percentDecoded(u.username)}:${percentDecoded(u.password)}`;
  u.username = "";
  u.password = "";
  return `Basic ${Buffer.from(credentials).toString("base64")}`;
}

/** `s` with its %-escapes decoded; as written where one escapes nothing. */
export function percentDecoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
