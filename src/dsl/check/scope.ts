/**
 * What the checker passes between its parts: the result it builds (diagnostics as values, and
 * what each name resolved to, so the compiler never has to guess), the session shared by every
 * rule, and the scope of one rule (its stages, lookups and calls).
 */

import type { Diagnostic, Severity, SourceFile } from "../../common/diagnostics.js";
import type { Stage } from "../../common/stages.js";
import { STAGE_ORDER } from "../../common/stages.js";
import type { SourceConfig, SourceTypeSpec } from "../../config/types.js";
import type { Expr, Rule, Span, Template } from "../ast.js";
import { compileRegex, type RegexCompilation } from "../regex.js";
import type { CompiledRegex } from "../regex-offload.js";
import type { Registry } from "../registry.js";
import type { DnsblAttribute } from "../source-kinds.js";
import type { TemplatePart } from "../template.js";
import type { CheckedCall, FunctionWord, ValueType, ValueWord } from "../words/types.js";

/** What a name or call turned out to be. */
export type Resolution =
  | { kind: "value"; word: ValueWord }
  | { kind: "table"; source: string; table?: string }
  | { kind: "dnsbl"; source: string }
  | { kind: "sourceAttribute"; source: string; attribute: DnsblAttribute }
  | { kind: "call"; word: FunctionWord; checked: CheckedCall };

/**
 * What checking found. The maps by node (and by rule) hold the rule checked last only: the
 * compiler reads them right after each rule is checked (compile.ts), so the syntax trees of the
 * rules before are not kept alive by them.
 */
export interface CheckResult {
  diagnostics: Diagnostic[];
  /** The words the rules were checked against (the compiler reads the same). */
  registry: Registry;
  resolutions: Map<Expr, Resolution>;
  /** Parsed templates of every action text. */
  templates: Map<Template, TemplatePart[]>;
  /** Compiled regular expressions (linear-time, see regex.ts), by node. */
  regexes: Map<Expr, CompiledRegex>;
  /** Sources each rule looks up. */
  lookupsByRule: Map<Rule, Set<string>>;
  /** Rules that call rate() or greylist(). */
  stateRules: Set<Rule>;
  /** The type of each operand of a comparison and of `in` (what the compiler reads) that checked. */
  types: Map<Expr, ValueType>;
  /** Transaction values used anywhere (in conditions or in texts). */
  valuesUsed: Set<string>;
  /** Macro names asked for, with the stages of the rule asking. */
  macrosUsed: { name: string; stages: Stage[] }[];
}

/** One run of the checker over a set of rules: the result, and the sources the rules use. */
export class CheckSession {
  readonly result: CheckResult;
  readonly usedSources = new Set<string>();
  /**
   * Compilations by flags and pattern: rules repeat the same expression (a spam phrase in many
   * rules), and compiling one costs about 25 KB of garbage and 20 µs. Kept for one check only,
   * so a reload never holds the programs of a previous configuration.
   */
  private readonly regexCache = new Map<string, RegexCompilation>();

  constructor(
    private readonly file: SourceFile,
    readonly sources: ReadonlyMap<string, SourceConfig>,
    readonly registry: Registry,
    readonly sourceTypes: ReadonlyMap<string, SourceTypeSpec> = new Map(),
  ) {
    this.result = {
      diagnostics: [],
      registry,
      resolutions: new Map(),
      templates: new Map(),
      regexes: new Map(),
      lookupsByRule: new Map(),
      stateRules: new Set(),
      types: new Map(),
      valuesUsed: new Set(),
      macrosUsed: [],
    };
  }

  /** Forgets what the previous rule's check recorded by node and by rule (see CheckResult). */
  startRule(): void {
    const r = this.result;
    if (r.resolutions.size > 0) r.resolutions.clear();
    if (r.templates.size > 0) r.templates.clear();
    if (r.regexes.size > 0) r.regexes.clear();
    if (r.lookupsByRule.size > 0) r.lookupsByRule.clear();
    if (r.stateRules.size > 0) r.stateRules.clear();
    if (r.types.size > 0) r.types.clear();
  }

  /** compileRegex, once per distinct pattern and flags in this check. */
  compileRegex(pattern: string, flags: string): RegexCompilation {
    const key = `${flags}/${pattern}`;
    let compiled = this.regexCache.get(key);
    if (compiled === undefined) {
      compiled = compileRegex(pattern, flags);
      this.regexCache.set(key, compiled);
    }
    return compiled;
  }

  /** How messages name a source's type ("LDAP source 'people'"). */
  labelOf(source: SourceConfig): string {
    return this.sourceTypes.get(source.type)?.label ?? source.type;
  }

  /** The types whose sources answer quota(), for "none is configured". */
  quotaTypes(): string[] {
    return [...this.sourceTypes.values()].filter((t) => t.kind === "quota").map((t) => t.type);
  }

  report(at: Span | number, severity: Severity, message: string, hint?: string): void {
    this.result.diagnostics.push(
      this.file.diagnostic(typeof at === "number" ? at : at.start, severity, message, hint),
    );
  }
}

/** One rule being checked: the stages it runs at, what it looks up and calls. */
export class RuleScope {
  readonly stages: Stage[];
  // Made at their first entry: most rules look nothing up and call nothing, and three empty
  // sets per rule were a good part of what checking 10,000 rules allocated.
  private lookups: Set<string> | undefined;
  /** Functions the rule calls (their placeholders, `{quota.usage}`, become usable). */
  private calls: Set<string> | undefined;
  private dnsbls: Set<string> | undefined;

  constructor(
    readonly session: CheckSession,
    readonly rule: Rule,
  ) {
    this.stages = rule.stages.map((s) => s.stage);
  }

  /**
   * Records that the rule looks `source` up. A rule gets its entry in lookupsByRule at its first
   * lookup: most rules look nothing up, and an empty set each was kept until the rules compiled.
   */
  addLookup(source: string): void {
    if (this.lookups === undefined) {
      this.lookups = new Set();
      this.session.result.lookupsByRule.set(this.rule, this.lookups);
    }
    this.lookups.add(source);
  }

  addCall(word: string): void {
    this.calls ??= new Set();
    this.calls.add(word);
  }

  /** Whether the rule calls the function `word` (so far in the check's walk). */
  hasCall(word: string): boolean {
    return this.calls?.has(word) ?? false;
  }

  addDnsblLookup(source: string): void {
    this.dnsbls ??= new Set();
    this.dnsbls.add(source);
  }

  /** Whether the rule looks the DNSBL `source` up (so far in the check's walk). */
  looksUpDnsbl(source: string): boolean {
    return this.dnsbls?.has(source) ?? false;
  }

  get sources(): ReadonlyMap<string, SourceConfig> {
    return this.session.sources;
  }

  get registry(): Registry {
    return this.session.registry;
  }

  report(at: Span | number, severity: Severity, message: string, hint?: string): void {
    this.session.report(at, severity, message, hint);
  }

  resolve(expr: Expr, resolution: Resolution): void {
    this.session.result.resolutions.set(expr, resolution);
  }

  /** The rule names a source (in a lookup, or in a text). */
  use(source: string): void {
    this.session.usedSources.add(source);
  }

  lookUp(source: string): void {
    this.use(source);
    this.addLookup(source);
  }

  /**
   * Whether `key` (a value, a call, a placeholder) is known at every stage of the rule: it is
   * from `from` on, and only at `only` when set. Reports the first stage where it is not.
   */
  known(key: string, span: Span, from: Stage, only?: Stage): boolean {
    for (const stage of this.stages) {
      if (only !== undefined && stage !== only) {
        this.report(span, "error", `'${key}' exists only in 'on ${only}' rules, not at '${stage}'`);
        return false;
      }
      if (STAGE_ORDER[stage] < STAGE_ORDER[from]) {
        this.report(
          span,
          "error",
          `'${key}' is not known yet at stage '${stage}': it is known from '${from}' on`,
        );
        return false;
      }
    }
    return true;
  }
}
