/**
 * Parser of the rule language (Chevrotain, embedded actions): text → AST with file spans. run()
 * tries fast-parser.ts first, which answers the same for valid rules; this parser stays the
 * grammar's definition and says what is wrong with the others.
 *
 * Entry points match the two ways rules are written in rules.yaml: a whole rule in text form
 * (`[shadow] on STAGES: STATEMENT...`), or the pieces of the structured form (a condition, an
 * action, stage words). Mistakes become diagnostics; the parser never throws on input.
 */

import { type Diagnostic, didYouMean, type SourceFile } from "../common/diagnostics.js";
import type { LocatedText } from "../config/types.js";
import type { Action, CompareOp, Expr, Span, Statement } from "./ast.js";
import { ACTION_VERBS, childrenOf, exactly } from "./ast.js";
import {
  EmbeddedActionsParser,
  type IParserErrorMessageProvider,
  type IToken,
  type TokenType,
  tokenLabel,
} from "./chevrotain.js";
import { fastParse } from "./fast-parser.js";
import { lexRule } from "./lexer.js";
import {
  arithNode,
  callNode,
  chainNode,
  listNode,
  literalExpr,
  nameNode,
  notNode,
  type PredicateTail,
  predicateNode,
  type RawAction,
  type RawRule,
  type RawStatement,
  type Suffix,
  span as spanOf,
  suffixNode,
  type ToFile,
  template,
  tokenSpan,
} from "./parse-nodes.js";
import * as T from "./tokens.js";

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

const FRIENDLY: Record<string, string> = {
  Colon: "':'",
  Then: "'then'",
  RParen: "')'",
  RBracket: "']'",
  On: "'on'",
  Identifier: "a name",
  StringLiteral: "a string",
  EOF: "the end of the rule",
};

function describeToken(token: IToken): string {
  return token.tokenType.name === "EOF" ? "the end of the rule" : `'${token.image}'`;
}

function describeType(type: TokenType): string {
  return FRIENDLY[type.name] ?? tokenLabel(type);
}

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return `expected ${describeType(expected)}, found ${describeToken(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describeToken(firstRedundant)}`;
  },
  buildNoViableAltMessage({ actual, ruleName }) {
    const found = actual[0] as IToken;
    const what: Record<string, string> = {
      statement: "a statement ('if ... then ...' or an action)",
      primary: "a value",
      comparisonOp: "a comparison",
      actionArg: "an action argument",
    };
    // No unary minus: `-` where a value should start is named as such, not "something else".
    const wanted = found.tokenType === T.Minus ? "a value" : (what[ruleName] ?? "something else");
    return `expected ${wanted}, found ${describeToken(found)}`;
  },
  buildEarlyExitMessage({ actual, ruleName }) {
    const found = actual[0] as IToken;
    if (ruleName === "ruleText") return `expected a statement after ':', found ${describeToken(found)}`;
    return `expected more input, found ${describeToken(found)}`;
  },
};

/**
 * Converts token offsets (in the scalar's value) to file offsets, for the parse under way and the
 * actions and stages built from its tokens afterwards; set by run().
 */
let toFile: ToFile = (offset) => offset;

class RuleParser extends EmbeddedActionsParser {
  constructor() {
    super(T.ALL_TOKENS, { errorMessageProvider: messages, maxLookahead: 3, recoveryEnabled: false });
    this.performSelfAnalysis();
  }

  ruleText = this.RULE("ruleText", (): RawRule => {
    let shadow = false;
    let first: IToken | undefined;
    this.OPTION(() => {
      first = this.CONSUME(T.Shadow);
      shadow = true;
    });
    const on = this.CONSUME(T.On);
    const stageTokens = this.SUBRULE(this.stageList);
    this.CONSUME(T.Colon);
    const statements: RawStatement[] = [];
    this.AT_LEAST_ONE(() => {
      statements.push(this.SUBRULE(this.statement));
    });
    return { shadow, stageTokens, statements, first: first ?? on };
  });

  stageList = this.RULE("stageList", (): IToken[] => {
    const stages = [this.CONSUME(T.Identifier)];
    this.MANY(() => {
      this.CONSUME(T.Comma);
      stages.push(this.CONSUME2(T.Identifier));
    });
    return stages;
  });

  stagesOnly = this.RULE("stagesOnly", (): IToken[] => this.SUBRULE(this.stageList));

  // Alternatives and optional parts that capture no local variable are built once, like
  // primaryAlternatives: a fresh array of closures per statement, comparison or suffix was a good
  // part of what parsing 10,000 rules allocated.
  private readonly elseClause = (): RawAction => {
    this.CONSUME(T.Else);
    return this.SUBRULE2(this.action);
  };

  private readonly statementAlternatives = [
    {
      ALT: (): RawStatement => {
        const ifToken = this.CONSUME(T.If);
        const condition = this.SUBRULE(this.orExpr);
        this.CONSUME(T.Then);
        const then = this.SUBRULE(this.action);
        const otherwise = this.OPTION(this.elseClause);
        return otherwise === undefined
          ? { kind: "if" as const, ifToken, condition, then }
          : { kind: "if" as const, ifToken, condition, then, else: otherwise };
      },
    },
    { ALT: (): RawStatement => ({ kind: "action" as const, action: this.SUBRULE3(this.action) }) },
  ];

  statement = this.RULE("statement", (): RawStatement => this.OR(this.statementAlternatives));

  action = this.RULE("action", (): RawAction => {
    const verb = this.CONSUME(T.Identifier);
    const words = [verb];
    this.OPTION({
      GATE: () => verb.image === "add",
      DEF: () => {
        words.push(this.CONSUME2(T.Identifier));
      },
    });
    const args: IToken[] = [];
    this.MANY(() => {
      args.push(this.SUBRULE(this.actionArg));
    });
    return { words, args };
  });

  private readonly actionArgAlternatives = [
    { ALT: () => this.CONSUME(T.NumberLiteral) },
    { ALT: () => this.CONSUME(T.EnhancedCode) },
    { ALT: () => this.CONSUME(T.StringLiteral) },
  ];

  actionArg = this.RULE("actionArg", (): IToken => this.OR(this.actionArgAlternatives));

  actionOnly = this.RULE("actionOnly", (): RawAction => this.SUBRULE(this.action));

  conditionOnly = this.RULE("conditionOnly", (): Expr => this.SUBRULE(this.orExpr));

  /**
   * The left operand of the operator chain being parsed (or, and, +, *, suffixes). The chain
   * rules' MANY steps are built once and read and replace it, where a closure over a local was
   * made per call of each rule (five per value parsed); a rule restores the outer chain's operand
   * before returning, and run() clears what a failed parse left. Nodes are built outside the
   * recording phase only (what ACTION does, without a closure per node).
   */
  chain: Expr | undefined;

  private chainOf(first: Expr, step: () => void): Expr {
    const outer = this.chain;
    this.chain = first;
    this.MANY(step);
    const result = this.chain;
    this.chain = outer;
    return result;
  }

  private readonly orStep = (): void => {
    this.CONSUME(T.Or);
    const left = this.chain as Expr;
    const right = this.SUBRULE2(this.andExpr);
    this.chain = this.RECORDING_PHASE ? left : chainNode("or", left, right);
  };

  orExpr = this.RULE("orExpr", (): Expr => this.chainOf(this.SUBRULE(this.andExpr), this.orStep));

  private readonly andStep = (): void => {
    this.CONSUME(T.And);
    const left = this.chain as Expr;
    const right = this.SUBRULE2(this.notExpr);
    this.chain = this.RECORDING_PHASE ? left : chainNode("and", left, right);
  };

  andExpr = this.RULE("andExpr", (): Expr => this.chainOf(this.SUBRULE(this.notExpr), this.andStep));

  private readonly notAlternatives = [
    {
      ALT: (): Expr => {
        const not = this.CONSUME(T.Not);
        const operand = this.SUBRULE(this.notExpr);
        return this.ACTION(() => notNode(toFile, not, operand));
      },
    },
    { ALT: (): Expr => this.SUBRULE(this.predicate) },
  ];

  notExpr = this.RULE("notExpr", (): Expr => this.OR(this.notAlternatives));

  private readonly consumeNot = (): IToken => this.CONSUME(T.Not);

  /** What follows a predicate's subject; the node is built by predicateNode. */
  private readonly predicateAlternatives = [
    {
      ALT: (): PredicateTail => {
        const op = this.SUBRULE(this.comparisonOp);
        return { kind: "compare", op, right: this.SUBRULE2(this.additive) };
      },
    },
    {
      ALT: (): PredicateTail => {
        this.CONSUME(T.Matches);
        return { kind: "matches", regex: this.CONSUME(T.RegexLiteral) };
      },
    },
    {
      ALT: (): PredicateTail => {
        const not = this.OPTION2(this.consumeNot);
        this.CONSUME(T.In);
        return { kind: "in", negated: not !== undefined, table: this.SUBRULE3(this.postfix) };
      },
    },
    { ALT: (): PredicateTail => ({ kind: "over", over: this.CONSUME(T.Over) }) },
  ];

  private readonly predicateTail = (): PredicateTail => this.OR(this.predicateAlternatives);

  predicate = this.RULE("predicate", (): Expr => {
    const subject = this.SUBRULE(this.additive);
    const tail = this.OPTION(this.predicateTail);
    return tail === undefined || this.RECORDING_PHASE ? subject : predicateNode(toFile, subject, tail);
  });

  private readonly additiveOperators = [
    { ALT: (): IToken => this.CONSUME(T.Plus) },
    { ALT: (): IToken => this.CONSUME(T.Minus) },
  ];

  private readonly additiveStep = (): void => {
    const op = this.OR(this.additiveOperators);
    const left = this.chain as Expr;
    const right = this.SUBRULE2(this.multiplicative);
    this.chain = this.RECORDING_PHASE ? left : arithNode(toFile, op, left, right);
  };

  additive = this.RULE(
    "additive",
    (): Expr => this.chainOf(this.SUBRULE(this.multiplicative), this.additiveStep),
  );

  private readonly multiplicativeStep = (): void => {
    const op = this.CONSUME(T.Star);
    const left = this.chain as Expr;
    const right = this.SUBRULE2(this.postfix);
    this.chain = this.RECORDING_PHASE ? left : arithNode(toFile, op, left, right);
  };

  multiplicative = this.RULE(
    "multiplicative",
    (): Expr => this.chainOf(this.SUBRULE(this.postfix), this.multiplicativeStep),
  );

  private readonly comparisonAlternatives = [
    { ALT: () => this.CONSUME(T.Equal) },
    { ALT: () => this.CONSUME(T.NotEqual) },
    { ALT: () => this.CONSUME(T.LessEqual) },
    { ALT: () => this.CONSUME(T.GreaterEqual) },
    { ALT: () => this.CONSUME(T.Less) },
    { ALT: () => this.CONSUME(T.Greater) },
  ];

  comparisonOp = this.RULE("comparisonOp", (): CompareOp => {
    const token = this.OR(this.comparisonAlternatives);
    return token.image as CompareOp;
  });

  private readonly propertyAlternatives = [
    { ALT: (): IToken => this.CONSUME(T.Identifier) },
    { ALT: (): IToken => this.CONSUME(T.Over) },
  ];

  /** A suffix of postfix; the node is built by suffixNode. */
  private readonly suffixAlternatives = [
    {
      ALT: (): Suffix => {
        this.CONSUME(T.Dot);
        // `over` is a keyword (quota(rcpt) over) and also a quota status member (quota(rcpt).over).
        return { kind: "member", property: this.OR2(this.propertyAlternatives) };
      },
    },
    {
      ALT: (): Suffix => {
        this.CONSUME(T.LBracket);
        const key = this.SUBRULE(this.orExpr);
        return { kind: "index", key, close: this.CONSUME(T.RBracket) };
      },
    },
  ];

  private readonly postfixStep = (): void => {
    const value = this.chain as Expr;
    const suffix = this.OR(this.suffixAlternatives);
    this.chain = this.RECORDING_PHASE ? value : suffixNode(toFile, value, suffix);
  };

  postfix = this.RULE("postfix", (): Expr => this.chainOf(this.SUBRULE(this.primary), this.postfixStep));

  // Alternatives that use nothing but `this` are built once (Chevrotain's advice): an array of
  // eleven objects per value parsed was a good part of what parsing 10,000 rules allocated.
  private readonly primaryAlternatives = [
    ...T.LITERAL_TOKENS.map((type) => ({ ALT: () => this.literal(type) })),
    { ALT: () => this.parenthesised() },
    { ALT: () => this.listLiteral() },
    { ALT: () => this.nameOrCall() },
  ];

  primary = this.RULE("primary", (): Expr => this.OR(this.primaryAlternatives));

  // The pieces of `primary`: plain methods, not rules, so an error in them is still reported as
  // the rule's ("expected a value"). Each token type is consumed once per rule (Chevrotain's index).

  private literal(type: TokenType): Expr {
    const t = this.CONSUME(type);
    // What ACTION returns while recording, without a closure per literal.
    return this.RECORDING_PHASE ? (undefined as unknown as Expr) : literalExpr(t, tokenSpan(toFile, t));
  }

  private parenthesised(): Expr {
    this.CONSUME(T.LParen);
    const inner = this.SUBRULE(this.orExpr);
    this.CONSUME(T.RParen);
    return inner;
  }

  private listLiteral(): Expr {
    const open = this.CONSUME(T.LBracket);
    const items: Expr[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        items.push(this.SUBRULE2(this.orExpr));
      },
    });
    const close = this.CONSUME(T.RBracket);
    return this.ACTION(() => listNode(toFile, open, items, close));
  }

  private nameOrCall(): Expr {
    const name = this.CONSUME(T.Identifier);
    let call: { args: Expr[]; close: IToken } | undefined;
    this.OPTION(() => {
      this.CONSUME2(T.LParen);
      const args: Expr[] = [];
      this.MANY_SEP2({
        SEP: T.Comma,
        DEF: () => {
          args.push(this.SUBRULE3(this.orExpr));
        },
      });
      call = { args, close: this.CONSUME2(T.RParen) };
    });
    return this.ACTION(
      (): Expr =>
        call === undefined ? nameNode(toFile, name) : callNode(toFile, name, call.args, call.close),
    );
  }
}

/** One parser instance serves every parse (Chevrotain parsers are reusable and costly to build). */
let shared: RuleParser | undefined;
function parser(): RuleParser {
  shared ??= new RuleParser();
  return shared;
}

export interface ParseContext {
  file: SourceFile;
  diagnostics: Diagnostic[];
}

type Entry = "ruleText" | "conditionOnly" | "actionOnly" | "stagesOnly";

/**
 * Which parser run() tries first, and how often the fast one answered: a switch and counters for
 * the tests that hold fast-parser.ts to the Chevrotain parser (its oracle), not for settings.
 */
export const fastPath = { enabled: true, taken: 0, declined: 0 };

type Report = (offset: number, message: string, hint?: string) => void;

/** Lexes and parses `located` with one entry rule; answers undefined (with diagnostics) on any error. */
function run<R>(entry: Entry, located: LocatedText, ctx: ParseContext): R | undefined {
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
    result = chevrotainParse(entry, tokens, located.text.length, report);
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
function lexChecked(text: string, report: Report): IToken[] | undefined {
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

/** The Chevrotain parser's answer, or undefined with its first error reported. */
function chevrotainParse(entry: Entry, tokens: IToken[], textLength: number, report: Report): unknown {
  const p = parser();
  p.input = tokens;
  p.chain = undefined;
  const result: unknown = (p[entry] as () => unknown).call(p);
  if (p.errors.length === 0) return result;
  const error = p.errors[0];
  if (error !== undefined) {
    const token = error.token;
    const offset =
      token.tokenType.name === "EOF" || Number.isNaN(token.startOffset) ? textLength : token.startOffset;
    report(offset, error.message);
  }
  return undefined;
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
