/**
 * Broken rules files, end to end: each file in broken/ says what it tests (`# case:`) and
 * exactly which diagnostics `filterctl validate` must print for it (`# expect:` lines, in the
 * order validate sorts them: line, column, errors first):
 *
 *   # expect: 12:17 error: unknown source 'directry' (did you mean 'directory'?)
 *
 * The real CLI runs on every file (`validate --config FILE --json`, and the human form): the exit
 * code must be 1 when an error is expected and 0 when only warnings are, and the diagnostics must
 * match to the character: line, column, severity, message and hint.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { BIN } from "../cli/run.js";

const run = promisify(execFile);
const ROOT = new URL("../../", import.meta.url).pathname;
const DIR = new URL("./broken/", import.meta.url).pathname;

interface JsonDiagnostic {
  file: string;
  line: number;
  column: number;
  severity: "error" | "warning";
  message: string;
  hint?: string;
}

/** Runs `filterctl validate` from the repository root; answers exit code and output. */
async function validate(
  file: string,
  json: boolean,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [BIN, "validate", "--config", file, ...(json ? ["--json"] : [])];
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd: ROOT, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code !== "number") throw error;
    return { code: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

/** `12:17 error: message (hint)`, as the expectations are written. */
function expectation(d: JsonDiagnostic): string {
  return `${d.line}:${d.column} ${d.severity}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`;
}

function expectationsOf(text: string): { title: string; expected: string[] } {
  const lines = text.split(/\r?\n/);
  const title = lines.find((l) => l.startsWith("# case: "))?.slice("# case: ".length) ?? "";
  const expected = lines.filter((l) => l.startsWith("# expect: ")).map((l) => l.slice("# expect: ".length));
  return { title, expected };
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

describe("broken rules files", () => {
  it("has at least 35 cases, each with a title and its expected diagnostics", () => {
    expect(files.length).toBeGreaterThanOrEqual(35);
    for (const file of files) {
      const { title, expected } = expectationsOf(readFileSync(join(DIR, file), "utf8"));
      expect(title, file).not.toBe("");
      expect(expected.length, file).toBeGreaterThan(0);
    }
  });

  it.concurrent.each(files)("%s", async (name) => {
    const path = relative(ROOT, join(DIR, name));
    const { expected } = expectationsOf(readFileSync(join(DIR, name), "utf8"));
    const invalid = expected.some((e) => /^\d+:\d+ error: /.test(e));

    const result = await validate(path, true);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(invalid ? 1 : 0);

    const report = JSON.parse(result.stdout) as { ok: boolean; diagnostics: JsonDiagnostic[] };
    expect(Object.keys(report).sort()).toEqual(["diagnostics", "ok"]);
    expect(report.ok).toBe(!invalid);
    for (const d of report.diagnostics) {
      expect(d.file).toBe(path);
      expect(
        Object.keys(d).every((k) => ["file", "line", "column", "severity", "message", "hint"].includes(k)),
      ).toBe(true);
    }
    expect(report.diagnostics.map(expectation)).toEqual(expected);

    // The human form says the same, as `file:line:col: severity: message (hint)` lines.
    const human = await validate(path, false);
    expect(human.code).toBe(result.code);
    const heads = human.stdout.split("\n").filter((l) => l.startsWith(`${path}:`) && /:\d+:\d+: /.test(l));
    expect(heads).toEqual(
      report.diagnostics.map(
        (d) => `${path}:${d.line}:${d.column}: ${d.severity}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`,
      ),
    );
  });
});

describe("rules at and beyond the size limits", () => {
  const tmp = mkdtempSync(join(tmpdir(), "filterctl-limits-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
  };

  it("refuses a rule over 64 KiB at the rule, quickly", async () => {
    const path = write(
      "too-long.yaml",
      `rules:\n  - on rcpt: if rcpt == "${"x".repeat(66_000)}" then reject\n`,
    );
    const started = performance.now();
    const result = await validate(path, true);
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).diagnostics.map(expectation)).toEqual([
      "2:5 error: rule is 66034 characters long; the limit is 65536",
    ]);
    // The human form shows a window of the line, not 66 000 characters of it.
    const human = await validate(path, false);
    expect(human.stdout.split("\n").every((l) => l.length < 300)).toBe(true);
    expect(human.stdout).toContain(`${path}:2:5: error: rule is 66034 characters long`);
  });

  it("refuses a rule of more than 10000 tokens, quickly", async () => {
    const terms = Array.from({ length: 3000 }, () => 'helo == "x"').join(" or ");
    const path = write("too-many-tokens.yaml", `rules:\n  - on helo: if ${terms} then reject\n`);
    const started = performance.now();
    const result = await validate(path, true);
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).diagnostics.map(expectation)).toEqual([
      "2:5 error: rule has 12005 tokens; the limit is 10000",
    ]);
  });

  it("checks, compiles and runs the longest chain of conditions the limits allow, without overflowing the stack", async () => {
    // 2490 terms of 4 tokens: just under the token limit, a left-leaning tree 2490 levels deep.
    const terms = Array.from({ length: 2490 }, (_, i) => `helo == "h${i}"`).join(" or ");
    const path = write(
      "long-chain.yaml",
      `rules:\n  - name: long\n    on: helo\n    if: ${terms}\n    then: reject\n`,
    );
    const result = await validate(path, true);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({ ok: true, diagnostics: [] });
    expect(result.code).toBe(0);

    const dryRun = async (helo: string) => {
      const args = [BIN, "dry-run", "--config", path, "--client-ip", "192.0.2.1", "--helo", helo];
      const { stdout } = await run(process.execPath, [
        ...args,
        "--from",
        "a@example.org",
        "--rcpt",
        "b@example.org",
        "--json",
      ]);
      return JSON.parse(stdout) as { result: { decision: string; reply: string | null } };
    };
    expect((await dryRun("h2489")).result).toEqual({
      decision: "reject",
      reply: "550 5.7.1 Rejected by policy",
    });
    expect((await dryRun("other")).result).toEqual({ decision: "accept", reply: null });
  });

  it("a long 'and' chain also runs to its end", async () => {
    const terms = Array.from({ length: 2000 }, (_, i) => `helo != "h${i}"`).join(" and ");
    const path = write(
      "long-and.yaml",
      `rules:\n  - "on helo: if ${terms.replace(/"/g, '\\"')} then reject"\n`,
    );
    const { stdout } = await run(process.execPath, [
      BIN,
      "dry-run",
      "--config",
      path,
      "--client-ip",
      "192.0.2.1",
      "--helo",
      "other",
      "--from",
      "a@example.org",
      "--rcpt",
      "b@example.org",
      "--json",
    ]);
    expect(JSON.parse(stdout).result.decision).toBe("reject");
  });
});
