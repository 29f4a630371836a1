/**
 * Parser of the rule language: text → AST with file spans. run() tries fast-parser.ts first,
 * which answers for valid rules; chevrotain-parser.ts (the grammar's definition, loaded when
 * first needed) parses the others again and says what is wrong with them.
 *
 * Entry points match the two ways rules are written in rules.yaml: a whole rule in text form
 * (`[shadow] on STAGES: STATEMENT...`), or the pieces of the structured form (a condition, an
 * action, stage words). Mistakes become diagnostics; the parser never throws on input.
 */

import { createRequire } from "node:module";
import { type Diagnostic, didYouMean, type SourceFile } from "../common/diagnostics.js";
import type { LocatedText } from "../config/types.js";
import type { Action, Expr, Span, Statement } from "./ast.js";
import { ACTION_VERBS, childrenOf, exactly } from "./ast.js";
import type { IToken, TokenType } from "./chevrotain.js";
import type { chevrotainParse } from "./chevrotain-parser.js";
import { fastParse } from "./fast-parser.js";
import { lexRule } from "./lexer.js";
import {
  type ParseEntry,
  type RawAction,
  type RawRule,
  type RawStatement,
  type ReportError,
  span as spanOf,
  type ToFile,
  template,
  tokenSpan,
} from "./parse-nodes.js";
import * as T from "./token-kinds.js";

export type { RawRule } from "./parse-nodes.js";
export { unquote } from "./parse-nodes.js";

/** Refuse inputs that could only be mistakes or attacks, before they cost anything. */
export const LIMITS = {
  ruleChars: 64 * 1024,
  tokens: 10_000,
  /** Parentheses, brackets and `not`s. */
  nesting: 64,
  /** Levels of the syntax tree, and/or chains counting as one level. */
  depth: 256,
};

export interface ParseContext {
  file: SourceFile;
  diagnostics: Diagnostic[];
}

/**
 * The Chevrotain parser, loaded (synchronously: parsing is) the first time the hand-written one
 * gives up on a rule. Chevrotain is some 5 MB of memory and 40 ms of start-up that a
 * configuration of valid rules never needs. Node loads an ES module without top-level await by
 * require (Node ≥ 20.19).
 */
let grammar: typeof chevrotainParse | undefined;
function grammarParser(): typeof chevrotainParse {
  grammar ??= (
    createRequire(import.meta.url)("./chevrotain-parser.js") as typeof import("./chevrotain-parser.js")
  ).chevrotainParse;
  return grammar;
}

/**
 * Gives the parser the grammar's parser before it needs one. For the test runner, which runs the
 * TypeScript sources: a require of them would not find a module.
 */
export function provideGrammar(parse: typeof chevrotainParse): void {
  grammar = parse;
}

/** Whether the grammar's parser (and Chevrotain) has been loaded, for tests. */
export function grammarLoaded(): boolean {
  return grammar !== undefined;
}

/**
 * Converts token offsets (in the scalar's value) to file offsets, for the parse under way and the
 * actions and stages built from its tokens afterwards; set by run().
 */
let toFile: ToFile = (offset) => offset;

/**
 * Which parser run() tries first, and how often the fast one answered: a switch and counters for
 * the tests that hold fast-parser.ts to the Chevrotain parser (its oracle), not for settings.
 */
export const fastPath = { enabled: true, taken: 0, declined: 0 };

/** Lexes and parses `located` with one entry rule; answers undefined (with diagnostics) on any error. */
function run<R>(entry: ParseEntry, located: LocatedText, ctx: ParseContext): R | undefined {
  const at = (offset: number) => located.offsetAt(Math.max(0, Math.min(offset, located.text.length)));
  const report = (offset: number, message: string, hint?: string) =>
    ctx.diagnostics.push(ctx.file.diagnostic(at(offset), "error", message, hint));

  const tokens = lexChecked(located.text, report);
  if (tokens === undefined) return undefined;
  toFile = at;
  // The fast parser answers for the valid rules only and gives up on anything else, without a
  // word: the Chevrotain parser then parses the rule again and says what is wrong with it.
  let result: unknown = fastPath.enabled ? fastParse(entry, tokens, at) : undefined;
  if (result !== undefined) fastPath.taken++;
  else {
    if (fastPath.enabled) fastPath.declined++;
    result = grammarParser()(entry, tokens, located.text.length, report, at);
    if (result === undefined) return undefined;
  }
  // Every node of a tree has a token of its own (parentheses make none), so a rule of at most
  // LIMITS.depth tokens cannot nest past the limit: only longer ones are walked.
  if (tokens.length <= LIMITS.depth) return result as R;
  const conditions =
    entry === "conditionOnly"
      ? [result as Expr]
      : entry === "ruleText"
        ? (result as RawRule).statements.flatMap((s) => (s.kind === "if" ? [s.condition] : []))
        : [];
  for (const condition of conditions) {
    const deep = deepestNode(condition);
    if (deep !== undefined) {
      ctx.diagnostics.push(
        ctx.file.diagnostic(
          deep.span.start,
          "error",
          `expression nested more than ${LIMITS.depth} levels deep`,
        ),
      );
      return undefined;
    }
  }
  return result as R;
}

/** The tokens of `text`, or undefined (reported) when it is too long, does not lex, or nests too deep. */
function lexChecked(text: string, report: ReportError): IToken[] | undefined {
  if (text.length > LIMITS.ruleChars) {
    report(0, `rule is ${text.length} characters long; the limit is ${LIMITS.ruleChars}`);
    return undefined;
  }
  const lexed = lexRule(text);
  for (const error of lexed.errors) {
    const ch = text.slice(error.offset, error.offset + 1);
    const hint = UNEXPECTED_HINTS[ch];
    report(error.offset, `unexpected character ${ch === "'" ? `"'"` : `'${ch}'`}`, hint);
  }
  for (const token of lexed.tokens) {
    if (token.tokenType === T.UnterminatedString)
      report(token.startOffset, "unterminated string: missing closing '\"'");
    if (token.tokenType === T.UnterminatedRegex) {
      report(token.startOffset, "unterminated regular expression: missing closing '/'");
    }
  }
  const unterminated = lexed.tokens.some(
    (t) => t.tokenType === T.UnterminatedString || t.tokenType === T.UnterminatedRegex,
  );
  if (lexed.errors.length > 0 || unterminated) return undefined;
  const tooDeep = nestingViolation(lexed.tokens);
  if (tooDeep !== undefined) {
    report(tooDeep.startOffset, `expression nested more than ${LIMITS.nesting} levels deep`);
    return undefined;
  }
  if (lexed.tokens.length > LIMITS.tokens) {
    report(0, `rule has ${lexed.tokens.length} tokens; the limit is ${LIMITS.tokens}`);
    return undefined;
  }
  return lexed.tokens;
}

/** Hints for characters a postmaster may expect to work. */
const UNEXPECTED_HINTS: Record<string, string> = {
  "'": 'strings are written in double quotes: "text"',
  "@": 'quote addresses: "postmaster@example.org"',
  "=": "compare with ==",
  "&": "write 'and'",
  "|": "write 'or'",
  "!": "write 'not', or != to compare",
};

/**
 * The first node deeper than LIMITS.depth, not counting the links of an and/or chain (passes
 * walk those with a loop). Bounds the recursion of the checker and compiler on inputs such as
 * `quota(rcpt).a.a.a...` that the token-level nesting check cannot see.
 */
function deepestNode(root: Expr): Expr | undefined {
  // Two parallel stacks rather than a [node, depth] pair per node: every rule is walked.
  const nodes: Expr[] = [root];
  const depths: number[] = [0];
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const depth = depths.pop() as number;
    if (depth > LIMITS.depth) return node;
    for (const child of childrenOf(node)) {
      const link =
        (node.kind === "and" || node.kind === "or") && child === node.left && child.kind === node.kind;
      nodes.push(child);
      depths.push(link ? depth : depth + 1);
    }
  }
  return undefined;
}

/** The token where parentheses, brackets or `not`s nest deeper than the limit. */
function nestingViolation(tokens: IToken[]): IToken | undefined {
  let depth = 0;
  let nots = 0;
  for (const token of tokens) {
    const type = token.tokenType;
    if (type === T.LParen || type === T.LBracket) depth++;
    else if (type === T.RParen || type === T.RBracket) depth = Math.max(0, depth - 1);
    else if (type === T.Not) nots++;
    else if (type === T.And || type === T.Or || type === T.If) nots = 0;
    if (depth + nots > LIMITS.nesting) return token;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Building actions and statements from raw tokens

/** What reject and tempfail take, in this order: `[CODE [ENHANCED-CODE]] ["text"]`. */
const REPLY_ARGUMENT_ORDER: readonly TokenType[] = [T.NumberLiteral, T.EnhancedCode, T.StringLiteral];

function buildAction(raw: RawAction, ctx: ParseContext): Action | undefined {
  const first = raw.words[0] as IToken;
  const last = raw.args[raw.args.length - 1] ?? (raw.words[raw.words.length - 1] as IToken);
  const span = spanOf(toFile, first, last);
  // One word but for `add header`: no array and join for the usual verbs.
  const verb = raw.words.length === 1 ? first.image : raw.words.map((w) => w.image).join(" ");
  const error = (token: IToken, message: string, hint?: string) => {
    ctx.diagnostics.push(ctx.file.diagnostic(toFile(token.startOffset), "error", message, hint));
    return undefined;
  };
  const kinds = raw.args.map((a) => a.tokenType);
  const strings = raw.args.filter((a) => a.tokenType === T.StringLiteral);
  switch (verb) {
    case "continue":
    case "accept":
    case "discard":
      if (raw.args.length > 0) return error(raw.args[0] as IToken, `'${verb}' takes no arguments`);
      return { verb, span };
    case "reject":
    case "tempfail": {
      // [CODE [XCODE]] ["text"], in that order.
      let position = 0;
      for (let i = 0; i < kinds.length; i++) {
        const kind = kinds[i] as TokenType;
        const at = REPLY_ARGUMENT_ORDER.indexOf(kind, position);
        if (at === -1) {
          return error(
            raw.args[i] as IToken,
            `'${verb}' takes [CODE [ENHANCED-CODE]] ["text"], in that order`,
          );
        }
        if (kind === T.EnhancedCode && !kinds.includes(T.NumberLiteral)) {
          return error(
            raw.args[i] as IToken,
            `an enhanced status code needs a reply code before it (e.g. ${verb === "reject" ? "550 5.7.1" : "451 4.7.1"})`,
          );
        }
        position = at + 1;
      }
      const action: Action = { verb, span };
      const code = raw.args.find((a) => a.tokenType === T.NumberLiteral);
      const enhanced = raw.args.find((a) => a.tokenType === T.EnhancedCode);
      if (code) action.code = { value: Number(code.image), span: tokenSpan(toFile, code) };
      if (enhanced) action.enhancedCode = { value: enhanced.image, span: tokenSpan(toFile, enhanced) };
      if (strings[0]) action.text = template(toFile, strings[0]);
      return action;
    }
    case "quarantine":
    case "log": {
      if (raw.args.length !== 1 || strings.length !== 1) {
        return error(
          raw.args[0] ?? first,
          `'${verb}' takes one quoted text: ${verb} "${verb === "log" ? "text" : "reason"}"`,
        );
      }
      const text = template(toFile, strings[0] as IToken);
      return verb === "log" ? { verb, text, span } : { verb, reason: text, span };
    }
    case "add header": {
      if (raw.args.length !== 2 || strings.length !== 2) {
        return error(
          raw.args[0] ?? first,
          `'add header' takes a quoted name and value: add header "X-Name" "value"`,
        );
      }
      return {
        verb,
        name: template(toFile, strings[0] as IToken),
        value: template(toFile, strings[1] as IToken),
        span,
      };
    }
    default: {
      const hint = didYouMean(verb, ACTION_VERBS);
      return error(first, `unknown action '${verb}'`, hint);
    }
  }
}

function buildStatements(raw: RawStatement[], ctx: ParseContext): Statement[] | undefined {
  const statements: Statement[] = [];
  let failed = false;
  for (const item of raw) {
    if (item.kind === "action") {
      const action = buildAction(item.action, ctx);
      if (action === undefined) failed = true;
      else statements.push({ kind: "action", action, span: action.span });
      continue;
    }
    const then = buildAction(item.then, ctx);
    const otherwise = item.else === undefined ? undefined : buildAction(item.else, ctx);
    if (then === undefined || (item.else !== undefined && otherwise === undefined)) {
      failed = true;
      continue;
    }
    const span = { start: toFile(item.ifToken.startOffset), end: (otherwise ?? then).span.end };
    statements.push(
      otherwise === undefined
        ? { kind: "if", condition: item.condition, then, span }
        : { kind: "if", condition: item.condition, then, else: otherwise, span },
    );
  }
  return failed ? undefined : exactly(statements);
}

export interface ParsedRuleText {
  shadow: boolean;
  stages: { word: string; span: Span }[];
  statements: Statement[];
  span: Span;
}

export function parseRuleText(located: LocatedText, ctx: ParseContext): ParsedRuleText | undefined {
  const raw = run<RawRule>("ruleText", located, ctx);
  if (raw === undefined) return undefined;
  const statements = buildStatements(raw.statements, ctx);
  if (statements === undefined) return undefined;
  return {
    shadow: raw.shadow,
    stages: raw.stageTokens.map((t) => ({ word: t.image, span: tokenSpan(toFile, t) })),
    statements,
    span: { start: located.offsetAt(0), end: located.offsetAt(located.text.length) },
  };
}

export function parseCondition(located: LocatedText, ctx: ParseContext): Expr | undefined {
  return run<Expr>("conditionOnly", located, ctx);
}

export function parseAction(located: LocatedText, ctx: ParseContext): Action | undefined {
  const raw = run<RawAction>("actionOnly", located, ctx);
  return raw === undefined ? undefined : buildAction(raw, ctx);
}

export function parseStageWords(
  located: LocatedText,
  ctx: ParseContext,
): { word: string; span: Span }[] | undefined {
  const tokens = run<IToken[]>("stagesOnly", located, ctx);
  return tokens?.map((t) => ({ word: t.image, span: tokenSpan(toFile, t) }));
}
