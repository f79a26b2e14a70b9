// The gateway fixture (fixtures/gateway.mjs) as the tests of callers,
// customers and trust run it: each in a child process named after what it
// plays, exporting its spans to one OTLP receiver, all stopped with it.
import { fileURLToPath } from "node:url";
import {
  startOtlpReceiver,
  startService,
  type OtlpReceiver,
  type ReceivedSpan,
  type RunningService,
} from "@threadline/test-support";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const SERVER = 2;

export class Gateways {
  readonly receiver: OtlpReceiver;
  readonly #started: RunningService[] = [];

  private constructor(receiver: OtlpReceiver) {
    this.receiver = receiver;
  }

  static async open(): Promise<Gateways> {
    return new Gateways(await startOtlpReceiver());
  }

  /** A gateway that is service `name`, with `env` added to its settings. */
  async start(
    name: string,
    env: Record<string, string> = {},
  ): Promise<RunningService> {
    const svc = await startService({
      entry: "gateway.mjs",
      cwd: fixtures,
      env: {
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: this.receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_METRICS_EXPORTER: "none",
        ...env,
      },
    });
    this.#started.push(svc);
    return svc;
  }

  /** The SERVER span of the request to `path`, once it has arrived. */
  async serverSpan(path: string): Promise<ReceivedSpan> {
    const ofPath = (s: ReceivedSpan) =>
      s.kind === SERVER && s.attributes["url.path"] === path;
    const spans = await this.receiver.waitForSpans(
      (all) => all.some(ofPath),
      `the span of ${path}`,
    );
    return spans.find(ofPath)!;
  }

  async close(): Promise<void> {
    await Promise.all(this.#started.map((s) => s.stop()));
    await this.receiver.close();
  }
}
