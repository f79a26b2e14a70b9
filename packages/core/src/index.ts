export {
  CUSTOMER_ID,
  CUSTOMER_KEY,
  MAX_CUSTOMER_ID_LENGTH,
  customerIdOf,
  getCustomerFromContext,
  getCustomerId,
  isValidCustomerId,
  setCustomerInContext,
  withCustomer,
  withoutCustomer,
} from "./customer.ts";
export {
  BAGGAGE_MAX_BYTES,
  BAGGAGE_MAX_HEADER_LENGTH,
  BAGGAGE_MAX_MEMBERS,
  isValidBaggageKey,
  parseBaggage,
  serializeBaggage,
} from "./baggage.ts";
export type { BaggageMember } from "./baggage.ts";
export {
  FLAG_RANDOM,
  FLAG_SAMPLED,
  TRACESTATE_MAX_LENGTH,
  TRACESTATE_MAX_MEMBERS,
  W3CTraceState,
  formatTraceparent,
  isPropagatable,
  isValidSpanId,
  isValidTraceId,
  isValidTracestateKey,
  isValidTracestateValue,
  parseTraceparent,
  parseTracestate,
} from "./trace-context.ts";
export type { Traceparent } from "./trace-context.ts";
export {
  BAGGAGE_FIELDS,
  BaggagePropagator,
  TRUSTED_CARRIER,
  trustedCarrierGetter,
  TraceContextPropagator,
  isTracingSuppressed,
  suppressTracing,
  untraced,
} from "./propagators.ts";
export { CompositePropagator } from "./composite-propagator.ts";
export {
  AddressMatcher,
  canonicalHost,
  EgressPolicy,
  InboundTrust,
} from "./trust.ts";
export type {
  EgressClass,
  EgressOptions,
  InboundTrustOptions,
  ThirdPartyRule,
} from "./trust.ts";
export {
  hookModule,
  lateLoadProblem,
  modulesLeftUnhooked,
  modulesLoadedPastHooks,
} from "./module-hooks.ts";
export type { LoadedModuleInfo, ModuleHook } from "./module-hooks.ts";
export { EMPTY_CONTEXT } from "./context.ts";
export { connectInEmptyContext, inCallerContext } from "./caller-context.ts";
export {
  health,
  HealthChecks,
  HealthRegistry,
  registerNumbered,
  worstStatus,
} from "./health.ts";
export type {
  ComponentHealth,
  HealthCheck,
  HealthResult,
  HealthStatus,
} from "./health.ts";
export { httpServerOutcomes } from "./http-server-outcomes.ts";
export type { HttpServerOutcomes } from "./http-server-outcomes.ts";
export {
  markUntraced,
  replaceMethod,
  UNTRACED_SERVER,
} from "./instrumentation.ts";
export { percentDecoded, printableUrl, takeUserInfo } from "./user-info.ts";
export { Diagnostics, diag } from "./diagnostics.ts";
export type { DiagLevel, DiagSink } from "./diagnostics.ts";
export { errorTypeOf, messageOf, ThreadlineError } from "./errors.ts";
export type { ThreadlineErrorCode } from "./errors.ts";
export { contextWithRouteHolder, setHttpRoute } from "./http-route.ts";
export type { RouteHolder } from "./http-route.ts";
export { REDACTED, redactQuery, redactUrl } from "./redact.ts";
export {
  absoluteFormTarget,
  finishClientCall,
  normalizeMethod,
  prepareHeaderWriter,
  recordClientError,
  recordClientIncomplete,
  recordClientResponse,
  recordProtocolVersion,
  recordRateLimitHeaders,
  copiedHeaderNames,
  GuardedHeaderNames,
  headerPairs,
  hostAndPort,
  judgeNamedHost,
  judgeRelay,
  judgeUntracedRequest,
  ownSymbolNamed,
  parseHostAndPort,
  sameHost,
  UNKNOWN_PROXY_VIA,
  relayingProxy,
  startClientSpan,
  withoutHeaderLines,
  blockKeeps,
} from "./http-common.ts";
export type {
  ClientCall,
  ClientEgress,
  ClientRequestInfo,
  ClientSpanStart,
  HeaderFields,
  HeaderWriter,
  HostAndPort,
  PreparedHeaderWriter,
} from "./http-common.ts";
export type { Instrumentation } from "./instrumentation.ts";
export { ALL_OWN_FIELDS, OwnField } from "./log-sink.ts";
export type { LogRecordSink } from "./log-sink.ts";
import * as semconv from "./semconv.ts";
export { semconv };
export {
  MAX_WATCHED,
  MAX_WATCH_MS,
  WATCH_BAGGAGE,
  WATCH_DEBUG,
  WATCH_KEY,
  WATCH_PATH,
  WATCH_TRACE,
  WatchList,
  formatWatchDocument,
  toWatchDocument,
  parseCarriedWatch,
  withoutBom,
  parseWatchDocument,
  parseWatchTime,
  parseWatchLevel,
  watchLevelName,
  watchLevelOf,
  watchList,
  watchOf,
  watchUntilProperty,
} from "./watch.ts";
export type {
  CarriedWatch,
  WatchDecision,
  WatchDocumentResult,
  WatchEntry,
  WatchLevel,
} from "./watch.ts";
export {
  AttributeSets,
  lazyInstruments,
  SECONDS_BUCKETS,
} from "./instruments.ts";
