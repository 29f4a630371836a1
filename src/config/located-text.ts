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

/** Numbers per run: see Runs. */
const RUN = 4;

/** Int32 slots per shared chunk of runs (64 KiB). */
const CHUNK_SLOTS = 16_384;
let chunk = new Int32Array(CHUNK_SLOTS);
let chunkUsed = 0;

/**
 * Stores `runs` in the shared chunk (a new one when it is full) and answers the chunk; the runs
 * start at `chunkUsed - runs.length`. A chunk lives while any text placed in it does.
 */
function store(runs: readonly number[]): Int32Array {
  if (runs.length > CHUNK_SLOTS / 8) return Int32Array.from(runs);
  if (chunkUsed + runs.length > CHUNK_SLOTS) {
    chunk = new Int32Array(CHUNK_SLOTS);
    chunkUsed = 0;
  }
  chunk.set(runs, chunkUsed);
  chunkUsed += runs.length;
  return chunk;
}

/**
 * A text's characters as runs of characters that sit one after another in the file. Run k takes
 * four numbers: the index of its first character, that character's file offset, the step from
 * one character's offset to the next (1 for characters written out, 0 for characters YAML made
 * up, which all sit at one place) and each character's width in the file (1; 0 for a made-up
 * character, 2 for `''`, 4 for `\x41`...). A rule in a block scalar is a run per line (and per
 * space between words), where two offsets per character were 8 bytes per character.
 */
class Runs {
  /** Copied into a chunk by text(): this array dies young. */
  private readonly scratch: number[] = [];
  private count = 0;
  private lastStart = 0;

  /** Appends the character at `start`..`end`, extending the last run when it continues it. */
  push(start: number, end: number): void {
    const runs = this.scratch;
    const n = runs.length;
    if (n > 0 && end - start === runs[n - 1]) {
      const step = start - this.lastStart;
      const single = this.count - (runs[n - 4] as number) === 1;
      if ((single && (step === 0 || step === 1)) || (!single && step === runs[n - 2])) {
        if (single) runs[n - 2] = step;
        this.lastStart = start;
        this.count++;
        return;
      }
    }
    runs.push(this.count, start, 1, end - start);
    this.lastStart = start;
    this.count++;
  }

  /** Appends `length` characters written out from `start` on: one run, or the last one extended. */
  pushLine(start: number, length: number): void {
    if (length === 0) return;
    const runs = this.scratch;
    const n = runs.length;
    const continues =
      n > 0 &&
      runs[n - 1] === 1 &&
      start === this.lastStart + 1 &&
      (runs[n - 2] === 1 || this.count - (runs[n - 4] as number) === 1);
    if (continues) runs[n - 2] = 1;
    else runs.push(this.count, start, 1, 1);
    this.lastStart = start + length - 1;
    this.count += length;
  }

  text(value: string, emptyAt: number): MappedText {
    return MappedText.of(value, this.scratch, emptyAt);
  }
}

/**
 * A LocatedText whose characters' places are runs (see Runs), kept in a shared chunk of Int32
 * slots (numbers in typed arrays are neither objects to collect nor copied by the collector);
 * sliceable and concatenable. A slice or a concatenation copies the few runs it covers.
 */
export class MappedText implements LocatedText {
  private constructor(
    readonly text: string,
    private readonly runs: Int32Array,
    /** Slot of the first run in `runs`, and one past the last. */
    private readonly first: number,
    private readonly last: number,
    /** Where an empty text is (its offsetAt(0)). */
    private readonly emptyAt: number,
  ) {}

  /** The text whose runs are `runs` (see Runs). */
  static of(text: string, runs: readonly number[], emptyAt: number): MappedText {
    const stored = store(runs);
    const first = stored === chunk ? chunkUsed - runs.length : 0;
    return new MappedText(text, stored, first, first + runs.length, emptyAt);
  }

  /** The slot of the run holding character `index` (0 <= index < length). */
  private runOf(index: number): number {
    const runs = this.runs;
    let low = 0;
    let high = (this.last - this.first) / RUN - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((runs[this.first + mid * RUN] as number) <= index) low = mid;
      else high = mid - 1;
    }
    return this.first + low * RUN;
  }

  /** Where character `index` of run slot `r` starts. */
  private startIn(r: number, index: number): number {
    const runs = this.runs;
    return (runs[r + 1] as number) + (runs[r + 2] as number) * (index - (runs[r] as number));
  }

  private startOf(index: number): number {
    return this.startIn(this.runOf(index), index);
  }

  private endOf(index: number): number {
    const r = this.runOf(index);
    return this.startIn(r, index) + (this.runs[r + 3] as number);
  }

  offsetAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    if (index <= 0) return this.startOf(0);
    if (index < length) return this.startOf(index);
    return this.endOf(length - 1);
  }

  /** File offset just after character `index` (for ranges). */
  endAt(index: number): number {
    const length = this.text.length;
    if (length === 0) return this.emptyAt;
    return this.endOf(Math.max(0, Math.min(index, length - 1)));
  }

  /** Appends this text's runs from character `from` (below `to`) to `out`, their indexes moved by `shift`. */
  private runsInto(out: number[], from: number, to: number, shift: number): void {
    if (to <= from) return;
    const runs = this.runs;
    const r = this.runOf(from);
    out.push(from + shift, this.startIn(r, from), runs[r + 2] as number, runs[r + 3] as number);
    for (let k = r + RUN; k < this.last && (runs[k] as number) < to; k += RUN)
      out.push(
        (runs[k] as number) + shift,
        runs[k + 1] as number,
        runs[k + 2] as number,
        runs[k + 3] as number,
      );
  }

  slice(from: number, to: number = this.text.length): MappedText {
    const start = Math.max(0, Math.min(from, this.text.length));
    const end = Math.max(start, Math.min(to, this.text.length));
    const runs: number[] = [];
    this.runsInto(runs, start, end, -start);
    return MappedText.of(this.text.slice(start, end), runs, this.offsetAt(start));
  }

  /** Text placed at one file offset (e.g. the `: ` joining a rule's key and value). */
  static at(text: string, offset: number): MappedText {
    return MappedText.of(text, text.length === 0 ? [] : [0, offset, 0, 0], offset);
  }

  static concat(parts: readonly MappedText[]): MappedText {
    const runs: number[] = [];
    let text = "";
    for (const part of parts) {
      part.runsInto(runs, 0, part.text.length, text.length);
      text += part.text;
    }
    return MappedText.of(text, runs, parts[0]?.emptyAt ?? 0);
  }
}

/** Any LocatedText as a MappedText (so it can be sliced). */
export function toMapped(located: LocatedText): MappedText {
  if (located instanceof MappedText) return located;
  const runs = new Runs();
  for (let i = 0; i < located.text.length; i++) runs.push(located.offsetAt(i), located.offsetAt(i + 1));
  return runs.text(located.text, located.offsetAt(0));
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
  const runs = new Runs();
  const count = tokens.length;
  let t = 0;
  let last = fallback;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (isWs(ch)) {
      if (t < count && tokens.ws(t)) {
        runs.push(tokens.start(t), tokens.end(t));
        last = tokens.end(t);
        t++;
      } else {
        const at = t < count ? tokens.start(t) : last;
        runs.push(at, at);
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
      runs.push(last, last);
      continue;
    }
    runs.push(tokens.start(t), tokens.end(t));
    last = tokens.end(t);
    t++;
  }
  return runs.text(value, count > 0 ? tokens.start(0) : fallback);
}

function isWsCode(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13;
}

/**
 * align() for plain and block scalars, whose tokens are the source's characters themselves: the
 * same walk on character codes, a line at a time where the value's line is the source's (every
 * rule of a file goes through here, a million characters for 10,000 rules).
 */
function alignLiteral(value: string, tokens: LiteralTokens, fallback: number): MappedText {
  const { source, from, length: count } = tokens;
  const emptyAt = count > 0 ? from : fallback;
  if (count === value.length && source.startsWith(value, from)) {
    // The value is its source (a plain scalar on one line): one run.
    return MappedText.of(value, count === 0 ? [] : [0, from, 1, 1], emptyAt);
  }
  const runs = new Runs();
  let t = 0;
  let last = fallback;
  let i = 0;
  while (i < value.length) {
    const code = value.charCodeAt(i);
    if (isWsCode(code)) {
      const at = t < count ? from + t : last;
      const taken = t < count && isWsCode(source.charCodeAt(at));
      runs.push(at, taken ? at + 1 : at);
      if (taken) {
        last = at + 1;
        t++;
      }
      i++;
      continue;
    }
    while (t < count && isWsCode(source.charCodeAt(from + t))) t++;
    if (t < count && source.charCodeAt(from + t) !== code) {
      let k = t + 1;
      while (k < count && source.charCodeAt(from + k) !== code) k++;
      if (k < count) t = k;
    }
    if (t >= count) {
      runs.push(last, last);
      i++;
      continue;
    }
    // The characters up to the next whitespace are the source's, one after another.
    const at = from + t;
    let n = 1;
    while (i + n < value.length && t + n < count) {
      const c = value.charCodeAt(i + n);
      if (isWsCode(c) || source.charCodeAt(at + n) !== c) break;
      n++;
    }
    runs.pushLine(at, n);
    last = at + n;
    t += n;
    i += n;
  }
  return runs.text(value, emptyAt);
}

/** The located value of a scalar node of a document parsed from `source`. */
export function locateScalar(source: string, node: Scalar): MappedText {
  const range = node.range ?? [0, 0, 0];
  if (typeof node.value !== "string") {
    // Numbers, booleans, null: their source text stands for itself.
    const text = typeof node.source === "string" ? node.source : String(node.value);
    return MappedText.of(text, text.length === 0 ? [] : [0, range[0], 1, 1], range[0]);
  }
  const contentStart = node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE" ? range[0] + 1 : range[0];
  return align(node.value, scalarTokens(source, node), contentStart);
}
