// The default secret redaction, on its own: what it replaces, what it
// leaves, and that it never changes what the application logged.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_REDACT_PATHS,
  REDACTED,
  redactSecrets,
  withRedactingSerializers,
} from "../src/redact.ts";

describe("redactSecrets", () => {
  it("returns a line without secrets as it came, allocating nothing", () => {
    const fields = { order: 17, customerTier: "gold", nested: { sku: "lamp" } };
    assert.equal(redactSecrets(fields), fields);
  });

  it("replaces secrets at the top level, one level down and in headers", () => {
    const fields = {
      password: "hunter2",
      user: { name: "ada", apiKey: "k-1", token: "t-1" },
      headers: { authorization: "Bearer x", "set-cookie": "s=1", host: "h" },
      req: {
        headers: {
          cookie: "c=1",
          "proxy-authorization": "p",
          "X-Api-Key": "k",
        },
        url: "/",
      },
      list: [{ password: "not descended" }],
      count: 3,
    };
    const before = structuredClone(fields);
    const out = redactSecrets(fields);
    assert.deepEqual(out, {
      password: REDACTED,
      user: { name: "ada", apiKey: REDACTED, token: REDACTED },
      headers: { authorization: REDACTED, "set-cookie": REDACTED, host: "h" },
      req: {
        headers: {
          cookie: REDACTED,
          "proxy-authorization": REDACTED,
          "X-Api-Key": REDACTED,
        },
        url: "/",
      },
      list: [{ password: "not descended" }],
      count: 3,
    });
    assert.deepEqual(fields, before, "the logged object is not changed");
    assert.equal(out["list"], fields.list, "untouched values are shared");
  });

  it("redacts secret header names in any letter case", () => {
    const fields = {
      Authorization: "Bearer x",
      call: { COOKIE: "c=1", id: 7 },
      headers: {
        "Set-Cookie": "s=1",
        "PROXY-Authorization": "p",
        "Cache-Control": "no-cache",
      },
    };
    assert.deepEqual(redactSecrets(fields), {
      Authorization: REDACTED,
      call: { COOKIE: REDACTED, id: 7 },
      headers: {
        "Set-Cookie": REDACTED,
        "PROXY-Authorization": REDACTED,
        "Cache-Control": "no-cache",
      },
    });
    const clean = { Cookies: 2, headers: { "Cache-Control": "no-cache" } };
    assert.equal(redactSecrets(clean), clean);
  });

  it("keeps an instance's prototype and own state in its redacted copy", () => {
    class Request {
      readonly headers: Record<string, string>;
      constructor() {
        this.headers = { authorization: "Bearer x", host: "h" };
      }
      get host(): string | undefined {
        return this.headers["host"];
      }
    }
    const req = new Request();
    const out = redactSecrets({ req }) as { req: Request };
    assert.ok(out.req instanceof Request);
    assert.notEqual(out.req, req);
    assert.deepEqual(out.req.headers, { authorization: REDACTED, host: "h" });
    assert.equal(out.req.host, "h");
    assert.equal(req.headers["authorization"], "Bearer x");
  });

  it("redacts what a serializer makes, as pino's own redaction would", () => {
    const serializers = {
      req: (r: { raw: { h: Record<string, string> } }) => ({
        method: "GET",
        headers: r.raw.h,
      }),
    };
    const wrapped = withRedactingSerializers({ level: "info", serializers });
    assert.equal(wrapped.level, "info");
    const out = wrapped.serializers.req({
      raw: { h: { authorization: "Bearer x", accept: "*/*" } },
    });
    assert.deepEqual(out, {
      method: "GET",
      headers: { authorization: REDACTED, accept: "*/*" },
    });
  });

  it("redacts secret names in a top-level headers object, as *.token does", () => {
    const out = redactSecrets({
      headers: { token: "t", password: "p", host: "h", cookie: "c" },
    });
    assert.deepEqual(out["headers"], {
      token: REDACTED,
      password: REDACTED,
      host: "h",
      cookie: REDACTED,
    });
  });

  it("keeps an error's stack in its redacted copy", () => {
    const err = Object.assign(new Error("boom"), { token: "abc" });
    const out = redactSecrets({ err }) as { err: Error & { token: string } };
    assert.ok(out.err instanceof Error);
    assert.equal(out.err.token, REDACTED);
    assert.equal(out.err.message, "boom");
    assert.equal(out.err.stack, err.stack);
    assert.equal(err.token, "abc", "the logged error is not changed");
  });

  it("redacts base fields and what formatters make", () => {
    const options = withRedactingSerializers({
      base: { service: "s", apiKey: "k" },
      formatters: {
        log: (o: Record<string, unknown>) => ({ ...o, secret: "s-1" }),
        bindings: (b: Record<string, unknown>) => ({ ...b, token: "t-1" }),
      },
    });
    assert.deepEqual(options.base, { service: "s", apiKey: REDACTED });
    assert.deepEqual(options.formatters.log({ a: 1 }), {
      a: 1,
      secret: REDACTED,
    });
    assert.deepEqual(options.formatters.bindings({}), { token: REDACTED });
  });

  it("redacts objects it cannot change without throwing", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const fields = {
      // Immer or Redux state, a frozen configuration
      auth: Object.freeze({ user: "ann", token: "t-1" }),
      // defineProperty makes a read-only property unless told otherwise
      config: Object.defineProperty({ name: "db" }, "secret", {
        value: "s-1",
        enumerable: true,
      }),
      client: {
        id: 7,
        get apiKey(): string {
          return "k-1";
        },
      },
      broken: {
        id: 8,
        get token(): string {
          throw new Error("not now");
        },
      },
      request: { headers: Object.freeze({ authorization: "Bearer x", a: 1 }) },
      gone: proxy,
      ok: 1,
    };
    const out = redactSecrets(fields);
    assert.deepEqual(out["auth"], { user: "ann", token: REDACTED });
    assert.deepEqual(out["config"], { name: "db", secret: REDACTED });
    assert.deepEqual(out["client"], { id: 7, apiKey: REDACTED });
    assert.deepEqual(out["broken"], { id: 8, token: REDACTED });
    assert.deepEqual(out["request"], {
      headers: { authorization: REDACTED, a: 1 },
    });
    assert.equal(out["gone"], REDACTED, "what cannot be read is not written");
    assert.equal(out["ok"], 1);
    assert.equal(fields.auth.token, "t-1", "the logged object is not changed");
  });

  it("redacts what toJSON returns, read on the original", () => {
    class Session {
      #expires = 3600;
      readonly id = "s1";
      readonly token = "t0k";
      toJSON(): object {
        return { id: this.id, token: this.token, expires: this.#expires };
      }
    }
    const session = new Session();
    const out = redactSecrets({ session });
    assert.equal(
      JSON.stringify(out["session"]),
      '{"id":"s1","token":"[Redacted]","expires":3600}',
    );
    assert.equal(session.token, "t0k");
  });

  it("keeps a cycle a cycle, the secret redacted in it", () => {
    const account: Record<string, unknown> = { name: "a", password: "p-1" };
    account["self"] = account;
    const out = redactSecrets({ account }) as {
      account: Record<string, unknown>;
    };
    assert.equal(out.account["password"], REDACTED);
    assert.equal(out.account["self"], out.account);
    const top = redactSecrets(account) as { self: Record<string, unknown> };
    assert.equal(top.self["password"], REDACTED);
    assert.equal(top.self["self"], top.self);
  });

  it("never throws, whatever the fields hold", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    assert.deepEqual(redactSecrets(proxy as Record<string, unknown>), {});
    const fields = {
      get token(): string {
        throw new Error("not now");
      },
      a: 1,
    };
    assert.deepEqual(redactSecrets(fields), { token: REDACTED, a: 1 });
    const thrower = {
      user: {
        password: "p",
        toJSON(): never {
          throw new Error("no");
        },
      },
    };
    assert.deepEqual(redactSecrets(thrower), { user: REDACTED });
    const serialize = withRedactingSerializers({
      serializers: { x: (_v: unknown) => thrower.user },
    }).serializers.x;
    assert.equal(serialize(1), REDACTED);
  });

  it("leaves absent secrets absent", () => {
    const out = redactSecrets({ password: undefined, ok: 1 });
    assert.equal(out["password"], undefined);
  });

  it("documents exactly the paths it covers, in pino's syntax", () => {
    for (const p of [
      "password",
      "*.password",
      "headers.authorization",
      '*.headers["set-cookie"]',
      "cardNumber",
    ])
      assert.ok(DEFAULT_REDACT_PATHS.includes(p), p);
    assert.equal(DEFAULT_REDACT_PATHS.length, 36);
  });
});
