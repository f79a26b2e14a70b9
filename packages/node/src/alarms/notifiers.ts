// Where raised and cleared alarms are sent: a generic webhook (the event as
// JSON), Slack (an incoming-webhook message) and PagerDuty (Events API v2,
// trigger and resolve under one dedup key). Sent untraced, with a timeout;
// a send refused for the moment (429, 5xx, no connection, no answer) is
// tried again a few times on unref'd timers, one alarm's events to one
// notifier in order, so a resolve never overtakes its trigger's retries. A
// notification that still fails is reported and never reaches the service;
// a raise is sent again by the engine while its alarm is active (see
// sendAgain), and the clear of a raise that never arrived is not sent. As
// the instance ends, a raise's tries are abandoned (see deliver), so that
// its clear goes out at once.
import { setTimeout as delay } from "node:timers/promises";
import { diag, untraced } from "@threadline/core";
import { isRetryableStatus, retryAfterMs } from "@threadline/core/retry-after";
import type { Severity } from "./rules.ts";

export interface AlarmEvent {
  action: "raise" | "clear";
  /**
   * This raise's or clear's own id, the same in every try: a receiver that
   * got a notification whose answer was lost knows the retry for a copy.
   */
  eventId: string;
  service: string;
  /**
   * The raising process's `service.instance.id`: replicas of one service
   * raise and clear their alarms each on its own.
   */
  instance: string;
  /**
   * Set on the clears sent as the instance stops: its alarms end with it,
   * whether or not their conditions still hold (`alarm.reason` says so).
   */
  instanceStopped?: true;
  alarm: {
    id: string;
    name: string;
    /** The rule's severity; `cleared` once cleared. */
    severity: Severity | "cleared";
    source: string;
    description: string;
    reason: string;
    raisedAt: string;
    clearedAt?: string;
  };
}

export interface Notifier {
  readonly name: string;
  /** `signal` aborts when the send is abandoned (the instance ends). */
  send(event: AlarmEvent, signal: AbortSignal): Promise<void>;
}

/**
 * One try's wait for an answer: long enough for a receiver that does its
 * work before answering (a ticketing system, a chat bridge), which would
 * otherwise be sent every notification again although it had it.
 */
const TIMEOUT_MS = 10_000;
/** The waits before each new try of one notification (ms): four in all. */
const RETRY_DELAYS_MS = [1000, 3000, 9000];
/**
 * The longest one wait between tries, however long a Retry-After asks:
 * waiting out an hour would leave the alarm unsent for good if the process
 * ends meanwhile, while a try after 30 s may well be let through.
 */
const MAX_RETRY_WAIT_MS = 30_000;

/** A send that failed; `retryAfterMs` set when trying again may work. */
class SendError extends Error {
  readonly retryAfterMs: number | undefined;

  constructor(message: string, retryAfterMs: number | undefined) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

async function post(
  url: string,
  body: unknown,
  what: string,
  signal: AbortSignal,
): Promise<void> {
  let answer: { status: number; retryAfter: string | undefined };
  try {
    answer = await untraced(() => request(url, JSON.stringify(body), signal));
  } catch (err) {
    // Never the request's message: it can hold the URL, and the URL its secret.
    throw new SendError(`${what} could not be reached (${failureOf(err)})`, 0);
  }
  if (answer.status >= 200 && answer.status < 300) return;
  const again = isRetryableStatus(answer.status);
  throw new SendError(
    `${what} answered ${answer.status}`,
    // 0 when absent or unread: try again on the usual schedule.
    again ? (retryAfterMs(answer.retryAfter) ?? 0) : undefined,
  );
}

/**
 * One POST on an unref'd socket of its own: a notification still under
 * way when the application is done (a batch job, a receiver that never
 * answers) does not keep the process running, as fetch's pooled sockets
 * would until the timeout.
 */
function request(
  url: string,
  body: string,
  signal: AbortSignal,
): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = process
      .getBuiltinModule(
        target.protocol === "https:" ? "node:https" : "node:http",
      )
      .request(
        target,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
          agent: false,
          signal: AbortSignal.any([AbortSignal.timeout(TIMEOUT_MS), signal]),
        },
        (res) => {
          res.on("error", reject);
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              retryAfter: [res.headers["retry-after"]].flat()[0],
            }),
          );
          res.resume();
        },
      );
    req.on("socket", (socket) => socket.unref());
    req.on("error", reject);
    req.end(body);
  });
}

/** Why a request failed, in words that cannot hold its URL. */
function failureOf(err: unknown): string {
  const e = err as
    { name?: unknown; code?: unknown; cause?: { name?: unknown } } | undefined;
  if (e?.name === "AbortError" && e.cause?.name === "TimeoutError")
    return `no answer within ${TIMEOUT_MS} ms`;
  const code = e?.code;
  return typeof code === "string" && /^[A-Z0-9_]+$/.test(code)
    ? code
    : "the request failed";
}

export function webhookNotifier(url: string): Notifier {
  return {
    name: "webhook",
    send: (event, signal) => post(url, event, "the alarm webhook", signal),
  };
}

const SLACK_ICON: Record<string, string> = {
  critical: ":red_circle:",
  major: ":large_orange_circle:",
  minor: ":large_yellow_circle:",
  warning: ":warning:",
  indeterminate: ":white_circle:",
  cleared: ":white_check_mark:",
};

/** Slack incoming webhook: `text` (required, the notification), and blocks. */
export function slackNotifier(url: string): Notifier {
  return {
    name: "slack",
    send: (e, signal) => {
      const a = e.alarm;
      const text =
        e.action === "raise"
          ? `${SLACK_ICON[a.severity]} ${a.severity.toUpperCase()} ${a.name} on ${e.service} instance ${e.instance} (${a.source}): ${a.reason}`
          : `${SLACK_ICON["cleared"]} CLEARED ${a.name} on ${e.service} instance ${e.instance} (${a.source})${e.instanceStopped ? `: ${a.reason}` : ""}`;
      return post(
        url,
        {
          text,
          blocks: [
            { type: "section", text: { type: "mrkdwn", text } },
            {
              type: "context",
              elements: [
                {
                  type: "mrkdwn",
                  text: `${a.description} · raised ${a.raisedAt}${a.clearedAt ? ` · cleared ${a.clearedAt}` : ""} · id ${a.id} · event ${e.eventId}`,
                },
              ],
            },
          ],
        },
        "Slack",
        signal,
      );
    },
  };
}

const PAGERDUTY_SEVERITY: Record<Severity, string> = {
  critical: "critical",
  major: "error",
  minor: "warning",
  warning: "warning",
  indeterminate: "info",
};

/**
 * PagerDuty Events API v2: trigger on raise, resolve on clear, one dedup
 * key per alarm of one instance, so a replica's recovery resolves its own
 * incident, not every replica's.
 */
export function pagerDutyNotifier(
  routingKey: string,
  url = "https://events.pagerduty.com/v2/enqueue",
): Notifier {
  return {
    name: "pagerduty",
    send: (e, signal) => {
      const a = e.alarm;
      // PagerDuty's limit; the instance and the alarm id are kept whole.
      const tail = `/${e.instance}/${a.id}`;
      const dedupKey =
        `${e.service.slice(0, Math.max(0, 255 - tail.length))}${tail}`.slice(
          0,
          255,
        );
      const body =
        e.action === "raise"
          ? {
              routing_key: routingKey,
              event_action: "trigger",
              dedup_key: dedupKey,
              payload: {
                summary: `${a.name} on ${e.service}: ${a.reason}`.slice(
                  0,
                  1024,
                ),
                source: e.service,
                severity: PAGERDUTY_SEVERITY[a.severity as Severity] ?? "info",
                component: a.source,
                class: a.name,
                timestamp: a.raisedAt,
                custom_details: {
                  description: a.description,
                  id: a.id,
                  instance: e.instance,
                  event_id: e.eventId,
                },
              },
            }
          : {
              routing_key: routingKey,
              event_action: "resolve",
              dedup_key: dedupKey,
            };
      return post(url, body, "PagerDuty", signal);
    },
  };
}

/** Each notifier's last queued send per alarm id, while one is under way. */
const queues = new WeakMap<Notifier, Map<string, Promise<unknown>>>();
/** Per notifier, the alarm ids whose last raise could not be delivered. */
const undelivered = new WeakMap<Notifier, Set<string>>();

/**
 * Sends to every notifier, after that notifier's earlier sends of the same
 * alarm; failures are retried and reported, never thrown. Resolves to the
 * notifiers the event could not be delivered to (never, for a clear, one
 * that did not get its raise). `abandon` aborts to give up
 * the tries under way or to come (see deliver).
 */
export async function notifyAll(
  notifiers: readonly Notifier[],
  event: AlarmEvent,
  abandon?: AbortSignal,
): Promise<Notifier[]> {
  const delivered = await Promise.all(
    notifiers.map((n) =>
      inTurn(n, event, () => deliver(n, event, true, abandon)),
    ),
  );
  return notifiers.filter((_, i) => !delivered[i]);
}

/**
 * Sends a raise or a clear again, one try, to a notifier that could not be
 * given it, after that notifier's earlier sends of the alarm; whether it
 * arrived. Not sent when `wanted` says no by then: a clear that came
 * after a raise wins, and is not sent either, as its raise never arrived;
 * a raise that came after a clear wins over the clear.
 */
export function sendAgain(
  n: Notifier,
  event: AlarmEvent,
  wanted: () => boolean,
  abandon: AbortSignal,
): Promise<boolean> {
  return inTurn(
    n,
    event,
    async () => wanted() && deliver(n, event, false, abandon),
  );
}

/**
 * Runs `send` after the notifier's earlier sends of the same alarm, and
 * keeps count of the raises not delivered; whether it was delivered (a
 * clear left unsent counts as delivered: nothing is owed).
 */
function inTurn(
  n: Notifier,
  event: AlarmEvent,
  send: () => Promise<boolean>,
): Promise<boolean> {
  let queue = queues.get(n);
  if (queue === undefined) queues.set(n, (queue = new Map()));
  let lost = undelivered.get(n);
  if (lost === undefined) undelivered.set(n, (lost = new Set()));
  const unsent = lost;
  const id = event.alarm.id;
  const sent = (queue.get(id) ?? Promise.resolve()).then(async () => {
    // A clear of a raise the receiver never got would resolve nothing
    // it knows of (or, for PagerDuty, someone else's incident).
    if (event.action === "clear" && unsent.delete(id)) return true;
    const delivered = await send();
    if (event.action === "raise")
      if (delivered) unsent.delete(id);
      else unsent.add(id);
    return delivered;
  });
  queue.set(id, sent);
  void sent.then(() => {
    if (queue.get(id) === sent) queue.delete(id);
  });
  return sent;
}

/** The signal of a send nothing abandons. */
const NEVER = new AbortController().signal;

/**
 * Sends one notification, trying again as it may when `retry` says so;
 * whether it arrived. Once `abandon` aborts (the instance ends), the
 * alarm's clear is not held back behind it, up to 10 s a try and more
 * between tries, past the shutdown's budget: a try not begun is not made
 * and the notification counts as not arrived, as when its last try
 * failed; a try under way is given up at once (aborted, and not waited
 * for, whether or not the notifier heeds the signal) and counts as
 * arrived, as the receiver may have it already: its clear is sent.
 */
async function deliver(
  n: Notifier,
  event: AlarmEvent,
  retry: boolean,
  abandon?: AbortSignal,
): Promise<boolean> {
  const signal = abandon ?? NEVER;
  for (let tries = 1; ; tries++) {
    if (signal.aborted) return false;
    let wait: number;
    try {
      await untilAborted(n.send(event, signal), signal);
      return true;
    } catch (err) {
      if (signal.aborted) return true;
      const after = err instanceof SendError ? err.retryAfterMs : undefined;
      const backoff = retry ? RETRY_DELAYS_MS[tries - 1] : undefined;
      if (after === undefined || backoff === undefined) {
        diag.warnCollapsed(
          `alarm-notify-${n.name}`,
          `could not notify ${n.name} of alarm ${event.alarm.name}: ${(err as Error)?.message ?? String(err)}${tries > 1 ? ` (${tries} tries)` : ""}${event.action === "raise" ? "; sent again at most once a minute while the alarm is active" : event.instanceStopped === true ? "" : "; sent again at most once a minute until it is delivered"}`,
        );
        return false;
      }
      wait = Math.min(Math.max(backoff, after), MAX_RETRY_WAIT_MS);
    }
    // Unref'd: a notification never keeps the process alive. Cut short
    // when abandoned, for the next turn to give up.
    await delay(wait, undefined, { signal, ref: false }).catch(() => {});
  }
}

/** `sent`, or a rejection as soon as `signal` aborts, whichever is first. */
function untilAborted(sent: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const abandoned = () => reject(signal.reason as Error);
    signal.addEventListener("abort", abandoned);
    sent
      .then(resolve, reject)
      .finally(() => signal.removeEventListener("abort", abandoned));
  });
}
