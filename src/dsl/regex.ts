/**
 * Regular expressions of rules (`X matches /regex/flags`). Postmasters write JavaScript syntax;
 * the expression runs on re2js, an RE2-class engine whose matching time grows linearly with the
 * text whatever the pattern, so no rule can stall the event loop (`/^(a+)+$/` against
 * "aaa…a!" takes microseconds, where a backtracking engine takes minutes).
 *
 * Why re2js (pure JavaScript) and not the native `re2` addon: the addon's install fetches a
 * prebuilt binary from GitHub or else compiles RE2 and Abseil with node-gyp (about 2 minutes,
 * and a C++ toolchain on every machine that runs `npm ci`), and its releases since 1.24.1 need
 * Node 22. re2js installs in a second anywhere Node 20 runs. It is slower than V8 per call
 * (tenths of a microsecond on a header-sized text, about 1 ms on 64 KiB: `npm run bench:regex`),
 * which a milter round trip dwarfs.
 *
 * Three passes, each a value for the checker (never an exception):
 *  1. findRefused: constructs that need backtracking (backreferences, lookaround, atomic groups,
 *     possessive quantifiers, recursion, conditionals), at their exact index;
 *  2. V8 parses the pattern, so syntax errors read as they always did;
 *  3. translate to RE2 syntax with JavaScript's meaning (`.` excludes \r, \u2028 and \u2029, `\s`
 *     is JavaScript's set, `[^]`, `\cX`, `\uXXXX`, legacy octal…), estimate the program's size,
 *     and let re2js compile it; what it refuses is reported in plain words at its index. Short
 *     plain patterns, which it always accepts (surelyAccepted), are compiled at their first match.
 *
 * Linear is per character of text times the program's size: regex-offload.ts decides where a
 * match runs so that a long text cannot hold up the event loop either.
 */
import { RE2JS, RE2JSException, RE2JSSyntaxException } from "re2js";
import type { CompiledRegex } from "./regex-offload.js";

/** Why an expression is refused; `index` (into the pattern) when one place is to blame. */
export interface RegexProblem {
  index?: number;
  message: string;
  hint?: string;
}

export type RegexCompilation = ({ ok: true } & CompiledRegex) | { ok: false; problem: RegexProblem };

/**
 * Bound on a compiled program's size (instructions, as RE2 counts them). Matching costs up to
 * this many steps per character of text where the engine cannot use its DFA (about 20 ms on a
 * 64 KiB header at the bound), so larger programs are refused. Rules people write stay far below:
 * `^[a-z0-9._%+-]{1,64}@` is about 70; 5000 alternative words, about 1600.
 */
export const MAX_REGEX_SIZE = 10_000;

/**
 * Bound on the size estimated before compiling, so that counted repetitions cannot make the
 * compiler itself run for seconds (about 10 µs per instruction). A pattern without counted
 * repetitions never reaches it: its estimate is at most its length, and a rule at most 64 KiB.
 */
const MAX_ESTIMATE = 65_536;

const TOO_LARGE_HINT =
  "counted repetitions ({500}, {1,999}) multiply what they repeat; use + or * or smaller counts";

const BACKTRACKING = "which filterctl does not allow: its regular expressions run in linear time (RE2)";

export function compileRegex(pattern: string, flags: string): RegexCompilation {
  const refused = findRefused(pattern, flags.includes("u"));
  if (refused !== undefined) return { ok: false, problem: refused };
  try {
    new RegExp(pattern, flags);
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^Invalid regular expression: /, "") : "";
    return { ok: false, problem: { message: `invalid regular expression: ${reason}` } };
  }
  const sure = surelyAccepted(pattern);
  // Where each piece came from only serves to place the engine's refusals.
  const translated = new Translator(pattern, flags, !sure).run();
  if (translated.size > MAX_ESTIMATE) return { ok: false, problem: tooLarge(`about ${translated.size}`) };
  const engineFlags =
    (flags.includes("i") ? RE2JS.CASE_INSENSITIVE : 0) | (flags.includes("m") ? RE2JS.MULTILINE : 0);
  if (sure) return new CheckedRegex(new LazyRegex(translated.source, engineFlags));
  try {
    const regex = RE2JS.compile(translated.source, engineFlags);
    const size = regex.programSize();
    if (size > MAX_REGEX_SIZE) return { ok: false, problem: tooLarge(String(size)) };
    return new CheckedRegex(new LazyRegex(translated.source, engineFlags, size));
  } catch (error) {
    if (error instanceof RE2JSSyntaxException)
      return { ok: false, problem: engineProblem(error, translated) };
    if (error instanceof RE2JSException) {
      return {
        ok: false,
        problem: { message: `regular expression refused by the linear-time engine: ${error.message}` },
      };
    }
    throw error;
  }
}

/**
 * The engine's program for a checked expression, compiled (again) on its first match. Checking
 * compiles every expression but the surelyAccepted ones (errors and size are only known then),
 * and a program is
 * about 4.5 KB of small objects (an Int32Array per rune among them): holding the program of
 * each of 3,500 expressions from the check to the end of a reload was a fifth of what validating
 * 10,000 rules kept alive, and copying it out of the young generation a good part of the time.
 * An expression that never matches anything (filterctl validate, the editor) never pays for it
 * again; one that does pays one compilation (tens of µs) at its first match after a reload.
 */
class LazyRegex {
  private compiled: RE2JS | undefined;
  constructor(
    readonly source: string,
    readonly flags: number,
    /** Known when the check compiled the expression; else taken from the program at first need. */
    private knownSize?: number,
  ) {}
  private program(): RE2JS {
    this.compiled ??= RE2JS.compile(this.source, this.flags);
    return this.compiled;
  }
  test(text: string): boolean {
    return this.program().test(text);
  }
  size(): number {
    this.knownSize ??= this.program().programSize();
    return this.knownSize;
  }
}

/** A checked expression as the compiler and the matcher read it; one shape whichever way it was checked. */
class CheckedRegex implements CompiledRegex {
  readonly ok = true;
  constructor(readonly regex: LazyRegex) {}
  get source(): string {
    return this.regex.source;
  }
  get engineFlags(): number {
    return this.regex.flags;
  }
  get size(): number {
    return this.regex.size();
  }
}

/** Longest pattern surelyAccepted answers for, and deepest group nesting. */
const SURE_LENGTH = 512;
const SURE_DEPTH = 32;
/** Escapes of punctuation that stand for themselves, and of the sets and assertions RE2 spells alike. */
const SURE_ESCAPED = new Set([..."dDwWsSbBtnrvf.\\/^$|?*+()[]-@:,'\"#%&=<>!~_ "]);

/**
 * Patterns the engine is known to accept after translation, so the check need not compile them
 * (about 30 µs and 4.5 KB of garbage per expression, a tenth of validating 10,000 rules): short
 * ASCII without counted repetitions (`{n,m}`: RE2's count limit and the size multiplier), numeric,
 * hexadecimal, Unicode or control escapes, Unicode properties, or deep nesting. Everything in it
 * comes out of the translator as literal characters, hexadecimal escapes, classes of hexadecimal
 * ranges, `\d\w\b` and friends, `(?:`, and the operators `| * + ? ^ $`, which RE2 reads whatever
 * their order once JavaScript has accepted the pattern; and at most a few instructions per
 * character, far below MAX_REGEX_SIZE. test/dsl/regex.test.ts holds that to the engine over random
 * patterns of this shape. The program is compiled at the first match, its size at first need.
 */
export function surelyAccepted(pattern: string): boolean {
  if (pattern.length > SURE_LENGTH) return false;
  let depth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const code = pattern.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x7b || code === 0x7d) return false;
    if (code === 0x5c) {
      i++;
      if (!SURE_ESCAPED.has(pattern[i] ?? "")) return false;
    } else if (code === 0x28 && ++depth > SURE_DEPTH) return false;
    else if (code === 0x29) depth--;
  }
  return true;
}

function tooLarge(size: string): RegexProblem {
  return {
    message: `regular expression is too large: ${size} steps per character of text, the limit is ${MAX_REGEX_SIZE}`,
    hint: TOO_LARGE_HINT,
  };
}

// ---------------------------------------------------------------------------------------
// Pass 1: constructs that need backtracking

interface GroupCount {
  groups: number;
  named: boolean;
}

/** Walks a pattern outside its character classes, calling `visit` at each unescaped character. */
function walk(pattern: string, visit: (index: number) => number | undefined): void {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      if (!inClass) {
        const skip = visit(i);
        if (skip !== undefined) {
          i = skip;
          continue;
        }
      }
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
    } else {
      const skip = visit(i);
      if (skip !== undefined) i = skip;
    }
  }
}

/** Capturing groups (a `\N` above their number is an octal escape, not a backreference). */
function countGroups(pattern: string): GroupCount {
  const count: GroupCount = { groups: 0, named: false };
  walk(pattern, (i) => {
    if (pattern[i] !== "(") return undefined;
    if (pattern[i + 1] !== "?") count.groups++;
    else if (pattern[i + 2] === "<" && pattern[i + 3] !== "=" && pattern[i + 3] !== "!") {
      count.groups++;
      count.named = true;
    }
    return undefined;
  });
  return count;
}

function refusal(index: number, what: string, needs: string, advice: string): RegexProblem {
  return { index, message: `${what} in a regular expression`, hint: `${needs}, ${BACKTRACKING}; ${advice}` };
}

const REWRITE = "match the text itself, or combine two conditions with 'and' / 'and not'";

/** `(?` constructs of Perl, PCRE and JavaScript that need backtracking. */
function refusedGroup(pattern: string, i: number): RegexProblem | undefined {
  const rest = pattern.slice(i + 2, i + 4);
  const lookaround = (kind: string, text: string) =>
    refusal(i, `${kind} '${text}'`, `${kind} needs backtracking`, REWRITE);
  if (rest.startsWith("=")) return lookaround("lookahead", "(?=");
  if (rest.startsWith("!")) return lookaround("lookahead", "(?!");
  if (rest === "<=") return lookaround("lookbehind", "(?<=");
  if (rest === "<!") return lookaround("lookbehind", "(?<!");
  if (rest.startsWith(">")) {
    return refusal(
      i,
      "atomic group '(?>'",
      "atomic groups control backtracking",
      "write a plain group '(?:'",
    );
  }
  if (rest === "P=") {
    return refusal(
      i,
      "backreference '(?P='",
      "backreferences need backtracking",
      "write the repeated text out",
    );
  }
  if (/^(?:R|P>|&|[+-]?\d)/.test(rest)) {
    return refusal(i, "recursion '(?R)'", "recursion needs backtracking", REWRITE);
  }
  if (rest.startsWith("(")) {
    return refusal(i, "conditional '(?('", "conditionals need backtracking", REWRITE);
  }
  return undefined;
}

/** A `\` outside a class: a backreference (`\1`, `\k<name>`) as JavaScript reads it? */
function refusedEscape(
  pattern: string,
  i: number,
  unicode: boolean,
  count: GroupCount,
): RegexProblem | undefined {
  const digits = /^[1-9]\d*/.exec(pattern.slice(i + 1));
  const advice = "write the repeated text out, or test it in a second condition";
  if (digits !== null && (unicode || Number(digits[0]) <= count.groups)) {
    return refusal(i, `backreference '\\${digits[0]}'`, "backreferences need backtracking", advice);
  }
  if (pattern.startsWith("k<", i + 1) && (unicode || count.named)) {
    const end = pattern.indexOf(">", i);
    const text = end === -1 ? "\\k<" : pattern.slice(i, end + 1);
    return refusal(i, `backreference '${text}'`, "backreferences need backtracking", advice);
  }
  return undefined;
}

/** A quantifier's last index when one starts at `i` (`*`, `+`, `?`, `{2}`, `{2,}`, `{2,5}`). */
function quantifierEnd(pattern: string, i: number): number | undefined {
  const c = pattern[i];
  if (c === "*" || c === "+" || c === "?") return i;
  if (c !== "{") return undefined;
  const braces = /^\{\d+(?:,\d*)?\}/.exec(pattern.slice(i, i + 40));
  return braces === null ? undefined : i + braces[0].length - 1;
}

/** The first construct that needs backtracking, or undefined. Tolerates invalid patterns. */
export function findRefused(pattern: string, unicode: boolean): RegexProblem | undefined {
  const count = countGroups(pattern);
  let found: RegexProblem | undefined;
  walk(pattern, (i) => {
    if (found !== undefined) return pattern.length;
    const c = pattern[i];
    if (c === "\\") {
      found = refusedEscape(pattern, i, unicode, count);
      return undefined;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      found = refusedGroup(pattern, i);
      return i + 1;
    }
    let end = quantifierEnd(pattern, i);
    if (end === undefined) return undefined;
    if (pattern[end + 1] === "?") end++;
    else if (pattern[end + 1] === "+") {
      const what = `possessive quantifier '${pattern.slice(i, end + 2)}'`;
      found = refusal(i, what, "possessive quantifiers control backtracking", "drop the last '+'");
    }
    return end;
  });
  return found;
}

// ---------------------------------------------------------------------------------------
// Pass 3: JavaScript syntax → RE2 syntax with JavaScript's meaning

/** JavaScript's `\s`: WhiteSpace and LineTerminator code points, as ranges. */
const JS_SPACE: readonly (readonly [number, number])[] = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
const MAX_CODE_POINT = 0x10ffff;

const hex = (code: number) => `\\x{${code.toString(16)}}`;

function rangesText(ranges: readonly (readonly [number, number])[]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`)).join("");
}

function complement(ranges: readonly (readonly [number, number])[]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of ranges) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

const SPACE = rangesText(JS_SPACE);
const NOT_SPACE = rangesText(complement(JS_SPACE));
const ANY = `${hex(0)}-${hex(MAX_CODE_POINT)}`;

/** What one escape stands for: a character, a set of characters, or an assertion. */
type Escaped =
  | { kind: "char"; code: number }
  | { kind: "set"; text: string }
  | { kind: "assertion"; text: string };

/** RE2's spelling of a JavaScript `\p{…}` name (`Script=Greek` → `Greek`); others pass as written. */
function propertyName(name: string): string {
  const eq = name.indexOf("=");
  if (eq === -1) return name;
  const key = name.slice(0, eq);
  return ["General_Category", "gc", "Script", "sc"].includes(key) ? name.slice(eq + 1) : name;
}

interface Piece {
  /** Where the piece starts in the RE2 source. */
  at: number;
  /** Where what it translates starts in the JavaScript pattern. */
  from: number;
}

interface Translation {
  source: string;
  pieces: Piece[];
  size: number;
}

/** Size bookkeeping of one group: the total so far and the size of the last atom (to repeat). */
interface Frame {
  total: number;
  last: number;
}

const cap = (n: number) => Math.min(n, 1e9);

class Translator {
  private pos = 0;
  private out = "";
  private readonly pieces: Piece[] = [];
  private readonly frames: Frame[] = [{ total: 0, last: 0 }];
  private readonly unicode: boolean;
  private readonly dotAll: boolean;

  constructor(
    private readonly src: string,
    flags: string,
    private readonly placed = true,
  ) {
    this.unicode = flags.includes("u");
    this.dotAll = flags.includes("s");
  }

  run(): Translation {
    while (this.pos < this.src.length) this.term();
    return { source: this.out, pieces: this.pieces, size: (this.frames[0] as Frame).total };
  }

  private emit(text: string, from: number): void {
    if (this.placed) this.pieces.push({ at: this.out.length, from });
    this.out += text;
  }

  private get frame(): Frame {
    return this.frames[this.frames.length - 1] as Frame;
  }

  private atom(text: string, from: number, size = 1): void {
    this.emit(text, from);
    this.frame.total = cap(this.frame.total + size);
    this.frame.last = size;
  }

  private term(): void {
    const start = this.pos;
    const c = this.src[this.pos] as string;
    if (c === "(") this.openGroup();
    else if (c === ")") this.closeGroup();
    else if (c === "[") this.atom(this.characterClass(), start);
    else if (c === "\\") this.escapeOutside();
    else this.plain(c, start);
  }

  private plain(c: string, start: number): void {
    this.pos++;
    if (c === "|") {
      this.emit("|", start);
      this.frame.total = cap(this.frame.total + 1);
      this.frame.last = 0;
    } else if (c === ".") {
      this.atom(this.dotAll ? `[${ANY}]` : "[^\\n\\r\\x{2028}\\x{2029}]", start);
    } else if (c === "^" || c === "$") {
      this.atom(c, start);
    } else if (c === "*" || c === "+" || c === "?") {
      this.repeat(c, start, c === "+" ? 1 : 0, c === "?" ? 1 : Infinity);
    } else if (c === "{" && quantifierEnd(this.src, start) !== undefined) {
      this.braces(start);
    } else {
      this.pos = start;
      this.atom(this.literal(this.codePoint()), start);
    }
  }

  private openGroup(): void {
    const start = this.pos;
    if (this.src.startsWith("(?<", start)) this.pos = this.src.indexOf(">", start) + 1;
    else this.pos += this.src.startsWith("(?:", start) ? 3 : 1;
    // Captures are of no use to a yes/no test, and cost the engine time.
    this.emit("(?:", start);
    this.frames.push({ total: 0, last: 0 });
  }

  private closeGroup(): void {
    const inner = this.frames.length > 1 ? (this.frames.pop() as Frame) : { total: 0 };
    this.atom(")", this.pos++, Math.max(1, inner.total));
  }

  private braces(start: number): void {
    const end = quantifierEnd(this.src, start) as number;
    const [min, max] = this.src
      .slice(start + 1, end)
      .split(",")
      .map((n) => (n === "" ? Infinity : Number(n)));
    this.pos = end + 1;
    this.repeat(this.src.slice(start, end + 1), start, min as number, max ?? (min as number));
  }

  /** A quantifier (and its lazy `?`, which changes nothing for a yes/no test). */
  private repeat(text: string, start: number, min: number, max: number): void {
    if (this.src[this.pos] === "?") this.pos++;
    this.emit(text, start);
    const sub = this.frame.last;
    let size: number;
    if (max === Infinity) size = min === 0 ? 2 + sub : 1 + min * sub;
    else size = max * sub + (max - min);
    this.frame.total = cap(this.frame.total + size - sub);
    this.frame.last = cap(size);
  }

  private escapeOutside(): void {
    const start = this.pos;
    const escaped = this.escape(false);
    if (escaped.kind === "char") this.atom(this.literal(escaped.code), start);
    else if (escaped.kind === "set") this.atom(`[${escaped.text}]`, start);
    else this.atom(escaped.text, start);
  }

  /** One character outside a class, in a spelling RE2 reads literally. */
  private literal(code: number): string {
    const plain =
      (code >= 0x61 && code <= 0x7a) ||
      (code >= 0x41 && code <= 0x5a) ||
      (code >= 0x30 && code <= 0x39) ||
      code === 0x20 ||
      code === 0x5f;
    return plain ? String.fromCharCode(code) : hex(code);
  }

  /** The code point at `pos` (a surrogate pair is one), moving past it. */
  private codePoint(): number {
    const code = this.src.codePointAt(this.pos) as number;
    this.pos += code > 0xffff ? 2 : 1;
    return code;
  }

  private characterClass(): string {
    this.pos++;
    const negated = this.src[this.pos] === "^";
    if (negated) this.pos++;
    if (this.src[this.pos] === "]") {
      // JavaScript's `[]` matches nothing and `[^]` anything; in RE2 a `]` there is literal.
      this.pos++;
      return negated ? `[${ANY}]` : `[^${ANY}]`;
    }
    let body = "";
    while (this.pos < this.src.length && this.src[this.pos] !== "]") body += this.classItem();
    this.pos++;
    return `[${negated ? "^" : ""}${body}]`;
  }

  /** One member of a class, or a range `a-z` (a `-` next to a set such as `\d` is literal). */
  private classItem(): string {
    const first = this.classAtom();
    const afterFirst = this.pos;
    if (first.kind !== "char" || this.src[this.pos] !== "-" || this.src[this.pos + 1] === "]") {
      return first.kind === "char" ? hex(first.code) : first.text;
    }
    this.pos++;
    const second = this.classAtom();
    if (second.kind === "char") return `${hex(first.code)}-${hex(second.code)}`;
    this.pos = afterFirst;
    return hex(first.code);
  }

  private classAtom(): Escaped {
    if (this.src[this.pos] === "\\") return this.escape(true);
    return { kind: "char", code: this.codePoint() };
  }

  /** The escape at `pos` (a backslash), as JavaScript reads it; moves past it. */
  private escape(inClass: boolean): Escaped {
    this.pos++;
    const c = this.src[this.pos] ?? "\\";
    const char = (code: number): Escaped => ({ kind: "char", code });
    if ("dDwW".includes(c)) return this.skip(1, { kind: "set", text: `\\${c}` });
    if (c === "s") return this.skip(1, { kind: "set", text: SPACE });
    if (c === "S") return this.skip(1, { kind: "set", text: NOT_SPACE });
    if (c === "b" || c === "B") {
      if (!inClass) return this.skip(1, { kind: "assertion", text: `\\${c}` });
      return this.skip(1, char(c === "b" ? 8 : 66));
    }
    const controls: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13 };
    if (c in controls) return this.skip(1, char(controls[c] as number));
    if (/[0-9]/.test(c)) return this.digitEscape();
    if (c === "x" && /^[0-9a-fA-F]{2}$/.test(this.src.slice(this.pos + 1, this.pos + 3))) {
      return this.skip(3, char(Number.parseInt(this.src.slice(this.pos + 1, this.pos + 3), 16)));
    }
    if (c === "u") return this.unicodeEscape();
    if (c === "c") return this.controlEscape(inClass);
    if ((c === "p" || c === "P") && this.unicode) {
      const end = this.src.indexOf("}", this.pos);
      const name = propertyName(this.src.slice(this.pos + 2, end));
      this.pos = end + 1;
      return { kind: "set", text: `\\${c}{${name}}` };
    }
    // An identity escape (`\.`, `\/`, and in non-Unicode patterns `\k`, `\p`, `\A`…): the character.
    return char(this.codePoint());
  }

  private skip(length: number, escaped: Escaped): Escaped {
    this.pos += length;
    return escaped;
  }

  /** `\0`, legacy octal `\012`, or `\8` (pass 1 has refused the backreferences). */
  private digitEscape(): Escaped {
    const octal = /^(?:[0-3][0-7]{0,2}|[4-7][0-7]?)/.exec(this.src.slice(this.pos, this.pos + 3));
    if (octal === null) return { kind: "char", code: this.codePoint() };
    // In a Unicode pattern only `\0` not followed by a digit is valid, which this reads too.
    return this.skip(octal[0].length, { kind: "char", code: Number.parseInt(octal[0], 8) });
  }

  /** `\uXXXX` (a pair of them for one astral character), `\u{X…}` in Unicode patterns, or `u`. */
  private unicodeEscape(): Escaped {
    const rest = this.src.slice(this.pos + 1, this.pos + 12);
    const braced = this.unicode ? /^\{([0-9a-fA-F]+)\}/.exec(rest) : null;
    if (braced !== null) {
      return this.skip(1 + braced[0].length, {
        kind: "char",
        code: Number.parseInt(braced[1] as string, 16),
      });
    }
    const pair = /^([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})/.exec(rest);
    if (pair !== null) {
      const high = Number.parseInt(pair[1] as string, 16);
      const low = Number.parseInt(pair[2] as string, 16);
      return this.skip(11, { kind: "char", code: (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000 });
    }
    const single = /^[0-9a-fA-F]{4}/.exec(rest);
    if (single !== null) return this.skip(5, { kind: "char", code: Number.parseInt(single[0], 16) });
    return this.skip(1, { kind: "char", code: 0x75 });
  }

  /** `\cJ` is a control character; JavaScript reads a `\c` not followed by a letter as `\` `c`. */
  private controlEscape(inClass: boolean): Escaped {
    const next = this.src[this.pos + 1] ?? "";
    if (/^[A-Za-z]$/.test(next) || (inClass && !this.unicode && /^[0-9_]$/.test(next))) {
      return this.skip(2, { kind: "char", code: next.charCodeAt(0) % 32 });
    }
    return { kind: "char", code: 0x5c };
  }
}

// ---------------------------------------------------------------------------------------
// What the engine refuses, in plain words

/** The index in the JavaScript pattern of `fragment` of the RE2 source. */
function originOf(translation: Translation, fragment: string | null): number | undefined {
  if (fragment === null) return undefined;
  const at = translation.source.indexOf(fragment);
  if (at === -1) return undefined;
  let from: number | undefined;
  for (const piece of translation.pieces) {
    if (piece.at > at) break;
    from = piece.from;
  }
  return from;
}

function engineProblem(error: RE2JSSyntaxException, translation: Translation): RegexProblem {
  const index = originOf(translation, error.input);
  const at = index === undefined ? {} : { index };
  switch (error.error) {
    case "invalid repeat count":
      return {
        ...at,
        message: "regular expression repeats something more than 1000 times",
        hint: "counts above 1000, and counted repetitions inside counted repetitions that multiply past 1000, are refused; use + or *",
      };
    case "invalid character class range":
      if (!/^\\[pP]/.test(error.input ?? "")) break;
      return {
        ...at,
        message: `unknown Unicode property '${error.input ?? ""}' in a regular expression`,
        hint: "use a general category (\\p{L}, \\p{Lu}, \\p{N}) or a script (\\p{Greek}, \\p{Script=Latin})",
      };
    case "expression too large":
      return { ...at, message: "regular expression is too large" };
    case "expression nests too deeply":
      return { ...at, message: "regular expression nests groups too deeply" };
  }
  return {
    ...at,
    message: `regular expression refused by the linear-time engine: ${error.error}${error.input ? ` '${error.input}'` : ""}`,
  };
}
