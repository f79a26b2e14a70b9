export { UndiciInstrumentation } from "./undici-instrumentation.ts";
export type { UndiciInstrumentationConfig } from "./undici-instrumentation.ts";
