/**
 * The layering of src/, checked on every `npm test` and `npm run lint`: a wrong import fails the
 * build. Layers, bottom to top; a folder may import its own layer and those below it.
 * src/milter/ is a standalone library: it imports nothing else of ours, anyone may import it.
 */
const LAYERS = ["common", "config", "runtime", "sources", "dsl", "engine", "lsp", "cli"];

const upward = LAYERS.map((layer, i) => ({
  name: `${layer}-imports-upward`,
  comment: `src/${layer}/ may import only ${LAYERS.slice(0, i + 1).join(", ")} (and milter)`,
  severity: "error",
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join("|") || "$^"})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: "milter-is-standalone",
      comment: "src/milter/ is the protocol library: it imports nothing else of ours",
      severity: "error",
      from: { path: "^src/milter/" },
      to: { path: "^src/", pathNot: "^src/milter/" },
    },
    {
      name: "nothing-imports-cli",
      comment: "src/cli/ is the top: only bin/ starts it",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "only-cli-lsp-imports-lsp",
      comment: "src/lsp/ (the language server) is started by `filterctl lsp` only",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(lsp/|cli/lsp\\.ts$)" },
      to: { path: "^src/lsp/" },
    },
    {
      name: "lsp-uses-only-load-rules",
      comment: "an editor must not open sources or serve: of src/engine/, src/lsp/ reads rules only",
      severity: "error",
      from: { path: "^src/lsp/" },
      to: { path: "^src/engine/", pathNot: "^src/engine/load-rules\\.ts$" },
    },
    {
      name: "no-cycles",
      comment: "no module imports itself through others",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "src-not-from-tests",
      comment: "the product never imports its tests or benchmarks",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^(node_modules|dist)/" },
  },
};
