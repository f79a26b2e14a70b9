// Talking to the dev server's JSON API, and building in-app links.
//
// A viewer started with a token serves nothing without it, so the page is
// opened as /?token=…: the token is read once from the page's own URL, sent
// as a bearer header on API calls, as ?token= on the live stream (an
// EventSource cannot set headers), and carried along in every in-app link so
// that reloading or sharing a deep link keeps working.

const token = new URLSearchParams(location.search).get("token") ?? "";

export class ApiError extends Error {
  /** `body`: the answer's JSON, when it had one. */
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** URLSearchParams from a plain object; arrays become repeated keys. */
function toParams(params = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const item of v) p.append(k, item);
    else if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  return p;
}

/** An in-app URL (path plus query), with the token kept. */
export function href(path, params = {}) {
  const p = toParams(params);
  if (token) p.set("token", token);
  const q = p.toString();
  return q ? `${path}?${q}` : path;
}

export async function getJson(path, params = {}, { signal } = {}) {
  const q = toParams(params).toString();
  let res;
  try {
    res = await fetch(q ? `${path}?${q}` : path, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(
      0,
      "the dev server is not reachable (is threadline dev still running?)",
    );
  }
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    if (res.status === 401)
      throw new ApiError(
        401,
        "this viewer needs a token: open it with the link threadline dev printed (…/?token=…)",
      );
    throw new ApiError(
      res.status,
      body?.error ?? `the server answered ${res.status}`,
      body,
    );
  }
  return body;
}

/** The live stream of trace summaries for a customer/service filter. */
export function liveSource(params) {
  const p = toParams(params);
  if (token) p.set("token", token);
  const q = p.toString();
  return new EventSource(q ? `/api/live?${q}` : "/api/live");
}

/** Sends a JSON body (POST) or nothing (DELETE); answers like getJson. */
export async function sendJson(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(
      0,
      "the dev server is not reachable (is threadline dev still running?)",
    );
  }
  let answer;
  try {
    answer = await res.json();
  } catch {
    answer = undefined;
  }
  if (!res.ok)
    throw new ApiError(
      res.status,
      answer?.error ?? `the server answered ${res.status}`,
    );
  return answer;
}
