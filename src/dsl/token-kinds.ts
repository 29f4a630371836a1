/**
 * Tokens of the rule language, as plain objects: what the hand-written lexer (lexer.ts) and parser
 * (fast-parser.ts) need, without loading Chevrotain. tokens.ts makes these same objects Chevrotain
 * token types (the grammar's lexer and parser, for rules the hand-written parser gives up on, and
 * the editor's features): one identity per token, whichever side made the token. Order matters:
 * Chevrotain tries patterns in this order, so the longer literal forms (CIDR, IP, enhanced status
 * code, size, duration) come before numbers.
 */
import type { TokenType } from "./chevrotain.js";

function kind(name: string, pattern: RegExp): TokenType {
  return { name, PATTERN: pattern };
}

export const WhiteSpace = kind("WhiteSpace", /[ \t\r\n]+/);
export const Comment = kind("Comment", /#[^\n]*/);

export const StringLiteral = kind("StringLiteral", /"(?:[^"\\\n]|\\.)*"/);
/** A string that reaches the end of the line without its closing quote: reported, not guessed. */
export const UnterminatedString = kind("UnterminatedString", /"(?:[^"\\\n]|\\.)*/);
export const RegexLiteral = kind("RegexLiteral", /\/(?:[^/\\\n]|\\.)+\/[a-z]*/);
export const UnterminatedRegex = kind("UnterminatedRegex", /\/(?:[^/\\\n]|\\.)*/);

const IPV4 = /(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}/.source;
// IPv6 needs at least two colons, so `on rcpt:` never lexes as an address.
const IPV6 = /(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)?/.source;
export const Cidr = kind("Cidr", new RegExp(`(?:${IPV4}|${IPV6})\\/\\d{1,3}(?![\\w.:])`));
export const IpAddress = kind("IpAddress", new RegExp(`${IPV4}(?![\\w.])|${IPV6}(?![\\w.:])`));
export const EnhancedCode = kind("EnhancedCode", /[245]\.\d{1,3}\.\d{1,3}(?![\w.])/);
export const SizeLiteral = kind("SizeLiteral", /\d+(?:\.\d+)?(?:KiB|MiB|GiB|TiB|KB|MB|GB|TB|B)(?![\w.])/);
export const DurationLiteral = kind("DurationLiteral", /\d+(?:\.\d+)?(?:ms|s|m|h|d)(?![\w.])/);
export const NumberLiteral = kind("NumberLiteral", /\d+(?:\.\d+)?(?![\w])/);

export const Identifier = kind("Identifier", /[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*/);

function keyword(word: string): TokenType {
  return { name: word[0]?.toUpperCase() + word.slice(1), PATTERN: new RegExp(word), LONGER_ALT: Identifier };
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

export const Equal = kind("Equal", /==/);
export const NotEqual = kind("NotEqual", /!=/);
export const LessEqual = kind("LessEqual", /<=/);
export const GreaterEqual = kind("GreaterEqual", />=/);
export const Less = kind("Less", /</);
export const Greater = kind("Greater", />/);
export const LParen = kind("LParen", /\(/);
export const RParen = kind("RParen", /\)/);
export const LBracket = kind("LBracket", /\[/);
export const RBracket = kind("RBracket", /]/);
export const Comma = kind("Comma", /,/);
export const Colon = kind("Colon", /:/);
export const Dot = kind("Dot", /\./);
export const Plus = kind("Plus", /\+/);
// `-` inside a name belongs to the name (`my-list`): subtraction needs spaces around it there.
export const Minus = kind("Minus", /-/);
export const Star = kind("Star", /\*/);

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

/** Skipped by the lexers: no token is made of them. */
export const SKIPPED_TOKENS: readonly TokenType[] = [WhiteSpace, Comment];
