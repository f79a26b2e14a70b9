export {
  DEFAULT_REDACT_PATHS,
  PinoInstrumentation,
} from "./pino-instrumentation.ts";
export type { PinoInstrumentationConfig } from "./pino-instrumentation.ts";
