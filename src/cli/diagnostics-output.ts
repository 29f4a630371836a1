/**
 * Printing diagnostics for a human: the `file:line:col: severity: message` line, then the
 * offending line of the file with a caret under the column.
 */
import type { Diagnostic, SourceFile } from "../common/diagnostics.js";
import { formatDiagnostic } from "../common/diagnostics.js";
import { exitCodeOf, type OpenFailure } from "../engine/open-rules.js";

export function renderDiagnostic(diagnostic: Diagnostic, file: SourceFile | undefined): string {
  const head = formatDiagnostic(diagnostic);
  if (file === undefined || diagnostic.file !== file.path) return head;
  const line = linesOf(file)[diagnostic.line - 1];
  if (line === undefined) return head;
  const number = String(diagnostic.line);
  const gutter = " ".repeat(number.length);
  let visible = line.replace(/\t/g, " ").replace(/\r$/, "");
  let column = Math.max(0, diagnostic.column - 1);
  // A rule of thousands of characters on one line would flood the terminal: show a window.
  if (visible.length > MAX_SHOWN) {
    const from = Math.max(0, Math.min(column - CONTEXT, visible.length - MAX_SHOWN));
    const to = Math.min(visible.length, from + MAX_SHOWN);
    visible = `${from > 0 ? "..." : ""}${visible.slice(from, to)}${to < visible.length ? "..." : ""}`;
    column = column - from + (from > 0 ? 3 : 0);
  }
  const caret = `${" ".repeat(column)}^`;
  return `${head}\n ${number} | ${visible}\n ${gutter} | ${caret}`;
}

/** Split once per file: splitting per diagnostic made a file with thousands of warnings quadratic. */
const splitFiles = new WeakMap<SourceFile, string[]>();

function linesOf(file: SourceFile): string[] {
  let lines = splitFiles.get(file);
  if (lines === undefined) {
    lines = file.text.split("\n");
    splitFiles.set(file, lines);
  }
  return lines;
}

/** Longest part of a line shown under a diagnostic, and how much of it comes before the column. */
const MAX_SHOWN = 120;
const CONTEXT = 60;

export function summary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}

/**
 * Prints why a rules file could not be opened (every diagnostic with its line, or the one
 * message) and answers the exit code of that kind of failure.
 */
export function reportOpenFailure(failure: OpenFailure): number {
  switch (failure.kind) {
    case "unreadable":
      process.stderr.write(`filterctl: ${failure.message}\n`);
      break;
    case "invalid":
      for (const d of failure.diagnostics) process.stderr.write(`${renderDiagnostic(d, failure.file)}\n`);
      process.stderr.write(`${failure.file.path}: invalid (${summary(failure.diagnostics)})\n`);
      break;
    case "sources":
      process.stderr.write(`filterctl: ${failure.message}\n`);
      break;
  }
  return exitCodeOf(failure);
}
