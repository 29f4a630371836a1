/**
 * Formatting, on request only: each text-form rule that parses without a mistake is printed back
 * by the rule printer (src/dsl/printer.ts), in the YAML style it was written in (a rule of several
 * statements becomes a `|` block, one statement per line). Rules with comments are left alone
 * (the printer drops them), as is everything when the result would not read back as the same rules.
 */
import { type Diagnostic, SourceFile } from "../common/diagnostics.js";
import { STAGES, type Stage } from "../common/stages.js";
import type { Rule } from "../dsl/ast.js";
import { parseRuleText } from "../dsl/parser.js";
import { printRule } from "../dsl/printer.js";
import { type RulePiece, RulesDocument } from "./document.js";

export interface TextEdit {
  start: number;
  end: number;
  newText: string;
}

/** The printed form of a text rule, or undefined when it must be left as written. */
export function printedRule(piece: RulePiece, path: string, text: string): string | undefined {
  if (piece.text.text.includes("#")) return undefined;
  const diagnostics: Diagnostic[] = [];
  const parsed = parseRuleText(piece.text, { file: new SourceFile(path, text), diagnostics });
  if (parsed === undefined || diagnostics.length > 0) return undefined;
  const stages: Rule["stages"] = [];
  for (const { word, span } of parsed.stages) {
    if (!(STAGES as readonly string[]).includes(word)) return undefined;
    stages.push({ stage: word as Stage, span });
  }
  const rule: Rule = {
    name: "",
    nameSpan: parsed.span,
    stages,
    statements: parsed.statements,
    shadow: parsed.shadow,
    span: parsed.span,
  };
  return printRule(rule);
}

function lineIndent(text: string, offset: number): number {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))?.[0].length ?? 0;
}

/** A rule of one statement on one line (`on rcpt: reject`); undefined for several statements. */
function onOneLine(printed: string): string | undefined {
  const lines = printed.split("\n");
  return lines.length === 2 ? `${lines[0]} ${(lines[1] ?? "").trim()}` : undefined;
}

/** The YAML for `printed` in place of the scalar of `piece`. */
function yamlFor(piece: RulePiece, printed: string, text: string): string {
  const node = piece.node;
  const single = onOneLine(printed);
  if (single === undefined || node?.type === "BLOCK_LITERAL" || node?.type === "BLOCK_FOLDED") {
    const indent = " ".repeat(lineIndent(text, piece.from) + 2);
    const original = text.slice(piece.from, piece.to);
    const lines = printed.split("\n").map((line) => indent + line);
    return `|\n${lines.join("\n")}${original.endsWith("\n") ? "\n" : ""}`;
  }
  if (node?.type === "QUOTE_SINGLE") return `'${single.replace(/'/g, "''")}'`;
  return JSON.stringify(single);
}

function apply(text: string, edits: readonly TextEdit[]): string {
  let out = text;
  for (const edit of [...edits].sort((a, b) => b.start - a.start))
    out = out.slice(0, edit.start) + edit.newText + out.slice(edit.end);
  return out;
}

/** The edits formatting `text` makes; none when anything would not read back the same. */
export function formatRules(path: string, text: string): TextEdit[] {
  const doc = new RulesDocument(text);
  const edits: TextEdit[] = [];
  const expected: (string | undefined)[] = [];
  for (const piece of doc.pieces) {
    const printed =
      piece.node !== undefined && piece.role === "rule" ? printedRule(piece, path, text) : undefined;
    expected.push(printed);
    const written = piece.text.text.trim();
    if (printed === undefined || written === printed || written === onOneLine(printed)) continue;
    edits.push({ start: piece.from, end: piece.to, newText: yamlFor(piece, printed, text) });
  }
  if (edits.length === 0) return [];
  const after = new RulesDocument(apply(text, edits));
  if (after.pieces.length !== doc.pieces.length) return [];
  const same = after.pieces.every((piece, i) => {
    const want = expected[i];
    if (want === undefined) return piece.text.text === doc.pieces[i]?.text.text;
    return printedRule(piece, path, apply(text, edits)) === want;
  });
  return same ? edits : [];
}
