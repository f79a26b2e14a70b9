export { PgInstrumentation } from "./pg-instrumentation.ts";
export type { PgInstrumentationConfig } from "./pg-instrumentation.ts";
export { sanitizeSql, summarizeSql } from "./sql.ts";
export type { SqlSummary } from "./sql.ts";
