import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Diagnostic, SourceFile } from "../../src/common/diagnostics.js";
import { parseDuration, parseSize } from "../../src/common/units.js";
import { type Action, type Expr, stripSpans } from "../../src/dsl/ast.js";
import { LIMITS, parseCondition, parseRuleText } from "../../src/dsl/parser.js";
import { printAction, printExpr, printRule } from "../../src/dsl/printer.js";
import { KEYWORD_WORDS } from "../../src/dsl/tokens.js";
import { located } from "./helpers.js";

function parse(text: string) {
  const ctx = { file: new SourceFile("rules.yaml", text), diagnostics: [] as Diagnostic[] };
  const rule = parseRuleText(located(text), ctx);
  return {
    rule,
    diagnostics: ctx.diagnostics.map(
      (d) => `${d.line}:${d.column} ${d.message}${d.hint ? ` (${d.hint})` : ""}`,
    ),
  };
}

describe("the rule language parser", () => {
  it("parses the design card's one-liner as written", () => {
    const { rule, diagnostics } = parse("on rcpt: if quota(rcpt) over then tempfail 452 4.2.2");
    expect(diagnostics).toEqual([]);
    expect(stripSpans(rule?.statements)).toEqual([
      {
        kind: "if",
        condition: {
          kind: "over",
          subject: { kind: "call", callee: "quota", args: [{ kind: "name", parts: ["rcpt"] }] },
        },
        then: { verb: "tempfail", code: { value: 452 }, enhancedCode: { value: "4.2.2" } },
      },
    ]);
  });

  it("parses several stages, several statements, else, shadow and comments", () => {
    const { rule, diagnostics } = parse(
      'shadow on mail, rcpt:  # try it first\n  if from == "" then accept else log "x"\n  if auth.user != "" then accept\n  reject 550 5.7.1 "no"',
    );
    expect(diagnostics).toEqual([]);
    expect(rule?.shadow).toBe(true);
    expect(rule?.stages.map((s) => s.word)).toEqual(["mail", "rcpt"]);
    expect(rule?.statements.map((s) => s.kind)).toEqual(["if", "if", "action"]);
  });

  it("gives and precedence over or, and binds not tightest", () => {
    const { rule } = parse("on mail: if not a == 1 or b == 2 and c == 3 then reject");
    const condition = rule?.statements[0]?.kind === "if" ? rule.statements[0].condition : undefined;
    expect(condition?.kind).toBe("or");
    expect(condition?.kind === "or" && condition.left.kind).toBe("not");
    expect(condition?.kind === "or" && condition.right.kind).toBe("and");
  });

  it("reads IPs, CIDRs, sizes, durations, enhanced codes and regexes as literals", () => {
    const { rule, diagnostics } = parse(
      "on connect: if client.ip in [192.0.2.0/24, 2001:db8::/32, ::1, 10.1.2.3] and size > 200MiB and x < 5m and y matches /a\\/b/i then reject 554 5.7.1",
    );
    expect(diagnostics).toEqual([]);
    expect(printRule(rule as never)).toContain("[192.0.2.0/24, 2001:db8::/32, ::1, 10.1.2.3]");
    expect(printRule(rule as never)).toContain("size > 200MiB and x < 5m and y matches /a\\/b/i");
  });

  it("parses arithmetic: * over + and -, both over comparisons, left to right", () => {
    const { rule, diagnostics } = parse(
      "on mail: if size + 2 * quota(rcpt).usage - 1MB > 10MB * 3 then reject",
    );
    expect(diagnostics).toEqual([]);
    const condition = rule?.statements[0]?.kind === "if" ? rule.statements[0].condition : undefined;
    const shape = (e: Expr | undefined): unknown =>
      e?.kind === "arith"
        ? [shape(e.left), e.op, shape(e.right)]
        : e?.kind === "compare"
          ? [shape(e.left), e.op, shape(e.right)]
          : (e?.kind ?? "?");
    expect(shape(condition)).toEqual([
      [["name", "+", ["number", "*", "member"]], "-", "size"],
      ">",
      ["size", "*", "number"],
    ]);
    expect(printExpr(condition as Expr)).toBe("size + 2 * quota(rcpt).usage - 1MB > 10MB * 3");
  });

  it("keeps parentheses that change the order when printing", () => {
    const { rule } = parse("on mail: if (size + 1MB) * 2 > size - (1MB - 2MB) then reject");
    const condition = rule?.statements[0]?.kind === "if" ? rule.statements[0].condition : undefined;
    expect(printExpr(condition as Expr)).toBe("(size + 1MB) * 2 > size - (1MB - 2MB)");
  });

  it("gives an operator's span to the arithmetic node, for messages", () => {
    const { rule } = parse("on mail: if size + 5 > 1 then reject");
    const condition = rule?.statements[0]?.kind === "if" ? rule.statements[0].condition : undefined;
    const left = condition?.kind === "compare" ? condition.left : undefined;
    expect(left?.kind === "arith" && left.opSpan).toEqual({ start: 17, end: 18 });
    expect(left?.span).toEqual({ start: 12, end: 20 });
  });

  it("accepts over both as a postfix and as a member of a quota status", () => {
    const postfix = parse("on rcpt: if quota(rcpt) over then reject");
    const member = parse("on rcpt: if quota(rcpt).over then reject");
    expect(postfix.diagnostics).toEqual([]);
    expect(member.diagnostics).toEqual([]);
    const condition =
      member.rule?.statements[0]?.kind === "if" ? member.rule.statements[0].condition : undefined;
    expect(condition).toMatchObject({ kind: "member", property: "over" });
  });

  it("reads TABLE[X] and member access on a call", () => {
    const { rule, diagnostics } = parse(
      'on rcpt: if directory.quota[rcpt] == "x" or quota(rcpt).percent >= 90 then accept',
    );
    expect(diagnostics).toEqual([]);
    expect(printRule(rule as never)).toContain('directory.quota[rcpt] == "x" or quota(rcpt).percent >= 90');
  });

  it.each([
    ["on rcpt: if rcpt then rejct 550", "1:23 unknown action 'rejct' (did you mean 'reject'?)"],
    ['on rcpt: if rcpt == "abc then reject', `1:21 unterminated string: missing closing '"'`],
    [
      "on rcpt: if rcpt matches /abc then reject",
      "1:26 unterminated regular expression: missing closing '/'",
    ],
    ["on rcpt: if rcpt ~ 3 then reject", "1:18 unexpected character '~'"],
    ["on rcpt: if rcpt == 3 reject", "1:23 expected 'then', found 'reject'"],
    ["on rcpt:", "1:9 expected a statement after ':', found the end of the rule"],
    ["on rcpt: reject 4.2.2", "1:17 an enhanced status code needs a reply code before it (e.g. 550 5.7.1)"],
    ['on rcpt: reject "x" 550', "1:21 'reject' takes [CODE [ENHANCED-CODE]] [\"text\"], in that order"],
    ["rcpt: reject", "1:1 expected 'on', found 'rcpt'"],
    ["on rcpt reject", "1:9 expected ':', found 'reject'"],
    ["on rcpt: quarantine", "1:10 'quarantine' takes one quoted text: quarantine \"reason\""],
    [
      'on eom: add header "X-A"',
      '1:20 \'add header\' takes a quoted name and value: add header "X-Name" "value"',
    ],
    ["on rcpt: accept 5", "1:17 'accept' takes no arguments"],
    ["on rcpt: if (a == 1 then reject", "1:21 expected ')', found 'then'"],
    ["on rcpt: if a in then reject", "1:18 expected a value, found 'then'"],
    ["on mail: if size + > 1 then reject", "1:20 expected a value, found '>'"],
    ["on mail: if size * then reject", "1:20 expected a value, found 'then'"],
    ["on mail: if -size > 1 then reject", "1:13 expected a value, found '-'"],
  ])("reports %j at the right place", (text, expected) => {
    const { rule, diagnostics } = parse(text);
    expect(rule).toBeUndefined();
    expect(diagnostics[0]).toBe(expected);
  });

  it("refuses absurd nesting with a clear limit instead of overflowing the stack", () => {
    const deep = `on rcpt: if ${"(".repeat(1000)}a == 1${")".repeat(1000)} then reject`;
    const { diagnostics } = parse(deep);
    expect(diagnostics[0]).toMatch(/expression nested more than 64 levels deep/);
    const nots = `on rcpt: if ${"not ".repeat(500)}a == 1 then reject`;
    expect(parse(nots).diagnostics[0]).toMatch(/nested more than 64 levels/);
  });

  it("refuses over-long rules and token floods quickly", () => {
    const long = `on rcpt: if a == "${"x".repeat(LIMITS.ruleChars)}" then reject`;
    expect(parse(long).diagnostics[0]).toMatch(/characters long; the limit is/);
    const flood = `on rcpt: if ${Array.from({ length: 3000 }, () => "a==1").join(" or ")} then reject`;
    const started = performance.now();
    expect(parse(flood).diagnostics[0]).toMatch(/tokens; the limit is 10000/);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("parses a long flat chain of conditions without recursion trouble", () => {
    const chain = `on rcpt: if ${Array.from({ length: 2000 }, (_, i) => `a == ${i}`).join(" or ")} then reject`;
    expect(parse(chain).diagnostics).toEqual([]);
  });

  it("maps positions through a LocatedText, not the raw string", () => {
    const text = "on rcpt: if rcpt then rejct";
    const file = new SourceFile("rules.yaml", `rules:\n  - ${text}`);
    const ctx = { file, diagnostics: [] as Diagnostic[] };
    parseRuleText({ text, offsetAt: (i) => 11 + i }, ctx);
    expect(ctx.diagnostics[0]).toMatchObject({ line: 2, column: 27, message: "unknown action 'rejct'" });
  });
});

// ---------------------------------------------------------------------------------------
// Property tests

const identifier = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/).filter((s) => !KEYWORD_WORDS.includes(s));
const name = fc
  .array(identifier, { minLength: 1, maxLength: 3 })
  .map((parts): Expr => ({ kind: "name", parts, partSpans: [], span: { start: 0, end: 0 } }));
const span = { start: 0, end: 0 };
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is being filtered
const text = fc.string({ maxLength: 12 }).filter((s) => !/[\u0000-\u001f]/.test(s) || /^[\n\t]*$/.test(s));
const literal: fc.Arbitrary<Expr> = fc.oneof(
  text.map((value): Expr => ({ kind: "string", value, span })),
  fc.nat(100_000).map((value): Expr => ({ kind: "number", value, span })),
  fc
    .constantFrom("200MB", "1MiB", "5GB", "10KiB")
    .map((t): Expr => ({ kind: "size", bytes: parseSize(t) as number, text: t, span })),
  fc
    .constantFrom("500ms", "30s", "5m", "1h")
    .map((t): Expr => ({ kind: "duration", ms: parseDuration(t) as number, text: t, span })),
  fc.constantFrom("192.0.2.1", "::1", "2001:db8::5").map((t): Expr => ({ kind: "ip", text: t, span })),
  fc.boolean().map((value): Expr => ({ kind: "bool", value, span })),
);
const atom: fc.Arbitrary<Expr> = fc.oneof(
  literal,
  name,
  fc
    .tuple(identifier, fc.array(fc.oneof(name, literal), { maxLength: 2 }))
    .map(([callee, args]): Expr => ({ kind: "call", callee, calleeSpan: span, args, span })),
);
const { condition } = fc.letrec<{ condition: Expr; operand: Expr }>((tie) => ({
  operand: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    atom,
    fc.tuple(tie("operand"), fc.constantFrom("+", "-", "*" as const), tie("operand")).map(
      ([left, op, right]): Expr => ({
        kind: "arith",
        op,
        left: left as Expr,
        right: right as Expr,
        opSpan: span,
        span,
      }),
    ),
  ),
  condition: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.tuple(tie("operand"), fc.constantFrom("==", "!=", "<", "<=", ">", ">=" as const), tie("operand")).map(
      ([left, op, right]): Expr => ({
        kind: "compare",
        op,
        left: left as Expr,
        right: right as Expr,
        span,
      }),
    ),
    fc
      .tuple(
        atom,
        fc.boolean(),
        fc.oneof(
          name,
          fc.array(literal, { maxLength: 3 }).map((items): Expr => ({ kind: "list", items, span })),
        ),
      )
      .map(([subject, negated, table]): Expr => ({ kind: "in", subject, negated, table, span })),
    fc.tuple(atom, fc.stringMatching(/^[a-z0-9.*+]{1,6}$/), fc.constantFrom("", "i", "im")).map(
      ([subject, pattern, flags]): Expr => ({
        kind: "matches",
        subject,
        pattern,
        flags,
        patternSpan: span,
        span,
      }),
    ),
    atom.map((subject): Expr => ({ kind: "over", subject, span })),
    tie("condition").map((operand): Expr => ({ kind: "not", operand: operand as Expr, span })),
    fc
      .tuple(tie("condition"), tie("condition"), fc.constantFrom("and", "or" as const))
      .map(([left, right, kind]): Expr => ({ kind, left: left as Expr, right: right as Expr, span })),
  ),
}));
const template = text.map((t) => ({ text: t, span }));
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.constantFrom("continue", "accept", "discard" as const).map((verb): Action => ({ verb, span })),
  fc
    .tuple(
      fc.constantFrom("reject" as const, "tempfail" as const),
      fc.option(fc.integer({ min: 400, max: 599 })),
      fc.option(fc.constantFrom("5.7.1", "4.2.2")),
      fc.option(template),
    )
    .map(([verb, code, enhanced, t]): Action => {
      const a: Action = { verb, span };
      if (code !== null) a.code = { value: code, span };
      if (code !== null && enhanced !== null) a.enhancedCode = { value: enhanced, span };
      if (t !== null) a.text = t;
      return a;
    }),
  template.map((reason): Action => ({ verb: "quarantine", reason, span })),
  fc.tuple(template, template).map(([n, value]): Action => ({ verb: "add header", name: n, value, span })),
  template.map((t): Action => ({ verb: "log", text: t, span })),
);

describe("property: print then parse gives the same tree", () => {
  it("for random conditions and actions", () => {
    fc.assert(
      fc.property(condition, action, fc.option(action), (cond, then, otherwise) => {
        const statement =
          otherwise === null
            ? `if ${printExpr(cond)} then ${printAction(then)}`
            : `if ${printExpr(cond)} then ${printAction(then)} else ${printAction(otherwise)}`;
        const { rule, diagnostics } = parse(`on rcpt: ${statement}`);
        expect(diagnostics).toEqual([]);
        const statementNode = rule?.statements[0];
        expect(statementNode?.kind).toBe("if");
        if (statementNode?.kind !== "if") return;
        expect(stripSpans(statementNode.condition)).toEqual(stripSpans(cond));
        expect(stripSpans(statementNode.then)).toEqual(stripSpans(then));
        if (otherwise !== null) expect(stripSpans(statementNode.else)).toEqual(stripSpans(otherwise));
      }),
      { numRuns: 400 },
    );
  });
});

describe("property: token soup never throws", () => {
  const pieces = [
    "on",
    "if",
    "then",
    "else",
    "and",
    "or",
    "not",
    "in",
    "matches",
    "over",
    "shadow",
    "rcpt",
    "mail",
    ":",
    ",",
    "(",
    ")",
    "[",
    "]",
    ".",
    "==",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "a-b",
    '"str"',
    '"open',
    "/re/i",
    "/open",
    "550",
    "5.7.1",
    "200MB",
    "5m",
    "192.0.2.1",
    "10.0.0.0/8",
    "::1",
    "quota",
    "reject",
    "tempfail",
    "add",
    "header",
    "log",
    "~",
    "@",
    "\n",
    "#c\n",
  ];
  it("answers a rule or diagnostics, for any sequence of tokens", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 40 }), (tokens) => {
        const text = tokens.join(" ");
        const ctx = { file: new SourceFile("r", text), diagnostics: [] as Diagnostic[] };
        const rule = parseRuleText(located(text), ctx);
        if (rule === undefined) expect(ctx.diagnostics.length).toBeGreaterThan(0);
        for (const d of ctx.diagnostics) {
          expect(d.line).toBeGreaterThanOrEqual(1);
          expect(d.column).toBeGreaterThanOrEqual(1);
        }
        const cond = parseCondition(located(text), { file: ctx.file, diagnostics: [] });
        expect(cond === undefined || typeof cond === "object").toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
