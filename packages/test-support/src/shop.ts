// Brings up the example shop (examples/shop) the way its README says: each
// service a child process started with `node --import
// @threadline/node/register`, configured only through the environment.
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startService, type RunningService } from "./service.ts";

export interface ShopOptions {
  /** OTLP/HTTP endpoint all services export to. */
  otlpEndpoint: string;
  databaseUrl: string;
  amqpUrl: string;
  /** Extra environment for every service (e.g. OTEL_TRACES_SAMPLER). */
  env?: Record<string, string>;
  /** RabbitMQ exchange of the shop. @default a random one, so shops never share a queue */
  exchange?: string;
  /** Extra environment per service. */
  services?: Partial<
    Record<"gateway" | "orders" | "worker", Record<string, string>>
  >;
}

export interface Shop {
  gateway: RunningService;
  orders: RunningService;
  worker: RunningService;
  payments: RunningService;
  /** Headers the stand-in payments provider received, in order. */
  paymentsReceived(): Promise<
    Array<{ method: string; path: string; headers: Record<string, string> }>
  >;
  stop(): Promise<void>;
}

const dir = fileURLToPath(new URL("../../../examples/shop/", import.meta.url));

export async function startShop(o: ShopOptions): Promise<Shop> {
  const exchange = o.exchange ?? `shop-${randomBytes(4).toString("hex")}`;
  const common = {
    OTEL_EXPORTER_OTLP_ENDPOINT: o.otlpEndpoint,
    DATABASE_URL: o.databaseUrl,
    AMQP_URL: o.amqpUrl,
    SHOP_EXCHANGE: exchange,
    PORT: "0",
    ...o.env,
  };
  const threadline = ["--import", "@threadline/node/register"];
  const started: RunningService[] = [];
  const start = async (
    entry: string,
    execArgv: string[],
    env: Record<string, string>,
  ) => {
    const s = await startService({
      entry,
      cwd: dir,
      execArgv,
      env,
      timeoutMs: 60_000,
    });
    started.push(s);
    return s;
  };
  try {
    const payments = await start("payments-provider.mjs", [], { PORT: "0" });
    const worker = await start("worker.mjs", threadline, {
      ...common,
      OTEL_SERVICE_NAME: "worker",
      PAYMENTS_URL: payments.url,
      THREADLINE_THIRD_PARTIES: `127.0.0.1:${payments.port}=payments-provider`,
      ...o.services?.worker,
    });
    const orders = await start("orders.mjs", threadline, {
      ...common,
      OTEL_SERVICE_NAME: "orders",
      ...o.services?.orders,
    });
    const gateway = await start("gateway.mjs", threadline, {
      ...common,
      OTEL_SERVICE_NAME: "gateway",
      THREADLINE_EDGE: "true",
      ORDERS_URL: orders.url,
      ...o.services?.gateway,
    });
    return {
      gateway,
      orders,
      worker,
      payments,
      paymentsReceived: async () =>
        (await fetch(`${payments.url}/_received`)).json() as Promise<
          Array<{
            method: string;
            path: string;
            headers: Record<string, string>;
          }>
        >,
      stop: async () => {
        await Promise.all(started.map((s) => s.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
}
