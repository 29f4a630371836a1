/**
 * Hover: the registry's documentation of the value, function or action under the cursor, a
 * source's type and settings as the file has them, and a source type's description on `type:`.
 */
import type { IToken } from "chevrotain";
import { ACTION_VERBS, type ActionVerb } from "../dsl/ast.js";
import { QUOTA_MEMBERS, REGISTRY } from "../dsl/registry.js";
import * as T from "../dsl/tokens.js";
import {
  type DeclaredSource,
  indexAt,
  lex,
  type RulePiece,
  type RulesDocument,
  tokenEnd,
  tokenRange,
} from "./document.js";
import { actionDoc, functionDoc, sourceType, sourceTypeDoc, valueDoc } from "./words.js";

export interface HoverAnswer {
  markdown: string;
  start: number;
  end: number;
}

export function sourceHover(source: DeclaredSource): string {
  const descriptor = sourceType(source.type);
  const head = descriptor ? sourceTypeDoc(descriptor) : `**${source.name}**: source of unknown type`;
  return `${head}\n\n\`\`\`yaml\n${source.settings}\n\`\`\``;
}

/** The dotted name (`client.ip`) the token at `i` is part of: its first and last token. */
function chainAround(tokens: IToken[], i: number): [number, number] {
  let first = i;
  while (
    first >= 2 &&
    tokens[first - 1]?.tokenType === T.Dot &&
    tokens[first - 2]?.tokenType === T.Identifier
  )
    first -= 2;
  let last = i;
  while (tokens[last + 1]?.tokenType === T.Dot && tokens[last + 2]?.tokenType === T.Identifier) last += 2;
  return [first, last];
}

function wordDoc(doc: RulesDocument, tokens: IToken[], i: number): string | undefined {
  const token = tokens[i] as IToken;
  const previous = tokens[i - 1];
  if (token.image === "add" || (token.image === "header" && previous?.image === "add"))
    return actionDoc("add header");
  if ((ACTION_VERBS as readonly string[]).includes(token.image) && tokens[i + 1]?.tokenType !== T.LParen)
    return actionDoc(token.image as ActionVerb);
  if (previous?.tokenType === T.Dot && tokens[i - 2]?.tokenType === T.RParen) {
    const type = QUOTA_MEMBERS[token.image];
    return type === undefined ? undefined : `**${token.image}** (${type}): a member of the quota status`;
  }
  const [first, last] = chainAround(tokens, i);
  const upTo = tokens.slice(first, i + 1).filter((t) => t.tokenType === T.Identifier);
  const whole = tokens.slice(first, last + 1).filter((t) => t.tokenType === T.Identifier);
  const head = whole[0]?.image ?? "";
  const source = doc.sources.get(head);
  if (source !== undefined) return sourceHover(source);
  const fn = REGISTRY.fn(token.image);
  if (fn !== undefined && first === i && tokens[i + 1]?.tokenType === T.LParen) return functionDoc(fn);
  const value =
    REGISTRY.value(whole.map((t) => t.image).join(".")) ?? REGISTRY.value(upTo.map((t) => t.image).join("."));
  return value === undefined ? undefined : valueDoc(value);
}

function pieceHover(doc: RulesDocument, piece: RulePiece, offset: number): HoverAnswer | undefined {
  const index = indexAt(piece, offset);
  const tokens = lex(piece.text.text);
  const i = tokens.findIndex((t) => t.startOffset <= index && index <= tokenEnd(t));
  const token = tokens[i];
  if (token === undefined || (token.tokenType !== T.Identifier && token.tokenType !== T.Over))
    return undefined;
  const markdown =
    token.tokenType === T.Over
      ? "**over**: true when the quota status is over its limit"
      : wordDoc(doc, tokens, i);
  if (markdown === undefined) return undefined;
  const [first, last] = chainAround(tokens, i);
  const start = tokenRange(piece, tokens[first] as IToken).start;
  return { markdown, start, end: tokenRange(piece, tokens[last] as IToken).end };
}

export function hoverAt(doc: RulesDocument, offset: number): HoverAnswer | undefined {
  const piece = doc.pieceAt(offset);
  if (piece !== undefined) return pieceHover(doc, piece, offset);
  for (const source of doc.sources.values()) {
    const [start, end] = source.typeRange ?? [-1, -1];
    if (offset >= start && offset <= end) {
      const descriptor = sourceType(source.type);
      return descriptor === undefined ? undefined : { markdown: sourceTypeDoc(descriptor), start, end };
    }
    if (offset >= source.keyStart && offset <= source.keyEnd)
      return { markdown: sourceHover(source), start: source.keyStart, end: source.keyEnd };
  }
  return undefined;
}
