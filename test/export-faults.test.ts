// Export under faults: a Collector that is down, refuses, throttles, hangs,
// resets or answers slowly. The service must keep serving (no crash, no
// unhandled rejection), keep memory within its configured bounds, retry with
// backoff (honouring Retry-After), resume by itself, flush in the time its
// data takes, and account for every span and log record: exported + dropped
// (by reason) + pending = created.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  exitWithin,
  freePort,
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type ReceivedPoint,
  type Responder,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

interface SignalStats {
  created: number;
  exported: number;
  dropped: Record<string, number>;
  pending: number;
  pendingBytes: number;
}
interface Stats {
  traces: SignalStats;
  logs: SignalStats;
  rss: number;
  unhandled: number;
}

async function stats(svc: RunningService): Promise<Stats> {
  return (await fetch(`${svc.url}/__stats`)).json() as Promise<Stats>;
}

/**
 * The stats once the SDK has read the answer to its last export: a receiver
 * holds the spans a moment before the SDK sees its response.
 */
function settledStats(svc: RunningService): Promise<Stats> {
  return waitFor(
    async () => {
      const s = await stats(svc);
      return s.traces.pending === 0 && s.logs.pending === 0 && s;
    },
    { what: "the SDK to count its last export" },
  );
}

function accounted(s: SignalStats): boolean {
  return (
    s.exported +
      Object.values(s.dropped).reduce((a, b) => a + b, 0) +
      s.pending ===
    s.created
  );
}

async function drive(
  svc: RunningService,
  n: number,
  concurrency = 10,
): Promise<void> {
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const res = await fetch(`${svc.url}/work`);
        await res.text();
        if (res.status !== 200) failed++;
      }
    }),
  );
  assert.equal(failed, 0, "every request is served");
}

function service(
  endpoint: string,
  env: Record<string, string> = {},
): Promise<RunningService> {
  return startService({
    entry: "steady.mjs",
    cwd: fixtures,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_BLRP_SCHEDULE_DELAY: "50",
      ...env,
    },
  });
}

const traces = (r: OtlpReceiver) =>
  r.attempts.filter((a) => a.path === "/v1/traces");

/** A server of another protocol on loopback, each connection given to `serve`. */
async function standIn(
  serve: (socket: Socket) => void,
): Promise<{ url: string; connections: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    serve(socket);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe("export under faults", () => {
  it("keeps serving while the Collector is down, and delivers everything once it is back", async () => {
    const port = await freePort();
    const svc = await service(`http://127.0.0.1:${port}`);
    let receiver: OtlpReceiver | undefined;
    try {
      await drive(svc, 300);
      const during = await stats(svc);
      assert.equal(during.traces.created, 300);
      assert.equal(during.traces.exported, 0);
      assert.ok(accounted(during.traces) && accounted(during.logs));
      receiver = await startOtlpReceiver({ port });
      await receiver.waitForSpans(
        (s) => s.length >= 300,
        "all 300 spans after the Collector came back",
        30_000,
      );
      await receiver.waitForLogs(
        (l) => l.length >= 300,
        "all 300 log records",
        30_000,
      );
      const after = await settledStats(svc);
      assert.deepEqual(
        {
          exported: after.traces.exported,
          pending: after.traces.pending,
          dropped: Object.values(after.traces.dropped).reduce(
            (a, b) => a + b,
            0,
          ),
        },
        { exported: 300, pending: 0, dropped: 0 },
      );
      assert.equal(after.logs.exported, 300);
      assert.equal(after.unhandled, 0);
      assert.ok(
        svc.stderr.some((l) =>
          /could not export spans to .*ECONNREFUSED.*retrying/.test(l),
        ),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await receiver?.close();
    }
  });

  it("honours Retry-After", async () => {
    const receiver = await startOtlpReceiver();
    let refused = false;
    receiver.setResponder((req) => {
      if (req.url === "/v1/traces" && !refused) {
        refused = true;
        return { status: 503, headers: { "retry-after": "2" } };
      }
      return undefined;
    });
    const svc = await service(receiver.url);
    try {
      await drive(svc, 20);
      await receiver.waitForSpans(
        (s) => s.length >= 20,
        "the spans, after the wait",
      );
      const attempts = traces(receiver);
      const refusal = attempts.find((a) => a.answer === 503)!;
      // A request already in flight may land just after the refusal; nothing else until Retry-After passed.
      const early = attempts.filter(
        (a) => a.at > refusal.at + 200 && a.at < refusal.at + 1900,
      );
      assert.deepEqual(
        early,
        [],
        `attempts ${attempts.map((a) => `${a.at - refusal.at}:${a.answer}`).join(" ")}`,
      );
      assert.ok(
        attempts.some((a) => a.at >= refusal.at + 1900 && a.answer === 200),
      );
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("waits out a Retry-After only as long as the data may still wait", async () => {
    const receiver = await startOtlpReceiver();
    let refused = false;
    receiver.setResponder((req) => {
      if (req.url === "/v1/traces" && !refused) {
        refused = true;
        return { status: 429, headers: { "retry-after": "86400" } };
      }
      return undefined;
    });
    const svc = await service(receiver.url, {
      THREADLINE_EXPORT_MAX_RETRY_TIME: "2000",
    });
    try {
      await drive(svc, 20);
      // A day, as asked, would hold them for the 5 minutes Retry-After is
      // capped at; they may wait 2 s.
      await receiver.waitForSpans(
        (s) => s.length >= 20,
        "the spans, retried when their 2 s ran out",
        15_000,
      );
      assert.ok(
        svc.stderr.some((l) => /retrying in [12] s \(Retry-After\)/.test(l)),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  for (const [thread, on] of [
    ["main", ""],
    ["worker", " (export on a worker thread)"],
  ] as const)
    for (const [what, value] of [
      ["0", "0"],
      ["empty", ""],
      ["a past date", new Date(Date.now() - 3_600_000).toUTCString()],
    ] as const)
      it(`backs off all the same while every answer says Retry-After ${what}${on}`, async () => {
        // An overloaded Collector may answer every request with "retry
        // now"; a service that believed it each time would send each batch
        // again as fast as the answers came, for all its retry time.
        const receiver = await startOtlpReceiver();
        receiver.setResponder((req) =>
          req.url === "/v1/traces" || req.url === "/v1/logs"
            ? { status: 503, headers: { "retry-after": value } }
            : undefined,
        );
        const svc = await service(receiver.url, {
          THREADLINE_EXPORT_THREAD: thread,
        });
        try {
          await drive(svc, 20);
          await waitFor(() => traces(receiver).length > 0, {
            what: "a first export of spans",
          });
          const first = traces(receiver)[0]!.at;
          await new Promise((resolve) => setTimeout(resolve, 3000));
          // Within 3 s of the first refusal: the two requests sent before
          // it was known, one retry at once as asked, then backoff (bases
          // of 1, 2, 4 s, jittered down to half): about six at most.
          for (const path of ["/v1/traces", "/v1/logs"]) {
            const sent = receiver.attempts.filter(
              (a) => a.path === path && a.at <= first + 3000,
            );
            assert.ok(
              sent.length <= 8,
              `${sent.length} requests to ${path} in 3 s`,
            );
          }
          const s = await stats(svc);
          assert.equal(s.traces.exported, 0);
          assert.ok(accounted(s.traces) && accounted(s.logs));
          assert.equal(s.unhandled, 0);
        } finally {
          await svc.stop();
          await receiver.close();
        }
      });

  it("backs off with growing, jittered delays when throttled without Retry-After", async () => {
    const receiver = await startOtlpReceiver();
    let n = 0;
    receiver.setResponder((req) =>
      req.url === "/v1/traces" && n++ < 3 ? { status: 429 } : undefined,
    );
    const svc = await service(receiver.url);
    try {
      await drive(svc, 20);
      await receiver.waitForSpans(
        (s) => s.length >= 20,
        "the spans after three refusals",
        20_000,
      );
      // Requests sent together before the first refusal was known are one attempt.
      const at = traces(receiver)
        .map((a) => a.at)
        .filter((t, i, all) => i === 0 || t - all[i - 1]! > 50);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      assert.ok(gaps.length >= 2, `attempts at ${at.join(", ")}`);
      // Bases of 1, 2, 4 s, each jittered down to no less than half: never shorter than the one before.
      assert.ok(gaps[0]! >= 450, `gaps ${gaps.join(", ")}`);
      for (let i = 1; i < gaps.length; i++)
        assert.ok(gaps[i]! >= gaps[i - 1]! - 50, `gaps ${gaps.join(", ")}`);
      const s = await settledStats(svc);
      assert.equal(s.traces.exported, 20);
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("drops what the Collector refuses outright, counts it, says why, and reports it as metrics", async () => {
    const receiver = await startOtlpReceiver();
    receiver.setResponder(() => ({ status: 500 }));
    // The SDK's own metrics go to a healthy receiver.
    const metricsReceiver = await startOtlpReceiver();
    const svc = await service(receiver.url, {
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${metricsReceiver.url}/v1/metrics`,
      OTEL_METRIC_EXPORT_INTERVAL: "200",
    });
    try {
      await drive(svc, 50);
      const s = await waitFor(
        async () => {
          const x = await stats(svc);
          return (
            x.traces.dropped["rejected"] === 50 &&
            x.logs.dropped["rejected"] === 50 &&
            x
          );
        },
        { what: "all refused data counted" },
      );
      assert.ok(accounted(s.traces) && accounted(s.logs));
      assert.ok(
        svc.stderr.some((l) =>
          /dropped \d+ spans: .* refused them \(HTTP 500\); not retried/.test(
            l,
          ),
        ),
        svc.stderr.join("\n"),
      );
      // Collapsed: a few lines, not one per batch.
      assert.ok(svc.stderr.length < 10, svc.stderr.join("\n"));
      // The newest collection's value: two exports in flight can arrive out
      // of order, so the last one received is not always the newest.
      const value = (name: string, errorType?: string) =>
        metricsReceiver.metrics
          .filter((m) => m.name === name)
          .flatMap((m) => m.points)
          .filter((p) => p.attributes["error.type"] === errorType)
          .reduce<ReceivedPoint | undefined>(
            (newest, p) =>
              newest === undefined || p.timeUnixNano > newest.timeUnixNano
                ? p
                : newest,
            undefined,
          )?.value;
      // Spans and logs are refused by separate exports, so one collection
      // can hold every span drop but not yet the last log drop: wait for a
      // collection that has both.
      await waitFor(
        () =>
          value("otel.sdk.exporter.span.exported", "rejected") === 50 &&
          value("otel.sdk.exporter.log.exported", "rejected") === 50,
        { what: "the drops reported as metrics" },
      );
      assert.equal(value("otel.sdk.span.ended"), 50);
      assert.equal(value("otel.sdk.exporter.span.exported"), 0);
    } finally {
      await svc.stop();
      await receiver.close();
      await metricsReceiver.close();
    }
  });

  for (const [what, serve, env, said] of [
    [
      "a gRPC port, with OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
      // grpc-go's way: its SETTINGS frame on connect, and the connection
      // closed on reading something other than HTTP/2's preface.
      (socket: Socket) => {
        socket.write(Buffer.from("000000040000000000", "hex"));
        socket.once("data", () => socket.destroy());
      },
      { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
      "the server answered in HTTP/2 (a gRPC port? OTLP/HTTP listens on 4318)",
    ],
    [
      "a TLS port named by an http:// endpoint",
      // A TLS server's alert (protocol_version) on reading plain HTTP.
      (socket: Socket) =>
        socket.once("data", () =>
          socket.end(Buffer.from("15030100020246", "hex")),
        ),
      {},
      "the server answered in TLS (use an https:// endpoint)",
    ],
  ] as const)
    it(`drops at once, and says why, what it sends to ${what}`, async () => {
      const server = await standIn(serve);
      const svc = await service(server.url, {
        ...env,
        THREADLINE_EXPORT_MAX_RETRY_TIME: "4000",
      });
      try {
        await drive(svc, 20);
        // Refused for good at the first answer: not retried for 4 s and
        // then dropped for want of time.
        const s = await waitFor(
          async () => {
            const x = await stats(svc);
            return (
              x.traces.dropped["rejected"] === 20 &&
              x.logs.dropped["rejected"] === 20 &&
              x
            );
          },
          { what: "the spans and log records dropped as refused" },
        );
        assert.ok(accounted(s.traces) && accounted(s.logs));
        assert.equal(s.traces.dropped["retriesExhausted"] ?? 0, 0);
        const stderr = svc.stderr.join("\n");
        const warning = `spans: could not export them to ${server.url}/v1/traces: ${said}; not retried`;
        assert.ok(
          svc.stderr.some(
            (l) => /dropped \d+ spans/.test(l) && l.includes(warning),
          ),
          stderr,
        );
        assert.doesNotMatch(stderr, /retrying|ECONNRESET/);
        if (env.OTEL_EXPORTER_OTLP_PROTOCOL === "grpc")
          assert.match(
            stderr,
            /OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not http\/protobuf or http\/json; using http\/protobuf, so the endpoint must be the Collector's OTLP\/HTTP one \(port 4318 by default; 4317 is gRPC's\)/,
          );
      } finally {
        await svc.stop();
        await server.close();
      }
    });

  it("drops at once, and says why, what it sends to a plain-HTTP Collector named by an https:// endpoint", async () => {
    const receiver = await startOtlpReceiver();
    const svc = await service(receiver.url.replace("http:", "https:"), {
      THREADLINE_EXPORT_MAX_RETRY_TIME: "4000",
    });
    try {
      await drive(svc, 20);
      const s = await waitFor(
        async () => {
          const x = await stats(svc);
          return (
            x.traces.dropped["rejected"] === 20 &&
            x.logs.dropped["rejected"] === 20 &&
            x
          );
        },
        { what: "the spans and log records dropped as refused" },
      );
      assert.ok(accounted(s.traces) && accounted(s.logs));
      const stderr = svc.stderr.join("\n");
      assert.match(
        stderr,
        /dropped \d+ spans: could not export them to https:\/\/127\.0\.0\.1:\d+\/v1\/traces: the server does not speak TLS \(use an http:\/\/ endpoint\?\); not retried/,
      );
      assert.doesNotMatch(stderr, /retrying|EPROTO/);
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("says OpenSSL's reason when a TLS handshake fails, not its code alone", async () => {
    // A TLS server's handshake_failure alert, as one that shares no
    // cipher or protocol version with the exporter sends.
    const server = await standIn((socket) =>
      socket.once("data", () =>
        socket.end(Buffer.from("15030300020228", "hex")),
      ),
    );
    const svc = await service(server.url.replace("http:", "https:"));
    try {
      await drive(svc, 5);
      // Spans and log records fail apart, either first: the spans' warning
      // is waited for, not the first one.
      const spans = `could not export spans to ${server.url.replace("http:", "https:")}/v1/traces: `;
      await waitFor(() => svc.stderr.some((l) => l.includes(spans)), {
        what: "a warning of the failed span export",
      });
      assert.ok(
        svc.stderr.some((l) =>
          l.includes(
            `${spans}EPROTO: ssl/tls alert handshake failure; retrying`,
          ),
        ),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await server.close();
    }
  });

  it("says why the Collector refused data, and where a redirect pointed, never the request's secrets", async () => {
    // google.rpc.Status{code: 3, message}, as a Collector answers a body it
    // cannot parse.
    const message = "proto: cannot parse invalid wire-format data";
    const status = Buffer.concat([
      Buffer.from([0x08, 0x03, 0x12, message.length]),
      Buffer.from(message),
    ]);
    const receiver = await startOtlpReceiver();
    receiver.setResponder((req): ReturnType<Responder> =>
      req.url === "/v1/traces"
        ? {
            status: 400,
            headers: { "content-type": "application/x-protobuf" },
            body: status,
          }
        : req.url === "/v1/logs"
          ? {
              status: 308,
              headers: {
                location:
                  "https://otel:hunter22@collector.example/v1/logs?token=t0ken",
              },
            }
          : {
              status: 401,
              headers: { "content-type": "text/plain" },
              body: "no tenant matches api key sk-123456\r\nsecond line",
            },
    );
    const svc = await service(receiver.url, {
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=sk-123456",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
    });
    try {
      await drive(svc, 20);
      await waitFor(
        async () => {
          const x = await stats(svc);
          return (
            x.traces.dropped["rejected"] === 20 &&
            x.logs.dropped["rejected"] === 20 &&
            svc.stderr.some((l) => l.includes("metric points"))
          );
        },
        { what: "the spans, log records and metric points refused" },
      );
      const stderr = svc.stderr.join("\n");
      assert.match(
        stderr,
        /dropped \d+ spans: http:\/\/127\.0\.0\.1:\d+\/v1\/traces refused them \(HTTP 400: proto: cannot parse invalid wire-format data\); not retried/,
      );
      assert.match(
        stderr,
        /dropped \d+ log records: http:\/\/127\.0\.0\.1:\d+\/v1\/logs refused them \(HTTP 308: redirected to https:\/\/collector\.example\/v1\/logs, and redirects are not followed\); not retried/,
      );
      assert.match(
        stderr,
        /dropped \d+ metric points: .* refused them \(HTTP 401: no tenant matches api key \*\*\*\); not retried/,
      );
      assert.doesNotMatch(stderr, /hunter22|t0ken|sk-123456|second line/);
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("says a TLS Collector's answer to plain HTTP", async () => {
    // Go's net/http, reached without TLS on its TLS port, answers this
    // (HTTP/1.0, no length: the body ends when it closes).
    const server = await standIn((socket) =>
      socket.once("data", () =>
        socket.end(
          "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        ),
      ),
    );
    const svc = await service(server.url);
    try {
      await drive(svc, 5);
      await waitFor(() => svc.stderr.some((l) => /dropped \d+ spans/.test(l)), {
        what: "the spans refused",
      });
      assert.ok(
        svc.stderr.some((l) =>
          l.includes(
            `${server.url}/v1/traces refused them (HTTP 400: Client sent an HTTP request to an HTTPS server.); not retried`,
          ),
        ),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await server.close();
    }
  });

  it("counts an export answered 200 with an endless body as delivered, reading no more of it and closing its connection", async () => {
    const written: number[] = [];
    const server = await standIn((socket) =>
      socket.once("data", () => {
        socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        const chunk = Buffer.concat([
          Buffer.from("10000\r\n"),
          Buffer.alloc(0x10000, 0x61),
          Buffer.from("\r\n"),
        ]);
        const pump = () => {
          while (!socket.destroyed && socket.write(chunk));
          if (!socket.destroyed) socket.once("drain", pump);
        };
        socket.on("close", () => written.push(socket.bytesWritten));
        pump();
      }),
    );
    const svc = await service(server.url);
    try {
      await drive(svc, 20);
      const s = await waitFor(
        async () => {
          const x = await stats(svc);
          return x.traces.exported === 20 && x.logs.exported === 20 && x;
        },
        { what: "the spans and log records counted as delivered" },
      );
      assert.ok(accounted(s.traces) && accounted(s.logs));
      // The exporter closed every connection it opened, having read little.
      await waitFor(() => written.length === server.connections, {
        what: "every connection closed",
      });
      for (const bytes of written)
        assert.ok(bytes < 32 * 1024 * 1024, `${bytes} bytes written`);
      const said = svc.stderr.filter((l) =>
        l.includes(
          `${server.url}/v1/traces answered HTTP 200 with more than 65536 bytes, which no OTLP answer needs: the rest was not read, and the connection closed`,
        ),
      );
      assert.equal(said.length, 1, svc.stderr.join("\n"));
    } finally {
      await svc.stop();
      await server.close();
    }
  });

  it("stays within its memory bounds while the Collector hangs, dropping what does not fit", async () => {
    const receiver = await startOtlpReceiver();
    receiver.setResponder(() => "hang");
    const svc = await service(receiver.url, {
      OTEL_EXPORTER_OTLP_TIMEOUT: "400",
      THREADLINE_EXPORT_MAX_BYTES: "65536",
      OTEL_BSP_MAX_QUEUE_SIZE: "512",
    });
    try {
      const before = await stats(svc);
      await drive(svc, 3000, 20);
      const s = await stats(svc);
      assert.ok(s.traces.dropped["queueFull"]! > 0, JSON.stringify(s.traces));
      assert.ok(s.traces.pendingBytes <= 65536 && s.logs.pendingBytes <= 65536);
      assert.ok(accounted(s.traces) && accounted(s.logs));
      assert.ok(
        s.rss - before.rss < 64 * 1024 * 1024,
        `RSS grew by ${((s.rss - before.rss) / 2 ** 20).toFixed(1)} MB`,
      );
      assert.equal(s.unhandled, 0);
      assert.ok(
        svc.stderr.some((l) => /export buffer is full/.test(l)),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("keeps the export worker exporting, within bounds, while log lines come faster than it parses them", async () => {
    const receiver = await startOtlpReceiver();
    // Answered at once and not decoded: the test process must keep up.
    receiver.setResponder(() => ({ status: 200 }));
    const svc = await startService({
      entry: "log-flood.mjs",
      cwd: fixtures,
      ready: false,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRICS_EXPORTER: "none",
        THREADLINE_WATCH_URL: "none",
        THREADLINE_EXPORT_THREAD: "worker",
        THREADLINE_EXPORT_MAX_BYTES: String(2 ** 20),
        THREADLINE_SHUTDOWN_TIMEOUT: "500",
        FLOOD_MS: "3000",
      },
    });
    try {
      await exitWithin(svc, "the flood", 20_000);
      interface Sample {
        what: string;
        at: number;
        created: number;
        exported: number;
        pending: number;
        queueFull: number;
        rss: number;
      }
      const samples = svc.stdout
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Sample);
      const first = samples[0]!;
      const last = samples.at(-1)!;
      assert.equal(last.what, "end", svc.stderr.join("\n"));
      const said = JSON.stringify(samples.slice(-3));
      // Far more came than could be sent: the rest was dropped and
      // counted, not held. Held at most: a queue's worth (2048), as many
      // handed to the worker, and what 1 MB of encoded lines holds.
      assert.ok(last.created > 20_000, said);
      assert.ok(last.queueFull > 0, said);
      const held = Math.max(...samples.map((s) => s.pending));
      assert.ok(held < 8192, `${held} log records pending: ${said}`);
      const grew = Math.max(...samples.map((s) => s.rss)) - first.rss;
      assert.ok(
        grew < 150 * 2 ** 20,
        `RSS grew by ${(grew / 2 ** 20).toFixed(0)} MB`,
      );
      // Batches went out all through the flood, not only after it (the
      // first third leaves the worker time to start).
      const sent = receiver.attempts.filter((a) => a.path === "/v1/logs");
      const third = (last.at - first.at) / 3;
      for (const k of [1, 2]) {
        const from = first.at + k * third;
        assert.ok(
          sent.some((a) => a.at >= from && a.at < from + third),
          `no batch reached the Collector in third ${k + 1} of the flood (${sent.length} in all): ${said}`,
        );
      }
      assert.ok(last.exported > 0, said);
    } finally {
      await svc.stop("SIGKILL");
      await receiver.close();
    }
  });

  it("delivers every span and log line once and intact while refused batches wait beside new ones", async () => {
    // Bodies are made in reused memory: one waiting for its retry must keep
    // its bytes while later batches are encoded, sent and given back.
    const receiver = await startOtlpReceiver();
    let attempts = 0;
    receiver.setResponder((req) =>
      req.url !== "/v1/metrics" && attempts++ % 3 === 0
        ? { status: 503, headers: { "retry-after": "0" } }
        : undefined,
    );
    const svc = await service(receiver.url, {
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "10",
      OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: "10",
    });
    const n = 300;
    try {
      let next = 0;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (next < n) {
            const res = await fetch(`${svc.url}/work/${next++}`);
            assert.equal(await res.text(), "ok");
          }
        }),
      );
      const spans = await receiver.waitForSpans(
        (s) => s.length >= n,
        `${n} spans`,
        20_000,
      );
      const logs = await receiver.waitForLogs(
        (l) => l.length >= n,
        `${n} log records`,
        20_000,
      );
      const s = await settledStats(svc);
      assert.equal(s.traces.exported, n);
      assert.equal(s.logs.exported, n);
      assert.ok(
        receiver.attempts.some((a) => a.answer === 503),
        "some batches were refused and retried",
      );
      const paths = (
        list: Array<{ attributes: Record<string, unknown> }>,
        key: string,
      ) => new Set(list.map((x) => String(x.attributes[key])));
      const expected = new Set(
        Array.from({ length: n }, (_, i) => `/work/${i}`),
      );
      assert.equal(spans.length, n);
      assert.deepEqual(paths(spans, "url.path"), expected);
      assert.equal(new Set(spans.map((x) => x.spanId)).size, n);
      assert.equal(logs.length, n);
      assert.deepEqual(paths(logs, "path"), expected);
      const bySpan = new Map(spans.map((x) => [x.spanId, x]));
      for (const log of logs)
        assert.equal(
          bySpan.get(log.spanId)?.attributes["url.path"],
          log.attributes["path"],
          "each line belongs to its request's span",
        );
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  it("retries after connection resets and resumes by itself", async () => {
    const receiver = await startOtlpReceiver();
    let resets = 0;
    receiver.setResponder((req) =>
      req.url === "/v1/traces" && resets++ < 2 ? "reset" : undefined,
    );
    const svc = await service(receiver.url);
    try {
      await drive(svc, 40);
      await receiver.waitForSpans(
        (s) => s.length >= 40,
        "the spans after two resets",
        20_000,
      );
      const s = await settledStats(svc);
      assert.equal(s.traces.exported, 40);
      assert.ok(accounted(s.traces));
    } finally {
      await svc.stop();
      await receiver.close();
    }
  });

  for (const [thread, on] of [
    ["main", ""],
    ["worker", " (export on a worker thread)"],
  ] as const)
    it(`returns from forceFlush() once what it found is delivered, while metrics go out faster than the Collector answers${on}`, async () => {
      const receiver = await startOtlpReceiver();
      receiver.setResponder(() => ({ delayMs: 500 }));
      const svc = await startService({
        entry: "busy-collector.mjs",
        cwd: fixtures,
        ready: false,
        env: {
          OTEL_SERVICE_NAME: `flush-while-busy-${thread}`,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_METRIC_EXPORT_INTERVAL: "200",
          THREADLINE_EXPORT_THREAD: thread,
          THREADLINE_SHUTDOWN_TIMEOUT: "20000",
          SPANS: "20",
          THEN: "flush",
        },
      });
      try {
        const line = await waitFor(
          () => svc.stdout.find((l) => l.startsWith("{")),
          { what: "forceFlush() to return", timeoutMs: 30_000 },
        );
        // Every 200 ms another export starts, each answered in 500 ms:
        // there is always one in flight, and the flush must not wait for
        // those that began after it did.
        const { flushMs } = JSON.parse(line) as { flushMs: number };
        assert.ok(
          flushMs < 10_000,
          `forceFlush() took ${flushMs} ms of its 20 s`,
        );
        // The spans were delivered before it returned.
        assert.equal(
          receiver.spans.filter((s) => s.name.startsWith("job-")).length,
          20,
        );
      } finally {
        await svc.stop("SIGKILL");
        await receiver.close();
      }
    });
  it("ends on SIGTERM once what it held is sent, while metrics go out faster than the Collector answers", async () => {
    const receiver = await startOtlpReceiver();
    receiver.setResponder(() => ({ delayMs: 400 }));
    const svc = await startService({
      entry: "busy-collector.mjs",
      cwd: fixtures,
      ready: /ready/,
      env: {
        OTEL_SERVICE_NAME: "sigterm-while-busy",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL: "150",
        THREADLINE_SHUTDOWN_TIMEOUT: "20000",
        SPANS: "20",
        THEN: "signal",
      },
    });
    try {
      const started = Date.now();
      // The last metrics are collected once; the reader's interval must
      // not keep adding exports for the last flush to wait for.
      const { signal } = await svc.stop("SIGTERM", 30_000);
      const tookMs = Date.now() - started;
      assert.equal(signal, "SIGTERM");
      assert.ok(
        tookMs < 10_000,
        `the process took ${tookMs} ms of its 20 s to end`,
      );
      assert.equal(
        receiver.spans.filter((s) => s.name.startsWith("job-")).length,
        20,
      );
      assert.doesNotMatch(svc.stderr.join("\n"), /lost|dropped/);
    } finally {
      await svc.stop("SIGKILL");
      await receiver.close();
    }
  });
});
