// Real PostgreSQL and RabbitMQ servers for tests and the demo, started from
// the system's packages (Debian: postgresql, rabbitmq-server) into a
// temporary directory on loopback ports, and removed again on stop(). As
// root, the servers run as their own system users, which both refuse to
// run as root.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { waitFor } from "./wait.ts";

export interface RunningServer {
  /** Connection URL: postgres://… or amqp://… */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** A PostgreSQL server that can also be shut down and started again, data kept. */
export interface RunningPostgres extends RunningServer {
  /** Stops the server (fast shutdown: clients are disconnected). */
  pause(): void;
  /** Starts it again on the same port and data. */
  resume(): void;
}

/** Lowest port for {@link freePort}: below it are the well-known services'. */
const LOWEST_PORT = 10_000;
/** Ports this process has handed out, never handed out twice. */
const handedOut = new Set<number>();

/** The first port of the kernel's range for outgoing connections and listen(0). */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(
        /\s+/,
      )[0],
    );
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` on loopback can be listened on now (it is closed again). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A port the kernel picks (released before use). */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on loopback for a server started later, taken below the
 * kernel's ephemeral range: a port from that range (what listen(0) gives)
 * can meanwhile become the local end of any outgoing connection, and the
 * server then fails to bind it. Released before use, so two processes can
 * still pick the same one, rarely.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  if (high - LOWEST_PORT >= 1000)
    for (let i = 0; i < 50; i++) {
      const port =
        LOWEST_PORT + Math.floor(Math.random() * (high - LOWEST_PORT));
      if (handedOut.has(port) || !(await canListen(port))) continue;
      handedOut.add(port);
      return port;
    }
  return kernelPort();
}

const isRoot = () => userInfo().uid === 0;

function asUser(
  user: string,
  command: string,
  args: string[],
): [string, string[]] {
  return isRoot()
    ? ["runuser", ["-u", user, "--", command, ...args]]
    : [command, args];
}

function tempDir(prefix: string, owner: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (isRoot()) {
    const uid = Number(
      spawnSync("id", ["-u", owner], { encoding: "utf8" }).stdout.trim(),
    );
    const gid = Number(
      spawnSync("id", ["-g", owner], { encoding: "utf8" }).stdout.trim(),
    );
    if (Number.isInteger(uid) && Number.isInteger(gid))
      chownSync(dir, uid, gid);
  }
  return dir;
}

function postgresBin(): string {
  const found = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" });
  const candidates = [found.status === 0 ? found.stdout.trim() : ""];
  if (existsSync("/usr/lib/postgresql")) {
    for (const v of readdirSync("/usr/lib/postgresql").sort(
      (a, b) => Number(b) - Number(a),
    ))
      candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  for (const c of candidates)
    if (c && existsSync(join(c, "initdb")) && existsSync(join(c, "pg_ctl")))
      return c;
  throw new Error(
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them: apt-get install postgresql",
  );
}

/** Starts a throw-away PostgreSQL server; the URL points at database `postgres` as user `postgres`. */
export async function startPostgres(): Promise<RunningPostgres> {
  const bin = postgresBin();
  const dir = tempDir("threadline-pg-", "postgres");
  const data = join(dir, "data");
  const port = await freePort();
  const run = (cmd: string, args: string[]) => {
    const [c, a] = asUser("postgres", join(bin, cmd), args);
    const r = spawnSync(c, a, { encoding: "utf8", cwd: dir });
    if (r.status !== 0)
      throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };
  run("initdb", [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
  ]);
  const start = () =>
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "server.log"),
      "-w",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200`,
      "start",
    ]);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    pause: () => run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]),
    resume: start,
    stop: async () => {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function rabbitBin(): string {
  for (const c of ["/usr/lib/rabbitmq/bin/rabbitmq-server"])
    if (existsSync(c)) return c;
  const which = spawnSync("sh", ["-c", "command -v rabbitmq-server"], {
    encoding: "utf8",
  });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(
    "RabbitMQ (rabbitmq-server) was not found. Install it: apt-get install rabbitmq-server",
  );
}

/** Whether an AMQP 0-9-1 broker answers the protocol header on `port`. */
function amqpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () =>
      socket.write(Buffer.from("AMQP\x00\x00\x09\x01", "latin1")),
    );
    // A method frame (type 1) carrying Connection.Start means the broker is ready.
    socket.once("data", (b: Buffer) => done(b[0] === 1));
  });
}

/** Starts a throw-away RabbitMQ node without plugins; the URL uses the default guest account. */
export async function startRabbitMQ(): Promise<RunningServer> {
  const bin = rabbitBin();
  const dir = tempDir("threadline-rabbit-", "rabbitmq");
  const port = await freePort();
  const dist = await freePort();
  const plugins = join(dir, "enabled_plugins");
  writeFileSync(plugins, "[].\n");
  if (isRoot()) spawnSync("chown", ["rabbitmq", plugins]);
  const env = {
    HOME: dir,
    RABBITMQ_NODENAME: `threadline${port}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
    RABBITMQ_PID_FILE: join(dir, "pid"),
  };
  const [cmd, args] = isRoot()
    ? [
        "runuser",
        [
          "-u",
          "rabbitmq",
          "--",
          "env",
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          bin,
        ],
      ]
    : [bin, []];
  const child: ChildProcess = spawn(cmd, args, {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: "ignore",
    detached: true,
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error("rabbitmq-server exited during start-up");
        return amqpAnswers(port);
      },
      {
        what: "RabbitMQ to accept connections",
        timeoutMs: 90_000,
        intervalMs: 250,
      },
    );
  } catch (err) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  child.unref();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    stop: async () => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      await waitFor(async () => !(await amqpAnswers(port)), {
        what: "RabbitMQ to stop",
        timeoutMs: 20_000,
      }).catch(() => {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      });
      // The node may still be writing its last files after the port closed.
      rmSync(dir, {
        recursive: true,
        force: true,
        maxRetries: 10,
        retryDelay: 200,
      });
    },
  };
}

/**
 * An embedded PostgreSQL (PGlite, in memory) served over the PostgreSQL wire
 * protocol on a loopback port, for machines without a PostgreSQL server.
 * It multiplexes several client connections onto one database.
 */
export async function startPglite(): Promise<RunningServer> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const db = await PGlite.create();
  const port = await freePort();
  const server = new PGLiteSocketServer({
    db,
    port,
    host: "127.0.0.1",
    maxConnections: 32,
  });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
