/**
 * The layering of src/ (.dependency-cruiser.cjs): the real tree has no violation, and the rules
 * do catch a wrong import (checked on a small tree written for the purpose).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");
const DEPCRUISE = join(ROOT, "node_modules/.bin/depcruise");

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function violations(cwd: string): Violation[] {
  let out: string;
  try {
    out = execFileSync(DEPCRUISE, ["src", "--config", CONFIG, "--output-type", "json"], {
      cwd,
      encoding: "utf8",
    });
  } catch (error) {
    // depcruise exits non-zero when it finds violations; its report is still on stdout.
    out = (error as { stdout: string }).stdout;
  }
  const report = JSON.parse(out) as { summary: { violations: Violation[] } };
  return report.summary.violations;
}

describe("layering", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("src/ has no import against the layers", { timeout: 60_000 }, () => {
    expect(violations(ROOT).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it("a wrong import is caught", { timeout: 60_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "layers-"));
    dirs.push(dir);
    const files: Record<string, string> = {
      "src/milter/codec.ts": 'import { x } from "../common/units.js";\nexport const y = x;\n',
      "src/common/units.ts": "export const x = 1;\n",
      "src/config/load.ts": 'import { z } from "../dsl/compile.js";\nexport const w = z;\n',
      "src/dsl/compile.ts": 'import { w } from "../config/load.js";\nexport const z = 1 + w;\n',
      "src/sources/list.ts": 'import { main } from "../cli/main.js";\nexport const l = main;\n',
      "src/cli/main.ts": "export const main = 1;\n",
      "src/cli/serve.ts": 'import { s } from "../lsp/server.js";\nexport const t = s;\n',
      "src/lsp/server.ts": 'import { r } from "../engine/service.js";\nexport const s = r;\n',
      "src/engine/service.ts": "export const r = 1;\n",
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "NodeNext" } }));
    const names = new Set(violations(dir).map((v) => `${v.rule.name} ${v.from}`));
    expect(names).toEqual(
      new Set([
        "milter-is-standalone src/milter/codec.ts",
        "config-imports-upward src/config/load.ts",
        "no-cycles src/config/load.ts",
        "sources-imports-upward src/sources/list.ts",
        "nothing-imports-cli src/sources/list.ts",
        "only-cli-lsp-imports-lsp src/cli/serve.ts",
        "lsp-uses-only-load-rules src/lsp/server.ts",
      ]),
    );
  });
});
