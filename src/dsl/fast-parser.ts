/**
 * A recursive-descent parser of the rule language for the valid case: what parser.ts's Chevrotain
 * parser (the grammar's definition) answers for a rule it accepts, built by the same functions of
 * parse-nodes.ts, or undefined (it gives up) on anything else, so that the Chevrotain parser then
 * parses the rule again and reports the mistake. Why a second parser: validating 10,000 rules
 * spent a good part of its time and garbage in Chevrotain's embedded-actions machinery, for rules
 * that are nearly all valid.
 *
 * Each decision below is the one-token choice the Chevrotain rule of the same name makes (its
 * lookahead never needs more here), and each OPTION/MANY is taken greedily as Chevrotain takes
 * it: where Chevrotain would commit and then fail, this parser gives up too.
 * test/dsl/fast-parser.test.ts holds it to the Chevrotain parser.
 */
import type { CompareOp, Expr } from "./ast.js";
import type { IToken, TokenType } from "./chevrotain.js";
import {
  arithNode,
  callNode,
  chainNode,
  listNode,
  literalExpr,
  nameNode,
  notNode,
  type ParseEntry,
  predicateNode,
  type RawAction,
  type RawRule,
  type RawStatement,
  suffixNode,
  type ToFile,
  tokenSpan,
} from "./parse-nodes.js";
import * as T from "./token-kinds.js";

// The parse under way, in module state: one parse at a time (parsing never waits on anything),
// and no parser object or closure per call.
let tokens: IToken[] = [];
let pos = 0;
let toFile: ToFile = (offset) => offset;

/**
 * What the Chevrotain entry rule `entry` answers for `input` (RawRule, Expr, RawAction or the
 * stage tokens), or undefined where it would not parse all of it. Never throws, never reports.
 */
export function fastParse(
  entry: ParseEntry,
  input: IToken[],
  offsets: ToFile,
): RawRule | Expr | RawAction | IToken[] | undefined {
  tokens = input;
  pos = 0;
  toFile = offsets;
  let result: RawRule | Expr | RawAction | IToken[] | undefined;
  switch (entry) {
    case "ruleText":
      result = ruleText();
      break;
    case "conditionOnly":
      result = orExpr();
      break;
    case "actionOnly":
      result = action();
      break;
    case "stagesOnly":
      result = stageList();
      break;
  }
  const complete = pos === input.length;
  // Not kept past the parse: the rules' tokens are garbage once their nodes are built.
  tokens = [];
  return complete ? result : undefined;
}

function next(): TokenType | undefined {
  return tokens[pos]?.tokenType;
}

/** The next token if it is of `type` (consumed), else undefined. */
function take(type: TokenType): IToken | undefined {
  const token = tokens[pos];
  if (token === undefined || token.tokenType !== type) return undefined;
  pos++;
  return token;
}

function ruleText(): RawRule | undefined {
  const shadowToken = take(T.Shadow);
  const on = take(T.On);
  if (on === undefined) return undefined;
  const stageTokens = stageList();
  if (stageTokens === undefined || take(T.Colon) === undefined) return undefined;
  const statements: RawStatement[] = [];
  do {
    const item = statement();
    if (item === undefined) return undefined;
    statements.push(item);
  } while (next() === T.If || next() === T.Identifier);
  return { shadow: shadowToken !== undefined, stageTokens, statements, first: shadowToken ?? on };
}

function stageList(): IToken[] | undefined {
  const first = take(T.Identifier);
  if (first === undefined) return undefined;
  const stages = [first];
  while (take(T.Comma) !== undefined) {
    const stage = take(T.Identifier);
    if (stage === undefined) return undefined;
    stages.push(stage);
  }
  return stages;
}

function statement(): RawStatement | undefined {
  const ifToken = take(T.If);
  if (ifToken === undefined) {
    const only = action();
    return only === undefined ? undefined : { kind: "action", action: only };
  }
  const condition = orExpr();
  if (condition === undefined || take(T.Then) === undefined) return undefined;
  const then = action();
  if (then === undefined) return undefined;
  if (take(T.Else) === undefined) return { kind: "if", ifToken, condition, then };
  const otherwise = action();
  return otherwise === undefined ? undefined : { kind: "if", ifToken, condition, then, else: otherwise };
}

function action(): RawAction | undefined {
  const verb = take(T.Identifier);
  if (verb === undefined) return undefined;
  const words = [verb];
  // Chevrotain's GATE: only `add` takes a second word (`add header`).
  if (verb.image === "add" && next() === T.Identifier) words.push(tokens[pos++] as IToken);
  const args: IToken[] = [];
  for (
    let type = next();
    type === T.NumberLiteral || type === T.EnhancedCode || type === T.StringLiteral;
    type = next()
  ) {
    args.push(tokens[pos++] as IToken);
  }
  return { words, args };
}

function orExpr(): Expr | undefined {
  return logicChain(T.Or, "or", andExpr);
}

function andExpr(): Expr | undefined {
  return logicChain(T.And, "and", notExpr);
}

/** `a or b or c` / `a and b and c`, left-nested as the Chevrotain parser's chainOf builds them. */
function logicChain(word: TokenType, kind: "and" | "or", operand: () => Expr | undefined): Expr | undefined {
  let left = operand();
  while (left !== undefined && take(word) !== undefined) {
    const right = operand();
    left = right === undefined ? undefined : chainNode(kind, left, right);
  }
  return left;
}

function notExpr(): Expr | undefined {
  const not = take(T.Not);
  if (not === undefined) return predicate();
  // As deep as run()'s nesting limit lets `not`s pile up, which the stack holds.
  const operand = notExpr();
  return operand === undefined ? undefined : notNode(toFile, not, operand);
}

const COMPARISONS: ReadonlySet<TokenType> = new Set([
  T.Equal,
  T.NotEqual,
  T.LessEqual,
  T.GreaterEqual,
  T.Less,
  T.Greater,
]);

function predicate(): Expr | undefined {
  const subject = additive();
  if (subject === undefined) return undefined;
  const type = next();
  if (type === undefined) return subject;
  if (COMPARISONS.has(type)) {
    const op = (tokens[pos++] as IToken).image as CompareOp;
    const right = additive();
    return right === undefined ? undefined : predicateNode(toFile, subject, { kind: "compare", op, right });
  }
  if (type === T.Matches) {
    pos++;
    const regex = take(T.RegexLiteral);
    return regex === undefined ? undefined : predicateNode(toFile, subject, { kind: "matches", regex });
  }
  if (type === T.Not || type === T.In) {
    const negated = take(T.Not) !== undefined;
    if (take(T.In) === undefined) return undefined;
    const table = postfix();
    return table === undefined ? undefined : predicateNode(toFile, subject, { kind: "in", negated, table });
  }
  if (type === T.Over) return predicateNode(toFile, subject, { kind: "over", over: tokens[pos++] as IToken });
  return subject;
}

function additive(): Expr | undefined {
  return arithChain(multiplicative, (type) => type === T.Plus || type === T.Minus);
}

function multiplicative(): Expr | undefined {
  return arithChain(postfix, (type) => type === T.Star);
}

/** Operands joined by operators of one precedence level, left-nested. */
function arithChain(
  operand: () => Expr | undefined,
  isOperator: (type: TokenType) => boolean,
): Expr | undefined {
  let left = operand();
  for (let type = next(); left !== undefined && type !== undefined && isOperator(type); type = next()) {
    const op = tokens[pos++] as IToken;
    const right = operand();
    left = right === undefined ? undefined : arithNode(toFile, op, left, right);
  }
  return left;
}

function postfix(): Expr | undefined {
  let value = primary();
  for (let type = next(); value !== undefined && (type === T.Dot || type === T.LBracket); type = next()) {
    pos++;
    if (type === T.Dot) {
      // `over` is a keyword (quota(rcpt) over) and also a quota status member (quota(rcpt).over).
      const property = take(T.Identifier) ?? take(T.Over);
      value = property === undefined ? undefined : suffixNode(toFile, value, { kind: "member", property });
    } else {
      const key = orExpr();
      const close = key === undefined ? undefined : take(T.RBracket);
      value =
        key === undefined || close === undefined
          ? undefined
          : suffixNode(toFile, value, { kind: "index", key, close });
    }
  }
  return value;
}

const LITERALS: ReadonlySet<TokenType> = new Set(T.LITERAL_TOKENS);

function primary(): Expr | undefined {
  const token = tokens[pos];
  if (token === undefined) return undefined;
  const type = token.tokenType;
  if (LITERALS.has(type)) {
    pos++;
    return literalExpr(token, tokenSpan(toFile, token));
  }
  if (type === T.LParen) {
    pos++;
    const inner = orExpr();
    return inner === undefined || take(T.RParen) === undefined ? undefined : inner;
  }
  if (type === T.LBracket) {
    pos++;
    const items = commaSeparated(T.RBracket);
    const close = items === undefined ? undefined : take(T.RBracket);
    return items === undefined || close === undefined ? undefined : listNode(toFile, token, items, close);
  }
  if (type !== T.Identifier) return undefined;
  pos++;
  if (take(T.LParen) === undefined) return nameNode(toFile, token);
  const args = commaSeparated(T.RParen);
  const close = args === undefined ? undefined : take(T.RParen);
  return args === undefined || close === undefined ? undefined : callNode(toFile, token, args, close);
}

/** Zero or more conditions separated by commas, up to (not taking) `close`: Chevrotain's MANY_SEP. */
function commaSeparated(close: TokenType): Expr[] | undefined {
  const items: Expr[] = [];
  if (next() === close) return items;
  do {
    const item = orExpr();
    if (item === undefined) return undefined;
    items.push(item);
  } while (take(T.Comma) !== undefined);
  return items;
}
