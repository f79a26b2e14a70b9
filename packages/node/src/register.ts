// `node --import @threadline/node/register app.js`, `node -r @threadline/node/register app.js`,
// or `import '@threadline/node/register'` as the application's first import:
// starts Threadline with settings from the environment, except in a
// package manager or the `threadline` command (see tool-process.ts), which
// NODE_OPTIONS loads it into too. init() called in code starts it anywhere.
import { isToolScript } from "./internal/tool-process.ts";
import { init } from "./sdk.ts";

if (!isToolScript(process.argv[1])) init();
