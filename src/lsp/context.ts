/**
 * What fits at the cursor inside a piece of rule language, worked out from the text before it
 * (which is being typed, so it is lexed, not parsed: a half-written rule has no syntax tree).
 */
import type { IToken, TokenType } from "chevrotain";
import type { Stage } from "../common/stages.js";
import * as T from "../dsl/tokens.js";
import { lex, type RulePiece, tokenEnd } from "./document.js";

export type CursorContext =
  | { kind: "none" }
  /** `on ` or the `on:` of a structured rule: stages not listed yet. */
  | { kind: "stage"; listed: readonly string[] }
  /** Start of a text rule: `on`, `shadow on`. */
  | { kind: "rule-start" }
  /** After `then`/`else`, or a structured rule's `then:`/`else:`. */
  | { kind: "action" }
  /** After `on STAGES:`: a bare action or `if`. */
  | { kind: "statement" }
  /** After a complete action: `else` or another statement. */
  | { kind: "after-action" }
  /** Where a value fits. */
  | { kind: "expression"; afterValue: boolean }
  /** After `in` / `not in`: a table. */
  | { kind: "table" }
  /** `quota(rcpt, `: a quota source. */
  | { kind: "quota-source" }
  /** `NAME.`: what follows NAME (a value's rest, a source's tables, a quota member). */
  | { kind: "member"; head: string; call?: string }
  /** Inside `"…{`: a placeholder. */
  | { kind: "placeholder" };

export interface Cursor {
  context: CursorContext;
  /** The word being typed, dots included (`client.i`): what a completion replaces. */
  partial: string;
  stages: readonly Stage[];
}

const PARTIAL = /[A-Za-z0-9_\-.]*$/;
const VALUE_END = new Set<TokenType>([
  T.Identifier,
  T.RParen,
  T.RBracket,
  T.StringLiteral,
  T.NumberLiteral,
  T.SizeLiteral,
  T.DurationLiteral,
  T.IpAddress,
  T.Cidr,
  T.RegexLiteral,
  T.Over,
  T.True,
  T.False,
]);

export function cursorAt(piece: RulePiece, index: number): Cursor {
  const prefix = piece.text.text.slice(0, index);
  const all = lex(prefix);
  const last = all[all.length - 1];
  const stages = piece.stages;
  if (last !== undefined && tokenEnd(last) >= prefix.length) {
    if (last.tokenType === T.UnterminatedString) {
      const placeholder = /\{([A-Za-z0-9_.]*)$/.exec(last.image);
      return placeholder === null
        ? { context: { kind: "none" }, partial: "", stages }
        : { context: { kind: "placeholder" }, partial: placeholder[1] ?? "", stages };
    }
    if (last.tokenType === T.UnterminatedRegex || last.tokenType === T.StringLiteral)
      return { context: { kind: "none" }, partial: "", stages };
  }
  const partial = (PARTIAL.exec(prefix)?.[0] ?? "").replace(/^\d[\d.]*$/, "");
  const before = prefix.slice(0, prefix.length - partial.length);
  const tokens = lex(before);
  return { context: contextOf(piece, tokens, partial), partial, stages };
}

function contextOf(piece: RulePiece, tokens: IToken[], partial: string): CursorContext {
  if (piece.role === "on") return { kind: "stage", listed: tokens.map((t) => t.image) };
  if (piece.role === "then" || piece.role === "else")
    return tokens.length === 0 ? { kind: "action" } : { kind: "none" };
  if (piece.role === "rule") {
    const colon = tokens.findIndex((t) => t.tokenType === T.Colon);
    if (colon === -1) {
      const on = tokens.findIndex((t) => t.tokenType === T.On);
      if (on === -1) return { kind: "rule-start" };
      return { kind: "stage", listed: tokens.slice(on + 1).map((t) => t.image) };
    }
    return statementContext(tokens.slice(colon + 1), partial);
  }
  return expressionContext(tokens, partial);
}

/** Inside a text rule's statements: where the last `if`, `then` or `else` leaves the cursor. */
function statementContext(tokens: IToken[], partial: string): CursorContext {
  let keyword = -1;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const type = tokens[i]?.tokenType;
    if (type === T.If || type === T.Then || type === T.Else) {
      keyword = i;
      break;
    }
  }
  if (keyword === -1) return tokens.length === 0 ? { kind: "statement" } : { kind: "after-action" };
  const type = tokens[keyword]?.tokenType;
  const after = tokens.slice(keyword + 1);
  if (type === T.If) return expressionContext(after, partial);
  return after.length === 0 ? { kind: "action" } : { kind: "after-action" };
}

/** The innermost call whose `(` is still open, and whether a `,` came after it. */
function openCall(tokens: IToken[]): { callee?: string; comma: boolean } {
  let depth = 0;
  let comma = false;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const type = tokens[i]?.tokenType;
    if (type === T.RParen || type === T.RBracket) depth++;
    else if (type === T.LBracket && depth-- === 0) return { comma: false };
    else if (type === T.LParen) {
      if (depth-- > 0) continue;
      const callee = tokens[i - 1];
      return callee?.tokenType === T.Identifier ? { callee: callee.image, comma } : { comma };
    } else if (type === T.Comma && depth === 0) comma = true;
  }
  return { comma: false };
}

function expressionContext(tokens: IToken[], partial: string): CursorContext {
  const dot = partial.lastIndexOf(".");
  const last = tokens[tokens.length - 1];
  if (dot > 0) return { kind: "member", head: partial.slice(0, dot) };
  if (dot === 0 && last?.tokenType === T.RParen) {
    const call = callBefore(tokens);
    return call === undefined ? { kind: "none" } : { kind: "member", head: "", call };
  }
  if (last?.tokenType === T.In) return { kind: "table" };
  const open = openCall(tokens);
  if (open.callee === "quota" && open.comma && last?.tokenType === T.Comma) return { kind: "quota-source" };
  return { kind: "expression", afterValue: last !== undefined && VALUE_END.has(last.tokenType) };
}

/** The function whose call ends with the last token (`quota(rcpt)` → quota). */
function callBefore(tokens: IToken[]): string | undefined {
  let depth = 0;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const type = tokens[i]?.tokenType;
    if (type === T.RParen) depth++;
    else if (type === T.LParen && --depth === 0) {
      const callee = tokens[i - 1];
      return callee?.tokenType === T.Identifier ? callee.image : undefined;
    }
  }
  return undefined;
}
