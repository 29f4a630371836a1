/**
 * Tokens of the rule language. Order matters: Chevrotain tries patterns in this order, so the
 * longer literal forms (CIDR, IP, enhanced status code, size, duration) come before numbers.
 */
import { createToken, Lexer, type TokenType } from "./chevrotain.js";

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: "Comment", pattern: /#[^\n]*/, group: Lexer.SKIPPED });

export const StringLiteral = createToken({ name: "StringLiteral", pattern: /"(?:[^"\\\n]|\\.)*"/ });
/** A string that reaches the end of the line without its closing quote: reported, not guessed. */
export const UnterminatedString = createToken({ name: "UnterminatedString", pattern: /"(?:[^"\\\n]|\\.)*/ });
export const RegexLiteral = createToken({ name: "RegexLiteral", pattern: /\/(?:[^/\\\n]|\\.)+\/[a-z]*/ });
export const UnterminatedRegex = createToken({ name: "UnterminatedRegex", pattern: /\/(?:[^/\\\n]|\\.)*/ });

const IPV4 = /(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}/.source;
// IPv6 needs at least two colons, so `on rcpt:` never lexes as an address.
const IPV6 = /(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)?/.source;
export const Cidr = createToken({
  name: "Cidr",
  pattern: new RegExp(`(?:${IPV4}|${IPV6})\\/\\d{1,3}(?![\\w.:])`),
});
export const IpAddress = createToken({
  name: "IpAddress",
  pattern: new RegExp(`${IPV4}(?![\\w.])|${IPV6}(?![\\w.:])`),
});
export const EnhancedCode = createToken({
  name: "EnhancedCode",
  pattern: /[245]\.\d{1,3}\.\d{1,3}(?![\w.])/,
});
export const SizeLiteral = createToken({
  name: "SizeLiteral",
  pattern: /\d+(?:\.\d+)?(?:KiB|MiB|GiB|TiB|KB|MB|GB|TB|B)(?![\w.])/,
});
export const DurationLiteral = createToken({
  name: "DurationLiteral",
  pattern: /\d+(?:\.\d+)?(?:ms|s|m|h|d)(?![\w.])/,
});
export const NumberLiteral = createToken({ name: "NumberLiteral", pattern: /\d+(?:\.\d+)?(?![\w])/ });

export const Identifier = createToken({
  name: "Identifier",
  pattern: /[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*/,
});

function keyword(word: string): TokenType {
  return createToken({
    name: word[0]?.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    longer_alt: Identifier,
  });
}
export const Shadow = keyword("shadow");
export const On = keyword("on");
export const If = keyword("if");
export const Then = keyword("then");
export const Else = keyword("else");
export const And = keyword("and");
export const Or = keyword("or");
export const Not = keyword("not");
export const In = keyword("in");
export const Matches = keyword("matches");
export const Over = keyword("over");
export const True = keyword("true");
export const False = keyword("false");

/** The tokens that are a value by themselves; both parsers read a primary value from them. */
export const LITERAL_TOKENS: readonly TokenType[] = [
  StringLiteral,
  NumberLiteral,
  SizeLiteral,
  DurationLiteral,
  IpAddress,
  Cidr,
  True,
  False,
];

export const Equal = createToken({ name: "Equal", pattern: /==/ });
export const NotEqual = createToken({ name: "NotEqual", pattern: /!=/ });
export const LessEqual = createToken({ name: "LessEqual", pattern: /<=/ });
export const GreaterEqual = createToken({ name: "GreaterEqual", pattern: />=/ });
export const Less = createToken({ name: "Less", pattern: /</ });
export const Greater = createToken({ name: "Greater", pattern: />/ });
export const LParen = createToken({ name: "LParen", pattern: /\(/ });
export const RParen = createToken({ name: "RParen", pattern: /\)/ });
export const LBracket = createToken({ name: "LBracket", pattern: /\[/ });
export const RBracket = createToken({ name: "RBracket", pattern: /]/ });
export const Comma = createToken({ name: "Comma", pattern: /,/ });
export const Colon = createToken({ name: "Colon", pattern: /:/ });
export const Dot = createToken({ name: "Dot", pattern: /\./ });
export const Plus = createToken({ name: "Plus", pattern: /\+/ });
// `-` inside a name belongs to the name (`my-list`): subtraction needs spaces around it there.
export const Minus = createToken({ name: "Minus", pattern: /-/ });
export const Star = createToken({ name: "Star", pattern: /\*/ });

export const KEYWORDS = [Shadow, On, If, Then, Else, And, Or, Not, In, Matches, Over, True, False];
export const KEYWORD_WORDS: readonly string[] = KEYWORDS.map((k) => k.name.toLowerCase());

export const ALL_TOKENS: TokenType[] = [
  WhiteSpace,
  Comment,
  StringLiteral,
  UnterminatedString,
  RegexLiteral,
  UnterminatedRegex,
  Cidr,
  IpAddress,
  EnhancedCode,
  SizeLiteral,
  DurationLiteral,
  NumberLiteral,
  ...KEYWORDS,
  Identifier,
  Equal,
  NotEqual,
  LessEqual,
  GreaterEqual,
  Less,
  Greater,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Colon,
  Dot,
  Plus,
  Minus,
  Star,
];

export const RuleLexer = new Lexer(ALL_TOKENS, {
  positionTracking: "onlyOffset",
  ensureOptimizations: false,
});
