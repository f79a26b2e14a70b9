// Profiles one contender under load: runs a bench service with --cpu-prof
// (main thread; worker threads write their own profiles), drives it with
// autocannon, then prints where the time went, by function and by package.
//
//   node bench/src/profile.ts [--contender threadline-100] [--handler realistic] [--requests 20000]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import {
  startPostgres,
  startRabbitMQ,
  startService,
} from "@threadline/test-support";
import { load } from "./load.ts";

const { values } = parseArgs({
  options: {
    contender: { type: "string" },
    handler: { type: "string" },
    requests: { type: "string" },
    top: { type: "string" },
  },
});
const root = fileURLToPath(new URL("../", import.meta.url));
const services = join(root, "services");
const handler = values.handler ?? "realistic";
const requests = Number(values.requests ?? 20_000);
const execArgv: Record<string, string[]> = {
  none: [],
  "threadline-100": ["-r", "@threadline/node/register"],
  otel: ["-r", join(services, "otel-upstream.cjs")],
};
const contender = values.contender ?? "threadline-100";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

function summarize(file: string, top: number): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) =>
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)),
  );
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const url = n.callFrame.url;
    const where = url.includes("node_modules/")
      ? url
          .slice(url.lastIndexOf("node_modules/") + 13)
          .split("/")
          .slice(0, url.includes("node_modules/@") ? 2 : 1)
          .join("/")
      : url.includes("/packages/") || url.includes("/instrumentations/")
        ? `threadline:${url.split("/").slice(-3).join("/")}`
        : url.startsWith("node:")
          ? url
          : url === ""
            ? "(native/gc)"
            : url.split("/").slice(-2).join("/");
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${where}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    const group = where.startsWith("threadline:")
      ? `threadline ${where.split(":")[1]!.split("/")[0]}`
      : where.startsWith("node:")
        ? "node core"
        : where;
    pkg.set(group, (pkg.get(group) ?? 0) + t);
  }
  const fmt = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, t]) => `${((t / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  return `total sampled ${(total / 1000).toFixed(0)} ms\n\n-- by package --\n${fmt(pkg, 25)}\n\n-- by function (self time) --\n${fmt(fn, top)}\n`;
}

const dir = mkdtempSync(join(tmpdir(), "threadline-prof-"));
const [postgres, rabbit] = await Promise.all([
  startPostgres(),
  startRabbitMQ(),
]);
try {
  const setup = new pg.Client({ connectionString: postgres.url });
  await setup.connect();
  await setup.query(
    "CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, price_cents integer NOT NULL)",
  );
  await setup.query(
    "INSERT INTO products SELECT i, 'product ' || i, i * 10 FROM generate_series(1, 1000) i",
  );
  await setup.end();
  const sink = await startService({
    entry: join(services, "sink.cjs"),
    env: {},
  });
  const env = {
    DATABASE_URL: postgres.url,
    AMQP_URL: rabbit.url,
    BENCH_QUEUE: "bench",
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    OTEL_SERVICE_NAME: "bench",
  };
  const consumer = await startService({
    entry: join(services, "consumer.cjs"),
    env,
    ready: /listening/,
  });
  const svc = await startService({
    entry: join(services, `${handler}.cjs`),
    execArgv: [
      `--cpu-prof`,
      `--cpu-prof-dir=${dir}`,
      ...(execArgv[contender] ?? []),
    ],
    env: { ...env, PORT: "0" },
  });
  await load(svc.url, requests / 5, 20);
  const { seconds } = await load(svc.url, requests, 20);
  process.stdout.write(
    `${contender} ${handler}: ${(requests / seconds).toFixed(0)} req/s\n`,
  );
  await svc.stop("SIGINT");
  await Promise.all([consumer.stop(), sink.stop()]);
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    process.stdout.write(
      `\n==== ${f}\n${summarize(join(dir, f), Number(values.top ?? 40))}`,
    );
  }
} finally {
  await Promise.all([postgres.stop(), rabbit.stop()]);
  rmSync(dir, { recursive: true, force: true });
}
