// Instruments for instrumentations' request metrics. They come from the
// global meter provider, which the SDK registers after it has enabled the
// instrumentations (and again after a restart), so they are made at first
// use and made again whenever the global provider is another one.
import { metrics, type Meter, type MeterProvider } from "@opentelemetry/api";

/** Returns a getter for the instruments `make` builds on the current global provider's meter `scope`. */
export function lazyInstruments<T>(
  scope: string,
  make: (meter: Meter) => T,
): () => T {
  let provider: MeterProvider | undefined;
  let made: T | undefined;
  return () => {
    const current = metrics.getMeterProvider();
    if (made === undefined || current !== provider) {
      provider = current;
      made = make(current.getMeter(scope));
    }
    return made;
  };
}
