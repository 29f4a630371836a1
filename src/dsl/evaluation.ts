/**
 * What compiled closures run with, shared by the compiler and the words it compiles (values and
 * functions, dsl/words/): the per-rule environment, the values rules compute with, and the helpers
 * that keep evaluation synchronous until a lookup answers with a promise.
 */
import type { Lookups, MaybePromise } from "../runtime/lookups.js";
import type { LookupRecord, QuotaValue, Tracer } from "../runtime/model.js";
import type { Transaction } from "../runtime/transaction.js";

export type Value = string | number | boolean | readonly string[] | QuotaValue | undefined;

/**
 * What one run of one rule evaluates with: the transaction, the lookups, and the rule's scratch
 * state (what texts may interpolate). The compiler's RuleRun is the one implementation; it is also
 * the run's outcome, so a run allocates one object, not an environment, a state and an outcome.
 */
export interface EvalEnv {
  readonly tx: Transaction;
  readonly lookups: Lookups;
  readonly trace: Tracer | undefined;
  readonly rule: string;
  /** The rule's last quota() status, for `{quota.usage}` and its kin. */
  quota: QuotaValue | undefined;
  /** DNSBL TXT reasons by source, created on the first listing. */
  reasons: Map<string, string> | undefined;
  /** DNSBL A records (`{NAME.codes}`) by source, created on the first listing. */
  codes: Map<string, readonly string[]> | undefined;
}

export type Evaluator<T> = (env: EvalEnv) => MaybePromise<T>;

export const constant =
  <T>(value: T): Evaluator<T> =>
  () =>
    value;

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return value instanceof Promise;
}

/** Applies `f` to a value that may still be on its way. */
// Not `then`: a module exporting `then` is a thenable, and `await import()` of it would call it.
export function andThen<T, U>(value: MaybePromise<T>, f: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return isPromise(value) ? value.then(f) : f(value);
}

/**
 * andThen for the hot path: `f` gets `arg` (usually the rule's env) as a parameter instead of
 * capturing it, so `f` is made once at compile time and a synchronous evaluation allocates no
 * closure; only a value still on its way pays for one.
 */
export function andThenWith<A, T, U>(
  value: MaybePromise<T>,
  arg: A,
  f: (arg: A, v: T) => MaybePromise<U>,
): MaybePromise<U> {
  return isPromise(value) ? value.then((v) => f(arg, v)) : f(arg, value);
}

/** Control characters would break the reply or the header; `%` is escaped by the milter layer. */
export function sanitize(value: string): string {
  // Nearly every text has none: a scan answers it without running the regex.
  let i = 0;
  while (i < value.length) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) break;
    i++;
  }
  if (i === value.length) return value;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return value.replace(/[\x00-\x1f\x7f]+/g, " ");
}

export function stringify(value: Value): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.join(", ");
  return String((value as QuotaValue).over);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs a lookup, recorded when a tracer is present (the milter's hot path has none, and pays
 * nothing: no record is allocated). `what` is what the rule asked: `quota(mailboxes)`, `spamhaus`.
 */
export function traced<T>(
  env: EvalEnv,
  source: string,
  what: string,
  key: string,
  call: (env: EvalEnv, key: string) => MaybePromise<T>,
  describe: (value: T) => string,
): MaybePromise<T> {
  const trace = env.trace;
  // `call` is built once when the rule is compiled: untraced, a lookup allocates nothing here.
  if (trace === undefined) return call(env, key);
  const started = performance.now();
  const record = (result: string, error?: string) => {
    const entry: LookupRecord = {
      rule: env.rule,
      source,
      what,
      key,
      result,
      ms: performance.now() - started,
    };
    if (error !== undefined) entry.error = error;
    trace.lookup(entry);
  };
  try {
    const value = call(env, key);
    if (!isPromise(value)) {
      record(describe(value));
      return value;
    }
    return value.then(
      (v) => {
        record(describe(v));
        return v;
      },
      (error: unknown) => {
        record("error", errorText(error));
        throw error;
      },
    );
  } catch (error) {
    record("error", errorText(error));
    throw error;
  }
}
