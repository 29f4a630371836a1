/**
 * JUnit XML for `filterctl test --junit`: the report format CI systems (GitLab, Jenkins, GitHub
 * actions' test reporters) read. One <testsuite> per test file, one <testcase> per case; a case
 * that failed has a <failure> whose message is its first difference and whose text holds them
 * all; a test file that could not run is a suite with one <error>.
 */
import type { CaseResult } from "../engine/rules-test.js";

export interface SuiteOutcome {
  path: string;
  cases: CaseResult[];
  /** Why the file could not run (its diagnostics). */
  error?: string;
  kind?: "invalid" | "unreadable";
}

/** Text for an XML attribute or element: markup escaped, and characters XML 1.0 forbids dropped. */
export function xmlText(text: string): string {
  return (
    text
      // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters XML forbids
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
  );
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function testcase(suite: string, c: CaseResult): string {
  const open = `    <testcase name="${xmlText(c.name)}" classname="${xmlText(suite)}" time="${seconds(c.ms)}"`;
  if (c.ok) return `${open}/>`;
  const message = xmlText(c.failures[0] ?? "failed");
  return `${open}>\n      <failure message="${message}" type="expectation">${xmlText(c.failures.join("\n"))}</failure>\n    </testcase>`;
}

function testsuite(suite: SuiteOutcome): string[] {
  const failures = suite.cases.filter((c) => !c.ok).length;
  const errors = suite.error === undefined ? 0 : 1;
  const tests = suite.cases.length + errors;
  const time = seconds(suite.cases.reduce((sum, c) => sum + c.ms, 0));
  const name = xmlText(suite.path);
  const lines = [
    `  <testsuite name="${name}" tests="${tests}" failures="${failures}" errors="${errors}" time="${time}">`,
  ];
  for (const c of suite.cases) lines.push(testcase(suite.path, c));
  if (suite.error !== undefined) {
    const first = xmlText(suite.error.split("\n")[0] ?? "");
    lines.push(`    <testcase name="${name}" classname="${name}" time="0.000">`);
    lines.push(
      `      <error message="${first}" type="${suite.kind ?? "invalid"}">${xmlText(suite.error)}</error>`,
    );
    lines.push("    </testcase>");
  }
  lines.push("  </testsuite>");
  return lines;
}

export function junitXml(suites: readonly SuiteOutcome[]): string {
  const cases = suites.flatMap((s) => s.cases);
  const failures = cases.filter((c) => !c.ok).length;
  const errors = suites.filter((s) => s.error !== undefined).length;
  const time = seconds(cases.reduce((sum, c) => sum + c.ms, 0));
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="filterctl test" tests="${cases.length + errors}" failures="${failures}" errors="${errors}" time="${time}">`,
    ...suites.flatMap(testsuite),
    "</testsuites>",
  ];
  return `${lines.join("\n")}\n`;
}
