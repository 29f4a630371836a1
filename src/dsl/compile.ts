/**
 * The whole pipeline for one configuration: parse every rule, check, compile, and work out
 * what the milter must ask the MTA for. Diagnostics are collected, never thrown.
 */

import { type Diagnostic, hasErrors, sortDiagnostics } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import type { Config } from "../config/types.js";
import { type MacroStageName, Ruleset, type RulesetNeeds, type StageNeed } from "../runtime/ruleset.js";
import { childrenOf, type Expr, type Rule } from "./ast.js";
import { type CheckResult, checkRules } from "./checker.js";
import { RuleCompiler } from "./compiler.js";
import { MACRO_STAGE_FOR, REGISTRY, type Registry } from "./registry.js";
import { checkSourceNames } from "./reserved.js";
import { parseRules } from "./rules.js";

export interface CompileOutput {
  ruleset?: Ruleset;
  rules: Rule[];
  diagnostics: Diagnostic[];
}

export interface CompileConfigOptions {
  /** The words of the language; the standard ones unless a test adds its own. */
  registry?: Registry;
}

export function compileConfig(config: Config, options: CompileConfigOptions = {}): CompileOutput {
  const registry = options.registry ?? REGISTRY;
  const diagnostics: Diagnostic[] = checkSourceNames(config, registry);
  const rules = parseRules(config.rules, { file: config.file, diagnostics });
  // A rule that did not parse may well use a source (and one named like a value cannot be
  // used): "not used" would then be a false alarm.
  const checked = checkRules(rules, config.sources, config.file, {
    reportUnused: !hasErrors(diagnostics),
    registry,
    sourceTypes: config.sourceTypes,
  });
  diagnostics.push(...checked.diagnostics);
  sortDiagnostics(diagnostics);
  if (hasErrors(diagnostics)) return { rules, diagnostics };

  const compiler = new RuleCompiler(checked, {
    sources: config.sources,
    defaultOnError: config.defaults.onError,
    errorReply: config.defaults.errorReply,
    localPart: config.defaults.localPart,
    stateOnError: config.state.onError,
  });
  const compiled = rules.map((rule) => compiler.rule(rule));
  return { ruleset: new Ruleset(compiled, needsOf(rules, compiled, checked)), rules, diagnostics };
}

function needsOf(
  rules: Rule[],
  compiled: ReturnType<RuleCompiler["rule"]>[],
  checked: CheckResult,
): RulesetNeeds {
  const stages = new Map<Stage, StageNeed>();
  const macros = new Map<MacroStageName, Set<string>>();
  const want = (stage: Stage, need: StageNeed) => {
    if (stages.get(stage) !== "decide") stages.set(stage, need);
  };
  const macro = (stage: MacroStageName, name: string) => {
    let set = macros.get(stage);
    if (set === undefined) {
      set = new Set();
      macros.set(stage, set);
    }
    set.add(name);
  };
  rules.forEach((rule, i) => {
    const c = compiled[i];
    for (const { stage } of rule.stages) want(stage, c?.canDecide && !c.shadow ? "decide" : "observe");
  });
  for (const key of checked.valuesUsed) {
    const word = checked.registry.value(key);
    for (const stage of word?.needs ?? []) want(stage, "observe");
    for (const m of word?.macros ?? []) for (const name of m.names) macro(MACRO_STAGE_FOR[m.stage], name);
    // E.g. the real size at end of message needs the headers and the body counted.
    const extra = word?.extraNeeds;
    if (extra !== undefined && rules.some((r) => r.stages.some((s) => s.stage === extra.ifRuleAt)))
      for (const stage of extra.stages) want(stage, "observe");
  }
  for (const resolution of checked.resolutions.values())
    if (resolution.kind === "call") for (const stage of resolution.word.needs) want(stage, "observe");
  // A function's extra stages only for the rules that call it at that stage (quota() at eom
  // counts the whole message; quota() at rcpt must not make the MTA send every body). Only the
  // rules at such a stage are walked: walking every expression of every rule was most of this.
  const extraAt = new Set<Stage>();
  for (const resolution of checked.resolutions.values())
    if (resolution.kind === "call" && resolution.word.extraNeeds !== undefined)
      extraAt.add(resolution.word.extraNeeds.ifRuleAt);
  for (const rule of rules) {
    if (!rule.stages.some((s) => extraAt.has(s.stage))) continue;
    const at = new Set(rule.stages.map((s) => s.stage));
    for (const expr of expressionsOf(rule)) {
      const resolution = checked.resolutions.get(expr);
      const extra = resolution?.kind === "call" ? resolution.word.extraNeeds : undefined;
      if (extra !== undefined && at.has(extra.ifRuleAt))
        for (const stage of extra.stages) want(stage, "observe");
    }
  }
  for (const use of checked.macrosUsed)
    for (const stage of use.stages) macro(MACRO_STAGE_FOR[stage], use.name);
  const macroLists: RulesetNeeds["macros"] = {};
  for (const [stage, names] of macros) macroLists[stage] = [...names];
  return { stages, macros: macroLists };
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
