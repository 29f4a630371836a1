/**
 * The functions of the rule language, each declared once: its documentation, its signature check
 * (which reports what is wrong with a call, in the checker's words) and, bound to the call that
 * checked, its implementation. A new function is one entry here.
 */
import { didYouMean } from "../../common/diagnostics.js";
import { either } from "../../common/suggest.js";
import {
  isOverQuota,
  type MaybePromise,
  type QuotaStatus,
  quotaPercent,
  type StateLookups,
} from "../../runtime/lookups.js";
import type { QuotaValue } from "../../runtime/model.js";
import { StateError } from "../../runtime/state.js";
import { incomingSize } from "../../runtime/transaction.js";
import type { Expr } from "../ast.js";
import {
  andThen,
  type EvalEnv,
  type Evaluator,
  isPromise,
  stringify,
  traced,
  type Value,
} from "../evaluation.js";
import type { CallCheck, CallCompile, CheckedCall, FunctionWord } from "./types.js";
import { isList, isTextual } from "./types.js";
import { HEADER_OPTION } from "./values.js";

/** The one quoted argument of header("Subject") and macro("{auth_type}"), or undefined after reporting. */
/**
 * The evaluators of a call's arguments. A loop, not map() with an arrow over `compiler`: such an
 * arrow would put `compiler` in the context the closures of the enclosing compile function share,
 * and with it the rule compiler, its check result and the syntax trees, for as long as the
 * compiled rules live.
 */
function compileAll(compiler: CallCompile, args: readonly Expr[]): Evaluator<Value>[] {
  const compiled: Evaluator<Value>[] = [];
  for (const arg of args) compiled.push(compiler.value(arg));
  return compiled;
}

function quotedName(check: CallCheck, example: string): string | undefined {
  const { call } = check;
  const arg = call.args[0];
  if (call.args.length !== 1 || arg?.kind !== "string") {
    check.report(call.span, "error", `${call.callee}() takes one quoted name: ${example}`);
    return undefined;
  }
  return arg.value;
}

const header: FunctionWord = {
  name: "header",
  usage: 'header("Name")',
  from: "eoh",
  needs: ["header"],
  returns: "string",
  doc: 'the first value of that header, `""` when absent',
  dryRun: HEADER_OPTION,
  check(check) {
    const name = quotedName(check, 'header("Subject")');
    if (name === undefined) return undefined;
    const key = name.toLowerCase();
    return { type: "string", compile: () => (env) => env.tx.headers.get(key) ?? "" };
  },
};

const macro: FunctionWord = {
  name: "macro",
  usage: 'macro("{name}")',
  from: "connect",
  needs: [],
  returns: "string",
  doc: 'a macro the MTA sent (`macro("{daemon_name}")`), `""` when absent',
  check(check) {
    const name = quotedName(check, 'macro("{auth_type}")');
    if (name === undefined) return undefined;
    check.useMacro(name);
    return { type: "string", compile: () => (env) => env.tx.macro(name) ?? "" };
  },
};

/** The status of a mailbox the source does not know (or of an empty address): one shared, frozen. */
const NO_QUOTA: QuotaValue = Object.freeze({
  over: false,
  usage: 0,
  limit: 0,
  count: 0,
  count_limit: 0,
  percent: 0,
});

function quotaValue(status: QuotaStatus | undefined, incoming: number): QuotaValue {
  if (status === undefined) return NO_QUOTA;
  return {
    over: isOverQuota(status, incoming),
    usage: status.usage,
    limit: status.limit,
    count: status.count,
    count_limit: status.countLimit,
    percent: quotaPercent(status),
  };
}

function describeQuota(s: QuotaStatus | undefined): string {
  return s === undefined
    ? "no such mailbox"
    : `usage ${s.usage}/${s.limit || "∞"} bytes, ${s.count}/${s.countLimit || "∞"} messages`;
}

/** The quota source a call names, or the only one there is; undefined after reporting. */
function quotaSourceOf(check: CallCheck, sourceArg: Expr | undefined): string | undefined {
  const quotaSources = [...check.sources.values()].filter((s) => s.kind === "quota").map((s) => s.name);
  if (sourceArg === undefined) {
    if (quotaSources.length === 1) return quotaSources[0] as string;
    check.report(
      check.call.calleeSpan,
      "error",
      quotaSources.length === 0
        ? `quota() needs a quota source${check.quotaTypes.length > 0 ? ` (${either(check.quotaTypes)})` : ""} and none is configured`
        : `quota() must name its source: there are several quota sources: ${quotaSources.join(", ")}`,
      quotaSources.length > 0 ? `e.g. quota(rcpt, ${quotaSources[0]})` : undefined,
    );
    return undefined;
  }
  if (sourceArg.kind !== "name" || sourceArg.parts.length !== 1) {
    check.report(sourceArg.span, "error", "quota()'s second argument is the name of a quota source");
    return undefined;
  }
  const name = sourceArg.parts[0] as string;
  const source = check.sources.get(name);
  if (source === undefined) {
    check.report(sourceArg.span, "error", `unknown source '${name}'`, didYouMean(name, check.sources.keys()));
    return undefined;
  }
  if (source.kind !== "quota") {
    check.report(
      sourceArg.span,
      "error",
      `source '${name}' is of type ${source.type}, which has no quota`,
      quotaSources.length > 0 ? `quota sources: ${quotaSources.join(", ")}` : undefined,
    );
    return undefined;
  }
  return name;
}

function checkQuota(check: CallCheck): CheckedCall | undefined {
  const [address, sourceArg, ...extra] = check.call.args;
  if (address === undefined || extra.length > 0) {
    check.report(
      check.call.span,
      "error",
      "quota() takes an address and optionally a source: quota(rcpt) or quota(rcpt, mailboxes)",
    );
    return undefined;
  }
  const addressType = check.typeOf(address);
  if (addressType === undefined) return undefined;
  if (!isTextual(addressType)) {
    check.report(address.span, "error", `quota() needs an address, not a value of type ${addressType}`);
    return undefined;
  }
  const source = quotaSourceOf(check, sourceArg);
  if (source === undefined) return undefined;
  check.lookUp(source);
  return { type: "quota", compile: (compiler) => compileQuota(compiler, address, source) };
}

/**
 * quota()'s evaluator. A function of its own: closures made inside checkQuota's would share its
 * context, and with it the call's address node, for as long as the compiled rules live.
 */
function compileQuota(compiler: CallCompile, address: Expr, source: string): Evaluator<Value> {
  const what = `quota(${source})`;
  const remember = (env: EvalEnv, s: QuotaStatus | undefined): Value => {
    env.quota = quotaValue(s, incomingSize(env.tx));
    return env.quota;
  };
  const ask = (env: EvalEnv, k: string) => env.lookups.quota(source, k);
  const lookUp = (env: EvalEnv, a: Value): MaybePromise<Value> => {
    const key = typeof a === "string" ? a : stringify(a);
    if (key === "") {
      env.quota = quotaValue(undefined, 0);
      return env.quota;
    }
    // Untraced (an evaluation without a tracer; serve has one, for the lookups its decision logs
    // name), the source is asked directly: no call of traced() and ask().
    const status =
      env.trace === undefined
        ? env.lookups.quota(source, key)
        : traced(env, source, what, key, ask, describeQuota);
    return isPromise(status) ? status.then((s) => remember(env, s)) : remember(env, status);
  };
  return compiler.applyTo(address, lookUp);
}

/** `{quota.usage}` and its kin: the rule's last quota status. */
const QUOTA_PLACEHOLDERS = Object.fromEntries(
  (["usage", "limit", "percent", "count", "count_limit"] as const).map((member) => [
    `quota.${member}`,
    (env: { quota: QuotaValue | undefined }) => String(env.quota?.[member] ?? ""),
  ]),
);

const quota: FunctionWord = {
  name: "quota",
  usage: "quota(ADDRESS[, SOURCE])",
  from: "mail",
  needs: [],
  // At eom, "over" counts the whole message (incomingSize), as `size` does.
  extraNeeds: { ifRuleAt: "eom", stages: ["header", "body"] },
  returns: "quota",
  doc: "a mailbox's quota status (below)",
  check: checkQuota,
  placeholders: QUOTA_PLACEHOLDERS,
};

/** Longer keys are hashed: a key an SMTP client writes (a header, a HELO) stays small in the state. */
const MAX_KEY_LENGTH = 256;
/** A rate() window is at most this long (the state keeps no event longer). */
const MAX_WINDOW_MS = 30 * 86_400_000;

/**
 * The state key of a call's values: each escaped and joined with '|', so that no two lists of
 * values share a key (`"a|b"` and `"a", "b"` differ). It holds the values only, never the rule:
 * the same call in two rules counts in one place.
 */
function stateKey(values: readonly Value[]): string {
  const key = values.map((v) => stringify(v).replace(/%/g, "%25").replace(/\|/g, "%7C")).join("|");
  if (key.length <= MAX_KEY_LENGTH) return key;
  // node:crypto loaded on the first long key only: a serve whose keys are all short never holds it.
  return `sha256:${process.getBuiltinModule("node:crypto").createHash("sha256").update(key).digest("hex")}`;
}

/** Checks a state call's key arguments (one or more values); false after reporting. */
function checkKeys(check: CallCheck, keys: readonly Expr[], example: string): boolean {
  const name = check.call.callee;
  if (keys.length === 0) {
    check.report(check.call.span, "error", `${name}() needs at least one key: ${example}`);
    return false;
  }
  for (const key of keys) {
    const type = check.typeOf(key);
    if (type === undefined) return false;
    if (!isTextual(type) && type !== "number" && type !== "size") {
      check.report(
        key.span,
        "error",
        `${name}()'s keys are texts, addresses, IPs or numbers, not a value of type ${type}`,
      );
      return false;
    }
  }
  return true;
}

/**
 * The key of a call from its compiled arguments, or undefined when every value is empty (no
 * state is read or counted: `rate(auth.user, 1h)` without a login counts nothing).
 */
function keyOf(keys: readonly Evaluator<Value>[], env: EvalEnv): MaybePromise<string | undefined> {
  const values: Value[] = [];
  const from = (index: number): MaybePromise<string | undefined> => {
    for (let i = index; i < keys.length; i++) {
      const value = (keys[i] as Evaluator<Value>)(env);
      if (isPromise(value))
        return value.then((v) => {
          values.push(v);
          return from(i + 1);
        });
      values.push(value);
    }
    return values.every((v) => stringify(v) === "") ? undefined : stateKey(values);
  };
  return from(0);
}

function stateOf(env: EvalEnv): StateLookups {
  if (env.lookups.state === undefined) throw new StateError("no state store is open");
  return env.lookups.state;
}

function checkRate(check: CallCheck): CheckedCall | undefined {
  const args = check.call.args;
  const window = args.at(-1);
  const example = "rate(auth.user, 1h)";
  if (window === undefined || args.length < 2) {
    check.report(check.call.span, "error", `rate() takes one or more keys and a window: ${example}`);
    return undefined;
  }
  if (window.kind !== "duration") {
    check.report(
      window.span,
      "error",
      `rate()'s last argument is its window, a duration like 10m or 1h: ${example}`,
    );
    return undefined;
  }
  if (window.ms <= 0 || window.ms > MAX_WINDOW_MS) {
    check.report(
      window.span,
      "error",
      `rate()'s window must be longer than 0 and at most 30d, not ${window.text}`,
    );
    return undefined;
  }
  const keyArgs = args.slice(0, -1);
  if (!checkKeys(check, keyArgs, example)) return undefined;
  check.useState();
  const windowMs = window.ms;
  const what = `rate(${window.text})`;
  return {
    type: "number",
    compile: (compiler) => {
      const keys = compileAll(compiler, keyArgs);
      const ask = (env: EvalEnv, key: string) => stateOf(env).rate(key, windowMs);
      return (env) =>
        andThen(keyOf(keys, env), (key) =>
          key === undefined ? 0 : traced(env, "state", what, key, ask, String),
        );
    },
  };
}

const rate: FunctionWord = {
  name: "rate",
  usage: "rate(KEY..., WINDOW)",
  from: "connect",
  needs: [],
  returns: "number",
  doc: "counts this event under the key KEY... and answers how many it had in the sliding WINDOW, this one included (below)",
  check: checkRate,
};

function checkGreylist(check: CallCheck): CheckedCall | undefined {
  const keyArgs = check.call.args;
  if (!checkKeys(check, keyArgs, "greylist(client.net, from, rcpt)")) return undefined;
  check.useState();
  return {
    type: "bool",
    compile: (compiler) => {
      const keys = compileAll(compiler, keyArgs);
      const describe = (defer: boolean) => (defer ? "defer" : "pass");
      const ask = (env: EvalEnv, key: string) => stateOf(env).greylist(key);
      return (env) =>
        andThen(keyOf(keys, env), (key) =>
          key === undefined ? false : traced(env, "state", "greylist", key, ask, describe),
        );
    },
  };
}

const greylist: FunctionWord = {
  name: "greylist",
  usage: "greylist(KEY...)",
  from: "connect",
  needs: [],
  returns: "bool",
  doc: "true when the triplet KEY... must be deferred: never seen, or first seen less than `greylist.delay` ago (below)",
  check: checkGreylist,
};

/** The one argument of lower(), length() and count(), or undefined after reporting. */
function oneArgument(check: CallCheck, takes: string): Expr | undefined {
  const [arg, ...extra] = check.call.args;
  if (arg === undefined || extra.length > 0) {
    check.report(check.call.span, "error", `${check.call.callee}() takes ${takes}`);
    return undefined;
  }
  return arg;
}

/** The text argument of lower() and length(): its expression, or undefined after reporting. */
function textArgument(check: CallCheck, example: string): Expr | undefined {
  const arg = oneArgument(check, `one text: ${example}`);
  if (arg === undefined) return undefined;
  const type = check.typeOf(arg);
  if (type === undefined) return undefined;
  if (!isTextual(type)) {
    check.report(
      arg.span,
      "error",
      `${check.call.callee}() needs text, not a value of type ${type}`,
      isList(type) ? "count() counts the items of a list" : undefined,
    );
    return undefined;
  }
  return arg;
}

const lower: FunctionWord = {
  name: "lower",
  usage: "lower(TEXT)",
  from: "connect",
  needs: [],
  returns: "string",
  doc: 'the text in lower case: `lower(header("Subject")) matches /viagra/`',
  check(check) {
    const arg = textArgument(check, "lower(helo)");
    if (arg === undefined) return undefined;
    return {
      type: "string",
      compile: (compiler) => {
        const text = compiler.value(arg);
        return (env) => andThen(text(env), (t) => stringify(t).toLowerCase());
      },
    };
  },
};

/** Characters as a postmaster counts them: code points, so "é" or an emoji is one. */
function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

const length: FunctionWord = {
  name: "length",
  usage: "length(TEXT)",
  from: "connect",
  needs: [],
  returns: "number",
  doc: "the number of characters of the text: `length(from.local) > 64`",
  check(check) {
    const arg = textArgument(check, "length(from.local)");
    if (arg === undefined) return undefined;
    return {
      type: "number",
      compile: (compiler) => {
        const text = compiler.value(arg);
        return (env) => andThen(text(env), (t) => characters(stringify(t)));
      },
    };
  },
};

const count: FunctionWord = {
  name: "count",
  usage: "count(LIST)",
  from: "connect",
  needs: [],
  returns: "number",
  doc: "the number of items of a list: `count(rcpts) > 50`, `count(spamhaus[client.ip]) > 0`",
  check(check) {
    const arg = oneArgument(check, "one list: count(rcpts)");
    if (arg === undefined) return undefined;
    const type = check.typeOf(arg);
    if (type === undefined) return undefined;
    if (!isList(type)) {
      check.report(
        arg.span,
        "error",
        `count() needs a list, not a value of type ${type}`,
        isTextual(type) ? "length() counts the characters of a text" : undefined,
      );
      return undefined;
    }
    // A literal list is only a list of literals: its count is known now.
    if (arg.kind === "list") {
      const items = arg.items.length;
      return { type: "number", compile: () => () => items };
    }
    return {
      type: "number",
      compile: (compiler) => {
        const list = compiler.value(arg);
        return (env) => andThen(list(env), (l) => (Array.isArray(l) ? l.length : 0));
      },
    };
  },
};

export const FUNCTIONS: readonly FunctionWord[] = [
  quota,
  header,
  macro,
  lower,
  length,
  count,
  rate,
  greylist,
];
