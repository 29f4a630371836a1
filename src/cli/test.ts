/**
 * `filterctl test FILE... [--junit OUT.xml] [--offline]`: runs test files, each a rules file, the
 * data its sources answer with (stubs), and cases with what the rules must answer. Prints
 * `ok NAME` / `FAIL NAME` (with what differed, expected against got) per case, then
 * `N passed, M failed`. Exit 0 all passed; 1 a case failed, or a test or rules file is invalid;
 * 2 a usage error or a test file that cannot be read.
 */
import { readFile, writeFile } from "node:fs/promises";
import { type Diagnostic, formatDiagnostic, hasErrors, type SourceFile } from "../common/diagnostics.js";
import { ConfigReadError, readConfigFile } from "../config/read.js";
import {
  type CheckedRules,
  checkRules,
  EXIT_INVALID,
  EXIT_OK,
  EXIT_USAGE,
  openSources,
} from "../engine/open-rules.js";
import { type CaseContent, type CaseResult, runCase } from "../engine/rules-test.js";
import { answersOffline, checkTestAgainstRules } from "../engine/rules-test-check.js";
import { readTestFile, type TestCase, type TestFile } from "../engine/rules-test-file.js";
import { StubLookups, type Stubs } from "../engine/rules-test-stubs.js";
import { createMemoryStore } from "../engine/state/memory.js";
import { stateLookups } from "../engine/state/open.js";
import { renderDiagnostic } from "./diagnostics-output.js";
import { parseMessage } from "./dry-run.js";
import { junitXml, type SuiteOutcome } from "./junit.js";

export interface TestOptions {
  junit?: string;
  offline: boolean;
}

function printDiagnostics(diagnostics: readonly Diagnostic[], file: SourceFile | undefined): void {
  for (const d of diagnostics) process.stderr.write(`${renderDiagnostic(d, file)}\n`);
}

/** A test file that could not run: its diagnostics are printed, the suite records them. */
function invalid(
  path: string,
  diagnostics: Diagnostic[],
  file?: SourceFile,
  kind: "invalid" | "unreadable" = "invalid",
): SuiteOutcome {
  printDiagnostics(diagnostics, file);
  return { path, cases: [], error: diagnostics.map(formatDiagnostic).join("\n"), kind };
}

/** The rules a test file names, checked; a problem is a diagnostic at its `rules:`. */
async function rulesOf(test: TestFile): Promise<CheckedRules | Diagnostic[]> {
  const checked = await checkRules(test.rules.value);
  if (checked.kind === "checked") return checked;
  if (checked.kind === "invalid") {
    printDiagnostics(checked.diagnostics, checked.file);
    const errors = checked.diagnostics.filter((d) => d.severity === "error").length;
    return [
      test.file.diagnostic(
        test.rules.offset,
        "error",
        `the rules file ${checked.file.path} is invalid (${errors} error${errors === 1 ? "" : "s"} above)`,
      ),
    ];
  }
  return [test.file.diagnostic(test.rules.offset, "error", `cannot use the rules file: ${checked.message}`)];
}

async function contentOf(testCase: TestCase): Promise<CaseContent | string> {
  if (testCase.message === undefined) return { headers: [], body: Buffer.alloc(0) };
  try {
    return parseMessage(await readFile(testCase.message.value));
  } catch (error) {
    return `cannot read message ${testCase.message.value}: ${(error as NodeJS.ErrnoException).code ?? error}`;
  }
}

/** Runs the cases, each with a state of its own (rate() and greylist() start from nothing). */
async function runCases(test: TestFile, rules: CheckedRules, lookups: StubLookups): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const testCase of test.cases) {
    const store = createMemoryStore();
    lookups.state = stateLookups(store, rules.config.greylist, { record: true });
    const content = await contentOf(testCase);
    const result =
      typeof content === "string"
        ? { name: testCase.name, ok: false, failures: [content], ms: 0 }
        : await runCase(rules.ruleset, lookups, testCase, content);
    await store.close();
    process.stdout.write(`${result.ok ? "ok" : "FAIL"} ${result.name}\n`);
    for (const failure of result.failures) process.stdout.write(`  ${failure}\n`);
    results.push(result);
  }
  return results;
}

/** Opens what the stubs do not answer (nothing but lists when offline) and runs the cases. */
async function runWithSources(
  test: TestFile,
  rules: CheckedRules,
  stubs: Stubs,
  offline: boolean,
): Promise<SuiteOutcome> {
  const path = test.file.path;
  const opened = await openSources(rules, {
    only: (source) => !stubs.has(source.name) && (!offline || answersOffline(source)),
  });
  if (opened.kind !== "opened") {
    const message = opened.kind === "sources" ? opened.message : "cannot open the sources";
    return invalid(path, [test.file.diagnostic(test.rules.offset, "error", message)], test.file);
  }
  try {
    // Live DNSBLs are off until a first probe round: run it, as dry-run does.
    if (!offline) await opened.registry.probeDnsbls();
    const opens = offline ? new Set(opened.registry.configs().map((s) => s.name)) : undefined;
    const lookups = new StubLookups(stubs, opened.registry, rules.config.defaults.localPart, opens);
    return { path, cases: await runCases(test, rules, lookups) };
  } finally {
    await opened.registry.close();
  }
}

async function runFile(path: string, offline: boolean): Promise<SuiteOutcome> {
  let file: SourceFile;
  try {
    file = await readConfigFile(path);
  } catch (error) {
    if (!(error instanceof ConfigReadError)) throw error;
    process.stderr.write(`filterctl: ${error.message}\n`);
    return { path, cases: [], error: error.message, kind: "unreadable" };
  }
  const { test, diagnostics } = readTestFile(file);
  if (test === undefined) return invalid(path, diagnostics, file);
  const rules = await rulesOf(test);
  if (Array.isArray(rules)) return invalid(path, rules, file);
  const checked = checkTestAgainstRules(test, rules.config, rules.ruleset, offline);
  if (hasErrors(checked.diagnostics)) return invalid(path, checked.diagnostics, file);
  return runWithSources(test, rules, checked.stubs, offline);
}

export async function testCommand(files: string[], options: TestOptions): Promise<number> {
  const suites: SuiteOutcome[] = [];
  for (const path of files) {
    if (files.length > 1) process.stdout.write(`# ${path}\n`);
    suites.push(await runFile(path, options.offline));
  }
  const cases = suites.flatMap((s) => s.cases);
  const passed = cases.filter((c) => c.ok).length;
  process.stdout.write(`${passed} passed, ${cases.length - passed} failed\n`);
  if (options.junit !== undefined) {
    try {
      await writeFile(options.junit, junitXml(suites));
    } catch (error) {
      process.stderr.write(
        `filterctl: cannot write --junit ${options.junit}: ${(error as NodeJS.ErrnoException).code ?? error}\n`,
      );
      return EXIT_USAGE;
    }
  }
  if (suites.some((s) => s.kind === "unreadable")) return EXIT_USAGE;
  return suites.some((s) => s.error !== undefined) || passed < cases.length ? EXIT_INVALID : EXIT_OK;
}
