/**
 * The rule language's lexer for the parser: the same tokens and errors as Chevrotain's `RuleLexer`
 * (tokens.ts) makes of the definitions in token-kinds.ts, which stay the definition (the LSP and
 * the editor grammar use RuleLexer, and test/dsl/lexer.test.ts holds this one to it). Why a second one: Chevrotain's tokenizer tries the patterns one by one
 * as regular expressions and cuts two strings per keyword; validating 10,000 rules spent some
 * 34 MB of allocation there. Here the first character decides what is tried, and keywords and
 * operators get their image from a constant.
 *
 * Each matcher below follows one pattern of token-kinds.ts as the regular expression engine reads
 * it, backtracking included: an address's parts are whole runs of digits (a shorter part would be
 * followed by a digit, which no pattern allows), and so on; the comments say where it matters.
 */
import type { IToken, TokenType } from "./chevrotain.js";
import * as T from "./token-kinds.js";

/** One run of characters no pattern matches, as Chevrotain reports it: where it starts, how long. */
export interface LexError {
  offset: number;
  length: number;
}

export interface Lexed {
  tokens: IToken[];
  errors: LexError[];
}

// What the last matcher found: its token type (undefined for skipped text) and its image when it
// is always the same text. Module state, not a result object, so a match allocates nothing.
let found: TokenType | undefined;
let fixedImage: string | undefined;

export function lexRule(text: string): Lexed {
  const tokens: IToken[] = [];
  const errors: LexError[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const end = matchAt(text, i);
    if (end < 0) {
      // Like Chevrotain: one error for the run, up to where some pattern matches again.
      const start = i;
      i++;
      while (i < n && matchAt(text, i) < 0) i++;
      errors.push({ offset: start, length: i - start });
      continue;
    }
    const type = found;
    if (type !== undefined) {
      const image = fixedImage ?? text.slice(i, end);
      // The fields and their order of Chevrotain's offset-only tokens, so the parser sees one shape.
      tokens.push({
        image,
        startOffset: i,
        tokenTypeIdx: type.tokenTypeIdx as number,
        tokenType: type,
      });
    }
    i = end;
  }
  return { tokens, errors };
}

/** Where the token starting at `i` ends (sets `found` and `fixedImage`), or -1: no pattern matches. */
function matchAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  fixedImage = undefined;
  if (c === 32 || c === 9 || c === 13 || c === 10) {
    found = undefined;
    let j = i + 1;
    for (let d = text.charCodeAt(j); d === 32 || d === 9 || d === 13 || d === 10; d = text.charCodeAt(++j));
    return j;
  }
  if (c === 35) {
    found = undefined;
    const j = text.indexOf("\n", i);
    return j < 0 ? text.length : j;
  }
  if (c === 34) return quoted(text, i);
  if (c === 47) return slashed(text, i);
  if (isHex(c) || c === 58) {
    const end = address(text, i);
    if (end >= 0) return end;
  }
  if (isDigit(c)) {
    const end = numeric(text, i);
    if (end >= 0) return end;
  }
  if (isWordStart(c)) return word(text, i);
  return operator(text, i, c);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
function isWordStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
/** `\w` of a regular expression without the u flag. */
function isWord(c: number): boolean {
  return isWordStart(c) || isDigit(c);
}
/** What `.` does not match. */
function isLineTerminator(c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
}
function digitsEnd(text: string, j: number): number {
  while (isDigit(text.charCodeAt(j))) j++;
  return j;
}

/** Where `(?:[^X\\\n]|\\.)*` stops after the opening character at `i` (X the closing one). */
function scanQuoted(text: string, i: number, close: number): number {
  const n = text.length;
  let j = i + 1;
  while (j < n) {
    const c = text.charCodeAt(j);
    if (c === close || c === 10) break;
    if (c === 92) {
      // A backslash before a line break or the end is no escape, and nothing else takes it.
      if (j + 1 >= n || isLineTerminator(text.charCodeAt(j + 1))) break;
      j += 2;
    } else j++;
  }
  return j;
}

function quoted(text: string, i: number): number {
  const j = scanQuoted(text, i, 34);
  if (text.charCodeAt(j) === 34) {
    found = T.StringLiteral;
    return j + 1;
  }
  found = T.UnterminatedString;
  return j;
}

function slashed(text: string, i: number): number {
  const j = scanQuoted(text, i, 47);
  // RegexLiteral needs one character at least: `//` is an unterminated `/` and then another.
  if (j > i + 1 && text.charCodeAt(j) === 47) {
    let end = j + 1;
    for (let c = text.charCodeAt(end); c >= 97 && c <= 122; c = text.charCodeAt(++end));
    found = T.RegexLiteral;
    return end;
  }
  found = T.UnterminatedRegex;
  return j;
}

/** Cidr, then IpAddress. */
function address(text: string, i: number): number {
  const v4 = ipv4End(text, i);
  const v6 = ipv6End(text, i);
  const cidr = Math.max(prefixEnd(text, v4), prefixEnd(text, v6));
  if (cidr >= 0) {
    found = T.Cidr;
    return cidr;
  }
  found = T.IpAddress;
  if (v4 >= 0 && !isWord(text.charCodeAt(v4)) && text.charCodeAt(v4) !== 46) return v4;
  if (v6 >= 0 && !isWord(text.charCodeAt(v6)) && text.charCodeAt(v6) !== 46) return v6;
  return -1;
}

/** `\/\d{1,3}(?![\w.:])` after an address ending at `end` (-1: none there): the digits a whole run. */
function prefixEnd(text: string, end: number): number {
  if (end < 0 || text.charCodeAt(end) !== 47) return -1;
  const prefix = digitsEnd(text, end + 1);
  const after = text.charCodeAt(prefix);
  if (prefix === end + 1 || prefix > end + 4 || isWord(after) || after === 46 || after === 58) return -1;
  return prefix;
}

/**
 * The end of four dotted octets from `i`, or -1. Each octet is a whole run of digits (what
 * follows one is a dot, a slash or no word character) of at most 255 without a leading zero:
 * `25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d`.
 */
function ipv4End(text: string, i: number): number {
  let j = i;
  for (let k = 0; k < 4; k++) {
    if (k > 0) {
      if (text.charCodeAt(j) !== 46) return -1;
      j++;
    }
    const end = digitsEnd(text, j);
    const length = end - j;
    if (length === 0 || length > 3) return -1;
    if (length > 1 && text.charCodeAt(j) === 48) return -1;
    if (length === 3 && octet(text, j) > 255) return -1;
    j = end;
  }
  return j;
}

function octet(text: string, j: number): number {
  return (text.charCodeAt(j) - 48) * 100 + (text.charCodeAt(j + 1) - 48) * 10 + text.charCodeAt(j + 2) - 48;
}

/**
 * The end of the run of hex digits and colons from `i` if the whole run is an IPv6 address of
 * tokens.ts, or -1. Whole, because what follows a match is never a hex digit or a colon. The
 * pattern `(?:H{0,4}:){2,7}(?:H{1,4}|:)?` is: 2 to 7 colons, or 8 with nothing after the last
 * two, and no group of more than four hex digits.
 */
function ipv6End(text: string, i: number): number {
  let colons = 0;
  let group = 0;
  let before = 0;
  let j = i;
  for (let c = text.charCodeAt(j); isHex(c) || c === 58; c = text.charCodeAt(++j)) {
    if (c === 58) {
      colons++;
      before = group;
      group = 0;
    } else if (++group > 4) return -1;
  }
  if (colons >= 2 && colons <= 7) return j;
  return colons === 8 && group === 0 && before === 0 ? j : -1;
}

/** EnhancedCode, SizeLiteral, DurationLiteral, NumberLiteral, from a digit at `i`. */
function numeric(text: string, i: number): number {
  const code = enhancedCode(text, i);
  if (code >= 0) {
    found = T.EnhancedCode;
    return code;
  }
  const whole = digitsEnd(text, i);
  const fraction =
    text.charCodeAt(whole) === 46 && isDigit(text.charCodeAt(whole + 1)) ? digitsEnd(text, whole + 1) : whole;
  const size = suffixEnd(text, fraction, SIZE_UNITS);
  if (size >= 0) {
    found = T.SizeLiteral;
    return size;
  }
  const duration = suffixEnd(text, fraction, DURATION_UNITS);
  if (duration >= 0) {
    found = T.DurationLiteral;
    return duration;
  }
  found = T.NumberLiteral;
  if (!isWord(text.charCodeAt(fraction))) return fraction;
  // Without its fraction the number is followed by a dot, which `(?![\w])` lets through.
  return fraction > whole ? whole : -1;
}

/** `[245]\.\d{1,3}\.\d{1,3}(?![\w.])`: both runs whole, as a digit may not follow either. */
function enhancedCode(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if ((c !== 50 && c !== 52 && c !== 53) || text.charCodeAt(i + 1) !== 46) return -1;
  const middle = digitsEnd(text, i + 2);
  if (middle === i + 2 || middle > i + 5 || text.charCodeAt(middle) !== 46) return -1;
  const end = digitsEnd(text, middle + 1);
  const after = text.charCodeAt(end);
  if (end === middle + 1 || end > middle + 4 || isWord(after) || after === 46) return -1;
  return end;
}

// In the patterns' order; no two of a list can match at the same place and both be followed by
// what `(?![\w.])` allows, so the first that fits is the regular expression's answer.
const SIZE_UNITS = ["KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB", "B"];
const DURATION_UNITS = ["ms", "s", "m", "h", "d"];

function suffixEnd(text: string, j: number, units: readonly string[]): number {
  for (const unit of units) {
    if (!text.startsWith(unit, j)) continue;
    const end = j + unit.length;
    const after = text.charCodeAt(end);
    if (!isWord(after) && after !== 46) return end;
  }
  return -1;
}

const KEYWORDS: readonly { word: string; type: TokenType }[] = T.KEYWORDS.map((type, k) => ({
  word: T.KEYWORD_WORDS[k] as string,
  type,
}));

/**
 * Identifier or keyword. A keyword's pattern matches a prefix of the identifier there, which is
 * its `longer_alt` and wins when longer: so a keyword is an identifier spelled exactly as one.
 */
function word(text: string, i: number): number {
  let j = i + 1;
  while (isWord(text.charCodeAt(j))) j++;
  while (text.charCodeAt(j) === 45 && isWord(text.charCodeAt(j + 1))) {
    j += 2;
    while (isWord(text.charCodeAt(j))) j++;
  }
  found = T.Identifier;
  for (const keyword of KEYWORDS) {
    if (keyword.word.length === j - i && text.startsWith(keyword.word, i)) {
      found = keyword.type;
      fixedImage = keyword.word;
      break;
    }
  }
  return j;
}

function operator(text: string, i: number, c: number): number {
  const equals = text.charCodeAt(i + 1) === 61;
  switch (c) {
    case 61:
      return equals ? fixed(T.Equal, "==", i) : -1;
    case 33:
      return equals ? fixed(T.NotEqual, "!=", i) : -1;
    case 60:
      return equals ? fixed(T.LessEqual, "<=", i) : fixed(T.Less, "<", i);
    case 62:
      return equals ? fixed(T.GreaterEqual, ">=", i) : fixed(T.Greater, ">", i);
    default: {
      const single = SINGLE[c];
      return single === undefined ? -1 : fixed(single, String.fromCharCode(c), i);
    }
  }
}

function fixed(type: TokenType, image: string, i: number): number {
  found = type;
  fixedImage = image;
  return i + image.length;
}

const SINGLE: Partial<Record<number, TokenType>> = {
  40: T.LParen,
  41: T.RParen,
  91: T.LBracket,
  93: T.RBracket,
  44: T.Comma,
  58: T.Colon,
  46: T.Dot,
  43: T.Plus,
  45: T.Minus,
  42: T.Star,
};
