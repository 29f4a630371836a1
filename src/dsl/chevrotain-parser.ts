/**
 * The rule language's grammar as a Chevrotain parser (embedded actions): the definition of the
 * language, and what says what is wrong with a rule. parser.ts asks fast-parser.ts first, which
 * answers the same for valid rules; this module is loaded (with Chevrotain) only when that one
 * first gives up on a rule, so a configuration whose rules are all valid never loads it.
 */
import type { CompareOp, Expr } from "./ast.js";
import {
  EmbeddedActionsParser,
  type IParserErrorMessageProvider,
  type IToken,
  type TokenType,
  tokenLabel,
} from "./chevrotain.js";
import {
  arithNode,
  callNode,
  chainNode,
  listNode,
  literalExpr,
  nameNode,
  notNode,
  type ParseEntry,
  type PredicateTail,
  predicateNode,
  type RawAction,
  type RawRule,
  type RawStatement,
  type ReportError,
  type Suffix,
  suffixNode,
  type ToFile,
  tokenSpan,
} from "./parse-nodes.js";
import * as T from "./tokens.js";

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

/** Converts token offsets (in the scalar's value) to file offsets, for the parse under way. */
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

/**
 * The Chevrotain parser's answer, or undefined with its first error reported. `at` converts the
 * tokens' offsets to file offsets.
 */
export function chevrotainParse(
  entry: ParseEntry,
  tokens: IToken[],
  textLength: number,
  report: ReportError,
  at: ToFile,
): unknown {
  toFile = at;
  // Tokens the hand-written lexer made before this module gave the token types their index.
  for (const token of tokens) token.tokenTypeIdx = token.tokenType.tokenTypeIdx as number;
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
