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
      req: { headers: { cookie: "c=1", "proxy-authorization": "p" }, url: "/" },
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
        headers: { cookie: REDACTED, "proxy-authorization": REDACTED },
        url: "/",
      },
      list: [{ password: "not descended" }],
      count: 3,
    });
    assert.deepEqual(fields, before, "the logged object is not changed");
    assert.equal(out["list"], fields.list, "untouched values are shared");
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
    assert.equal(DEFAULT_REDACT_PATHS.length, 34);
  });
});
