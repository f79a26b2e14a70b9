// Starts a real service as a child process, the way the README says users
// run it, and captures its output line by line.
import { spawn, type ChildProcess } from "node:child_process";
import { waitFor } from "./wait.ts";

export interface ServiceOptions {
  /** Script to run. */
  entry: string;
  /** Arguments after the script. */
  args?: string[];
  /** Node options placed before the script, e.g. ['--import', '@threadline/node/register']. */
  execArgv?: string[];
  /** A command that runs Node (its path comes last), e.g. ['unshare', '-pf']; `child` is then that command's process. */
  launcher?: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** A line matching this (with a port in group 1) means the service is ready. @default /listening on (\d+)/ */
  ready?: RegExp | false;
  timeoutMs?: number;
}

export interface RunningService {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves when the process exits. */
  readonly exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>;
  /**
   * Sends `signal` (default SIGTERM) and waits for exit; a process still
   * running after `killAfterMs` (default 30 s) is killed with SIGKILL.
   */
  stop(
    signal?: NodeJS.Signals,
    killAfterMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Environment of the test process without any OTEL_ or THREADLINE_ settings, so a test sets exactly what it means. */
export function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env))
    if (
      !k.startsWith("OTEL_") &&
      !k.startsWith("THREADLINE_") &&
      k !== "NODE_OPTIONS"
    )
      env[k] = v;
  return env;
}

export async function startService(
  options: ServiceOptions,
): Promise<RunningService> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const [command, ...launcherArgs] = [
    ...(options.launcher ?? []),
    process.execPath,
  ];
  const child = spawn(
    command!,
    [
      ...launcherArgs,
      ...(options.execArgv ?? []),
      options.entry,
      ...(options.args ?? []),
    ],
    {
      cwd: options.cwd,
      env: { ...cleanEnv(), ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const collect = (stream: NodeJS.ReadableStream | null, into: string[]) => {
    let rest = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      into.push(...lines);
    });
    stream?.on("end", () => {
      if (rest) into.push(rest);
    });
  };
  collect(child.stdout, stdout);
  collect(child.stderr, stderr);
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>((resolve) => {
    // "close" rather than "exit": it comes after the output was fully read.
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  let port = 0;
  const ready =
    options.ready === undefined ? /listening on (\d+)/ : options.ready;
  if (ready !== false) {
    try {
      port = await waitFor(
        () => {
          if (exitedEarly)
            throw new Error(
              `${options.entry} exited early:\n${stderr.join("\n")}\n${stdout.join("\n")}`,
            );
          for (const line of stdout) {
            const m = ready.exec(line);
            if (m) return Number(m[1] ?? 0) || -1;
          }
          return undefined;
        },
        {
          what: `${options.entry} to start`,
          timeoutMs: options.timeoutMs ?? 20_000,
        },
      );
    } catch (err) {
      child.kill("SIGKILL");
      throw new Error(
        `${(err as Error).message}\nstderr:\n${stderr.join("\n")}`,
      );
    }
  }
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    stdout,
    stderr,
    exited,
    stop: async (signal: NodeJS.Signals = "SIGTERM", killAfterMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const killer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      try {
        return await exited;
      } finally {
        clearTimeout(killer);
      }
    },
  };
}

/**
 * The service's exit once it ends by itself; if it is still running after
 * `ms`, it is killed and this throws, saying what `what` expected.
 */
export async function exitWithin(
  app: RunningService,
  what: string,
  ms = 15_000,
): Promise<Awaited<RunningService["exited"]>> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    app.exited,
    new Promise<"alive">((r) => (timer = setTimeout(() => r("alive"), ms))),
  ]);
  clearTimeout(timer);
  if (result !== "alive") return result;
  await app.stop("SIGKILL");
  throw new Error(`${what}: still running after ${ms} ms`);
}
