/**
 * Maps the characters of a YAML scalar's value back to the file, whatever its style, so the rule
 * language and LDAP filters can report errors at the exact line and column.
 *
 * How: the scalar's source (its node range) is cut into "tokens", each a character of the value
 * it stands for, with where it is in the file: literal characters stand for themselves, a
 * double-quoted escape (`\x41`, `\"`, `\u00e9`, ...) stands for what it produces and sits at its
 * backslash, `''` in single quotes stands for one `'`. Quotes, block scalar headers and escaped
 * line breaks stand for nothing. Then the value and the tokens are walked together: YAML only ever
 * drops, adds or changes whitespace between the two (line folding, indentation, chomping), so every
 * non-whitespace character of the value is the next non-whitespace token, exactly; whitespace
 * characters take the next whitespace token when there is one (an approximation that only matters
 * to no one: nobody points at a folded space).
 */
import type { Scalar } from "yaml";
import type { LocatedText } from "./types.js";

/** A LocatedText backed by per-character start and end offsets; sliceable and concatenable. */
export class MappedText implements LocatedText {
  constructor(
    readonly text: string,
    private readonly starts: readonly number[],
    private readonly ends: readonly number[],
    /** Where an empty text is (its offsetAt(0)). */
    private readonly emptyAt: number,
  ) {}

  offsetAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    if (index <= 0) return this.starts[0] as number;
    if (index < length) return this.starts[index] as number;
    return this.ends[length - 1] as number;
  }

  /** File offset just after character `index` (for ranges). */
  endAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    return this.ends[Math.max(0, Math.min(index, length - 1))] as number;
  }

  slice(from: number, to: number = this.text.length): MappedText {
    const start = Math.max(0, Math.min(from, this.text.length));
    const end = Math.max(start, Math.min(to, this.text.length));
    return new MappedText(
      this.text.slice(start, end),
      this.starts.slice(start, end),
      this.ends.slice(start, end),
      this.offsetAt(start),
    );
  }

  /** Text placed at one file offset (e.g. the `: ` joining a rule's key and value). */
  static at(text: string, offset: number): MappedText {
    return new MappedText(text, Array(text.length).fill(offset), Array(text.length).fill(offset), offset);
  }

  static concat(parts: readonly MappedText[]): MappedText {
    const starts: number[] = [];
    const ends: number[] = [];
    let text = "";
    for (const part of parts) {
      text += part.text;
      starts.push(...part.starts);
      ends.push(...part.ends);
    }
    return new MappedText(text, starts, ends, parts[0]?.emptyAt ?? 0);
  }
}

/** Any LocatedText as a MappedText (so it can be sliced). */
export function toMapped(located: LocatedText): MappedText {
  if (located instanceof MappedText) return located;
  const starts: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < located.text.length; i++) {
    starts.push(located.offsetAt(i));
    ends.push(located.offsetAt(i + 1));
  }
  return new MappedText(located.text, starts, ends, located.offsetAt(0));
}

/** The words of a text separated by whitespace and commas (`mail, rcpt`), each located. */
export function splitWords(located: LocatedText): MappedText[] {
  const mapped = toMapped(located);
  const words: MappedText[] = [];
  for (const match of located.text.matchAll(/[^\s,]+/g)) {
    words.push(mapped.slice(match.index, match.index + match[0].length));
  }
  return words;
}

interface Token {
  /** One UTF-16 code unit of the value. */
  ch: string;
  start: number;
  end: number;
  ws: boolean;
}

function isWs(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\r";
}

const SIMPLE_ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_ESCAPES: Record<string, number> = { x: 2, u: 4, U: 8 };

function pushLiteral(tokens: Token[], source: string, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const ch = source[i] as string;
    tokens.push({ ch, start: i, end: i + 1, ws: isWs(ch) });
  }
}

/** Tokens of a double-quoted scalar's inside, from `from` (after the quote) to `to` (the closing quote). */
function doubleQuotedTokens(tokens: Token[], source: string, from: number, to: number): void {
  let i = from;
  while (i < to) {
    const ch = source[i] as string;
    if (ch !== "\\") {
      tokens.push({ ch, start: i, end: i + 1, ws: isWs(ch) });
      i++;
      continue;
    }
    const next = source[i + 1] ?? "";
    if (next === "\n" || next === "\r") {
      // Escaped line break: nothing, and the next line's indentation is dropped too.
      let j = i + 2;
      if (next === "\r" && source[j] === "\n") j++;
      while (j < to && (source[j] === " " || source[j] === "\t")) j++;
      i = j;
      continue;
    }
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      tokens.push({ ch: simple, start: i, end: i + 2, ws: isWs(simple) });
      i += 2;
      continue;
    }
    const digits = HEX_ESCAPES[next];
    if (digits !== undefined) {
      const hex = source.slice(i + 2, i + 2 + digits);
      const end = i + 2 + hex.length;
      const code = /^[0-9a-fA-F]+$/.test(hex) ? Number.parseInt(hex, 16) : Number.NaN;
      const produced =
        Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : source.slice(i, end);
      for (const unit of produced.split("")) tokens.push({ ch: unit, start: i, end, ws: isWs(unit) });
      i = end;
      continue;
    }
    // Not an escape YAML knows (the parser reports it): the characters stand for themselves.
    tokens.push({ ch, start: i, end: i + 1, ws: false });
    i++;
  }
}

function scalarTokens(source: string, node: Scalar): Token[] {
  const range = node.range ?? [0, 0, 0];
  const start = range[0];
  const end = Math.min(range[1], source.length);
  const tokens: Token[] = [];
  switch (node.type) {
    case "QUOTE_DOUBLE": {
      const close = source[end - 1] === '"' && end - 1 > start ? end - 1 : end;
      doubleQuotedTokens(tokens, source, start + 1, close);
      break;
    }
    case "QUOTE_SINGLE": {
      const close = source[end - 1] === "'" && end - 1 > start ? end - 1 : end;
      let i = start + 1;
      while (i < close) {
        if (source[i] === "'" && source[i + 1] === "'") {
          tokens.push({ ch: "'", start: i, end: i + 2, ws: false });
          i += 2;
        } else {
          const ch = source[i] as string;
          tokens.push({ ch, start: i, end: i + 1, ws: isWs(ch) });
          i++;
        }
      }
      break;
    }
    case "BLOCK_LITERAL":
    case "BLOCK_FOLDED": {
      // The header (`|`, `>-`, `|2 # comment`) is the rest of its line.
      const newline = source.indexOf("\n", start);
      pushLiteral(tokens, source, newline === -1 ? end : newline + 1, end);
      break;
    }
    default:
      pushLiteral(tokens, source, start, end);
  }
  return tokens;
}

/** Aligns a value with the tokens of its source: see the file comment. */
function align(value: string, tokens: readonly Token[], fallback: number): MappedText {
  const starts: number[] = [];
  const ends: number[] = [];
  let t = 0;
  let last = fallback;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (isWs(ch)) {
      const token = tokens[t];
      if (token?.ws) {
        starts.push(token.start);
        ends.push(token.end);
        last = token.end;
        t++;
      } else {
        const at = token?.start ?? last;
        starts.push(at);
        ends.push(at);
      }
      continue;
    }
    while (t < tokens.length && (tokens[t] as Token).ws) t++;
    let token = tokens[t];
    if (token !== undefined && token.ch !== ch) {
      // Should not happen; stay monotone and as close as possible.
      let k = t + 1;
      while (k < tokens.length && (tokens[k] as Token).ch !== ch) k++;
      if (k < tokens.length) {
        t = k;
        token = tokens[k];
      }
    }
    if (token === undefined) {
      starts.push(last);
      ends.push(last);
      continue;
    }
    starts.push(token.start);
    ends.push(token.end);
    last = token.end;
    t++;
  }
  return new MappedText(value, starts, ends, tokens[0]?.start ?? fallback);
}

/** The located value of a scalar node of a document parsed from `source`. */
export function locateScalar(source: string, node: Scalar): MappedText {
  const range = node.range ?? [0, 0, 0];
  if (typeof node.value !== "string") {
    // Numbers, booleans, null: their source text stands for itself.
    const text = typeof node.source === "string" ? node.source : String(node.value);
    const starts = Array.from({ length: text.length }, (_, i) => range[0] + i);
    return new MappedText(
      text,
      starts,
      starts.map((s) => s + 1),
      range[0],
    );
  }
  const contentStart = node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE" ? range[0] + 1 : range[0];
  return align(node.value, scalarTokens(source, node), contentStart);
}
