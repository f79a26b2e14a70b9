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

/**
 * A URL as it may be printed: without user info, query or fragment (where
 * credentials and tokens hide); a file URL as its path. A value that is
 * no http(s) or file URL (a configuration mistake) is cut the same way as
 * text, so a key in it is not printed either.
 */
export function printableUrl(url: string): string {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // printed as text, below
  }
  if (u?.protocol === "file:") return decodeURIComponent(u.pathname);
  if (u?.protocol === "http:" || u?.protocol === "https:") {
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    return u.href;
  }
  // User info up to the last "@" first: a password may hold "/", "?" or
  // "#", which are what make such a value fail to parse.
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)?[\s\S]*@/i, "$1")
    .replace(/[?#].*$/s, "");
}
