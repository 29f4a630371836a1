/**
 * A compiled ruleset: rules per stage in file order, what the milter must ask the MTA for, and
 * the evaluation of one stage (first deciding rule wins; shadow rules are reported, never enforced).
 */
import type { MacroStage, Stage } from "../common/stages.js";
import { STAGES } from "../common/stages.js";
import type { Lookups, MaybePromise } from "./lookups.js";
import type { CompiledRule, Decision, Effect, RuleOutcome, Tracer } from "./model.js";
import type { Transaction } from "./transaction.js";

export type StageNeed = "decide" | "observe";
export type MacroStageName = MacroStage;

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
  /** Rules by stage: an object with one property per stage (a property read, not a Map lookup per event). */
  private readonly byStage = Object.fromEntries(STAGES.map((stage) => [stage, []])) as unknown as Record<
    Stage,
    CompiledRule[]
  >;

  constructor(
    readonly rules: readonly CompiledRule[],
    readonly needs: RulesetNeeds,
  ) {
    for (const rule of rules) for (const stage of rule.stages) this.byStage[stage].push(rule);
  }

  rulesFor(stage: Stage): readonly CompiledRule[] {
    return this.byStage[stage];
  }

  /** Sources some rule looks up. */
  get sourcesUsed(): Set<string> {
    return new Set(this.rules.flatMap((r) => r.lookups));
  }

  /**
   * Runs the rules of `stage` in file order. Stays synchronous while no lookup answers with a
   * promise; the first enforced deciding rule ends the stage. A stage where no rule did anything
   * answers the one shared, frozen NOTHING: most stages of most sessions allocate no outcome.
   */
  evaluate(stage: Stage, tx: Transaction, lookups: Lookups, trace?: Tracer): MaybePromise<StageOutcome> {
    tx.stage = stage;
    const rules = this.rulesFor(stage);
    if (rules.length === 0) return NOTHING;
    return this.from(rules, 0, NOTHING, tx, lookups, trace, trace?.everyRule === true);
  }

  private from(
    rules: readonly CompiledRule[],
    index: number,
    start: StageOutcome,
    tx: Transaction,
    lookups: Lookups,
    trace: Tracer | undefined,
    everyRule: boolean,
  ): MaybePromise<StageOutcome> {
    let outcome = start;
    for (let i = index; i < rules.length; i++) {
      const rule = rules[i] as CompiledRule;
      const result = rule.run(tx, lookups, trace);
      if (result instanceof Promise) {
        const before = outcome;
        return result.then((r) => {
          const after = record(before, rule, r, everyRule);
          return after.decision !== undefined
            ? after
            : this.from(rules, i + 1, after, tx, lookups, trace, everyRule);
        });
      }
      outcome = record(outcome, rule, result, everyRule);
      if (outcome.decision !== undefined) return outcome;
    }
    return outcome;
  }
}

/** Shared by outcomes that have none; replaced by a fresh array on the first push. */
const NONE: never[] = [];

/** The outcome of a stage where no rule did anything; record() replaces it before writing. */
const NOTHING: StageOutcome = Object.freeze({
  decision: undefined,
  shadowDecisions: NONE,
  effects: NONE,
  rules: NONE,
});

function push<T>(list: T[], item: T): T[] {
  const target = list === NONE ? [] : list;
  target.push(item);
  return target;
}

/**
 * Adds one rule's result to the stage's outcome, and answers the outcome: `outcome` itself, or a
 * fresh one when it was NOTHING and the rule did something. The stage is decided when the answer
 * has a decision.
 */
function record(
  outcome: StageOutcome,
  rule: CompiledRule,
  result: RuleOutcome,
  everyRule: boolean,
): StageOutcome {
  // Rules that did nothing are listed only when the tracer asks for every rule (dry-run).
  const listed =
    everyRule || result.decision !== undefined || result.effects.length > 0 || result.errors.length > 0;
  if (!listed) return outcome;
  const target: StageOutcome =
    outcome === NOTHING
      ? { decision: undefined, shadowDecisions: NONE, effects: NONE, rules: NONE }
      : outcome;
  // A rule whose reject-rate fuse blew (engine/fuse.ts) decides in shadow mode: its decision says so.
  const shadow = rule.shadow || result.decision?.shadow === true;
  const entry: RuleTrace = {
    rule: rule.name,
    shadow,
    effects: result.effects,
    errors: result.errors,
  };
  if (result.decision) entry.decision = result.decision;
  target.rules = push(target.rules, entry);
  for (const effect of result.effects) {
    // A shadow rule never changes the message: its headers are not added, its logs are.
    if (!shadow || effect.kind === "log") target.effects = push(target.effects, effect);
  }
  if (result.decision === undefined) return target;
  if (shadow) {
    target.shadowDecisions = push(target.shadowDecisions, result.decision);
    return target;
  }
  target.decision = result.decision;
  return target;
}
