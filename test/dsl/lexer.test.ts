import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lexRule } from "../../src/dsl/lexer.js";
import { KEYWORD_WORDS, RuleLexer } from "../../src/dsl/tokens.js";

/** A lexer's answer in the terms compared: tokens by type name, errors as offset and length. */
function comparable(lexed: {
  tokens: ReturnType<typeof lexRule>["tokens"];
  errors: readonly { offset: number; length: number }[];
}) {
  return {
    tokens: lexed.tokens.map((t) => ({
      image: t.image,
      startOffset: t.startOffset,
      tokenTypeIdx: t.tokenTypeIdx,
      tokenType: t.tokenType.name,
    })),
    errors: lexed.errors.map((e) => ({ offset: e.offset, length: e.length })),
  };
}

/** What RuleLexer (the definition) answers. */
const oracle = (text: string) => comparable(RuleLexer.tokenize(text));
const ours = (text: string) => comparable(lexRule(text));

function same(text: string): void {
  expect(ours(text), JSON.stringify(text)).toEqual(oracle(text));
}

const digits = fc.stringMatching(/^\d{1,5}$/);
const hex = fc.stringMatching(/^[0-9A-Fa-f]{0,5}$/);
const octet = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(String),
  fc.constantFrom("0", "00", "01", "255", "256", "249", "250", "199", "1000"),
);
const ipv4 = fc.array(octet, { minLength: 1, maxLength: 5 }).map((o) => o.join("."));
const ipv6 = fc
  .array(fc.oneof(hex, fc.constant("")), { minLength: 1, maxLength: 10 })
  .map((g) => g.join(":"));
const address = fc
  .tuple(fc.oneof(ipv4, ipv6), fc.constantFrom("", "/", "/8", "/24", "/128", "/1234", "/x"))
  .map(([a, p]) => a + p);
const numberish = fc
  .tuple(
    digits,
    fc.constantFrom("", ".", ".5", ".25", ".x"),
    fc.constantFrom(
      "",
      "KiB",
      "MiB",
      "GiB",
      "TiB",
      "KB",
      "MB",
      "GB",
      "TB",
      "B",
      "ms",
      "s",
      "m",
      "h",
      "d",
      "x",
      "Mb",
    ),
  )
  .map(([a, b, c]) => a + b + c);
const enhanced = fc
  .tuple(fc.constantFrom("2", "4", "5", "3", "55"), digits, digits)
  .map(([a, b, c]) => `${a}.${b}.${c}`);
const stringish = fc
  .tuple(
    fc.constantFrom('"', "/"),
    fc.array(
      fc.constantFrom(
        "a",
        " ",
        "\\",
        '\\"',
        "\\/",
        "\\\n",
        "\\\r",
        "\\\u2028",
        '"',
        "/",
        "{x}",
        "é",
        "\t",
        "\r",
      ),
      {
        maxLength: 6,
      },
    ),
    fc.constantFrom("", '"', "/", "/i", "/gim", "/x1", "\n"),
  )
  .map(([open, body, close]) => open + body.join("") + close);
const wordish = fc
  .tuple(
    fc.constantFrom(
      ...KEYWORD_WORDS,
      "rcpt",
      "_x",
      "add-header",
      "Not",
      "ifs",
      "on-",
      "a",
      "face",
      "be",
      "x9",
    ),
    fc.constantFrom("", "-", "-x", "-1", "_", "x", "2", "--y", ":", "::"),
  )
  .map(([a, b]) => a + b);
const punctuation = fc.constantFrom(
  "==",
  "=",
  "!=",
  "!",
  "<=",
  "<",
  ">=",
  ">",
  "(",
  ")",
  "[",
  "]",
  ",",
  ":",
  "::",
  ".",
  "+",
  "-",
  "*",
  "'",
  "@",
  "&",
  "|",
  "é",
  "\u2028",
  "😀",
  "\\",
  "{",
  "}",
  "$",
  "%",
  "#",
  "# comment",
  "#x\r",
);
const space = fc.constantFrom("", "", " ", "\n", "\t", "\r\n", "  ");
const fragment = fc.oneof(address, numberish, enhanced, stringish, wordish, punctuation, space);
const text = fc.array(fragment, { maxLength: 12 }).map((parts) => parts.join(""));

describe("the rule lexer", () => {
  it("answers what RuleLexer answers for texts made of the language's fragments", () => {
    fc.assert(
      fc.property(text, (t) => same(t)),
      { numRuns: 20000 },
    );
  });

  it("answers what RuleLexer answers for any short string", () => {
    const chars = fc.constantFrom(..."aefgz09125.:/\\\"'#- \n\r@é=!<>()[],+*_AFKMBi".split(""));
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 16 }), (c) => same(c.join(""))),
      { numRuns: 20000 },
    );
  });

  it("answers what RuleLexer answers for the forms the language has", () => {
    for (const t of [
      "",
      'on connect:\n  if client.ip in ["10.1.2.0/24", 2001:db8::/48, ::1, 192.0.2.1] then reject 554 5.7.1 "x {y}"',
      "if size > 1.5MB and delay >= 250ms or x matches /a\\/b/i then accept # done",
      "dead::beef face:b00c 1.2.3.4:25 1.2.3.4.5 256.1.1.1 01.2.3.4 1.2.3.4/33 1.2.3.4/1234 5.7.1234 4.2.2.",
      "1:2:3:4:5:6:7:8 1:2:3:4:5:6:7:: 1:2:3:4:5:6:7:8:: 12345::1 a:b 1.5.3 1.5x 1.x 10KiBs 5ms. 5m.s",
      "'hello' user@example.org a = b && c || !d \"open \\\n // /x\\",
      // Every flag letter a regex literal may carry, and what ends them.
      "/a/abcdefghijklmnopqrstuvwxyz /b/iZ /c/i9 /d/i_x /e/gim.s",
    ]) {
      same(t);
    }
  });
});
