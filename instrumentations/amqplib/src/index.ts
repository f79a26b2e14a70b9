export {
  AmqplibInstrumentation,
  withMessageContext,
} from "./amqplib-instrumentation.ts";
export type {
  AmqplibInstrumentationConfig,
  AmqpMessage,
} from "./amqplib-instrumentation.ts";
