/**
 * The whole pipeline for one configuration: parse every rule, check, compile, and work out
 * what the milter must ask the MTA for. Diagnostics are collected, never thrown.
 */

import { type Diagnostic, hasErrors, sortDiagnostics } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import type { Config } from "../config/types.js";
import type { CompiledRule } from "../runtime/model.js";
import { type MacroStageName, Ruleset, type RulesetNeeds, type StageNeed } from "../runtime/ruleset.js";
import { childrenOf, type Expr, type Rule } from "./ast.js";
import { type CheckResult, RuleChecker } from "./checker.js";
import { RuleCompiler } from "./compiler.js";
import { MACRO_STAGE_FOR, REGISTRY, type Registry } from "./registry.js";
import { checkSourceNames } from "./reserved.js";
import { parseRule } from "./rules.js";

export interface CompileOutput {
  ruleset?: Ruleset;
  /** The rules' syntax trees, only when asked for (CompileConfigOptions.syntax). */
  rules?: Rule[];
  diagnostics: Diagnostic[];
}

export interface CompileConfigOptions {
  /** The words of the language; the standard ones unless a test adds its own. */
  registry?: Registry;
  /** Keep the syntax trees in the output. Off, each rule's tree is let go once it is compiled. */
  syntax?: boolean;
}

/**
 * Each rule is parsed, checked and compiled before the next is read, so its syntax tree and what
 * the check recorded about its nodes die young: kept for the whole file, they were a third of what
 * validating 10,000 rules carried from one garbage collection to the next. Once an error is found,
 * rules are still parsed and checked (every diagnostic is reported) but no longer compiled.
 */
export function compileConfig(config: Config, options: CompileConfigOptions = {}): CompileOutput {
  const registry = options.registry ?? REGISTRY;
  const diagnostics: Diagnostic[] = checkSourceNames(config, registry);
  const checker = new RuleChecker(config.sources, config.file, {
    registry,
    sourceTypes: config.sourceTypes,
  });
  const compiler = new RuleCompiler(checker.result, {
    sources: config.sources,
    defaultOnError: config.defaults.onError,
    errorReply: config.defaults.errorReply,
    localPart: config.defaults.localPart,
    stateOnError: config.state.onError,
  });
  const needs = new Needs();
  const kept: Rule[] | undefined = options.syntax === true ? [] : undefined;
  let compiled: CompiledRule[] | undefined = hasErrors(diagnostics) ? undefined : [];
  const ctx = { file: config.file, diagnostics };
  for (const source of config.rules) {
    const parsedBefore = diagnostics.length;
    const checkedBefore = checker.result.diagnostics.length;
    const rule = parseRule(source, ctx);
    if (rule !== undefined) {
      kept?.push(rule);
      checker.add(rule);
    }
    if (compiled === undefined) continue;
    if (errorFrom(diagnostics, parsedBefore) || errorFrom(checker.result.diagnostics, checkedBefore))
      compiled = undefined;
    else if (rule !== undefined) {
      const one = compiler.rule(rule);
      compiled.push(one);
      needs.add(rule, one, checker.result);
    }
  }
  // A rule that did not parse may well use a source (and one named like a value cannot be
  // used): "not used" would then be a false alarm.
  const checked = checker.finish(!hasErrors(diagnostics));
  diagnostics.push(...checked.diagnostics);
  sortDiagnostics(diagnostics);
  const syntax = kept === undefined ? {} : { rules: kept };
  if (compiled === undefined || hasErrors(diagnostics)) return { ...syntax, diagnostics };
  return { ruleset: new Ruleset(compiled, needs.finish(checked)), ...syntax, diagnostics };
}

/** Whether the diagnostics from index `from` on include an error. */
function errorFrom(diagnostics: readonly Diagnostic[], from: number): boolean {
  for (let i = from; i < diagnostics.length; i++) if (diagnostics[i]?.severity === "error") return true;
  return false;
}

/**
 * What the milter must ask the MTA for, gathered rule by rule as they compile (the rules' stages,
 * the stages their calls need) and finished with what the whole check found (values and macros
 * used). The stages come out in the order the rules, values, calls and extra needs name them.
 */
class Needs {
  private readonly ruleStages = new Map<Stage, StageNeed>();
  private readonly callStages = new Set<Stage>();
  private readonly extraStages = new Set<Stage>();

  /** A compiled rule; `checked` still holds what its check recorded (RuleChecker). */
  add(rule: Rule, compiled: CompiledRule, checked: CheckResult): void {
    const need: StageNeed = compiled.canDecide && !compiled.shadow ? "decide" : "observe";
    for (const { stage } of rule.stages)
      if (this.ruleStages.get(stage) !== "decide") this.ruleStages.set(stage, need);
    let extra = false;
    for (const resolution of checked.resolutions.values()) {
      if (resolution.kind !== "call") continue;
      for (const stage of resolution.word.needs) this.callStages.add(stage);
      if (resolution.word.extraNeeds !== undefined) extra = true;
    }
    if (!extra) return;
    // A function's extra stages only where the rule calls it at that stage (quota() at eom
    // counts the whole message; quota() at rcpt must not make the MTA send every body).
    const at = new Set(rule.stages.map((s) => s.stage));
    for (const expr of expressionsOf(rule)) {
      const resolution = checked.resolutions.get(expr);
      const needs = resolution?.kind === "call" ? resolution.word.extraNeeds : undefined;
      if (needs !== undefined && at.has(needs.ifRuleAt))
        for (const stage of needs.stages) this.extraStages.add(stage);
    }
  }

  finish(checked: CheckResult): RulesetNeeds {
    const stages = new Map<Stage, StageNeed>();
    const want = (stage: Stage, need: StageNeed) => {
      if (stages.get(stage) !== "decide") stages.set(stage, need);
    };
    const macros = new Map<MacroStageName, Set<string>>();
    const macro = (stage: MacroStageName, name: string) => {
      const set = macros.get(stage) ?? new Set<string>();
      macros.set(stage, set.add(name));
    };
    for (const [stage, need] of this.ruleStages) want(stage, need);
    for (const key of checked.valuesUsed) {
      const word = checked.registry.value(key);
      for (const stage of word?.needs ?? []) want(stage, "observe");
      for (const m of word?.macros ?? []) for (const name of m.names) macro(MACRO_STAGE_FOR[m.stage], name);
      // E.g. the real size at end of message needs the headers and the body counted.
      const extra = word?.extraNeeds;
      if (extra !== undefined && this.ruleStages.has(extra.ifRuleAt))
        for (const stage of extra.stages) want(stage, "observe");
    }
    for (const stage of this.callStages) want(stage, "observe");
    for (const stage of this.extraStages) want(stage, "observe");
    for (const use of checked.macrosUsed)
      for (const stage of use.stages) macro(MACRO_STAGE_FOR[stage], use.name);
    const macroLists: RulesetNeeds["macros"] = {};
    for (const [stage, names] of macros) macroLists[stage] = [...names];
    return { stages, macros: macroLists };
  }
}

/** Every expression of a rule's conditions, sub-expressions included. */
function expressionsOf(rule: Rule): Expr[] {
  const found: Expr[] = [];
  const pending: Expr[] = rule.statements.flatMap((s) => (s.kind === "if" ? [s.condition] : []));
  for (let expr = pending.pop(); expr !== undefined; expr = pending.pop()) {
    found.push(expr);
    pending.push(...childrenOf(expr));
  }
  return found;
}
