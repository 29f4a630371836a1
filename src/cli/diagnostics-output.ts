/**
 * Printing diagnostics for a human: the `file:line:col: severity: message` line, then the
 * offending line of the file with a caret under the column.
 */
import type { Diagnostic, SourceFile } from "../dsl/diagnostics.js";
import { formatDiagnostic } from "../dsl/diagnostics.js";

export function renderDiagnostic(diagnostic: Diagnostic, file: SourceFile | undefined): string {
  const head = formatDiagnostic(diagnostic);
  if (file === undefined || diagnostic.file !== file.path) return head;
  const line = file.text.split("\n")[diagnostic.line - 1];
  if (line === undefined) return head;
  const number = String(diagnostic.line);
  const gutter = " ".repeat(number.length);
  const visible = line.replace(/\t/g, " ").replace(/\r$/, "");
  const caret = `${" ".repeat(Math.max(0, diagnostic.column - 1))}^`;
  return `${head}\n ${number} | ${visible}\n ${gutter} | ${caret}`;
}

export function summary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}
