/**
 * The nodes the rule parsers build, shared by both (parser.ts's Chevrotain parser, which reports
 * mistakes, and fast-parser.ts, which takes the valid rules first), so that each node has one
 * definition of its fields, their order and its span whichever parser made it.
 */
import { parseDuration, parseSize } from "../common/units.js";
import type { ArithmeticOp, CompareOp, Expr, Span, Template } from "./ast.js";
import { exactly } from "./ast.js";
import type { IToken } from "./chevrotain.js";
import * as T from "./token-kinds.js";

/** Token offsets (in the scalar's value) to file offsets. */
export type ToFile = (offset: number) => number;

/** Both parsers' entry points: a whole rule in text form, or one piece of the structured form. */
export type ParseEntry = "ruleText" | "conditionOnly" | "actionOnly" | "stagesOnly";

/** Reports a parse error at an offset of the text being parsed. */
export type ReportError = (offset: number, message: string, hint?: string) => void;

/** A raw action as written; `buildAction` checks its shape. */
export interface RawAction {
  words: IToken[];
  args: IToken[];
}
export type RawStatement =
  | { kind: "if"; ifToken: IToken; condition: Expr; then: RawAction; else?: RawAction }
  | { kind: "action"; action: RawAction };

export interface RawRule {
  shadow: boolean;
  stageTokens: IToken[];
  statements: RawStatement[];
  first: IToken;
}

/** What follows a predicate's subject, before its node is built. */
export type PredicateTail =
  | { kind: "compare"; op: CompareOp; right: Expr }
  | { kind: "matches"; regex: IToken }
  | { kind: "in"; negated: boolean; table: Expr }
  | { kind: "over"; over: IToken };

/** A `.name` or `[key]` after a value, before its node is built. */
export type Suffix = { kind: "member"; property: IToken } | { kind: "index"; key: Expr; close: IToken };

export function span(toFile: ToFile, first: IToken, last: IToken): Span {
  return { start: toFile(first.startOffset), end: toFile(last.startOffset + last.image.length) };
}

export function tokenSpan(toFile: ToFile, token: IToken): Span {
  return span(toFile, token, token);
}

export function join(left: Expr, right: Expr): Span {
  return { start: left.span.start, end: right.span.end };
}

export function chainNode(kind: "and" | "or", left: Expr, right: Expr): Expr {
  return { kind, left, right, span: join(left, right) };
}

export function notNode(toFile: ToFile, not: IToken, operand: Expr): Expr {
  return { kind: "not", operand, span: { start: toFile(not.startOffset), end: operand.span.end } };
}

export function arithNode(toFile: ToFile, op: IToken, left: Expr, right: Expr): Expr {
  const opSpan = tokenSpan(toFile, op);
  return { kind: "arith", op: op.image as ArithmeticOp, left, right, opSpan, span: join(left, right) };
}

export function predicateNode(toFile: ToFile, subject: Expr, tail: PredicateTail): Expr {
  switch (tail.kind) {
    case "compare":
      return {
        kind: "compare",
        op: tail.op,
        left: subject,
        right: tail.right,
        span: join(subject, tail.right),
      };
    case "matches": {
      const regex = tail.regex;
      const last = regex.image.lastIndexOf("/");
      const patternSpan = tokenSpan(toFile, regex);
      const patternOffsets = characterOffsets(toFile, regex, 1, last, false);
      const pattern = regex.image.slice(1, last);
      const flags = regex.image.slice(last + 1);
      const span = { start: subject.span.start, end: patternSpan.end };
      return patternOffsets === undefined
        ? { kind: "matches", subject, pattern, flags, patternSpan, span }
        : { kind: "matches", subject, pattern, flags, patternSpan, patternOffsets, span };
    }
    case "in":
      return {
        kind: "in",
        subject,
        table: tail.table,
        negated: tail.negated,
        span: join(subject, tail.table),
      };
    case "over":
      return {
        kind: "over",
        subject,
        span: { start: subject.span.start, end: tokenSpan(toFile, tail.over).end },
      };
  }
}

export function suffixNode(toFile: ToFile, value: Expr, suffix: Suffix): Expr {
  if (suffix.kind === "index") {
    return {
      kind: "index",
      table: value,
      key: suffix.key,
      span: { start: value.span.start, end: tokenSpan(toFile, suffix.close).end },
    };
  }
  const property = suffix.property;
  const propertySpan = tokenSpan(toFile, property);
  const span = { start: value.span.start, end: propertySpan.end };
  if (value.kind === "name") {
    // concat, not a spread: a spread grows its array as it goes and keeps the spare room,
    // in both arrays of every dotted name the rules hold.
    return {
      kind: "name",
      parts: value.parts.concat(property.image),
      partSpans: value.partSpans.concat(propertySpan),
      span,
    };
  }
  return { kind: "member", object: value, property: property.image, propertySpan, span };
}

export function listNode(toFile: ToFile, open: IToken, items: Expr[], close: IToken): Expr {
  return { kind: "list", items: exactly(items), span: span(toFile, open, close) };
}

export function nameNode(toFile: ToFile, name: IToken): Expr {
  const nameSpan = tokenSpan(toFile, name);
  return { kind: "name", parts: [name.image], partSpans: [nameSpan], span: nameSpan };
}

export function callNode(toFile: ToFile, name: IToken, args: Expr[], close: IToken): Expr {
  return {
    kind: "call",
    callee: name.image,
    calleeSpan: tokenSpan(toFile, name),
    args: exactly(args),
    span: span(toFile, name, close),
  };
}

/** The Expr of one literal token. */
export function literalExpr(t: IToken, span: Span): Expr {
  switch (t.tokenType) {
    case T.StringLiteral:
      return { kind: "string", value: unquote(t.image), span };
    case T.NumberLiteral:
      return { kind: "number", value: Number(t.image), span };
    case T.SizeLiteral:
      return { kind: "size", bytes: parseSize(t.image) as number, text: t.image, span };
    case T.DurationLiteral:
      return { kind: "duration", ms: parseDuration(t.image) as number, text: t.image, span };
    case T.IpAddress:
      return { kind: "ip", text: t.image, span };
    case T.Cidr:
      return { kind: "cidr", text: t.image, span };
    default: // true, false
      return { kind: "bool", value: t.image === "true", span };
  }
}

/** The value of a double-quoted string token: `\"`, `\\`, `\n`, `\t` escapes; others keep the character. */
export function unquote(image: string): string {
  return image.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c));
}

/**
 * The file offset of each character of `token.image` from `from` to `to` (exclusive; with
 * `andEnd`, the one at `to` too), skipping the character after a backslash when `escapes`; or
 * undefined when each is its position's offset from the token's start (start + 1, + 2, ...),
 * which is what the passes reading them assume when there are none. Most rules sit in a plain
 * or block scalar without escapes, and an array of one number per character, kept as long as
 * the rules, was a good part of what parsing held.
 */
export function characterOffsets(
  toFile: ToFile,
  token: IToken,
  from: number,
  to: number,
  escapes: boolean,
  andEnd = false,
): number[] | undefined {
  const image = token.image;
  const base = toFile(token.startOffset);
  let offsets: number[] | undefined;
  let count = 0;
  const add = (offset: number) => {
    if (offsets === undefined && offset !== base + 1 + count) {
      offsets = [];
      for (let k = 0; k < count; k++) offsets.push(base + 1 + k);
    }
    offsets?.push(offset);
    count++;
  };
  for (let i = from; i < to; i++) {
    add(toFile(token.startOffset + i));
    if (escapes && image[i] === "\\") i++;
  }
  if (andEnd) add(toFile(token.startOffset + to));
  return offsets;
}

export function template(toFile: ToFile, token: IToken): Template {
  // Where each character of the unquoted text sits in the file: an escape (`\"`) is two
  // characters of the rule for one of the text, and the scalar's own escapes are in toFile.
  const offsets = characterOffsets(toFile, token, 1, token.image.length - 1, true, true);
  const text = unquote(token.image);
  const span = tokenSpan(toFile, token);
  return offsets === undefined ? { text, span } : { text, span, offsets };
}
