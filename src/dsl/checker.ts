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
import { AcceptAtMail } from "./check/accept-at-mail.js";
import { Actions, decides } from "./check/actions.js";
import { type CheckResult, CheckSession, RuleScope } from "./check/scope.js";
import { Types } from "./check/types.js";
import { REGISTRY, type Registry } from "./registry.js";

export { decides } from "./check/actions.js";
export type { CheckResult, Resolution } from "./check/scope.js";

export interface CheckOptions {
  /** The words of the language; the standard ones unless a test adds its own. */
  registry?: Registry;
  /** The source types the configuration was read with, for messages that name a type. */
  sourceTypes?: ReadonlyMap<string, SourceTypeSpec>;
}

/**
 * Checks rules one at a time (add), in file order, then what needs them all (finish). Between two
 * adds, `result` holds what the last rule's check recorded by node, for its compilation.
 */
export class RuleChecker {
  readonly result: CheckResult;
  private readonly session: CheckSession;
  /** Each rule name seen, and whether the rule holding it first is unnamed (`rule-N`). */
  private readonly names = new Map<string, boolean>();
  /** Stages an earlier enforced rule always decides, and that rule's name. */
  private readonly decided = new Map<Stage, string>();
  private readonly acceptAtMail = new AcceptAtMail();

  constructor(
    private readonly sources: ReadonlyMap<string, SourceConfig>,
    file: SourceFile,
    options: CheckOptions = {},
  ) {
    this.session = new CheckSession(file, sources, options.registry ?? REGISTRY, options.sourceTypes);
    this.result = this.session.result;
  }

  add(rule: Rule): void {
    this.session.startRule();
    this.checkName(rule);
    checkStatements(new RuleScope(this.session, rule));
    this.checkReachable(rule);
    this.acceptAtMail.add(rule);
  }

  /**
   * The warnings that need every rule. `reportUnused`: warn about sources no rule uses (not after
   * parse errors: the rule that failed may use them).
   */
  finish(reportUnused: boolean): CheckResult {
    this.acceptAtMail.report(this.session);
    if (reportUnused) {
      for (const source of this.sources.values()) {
        if (!this.session.usedSources.has(source.name))
          this.session.report(source.offset, "warning", `source '${source.name}' is not used by any rule`);
      }
    }
    return this.result;
  }

  /**
   * Two named rules with one name are the loader's to report; here a name meets the default name
   * of an unnamed rule (`rule-N`, after its position), which nobody wrote on purpose.
   */
  private checkName(rule: Rule): void {
    const unnamed = rule.nameSpan.start === rule.nameSpan.end;
    const previousUnnamed = this.names.get(rule.name);
    if (previousUnnamed === undefined) {
      this.names.set(rule.name, unnamed);
    } else if (previousUnnamed) {
      this.session.report(
        rule.nameSpan,
        "error",
        `rule name '${rule.name}' is already the name of an unnamed rule`,
        "a rule without a name is called rule-N after its position in 'rules:'; choose another name",
      );
    } else if (unnamed) {
      this.session.report(
        rule.nameSpan,
        "error",
        `this unnamed rule would be called '${rule.name}', a name an earlier rule already has`,
        "give this rule a name, or rename the other one",
      );
    } else {
      this.session.report(rule.nameSpan, "error", `duplicate rule name '${rule.name}'`);
    }
  }

  /** A rule that can never run: an earlier, enforced rule decides unconditionally for all its stages. */
  private checkReachable(rule: Rule): void {
    const blockers = rule.stages.map((s) => this.decided.get(s.stage));
    if (blockers.length > 0 && blockers.every((b) => b !== undefined)) {
      this.session.report(
        rule.span,
        "warning",
        `rule '${rule.name}' can never run: rule '${blockers[0]}' always decides first`,
      );
      return;
    }
    const decidesAlways =
      !rule.shadow &&
      rule.statements.some(
        (s) =>
          (s.kind === "action" && decides(s.action)) ||
          (s.kind === "if" && s.else !== undefined && decides(s.then) && decides(s.else)),
      ) &&
      (this.result.lookupsByRule.get(rule)?.size ?? 0) === 0;
    if (decidesAlways)
      for (const { stage } of rule.stages) if (!this.decided.has(stage)) this.decided.set(stage, rule.name);
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
