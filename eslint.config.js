// Type-aware rules that matter for an SDK running inside other people's
// services: no floating promises (an unhandled rejection can kill the host),
// type-only imports (nothing loaded by accident), no `any` leaking out, and
// explicit export lists.
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "packages/*/lib/**",
      "instrumentations/*/lib/**",
      "**/node_modules/**",
      "**/*.js",
      "**/*.mjs",
      "**/*.cjs",
      "test-artifacts/**",
    ],
  },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        project: "./tsconfig.lint.json",
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's describe/it return promises the runner awaits itself.
          allowForKnownSafeCalls: [
            {
              from: "package",
              package: "node:test",
              name: ["describe", "it", "test", "suite"],
            },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": [
        "error",
        { checksVoidReturn: false },
      ],
      "@typescript-eslint/consistent-type-imports": [
        "error",
        { fixStyle: "inline-type-imports" },
      ],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "no-restricted-syntax": [
        "error",
        { selector: "ExportAllDeclaration", message: "List exports by name." },
      ],
    },
  },
  {
    // What runs inside the application takes these builtins with
    // process.getBuiltinModule(): an ESM import builds the module's
    // namespace, which reads its lazy getters and loads what they guard
    // (node:http: undici and http2, about 13 MB; node:fs: fs/promises;
    // node:util: parseArgs, diff and more).
    files: [
      "packages/{core,node,otlp}/src/**/*.ts",
      "instrumentations/*/src/**/*.ts",
    ],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          paths: [
            "node:http",
            "node:https",
            "node:fs",
            "node:zlib",
            "node:fs/promises",
            "node:util",
          ].map((name) => ({
            name,
            allowTypeImports: true,
            message: `take ${name} with process.getBuiltinModule() (see eslint.config.js)`,
          })),
        },
      ],
    },
  },
);
