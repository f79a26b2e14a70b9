// `node --import @threadline/node/register app.js`, `node -r @threadline/node/register app.js`,
// or `import '@threadline/node/register'` as the application's first import:
// starts Threadline with settings from the environment.
import { init } from "./sdk.ts";

init();
