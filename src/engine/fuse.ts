/**
 * The reject-rate fuse (`fuse:` of a rule or of `defaults`) and the per-rule evaluation count:
 * both wrap the compiled rules of one generation. A rule that, within the sliding window, made at
 * least `min_events` evaluations and refused (reject or tempfail, a lookup failure's
 * `error_reply` included) more than `max_rate` of them runs in shadow mode until the cooldown
 * passed; a reload builds new wrappers, so it re-arms every fuse.
 *
 * The state is the process's own: with `serve --workers N` each worker fuses alone.
 * Without a fuse and without metrics the ruleset is left as it is (no cost).
 */
import type { Config, FuseConfig } from "../config/types.js";
import type { MaybePromise } from "../runtime/lookups.js";
import type { CompiledRule, RuleOutcome } from "../runtime/model.js";
import { Ruleset } from "../runtime/ruleset.js";

/** What a fuse had seen when it tripped. */
export interface FuseFigures {
  evaluations: number;
  refused: number;
  /** refused / evaluations. */
  rate: number;
  /** When the cooldown ends (ms since the epoch, on the fuse's clock). */
  until: number;
}

export interface FuseEvents {
  tripped(rule: string, fuse: FuseConfig, figures: FuseFigures): void;
  rearmed(rule: string, fuse: FuseConfig): void;
}

/** The window is kept as this many buckets: memory and time per evaluation stay constant. */
const BUCKETS = 60;

/**
 * One rule's fuse. The window slides by buckets of window/60: an evaluation leaves the count
 * between 59/60 and 60/60 of the window after it was made.
 */
export class Fuse {
  private readonly bucketMs: number;
  private readonly evaluationsIn = new Array<number>(BUCKETS).fill(0);
  private readonly refusedIn = new Array<number>(BUCKETS).fill(0);
  /** The bucket (absolute number: time / bucketMs) the latest evaluation went into. */
  private head: number | undefined;
  private evaluations = 0;
  private refused = 0;
  private until: number | undefined;

  constructor(
    readonly rule: string,
    readonly config: FuseConfig,
    private readonly events: FuseEvents,
    private readonly now: () => number = Date.now,
  ) {
    this.bucketMs = Math.max(1, config.windowMs / BUCKETS);
  }

  /** Whether the rule runs in shadow mode now; once the cooldown passed, re-arms (and says so). */
  get blown(): boolean {
    if (this.until === undefined) return false;
    if (this.now() < this.until) return true;
    this.until = undefined;
    this.clear();
    this.events.rearmed(this.rule, this.config);
    return false;
  }

  /** Counts one evaluation of the armed rule; trips the fuse when the rate is past max_rate. */
  record(refused: boolean): void {
    if (this.until !== undefined) return;
    const now = this.now();
    const slot = this.advance(Math.floor(now / this.bucketMs));
    this.evaluationsIn[slot] = (this.evaluationsIn[slot] ?? 0) + 1;
    this.evaluations++;
    if (refused) {
      this.refusedIn[slot] = (this.refusedIn[slot] ?? 0) + 1;
      this.refused++;
    }
    const { minEvents, maxRate, cooldownMs } = this.config;
    if (this.evaluations < minEvents || this.refused <= maxRate * this.evaluations) return;
    const figures: FuseFigures = {
      evaluations: this.evaluations,
      refused: this.refused,
      rate: this.refused / this.evaluations,
      until: now + cooldownMs,
    };
    this.until = figures.until;
    this.events.tripped(this.rule, this.config, figures);
  }

  /** Moves the window to `bucket`, emptying the buckets it leaves behind; answers its slot. */
  private advance(bucket: number): number {
    // A clock that went back counts in the latest bucket.
    if (this.head !== undefined && bucket <= this.head) return this.head % BUCKETS;
    const from = this.head ?? bucket - 1;
    const steps = Math.min(bucket - from, BUCKETS);
    for (let k = 1; k <= steps; k++) {
      const slot = (bucket - steps + k) % BUCKETS;
      this.evaluations -= this.evaluationsIn[slot] ?? 0;
      this.refused -= this.refusedIn[slot] ?? 0;
      this.evaluationsIn[slot] = 0;
      this.refusedIn[slot] = 0;
    }
    this.head = bucket;
    return bucket % BUCKETS;
  }

  private clear(): void {
    this.evaluationsIn.fill(0);
    this.refusedIn.fill(0);
    this.evaluations = 0;
    this.refused = 0;
    this.head = undefined;
  }
}

export interface InstrumentOptions {
  events: FuseEvents;
  /** The fuses' clock (tests); default Date.now. */
  now?: () => number;
  /** Counts each evaluation of the rule (metrics); absent: not counted. */
  evaluated?: (rule: string) => () => void;
}

/** The fuse each rule runs with: its own `fuse:`, else `defaults.fuse`, else none. */
export function fuseSettings(config: Config): Map<string, FuseConfig> {
  const settings = new Map<string, FuseConfig>();
  for (const source of config.rules) {
    const name = source.form === "structured" && source.name !== undefined ? source.name.text : undefined;
    const fuse = (source.form === "structured" ? source.fuse : undefined) ?? config.defaults.fuse;
    if (fuse !== undefined) settings.set(name ?? `rule-${source.index + 1}`, fuse);
  }
  return settings;
}

/**
 * The ruleset with each rule counted and fused as configured, and its fuses; the ruleset itself
 * when there is nothing to count or fuse.
 */
export function instrumentRules(
  ruleset: Ruleset,
  config: Config,
  options: InstrumentOptions,
): { ruleset: Ruleset; fuses: Fuse[] } {
  const settings = fuseSettings(config);
  if (settings.size === 0 && options.evaluated === undefined) return { ruleset, fuses: [] };
  const fuses: Fuse[] = [];
  const rules = ruleset.rules.map((rule) => {
    const setting = rule.shadow ? undefined : settings.get(rule.name);
    const fuse =
      setting === undefined ? undefined : new Fuse(rule.name, setting, options.events, options.now);
    if (fuse !== undefined) fuses.push(fuse);
    return wrap(rule, fuse, options.evaluated?.(rule.name));
  });
  return { ruleset: new Ruleset(rules, ruleset.needs), fuses };
}

function wrap(rule: CompiledRule, fuse: Fuse | undefined, evaluated: (() => void) | undefined): CompiledRule {
  if (fuse === undefined && evaluated === undefined) return rule;
  const run: CompiledRule["run"] = (tx, lookups, trace): MaybePromise<RuleOutcome> => {
    evaluated?.();
    const result = rule.run(tx, lookups, trace);
    if (fuse === undefined) return result;
    return result instanceof Promise ? result.then((r) => settle(fuse, r)) : settle(fuse, result);
  };
  return { ...rule, run };
}

/** A blown fuse turns the rule's decision into a shadow decision; an armed one counts it. */
function settle(fuse: Fuse, outcome: RuleOutcome): RuleOutcome {
  const decision = outcome.decision;
  if (fuse.blown) {
    return decision === undefined
      ? outcome
      : { ...outcome, decision: { ...decision, shadow: true, fused: true } };
  }
  fuse.record(decision?.action === "reject" || decision?.action === "tempfail");
  return outcome;
}
