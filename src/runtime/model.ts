/**
 * What running the rules produces, as the engine, the logs and dry-run see it: decisions, effects,
 * lookup records, and the compiled rule's shape. The compiler builds these; everything above it
 * reads them from here.
 */
import type { Stage } from "../common/stages.js";
import type { Lookups, MaybePromise } from "./lookups.js";
import type { Transaction } from "./transaction.js";

/** A quota status as rules see it; `undefined` status = no such mailbox. */
export interface QuotaValue {
  over: boolean;
  usage: number;
  limit: number;
  count: number;
  count_limit: number;
  percent: number;
}

/** One lookup, as dry-run and the logs report it. */
export interface LookupRecord {
  rule: string;
  source: string;
  /** What was asked, as the rule wrote it: `directory.addresses`, `spamhaus`, `quota(mailboxes)`. */
  what: string;
  key: string;
  result: string;
  ms: number;
  error?: string;
}

export interface Tracer {
  lookup(record: LookupRecord): void;
  /** List every rule evaluated in the stage's outcome, also those that did nothing (dry-run). */
  everyRule?: boolean;
}

export type DecisionAction = "accept" | "reject" | "tempfail" | "discard" | "quarantine";

export interface Decision {
  action: DecisionAction;
  /** For reject/tempfail. */
  code?: number;
  enhancedCode?: string;
  text?: string;
  /** For quarantine. */
  reason?: string;
  rule: string;
  shadow: boolean;
  /** Set when the decision comes from a failed lookup (on_error: tempfail). */
  lookupError?: string;
  /** Set on the shadow decision of a rule whose reject-rate fuse blew (engine/fuse.ts). */
  fused?: true;
}

export type Effect =
  | { kind: "addHeader"; name: string; value: string; rule: string }
  | { kind: "log"; text: string; rule: string };

export interface RuleOutcome {
  decision?: Decision;
  effects: Effect[];
  /** Lookup failures met (whatever on_error made of them). */
  errors: { source: string; message: string }[];
}

export interface CompiledRule {
  name: string;
  stages: ReadonlySet<Stage>;
  shadow: boolean;
  /** Sources the rule looks up. */
  lookups: readonly string[];
  /** Whether the rule calls rate() or greylist() (a failed call takes `state.on_error`). */
  usesState: boolean;
  /** Whether the rule can end a stage (it has a deciding action, or a lookup that can tempfail). */
  canDecide: boolean;
  run(tx: Transaction, lookups: Lookups, trace?: Tracer): MaybePromise<RuleOutcome>;
}
