// Where a service reads its watch list from, and what happens when that
// source misbehaves: a malformed document, an error status, an unreachable
// server, or an entry that expires while nothing can be read. The service
// keeps running on its last good list, says so once, and follows the
// source again when it recovers. A file works as a source too.
//
// The services sample nothing (always_off), so a span arriving for a
// customer proves that customer is watched in that service.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  waitFor,
  type OtlpReceiver,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const POLL_MS = 100;

const doc = (...entries: Array<[string, number]>) =>
  JSON.stringify({
    watch: entries.map(([customer, ms]) => ({
      customer,
      until: new Date(Date.now() + ms).toISOString(),
    })),
  });

/** A configuration endpoint whose answer the test sets. */
interface Source {
  url: string;
  answer: { status: number; body: string };
  reads: number;
  /** The Authorization header of each read. */
  authorizations: Set<string | undefined>;
  close(): Promise<void>;
}

async function startSource(port = 0): Promise<Source> {
  const source = {
    answer: { status: 200, body: doc() },
    reads: 0,
    authorizations: new Set(),
  } as Source;
  const server: Server = createServer((req, res) => {
    source.reads++;
    source.authorizations.add(req.headers.authorization);
    res.writeHead(source.answer.status, { "content-type": "application/json" });
    res.end(source.answer.body);
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const { port: bound } = server.address() as { port: number };
  source.url = `http://127.0.0.1:${bound}/watch.json`;
  source.close = () =>
    new Promise<void>((r) => {
      if (!server.listening) return r();
      server.closeAllConnections();
      server.close(() => r());
    });
  return source;
}

describe("the watch-list source", () => {
  let receiver: OtlpReceiver;
  const dir = mkdtempSync(join(tmpdir(), "threadline-watch-"));

  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const service = (watchUrl: string) =>
    startService({
      entry: "hello.cjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "watch-source",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_TRACES_SAMPLER: "always_off",
        OTEL_BSP_SCHEDULE_DELAY: "50",
        THREADLINE_WATCH_URL: watchUrl,
        THREADLINE_WATCH_INTERVAL: String(POLL_MS),
      },
    });

  /** Sends one request as `customer`; resolves whether it was traced. */
  async function traced(
    svc: RunningService,
    customer: string,
  ): Promise<boolean> {
    const path = `/${customer}/${Math.random().toString(36).slice(2)}`;
    const res = await fetch(`${svc.url}${path}`, {
      headers: { "x-customer-id": customer },
    });
    assert.equal(await res.text(), "hi");
    await new Promise((r) => setTimeout(r, 300));
    return receiver.spans.some((s) => s.attributes["url.path"] === path);
  }

  const warnings = (svc: RunningService, about: RegExp) =>
    svc.stderr.filter((l) => about.test(l));
  const warned = (svc: RunningService, about: RegExp) =>
    warnings(svc, about).length > 0;

  it("keeps the last good list through bad documents, errors and outages, and follows it again after", async () => {
    const source = await startSource();
    source.answer.body = doc(["c-42", 60_000]);
    const svc = await service(source.url);
    try {
      await waitFor(async () => await traced(svc, "c-42"), {
        what: "c-42 watched",
      });
      assert.equal(await traced(svc, "c-7"), false);

      // A document with a typo: refused whole, the last good list stays.
      source.answer.body = doc(["c-42", 60_000]).replace(
        '"customer"',
        '"customr"',
      );
      await waitFor(() => warned(svc, /watch list .* is not valid/), {
        what: "the warning about the bad document",
      });
      assert.equal(await traced(svc, "c-42"), true);
      source.answer.body = "{ not json";
      await waitFor(() => warned(svc, /not valid: not JSON/), {
        what: "the warning about the unreadable document",
      });
      const readsBefore = source.reads;
      await waitFor(() => source.reads >= readsBefore + 5, {
        what: "more reads",
      });
      assert.equal(
        warnings(svc, /not valid: not JSON/).length,
        1,
        "one warning, however often it is read",
      );

      // An error status, then no server at all: still the last good list, one warning.
      source.answer = { status: 500, body: "oops" };
      await waitFor(() => warned(svc, /could not read the watch list/), {
        what: "the warning about the failing source",
      });
      assert.match(
        warnings(svc, /could not read the watch list/)[0]!,
        /HTTP 500; keeping the last good list \(1 customer watched\)/,
      );
      const { port } = new URL(source.url);
      await source.close();
      assert.equal(await traced(svc, "c-42"), true);
      assert.equal(warnings(svc, /could not read the watch list/).length, 1);

      // Back, with another list: followed within a few reads.
      const back = await startSource(Number(port));
      back.answer.body = doc(["c-7", 60_000]);
      try {
        await waitFor(async () => await traced(svc, "c-7"), {
          what: "c-7 watched after the source came back",
        });
        assert.equal(await traced(svc, "c-42"), false);
      } finally {
        await back.close();
      }
      // The service served every request and never crashed.
      assert.equal(svc.child.exitCode, null);
      assert.ok(
        !svc.stderr.some((l) => /^\s+at |unhandled|TypeError/.test(l)),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await source.close();
    }
  });

  it("sends the URL's user name and password as Basic authorization, and never prints them", async () => {
    const source = await startSource();
    source.answer = { status: 401, body: "who?" };
    const svc = await service(
      source.url.replace("://", "://reader:p%40ss%3As3cret@"),
    );
    try {
      await waitFor(() => warned(svc, /could not read the watch list/), {
        what: "the warning about the refused read",
      });
      assert.deepEqual(
        [...source.authorizations],
        [`Basic ${Buffer.from("reader:p@ss:s3cret").toString("base64")}`],
      );
      assert.match(
        warnings(svc, /could not read the watch list/)[0]!,
        new RegExp(`at ${source.url.replace(/[.?]/g, "\\$&")}: HTTP 401`),
      );
      assert.ok(
        !/s3cret|p%40ss|p@ss|reader:/.test(svc.stderr.join("\n")),
        svc.stderr.join("\n"),
      );
    } finally {
      await svc.stop();
      await source.close();
    }
  });

  it("lets an entry expire on time while the source cannot be read", async () => {
    const source = await startSource();
    source.answer.body = doc(["c-9", 2500]);
    const svc = await service(source.url);
    try {
      await waitFor(async () => await traced(svc, "c-9"), {
        what: "c-9 watched",
      });
      await source.close();
      await waitFor(async () => !(await traced(svc, "c-9")), {
        what: "c-9's watch to expire",
        timeoutMs: 10_000,
      });
    } finally {
      await svc.stop();
      await source.close();
    }
  });

  it("applies a list refused for too many customers once enough of its entries expire", async () => {
    // 101 customers, one of whom is watched for 2.5 s only: refused at
    // first, and a list of 100, valid, when that one expires. The source
    // serves the same document all along.
    const source = await startSource();
    source.answer.body = doc(
      ["c-0", 2500],
      ...Array.from(
        { length: 100 },
        (_, i) => [`c-${i + 1}`, 60_000] as [string, number],
      ),
    );
    const svc = await service(source.url);
    try {
      await waitFor(() => warned(svc, /not valid: 101 customers watched/), {
        what: "the warning about too many customers",
      });
      assert.equal(await traced(svc, "c-50"), false);
      await waitFor(async () => await traced(svc, "c-50"), {
        what: "c-50 watched once c-0's entry expired",
        timeoutMs: 10_000,
      });
      assert.equal(warnings(svc, /not valid/).length, 1);
    } finally {
      await svc.stop();
      await source.close();
    }
  });

  it("reads the list next to a loopback endpoint that takes the logs alone", async () => {
    // As `threadline dev` does: the watch list served beside OTLP.
    receiver.setResponder((req) =>
      req.method === "GET" && req.url?.split("?")[0] === "/threadline/v1/watch"
        ? {
            status: 200,
            headers: { "content-type": "application/json" },
            body: doc(["c-42", 60_000]),
          }
        : undefined,
    );
    const svc = await startService({
      entry: "watch-hop.mjs",
      cwd: fixtures,
      execArgv: ["--import", "@threadline/node/register"],
      env: {
        OTEL_SERVICE_NAME: "logs-only",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_METRICS_EXPORTER: "none",
        OTEL_BLRP_SCHEDULE_DELAY: "50",
        THREADLINE_WATCH_INTERVAL: String(POLL_MS),
      },
    });
    const detail = (customer: string) =>
      receiver.logs.find(
        (l) =>
          l.resource["service.name"] === "logs-only" &&
          l.body === "hop detail" &&
          l.attributes["customer.id"] === customer,
      );
    try {
      await waitFor(
        async () => {
          for (const customer of ["c-42", "c-7"])
            await (
              await fetch(`${svc.url}/hop`, {
                headers: { "x-customer-id": customer },
              })
            ).text();
          return detail("c-42");
        },
        { what: "c-42's debug line", intervalMs: 200 },
      );
      assert.equal(detail("c-7"), undefined, "c-7 is not watched");
      assert.ok(
        receiver.logs.some(
          (l) => l.body === "hop" && l.attributes["customer.id"] === "c-7",
        ),
      );
    } finally {
      receiver.setResponder(undefined);
      await svc.stop();
    }
  });

  describe("next to a local receiver that wants a token", () => {
    // As `threadline dev --token`: its OTLP endpoints and its watch list
    // both refuse a request without the token, in a header or the query.
    const token = "s3cret";
    const watchAnswer = (url: string | undefined) =>
      new URL(url ?? "/", "http://x").searchParams.get("token") === token
        ? {
            status: 200,
            headers: { "content-type": "application/json" },
            body: doc(["c-42", 60_000]),
          }
        : { status: 401, body: "a token is required" };
    const logsOnly = (endpoint: string) =>
      startService({
        entry: "watch-hop.mjs",
        cwd: fixtures,
        execArgv: ["--import", "@threadline/node/register"],
        env: {
          OTEL_SERVICE_NAME: "token-in-query",
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_TRACES_EXPORTER: "none",
          OTEL_METRICS_EXPORTER: "none",
          OTEL_BLRP_SCHEDULE_DELAY: "50",
          THREADLINE_WATCH_INTERVAL: String(POLL_MS),
        },
      });
    before(() =>
      receiver.setResponder((req) =>
        req.method === "GET" &&
        req.url?.split("?")[0] === "/threadline/v1/watch"
          ? watchAnswer(req.url)
          : undefined,
      ),
    );
    after(() => receiver.setResponder(undefined));

    it("reads the list with the token given in the endpoint's query", async () => {
      const svc = await logsOnly(`${receiver.url}?token=${token}`);
      try {
        await waitFor(
          async () => {
            await (
              await fetch(`${svc.url}/hop`, {
                headers: { "x-customer-id": "c-42" },
              })
            ).text();
            return receiver.logs.some(
              (l) =>
                l.resource["service.name"] === "token-in-query" &&
                l.body === "hop detail" &&
                l.attributes["customer.id"] === "c-42",
            );
          },
          { what: "c-42's debug line", intervalMs: 200 },
        );
      } finally {
        await svc.stop();
      }
    });

    it("says once that the list was refused, where it says nothing of a list that is not there", async () => {
      const svc = await logsOnly(`${receiver.url}?token=wrong`);
      try {
        await waitFor(
          () => warned(svc, /watch list at .* was refused \(HTTP 401\)/),
          { what: "the warning" },
        );
        await new Promise((r) => setTimeout(r, POLL_MS * 5));
        assert.equal(
          warnings(svc, /watch list/).length,
          1,
          svc.stderr.join("\n"),
        );
        assert.ok(
          !svc.stderr.join("\n").includes("wrong"),
          "the token is not printed",
        );
      } finally {
        await svc.stop();
      }
    });
  });

  it("reads a file, following each change", async () => {
    const file = join(dir, "watch.json");
    writeFileSync(file, doc(["c-1", 60_000]));
    const svc = await service(file);
    try {
      await waitFor(async () => await traced(svc, "c-1"), {
        what: "c-1 watched",
      });
      writeFileSync(file, doc(["c-2", 60_000]));
      await waitFor(async () => await traced(svc, "c-2"), {
        what: "c-2 watched",
      });
      assert.equal(await traced(svc, "c-1"), false);
    } finally {
      await svc.stop();
    }
  });

  it("reads no FIFO nor a file larger than a list, says so, and follows the file once it is a list", async () => {
    const file = join(dir, "fifo.json");
    execFileSync("mkfifo", [file]);
    const svc = await service(file);
    try {
      await waitFor(() => warned(svc, /is not a regular file/), {
        what: "the warning of the FIFO",
      });
      rmSync(file);
      writeFileSync(file, doc(["c-1", 60_000]));
      await waitFor(async () => await traced(svc, "c-1"), {
        what: "c-1 watched",
      });
      writeFileSync(file, " ".repeat(300 * 1024));
      await waitFor(() => warned(svc, /larger than 262144 bytes/), {
        what: "the warning of the large file",
      });
      writeFileSync(file, doc(["c-2", 60_000]));
      await waitFor(async () => await traced(svc, "c-2"), {
        what: "c-2 watched",
      });
    } finally {
      await svc.stop();
    }
  });
});

describe("intervals given to init()", () => {
  // Over a second and a half, the defaults (5 s for the list, 10 s for the
  // alarms) read the list and run the checks at most once or twice; an
  // interval of 0 taken as given ran each more than a thousand times.
  for (const interval of [0, -5, "abc"])
    it(`keeps to the defaults when given ${JSON.stringify(interval)}, and says so once`, async () => {
      const source = await startSource();
      const app = await startService({
        entry: "interval-options.mjs",
        cwd: fixtures,
        ready: false,
        env: {
          INTERVAL: JSON.stringify(interval),
          WATCH_URL: source.url,
          RUN_MS: "1500",
        },
      });
      try {
        const { code } = await app.exited;
        assert.equal(code, 0, app.stderr.join("\n"));
        const { checks } = JSON.parse(app.stdout.at(-1)!) as {
          checks: number;
        };
        assert.ok(source.reads <= 2, `the list was read ${source.reads} times`);
        assert.ok(checks <= 2, `the health check ran ${checks} times`);
        const given = JSON.stringify(interval);
        for (const [option, fallback] of [
          ["watchIntervalMs", 5000],
          ["alarms.intervalMs", 10000],
        ] as const)
          assert.deepEqual(
            app.stderr.filter((l) => l.includes(option)),
            [
              `threadline warn: ${option} ${given} is not an integer from 100 to 2147483647; using ${fallback}`,
            ],
          );
      } finally {
        await app.stop();
        await source.close();
      }
    });
});
