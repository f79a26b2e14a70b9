// What the bench services run against, on loopback: a real PostgreSQL with
// the products table the realistic handler reads, a real RabbitMQ, the
// process that drains the queue, and the sink every agent exports to.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import {
  startPostgres,
  startRabbitMQ,
  startService,
  type RunningService,
} from "@threadline/test-support";

const services = fileURLToPath(new URL("../services/", import.meta.url));

export interface Backends {
  /** What a bench service needs in its environment to reach them. */
  env: Record<string, string>;
  sink: RunningService;
  consumer: RunningService;
  /** Stops everything started, whatever state it is in. */
  stop(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const [postgres, rabbit] = await Promise.all([
    startPostgres(),
    startRabbitMQ(),
  ]);
  const started: RunningService[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
    await Promise.all([postgres.stop(), rabbit.stop()]);
  };
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
    const env = {
      DATABASE_URL: postgres.url,
      AMQP_URL: rabbit.url,
      BENCH_QUEUE: "bench",
    };
    const sink = await startService({
      entry: join(services, "sink.cjs"),
      env: {},
    });
    started.push(sink);
    const consumer = await startService({
      entry: join(services, "consumer.cjs"),
      env,
      ready: /listening/,
    });
    started.push(consumer);
    return { env, sink, consumer, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
