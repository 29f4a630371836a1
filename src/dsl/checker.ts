/**
 * The checker: names, stages, types, reply codes, regexes, templates; plus warnings for rules
 * that can never run and sources nobody uses. A pass per concern, as the TypeScript and cel-go
 * checkers are laid out (check/): the scope of a rule and its stages (scope.ts), names
 * (names.ts), calls (calls.ts), types (types.ts), actions and their texts (actions.ts,
 * texts.ts). Diagnostics are collected as values. It records what each name resolved to, so the
 * compiler never has to guess; the words themselves come from the registry.
 */

import type { SourceFile } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import type { SourceConfig, SourceTypeSpec } from "../config/types.js";
import type { Rule, Span } from "./ast.js";
import { checkAcceptAtMail } from "./check/accept-at-mail.js";
import { Actions, decides } from "./check/actions.js";
import { type CheckResult, CheckSession, RuleScope } from "./check/scope.js";
import { Types } from "./check/types.js";
import { REGISTRY, type Registry } from "./registry.js";

export { decides } from "./check/actions.js";
export type { CheckResult, Resolution } from "./check/scope.js";

export interface CheckOptions {
  /** Warn about sources no rule uses (not after parse errors: the rule that failed may use them). */
  reportUnused?: boolean;
  /** The words of the language; the standard ones unless a test adds its own. */
  registry?: Registry;
  /** The source types the configuration was read with, for messages that name a type. */
  sourceTypes?: ReadonlyMap<string, SourceTypeSpec>;
}

export function checkRules(
  rules: readonly Rule[],
  sources: ReadonlyMap<string, SourceConfig>,
  file: SourceFile,
  options: CheckOptions = {},
): CheckResult {
  const session = new CheckSession(file, sources, options.registry ?? REGISTRY, options.sourceTypes);
  checkRuleNames(session, rules);
  for (const rule of rules) checkStatements(new RuleScope(session, rule));
  checkReachable(session, rules);
  checkAcceptAtMail(session, rules);
  if (options.reportUnused !== false) {
    for (const source of sources.values()) {
      if (!session.usedSources.has(source.name))
        session.report(source.offset, "warning", `source '${source.name}' is not used by any rule`);
    }
  }
  return session.result;
}

/**
 * Two named rules with one name are the loader's to report; here a name meets the default name
 * of an unnamed rule (`rule-N`, after its position), which nobody wrote on purpose.
 */
function checkRuleNames(session: CheckSession, rules: readonly Rule[]): void {
  const seenNames = new Map<string, Rule>();
  const unnamed = (rule: Rule) => rule.nameSpan.start === rule.nameSpan.end;
  for (const rule of rules) {
    const previous = seenNames.get(rule.name);
    if (previous === undefined) {
      seenNames.set(rule.name, rule);
    } else if (unnamed(previous)) {
      session.report(
        rule.nameSpan,
        "error",
        `rule name '${rule.name}' is already the name of an unnamed rule`,
        "a rule without a name is called rule-N after its position in 'rules:'; choose another name",
      );
    } else if (unnamed(rule)) {
      session.report(
        rule.nameSpan,
        "error",
        `this unnamed rule would be called '${rule.name}', a name an earlier rule already has`,
        "give this rule a name, or rename the other one",
      );
    } else {
      session.report(rule.nameSpan, "error", `duplicate rule name '${rule.name}'`);
    }
  }
}

/** A rule's statements in order: conditions and actions, and statements that can never run. */
function checkStatements(scope: RuleScope): void {
  const types = new Types(scope);
  const actions = new Actions(scope);
  let decidedBy: Span | undefined;
  for (const statement of scope.rule.statements) {
    if (decidedBy !== undefined) {
      scope.report(
        statement.span,
        "warning",
        "this statement never runs: the statement before it always decides",
      );
      decidedBy = undefined;
    }
    if (statement.kind === "if") {
      types.condition(statement.condition);
      actions.check(statement.then);
      if (statement.else) actions.check(statement.else);
      if (statement.else !== undefined && decides(statement.then) && decides(statement.else))
        decidedBy = statement.span;
    } else {
      actions.check(statement.action);
      if (decides(statement.action)) decidedBy = statement.span;
    }
  }
}

/** Rules that can never run: an earlier, enforced rule decides unconditionally for all their stages. */
function checkReachable(session: CheckSession, rules: readonly Rule[]): void {
  const decidedStages = new Map<Stage, Rule>();
  for (const rule of rules) {
    const blockers = rule.stages.map((s) => decidedStages.get(s.stage));
    if (blockers.length > 0 && blockers.every((b) => b !== undefined)) {
      const blocker = blockers[0] as Rule;
      session.report(
        rule.span,
        "warning",
        `rule '${rule.name}' can never run: rule '${blocker.name}' always decides first`,
      );
      continue;
    }
    const decidesAlways =
      !rule.shadow &&
      rule.statements.some(
        (s) =>
          (s.kind === "action" && decides(s.action)) ||
          (s.kind === "if" && s.else !== undefined && decides(s.then) && decides(s.else)),
      ) &&
      (session.result.lookupsByRule.get(rule)?.size ?? 0) === 0;
    if (decidesAlways)
      for (const { stage } of rule.stages) if (!decidedStages.has(stage)) decidedStages.set(stage, rule);
  }
}
