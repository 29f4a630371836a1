/**
 * The shape of a word of the rule language. A value (`client.ip`, `rcpt.domain`) and a function
 * (`quota()`, `header()`) are each declared once, in values.ts or functions.ts: what the checker
 * needs (type, stages, signature check), what the compiler runs (how it is read, its
 * implementation), what `filterctl dry-run` fills it from, and its documentation (the README's
 * table of values is checked against it). As in cel-go, a function's declaration and its binding
 * are registered together: its check answers the compiled call.
 */
import type { LocalPartMode } from "../../common/address.js";
import type { Severity } from "../../common/diagnostics.js";
import type { Stage } from "../../common/stages.js";
import type { SourceConfig } from "../../config/types.js";
import type { MaybePromise } from "../../runtime/lookups.js";
import type { Expr, Span } from "../ast.js";
import type { EvalEnv, Evaluator, Value } from "../evaluation.js";

export type ValueType =
  | "string"
  | "address"
  | "localpart"
  | "domain"
  | "ip"
  | "number"
  | "size"
  | "duration"
  | "bool"
  /** A literal list (`["a", "b"]`), used with `in` and count(). */
  | "list"
  /** A list of addresses (`rcpts`): `in` compares as addresses do (case, quotes). */
  | "address list"
  /** A list of IP addresses (a DNSBL's answer, `spamhaus[client.ip]`). */
  | "ip list"
  | "quota"
  | "table"
  | "any";

/** Types that are compared as text (domains, addresses and local parts normalised first). */
export function isTextual(type: ValueType): boolean {
  return (
    type === "string" ||
    type === "address" ||
    type === "localpart" ||
    type === "domain" ||
    type === "ip" ||
    type === "any"
  );
}

/** Types whose values are lists of items: `in` looks in them, count() counts them. */
export function isList(type: ValueType): boolean {
  return type === "list" || type === "address list" || type === "ip list";
}

export function isNumeric(type: ValueType): boolean {
  return type === "number" || type === "size" || type === "duration" || type === "any";
}

/** The members of a quota status (`quota(rcpt).percent`), and their types. */
export const QUOTA_MEMBERS: Record<string, ValueType> = {
  over: "bool",
  usage: "size",
  limit: "size",
  count: "number",
  count_limit: "number",
  percent: "number",
};

/** The `filterctl dry-run` option that fills a word in (several words may share one). */
export interface DryRunOption {
  /** `--client-ip` */
  flag: string;
  /** `<ip>` */
  argument: string;
  help: string;
  required?: boolean;
  repeatable?: boolean;
  /** The argument is a number of bytes (a non-negative integer). */
  bytes?: boolean;
}

/** How a word is documented: the README's table of values shows `name`, the stage and `doc`. */
interface WordDoc {
  /** First stage where it is known. */
  from: Stage;
  /** Stages whose events must be seen for it to be filled. */
  needs: readonly Stage[];
  /** More stages to see when any rule runs at `ifRuleAt` (the real size at eom needs the headers and body). */
  extraNeeds?: { ifRuleAt: Stage; stages: readonly Stage[] };
  /** Markdown, one sentence or two: the README table's "meaning" column. */
  doc: string;
  dryRun?: DryRunOption;
}

export interface ValueWord extends WordDoc {
  name: string;
  type: ValueType;
  /** Only during this one stage (e.g. the current header). */
  only?: Stage;
  /** Macros the MTA must send for it, per stage. */
  macros?: readonly { stage: Stage; names: readonly string[] }[];
  /**
   * How conditions and lookups read it from the transaction, made once per compilation (so the
   * local-part mode is read once): addresses normalised.
   */
  read(mode: LocalPartMode): (env: EvalEnv) => Value;
  /** How reply, log and header texts show it, when not as read: addresses as the client wrote them. */
  show?(mode: LocalPartMode): (env: EvalEnv) => Value;
}

/** What the checker offers a function's signature check. */
export interface CallCheck {
  readonly call: Extract<Expr, { kind: "call" }>;
  /** The stages of the rule the call is in. */
  readonly stages: readonly Stage[];
  readonly sources: ReadonlyMap<string, SourceConfig>;
  /** The source types that answer quota() (`maildir`, `mbox`, `http`), for messages. */
  readonly quotaTypes: readonly string[];
  report(at: Span | number, severity: Severity, message: string, hint?: string): void;
  /** Checks an argument as an expression: its type, or undefined after reporting why it has none. */
  typeOf(expr: Expr): ValueType | undefined;
  /** The call looks `source` up (it is used, and its failures follow its on_error). */
  lookUp(source: string): void;
  /** The call reads or counts in the state (rate(), greylist()): its failures follow `state.on_error`. */
  useState(): void;
  /** The call reads this macro: the MTA must send it at the rule's stages. */
  useMacro(name: string): void;
}

/** What the compiler offers a checked call. */
export interface CallCompile {
  readonly localPart: LocalPartMode;
  /** Compiles an argument. */
  value(expr: Expr): Evaluator<Value>;
  /**
   * `(env) => f(env, ARG)`: the argument read directly when it cannot answer a promise (a value
   * of the transaction, a literal), through andThenWith otherwise.
   */
  applyTo<T>(expr: Expr, f: (env: EvalEnv, value: Value) => MaybePromise<T>): Evaluator<T>;
}

/** A call that checked: its type and how it runs. */
export interface CheckedCall {
  type: ValueType;
  compile(compiler: CallCompile): Evaluator<Value>;
}

export interface FunctionWord extends WordDoc {
  name: string;
  /** How it is called, for messages and the README: `quota(ADDRESS[, SOURCE])`. */
  usage: string;
  returns: ValueType;
  /** Checks a call's arguments (reporting what is wrong) and binds its implementation. */
  check(call: CallCheck): CheckedCall | undefined;
  /** Placeholders a rule that calls it may use in texts (`{quota.usage}`), and how they read. */
  placeholders?: Readonly<Record<string, (env: EvalEnv) => string>>;
}
