/**
 * The `rules:` block of a configuration read straight from the text into yaml nodes, without the
 * yaml library's lexer and CST parser: those allocated half of what validating 10,000 rules did
 * (a string token, an iterator result and CST objects per lexeme). The nodes are the library's
 * own classes with the ranges, types and values its composer gives, so everything downstream
 * (toJS, the schema's error positions, located texts, the LSP) reads them unchanged.
 *
 * Only the shapes rules are written in are read: a block sequence whose items are literal block
 * scalars (`|`, `|-`), one-line plain or quoted scalars, or block mappings of plain keys to such
 * scalars. Anything else (anchors, aliases, tags, flow collections, folded or multi-line plain
 * scalars, escapes, comments after a value, empty values, duplicate or special keys, tabs, CR,
 * values that are not strings) answers undefined, and the caller composes the whole file with
 * the library as before: its errors and warnings stay the library's. Comment lines and blank
 * lines are skipped: the nodes carry no `comment`, `commentBefore` or `spaceBefore`, which only
 * writing YAML back would read.
 */
import { type Document, Pair, type Range, Scalar, type Schema, visit, YAMLMap, YAMLSeq } from "yaml";

/** Where the block is: `rules:` at the start of a line, its value up to the next line at column 0. */
export interface RulesBlock {
  /** Offset of the `rules` key. */
  key: number;
  /** From just after `rules:` to the start of the next line at column 0 (or the end). */
  from: number;
  to: number;
}

/** The one `rules:` key at column 0 followed by nothing but spaces on its line, if there is exactly one. */
export function findRulesBlock(text: string): RulesBlock | undefined {
  const first = text.startsWith("rules:") ? 0 : text.indexOf("\nrules:") + 1;
  if (first === 0 && !text.startsWith("rules:")) return undefined;
  if (text.indexOf("\nrules:", first) !== -1) return undefined;
  const from = first + "rules:".length;
  let i = from;
  while (text.charCodeAt(i) === 32) i++;
  if (text.charCodeAt(i) !== 10) return undefined;
  let line = i + 1;
  while (line < text.length) {
    const ch = text.charCodeAt(line);
    if (ch !== 32 && ch !== 10) break;
    const next = text.indexOf("\n", line);
    line = next === -1 ? text.length : next + 1;
  }
  return { key: first, from, to: line };
}

/**
 * The text with the block's value cut out (its last line break kept), and how many characters
 * went: an offset past the block in the cut text is that many less than in the whole text. Cut,
 * not blanked: the library's lexer walked a blanked block's spaces one by one (6 ms per 10,000
 * rules), and `shiftAfter` puts the few nodes after the block back at their offsets.
 */
export function withoutBlock(text: string, block: RulesBlock): { text: string; removed: number } {
  const last = block.to > block.from && text.charCodeAt(block.to - 1) === 10 ? 1 : 0;
  return {
    text: text.slice(0, block.from) + (last === 1 ? "\n" : "") + text.slice(block.to),
    removed: block.to - block.from - last,
  };
}

/** Moves every offset of `doc` past `at` (an offset of the cut text) `by` characters on. */
export function shiftAfter(doc: Document, at: number, by: number): void {
  if (by === 0) return;
  const shift = (range: Range | null | undefined) => {
    if (range == null) return;
    for (let i = 0; i < range.length; i++)
      if ((range[i] as number) > at) range[i] = (range[i] as number) + by;
  };
  shift(doc.range);
  visit(doc, {
    Node(_key, node) {
      shift(node.range);
    },
  });
}

const NOT_PLAIN_START = new Set([..."-?:,[]{}#&*!|>'\"%@`<"]);
/** Plain texts the core schema reads as something other than a string: null, booleans, numbers. */
const NOT_A_STRING = /^(?:[-+.~0-9]|(?:[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE)$)/;
/** Longest implicit key read here (the library refuses implicit keys over 1024 characters). */
const MAX_KEY = 1000;

/** Thrown inside the reader for any shape it does not read; caught by readRulesBlock. */
class Unread extends Error {}

function unread(): never {
  throw new Unread();
}

function isPlainText(value: string): boolean {
  return (
    value.length > 0 &&
    !NOT_PLAIN_START.has(value[0] as string) &&
    !NOT_A_STRING.test(value) &&
    !value.includes(" #") &&
    !value.includes(": ") &&
    !value.endsWith(":")
  );
}

class Reader {
  /** Start of the current line. */
  private line: number;

  constructor(
    private readonly text: string,
    private readonly schema: Schema,
    from: number,
    private readonly to: number,
  ) {
    this.line = from;
  }

  private lineEnd(at: number): number {
    const end = this.text.indexOf("\n", at);
    return end === -1 || end > this.to ? this.to : end;
  }

  /** Just after the line break ending a line (the end of the block when it has none). */
  private after(eol: number): number {
    return eol < this.to && this.text.charCodeAt(eol) === 10 ? eol + 1 : eol;
  }

  private indentAt(at: number): number {
    let i = at;
    while (this.text.charCodeAt(i) === 32) i++;
    return i - at;
  }

  /**
   * Moves to the next line holding something other than spaces and comments; its indentation, or
   * -1 at the end. A comment indented deeper than `column` (the collection being read) is left to
   * the library: it makes it part of the node before (its range, its comment).
   */
  private nextContent(column: number): number {
    while (this.line < this.to) {
      const indent = this.indentAt(this.line);
      const at = this.line + indent;
      const ch = this.text.charCodeAt(at);
      if (at < this.to && ch !== 10 && ch !== 35) return indent;
      if (ch === 35 && indent > column) unread();
      this.line = this.lineEnd(this.line) + 1;
    }
    return -1;
  }

  seq(): YAMLSeq {
    const seq = new YAMLSeq(this.schema);
    // The first item's column, then again with comments before it held to that column.
    const first = this.line;
    const indent = this.nextContent(Number.MAX_SAFE_INTEGER);
    if (indent <= 0) unread();
    this.line = first;
    this.nextContent(indent);
    const start = this.line + indent;
    let end = start;
    for (let at = indent; at !== -1; at = this.nextContent(indent)) {
      const dash = this.line + at;
      if (at !== indent || this.text.charCodeAt(dash) !== 45 || this.text.charCodeAt(dash + 1) !== 32)
        unread();
      let c = dash + 2;
      while (this.text.charCodeAt(c) === 32) c++;
      const item = this.item(c, indent);
      seq.items.push(item);
      end = item.range?.[2] ?? end;
    }
    seq.range = [start, end, end];
    return seq;
  }

  /** A sequence item starting at `at` on the current line, its dash at column `indent`. */
  private item(at: number, indent: number): Scalar | YAMLMap {
    const ch = this.text[at] as string;
    if (ch === "|") return this.block(at, indent);
    if (ch === '"' || ch === "'") return this.quoted(at);
    const eol = this.lineEnd(at);
    const colon = this.keyEnd(at, eol);
    if (colon === -1) return this.plain(at, eol);
    return this.map(at, indent);
  }

  /** Where the `:` ending an implicit key on this line is, or -1. */
  private keyEnd(at: number, eol: number): number {
    const sep = this.text.indexOf(": ", at);
    if (sep !== -1 && sep < eol) return sep;
    return this.text.charCodeAt(eol - 1) === 58 ? eol - 1 : -1;
  }

  /** A block mapping whose first key starts at `at`, at column `at - line`; the parent is at `parent`. */
  private map(at: number, parent: number): YAMLMap {
    const map = new YAMLMap(this.schema);
    const column = at - this.line;
    const keys = new Set<string>();
    let keyAt = at;
    let end = at;
    for (;;) {
      const eol = this.lineEnd(keyAt);
      const colon = this.keyEnd(keyAt, eol);
      if (colon === -1 || colon - keyAt > MAX_KEY || this.text.charCodeAt(colon - 1) === 32) unread();
      const keyText = this.text.slice(keyAt, colon);
      if (!isPlainText(keyText) || keys.has(keyText)) unread();
      keys.add(keyText);
      const key = new Scalar(keyText);
      key.range = [keyAt, colon, colon];
      key.source = keyText;
      key.type = "PLAIN";
      let v = colon + 1;
      while (this.text.charCodeAt(v) === 32) v++;
      if (v >= eol) unread();
      const value = this.value(v, column);
      map.items.push(new Pair(key, value));
      end = value.range?.[2] ?? end;
      const next = this.nextContent(column);
      if (next === -1 || next <= parent) break;
      keyAt = this.line + next;
      if (next !== column || this.text.charCodeAt(keyAt) === 45) unread();
    }
    map.range = [at, end, end];
    return map;
  }

  /** A mapping's value starting at `at` on the current line; the mapping is at column `parent`. */
  private value(at: number, parent: number): Scalar {
    const ch = this.text[at] as string;
    if (ch === "|") return this.block(at, parent);
    if (ch === '"' || ch === "'") return this.quoted(at);
    return this.plain(at, this.lineEnd(at));
  }

  /** A one-line plain scalar from `at` to the end of its line (trailing spaces not included). */
  private plain(at: number, eol: number): Scalar {
    let end = eol;
    while (end > at && this.text.charCodeAt(end - 1) === 32) end--;
    const value = this.text.slice(at, end);
    if (!isPlainText(value)) unread();
    const scalar = new Scalar(value);
    scalar.range = [at, end, this.after(eol)];
    scalar.source = value;
    scalar.type = "PLAIN";
    this.line = eol + 1;
    return scalar;
  }

  /** A one-line quoted scalar (no escapes in double quotes) followed by nothing but spaces. */
  private quoted(at: number): Scalar {
    const eol = this.lineEnd(at);
    const quote = this.text[at] as string;
    let value = "";
    let i = at + 1;
    for (;;) {
      const close = this.text.indexOf(quote, i);
      if (close === -1 || close >= eol) unread();
      value += this.text.slice(i, close);
      if (quote === "'" && this.text[close + 1] === "'") {
        value += "'";
        i = close + 2;
        continue;
      }
      i = close + 1;
      break;
    }
    if (quote === '"' && value.includes("\\")) unread();
    const end = i;
    while (this.text.charCodeAt(i) === 32) i++;
    if (i !== eol) unread();
    const scalar = new Scalar(value);
    scalar.range = [at, end, this.after(eol)];
    scalar.source = value;
    scalar.type = quote === '"' ? "QUOTE_DOUBLE" : "QUOTE_SINGLE";
    this.line = eol + 1;
    return scalar;
  }

  /** A literal block scalar (`|` or `|-`, no indentation indicator) whose parent is at column `parent`. */
  private block(at: number, parent: number): Scalar {
    const eol = this.lineEnd(at);
    let h = at + 1;
    const strip = this.text[h] === "-";
    if (strip) h++;
    while (this.text.charCodeAt(h) === 32) h++;
    if (h !== eol || eol >= this.to) unread();
    const lines: string[] = [];
    let indent = -1;
    let line = eol + 1;
    let contentEnd = line;
    while (line < this.to) {
      const end = this.lineEnd(line);
      const spaces = this.indentAt(line);
      if (line + spaces === end) {
        if (spaces > 0) unread();
        lines.push("");
      } else {
        if (indent === -1) indent = spaces;
        if (spaces < indent) break;
        lines.push(this.text.slice(line + indent, end));
        contentEnd = end + 1;
      }
      line = end + 1;
    }
    if (indent <= parent) unread();
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    const value = lines.join("\n") + (strip ? "" : "\n");
    const end = Math.min(contentEnd, this.to);
    const scalar = new Scalar(value);
    scalar.range = [at, end, end];
    scalar.source = value;
    scalar.type = "BLOCK_LITERAL";
    this.line = contentEnd;
    return scalar;
  }
}

/** The block's sequence as yaml nodes, or undefined when it holds a shape this reader leaves to the library. */
export function readRulesBlock(text: string, block: RulesBlock, schema: Schema): YAMLSeq | undefined {
  if (block.to === block.from) return undefined;
  const inside = text.slice(block.from, block.to);
  if (inside.includes("\t") || inside.includes("\r")) return undefined;
  try {
    return new Reader(text, schema, text.indexOf("\n", block.from) + 1, block.to).seq();
  } catch (error) {
    if (error instanceof Unread) return undefined;
    throw error;
  }
}
