/**
 * The syntax tree of a rule. Every node carries the file offsets it came from, so later passes
 * can report at the right line and column of rules.yaml.
 */

/** File offsets: `start` of the first character, `end` just after the last. */
import type { Stage } from "../common/stages.js";

export interface Span {
  start: number;
  end: number;
}

export type CompareOp = "==" | "!=" | "<" | "<=" | ">" | ">=";
export type ArithmeticOp = "+" | "-" | "*";

export type Expr =
  | { kind: "string"; value: string; span: Span }
  | { kind: "number"; value: number; span: Span }
  | { kind: "size"; bytes: number; text: string; span: Span }
  | { kind: "duration"; ms: number; text: string; span: Span }
  | { kind: "ip"; text: string; span: Span }
  | { kind: "cidr"; text: string; span: Span }
  | { kind: "bool"; value: boolean; span: Span }
  | { kind: "list"; items: Expr[]; span: Span }
  /** A dotted name: `rcpt`, `client.ip`, `directory.addresses`, `spamhaus`. */
  | { kind: "name"; parts: string[]; partSpans: Span[]; span: Span }
  | { kind: "call"; callee: string; calleeSpan: Span; args: Expr[]; span: Span }
  /** Member of a computed value: `quota(rcpt).percent`. */
  | { kind: "member"; object: Expr; property: string; propertySpan: Span; span: Span }
  /** `TABLE[X]`: the value the table holds for X. */
  | { kind: "index"; table: Expr; key: Expr; span: Span }
  /** `size + quota(rcpt).usage`, `2 * size`: `*` binds tighter than `+` and `-`, all left to right. */
  | { kind: "arith"; op: ArithmeticOp; left: Expr; right: Expr; opSpan: Span; span: Span }
  | { kind: "and" | "or"; left: Expr; right: Expr; span: Span }
  | { kind: "not"; operand: Expr; span: Span }
  | { kind: "compare"; op: CompareOp; left: Expr; right: Expr; span: Span }
  | {
      kind: "matches";
      subject: Expr;
      pattern: string;
      flags: string;
      patternSpan: Span;
      /**
       * File offset of each character of `pattern` (the scalar's escapes can move them apart);
       * absent when character i is at patternSpan.start + 1 + i, as it mostly is.
       */
      patternOffsets?: number[];
      span: Span;
    }
  | { kind: "in"; subject: Expr; table: Expr; negated: boolean; span: Span }
  /** Postfix `over`: `quota(rcpt) over`. */
  | { kind: "over"; subject: Expr; span: Span };

/** Text with `{value}` placeholders, as written (unescaped). */
export interface Template {
  text: string;
  span: Span;
  /**
   * File offset of each character of `text`, plus one for its end. Escapes (`\"` in the rule,
   * `\x41` or `''` in the YAML scalar) make text and file differ in length, so a placeholder's
   * position cannot be computed from the span's start. Absent when it can (character i at
   * span.start + 1 + i), as in most rules: the array would be held as long as the rules.
   */
  offsets?: number[];
}

export type ActionVerb =
  | "continue"
  | "accept"
  | "reject"
  | "tempfail"
  | "discard"
  | "quarantine"
  | "add header"
  | "log";
export const ACTION_VERBS: readonly ActionVerb[] = [
  "continue",
  "accept",
  "reject",
  "tempfail",
  "discard",
  "quarantine",
  "add header",
  "log",
];

export type Action =
  | { verb: "continue" | "accept" | "discard"; span: Span }
  | {
      verb: "reject" | "tempfail";
      code?: { value: number; span: Span };
      enhancedCode?: { value: string; span: Span };
      text?: Template;
      span: Span;
    }
  | { verb: "quarantine"; reason: Template; span: Span }
  | { verb: "add header"; name: Template; value: Template; span: Span }
  | { verb: "log"; text: Template; span: Span };

export type Statement =
  | { kind: "if"; condition: Expr; then: Action; else?: Action; span: Span }
  | { kind: "action"; action: Action; span: Span };

export interface Rule {
  name: string;
  /** Where the name was written, or the rule's start for a default name. */
  nameSpan: Span;
  stages: { stage: Stage; span: Span }[];
  statements: Statement[];
  shadow: boolean;
  span: Span;
}

/**
 * `items` without the spare room that push leaves: V8 grows an array to 17 slots on its first
 * push and never trims one that short, so a node's list of one or two, kept as long as the
 * rules, held eight times what it needed. For arrays built by push and then kept.
 */
export function exactly<T>(items: readonly T[]): T[] {
  return items.slice();
}

/** Drops spans, for comparing trees (round-trip tests). */
export function stripSpans<T>(node: T): unknown {
  if (Array.isArray(node)) return node.map(stripSpans);
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "span" || key.endsWith("Span") || key === "partSpans" || key.endsWith("ffsets")) continue;
    out[key] = stripSpans(value);
  }
  return out;
}

/**
 * The operands of a chain of one operator, left to right: `a or b or c` parses as
 * `(a or b) or c`, a spine as long as the chain. Passes walk it with this loop instead of
 * recursing, so a chain of thousands of terms cannot overflow the stack.
 */
export function chainOperands(expr: Extract<Expr, { kind: "and" | "or" }>): Expr[] {
  const rights: Expr[] = [];
  let node: Expr = expr;
  while (node.kind === expr.kind) {
    const link = node as Extract<Expr, { kind: "and" | "or" }>;
    rights.push(link.right);
    node = link.left;
  }
  rights.push(node);
  return rights.reverse();
}

/** The direct sub-expressions of a node. */
/** A leaf's children: one shared array, not a new one per literal and name walked. */
const NO_CHILDREN: readonly Expr[] = [];

export function childrenOf(expr: Expr): readonly Expr[] {
  switch (expr.kind) {
    case "list":
      return expr.items;
    case "call":
      return expr.args;
    case "member":
      return [expr.object];
    case "index":
      return [expr.table, expr.key];
    case "and":
    case "or":
    case "compare":
    case "arith":
      return [expr.left, expr.right];
    case "not":
      return [expr.operand];
    case "matches":
    case "over":
      return [expr.subject];
    case "in":
      return [expr.subject, expr.table];
    default:
      return NO_CHILDREN;
  }
}
