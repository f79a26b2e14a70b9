// A request listener that throws, in a service whose own uncaughtException
// handler keeps it alive: the exception is the request's error, whatever
// ends its span later (the client giving up, a 500 answered from the
// handler). In a service it crashes, the crash is reported where the
// application threw it, and the request is still sent as its error.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

let receiver: OtlpReceiver;
let app: RunningService;
before(async () => {
  receiver = await startOtlpReceiver();
  app = await startService({
    entry: "throwing-listener.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "throwing-listener",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    },
  });
});
after(async () => {
  await app.stop();
  await receiver.close();
});

const exceptions = (span: ReceivedSpan) =>
  span.events
    .filter((e) => e.name === "exception")
    .map((e) => e.attributes["exception.message"]);

it("keeps a thrown exception as the status of a request whose client then gave up", async () => {
  // Unanswered: the client closes the connection once the service caught it.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(app.port, "127.0.0.1", () =>
      socket.write("GET /unanswered HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    socket.on("error", reject);
    socket.on("close", () => resolve());
    void waitFor(
      () => app.stdout.includes("caught: the handler of /unanswered failed"),
      { what: "the service to catch the exception" },
    ).then(() => socket.destroy(), reject);
  });
  const span = await receiver.waitForServerSpan("/unanswered");
  assert.equal(span.status.code, 2);
  assert.equal(span.status.message, "the handler of /unanswered failed");
  assert.deepEqual(exceptions(span), ["the handler of /unanswered failed"]);
  // The request is still counted as the aborted one it was.
  assert.equal(span.attributes["error.type"], "aborted");
});

it("keeps a thrown exception as the status of a request then answered 500", async () => {
  const res = await fetch(`${app.url}/answered`);
  assert.equal(res.status, 500);
  await res.arrayBuffer();
  const span = await receiver.waitForServerSpan("/answered");
  assert.equal(span.status.code, 2);
  assert.equal(span.status.message, "the handler of /answered failed");
  assert.deepEqual(exceptions(span), ["the handler of /answered failed"]);
  assert.equal(span.attributes["http.response.status_code"], 500);
  assert.equal(span.attributes["error.type"], "500");
});

it("shows a crash where the application threw, and still sends its request as the error it was", async () => {
  const crashing = await startService({
    entry: "throwing-listener.mjs",
    cwd: fixtures,
    env: {
      OTEL_SERVICE_NAME: "throwing-listener-crash",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      // Nothing leaves before the crash unless the crash sends it.
      OTEL_BSP_SCHEDULE_DELAY: "60000",
      CRASH: "1",
    },
  });
  const answer = await fetch(`${crashing.url}/crash`).then(
    (r) => r.status,
    () => "cut off",
  );
  const exit = await crashing.exited;
  const stderr = crashing.stderr.join("\n");
  assert.equal(answer, "cut off");
  assert.deepEqual(exit, { code: 1, signal: null }, stderr);
  // Node's banner quotes the line of the last throw: the application's own.
  const banner = stderr.slice(0, stderr.indexOf("Error: the handler"));
  assert.match(
    banner,
    /throwing-listener\.mjs:\d+\n\s*throw new Error\(`the handler of/,
  );
  assert.doesNotMatch(banner, /http-instrumentation/);
  const span = await waitFor(
    () =>
      receiver.spans.find(
        (s) =>
          s.resource["service.name"] === "throwing-listener-crash" &&
          s.kind === 2,
      ),
    { what: "the crashed request's span" },
  );
  assert.equal(span.attributes["url.path"], "/crash");
  assert.equal(span.status.code, 2);
  assert.match(span.status.message, /the handler of \/crash failed/);
  assert.deepEqual(exceptions(span), ["the handler of /crash failed"]);
  assert.equal(span.attributes["threadline.unfinished"], "crash");
  assert.equal(span.attributes["error.type"], "aborted");
});
