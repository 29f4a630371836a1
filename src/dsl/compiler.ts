/**
 * The compiler: checked syntax trees become closures, once per (re)load. Regexes are compiled,
 * literal lists become list matchers (common/list-matcher), templates are split in advance.
 * Values and functions compile as their registry entries say (words/); no word is named here.
 * Evaluation stays synchronous until a lookup actually answers with a promise.
 */
import {
  type LocalPartMode,
  normalizeAddress,
  normalizeDomain,
  normalizeLocalContent,
} from "../common/address.js";
import { canonicalIp } from "../common/ip.js";
import { ListMatcher } from "../common/list-matcher.js";
import type { Stage } from "../common/stages.js";
import type { OnError, SourceConfig } from "../config/types.js";
import { type DnsblAnswer, LookupError, type Lookups, type MaybePromise } from "../runtime/lookups.js";
import type { CompiledRule, Decision, Effect, QuotaValue, RuleOutcome, Tracer } from "../runtime/model.js";
import { StateError } from "../runtime/state.js";
import type { Transaction } from "../runtime/transaction.js";
import {
  type Action,
  type ArithmeticOp,
  type CompareOp,
  chainOperands,
  type Expr,
  exactly,
  type Rule,
  type Template,
} from "./ast.js";
import type { CheckResult, Resolution } from "./checker.js";
import { decides } from "./checker.js";
import { ClosureCopies } from "./closure-copies.js";
import {
  andThen,
  andThenWith,
  constant,
  type EvalEnv,
  type Evaluator,
  isPromise,
  sanitize,
  stringify,
  traced,
  type Value,
} from "./evaluation.js";
import { matchRegex } from "./regex-offload.js";
import type { Registry, ValueType } from "./registry.js";
import type { TemplatePart } from "./template.js";

export type { EvalEnv } from "./evaluation.js";

export interface CompileOptions {
  sources: ReadonlyMap<string, SourceConfig>;
  defaultOnError: OnError;
  /** Reply for a lookup failure under on_error: tempfail, e.g. "451 4.3.0 Temporary lookup failure". */
  errorReply: string;
  /** `defaults.local_part`: whether addresses' local parts compare case-insensitively (default). */
  localPart?: LocalPartMode;
  /** `state.on_error`: what a rule does when rate() or greylist() cannot answer (default continue). */
  stateOnError?: OnError;
}

const ARITHMETIC: Record<ArithmeticOp, (a: number, b: number) => number> = {
  "+": (a, b) => a + b,
  "-": (a, b) => a - b,
  "*": (a, b) => a * b,
};

/**
 * Results beyond ±Number.MAX_SAFE_INTEGER (9 PB, 104 million days) are held there: a sum that
 * large is "more than any limit" already, and comparisons stay exact instead of meeting Infinity.
 */
export function saturate(n: number): number {
  if (n > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (n < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER;
  return n;
}

type NumericOp = Exclude<CompareOp, "==" | "!=">;

/** The ordering comparisons, one function each: the operator is chosen when the rule compiles. */
const NUMERIC: Record<NumericOp, (a: Value, b: Value) => boolean> = {
  "<": (a, b) => Number(a) < Number(b),
  "<=": (a, b) => Number(a) <= Number(b),
  ">": (a, b) => Number(a) > Number(b),
  ">=": (a, b) => Number(a) >= Number(b),
};

/** A value as `==` compares it: a text through the kind's normaliser, anything else as it is. */
function normalizedBy(normalizer: ((text: string) => string) | undefined): (v: Value) => Value {
  if (normalizer === undefined) return (v) => v;
  return (v) => (typeof v === "string" ? normalizer(v) : v);
}

const DEFAULT_TEXT = { reject: "Rejected by policy", tempfail: "Try again later" } as const;
const DEFAULT_CODE = { reject: [550, "5.7.1"], tempfail: [451, "4.7.1"] } as const;

/** Parses "451 4.3.0 Temporary lookup failure" into its parts (validated by the schema). */
export function parseReply(reply: string): { code: number; enhancedCode?: string; text: string } {
  const match = /^(\d{3})(?:\s+(\d\.\d{1,3}\.\d{1,3}))?\s*(.*)$/.exec(reply.trim());
  if (match === null) return { code: 451, enhancedCode: "4.3.0", text: reply };
  return match[2] === undefined
    ? { code: Number(match[1]), text: match[3] ?? "" }
    : { code: Number(match[1]), enhancedCode: match[2], text: match[3] ?? "" };
}

/**
 * How two texts of a kind are made comparable: domains folded, addresses and local parts
 * normalised (common/address), IPs in one spelling; other texts compare exactly.
 */
function textNormalizer(kind: ValueType, mode: LocalPartMode): ((text: string) => string) | undefined {
  switch (kind) {
    case "domain":
      return normalizeDomain;
    case "address":
      return (text) => normalizeAddress(text, mode);
    case "localpart":
      return (text) => normalizeLocalContent(text, mode);
    case "ip":
      return canonicalIp;
    default:
      return undefined;
  }
}

/**
 * A literal list, matched as a `list` source with the same entries would match (common/list-matcher):
 * IPs and CIDRs, addresses, and words as domains, or as local parts for a `.local` subject.
 */
function literalSet(items: Expr[], subjectType: ValueType, mode: LocalPartMode): (key: string) => boolean {
  const texts = items.map((item) =>
    item.kind === "string"
      ? item.value
      : item.kind === "number"
        ? String(item.value)
        : "text" in item
          ? item.text
          : "",
  );
  const matcher = new ListMatcher(texts, {
    localPart: mode,
    words: subjectType === "localpart" ? "localpart" : "domain",
  });
  return (key: string) => matcher.has(key);
}

/**
 * What a lookup failure of each source does: made from the settings alone, so that the compiled
 * rules that hold it (every RuleRunner) do not hold the compiler, its check result and the syntax
 * trees with it.
 */
function onErrorLookup(options: CompileOptions): (source: string) => OnError {
  const bySource = new Map<string, OnError>();
  for (const [name, source] of options.sources)
    if (source.onError !== undefined) bySource.set(name, source.onError);
  const fallback = options.defaultOnError;
  return (source) => bySource.get(source) ?? fallback;
}

const identity = (v: Value): Value => v;

/** A DNSBL lookup for `traced`, built once per rule for its source. */
function askDnsbl(source: string): (env: EvalEnv, key: string) => MaybePromise<DnsblAnswer> {
  return (env, key) => env.lookups.dnsbl(source, key);
}

export class RuleCompiler {
  // What every rule of one compilation shares instead of holding a copy of its own: the parsed
  // error reply (parsed on first use: a compilation without rules never needs it), the on_error
  // lookup, one set per combination of stages (10,000 rules use a dozen).
  private errorReply: ReturnType<typeof parseReply> | undefined;
  private readonly onErrorOf: (source: string) => OnError;
  private readonly stageSets = new Map<string, ReadonlySet<Stage>>();

  constructor(
    private readonly checked: CheckResult,
    private readonly options: CompileOptions,
  ) {
    this.onErrorOf = onErrorLookup(options);
  }

  private get localPart(): LocalPartMode {
    return this.options.localPart ?? "insensitive";
  }

  private resolution(expr: Expr): Resolution {
    const r = this.checked.resolutions.get(expr);
    if (r === undefined) throw new Error(`internal: unresolved ${expr.kind} node`);
    return r;
  }

  private typeOf(expr: Expr): ValueType {
    return this.checked.types.get(expr) ?? "any";
  }

  /**
   * A reader that never answers a promise, for the expressions that are known to be synchronous
   * at compile time (literals, values of the transaction): their users call it and go on, without
   * the check for a promise and the extra call of andThen.
   */
  private syncReader(expr: Expr): ((env: EvalEnv) => Value) | undefined {
    switch (expr.kind) {
      case "string":
      case "number":
      case "bool": {
        const value = expr.value;
        return () => value;
      }
      case "name": {
        const resolution = this.resolution(expr);
        return resolution.kind === "value" ? resolution.word.read(this.localPart) : undefined;
      }
      default:
        return undefined;
    }
  }

  value(expr: Expr): Evaluator<Value> {
    switch (expr.kind) {
      // Each constant copied out of its node: a closure over `expr` would keep the node, and
      // every closure this method makes (they share one context) with it.
      case "string":
      case "number":
      case "bool":
        return constant(expr.value);
      case "size":
        return constant(expr.bytes);
      case "duration":
        return constant(expr.ms);
      case "ip":
        return constant(expr.text);
      case "cidr":
      case "list":
        throw new Error("internal: a list is only used with 'in'");
      case "name":
        return this.name(expr);
      case "call":
        return this.call(expr);
      case "member": {
        const object = this.value(expr.object);
        const property = expr.property as keyof QuotaValue;
        const read = (q: Value): Value => (q as QuotaValue)[property];
        return (env) => andThen(object(env), read);
      }
      case "index":
        return this.index(expr);
      case "arith":
        return this.arith(expr);
      default:
        return this.condition(expr);
    }
  }

  /** `+ - *` on numbers, sizes and durations (the checker made sure the units agree). */
  private arith(expr: Extract<Expr, { kind: "arith" }>): Evaluator<Value> {
    const left = this.value(expr.left);
    const right = this.value(expr.right);
    const apply = ARITHMETIC[expr.op];
    const combine = (a: Value, b: Value): Value => saturate(apply(Number(a), Number(b)));
    const withLeft = (env: EvalEnv, a: Value) => andThenWith(right(env), a, combine);
    return (env) => andThenWith(left(env), env, withLeft);
  }

  /** `TABLE[X]`: the value the table holds for X. */
  private index(expr: Extract<Expr, { kind: "index" }>): Evaluator<Value> {
    const resolution = this.resolution(expr.table);
    if (resolution.kind === "dnsbl") return this.dnsblCodes(resolution.source, expr.key);
    if (resolution.kind !== "table") throw new Error("internal: index on non-table");
    const key = this.value(expr.key);
    const source = resolution.source;
    const table = resolution.kind === "table" ? resolution.table : undefined;
    const what = table ? `${source}.${table}[]` : `${source}[]`;
    const ask = (env: EvalEnv, k: string) => env.lookups.get(source, table, k);
    const lookUp = (env: EvalEnv, k: Value): MaybePromise<Value> => {
      const text = stringify(k);
      if (text === "") return "";
      const found = traced(env, source, what, text, ask, describeValue);
      return isPromise(found) ? found.then(orEmpty) : orEmpty(found);
    };
    return (env) => andThenWith(key(env), env, lookUp);
  }

  /**
   * `spamhaus[client.ip]`: the A records the list answered for X, empty when it does not list X,
   * when X is empty (no query) or when the list is off. Fills `{NAME.reason}` and `{NAME.codes}`.
   */
  private dnsblCodes(source: string, keyExpr: Expr): Evaluator<Value> {
    const key = this.value(keyExpr);
    const what = `${source}[]`;
    const codes = (env: EvalEnv, a: DnsblAnswer): Value => {
      rememberListing(env, source, a);
      return a.listed ? codesOf(a) : NO_CODES;
    };
    const ask = askDnsbl(source);
    const lookUp = (env: EvalEnv, k: Value): MaybePromise<Value> => {
      const text = stringify(k);
      if (text === "") return NO_CODES;
      const answer = traced(env, source, what, text, ask, describeDnsbl);
      return andThenWith(answer, env, codes);
    };
    return (env) => andThenWith(key(env), env, lookUp);
  }

  private name(expr: Extract<Expr, { kind: "name" }>): Evaluator<Value> {
    const resolution = this.resolution(expr);
    if (resolution.kind === "sourceAttribute") {
      const { source, attribute } = resolution;
      if (attribute === "codes") return (env) => env.codes?.get(source) ?? NO_CODES;
      return (env) => (attribute === "zone" ? env.lookups.zoneOf(source) : (env.reasons?.get(source) ?? ""));
    }
    if (resolution.kind !== "value") throw new Error(`internal: ${resolution.kind} used as a value`);
    return resolution.word.read(this.localPart);
  }

  /** A function call: the implementation its word bound when the call checked. */
  private call(expr: Extract<Expr, { kind: "call" }>): Evaluator<Value> {
    const resolution = this.resolution(expr);
    if (resolution.kind !== "call") throw new Error("internal: unknown call");
    return resolution.checked.compile({
      localPart: this.localPart,
      value: (arg) => this.value(arg),
      applyTo: (arg, f) => this.applyTo(arg, f),
    });
  }

  condition(expr: Expr): Evaluator<boolean> {
    switch (expr.kind) {
      case "and":
      case "or": {
        // A chain is evaluated by a loop, left to right, stopping at the first operand that
        // settles it (false for `and`, true for `or`): no recursion, however long the chain.
        // A loop, not map() with an arrow: an arrow using `this` here would put the compiler in
        // the context every closure this method makes shares, and so keep it (its check result,
        // the syntax trees) alive as long as the compiled rules.
        const operands: Evaluator<boolean>[] = [];
        for (const operand of chainOperands(expr)) operands.push(this.condition(operand));
        const settles = expr.kind === "or";
        // A short chain (nearly all) is nested pairs: each step a direct call, no loop over an array.
        if (operands.length <= SHORT_CHAIN) {
          const last = operands.pop() as Evaluator<boolean>;
          return operands.reduceRight((rest, first) => pair(first, rest, settles), last);
        }
        return (env) => settleFrom(operands, 0, env, settles);
      }
      case "not": {
        const operand = this.condition(expr.operand);
        return (env) => andThen(operand(env), negate);
      }
      case "compare":
        return this.compare(expr);
      case "matches": {
        const subject = this.value(expr.subject);
        // An re2js program (regex.ts), linear in the text; a long text goes to a worker thread
        // (regex-offload.ts), so a rule cannot stall other sessions.
        const regex = this.checked.regexes.get(expr);
        if (regex === undefined) throw new Error("internal: regex not compiled");
        const test = (s: Value) => matchRegex(regex, stringify(s));
        return (env) => andThen(subject(env), test);
      }
      case "in":
        return this.membership(expr);
      case "over":
        return OVERS.next()(this.value(expr.subject));
      default: {
        const value = this.value(expr);
        return (env) => andThen(value(env), isTrue);
      }
    }
  }

  private compare(expr: Extract<Expr, { kind: "compare" }>): Evaluator<boolean> {
    const leftType = this.typeOf(expr.left);
    const rightType = this.typeOf(expr.right);
    const op: CompareOp = expr.op;
    const textual = op === "==" || op === "!=";
    const kind: ValueType =
      leftType === "address" || rightType === "address"
        ? "address"
        : leftType === "domain" || rightType === "domain"
          ? "domain"
          : leftType === "localpart" || rightType === "localpart"
            ? "localpart"
            : leftType;
    const normalizer = textual ? textNormalizer(kind, this.localPart) : undefined;
    const equal = op === "==";
    if (textual && expr.right.kind === "string") {
      // `X == "literal"` (most comparisons): the literal normalised once here, not per message.
      const literal = normalizer === undefined ? expr.right.value : normalizer(expr.right.value);
      const read = this.syncReader(expr.left);
      if (read !== undefined && normalizer === undefined) return EQUALS.next()(read, literal, equal);
      const normalize = normalizedBy(normalizer);
      const against = (_env: EvalEnv, a: Value) => (normalize(a) === literal) === equal;
      return this.applyTo(expr.left, against);
    }
    const [left, normalizeLeft] = this.compareSide(expr.left, normalizer);
    const [right, normalizeRight] = this.compareSide(expr.right, normalizer);
    const test: (a: Value, b: Value) => boolean = textual
      ? (a, b) => (normalizeLeft(a) === normalizeRight(b)) === equal
      : NUMERIC[op as NumericOp];
    const withLeft = (env: EvalEnv, a: Value) => andThenWith(right(env), a, test);
    return (env) => andThenWith(left(env), env, withLeft);
  }

  /**
   * One side of a comparison and how its value is normalised. A method, not an arrow in
   * compare(): see condition() on arrows that use `this`.
   */
  private compareSide(
    e: Expr,
    normalizer: ((text: string) => string) | undefined,
  ): [Evaluator<Value>, (v: Value) => Value] {
    // A quoted literal (`"Bob@Example.org" == rcpt`) is normalised once here, not per message.
    if (e.kind === "string" && normalizer !== undefined) return [constant(normalizer(e.value)), identity];
    return [this.value(e), normalizedBy(normalizer)];
  }

  /** `(env) => f(env, X)`: X read directly when it is synchronous, through andThenWith otherwise. */
  applyTo<T>(expr: Expr, f: (env: EvalEnv, value: Value) => MaybePromise<T>): Evaluator<T> {
    const read = this.syncReader(expr);
    if (read !== undefined) return APPLIERS.next()(f, read);
    const value = this.value(expr);
    return (env) => andThenWith(value(env), env, f);
  }

  private membership(expr: Extract<Expr, { kind: "in" }>): Evaluator<boolean> {
    const negated = expr.negated;
    const subjectType = this.typeOf(expr.subject);
    if (expr.table.kind === "list" || expr.table.kind === "cidr") {
      const member = literalSet(
        expr.table.kind === "list" ? expr.table.items : [expr.table],
        subjectType,
        this.localPart,
      );
      const test = (_env: EvalEnv, s: Value) => {
        const key = typeof s === "string" ? s : stringify(s);
        if (key === "") return false;
        return member(key) !== negated;
      };
      return this.applyTo(expr.subject, test);
    }
    const tableType = this.typeOf(expr.table);
    if (tableType === "address list" || tableType === "ip list") return this.inListValue(expr, tableType);
    const resolution = this.resolution(expr.table);
    if (resolution.kind === "dnsbl") {
      const source = resolution.source;
      const listed = (env: EvalEnv, answer: DnsblAnswer) => {
        rememberListing(env, source, answer);
        return answer.listed !== negated;
      };
      const ask = askDnsbl(source);
      const lookUp = (env: EvalEnv, s: Value): MaybePromise<boolean> => {
        const key = typeof s === "string" ? s : stringify(s);
        if (key === "") return false;
        const answer =
          env.trace === undefined
            ? env.lookups.dnsbl(source, key)
            : traced(env, source, source, key, ask, describeDnsbl);
        return isPromise(answer) ? answer.then((a) => listed(env, a)) : listed(env, answer);
      };
      return this.applyTo(expr.subject, lookUp);
    }
    if (resolution.kind !== "table") throw new Error("internal: 'in' on non-table");
    const { source, table } = resolution;
    const what = table ? `${source}.${table}` : source;
    const answer = (f: boolean) => f !== negated;
    const ask = (env: EvalEnv, k: string) => env.lookups.has(source, table, k);
    const lookUp = (env: EvalEnv, s: Value): MaybePromise<boolean> => {
      const key = typeof s === "string" ? s : stringify(s);
      // An empty key is never looked up: it can neither match nor fail.
      if (key === "") return false;
      // Untraced (an evaluation without a tracer; serve has one, for the lookups its decision logs
      // name), the source is asked directly: no call of traced() and ask() per lookup.
      const found =
        env.trace === undefined
          ? env.lookups.has(source, table, key)
          : traced(env, source, what, key, ask, describeFound);
      return typeof found === "boolean" ? found !== negated : found.then(answer);
    };
    return this.applyTo(expr.subject, lookUp);
  }

  /**
   * `X in rcpts`, `127.0.0.4 in spamhaus[client.ip]`: X compared with each item as its kind
   * compares elsewhere (addresses normalised, IPs in one spelling). The items are already in that
   * form (`rcpts` reads normalised, DNS answers are dotted quads), so only X is normalised.
   */
  private inListValue(
    expr: Extract<Expr, { kind: "in" }>,
    kind: "address list" | "ip list",
  ): Evaluator<boolean> {
    const subject = this.value(expr.subject);
    const list = this.value(expr.table);
    const negated = expr.negated;
    const mode = this.localPart;
    const normalize = kind === "address list" ? (t: string) => normalizeAddress(t, mode) : canonicalIp;
    const contains = (wanted: string, items: Value) =>
      (items as readonly string[]).includes(wanted) !== negated;
    const test = (env: EvalEnv, s: Value): MaybePromise<boolean> => {
      const key = stringify(s);
      // As with tables: an empty X is in no list, and not "not in" one either.
      if (key === "") return false;
      return andThenWith(list(env), normalize(key), contains);
    };
    return (env) => andThenWith(subject(env), env, test);
  }

  /** A text's `{NAME}`: a value as texts show it, a function's placeholder, or a DNSBL's attribute. */
  private placeholder(name: string): (env: EvalEnv) => string {
    const registry: Registry = this.checked.registry;
    const value = registry.value(name);
    if (value !== undefined) {
      const get = (value.show ?? value.read)(this.localPart);
      return (env) => sanitize(stringify(get(env)));
    }
    const fromCall = registry.placeholder(name);
    if (fromCall !== undefined) return fromCall.read;
    const [source, attribute] = name.split(".") as [string, string];
    if (attribute === "zone") return (env) => sanitize(env.lookups.zoneOf(source));
    if (attribute === "codes") return (env) => sanitize((env.codes?.get(source) ?? NO_CODES).join(", "));
    return (env) => sanitize(env.reasons?.get(source) ?? "");
  }

  private template(template: Template): (env: EvalEnv) => string {
    const parts = this.checked.templates.get(template);
    if (parts === undefined) throw new Error("internal: template not checked");
    // The fixed texts around the placeholders, texts[i] before placeholder i and the last after
    // them all: a placeholder costs one call, a fixed text none.
    const texts: string[] = [""];
    const placeholders: ((env: EvalEnv) => string)[] = [];
    for (const part of parts as readonly TemplatePart[]) {
      if (part.kind === "text") texts[texts.length - 1] += part.text;
      else {
        placeholders.push(this.placeholder(part.name));
        texts.push("");
      }
    }
    const first = texts[0] as string;
    if (placeholders.length === 0) return () => first;
    const [only] = placeholders as [(env: EvalEnv) => string];
    const last = texts[1] as string;
    if (placeholders.length === 1) return (env) => first + only(env) + last;
    return joinTemplate(texts, placeholders);
  }

  /**
   * Compiles an action into a function that sets the run's decision (answering true: the rule has
   * decided) or adds its effect (answering false).
   */
  private action(action: Action, rule: Rule): CompiledAction {
    const name = rule.name;
    const shadow = rule.shadow;
    switch (action.verb) {
      case "continue":
        return () => false;
      case "accept":
      case "discard": {
        const verb = action.verb;
        return (run) => decide(run, { action: verb, rule: name, shadow });
      }
      case "reject":
      case "tempfail": {
        const verb = action.verb;
        const code = action.code?.value ?? DEFAULT_CODE[verb][0];
        const enhancedCode = action.code === undefined ? DEFAULT_CODE[verb][1] : action.enhancedCode?.value;
        const text = action.text === undefined ? () => DEFAULT_TEXT[verb] : this.template(action.text);
        // Every decision of the action made with its properties in one order: one shape.
        if (enhancedCode === undefined)
          return (run) => decide(run, { action: verb, code, text: text(run), rule: name, shadow });
        return (run) =>
          decide(run, { action: verb, code, enhancedCode, text: text(run), rule: name, shadow });
      }
      case "quarantine": {
        const reason = this.template(action.reason);
        return (run) => decide(run, { action: "quarantine", reason: reason(run), rule: name, shadow });
      }
      case "add header": {
        const headerName = action.name.text;
        const value = this.template(action.value);
        return (run) =>
          addEffect(run, { kind: "addHeader", name: headerName, value: value(run), rule: name });
      }
      case "log": {
        const text = this.template(action.text);
        return (run) => addEffect(run, { kind: "log", text: text(run), rule: name });
      }
    }
  }

  /** The rule's stages as a set, in the order written; one set per combination (never changed). */
  private stageSet(stages: Rule["stages"]): ReadonlySet<Stage> {
    const key = stages.map((s) => s.stage).join(",");
    let set = this.stageSets.get(key);
    if (set === undefined) {
      set = new Set(stages.map((s) => s.stage));
      this.stageSets.set(key, set);
    }
    return set;
  }

  rule(rule: Rule): CompiledRule {
    const looked = this.checked.lookupsByRule.get(rule);
    const lookups = looked === undefined || looked.size === 0 ? NO_LOOKUPS : [...looked];
    const statements = rule.statements.map((statement) => {
      if (statement.kind === "action") {
        return { condition: undefined, whenTrue: this.action(statement.action, rule), whenFalse: undefined };
      }
      return {
        condition: this.condition(statement.condition),
        whenTrue: this.action(statement.then, rule),
        whenFalse: statement.else === undefined ? undefined : this.action(statement.else, rule),
      };
    });
    this.errorReply ??= parseReply(this.options.errorReply);
    const errorReply = this.errorReply;
    const name = rule.name;
    const shadow = rule.shadow;
    const onErrorOf = this.onErrorOf;
    const usesState = this.checked.stateRules.has(rule);
    const stateOnError = this.options.stateOnError ?? "continue";
    const canDecide =
      rule.statements.some((s) =>
        s.kind === "action"
          ? decides(s.action)
          : decides(s.then) || (s.else !== undefined && decides(s.else)),
      ) ||
      lookups.some((source) => onErrorOf(source) === "tempfail") ||
      (usesState && stateOnError === "tempfail");

    const runner = new RuleRunner(name, shadow, statements, errorReply, onErrorOf, stateOnError);
    return {
      name,
      stages: this.stageSet(rule.stages),
      shadow,
      lookups,
      usesState,
      canDecide,
      run: runner.runner(),
    };
  }
}

/**
 * A text of several placeholders. Made here, not in RuleCompiler.template: a closure there would
 * put both arrays in the context every closure of that method shares, held by the texts of one
 * placeholder or none too.
 */
function joinTemplate(
  texts: readonly string[],
  placeholders: readonly ((env: EvalEnv) => string)[],
): (env: EvalEnv) => string {
  const fixed = exactly(texts);
  const parts = exactly(placeholders);
  const first = fixed[0] as string;
  return (env) => {
    let out = first;
    for (let i = 0; i < parts.length; i++) out += (parts[i] as (env: EvalEnv) => string)(env) + fixed[i + 1];
    return out;
  };
}

/** Shared by the rules that look nothing up. */
const NO_LOOKUPS: readonly string[] = Object.freeze([]);

/** An action: sets the run's decision (answering true) or adds an effect (answering false). */
type CompiledAction = (run: RuleRun) => boolean;

type CompiledStatement = {
  condition: Evaluator<boolean> | undefined;
  whenTrue: CompiledAction;
  whenFalse: CompiledAction | undefined;
};

/** Shared by outcomes that have none; replaced by a fresh array on the first push. */
const NONE: never[] = [];

/**
 * One run of one rule: the environment its expressions read and write (EvalEnv) and the outcome
 * it answers (RuleOutcome), one object. Every field is set in the constructor, so every run has
 * the same shape and the closures reading it stay monomorphic. A run that waits for a lookup
 * keeps its own object: nothing is shared between runs.
 */
class RuleRun implements EvalEnv, RuleOutcome {
  quota: QuotaValue | undefined = undefined;
  reasons: Map<string, string> | undefined = undefined;
  codes: Map<string, readonly string[]> | undefined = undefined;
  decision: Decision | undefined = undefined;
  effects: Effect[] = NONE;
  errors: { source: string; message: string }[] = NONE;

  constructor(
    readonly tx: Transaction,
    readonly lookups: Lookups,
    readonly trace: Tracer | undefined,
    readonly rule: string,
  ) {}
}

function decide(run: RuleRun, decision: Decision): true {
  run.decision = decision;
  return true;
}

function addEffect(run: RuleRun, effect: Effect): false {
  if (run.effects === NONE) run.effects = [];
  run.effects.push(effect);
  return false;
}

/** Runs one compiled rule: its statements in order until one decides (the hot path of every milter event). */
class RuleRunner {
  constructor(
    private readonly name: string,
    private readonly shadow: boolean,
    private readonly statements: readonly CompiledStatement[],
    private readonly errorReply: ReturnType<typeof parseReply>,
    private readonly onErrorOf: (source: string) => OnError,
    private readonly stateOnError: OnError,
  ) {}

  /**
   * The rule's run function. A rule of one `if` (most rules) runs its statement directly,
   * without the loop over statements.
   */
  runner(): CompiledRule["run"] {
    const name = this.name;
    const only = this.statements.length === 1 ? this.statements[0] : undefined;
    const condition = only?.condition;
    if (only === undefined || condition === undefined)
      return (tx, lookups, trace) => this.step(new RuleRun(tx, lookups, trace, name), 0);
    return RUNNERS.next()(this, RuleRun, name, only, condition);
  }

  private step(run: RuleRun, index: number): MaybePromise<RuleRun> {
    const statements = this.statements;
    for (let i = index; i < statements.length; i++) {
      const statement = statements[i] as CompiledStatement;
      if (statement.condition === undefined) {
        if (statement.whenTrue(run)) return run;
        continue;
      }
      let verdict: MaybePromise<boolean>;
      try {
        verdict = statement.condition(run);
      } catch (error) {
        if (this.failed(run, error)) return run;
        verdict = false;
      }
      if (isPromise(verdict)) return this.later(run, i, verdict);
      if (branch(run, statement, verdict)) return run;
    }
    return run;
  }

  /** Statement `index`'s verdict is on its way: the run goes on when it comes. */
  later(run: RuleRun, index: number, verdict: Promise<boolean>): Promise<RuleRun> {
    const statement = this.statements[index] as CompiledStatement;
    return verdict.then(
      (v) => (branch(run, statement, v) ? run : this.step(run, index + 1)),
      (error: unknown) =>
        this.failed(run, error) || branch(run, statement, false) ? run : this.step(run, index + 1),
    );
  }

  /**
   * A lookup failed: on_error continue treats the condition as false; tempfail decides. The
   * state (rate(), greylist()) is reported as source "state" and follows `state.on_error`.
   */
  failed(run: RuleRun, error: unknown): boolean {
    const state = error instanceof StateError;
    const source = error instanceof LookupError ? error.source : state ? "state" : "internal";
    const message = error instanceof Error ? error.message : String(error);
    if (run.errors === NONE) run.errors = [];
    run.errors.push({ source, message });
    const onError = state ? this.stateOnError : source === "internal" ? "tempfail" : this.onErrorOf(source);
    if (onError === "continue") return false;
    const reply = this.errorReply;
    const decision: Decision = {
      action: "tempfail",
      code: reply.code,
      text: reply.text,
      rule: this.name,
      shadow: this.shadow,
      lookupError: `${source}: ${message}`,
    };
    if (reply.enhancedCode !== undefined) decision.enhancedCode = reply.enhancedCode;
    run.decision = decision;
    return true;
  }
}

/**
 * The run function of a rule of one `if` (copied by ClosureCopies: it uses nothing but its
 * parameters; `Run` is RuleRun, passed in for that reason).
 */
function makeRunner(
  self: RuleRunner,
  Run: typeof RuleRun,
  name: string,
  only: CompiledStatement,
  condition: Evaluator<boolean>,
): CompiledRule["run"] {
  return (tx, lookups, trace) => {
    const run = new Run(tx, lookups, trace, name);
    let verdict: MaybePromise<boolean>;
    try {
      verdict = condition(run);
    } catch (error) {
      if (self.failed(run, error)) return run;
      verdict = false;
    }
    if (typeof verdict !== "boolean") return self.later(run, 0, verdict);
    if (verdict) only.whenTrue(run);
    else if (only.whenFalse !== undefined) only.whenFalse(run);
    return run;
  };
}

/** `(env) => f(env, read(env))`, for a subject read synchronously (copied by ClosureCopies). */
function makeApplier<T>(
  f: (env: EvalEnv, value: Value) => MaybePromise<T>,
  read: (env: EvalEnv) => Value,
): Evaluator<T> {
  return (env) => f(env, read(env));
}

/** `X == "literal"` (or `!=`) for a subject read synchronously (copied by ClosureCopies). */
function makeEquals(read: (env: EvalEnv) => Value, literal: string, equal: boolean): Evaluator<boolean> {
  return equal ? (env) => read(env) === literal : (env) => read(env) !== literal;
}

/** `QUOTA over` (copied by ClosureCopies). */
function makeOver(subject: Evaluator<Value>): Evaluator<boolean> {
  return (env) => {
    const quota = subject(env);
    return quota instanceof Promise
      ? quota.then((q: Value) => (q as QuotaValue).over)
      : (quota as QuotaValue).over;
  };
}

const RUNNERS = new ClosureCopies(makeRunner);
const EQUALS = new ClosureCopies(makeEquals);
const OVERS = new ClosureCopies(makeOver);
const PAIRS = new ClosureCopies(makePair);
const APPLIERS = new ClosureCopies(makeApplier);

/** The action a statement's verdict selects; answers true when the rule has decided. */
function branch(run: RuleRun, statement: CompiledStatement, verdict: boolean): boolean {
  if (verdict) return statement.whenTrue(run);
  return statement.whenFalse === undefined ? false : statement.whenFalse(run);
}

/** Chains up to this long are compiled as nested pairs (their depth is the recursion's bound). */
const SHORT_CHAIN = 8;

/** `first and rest` (settles false) or `first or rest` (settles true). */
function pair(first: Evaluator<boolean>, rest: Evaluator<boolean>, settles: boolean): Evaluator<boolean> {
  return PAIRS.next()(first, rest, settles);
}

/** pair()'s factory (copied by ClosureCopies: it uses nothing but its parameters). */
function makePair(first: Evaluator<boolean>, rest: Evaluator<boolean>, settles: boolean): Evaluator<boolean> {
  // One closure per pair held by the rules; the promise path makes its own when it runs.
  return (env) => {
    const v = first(env);
    if (typeof v === "boolean") return v === settles ? settles : rest(env);
    return v.then((w) => (w === settles ? settles : rest(env)));
  };
}

/** An `and`/`or` chain from operand `index` on: a loop, recursing only after a promise. */
function settleFrom(
  operands: readonly Evaluator<boolean>[],
  index: number,
  env: EvalEnv,
  settles: boolean,
): MaybePromise<boolean> {
  for (let i = index; i < operands.length; i++) {
    const value = (operands[i] as Evaluator<boolean>)(env);
    if (isPromise(value))
      return value.then((v) => (v === settles ? settles : settleFrom(operands, i + 1, env, settles)));
    if (value === settles) return settles;
  }
  return !settles;
}

const negate = (v: boolean) => !v;
const describeValue = (v: string | undefined) => (v === undefined ? "absent" : JSON.stringify(v));
// An absent key (or an empty one, never looked up) gives "", as header("X") does, so
// `TABLE[X] != ""` means "has a value" and comparisons never see undefined.
const orEmpty = (v: string | undefined): Value => v ?? "";
const isTrue = (v: Value) => v === true;

function describeFound(found: boolean): string {
  return found ? "found" : "not found";
}

const NO_CODES: readonly string[] = Object.freeze([]);

/** The A records of a listing (a Lookups that gives only `code` gives one). */
function codesOf(answer: DnsblAnswer): readonly string[] {
  return answer.codes ?? (answer.code === undefined ? NO_CODES : [answer.code]);
}

/** A listing's TXT record and A records, for the rule's `{NAME.reason}` and `{NAME.codes}`. */
function rememberListing(env: EvalEnv, source: string, answer: DnsblAnswer): void {
  if (!answer.listed) return;
  if (answer.reason !== undefined) {
    env.reasons ??= new Map();
    env.reasons.set(source, answer.reason);
  }
  env.codes ??= new Map();
  env.codes.set(source, codesOf(answer));
}

function describeDnsbl(answer: DnsblAnswer): string {
  if (answer.off !== undefined) return `not listed (the list is off: ${answer.off})`;
  const codes = codesOf(answer);
  return answer.listed
    ? `listed${codes.length > 0 ? ` (${codes.join(", ")})` : ""}${answer.reason ? `: ${answer.reason}` : ""}`
    : "not listed";
}
