// The test suite: unit tests beside each package and integration tests that
// start real services as child processes. Run through `npm test`, which
// first makes sure Node, the dependencies and the build are in place.
//
// One PostgreSQL server and one RabbitMQ broker are started here for the
// whole run (test files create their own databases and exchanges on them)
// and removed at the end. Extra arguments go to `node --test`, e.g. a file
// to run alone.
import { spawn } from "node:child_process";
import { startPostgres, startRabbitMQ } from "@threadline/test-support";

const patterns = [
  "packages/*/test/**/*.test.ts",
  "instrumentations/*/test/**/*.test.ts",
  "test/**/*.test.ts",
  "bench/test/**/*.test.ts",
];
const extra = process.argv.slice(2);
const files = extra.filter((a) => !a.startsWith("-"));
const flags = extra.filter((a) => a.startsWith("-"));

const started = [];
async function serverFor(envName, start) {
  if (process.env[envName]) return;
  const server = await start();
  started.push(server);
  process.env[envName] = server.url;
}

let status = 1;
try {
  const t0 = Date.now();
  await Promise.all([
    serverFor("THREADLINE_TEST_DATABASE_URL", startPostgres),
    serverFor("THREADLINE_TEST_AMQP_URL", startRabbitMQ),
  ]);
  console.log(
    `test servers ready in ${Date.now() - t0} ms: PostgreSQL and RabbitMQ on loopback`,
  );
  const args = [
    "--test",
    "--test-concurrency=2",
    "--test-timeout=180000",
    "--test-reporter=spec",
    ...flags,
    ...(files.length > 0 ? files : patterns),
  ];
  const child = spawn(process.execPath, args, { stdio: "inherit" });
  const stop = (signal) => child.kill(signal);
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  status = await new Promise((resolve) =>
    child.on("close", (code) => resolve(code ?? 1)),
  );
} catch (err) {
  console.error(`could not start the test servers: ${err.message}`);
} finally {
  await Promise.all(started.map((s) => s.stop().catch(() => {})));
}
process.exit(status);
