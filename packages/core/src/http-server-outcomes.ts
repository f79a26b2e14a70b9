// Requests the HTTP server instrumentation finished, and those of them
// that failed, as two running tallies with no attributes: the alarms'
// error ratio reads them. The request-duration histogram cannot tell it:
// past its series limit, new attribute sets (one per route) land in an
// overflow series with no status code, whose failures would be counted
// as requests only. Its cost is an increment or two per request.

export interface HttpServerOutcomes {
  /** Requests finished since the process started, answered or not. */
  requests: number;
  /** Of them, those answered 5xx or ended with no status sent. */
  failed: number;
}

/** The process's one tally, shared by every copy of this package. */
export const httpServerOutcomes: HttpServerOutcomes = ((
  globalThis as Record<symbol, unknown>
)[Symbol.for("threadline.http-server-outcomes")] ??= {
  requests: 0,
  failed: 0,
}) as HttpServerOutcomes;
