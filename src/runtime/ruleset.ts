/**
 * A compiled ruleset: rules per stage in file order, what the milter must ask the MTA for, and
 * the evaluation of one stage (first deciding rule wins; shadow rules are reported, never enforced).
 */
import type { Stage } from "../dsl/ast.js";
import { STAGES } from "../dsl/ast.js";
import type { CompiledRule, Decision, Effect, Tracer } from "../dsl/compiler.js";
import type { Lookups, MaybePromise } from "./lookups.js";
import type { Transaction } from "./transaction.js";

export type StageNeed = "decide" | "observe";
export type MacroStageName = "connect" | "helo" | "mail" | "rcpt" | "data" | "eoh" | "eom";

/** One rule's part in a stage's evaluation, for dry-run and logs. */
export interface RuleTrace {
  rule: string;
  shadow: boolean;
  decision?: Decision;
  effects: Effect[];
  errors: { source: string; message: string }[];
}

export interface StageOutcome {
  /** The enforced decision, if a rule decided. */
  decision?: Decision;
  /** Decisions shadow rules would have taken. */
  shadowDecisions: Decision[];
  /** `add header` and `log` effects of enforced rules (shadow rules' logs are kept too). */
  effects: Effect[];
  rules: RuleTrace[];
}

export interface RulesetNeeds {
  stages: Map<Stage, StageNeed>;
  macros: Partial<Record<MacroStageName, string[]>>;
}

export class Ruleset {
  private readonly byStage = new Map<Stage, CompiledRule[]>();

  constructor(
    readonly rules: readonly CompiledRule[],
    readonly needs: RulesetNeeds,
  ) {
    for (const stage of STAGES) this.byStage.set(stage, []);
    for (const rule of rules) for (const stage of rule.stages) this.byStage.get(stage)?.push(rule);
  }

  rulesFor(stage: Stage): readonly CompiledRule[] {
    return this.byStage.get(stage) ?? [];
  }

  /** Sources some rule looks up. */
  get sourcesUsed(): Set<string> {
    return new Set(this.rules.flatMap((r) => r.lookups));
  }

  /**
   * Runs the rules of `stage` in file order. Stays synchronous while no lookup answers with a
   * promise; the first enforced deciding rule ends the stage.
   */
  evaluate(stage: Stage, tx: Transaction, lookups: Lookups, trace?: Tracer): MaybePromise<StageOutcome> {
    tx.stage = stage;
    const rules = this.rulesFor(stage);
    const outcome: StageOutcome = { shadowDecisions: [], effects: [], rules: [] };
    if (rules.length === 0) return outcome;

    const record = (rule: CompiledRule, result: Awaited<ReturnType<CompiledRule["run"]>>): boolean => {
      const entry: RuleTrace = {
        rule: rule.name,
        shadow: rule.shadow,
        effects: result.effects,
        errors: result.errors,
      };
      if (result.decision) entry.decision = result.decision;
      outcome.rules.push(entry);
      for (const effect of result.effects) {
        // A shadow rule never changes the message: its headers are not added, its logs are.
        if (!rule.shadow || effect.kind === "log") outcome.effects.push(effect);
      }
      if (result.decision === undefined) return false;
      if (rule.shadow) {
        outcome.shadowDecisions.push(result.decision);
        return false;
      }
      outcome.decision = result.decision;
      return true;
    };

    const from = (index: number): MaybePromise<StageOutcome> => {
      for (let i = index; i < rules.length; i++) {
        const rule = rules[i] as CompiledRule;
        const result = rule.run(tx, lookups, trace);
        if (result instanceof Promise) {
          return result.then((r) => (record(rule, r) ? outcome : from(i + 1)));
        }
        if (record(rule, result)) return outcome;
      }
      return outcome;
    };
    return from(0);
  }
}
