// Hostile input on the wire: randomly generated traceparent, tracestate
// and baggage headers sent to a real instrumented service over raw TCP (so
// no client library tidies them up first). The service must answer every
// request, never crash, never adopt an invalid parent, and keep oversized
// values from bloating its spans.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parseTraceparent } from "@threadline/core";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** Sends one raw HTTP/1.1 request and returns the status code (0 if the connection broke). */
function rawRequest(
  port: number,
  path: string,
  headers: Array<[string, string]>,
): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (c: string) => {
      data += c;
      if (data.includes("\r\n\r\n")) socket.end();
    });
    socket.on("error", () => resolve(0));
    socket.on("close", () =>
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)),
    );
    const head = [
      `GET ${path} HTTP/1.1`,
      "Host: 127.0.0.1",
      "Connection: close",
      ...headers.map(([k, v]) => `${k}: ${v}`),
    ].join("\r\n");
    socket.write(Buffer.from(`${head}\r\n\r\n`, "latin1"));
  });
}

// Header values as an attacker could send them: printable ASCII and obs-text,
// trace-context look-alikes, and long values.
const headerText = fc.oneof(
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .map((c) => String.fromCharCode(c === 0x7f ? 0x7e : c)),
    maxLength: 120,
  }),
  fc
    .tuple(
      fc.string({
        unit: fc.constantFrom(..."0123456789abcdefABCDEF-zx"),
        maxLength: 60,
      }),
    )
    .map(([s]) => `00-${s}`),
  fc.string({
    unit: fc.constantFrom(..."abc=,;%20 customer.id=evil"),
    minLength: 1000,
    maxLength: 6000,
  }),
);

describe("hostile trace headers over HTTP", () => {
  let receiver: OtlpReceiver;
  let svc: RunningService;
  before(async () => {
    receiver = await startOtlpReceiver();
    svc = await startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "hostile",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
      },
    });
  });
  after(async () => {
    await svc.stop();
    await receiver.close();
  });

  it("answers every request and adopts only valid parents", async () => {
    const sent: string[] = [];
    await fc.assert(
      fc.asyncProperty(
        headerText,
        headerText,
        headerText,
        async (traceparent, tracestate, baggage) => {
          const status = await rawRequest(svc.port, `/fuzz/${sent.length}`, [
            ["traceparent", traceparent],
            ["tracestate", tracestate],
            ["baggage", baggage],
          ]);
          sent.push(traceparent);
          // Node's own parser may refuse a malformed request (400/431); nothing else is acceptable.
          assert.ok(
            status === 200 || status === 400 || status === 431,
            `status ${status}`,
          );
        },
      ),
      { numRuns: 150 },
    );
    // Still alive and serving.
    assert.equal((await fetch(`${svc.url}/hello`)).status, 200);
    assert.equal(svc.child.exitCode, null);
    const spans = await receiver.waitForSpans(
      (s) =>
        s.filter((x) => String(x.attributes["url.path"]).startsWith("/fuzz/"))
          .length >= 100,
      "the fuzzed requests' spans",
    );
    for (const s of spans.filter((x) =>
      String(x.attributes["url.path"]).startsWith("/fuzz/"),
    )) {
      const i = Number(String(s.attributes["url.path"]).slice(6));
      const parent = parseTraceparent(sent[i]);
      if (parent === undefined)
        assert.equal(s.parentSpanId, "", `request ${i} must start a new trace`);
      else assert.equal(s.parentSpanId, parent.spanId);
      const customer = s.attributes["customer.id"];
      if (customer !== undefined)
        assert.match(String(customer), /^[!#-+\--:<-[\]-~]{1,128}$/);
    }
    assert.ok(
      !svc.stderr.some((l) => /Error|Unhandled/.test(l)),
      svc.stderr.join("\n"),
    );
  });

  it("keeps oversized values from bloating spans", async () => {
    // Node accepts 16 KB of request head; each oversized value goes in its own request.
    assert.equal(
      await rawRequest(svc.port, "/big-agent", [
        ["user-agent", `agent/${"x".repeat(12_000)}`],
      ]),
      200,
    );
    const query = Array.from(
      { length: 400 },
      (_, i) => `k${i}=${"v".repeat(25)}`,
    ).join("&");
    assert.equal(await rawRequest(svc.port, `/big-query?${query}`, []), 200);
    const agent = await waitFor(
      () =>
        receiver.spans.find((s) => s.attributes["url.path"] === "/big-agent"),
      { what: "the first span" },
    );
    const queried = await waitFor(
      () =>
        receiver.spans.find((s) => s.attributes["url.path"] === "/big-query"),
      { what: "the second span" },
    );
    assert.equal(String(agent.attributes["user_agent.original"]).length, 8192);
    assert.equal(String(queried.attributes["url.query"]).length, 8192);
  });
});
