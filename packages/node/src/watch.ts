// Keeps this process's watch list (core/watch.ts) in step with its source:
// the exporter reads the document every few seconds and posts it here
// when it changed; a document that does not validate, or a source that
// cannot be reached, leaves the last good list in force (its entries still
// expire on time) with one warning until it recovers. A refused document
// is read again every second, since time alone can make it valid: entries
// that expired no longer count against the limit on customers, and the
// source posts nothing new while it serves the same text.
import {
  diag,
  parseWatchDocument,
  printableUrl,
  watchList,
  type WatchDocumentResult,
} from "@threadline/core";
import type { WatchSettings } from "./config.ts";
import type { ExportPipeline } from "./export/pipeline.ts";

function kept(): string {
  const n = watchList.customers;
  return `keeping the last good list (${n} customer${n === 1 ? "" : "s"} watched)`;
}

/** Starts following the watch list; the returned function stops and clears it. */
export function followWatchList(
  pipeline: ExportPipeline,
  settings: WatchSettings,
): () => void {
  const where = printableUrl(settings.url);
  let failing = false;
  /** Whether the derived source refused this service (401, 403) since it was last read. */
  let denied = false;
  /** The source's newest text, while it is refused. */
  let refused: string | undefined;
  const apply = (text: string): WatchDocumentResult => {
    const doc = parseWatchDocument(text);
    if (!doc.ok) return doc;
    refused = undefined;
    watchList.replace(doc.entries);
    diag.debug(
      `watch list: ${[...new Set(doc.entries.map((e) => e.customer))].join(", ") || "nobody"}`,
    );
    return doc;
  };
  pipeline.startWatchSource(
    {
      url: settings.url,
      intervalMs: settings.intervalMs,
      headers: settings.headers,
      slowOnNotFound: settings.quiet,
    },
    (msg) => {
      if (msg.error !== undefined) {
        // A derived source (threadline dev next to the OTLP endpoint) is
        // often absent; one that refuses this service is there, and would
        // leave a customer watched in it unwatched here without a word.
        const refusal = /^HTTP 40[13]$/.test(msg.error);
        if (settings.quiet && refusal && !denied)
          diag.warn(
            `the watch list at ${where} was refused (${msg.error}): give the receiver's token as the OTLP exporter's (OTEL_EXPORTER_OTLP_HEADERS, or ?token= in its endpoint); ${kept()}`,
          );
        denied ||= refusal;
        if (settings.quiet)
          diag.debug(`no watch list at ${where}: ${msg.error}`);
        else if (!failing)
          diag.warn(
            `could not read the watch list at ${where}: ${msg.error}; ${kept()}`,
          );
        failing = true;
        return;
      }
      if (failing && (!settings.quiet || denied))
        diag.info(`the watch list at ${where} is readable again`);
      failing = false;
      denied = false;
      if (msg.text === undefined) return;
      const doc = apply(msg.text);
      if (doc.ok) return;
      refused = msg.text;
      diag.warn(
        `the watch list at ${where} is not valid: ${doc.problem}; ${kept()}`,
      );
    },
  );
  // Expired entries turn the checks off again without waiting for the source.
  const timer = setInterval(() => {
    watchList.refresh();
    if (refused !== undefined && apply(refused).ok)
      diag.info(`the watch list at ${where} is valid now`);
  }, 1000);
  timer.unref();
  return () => {
    clearInterval(timer);
    watchList.replace([]);
  };
}
