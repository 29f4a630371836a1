/**
 * Idle memory: the clients a configuration may not use (LDAP, HTTP, Redis) are loaded when a
 * source or store of theirs is opened, never with the program; prom-client when metrics are
 * served; Chevrotain when a rule needs the grammar's parser. A static import of one of them (or of the module that wraps it) anywhere else would load
 * it for every configuration.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(import.meta.dirname, "../../src");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

/** Value imports (not `import type`) of each file: the module specifiers. */
function valueImports(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+"([^"]+)";/gms))
    found.push(match[1] as string);
  return found;
}

/** A heavy package, and the one module allowed to import it (itself loaded lazily). */
const LAZY = [
  { pkg: "ldapts", wrapper: "sources/ldap.ts" },
  { pkg: "undici", wrapper: "sources/http.ts" },
  { pkg: "ioredis", wrapper: undefined },
  // 13 MB of RSS: loaded by `serve --metrics` (and a primary's /metrics) only.
  { pkg: "prom-client", wrapper: "engine/metrics.ts" },
  // 10 MB: the schema is validated by the code `npm run schema` generates with it
  // (schema/rules.validate.cjs); config/schema.ts requires ajv only for a schema it was not
  // generated from.
  { pkg: "ajv", wrapper: "config/schema-standalone.ts" },
];

describe("lazily loaded clients", () => {
  const sources = files(SRC).map((path) => ({
    path: relative(SRC, path),
    imports: valueImports(readFileSync(path, "utf8")),
  }));

  it("ldapts, undici, ioredis, prom-client and ajv are imported statically only by their wrapper (ioredis by none: required on use)", () => {
    const offenders = sources.flatMap(({ path, imports }) =>
      LAZY.filter(({ pkg, wrapper }) => imports.includes(pkg) && path !== wrapper).map(
        ({ pkg }) => `${path}: ${pkg}`,
      ),
    );
    expect(offenders).toEqual([]);
  });

  it("no module imports a wrapper statically (sources/types import it on the first source of its type)", () => {
    const wrappers = LAZY.flatMap(({ wrapper }) => (wrapper === undefined ? [] : [wrapper]));
    const offenders = sources.flatMap(({ path, imports }) =>
      imports
        .filter(
          (spec) =>
            spec.startsWith(".") && wrappers.includes(join(dirname(path), spec).replace(/\.js$/, ".ts")),
        )
        .map((spec) => `${path}: ${spec}`),
    );
    expect(offenders).toEqual([]);
  });
});

describe("Chevrotain from its bundle", () => {
  it("no module imports Chevrotain's values from the package entry (it loads lodash-es: dsl/chevrotain.ts loads the one-file bundle)", () => {
    const offenders = files(SRC)
      .filter((path) => valueImports(readFileSync(path, "utf8")).includes("chevrotain"))
      .map((path) => relative(SRC, path));
    expect(offenders).toEqual([]);
  });
});

describe("Chevrotain loaded when a rule needs its parser", () => {
  const CHEVROTAIN_SIDE = ["dsl/chevrotain.ts", "dsl/tokens.ts", "dsl/chevrotain-parser.ts"];

  it("Chevrotain, its token types and the grammar's parser are imported only by each other and by the editor's features (lsp/)", () => {
    const offenders = files(SRC).flatMap((path) => {
      const from = relative(SRC, path);
      if (CHEVROTAIN_SIDE.includes(from) || from.startsWith("lsp/")) return [];
      return valueImports(readFileSync(path, "utf8"))
        .filter((spec) => CHEVROTAIN_SIDE.includes(join(dirname(from), spec).replace(/\.js$/, ".ts")))
        .map((spec) => `${from}: ${spec}`);
    });
    expect(offenders).toEqual([]);
  });

  it("the built validate loads it for a rule the hand-written parser gives up on, and only then", () => {
    const dist = join(SRC, "../dist");
    const script = `
      const { loadRules } = await import(${JSON.stringify(join(dist, "engine/load-rules.js"))});
      const { grammarLoaded } = await import(${JSON.stringify(join(dist, "dsl/parser.js"))});
      const valid = await loadRules(${JSON.stringify(join(SRC, "../examples/rules.yaml"))});
      const before = grammarLoaded();
      const broken = await loadRules(process.argv[1]);
      console.log(JSON.stringify({ valid: valid.diagnostics.length, before, after: grammarLoaded(), broken: broken.diagnostics.map((d) => d.message) }));
    `;
    const dir = mkdtempSync(join(tmpdir(), "filterctl-lazy-"));
    const broken = join(dir, "rules.yaml");
    writeFileSync(broken, 'rules:\n  - "on rcpt: if rcpt == then reject"\n');
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script, broken], {
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toEqual({
      valid: 0,
      before: false,
      after: true,
      broken: ["expected a value, found 'then'"],
    });
  });
});

describe("commands loaded when they run", () => {
  it("cli/main.ts imports no command's module statically: serve does not load dry-run, replay, test, lookup, the man page…", () => {
    const text = readFileSync(join(SRC, "cli/main.ts"), "utf8");
    const own = valueImports(text).filter((spec) => spec.startsWith("./"));
    // The logger is made before the command's module is loaded (serve's errors are logged with it).
    expect(own).toEqual(["./logging.js"]);
    for (const command of [
      "serve",
      "validate",
      "dry-run",
      "dnsbl-status",
      "lookup",
      "test",
      "replay",
      "quota-server",
      "lsp",
      "man",
    ])
      expect(text, command).toContain(`await import("./${command}.js")`);
  });
});

describe("serve's own modules and Node's", () => {
  const all = files(SRC).map((path) => ({
    path: relative(SRC, path),
    imports: valueImports(readFileSync(path, "utf8")),
  }));

  it("node:crypto is asked for where it is used (process.getBuiltinModule), never imported: serve would hold it for a hash it rarely takes", () => {
    expect(all.filter(({ imports }) => imports.includes("node:crypto")).map(({ path }) => path)).toEqual([]);
  });

  it("the --workers primary (serve-workers.ts, with node:http) is imported by serve only when there are workers", () => {
    const offenders = all
      .filter(({ imports }) => imports.includes("./serve-workers.js"))
      .map(({ path }) => path);
    expect(offenders).toEqual([]);
  });
});
