export { HttpInstrumentation } from "./http-instrumentation.ts";
export type { HttpInstrumentationConfig } from "./http-instrumentation.ts";
