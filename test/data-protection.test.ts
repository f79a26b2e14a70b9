// What must never be recorded by default: credentials in headers (request
// and response), secret-looking query values, and common secrets in log
// objects; checked on the wire (OTLP) and on stdout.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const SECRETS = [
  "Bearer s3cret-bearer",
  "sid=cookie-789",
  "Basic cHJveHk=",
  "hunter2-pw",
  "tok-123",
  "sess-456",
  "qs-secret-42",
  "key-555",
  "base-tok-1",
  "bind-key-2",
  "hdr-tok-3",
  "fmt-sec-4",
  "err-tok-5",
];

it("keeps credentials out of spans and log lines", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "careless.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "careless",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_BLRP_SCHEDULE_DELAY: "50",
    },
  });
  try {
    const res = await fetch(`${svc.url}/account?api_key=qs-secret-42&page=2`, {
      headers: {
        authorization: "Bearer s3cret-bearer",
        cookie: "sid=cookie-789",
        "proxy-authorization": "Basic cHJveHk=",
      },
    });
    assert.equal(res.status, 200);
    assert.match(
      res.headers.get("set-cookie") ?? "",
      /sess-456/,
      "the application's own cookie still works",
    );
    const spans = await receiver.waitForSpans(
      (s) => s.some((x) => x.kind === 2),
      "the server span",
    );
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 4,
      "the log records",
    );
    const line = await waitFor(
      () => svc.stdout.find((l) => l.includes("request received")),
      { what: "the log line" },
    );
    const served = await waitFor(
      () => svc.stdout.find((l) => l.includes("request served")),
      { what: "the serialized request's line" },
    );
    const based = await waitFor(
      () => svc.stdout.find((l) => l.includes("based line")),
      { what: "the line with base fields" },
    );
    const failed = await waitFor(
      () => svc.stdout.find((l) => l.includes('"boom"')),
      { what: "the error's line" },
    );
    const everything = JSON.stringify(
      { spans, logs, line, served, based, failed },
      (_k, v) => (typeof v === "bigint" ? String(v) : v),
    );
    const error = JSON.parse(failed) as {
      err: { stack: string; token: string };
    };
    assert.match(error.err.stack, /Error: boom\n\s+at /, "the stack stays");
    assert.equal(error.err.token, "[Redacted]");
    const record = logs.find(
      (l) => l.body === "boom" || l.attributes["err.message"] === "boom",
    );
    assert.match(
      String(record?.attributes["exception.stacktrace"]),
      /Error: boom/,
      "the exported record keeps the stack",
    );
    for (const secret of SECRETS)
      assert.ok(!everything.includes(secret), `${secret} leaked`);
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(server.attributes["url.query"], "api_key=REDACTED&page=2");
    const parsed = JSON.parse(line) as {
      headers: Record<string, string>;
      password: string;
    };
    assert.equal(parsed.headers["authorization"], "[Redacted]");
    assert.equal(
      parsed.headers["host"],
      `127.0.0.1:${svc.port}`,
      "non-secret fields are kept",
    );
    assert.equal(parsed.password, "[Redacted]");
    const access = JSON.parse(served) as {
      req: { headers: Record<string, string> };
      client: Record<string, string>;
    };
    assert.equal(access.req.headers["authorization"], "[Redacted]");
    assert.equal(access.req.headers["cookie"], "[Redacted]");
    assert.deepEqual(access.client, { name: "mobile", apiKey: "[Redacted]" });
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("redacts secrets in objects it cannot change, and the application goes on", async () => {
  const receiver = await startOtlpReceiver();
  const svc = await startService({
    entry: "unchangeable-secrets.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "unchangeable",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      OTEL_METRICS_EXPORTER: "none",
    },
  });
  try {
    const res = await fetch(`${svc.url}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 3,
      "the log records",
    );
    const [login, session, child] = [
      "login state",
      "session",
      "child line",
    ].map((body) => logs.find((l) => l.body === body)?.attributes);
    assert.deepEqual(login?.["auth"], { user: "ann", token: "[Redacted]" });
    assert.deepEqual(login?.["config"], { name: "db", secret: "[Redacted]" });
    assert.deepEqual(login?.["client"], { id: 7, apiKey: "[Redacted]" });
    assert.deepEqual(login?.["request"], {
      headers: { authorization: "[Redacted]" },
    });
    assert.deepEqual(session?.["session"], {
      id: "s1",
      token: "[Redacted]",
      expires: 3600,
    });
    assert.deepEqual(session?.["loop"], {
      name: "loop",
      password: "[Redacted]",
      self: "[Circular]",
    });
    assert.deepEqual(child?.["cfg"], { apiKey: "[Redacted]" });
    const written = JSON.stringify({ stdout: svc.stdout, logs }, (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    for (const secret of [
      "sess-tok-1",
      "loop-pw-2",
      "frozen-tok-3",
      "defined-sec-4",
      "getter-key-5",
      "frozen-6",
      "child-key-7",
    ])
      assert.ok(!written.includes(secret), `${secret} leaked`);
  } finally {
    await svc.stop();
    await receiver.close();
  }
});

it("redacts the operator's own paths in a logger writing to a file named by its path", async () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-redact-"));
  const file = join(dir, "app.log");
  try {
    const svc = await startService({
      entry: "redact-paths.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        LOG_FILE: file,
        THREADLINE_LOG_REDACT: "order.card,password",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    await svc.exited;
    const line = JSON.parse(readFileSync(file, "utf8")) as {
      order: { card: string };
      password: string;
    };
    assert.equal(line.order.card, "[Redacted]");
    assert.equal(line.password, "[Redacted]");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("redacts in a logger whose redact option is undefined or null", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const svc = await startService({
      entry: "redact-unset.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "redact-unset",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    await svc.exited;
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 2,
      "the log records",
    );
    const login = logs.find((l) => l.body === "login");
    assert.equal(login?.attributes["password"], "[Redacted]");
    assert.deepEqual(login?.attributes["headers"], {
      authorization: "[Redacted]",
    });
    const written = JSON.stringify({ stdout: svc.stdout, logs }, (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    for (const secret of ["unset-pw-1", "Bearer unset-2", "null-tok-3"])
      assert.ok(!written.includes(secret), `${secret} leaked`);
  } finally {
    await receiver.close();
  }
});

it("exports a line as the logger's streamWrite hook left it, and nothing of a line it emptied", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const svc = await startService({
      entry: "stream-write-hook.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_SERVICE_NAME: "stream-write-hook",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    await svc.exited;
    const logs = await receiver.waitForLogs(
      (l) => l.length >= 2,
      "the log records",
    );
    const called = logs.find((l) => l.body === "called XXX");
    assert.equal(
      called?.attributes["upstream"],
      "https://api.example.com/?key=XXX",
    );
    const retrying = logs.find((l) => l.body === "retrying XXX");
    assert.equal(retrying?.severityText, "warn");
    assert.equal(retrying?.attributes["job"], 7);
    assert.match(retrying?.traceId ?? "", /^[0-9a-f]{32}$/);
    assert.equal(svc.stdout.filter((l) => l.trim() !== "").length, 2);
    // The lines the hook dropped are not exported either (the process has
    // exited: every record it sent has arrived).
    assert.deepEqual(
      logs.map((l) => l.body),
      ["called XXX", "retrying XXX"],
    );
    const written = JSON.stringify({ stdout: svc.stdout, logs }, (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    assert.ok(!written.includes("sensitive-api-key"), "the key leaked");
  } finally {
    await receiver.close();
  }
});
