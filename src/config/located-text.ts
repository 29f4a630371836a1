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

/** Int32 slots per shared chunk of offsets (64 KiB). */
const CHUNK_SLOTS = 16_384;
let chunk = new Int32Array(CHUNK_SLOTS);
let chunkUsed = 0;
/** Where the slots of the last reserve() begin in the array it answered. */
let reservedAt = 0;

/**
 * Room for `length` offsets, carved out of a shared chunk: an ArrayBuffer of its own per located
 * text (two per scalar, a hundred thousand for 10,000 rules) was a native allocation each and
 * about 200 bytes of bookkeeping held as long as the rules. A chunk lives while any text placed
 * in it does: what a dropped configuration can keep alive is the one chunk it shares with the
 * next. Answers the array; the slots start at `reservedAt`. No view (subarray) is made: a
 * MappedText holds the chunk and its index, as a typed array object per text (two per scalar)
 * was most of what a located text held.
 */
function reserve(length: number): Int32Array {
  if (length > CHUNK_SLOTS / 8) {
    reservedAt = 0;
    return new Int32Array(length);
  }
  if (chunkUsed + length > CHUNK_SLOTS) {
    chunk = new Int32Array(CHUNK_SLOTS);
    chunkUsed = 0;
  }
  reservedAt = chunkUsed;
  chunkUsed += length;
  return chunk;
}

/** Room for a text of `length` characters: the array, and where its starts and ends go. */
function room(length: number): { offsets: Int32Array; s: number; e: number } {
  const offsets = reserve(2 * length);
  return { offsets, s: reservedAt, e: reservedAt + length };
}

/**
 * A LocatedText backed by per-character start and end offsets; sliceable and concatenable. The
 * offsets are in typed arrays: a 10,000-rule file has a million characters in its rules, and
 * numbers in typed arrays are neither objects to collect nor copied by a slice (it shares them).
 * Character i starts at `offsets[s + i]` and ends at `offsets[e + i]`.
 */
export class MappedText implements LocatedText {
  constructor(
    readonly text: string,
    private readonly offsets: Int32Array,
    private readonly s: number,
    private readonly e: number,
    /** Where an empty text is (its offsetAt(0)). */
    private readonly emptyAt: number,
  ) {}

  offsetAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    if (index <= 0) return this.offsets[this.s] as number;
    if (index < length) return this.offsets[this.s + index] as number;
    return this.offsets[this.e + length - 1] as number;
  }

  /** File offset just after character `index` (for ranges). */
  endAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    return this.offsets[this.e + Math.max(0, Math.min(index, length - 1))] as number;
  }

  slice(from: number, to: number = this.text.length): MappedText {
    const start = Math.max(0, Math.min(from, this.text.length));
    const end = Math.max(start, Math.min(to, this.text.length));
    return new MappedText(
      this.text.slice(start, end),
      this.offsets,
      this.s + start,
      this.e + start,
      this.offsetAt(start),
    );
  }

  /** Text placed at one file offset (e.g. the `: ` joining a rule's key and value). */
  static at(text: string, offset: number): MappedText {
    const offsets = reserve(text.length);
    const s = reservedAt;
    offsets.fill(offset, s, s + text.length);
    return new MappedText(text, offsets, s, s, offset);
  }

  static concat(parts: readonly MappedText[]): MappedText {
    let length = 0;
    for (const part of parts) length += part.text.length;
    const { offsets, s, e } = room(length);
    let text = "";
    for (const part of parts) {
      const n = part.text.length;
      offsets.set(part.offsets.subarray(part.s, part.s + n), s + text.length);
      offsets.set(part.offsets.subarray(part.e, part.e + n), e + text.length);
      text += part.text;
    }
    return new MappedText(text, offsets, s, e, parts[0]?.emptyAt ?? 0);
  }
}

/** Any LocatedText as a MappedText (so it can be sliced). */
export function toMapped(located: LocatedText): MappedText {
  if (located instanceof MappedText) return located;
  const length = located.text.length;
  const { offsets, s, e } = room(length);
  for (let i = 0; i < length; i++) {
    offsets[s + i] = located.offsetAt(i);
    offsets[e + i] = located.offsetAt(i + 1);
  }
  return new MappedText(located.text, offsets, s, e, located.offsetAt(0));
}

/** The words of a text separated by whitespace and commas (`mail, rcpt`), each located. */
export function splitWords(located: LocatedText): MappedText[] {
  const mapped = toMapped(located);
  const words: MappedText[] = [];
  for (const match of located.text.matchAll(/[^\s,]+/g)) {
    words.push(mapped.slice(match.index, match.index + match[0].length));
  }
  // A copy without the spare room push leaves (17 slots for one word): a rule keeps its stages.
  return words.slice();
}

/**
 * The tokens of a scalar's source, in parallel arrays (one object per character was most of what
 * loading a large file allocated): token i is one UTF-16 code unit `ch[i]` of the value, at
 * `start[i]`..`end[i]` in the file, `ws[i]` when it is whitespace that folding may change.
 */
interface TokenView {
  readonly length: number;
  ch(i: number): string;
  start(i: number): number;
  end(i: number): number;
  ws(i: number): boolean;
}

/**
 * The tokens of literal source (plain and block scalars): the characters themselves, from `from`,
 * `length` of them; nothing allocated per character (alignLiteral walks them).
 */
class LiteralTokens {
  readonly length: number;
  constructor(
    readonly source: string,
    readonly from: number,
    to: number,
  ) {
    this.length = Math.max(0, to - from);
  }
}

class Tokens implements TokenView {
  private readonly chars: string[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly spaces: boolean[] = [];

  get length(): number {
    return this.chars.length;
  }
  ch(i: number): string {
    return this.chars[i] as string;
  }
  start(i: number): number {
    return this.starts[i] as number;
  }
  end(i: number): number {
    return this.ends[i] as number;
  }
  ws(i: number): boolean {
    return this.spaces[i] === true;
  }

  push(ch: string, start: number, end: number, ws: boolean): void {
    this.chars.push(ch);
    this.starts.push(start);
    this.ends.push(end);
    this.spaces.push(ws);
  }
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

/** Tokens of a double-quoted scalar's inside, from `from` (after the quote) to `to` (the closing quote). */
function doubleQuotedTokens(tokens: Tokens, source: string, from: number, to: number): void {
  let i = from;
  while (i < to) {
    const ch = source[i] as string;
    if (ch !== "\\") {
      tokens.push(ch, i, i + 1, isWs(ch));
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
      tokens.push(simple, i, i + 2, isWs(simple));
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
      for (const unit of produced.split("")) tokens.push(unit, i, end, isWs(unit));
      i = end;
      continue;
    }
    // Not an escape YAML knows (the parser reports it): the characters stand for themselves.
    tokens.push(ch, i, i + 1, false);
    i++;
  }
}

function scalarTokens(source: string, node: Scalar): TokenView | LiteralTokens {
  const range = node.range ?? [0, 0, 0];
  const start = range[0];
  const end = Math.min(range[1], source.length);
  const tokens = new Tokens();
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
          tokens.push("'", i, i + 2, false);
          i += 2;
        } else {
          const ch = source[i] as string;
          tokens.push(ch, i, i + 1, isWs(ch));
          i++;
        }
      }
      break;
    }
    case "BLOCK_LITERAL":
    case "BLOCK_FOLDED": {
      // The header (`|`, `>-`, `|2 # comment`) is the rest of its line.
      const newline = source.indexOf("\n", start);
      return new LiteralTokens(source, newline === -1 ? end : newline + 1, end);
    }
    default:
      return new LiteralTokens(source, start, end);
  }
  return tokens;
}

/** Aligns a value with the tokens of its source: see the file comment. */
function align(value: string, tokens: TokenView | LiteralTokens, fallback: number): MappedText {
  if (tokens instanceof LiteralTokens) return alignLiteral(value, tokens, fallback);
  const { offsets, s, e } = room(value.length);
  const count = tokens.length;
  let t = 0;
  let last = fallback;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (isWs(ch)) {
      if (t < count && tokens.ws(t)) {
        offsets[s + i] = tokens.start(t);
        offsets[e + i] = tokens.end(t);
        last = offsets[e + i] as number;
        t++;
      } else {
        const at = t < count ? tokens.start(t) : last;
        offsets[s + i] = at;
        offsets[e + i] = at;
      }
      continue;
    }
    while (t < count && tokens.ws(t)) t++;
    if (t < count && tokens.ch(t) !== ch) {
      // Should not happen; stay monotone and as close as possible.
      let k = t + 1;
      while (k < count && tokens.ch(k) !== ch) k++;
      if (k < count) t = k;
    }
    if (t >= count) {
      offsets[s + i] = last;
      offsets[e + i] = last;
      continue;
    }
    offsets[s + i] = tokens.start(t);
    offsets[e + i] = tokens.end(t);
    last = offsets[e + i] as number;
    t++;
  }
  return new MappedText(value, offsets, s, e, count > 0 ? tokens.start(0) : fallback);
}

function isWsCode(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13;
}

/**
 * align() for plain and block scalars, whose tokens are the source's characters themselves: the
 * same walk on character codes, without a call and a one-character string per token (every rule
 * of a file goes through here, a million characters for 10,000 rules).
 */
function alignLiteral(value: string, tokens: LiteralTokens, fallback: number): MappedText {
  const { offsets, s, e } = room(value.length);
  const { source, from, length: count } = tokens;
  if (count === value.length && source.startsWith(value, from)) {
    // The value is its source (a plain scalar on one line): where the walk would end up.
    for (let i = 0; i < count; i++) {
      offsets[s + i] = from + i;
      offsets[e + i] = from + i + 1;
    }
    return new MappedText(value, offsets, s, e, count > 0 ? from : fallback);
  }
  let t = 0;
  let last = fallback;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (isWsCode(code)) {
      const at = t < count ? from + t : last;
      const taken = t < count && isWsCode(source.charCodeAt(at));
      offsets[s + i] = at;
      offsets[e + i] = taken ? at + 1 : at;
      if (taken) {
        last = at + 1;
        t++;
      }
      continue;
    }
    while (t < count && isWsCode(source.charCodeAt(from + t))) t++;
    if (t < count && source.charCodeAt(from + t) !== code) {
      let k = t + 1;
      while (k < count && source.charCodeAt(from + k) !== code) k++;
      if (k < count) t = k;
    }
    const at = t < count ? from + t : last;
    offsets[s + i] = at;
    offsets[e + i] = t < count ? at + 1 : at;
    if (t < count) {
      last = at + 1;
      t++;
    }
  }
  return new MappedText(value, offsets, s, e, count > 0 ? from : fallback);
}

/** The located value of a scalar node of a document parsed from `source`. */
export function locateScalar(source: string, node: Scalar): MappedText {
  const range = node.range ?? [0, 0, 0];
  if (typeof node.value !== "string") {
    // Numbers, booleans, null: their source text stands for itself.
    const text = typeof node.source === "string" ? node.source : String(node.value);
    const { offsets, s, e } = room(text.length);
    for (let i = 0; i < text.length; i++) {
      offsets[s + i] = range[0] + i;
      offsets[e + i] = range[0] + i + 1;
    }
    return new MappedText(text, offsets, s, e, range[0]);
  }
  const contentStart = node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE" ? range[0] + 1 : range[0];
  return align(node.value, scalarTokens(source, node), contentStart);
}
