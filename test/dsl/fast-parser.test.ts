import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { generateRules } from "../../bench/dsl-rules.js";
import { type Diagnostic, SourceFile } from "../../src/common/diagnostics.js";
import { parseConfig } from "../../src/config/load.js";
import type { LocatedText } from "../../src/config/types.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { lexRule } from "../../src/dsl/lexer.js";
import {
  fastPath,
  type ParseContext,
  parseAction,
  parseCondition,
  parseRuleText,
  parseStageWords,
} from "../../src/dsl/parser.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";

// The Chevrotain parser is the oracle: for every entry point, what run() answers with the fast
// parser first must be what it answers without it, node for node (fields, their order, spans)
// and diagnostic for diagnostic.

const ENTRIES = {
  ruleText: parseRuleText,
  conditionOnly: parseCondition,
  actionOnly: parseAction,
  stagesOnly: parseStageWords,
} satisfies Record<string, (located: LocatedText, ctx: ParseContext) => unknown>;
type Entry = keyof typeof ENTRIES;

/**
 * Where the text sits in its file: verbatim after a prefix, or as a quoted scalar's value whose
 * escapes make the file offsets jump (what toFile maps; every span goes through it).
 */
function locatedIn(text: string, jumps: boolean): LocatedText {
  return { text, offsetAt: (i) => (jumps ? 11 + i + Math.floor(i / 3) : 5 + i) };
}

function answer(entry: Entry, text: string, fast: boolean, jumps: boolean) {
  const ctx = {
    file: new SourceFile("rules.yaml", " ".repeat(12).concat(text, text)),
    diagnostics: [] as Diagnostic[],
  };
  fastPath.enabled = fast;
  const result = ENTRIES[entry](locatedIn(text, jumps), ctx);
  fastPath.enabled = true;
  return {
    result,
    // JSON keeps the fields' order, which toStrictEqual does not look at.
    json: JSON.stringify(result),
    diagnostics: ctx.diagnostics.map(
      (d) => `${d.line}:${d.column} ${d.severity} ${d.message} (${d.hint ?? ""})`,
    ),
  };
}

/** Compares both parsers on `text`; answers whether the fast parser took it. */
function same(entry: Entry, text: string, jumps = false): boolean {
  const before = fastPath.taken;
  const fast = answer(entry, text, true, jumps);
  const taken = fastPath.taken > before;
  const oracle = answer(entry, text, false, jumps);
  const label = `${entry}: ${JSON.stringify(text)}`;
  expect(fast.diagnostics, label).toEqual(oracle.diagnostics);
  expect(fast.json, label).toBe(oracle.json);
  expect(fast.result, label).toStrictEqual(oracle.result);
  return taken;
}

// --- texts from the grammar -------------------------------------------------------------------

const names = fc.constantFrom("rcpt", "from", "client.ip", "my-list", "auth.user", "size", "x_1", "header");
const literals = fc.constantFrom(
  '"text"',
  '""',
  '"a \\"q\\" \\\\ \\n {rcpt}"',
  "0",
  "42",
  "2.5",
  "10MB",
  "1.5KiB",
  "3B",
  "5m",
  "250ms",
  "1.5h",
  "192.0.2.1",
  "::1",
  "2001:db8::1",
  "10.0.0.0/8",
  "2001:db8::/32",
  "true",
  "false",
);
const regexes = fc.constantFrom("/a/", "/^x\\/y$/i", "/[a-z]+/gim", "/\\d{3}/", "/ /s");
const compares = fc.constantFrom("==", "!=", "<", "<=", ">", ">=");
const spaces = fc.constantFrom(" ", " ", " ", "  ", "\n  ", "\t", " # note\n ");

/** Conditions nested up to `depth` levels (parentheses, lists, calls, index keys, not, and/or). */
function conditions(depth: number): fc.Arbitrary<string> {
  const inner = depth === 0 ? undefined : conditions(depth - 1);
  const primary = fc.oneof(
    { arbitrary: literals, weight: 5 },
    { arbitrary: names, weight: 5 },
    ...(inner === undefined
      ? []
      : [
          inner.map((e) => `(${e})`),
          fc.array(inner, { maxLength: 2 }).map((items) => `[${items.join(", ")}]`),
          fc
            .tuple(fc.constantFrom("quota", "header", "macro", "f"), fc.array(inner, { maxLength: 2 }))
            .map(([f, args]) => `${f}(${args.join(",")})`),
        ]),
  );
  const suffix = fc.oneof(
    { arbitrary: fc.constantFrom(".a", ".over", ".b-c", "\n.x"), weight: 3 },
    ...(inner === undefined ? [] : [{ arbitrary: inner.map((k) => `[${k}]`), weight: 1 }]),
  );
  // A literal's suffix after a space: `2.5.a` or `10MB.a` is not what the lexer cuts.
  const postfix = fc
    .tuple(primary, fc.array(suffix, { maxLength: 2 }))
    .map(([p, suffixes]) => (suffixes.length > 0 && /^[\d:"]/.test(p) ? `${p} ` : p) + suffixes.join(""));
  const value = fc
    .tuple(postfix, fc.array(fc.tuple(fc.constantFrom(" + ", " - ", " * ", "*"), postfix), { maxLength: 2 }))
    .map(([first, rest]) => first + rest.map(([op, v]) => op + v).join(""));
  const predicate = fc.oneof(
    value,
    fc.tuple(value, compares, value).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(value, regexes).map(([a, r]) => `${a} matches ${r}`),
    fc.tuple(value, fc.constantFrom(" in ", " not in "), postfix).map(([a, op, t]) => a + op + t),
    value.map((v) => `${v} over`),
  );
  const negated = fc.tuple(fc.constantFrom("", "", "not ", "not not "), predicate).map(([n, e]) => n + e);
  return fc
    .tuple(negated, fc.array(fc.tuple(fc.constantFrom(" and ", " or ", "\nand "), negated), { maxLength: 2 }))
    .map(([first, rest]) => first + rest.map(([op, e]) => op + e).join(""));
}
const expr = conditions(2);

const strings = fc.constantFrom('"x"', '"why {rcpt}"', '"a\\"b"', '""');
const actions = fc.oneof(
  fc.constantFrom("accept", "discard", "continue", "reject", "tempfail", "add header", "frobnicate", "add"),
  fc
    .tuple(
      fc.constantFrom("reject", "tempfail", "log", "quarantine", "accept", "add header", "add x"),
      fc.array(fc.oneof(fc.constantFrom("550", "451", "5.7.1", "4.2.2"), strings), { maxLength: 3 }),
    )
    .map(([verb, args]) => [verb, ...args].join(" ")),
);
const statements = fc.oneof(
  actions,
  fc.tuple(expr, actions).map(([c, a]) => `if ${c} then ${a}`),
  fc.tuple(expr, actions, actions).map(([c, a, b]) => `if ${c} then ${a} else ${b}`),
);
const stageLists = fc
  .array(fc.constantFrom("connect", "helo", "mail", "rcpt", "data", "eom", "nonsense"), {
    minLength: 1,
    maxLength: 3,
  })
  .map((s) => s.join(", "));
const rules = fc
  .tuple(fc.boolean(), stageLists, fc.array(statements, { minLength: 1, maxLength: 3 }), spaces)
  .map(([shadow, stages, body, gap]) => `${shadow ? "shadow " : ""}on ${stages}:${gap}${body.join(gap)}`);

const TEXTS: Record<Entry, fc.Arbitrary<string>> = {
  ruleText: rules,
  conditionOnly: expr,
  actionOnly: actions,
  stagesOnly: stageLists,
};

// --- mutations ---------------------------------------------------------------------------------

const SPLICED = [
  "(",
  ")",
  "[",
  "]",
  ",",
  ":",
  ".",
  "+",
  "-",
  "*",
  "==",
  "<",
  "not",
  "in",
  "and",
  "or",
  "if",
].concat([
  "then",
  "else",
  "on",
  "shadow",
  "over",
  "matches",
  "/r/",
  "x",
  "1",
  '"s"',
  "5.7.1",
  "10MB",
  "true",
]);

type Mutation =
  | { kind: "drop" | "duplicate" | "swap" | "truncate"; at: number }
  | { kind: "splice"; at: number; token: string };
const mutations: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom("drop", "duplicate", "swap", "truncate"), at: fc.nat() }),
  fc.record({ kind: fc.constant("splice"), at: fc.nat(), token: fc.constantFrom(...SPLICED) }),
) as fc.Arbitrary<Mutation>;

function mutate(text: string, mutation: Mutation): string {
  const images = lexRule(text).tokens.map((t) => t.image);
  const at = images.length === 0 ? 0 : mutation.at % images.length;
  switch (mutation.kind) {
    case "drop":
      images.splice(at, 1);
      break;
    case "duplicate":
      images.splice(at, 0, images[at] ?? "x");
      break;
    case "swap":
      images.splice(at, 2, ...images.slice(at, at + 2).reverse());
      break;
    case "truncate":
      images.length = at;
      break;
    case "splice":
      images.splice(at, 0, mutation.token);
  }
  return images.join(" ");
}

// --- the tests ---------------------------------------------------------------------------------

describe("the fast rule parser", () => {
  afterEach(() => {
    fastPath.enabled = true;
  });

  for (const entry of Object.keys(ENTRIES) as Entry[]) {
    it(`answers what the Chevrotain parser answers for ${entry} texts from the grammar`, () => {
      let taken = 0;
      let runs = 0;
      fc.assert(
        fc.property(TEXTS[entry], fc.boolean(), (text, jumps) => {
          runs++;
          if (same(entry, text, jumps)) taken++;
        }),
        { numRuns: 2500 },
      );
      // Nearly all of these are valid: a parser that always gave up would pass the rest alone.
      expect(taken / runs).toBeGreaterThan(0.9);
    });

    it(`gives up where the Chevrotain parser reports, for mutated ${entry} texts`, () => {
      fc.assert(
        fc.property(TEXTS[entry], fc.array(mutations, { minLength: 1, maxLength: 2 }), (text, changes) => {
          const mutated = changes.reduce(mutate, text);
          for (const other of Object.keys(ENTRIES) as Entry[]) same(other, mutated, changes.length > 1);
        }),
        { numRuns: 2500 },
      );
    });
  }

  it("answers the same in fixed cases at the grammar's edges", () => {
    const cases: [Entry, string][] = [
      ["ruleText", "on rcpt: reject accept add header"],
      ["ruleText", "on rcpt: add header if x then add y else add"],
      ["ruleText", 'shadow on mail,rcpt: if a.over.b[1][2] over then log "{a}"'],
      ["ruleText", 'on rcpt: if x then accept else reject 550 5.7.1 "no" tempfail'],
      ["ruleText", "on rcpt:"],
      ["ruleText", "on rcpt: if x then"],
      ["conditionOnly", "a not b"],
      ["conditionOnly", "a in b.c[d] + 1"],
      ["conditionOnly", "not a == b or c and not d"],
      ["conditionOnly", "1 + 2 * 3 - 4 * 5 < x"],
      ["conditionOnly", "f() (1)"],
      ["conditionOnly", "[1,]"],
      ["conditionOnly", "[,1]"],
      ["conditionOnly", "a.true"],
      ["conditionOnly", "x matches"],
      ["conditionOnly", "5.7.1 == x"],
      ["conditionOnly", ""],
      ["actionOnly", "reject 550 x"],
      ["actionOnly", "add"],
      ["stagesOnly", "rcpt,"],
    ];
    for (const [entry, text] of cases) same(entry, text, true);
  });

  it("takes every rule of the validation benchmark", () => {
    const text = generateRules(200);
    const before = { ...fastPath };
    const parsed = parseConfig(new SourceFile("bench-rules.yaml", text), { sourceTypes: SOURCE_CATALOG });
    expect(parsed.config).toBeDefined();
    const compiled = compileConfig(parsed.config as NonNullable<typeof parsed.config>);
    expect(compiled.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(fastPath.declined - before.declined).toBe(0);
    // Each rule has a text or its pieces (condition, action, stages): at least one parse a rule.
    expect(fastPath.taken - before.taken).toBeGreaterThanOrEqual(200);
  });
});
