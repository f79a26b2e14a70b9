// Type-checks everything (tests included), lints with type-aware rules and
// checks formatting.
import { spawnSync } from "node:child_process";

const steps = [
  ["npx", ["tsc", "-p", "tsconfig.lint.json"]],
  ["npx", ["eslint", "."]],
  ["npx", ["prettier", "--check", "."]],
];
for (const [cmd, args] of steps) {
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
