/**
 * A real editor as the client: Neovim (Debian's `neovim`, run headless) with its built-in LSP
 * client starts `filterctl lsp --stdio` on a copy of examples/rules.yaml with `rejct` in it, and
 * reports what it shows (test/fixtures/lsp/neovim-drive.lua).
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "lsp-nvim-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("neovim shows `rejct` underlined with did you mean 'reject'?, hovers, goes to a source", () => {
  cpSync(join(ROOT, "examples"), dir, { recursive: true });
  const file = join(dir, "rules.yaml");
  const text = readFileSync(file, "utf8").replace(
    'then: reject 550 5.7.1 "HELO',
    'then: rejct 550 5.7.1 "HELO',
  );
  writeFileSync(file, text);
  const out = join(dir, "out.json");
  const args = `_G.arg_bin='${join(ROOT, "bin/filterctl.js")}'; _G.arg_file='${file}'; _G.arg_out='${out}'`;
  execFileSync(
    "nvim",
    [
      "--headless",
      "--clean",
      "-u",
      "NONE",
      "--cmd",
      `lua ${args}`,
      "-c",
      `luafile ${join(ROOT, "test/fixtures/lsp/neovim-drive.lua")}`,
    ],
    {
      cwd: dir,
      timeout: 60_000,
      stdio: "ignore",
    },
  );
  const result = JSON.parse(readFileSync(out, "utf8")) as {
    diagnostics: { lnum: number; col: number; end_col: number; severity: number; message: string }[];
    hover: string;
    definition: { line: number; character: number };
    completion: string[];
  };
  const lines = text.split("\n");
  const lnum = lines.findIndex((l) => l.includes("rejct"));
  const col = (lines[lnum] as string).indexOf("rejct");
  expect(result.diagnostics).toEqual([
    { lnum, col, end_col: col + 5, severity: 1, message: "unknown action 'rejct' (did you mean 'reject'?)" },
  ]);
  expect(result.hover).toMatch(/^\*\*client\.ip\*\* \(ip\), known from `connect` on/);
  const key = lines.findIndex((l) => l.startsWith("  trusted_networks:"));
  expect(result.definition).toEqual({ line: key, character: 2 });
  expect(result.completion).toEqual(expect.arrayContaining(["reject", "tempfail", "accept"]));
});
