// PostgreSQL and RabbitMQ for a test file: the servers the test runner
// started (THREADLINE_TEST_DATABASE_URL, THREADLINE_TEST_AMQP_URL), or new
// ones when a file runs on its own. Each caller gets its own database, so
// test files running in parallel never see each other's rows.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { startPostgres, startRabbitMQ, type RunningServer } from "./servers.ts";

const started: RunningServer[] = [];

async function server(
  envName: string,
  start: () => Promise<RunningServer>,
): Promise<string> {
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  const s = await start();
  started.push(s);
  process.env[envName] = s.url;
  return s.url;
}

/** A fresh, empty database on the shared PostgreSQL server. */
export async function testDatabase(): Promise<string> {
  const url = await server("THREADLINE_TEST_DATABASE_URL", startPostgres);
  const name = `t_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The shared RabbitMQ broker's URL. */
export async function testBroker(): Promise<string> {
  return server("THREADLINE_TEST_AMQP_URL", startRabbitMQ);
}

/** Stops servers this process started itself (none when the runner provided them). */
export async function stopTestServers(): Promise<void> {
  await Promise.all(started.splice(0).map((s) => s.stop()));
}
