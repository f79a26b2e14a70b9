// Requests a service does not trace (its health checks, under
// THREADLINE_IGNORE_PATHS) belong to no request: what their listeners log
// carries no trace and no customer, even where pipelining lets another
// request's answer set their events off.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
  type ReceivedLog,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

let receiver: OtlpReceiver;
before(async () => {
  receiver = await startOtlpReceiver();
});
after(() => receiver.close());

it("runs an ignored request's listeners and events in no request's context, on a pipelined connection too", async () => {
  const app = await startService({
    entry: "untraced-health.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "untraced-health",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      THREADLINE_IGNORE_PATHS: "/health",
    },
  });
  try {
    // Three requests in one packet: /health's answer waits for /slow's,
    // and goes, and its body is read, as /slow's end() lets it.
    const answers = await new Promise<string>((resolve, reject) => {
      let text = "";
      const socket = connect(app.port, "127.0.0.1", () =>
        socket.write(
          "GET /slow HTTP/1.1\r\nHost: x\r\nx-customer-id: c-1\r\n\r\n" +
            "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /two HTTP/1.1\r\nHost: x\r\nx-customer-id: c-2\r\nConnection: close\r\n\r\n",
        ),
      );
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => (text += chunk));
      socket.on("error", reject);
      socket.on("close", () => resolve(text));
    });
    assert.equal(answers.match(/HTTP\/1\.1 200 OK/g)?.length, 3, answers);
  } finally {
    // Stopped, it sends what it holds.
    await app.stop();
  }
  const logs = await receiver.waitForLogs(
    (all) => all.filter((l) => l.body === "response sent").length === 3,
    "the three requests' lines",
  );
  const lines = (path: string): ReceivedLog[] =>
    logs.filter((l) => l.attributes["path"] === path);
  const server = (path: string) =>
    receiver.spans.find(
      (s) => s.kind === 2 && s.attributes["url.path"] === path,
    );
  assert.equal(server("/health"), undefined, "/health is not traced");
  for (const l of lines("/health")) {
    assert.equal(l.traceId, "", `${String(l.body)}: no trace`);
    assert.equal(l.attributes["customer.id"], undefined, String(l.body));
  }
  for (const [path, customer] of [
    ["/slow", "c-1"],
    ["/two", "c-2"],
  ] as const) {
    const span = server(path);
    assert.ok(span, `the span of ${path}`);
    for (const l of lines(path)) {
      assert.equal(l.traceId, span.traceId, `${path}: ${String(l.body)}`);
      assert.equal(l.attributes["customer.id"], customer, String(l.body));
    }
  }
  assert.deepEqual(
    ["/slow", "/health", "/two"].map((p) =>
      lines(p)
        .map((l) => l.body)
        .sort(),
    ),
    Array(3).fill(["request read", "request received", "response sent"]),
  );
});
