import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Attributes } from "@threadline/otlp";
import type { ResolvedConfig } from "./config.ts";
import { VERSION } from "./version.ts";

/**
 * The resource every span and log record of this process is attributed to;
 * `instanceId` is the process's when another thread's Threadline owns it.
 */
export function buildResource(
  config: ResolvedConfig,
  instanceId: string = randomUUID(),
): Attributes {
  return {
    "service.instance.id": instanceId,
    "telemetry.sdk.name": "threadline",
    "telemetry.sdk.language": "nodejs",
    "telemetry.sdk.version": VERSION,
    "process.pid": process.pid,
    "process.runtime.name": "nodejs",
    "process.runtime.version": process.versions.node,
    "host.name": hostname(),
    ...config.resourceAttributes,
    "service.name": config.serviceName,
  };
}
