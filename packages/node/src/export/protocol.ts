// Messages and shared counters between the main thread and the export
// worker. Counters the worker owns live in a SharedArrayBuffer so the main
// thread can read them at any time (metrics, warnings, exit) without a
// round trip; each has a single writer.
import type { Attributes, Scope } from "@threadline/otlp";
import type { OtlpProtocol, TlsFiles } from "../config.ts";
import type { LogLimits } from "./json-record.ts";

export type Signal = "traces" | "logs" | "metrics";
export const SIGNALS: readonly Signal[] = ["traces", "logs", "metrics"];

/** Why telemetry was dropped. */
export type DropReason =
  "queueFull" | "retriesExhausted" | "rejected" | "shutdownDeadline";
export const DROP_REASONS: readonly DropReason[] = [
  "queueFull",
  "retriesExhausted",
  "rejected",
  "shutdownDeadline",
];

/** Float64 slots per signal in the shared counter array. */
const SLOTS = [
  "exported",
  "queueFull",
  "retriesExhausted",
  "rejected",
  "shutdownDeadline",
  /**
   * Of `retriesExhausted`, what a final flush's last attempt dropped
   * (abandon()), which no warning of the exporter's has told.
   */
  "lastAttemptFailed",
  "pendingBytes",
  "pendingItems",
  /** Spans and log records the export worker has taken in (see export-worker.ts). */
  "taken",
] as const;
export type WorkerCounter = (typeof SLOTS)[number];

export function counterIndex(signal: Signal, counter: WorkerCounter): number {
  return SIGNALS.indexOf(signal) * SLOTS.length + SLOTS.indexOf(counter);
}
export const COUNTER_SLOTS = SLOTS.length * 3;

/** Int32 slots of the control array: [0] last completed flush id. */
export const CONTROL_FLUSHED = 0;
export const CONTROL_SLOTS = 1;

export interface EndpointSettings {
  url: string;
  headers: Record<string, string>;
  protocol: OtlpProtocol;
  compression: "gzip" | "none";
  timeoutMs: number;
  tls: TlsFiles;
}

export interface WorkerSettings {
  traces: EndpointSettings;
  logs: EndpointSettings;
  metrics: EndpointSettings;
  resource: Attributes;
  logScope: Scope;
  /** The scope of the SDK's own log records (StagedLog's sdk). */
  sdkScope: Scope;
  logLimits: LogLimits;
  maxPendingBytes: number;
  maxRetryMs: number;
  counters: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

export interface TracesMessage {
  t: "traces" | "metrics";
  body: Uint8Array | string;
  count: number;
}

/** A batch of captured log lines with their correlation (log-stage.ts). */
export interface LogsMessage {
  t: "logs";
  body: Uint8Array;
  count: number;
}

export interface FlushMessage {
  t: "flush";
  id: number;
  /** Epoch ms after which whatever is still pending counts as lost. */
  deadline: number;
  /** Final flush (shutdown/exit): drop what cannot be sent by the deadline. */
  final: boolean;
}

/** Start reading the watch list from `url` every `intervalMs`. */
export interface WatchSourceMessage {
  t: "watch-source";
  url: string;
  intervalMs: number;
  headers: Record<string, string>;
  /** Slow down (to once a minute) when the source answers 404. */
  slowOnNotFound: boolean;
}

/** An encoded body handed from one exporter to another (the 'exit' flush). */
export interface PayloadMessage {
  t: "payload";
  signal: Signal;
  body: Uint8Array;
  count: number;
  /** Compressed already if it should be; false: compress it first. */
  ready: boolean;
}

export type ToWorker =
  | TracesMessage
  | LogsMessage
  | PayloadMessage
  | FlushMessage
  | WatchSourceMessage;

/**
 * A read of the watch list: `text` when it changed, `error` when it failed,
 * neither when it is unchanged after a failure.
 */
export interface WatchReadMessage {
  t: "watch";
  text?: string;
  error?: string;
}

export type FromWorker =
  | { t: "flushed"; id: number }
  | WatchReadMessage
  | { t: "diag"; key: string; message: string; level: "warn" | "debug" };
