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
  instance: string,
  meterProvider: MeterProvider,
  pipeline: ExportPipeline,
): AlarmEngine {
  const { rules, problems } = loadRules(settings.rulesFile);
  if (problems.length > 0)
    diag.warn(
      `alarm rules in ${settings.rulesFile} were not used (the defaults are): ${problems.join("; ")}`,
    );
  const notifiers: Notifier[] = [];
  const webhookUrl = notifierUrl(
    settings.webhookUrl,
    "THREADLINE_ALARM_WEBHOOK_URL (the webhookUrl option)",
    "alarms are not sent to the webhook",
  );
  if (webhookUrl) notifiers.push(webhookNotifier(webhookUrl));
  const slackUrl = notifierUrl(
    settings.slackWebhookUrl,
    "THREADLINE_ALARM_SLACK_WEBHOOK_URL (the slackWebhookUrl option)",
    "alarms are not sent to Slack",
  );
  if (slackUrl) notifiers.push(slackNotifier(slackUrl));
  if (settings.pagerDutyRoutingKey)
    notifiers.push(
      pagerDutyNotifier(
        settings.pagerDutyRoutingKey,
        notifierUrl(
          settings.pagerDutyUrl,
          "THREADLINE_ALARM_PAGERDUTY_URL (the pagerDutyUrl option)",
          "PagerDuty's own is used",
        ),
      ),
    );
  else if (settings.pagerDutyUrl)
    diag.warn(
      "THREADLINE_ALARM_PAGERDUTY_URL (the pagerDutyUrl option) is set without THREADLINE_ALARM_PAGERDUTY_ROUTING_KEY (the pagerDutyRoutingKey option); alarms are not sent to PagerDuty",
    );
  const engine = new AlarmEngine({
    rules,
    intervalMs: settings.intervalMs,
    service,
    instance,
    meterProvider,
    notifiers,
    log: (line, severityNumber, severityText) =>
      pipeline.emitOwn(line, severityNumber, severityText),
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

/**
 * A notifier's URL if it can be posted to. These URLs are secrets (a Slack
 * webhook's path is its token), so the warning names the setting, never
 * the value: fetch's own errors would print it whole.
 */
function notifierUrl(
  value: string | undefined,
  setting: string,
  otherwise: string,
): string | undefined {
  if (!value) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    diag.warn(`${setting} is not an http(s) URL; ${otherwise}`);
    return undefined;
  }
  if (url.username !== "" || url.password !== "") {
    diag.warn(
      `${setting} holds a user name or password, which fetch refuses; ${otherwise}`,
    );
    return undefined;
  }
  return value;
}
