// node:sqlite, which the local store is built on, is experimental on Node
// 22 and says so on stderr each time it loads; the command relies on it
// knowingly, so that notice alone is not passed on. Installed before the
// program (and with it node:sqlite) is loaded.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === "string" ? warning : warning.message;
  const type =
    typeof rest[0] === "string"
      ? rest[0]
      : (rest[0] as { type?: unknown } | undefined)?.type;
  if (
    (type === "ExperimentalWarning" ||
      (warning as Error).name === "ExperimentalWarning") &&
    /^SQLite /.test(text)
  )
    return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

const { main } = await import("./main.ts");

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
