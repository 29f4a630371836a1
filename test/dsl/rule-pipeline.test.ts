/**
 * compileConfig parses, checks and compiles one rule before it reads the next, so a rule's syntax
 * tree is not kept once it is compiled. These tests hold the parts of that to account: the
 * checker's maps by node hold one rule at a time, every rule is still checked after an error,
 * and the result is the same whatever comes after.
 */
import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/common/diagnostics.js";
import { childrenOf, type Expr, type Rule } from "../../src/dsl/ast.js";
import { RuleChecker } from "../../src/dsl/checker.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { parseRule } from "../../src/dsl/rules.js";
import { configOf } from "./helpers.js";

const RULES = [
  'on mail: if from.domain in directory.local_domains and from matches /^bad/ then reject 550 5.7.1 "no {from}"',
  "on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2",
  'on connect: if client.ip in spamhaus then reject 554 5.7.1 "listed"',
];

function parsed(rules: string[]): Rule[] {
  const config = configOf(rules);
  const ctx = { file: config.file, diagnostics: [] };
  return config.rules.map((source) => {
    const rule = parseRule(source, ctx);
    if (rule === undefined) throw new Error(`did not parse: ${JSON.stringify(ctx.diagnostics)}`);
    return rule;
  });
}

function nodesOf(rule: Rule): Expr[] {
  const found: Expr[] = [];
  const pending = rule.statements.flatMap((s) => (s.kind === "if" ? [s.condition] : []));
  for (let expr = pending.pop(); expr !== undefined; expr = pending.pop()) {
    found.push(expr);
    pending.push(...childrenOf(expr));
  }
  return found;
}

describe("checking rule by rule", () => {
  it("keeps what the check recorded by node for the last rule only", () => {
    const config = configOf(RULES);
    const [first, second, third] = parsed(RULES) as [Rule, Rule, Rule];
    const checker = new RuleChecker(config.sources, config.file);
    checker.add(first);
    const { resolutions, types, regexes, lookupsByRule } = checker.result;
    expect(nodesOf(first).some((n) => resolutions.has(n))).toBe(true);
    expect(nodesOf(first).some((n) => types.has(n))).toBe(true);
    expect(nodesOf(first).some((n) => regexes.has(n))).toBe(true);
    expect(lookupsByRule.has(first)).toBe(true);
    checker.add(second);
    checker.add(third);
    for (const node of [...nodesOf(first), ...nodesOf(second)]) {
      expect(resolutions.has(node)).toBe(false);
      expect(types.has(node)).toBe(false);
      expect(regexes.has(node)).toBe(false);
    }
    expect([...lookupsByRule.keys()]).toEqual([third]);
    expect(nodesOf(third).some((n) => resolutions.has(n))).toBe(true);
    expect(checker.finish(true).diagnostics.map(formatDiagnostic)).toEqual([
      "rules.yaml:1:1: warning: source 'trusted' is not used by any rule",
    ]);
  });

  it("reports every rule's errors after the first one, and compiles nothing", () => {
    const out = compileConfig(
      configOf([
        RULES[0] as string,
        'on mail: if rcpt == "x" then reject',
        RULES[1] as string,
        "on rcpt: if rcpt in directry.addresses then reject",
        "on eom: reject",
        "on eom: reject",
      ]),
    );
    expect(out.ruleset).toBeUndefined();
    expect(out.diagnostics.map(formatDiagnostic)).toEqual([
      "rules.yaml:1:1: warning: source 'spamhaus' is not used by any rule",
      "rules.yaml:1:1: warning: source 'trusted' is not used by any rule",
      "rules.yaml:2:13: error: 'rcpt' exists only in 'on rcpt' rules, not at 'mail'",
      "rules.yaml:4:21: error: unknown source 'directry' (did you mean 'directory'?)",
      "rules.yaml:6:1: warning: rule 'rule-6' can never run: rule 'rule-5' always decides first",
    ]);
  });

  it("still checks the rules after one that does not parse, and then warns of no unused source", () => {
    const out = compileConfig(configOf(["on rcpt: if then reject", 'on mail: if rcpt == "x" then reject']));
    expect(out.ruleset).toBeUndefined();
    const messages = out.diagnostics.map(formatDiagnostic);
    expect(messages.filter((m) => m.startsWith("rules.yaml:1:"))).toHaveLength(1);
    expect(messages.slice(1)).toEqual([
      "rules.yaml:2:13: error: 'rcpt' exists only in 'on rcpt' rules, not at 'mail'",
    ]);
  });

  it("gives the syntax trees only when asked, and the same ruleset either way", () => {
    const without = compileConfig(configOf(RULES));
    const withTrees = compileConfig(configOf(RULES), { syntax: true });
    expect(without.rules).toBeUndefined();
    expect(withTrees.rules?.map((r) => r.name)).toEqual(["rule-1", "rule-2", "rule-3"]);
    const summary = (out: typeof without) => ({
      rules: out.ruleset?.rules.map((r) => [r.name, [...r.stages], r.lookups, r.canDecide]),
      stages: [...(out.ruleset?.needs.stages ?? [])],
      macros: out.ruleset?.needs.macros,
      diagnostics: out.diagnostics.map(formatDiagnostic),
    });
    expect(summary(without)).toEqual(summary(withTrees));
    expect(summary(without).stages).toEqual([
      ["mail", "decide"],
      ["rcpt", "decide"],
      ["connect", "decide"],
    ]);
  });
});
