import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Document, isScalar, parseDocument, type Scalar, visit } from "yaml";
import { locateScalar, MappedText, splitWords, toMapped } from "../../src/config/located-text.js";
import type { LocatedText } from "../../src/config/types.js";

const WS = new Set([" ", "\t", "\n", "\r"]);

/** The scalar values of a document, in order, with their located texts. */
function scalars(source: string): { node: Scalar; located: LocatedText }[] {
  const doc = parseDocument(source);
  expect(doc.errors.map((e) => e.message)).toEqual([]);
  const out: { node: Scalar; located: LocatedText }[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (isScalar(pair.value) && typeof pair.value.value === "string") {
        out.push({ node: pair.value, located: locateScalar(source, pair.value) });
      }
    },
    Seq(_key, seq) {
      for (const item of seq.items) {
        if (isScalar(item) && typeof item.value === "string") {
          out.push({ node: item, located: locateScalar(source, item) });
        }
      }
    },
  });
  return out;
}

/**
 * Every non-whitespace character of the value is at its offset in the file, or (made by an
 * escape) at the escape's backslash; offsets never go back and stay inside the node.
 */
function expectExact(source: string, node: Scalar, located: LocatedText): void {
  const value = located.text;
  expect(value).toBe(node.value);
  const [start, end] = node.range ?? [0, 0];
  let previous = start;
  for (let i = 0; i < value.length; i++) {
    const offset = located.offsetAt(i);
    expect(offset, `offset of ${JSON.stringify(value[i])} at ${i}`).toBeGreaterThanOrEqual(previous);
    expect(offset).toBeLessThanOrEqual(end);
    previous = offset;
    const ch = value[i] as string;
    if (WS.has(ch)) continue;
    const found = source[offset];
    if (found === ch) continue;
    expect(node.type, `${JSON.stringify(ch)} at ${i} maps to ${JSON.stringify(found)}`).toBe("QUOTE_DOUBLE");
    expect(found, `${JSON.stringify(ch)} at ${i} of ${JSON.stringify(value)}`).toBe("\\");
  }
  expect(located.offsetAt(value.length)).toBeGreaterThanOrEqual(previous);
  expect(located.offsetAt(value.length)).toBeLessThanOrEqual(end);
}

function expectAllExact(source: string): { node: Scalar; located: LocatedText }[] {
  const all = scalars(source);
  expect(all.length).toBeGreaterThan(0);
  for (const { node, located } of all) expectExact(source, node, located);
  return all;
}

function first(all: { located: LocatedText }[]): LocatedText {
  const found = all[0];
  if (found === undefined) throw new Error("no scalar");
  return found.located;
}

/** The file offset of `needle`'s `nth` occurrence. */
function at(source: string, needle: string, nth = 0): number {
  let offset = -1;
  for (let i = 0; i <= nth; i++) offset = source.indexOf(needle, offset + 1);
  expect(offset).toBeGreaterThanOrEqual(0);
  return offset;
}

describe("LocatedText of every scalar style", () => {
  it("plain, one line", () => {
    const source = "rules:\n  - on rcpt: if quota(rcpt) over then tempfail\n";
    const located = first(expectAllExact(source));
    expect(located.text).toBe("if quota(rcpt) over then tempfail");
    expect(located.offsetAt(0)).toBe(at(source, "if"));
    expect(located.offsetAt(located.text.indexOf("tempfail"))).toBe(at(source, "tempfail"));
    expect(located.offsetAt(located.text.length)).toBe(source.indexOf("\n", 10));
  });

  it("plain, over several lines (folded), with a blank line", () => {
    const source = 'x:\n  then: reject 550\n    5.7.1\n\n      "No such user"\n';
    const located = first(expectAllExact(source));
    expect(located.text).toBe('reject 550 5.7.1\n"No such user"');
    expect(located.offsetAt(located.text.indexOf("5.7.1"))).toBe(at(source, "5.7.1"));
    expect(located.offsetAt(located.text.indexOf('"No'))).toBe(at(source, '"No'));
  });

  it("single-quoted, with '' and folding", () => {
    const source = "then: 'reject \"it''s\n  gone''  ok'\n";
    const located = first(expectAllExact(source));
    expect(located.text).toBe("reject \"it's gone'  ok");
    expect(located.offsetAt(located.text.indexOf("'"))).toBe(at(source, "''"));
    expect(located.offsetAt(located.text.indexOf("s"))).toBe(at(source, "s\n"));
    expect(located.offsetAt(located.text.indexOf("gone"))).toBe(at(source, "gone"));
    expect(located.offsetAt(located.text.indexOf("ok"))).toBe(at(source, "ok"));
  });

  it("double-quoted, with every kind of escape", () => {
    const source =
      'then: "reject \\"a\\\\b\\" \\x41\\u00e9\\U0001F600 tab\\tnl\\n ok\\/ \\_x \\N \\L \\P \\0 \\e \\a \\b \\v \\f \\r end"\n';
    const located = first(expectAllExact(source));
    expect(located.text.startsWith('reject "a\\b" Aé😀 tab\tnl\n ok/')).toBe(true);
    expect(located.offsetAt(located.text.indexOf('"'))).toBe(at(source, '\\"'));
    expect(located.offsetAt(located.text.indexOf("\\"))).toBe(at(source, "\\\\"));
    expect(located.offsetAt(located.text.indexOf("A"))).toBe(at(source, "\\x41"));
    expect(located.offsetAt(located.text.indexOf("é"))).toBe(at(source, "\\u00e9"));
    const emoji = located.text.indexOf("😀");
    expect(located.offsetAt(emoji)).toBe(at(source, "\\U0001F600"));
    expect(located.offsetAt(emoji + 1)).toBe(at(source, "\\U0001F600"));
    expect(located.offsetAt(located.text.indexOf("\t"))).toBe(at(source, "\\t"));
    expect(located.offsetAt(located.text.indexOf("/"))).toBe(at(source, "\\/"));
    expect(located.offsetAt(located.text.indexOf("end"))).toBe(at(source, "end"));
    expect(located.offsetAt(located.text.length)).toBe(at(source, 'end"') + 3);
  });

  it("double-quoted, folded over lines, with escaped line breaks and escaped spaces", () => {
    const source = 'then: "reject 550\n    5.7.1 \\\n    \\ No\n\n  \\tsuch\\\n user"\n';
    const located = first(expectAllExact(source));
    expect(located.text).toBe("reject 550 5.7.1  No\n\tsuchuser");
    expect(located.offsetAt(located.text.indexOf("5.7.1"))).toBe(at(source, "5.7.1"));
    expect(located.offsetAt(located.text.indexOf("No"))).toBe(at(source, "No"));
    expect(located.offsetAt(located.text.indexOf("such"))).toBe(at(source, "such"));
    expect(located.offsetAt(located.text.indexOf("user"))).toBe(at(source, "user"));
  });

  it("block literal |, with a header comment", () => {
    const source = 'rules:\n  - |   # text form\n    on mail:\n      if from == ""\n      then reject\n';
    const located = first(expectAllExact(source));
    expect(located.text).toBe('on mail:\n  if from == ""\n  then reject\n');
    expect(located.offsetAt(0)).toBe(at(source, "on mail"));
    expect(located.offsetAt(located.text.indexOf("if"))).toBe(at(source, "if from"));
    expect(located.offsetAt(located.text.indexOf("reject"))).toBe(at(source, "reject"));
  });

  it("block literal |- and |+ (chomping)", () => {
    const strip = "a: |-\n  one\n  two\n\nb: 1\n";
    const s = first(expectAllExact(strip));
    expect(s.text).toBe("one\ntwo");
    expect(s.offsetAt(4)).toBe(at(strip, "two"));
    const keep = "a: |+\n  one\n  two\n\n\nb: 1\n";
    const k = first(expectAllExact(keep));
    expect(k.text).toBe("one\ntwo\n\n\n");
    expect(k.offsetAt(4)).toBe(at(keep, "two"));
  });

  it("block literal with an indentation indicator (|2) and more-indented lines", () => {
    const source = "rules:\n  - |2\n        indented\n      on rcpt: reject\n";
    const located = first(expectAllExact(source));
    // The indicator counts from the parent's indentation (2): content starts at column 5.
    expect(located.text).toBe("    indented\n  on rcpt: reject\n");
    expect(located.offsetAt(4)).toBe(at(source, "indented"));
    expect(located.offsetAt(located.text.indexOf("on"))).toBe(at(source, "on rcpt"));
  });

  it("block folded > and >-, with more-indented lines kept", () => {
    const source = "a: >\n  on rcpt:\n  if x\n\n    then reject\n  else accept\nb: >-\n  one\n  two\n";
    const [a, b] = expectAllExact(source).map((x) => x.located) as [LocatedText, LocatedText];
    expect(a.text).toBe("on rcpt: if x\n\n  then reject\nelse accept\n");
    expect(a.offsetAt(a.text.indexOf("if"))).toBe(at(source, "if x"));
    expect(a.offsetAt(a.text.indexOf("then"))).toBe(at(source, "then"));
    expect(a.offsetAt(a.text.indexOf("else"))).toBe(at(source, "else"));
    expect(b.text).toBe("one two");
    expect(b.offsetAt(4)).toBe(at(source, "two"));
  });

  it("flow sequences and flow mappings", () => {
    const source = 'on: [mail, "rcpt", \'eom\']\nx: {a: "b\\tc", d: e f}\n';
    const all = expectAllExact(source);
    expect(all.map((s) => s.located.text)).toEqual(["mail", "rcpt", "eom", "b\tc", "e f"]);
    expect(all[1]?.located.offsetAt(0)).toBe(at(source, "rcpt"));
  });

  it("CRLF line endings", () => {
    const source = 'a: |\r\n  one\r\n  two\r\nb: "x\r\n  y"\r\nc: p\r\n  q\r\n';
    const all = expectAllExact(source);
    expect(all.map((s) => s.located.text)).toEqual(["one\ntwo\n", "x y", "p q"]);
  });

  it("an empty value is located where it is", () => {
    const source = "a: \"\"\nb: ''\nc: |\n\nd: x\n";
    const all = scalars(source);
    expect(all[0]?.located.offsetAt(0)).toBe(4);
    expect(all[1]?.located.offsetAt(0)).toBe(10);
    expect(all[2]?.located.text).toBe("");
  });
});

describe("MappedText helpers", () => {
  it("splits stage words and keeps their offsets", () => {
    const source = 'on: " mail,rcpt ,  eom"\n';
    const located = first(scalars(source));
    const words = splitWords(located);
    expect(words.map((w) => w.text)).toEqual(["mail", "rcpt", "eom"]);
    expect(words.map((w) => w.offsetAt(0))).toEqual([
      at(source, "mail"),
      at(source, "rcpt"),
      at(source, "eom"),
    ]);
    expect(words[0]?.offsetAt(4)).toBe(at(source, ","));
  });

  it("concatenates and slices", () => {
    const joined = MappedText.concat([MappedText.at("ab", 10), MappedText.at(":", 20)]);
    expect(joined.text).toBe("ab:");
    expect(joined.offsetAt(2)).toBe(20);
    expect(joined.slice(1).text).toBe("b:");
    expect(joined.slice(1).offsetAt(0)).toBe(10);
    expect(joined.slice(3).offsetAt(0)).toBe(20);
  });
});

const UNITS = [
  "a",
  "b",
  "z",
  "0",
  " ",
  "  ",
  "\n",
  "\t",
  "'",
  '"',
  "\\",
  "#",
  ":",
  ": ",
  " #",
  "-",
  "{",
  "}",
  "[",
  ",",
  "é",
  "😀",
  "\u0007",
  "\u00a0",
  "x y z",
];
const STYLES = ["PLAIN", "QUOTE_SINGLE", "QUOTE_DOUBLE", "BLOCK_LITERAL", "BLOCK_FOLDED"] as const;

describe("LocatedText, property: any value written in any style", () => {
  it("maps every non-whitespace character exactly", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...UNITS), { minLength: 1, maxLength: 40 }).map((parts) => parts.join("")),
        fc.constantFrom(...STYLES),
        fc.integer({ min: 8, max: 40 }),
        fc.boolean(),
        (value, style, lineWidth, nested) => {
          const doc = new Document(nested ? { rules: [{ then: value }], b: [value] } : { then: value });
          visit(doc, {
            Scalar(_key, node) {
              if (typeof node.value === "string" && node.value === value) node.type = style;
            },
          });
          const source = doc.toString({ lineWidth, minContentWidth: 4 });
          // yaml's stringifier, forced into a style, sometimes writes what it cannot read back.
          const reparsed = parseDocument(source);
          fc.pre(
            reparsed.errors.length === 0 && JSON.stringify(reparsed.toJS()) === JSON.stringify(doc.toJS()),
          );
          for (const { node, located } of scalars(source)) {
            if (node.value !== value) continue;
            expectExact(source, node, located);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("LocatedText, property: long plain text folded over lines", () => {
  it("maps every word exactly", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z][a-z0-9(){}."=<>!-]{0,11}$/), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 0, max: 3 }),
        (words, perLine, blankEvery) => {
          const lines: string[] = [];
          for (let i = 0; i < words.length; i += perLine) lines.push(words.slice(i, i + perLine).join(" "));
          const body = lines.map((line, i) =>
            i > 0 && blankEvery > 0 && i % blankEvery === 0 ? `\n      ${line}` : `      ${line}`,
          );
          const source = `rules:\n  - then:\n${body.join("\n")}\n`;
          const all = scalars(source);
          expect(all).toHaveLength(1);
          for (const { node, located } of all) expectExact(source, node, located);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

/** A located text as a table of every character's start and end: the model MappedText's runs must match. */
class TableText implements LocatedText {
  constructor(
    readonly text: string,
    private readonly starts: number[],
    private readonly ends: number[],
    private readonly emptyAt: number,
  ) {}
  offsetAt(i: number): number {
    const n = this.text.length;
    if (n === 0) return this.emptyAt;
    if (i <= 0) return this.starts[0] as number;
    return i < n ? (this.starts[i] as number) : (this.ends[n - 1] as number);
  }
  endAt(i: number): number {
    const n = this.text.length;
    return n === 0 ? this.emptyAt : (this.ends[Math.max(0, Math.min(i, n - 1))] as number);
  }
  slice(from: number, to = this.text.length): TableText {
    const s = Math.max(0, Math.min(from, this.text.length));
    const e = Math.max(s, Math.min(to, this.text.length));
    return new TableText(
      this.text.slice(s, e),
      this.starts.slice(s, e),
      this.ends.slice(s, e),
      this.offsetAt(s),
    );
  }
}

function expectSame(model: TableText, mapped: MappedText): void {
  expect(mapped.text).toBe(model.text);
  for (let i = -1; i <= model.text.length + 1; i++) {
    expect([i, mapped.offsetAt(i), mapped.endAt(i)]).toEqual([i, model.offsetAt(i), model.endAt(i)]);
  }
}

describe("MappedText, property: runs of characters answer as a table of every character would", () => {
  // Characters as YAML gives them: written out (one after another), made up (width 0, in place),
  // escapes (wider), and jumps (a new line's indentation skipped).
  const step = fc.oneof(
    fc.constant({ gap: 0, width: 1 }),
    fc.constant({ gap: 0, width: 1 }),
    fc.constant({ gap: -1, width: 0 }),
    fc.record({ gap: fc.integer({ min: 0, max: 6 }), width: fc.integer({ min: 0, max: 10 }) }),
  );
  const table = fc.array(step, { maxLength: 60 }).map((steps) => {
    const starts: number[] = [];
    const ends: number[] = [];
    let at = 5;
    for (const { gap, width } of steps) {
      const start = gap === -1 ? at : at + gap;
      starts.push(start);
      ends.push(start + width);
      at = gap === -1 ? at : start + Math.max(width, 1);
    }
    const text = starts.map((_, i) => "abcdefghij"[i % 10]).join("");
    // toMapped reads a character's end as where the next one starts (the last one's end as it is).
    const seen = ends.map((end, i) => (i + 1 < starts.length ? (starts[i + 1] as number) : end));
    return new TableText(text, starts, seen, 3);
  });

  it("toMapped, slice, concat and at", () => {
    fc.assert(
      fc.property(table, table, fc.nat(70), fc.nat(70), (a, b, from, length) => {
        const ma = toMapped(a);
        const mb = toMapped(b);
        expectSame(a, ma);
        expectSame(a.slice(from, from + length), ma.slice(from, from + length));
        const joined = MappedText.concat([ma, MappedText.at(": ", 99), mb]);
        const model = new TableText(
          `${a.text}: ${b.text}`,
          [...a.text]
            .map((_, i) => a.offsetAt(i))
            .concat(
              [99, 99],
              [...b.text].map((_, i) => b.offsetAt(i)),
            ),
          [...a.text]
            .map((_, i) => a.endAt(i))
            .concat(
              [99, 99],
              [...b.text].map((_, i) => b.endAt(i)),
            ),
          a.text.length > 0 ? a.offsetAt(0) : 3,
        );
        expectSame(model, joined);
        expectSame(model.slice(from, from + length), joined.slice(from, from + length));
      }),
      { numRuns: 2000 },
    );
  });
});
