/**
 * `filterctl validate` for an editor's unsaved text: the same loader (engine/load-rules.ts), fed
 * the buffer instead of the file, so the messages and severities are validate's own. Validate
 * gives each diagnostic a line and column; the editor needs a range, so the range runs over what
 * starts there (a word, a quoted text, a placeholder), never past the line.
 */
import { type Diagnostic, SourceFile } from "../common/diagnostics.js";
import { loadRulesText } from "../engine/load-rules.js";

export interface EditorDiagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  /** 1 error, 2 warning (LSP's DiagnosticSeverity). */
  severity: 1 | 2;
  /** validate's message with its hint, as validate prints them: `unknown action 'rejct' (did you mean 'reject'?)`. */
  message: string;
  source: "filterctl";
  /** The hint alone, for clients that show related information. */
  hint?: string;
}

/** The diagnostics `validate` prints for `text` as if it were the file at `path`. */
export async function validateText(path: string, text: string): Promise<Diagnostic[]> {
  const loaded = await loadRulesText(new SourceFile(path, text));
  return loaded.diagnostics;
}

const WORD = /[A-Za-z0-9_.\-@]/;

/** How far what starts at `column` (0-based) of `line` runs. */
export function extentAt(line: string, column: number): number {
  const first = line[column];
  if (first === undefined) return column;
  if (first === '"' || first === "'") {
    for (let i = column + 1; i < line.length; i++) {
      if (line[i] === "\\" && first === '"') i++;
      else if (line[i] === first) return i + 1;
    }
    return line.length;
  }
  if (first === "{") {
    const close = line.indexOf("}", column);
    return close === -1 ? line.length : close + 1;
  }
  if (!WORD.test(first)) return column + 1;
  let end = column;
  while (end < line.length && WORD.test(line[end] as string)) end++;
  // A dotted word's trailing dot is punctuation (`... then rejct.`), not part of it.
  while (end > column + 1 && line[end - 1] === ".") end--;
  return end;
}

export function toEditor(diagnostic: Diagnostic, lines: readonly string[]): EditorDiagnostic {
  const line = Math.max(0, diagnostic.line - 1);
  const character = Math.max(0, diagnostic.column - 1);
  const text = (lines[line] ?? "").replace(/\r$/, "");
  const end = Math.max(character, extentAt(text, character));
  const result: EditorDiagnostic = {
    range: { start: { line, character }, end: { line, character: end } },
    severity: diagnostic.severity === "error" ? 1 : 2,
    message: diagnostic.hint ? `${diagnostic.message} (${diagnostic.hint})` : diagnostic.message,
    source: "filterctl",
  };
  if (diagnostic.hint) result.hint = diagnostic.hint;
  return result;
}
