import { diag } from "@threadline/core";
import type { AlarmSettings } from "../config.ts";
import type { ExportPipeline } from "../export/pipeline.ts";
import type { MeterProvider } from "../metrics/meter-provider.ts";
import { AlarmEngine } from "./engine.ts";
import {
  pagerDutyNotifier,
  slackNotifier,
  webhookNotifier,
  type Notifier,
} from "./notifiers.ts";
import { loadRules } from "./rules.ts";

const STATUS_VALUE = { healthy: 0, degraded: 1, unhealthy: 2 } as const;

/** The alarm engine with the configured rules and notifiers, started. */
export function startAlarms(
  settings: AlarmSettings,
  service: string,
  meterProvider: MeterProvider,
  pipeline: ExportPipeline,
  metricsCollected: boolean,
): AlarmEngine {
  const { rules, problems } = loadRules(settings.rulesFile);
  if (problems.length > 0)
    diag.warn(
      `alarm rules in ${settings.rulesFile} were not used (the defaults are): ${problems.join("; ")}`,
    );
  const notifiers: Notifier[] = [];
  if (settings.webhookUrl) notifiers.push(webhookNotifier(settings.webhookUrl));
  if (settings.slackWebhookUrl)
    notifiers.push(slackNotifier(settings.slackWebhookUrl));
  if (settings.pagerDutyRoutingKey)
    notifiers.push(
      pagerDutyNotifier(
        settings.pagerDutyRoutingKey,
        settings.pagerDutyUrl ?? undefined,
      ),
    );
  const engine = new AlarmEngine({
    rules,
    intervalMs: settings.intervalMs,
    service,
    meterProvider,
    metricsCollected,
    notifiers,
    log: (line, severityNumber, severityText) =>
      pipeline.emit(
        line,
        severityNumber,
        severityText,
        undefined,
        undefined,
        0,
        "msg",
      ),
  });
  engine.start();
  // The last evaluation's health as a metric, so fleets can alert on it
  // (collector-config/prometheus-rules.yaml): 0 healthy, 1 degraded, 2 unhealthy.
  meterProvider
    .getMeter("@threadline/node/health")
    .createObservableGauge("threadline.health.status", {
      unit: "1",
      description:
        "Health of each component as last checked: 0 healthy, 1 degraded, 2 unhealthy.",
    })
    .addCallback((r) => {
      for (const c of engine.components())
        r.observe(STATUS_VALUE[c.status], { "threadline.component": c.name });
    });
  return engine;
}
