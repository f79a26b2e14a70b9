export { PinoInstrumentation } from "./pino-instrumentation.ts";
export type { PinoInstrumentationConfig } from "./pino-instrumentation.ts";
