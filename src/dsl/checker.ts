/**
 * The checker: names, stages, types, reply codes, regexes, templates; plus warnings for rules
 * that can never run and sources nobody uses. It records what each name resolved to, so the
 * compiler never has to guess.
 */

import { type Diagnostic, didYouMean, type Severity, type SourceFile } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import { STAGE_ORDER } from "../common/stages.js";
import { parseDuration, parseSize } from "../common/units.js";
import type { SourceConfig, SourceTypeSpec } from "../config/types.js";
import type { Action, Expr, Rule, Span, Template } from "./ast.js";
import { chainOperands } from "./ast.js";
import { compileRegex } from "./regex.js";
import type { CompiledRegex } from "./regex-offload.js";
import {
  DNSBL_ATTRIBUTES,
  FUNCTIONS,
  isNumeric,
  isTextual,
  QUOTA_MEMBERS,
  QUOTA_PLACEHOLDERS,
  VALUE_NAMES,
  VALUES,
  type ValueType,
} from "./registry.js";
import { parseTemplate, type TemplatePart } from "./template.js";

/** What a name or call turned out to be. */
export type Resolution =
  | { kind: "value"; key: string }
  | { kind: "table"; source: string; table?: string }
  | { kind: "dnsbl"; source: string }
  | { kind: "sourceAttribute"; source: string; attribute: "zone" | "reason" }
  | { kind: "quota"; source: string }
  | { kind: "header"; name: string }
  | { kind: "macro"; name: string };

export interface CheckResult {
  diagnostics: Diagnostic[];
  resolutions: Map<Expr, Resolution>;
  /** Parsed templates of every action text. */
  templates: Map<Template, TemplatePart[]>;
  /** Compiled regular expressions (linear-time, see regex.ts), by node. */
  regexes: Map<Expr, CompiledRegex>;
  /** Sources each rule looks up. */
  lookupsByRule: Map<Rule, Set<string>>;
  /** The type of every expression that checked. */
  types: Map<Expr, ValueType>;
  /** Transaction values used anywhere (in conditions or in texts). */
  valuesUsed: Set<string>;
  /** Macro names asked for, with the stages of the rule asking. */
  macrosUsed: { name: string; stages: Stage[] }[];
}

/** "a, b or c". */
function either(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

/** Valid header field names (RFC 5322: printable ASCII but colon). */
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const ALLOWED_REGEX_FLAGS = /^[imsu]*$/;

export function checkRules(
  rules: readonly Rule[],
  sources: ReadonlyMap<string, SourceConfig>,
  file: SourceFile,
  /** `sourceTypes`: what the configuration was read with, for messages naming types. */
  options: { reportUnused?: boolean; sourceTypes?: ReadonlyMap<string, SourceTypeSpec> } = {},
): CheckResult {
  const result: CheckResult = {
    diagnostics: [],
    resolutions: new Map(),
    templates: new Map(),
    regexes: new Map(),
    lookupsByRule: new Map(),
    types: new Map(),
    valuesUsed: new Set(),
    macrosUsed: [],
  };
  const report = (span: Span | number, severity: Severity, message: string, hint?: string) => {
    result.diagnostics.push(
      file.diagnostic(typeof span === "number" ? span : span.start, severity, message, hint),
    );
  };
  const quotaSources = [...sources.values()].filter((s) => s.kind === "quota").map((s) => s.name);
  const quotaTypes = [...(options.sourceTypes?.values() ?? [])]
    .filter((t) => t.kind === "quota")
    .map((t) => t.type);
  const labelOf = (source: SourceConfig) => options.sourceTypes?.get(source.type)?.label ?? source.type;
  const usedSources = new Set<string>();

  // Two named rules with one name are the loader's to report; here a name meets the default
  // name of an unnamed rule (`rule-N`, after its position), which nobody wrote on purpose.
  const seenNames = new Map<string, Rule>();
  const unnamed = (rule: Rule) => rule.nameSpan.start === rule.nameSpan.end;
  for (const rule of rules) {
    const previous = seenNames.get(rule.name);
    if (previous === undefined) {
      seenNames.set(rule.name, rule);
    } else if (unnamed(previous)) {
      report(
        rule.nameSpan,
        "error",
        `rule name '${rule.name}' is already the name of an unnamed rule`,
        "a rule without a name is called rule-N after its position in 'rules:'; choose another name",
      );
    } else if (unnamed(rule)) {
      report(
        rule.nameSpan,
        "error",
        `this unnamed rule would be called '${rule.name}', a name an earlier rule already has`,
        "give this rule a name, or rename the other one",
      );
    } else {
      report(rule.nameSpan, "error", `duplicate rule name '${rule.name}'`);
    }
  }

  for (const rule of rules) {
    const lookups = new Set<string>();
    result.lookupsByRule.set(rule, lookups);
    const stages = rule.stages.map((s) => s.stage);
    let usesQuota = false;
    const dnsblsLookedUp = new Set<string>();

    /** Type of an expression, or undefined after reporting why it has none. */
    const typeOf = (expr: Expr): ValueType | undefined => {
      const type = typeOfNode(expr);
      if (type !== undefined) result.types.set(expr, type);
      return type;
    };
    const typeOfNode = (expr: Expr): ValueType | undefined => {
      switch (expr.kind) {
        case "string":
          return "string";
        case "number":
          return "number";
        case "size":
          return "size";
        case "duration":
          return "duration";
        case "ip":
          return "ip";
        case "cidr":
          return "table";
        case "bool":
          return "bool";
        case "list": {
          for (const item of expr.items) {
            if (!["string", "number", "ip", "cidr"].includes(item.kind)) {
              report(
                item.span,
                "error",
                "a list holds only literals: strings, numbers, IP addresses and CIDRs",
              );
              return undefined;
            }
          }
          return "list";
        }
        case "name":
          return nameType(expr);
        case "call":
          return callType(expr);
        case "member": {
          const objectType = typeOf(expr.object);
          if (objectType === undefined) return undefined;
          if (objectType !== "quota") {
            report(
              expr.propertySpan,
              "error",
              `'.${expr.property}' is not defined on a value of type ${objectType}`,
            );
            return undefined;
          }
          const member = QUOTA_MEMBERS[expr.property];
          if (member === undefined) {
            report(
              expr.propertySpan,
              "error",
              `a quota status has no '${expr.property}'`,
              didYouMean(expr.property, Object.keys(QUOTA_MEMBERS)) ??
                `it has ${Object.keys(QUOTA_MEMBERS).join(", ")}`,
            );
            return undefined;
          }
          return member;
        }
        case "index": {
          const tableType = tableOf(expr.table, "[");
          const keyType = typeOf(expr.key);
          if (tableType === undefined || keyType === undefined) return undefined;
          if (!isTextual(keyType)) {
            report(
              expr.key.span,
              "error",
              `a table is looked up with text, not with a value of type ${keyType}`,
            );
            return undefined;
          }
          return "string";
        }
        case "and":
        case "or": {
          let ok = true;
          for (const operand of chainOperands(expr)) if (!condition(operand)) ok = false;
          return ok ? "bool" : undefined;
        }
        case "not":
          return condition(expr.operand) ? "bool" : undefined;
        case "compare":
          return compareType(expr);
        case "matches": {
          const subject = typeOf(expr.subject);
          if (subject === undefined) return undefined;
          if (!isTextual(subject)) {
            report(
              expr.subject.span,
              "error",
              `'matches' needs text on its left, not a value of type ${subject}`,
            );
            return undefined;
          }
          if (!ALLOWED_REGEX_FLAGS.test(expr.flags)) {
            report(
              expr.patternSpan,
              "error",
              `regular expression flags '${expr.flags}': only i, m, s and u are allowed`,
            );
            return undefined;
          }
          const compiled = compileRegex(expr.pattern, expr.flags);
          if (!compiled.ok) {
            const { index, message, hint } = compiled.problem;
            const at =
              index === undefined
                ? expr.patternSpan.start
                : (expr.patternOffsets?.[index] ?? expr.patternSpan.start + 1 + index);
            report(at, "error", message, hint);
            return undefined;
          }
          result.regexes.set(expr, compiled);
          return "bool";
        }
        case "in": {
          const subject = typeOf(expr.subject);
          const table = tableOf(expr.table, "in");
          if (subject === undefined || table === undefined) return undefined;
          if (!isTextual(subject)) {
            report(
              expr.subject.span,
              "error",
              `'in' looks up text or an IP address, not a value of type ${subject}`,
            );
            return undefined;
          }
          return "bool";
        }
        case "over": {
          const subject = typeOf(expr.subject);
          if (subject === undefined) return undefined;
          if (subject !== "quota") {
            report(expr.span.end - 4, "error", `'over' applies to a quota status, like quota(rcpt) over`);
            return undefined;
          }
          return "bool";
        }
      }
    };

    const condition = (expr: Expr): boolean => {
      const type = typeOf(expr);
      if (type === undefined) return false;
      if (type !== "bool") {
        report(
          expr.span,
          "error",
          `this is a value of type ${type}, not a condition`,
          type === "quota"
            ? "use quota(...) over, or compare a member such as quota(rcpt).percent > 90"
            : "compare it with ==, or test it with 'in'",
        );
        return false;
      }
      return true;
    };

    const checkStage = (key: string, span: Span, from: Stage, only?: Stage): boolean => {
      for (const stage of stages) {
        if (only !== undefined && stage !== only) {
          report(span, "error", `'${key}' exists only in 'on ${only}' rules, not at '${stage}'`);
          return false;
        }
        if (STAGE_ORDER[stage] < STAGE_ORDER[from]) {
          report(
            span,
            "error",
            `'${key}' is not known yet at stage '${stage}': it is known from '${from}' on`,
          );
          return false;
        }
      }
      return true;
    };

    const nameType = (expr: Extract<Expr, { kind: "name" }>): ValueType | undefined => {
      const full = expr.parts.join(".");
      const value = VALUES[full];
      if (value !== undefined) {
        if (!checkStage(full, expr.span, value.from, value.only)) return undefined;
        result.resolutions.set(expr, { kind: "value", key: full });
        result.valuesUsed.add(full);
        return value.type;
      }
      const [head, ...rest] = expr.parts as [string, ...string[]];
      const source = sources.get(head);
      if (source !== undefined) {
        usedSources.add(head);
        const kind = source.kind;
        if (kind === "dnsbl") {
          if (rest.length === 0) {
            result.resolutions.set(expr, { kind: "dnsbl", source: head });
            return "table";
          }
          const attribute = rest[0] as string;
          if (rest.length === 1 && (DNSBL_ATTRIBUTES as readonly string[]).includes(attribute)) {
            result.resolutions.set(expr, {
              kind: "sourceAttribute",
              source: head,
              attribute: attribute as "zone" | "reason",
            });
            return "string";
          }
          report(
            expr.partSpans[1] as Span,
            "error",
            `${labelOf(source)} source '${head}' has no '${rest.join(".")}'`,
            didYouMean(attribute, DNSBL_ATTRIBUTES),
          );
          return undefined;
        }
        // A table source is one table (NAME), or has named tables (NAME.table).
        if (kind === "table" && source.tables === undefined) {
          if (rest.length > 0) {
            report(
              expr.partSpans[1] as Span,
              "error",
              `${labelOf(source)} source '${head}' has no members: use '${head}' as a table`,
            );
            return undefined;
          }
          result.resolutions.set(expr, { kind: "table", source: head });
          return "table";
        }
        if (kind === "table") {
          const tables = [...(source.tables?.keys() ?? [])];
          if (rest.length !== 1) {
            report(
              rest.length === 0 ? expr.span : (expr.partSpans[2] as Span),
              "error",
              `${labelOf(source)} source '${head}' is used through its tables: ${tables.map((t) => `${head}.${t}`).join(", ")}`,
            );
            return undefined;
          }
          const table = rest[0] as string;
          if (!tables.includes(table)) {
            report(
              expr.partSpans[1] as Span,
              "error",
              `unknown table '${table}' in ${labelOf(source)} source '${head}'`,
              didYouMean(table, tables) ?? `its tables are ${tables.join(", ")}`,
            );
            return undefined;
          }
          result.resolutions.set(expr, { kind: "table", source: head, table });
          return "table";
        }
        if (kind === "quota") {
          report(expr.span, "error", `'${head}' is a quota source: use quota(ADDRESS, ${head})`);
          return undefined;
        }
        const unknown: never = kind;
        report(
          expr.span,
          "error",
          `source '${head}' is of kind '${String(unknown)}', which rules cannot use`,
        );
        return undefined;
      }
      // `from.domian`, `client.addr`, `helo.name`: a value's part, never a source.
      const members = VALUE_NAMES.filter((n) => n.startsWith(`${head}.`));
      if (members.length > 0 || VALUE_NAMES.includes(head)) {
        report(
          expr.span,
          "error",
          `unknown name '${full}'`,
          didYouMean(full, VALUE_NAMES) ??
            (members.length > 0 ? `'${head}' has ${members.join(", ")}` : `'${head}' has no parts`),
        );
        return undefined;
      }
      if (head === "quota") {
        report(expr.span, "error", "'quota' is a function: quota(ADDRESS[, SOURCE])");
        return undefined;
      }
      const candidates = [...VALUE_NAMES, ...sources.keys()];
      for (const s of sources.values())
        for (const t of s.tables?.keys() ?? []) candidates.push(`${s.name}.${t}`);
      report(
        expr.span,
        "error",
        sources.size > 0 && rest.length > 0 ? `unknown source '${head}'` : `unknown name '${full}'`,
        rest.length > 0 ? didYouMean(head, sources.keys()) : didYouMean(full, candidates),
      );
      return undefined;
    };

    const stringArgument = (expr: Extract<Expr, { kind: "call" }>, fn: string): string | undefined => {
      const arg = expr.args[0];
      if (expr.args.length !== 1 || arg?.kind !== "string") {
        report(
          expr.span,
          "error",
          `${fn}() takes one quoted name: ${fn === "header" ? 'header("Subject")' : 'macro("{auth_type}")'}`,
        );
        return undefined;
      }
      return arg.value;
    };

    const callType = (expr: Extract<Expr, { kind: "call" }>): ValueType | undefined => {
      const info = FUNCTIONS[expr.callee];
      if (info === undefined) {
        const sourceHint = sources.has(expr.callee)
          ? `'${expr.callee}' is a source, not a function`
          : undefined;
        report(
          expr.calleeSpan,
          "error",
          `unknown function '${expr.callee}'`,
          didYouMean(expr.callee, Object.keys(FUNCTIONS)) ?? sourceHint,
        );
        return undefined;
      }
      if (!checkStage(`${expr.callee}()`, expr.calleeSpan, info.from)) return undefined;
      if (expr.callee === "header") {
        const name = stringArgument(expr, "header");
        if (name === undefined) return undefined;
        result.resolutions.set(expr, { kind: "header", name });
        return "string";
      }
      if (expr.callee === "macro") {
        const name = stringArgument(expr, "macro");
        if (name === undefined) return undefined;
        result.resolutions.set(expr, { kind: "macro", name });
        result.macrosUsed.push({ name, stages });
        return "string";
      }
      // quota(ADDRESS[, SOURCE])
      const [address, sourceArg, ...extra] = expr.args;
      if (address === undefined || extra.length > 0) {
        report(
          expr.span,
          "error",
          "quota() takes an address and optionally a source: quota(rcpt) or quota(rcpt, mailboxes)",
        );
        return undefined;
      }
      const addressType = typeOf(address);
      if (addressType === undefined) return undefined;
      if (!isTextual(addressType)) {
        report(address.span, "error", `quota() needs an address, not a value of type ${addressType}`);
        return undefined;
      }
      let sourceName: string;
      if (sourceArg === undefined) {
        if (quotaSources.length !== 1) {
          report(
            expr.calleeSpan,
            "error",
            quotaSources.length === 0
              ? `quota() needs a quota source (${either(quotaTypes)}) and none is configured`
              : `quota() must name its source: there are several quota sources: ${quotaSources.join(", ")}`,
            quotaSources.length > 0 ? `e.g. quota(rcpt, ${quotaSources[0]})` : undefined,
          );
          return undefined;
        }
        sourceName = quotaSources[0] as string;
      } else {
        if (sourceArg.kind !== "name" || sourceArg.parts.length !== 1) {
          report(sourceArg.span, "error", "quota()'s second argument is the name of a quota source");
          return undefined;
        }
        sourceName = sourceArg.parts[0] as string;
        const source = sources.get(sourceName);
        if (source === undefined) {
          report(
            sourceArg.span,
            "error",
            `unknown source '${sourceName}'`,
            didYouMean(sourceName, sources.keys()),
          );
          return undefined;
        }
        if (source.kind !== "quota") {
          report(
            sourceArg.span,
            "error",
            `source '${sourceName}' is of type ${source.type}, which has no quota`,
            quotaSources.length > 0 ? `quota sources: ${quotaSources.join(", ")}` : undefined,
          );
          return undefined;
        }
      }
      usedSources.add(sourceName);
      lookups.add(sourceName);
      usesQuota = true;
      result.resolutions.set(expr, { kind: "quota", source: sourceName });
      return "quota";
    };

    /** The table on the right of `in` or before `[`; answers its type, or undefined after reporting. */
    const tableOf = (expr: Expr, use: "in" | "["): ValueType | undefined => {
      if (expr.kind === "list" || expr.kind === "cidr") {
        if (use === "[") {
          report(expr.span, "error", "a literal list cannot be indexed; use 'in'");
          return undefined;
        }
        return typeOf(expr);
      }
      const type = typeOf(expr);
      if (type === undefined) return undefined;
      const resolution = result.resolutions.get(expr);
      if (type !== "table" || resolution === undefined) {
        report(
          expr.span,
          "error",
          `'${use === "in" ? "in" : "[...]"}' needs a table: a source, a source's table, or a list like ["a", "b"]`,
        );
        return undefined;
      }
      if (use === "[" && resolution.kind === "dnsbl") {
        // A DNSBL answers "listed or not" (and a TXT reason), not a value per key.
        report(
          expr.span,
          "error",
          `DNSBL source '${resolution.source}' has no values to look up with [...]`,
          `test it with 'X in ${resolution.source}'; {${resolution.source}.reason} gives its TXT record`,
        );
        return undefined;
      }
      if (resolution.kind === "table" || resolution.kind === "dnsbl") {
        lookups.add(resolution.source);
        if (resolution.kind === "dnsbl") dnsblsLookedUp.add(resolution.source);
      }
      return type;
    };

    const compareType = (expr: Extract<Expr, { kind: "compare" }>): ValueType | undefined => {
      const left = typeOf(expr.left);
      const right = typeOf(expr.right);
      if (left === undefined || right === undefined) return undefined;
      const ordering = expr.op !== "==" && expr.op !== "!=";
      if (ordering) {
        if (!isNumeric(left) || !isNumeric(right)) {
          const quoted = [expr.left, expr.right].find(
            (e) =>
              e.kind === "string" &&
              (parseSize(e.value) !== undefined || parseDuration(e.value) !== undefined),
          );
          report(
            expr.span,
            "error",
            `'${expr.op}' compares numbers, sizes or durations, not ${left} with ${right}`,
            quoted?.kind === "string" ? `write ${quoted.value} without quotes` : undefined,
          );
          return undefined;
        }
        return "bool";
      }
      const compatible =
        (isTextual(left) && isTextual(right)) ||
        (isNumeric(left) && isNumeric(right)) ||
        (left === "bool" && right === "bool");
      if (!compatible) {
        report(expr.span, "error", `cannot compare a value of type ${left} with one of type ${right}`);
        return undefined;
      }
      return "bool";
    };

    const checkTemplate = (template: Template, what: string) => {
      // File offset of a character of the text (escapes make it differ from span.start + 1 + i).
      const offsetOf = (index: number) => template.offsets?.[index] ?? template.span.start + 1 + index;
      const parsed = parseTemplate(template.text);
      if (!Array.isArray(parsed)) {
        report(offsetOf(parsed.offset), "error", `${what}: ${parsed.message}`, parsed.hint);
        return;
      }
      result.templates.set(template, parsed);
      for (const part of parsed) {
        if (part.kind !== "placeholder") continue;
        const name = part.name;
        const at = offsetOf(part.offset);
        const value = VALUES[name];
        if (value !== undefined) {
          checkStage(`{${name}}`, { start: at, end: at + name.length + 2 }, value.from, value.only);
          result.valuesUsed.add(name);
          continue;
        }
        if (QUOTA_PLACEHOLDERS.includes(name)) {
          if (!usesQuota) report(at, "error", `{${name}} needs a quota(...) lookup in the same rule`);
          continue;
        }
        const [head, attribute] = name.split(".");
        const source = head === undefined ? undefined : sources.get(head);
        if (source?.type === "dnsbl" && (attribute === "zone" || attribute === "reason")) {
          usedSources.add(source.name);
          if (attribute === "reason" && !dnsblsLookedUp.has(source.name)) {
            report(at, "warning", `{${name}} is empty unless this rule looks '${source.name}' up`);
          }
          continue;
        }
        const candidates = [...VALUE_NAMES, ...QUOTA_PLACEHOLDERS];
        for (const s of sources.values())
          if (s.type === "dnsbl") candidates.push(`${s.name}.zone`, `${s.name}.reason`);
        report(at, "error", `unknown placeholder '{${name}}'`, didYouMean(name, candidates));
      }
    };

    const checkAction = (action: Action) => {
      switch (action.verb) {
        case "reject":
        case "tempfail": {
          const klass = action.verb === "reject" ? 5 : 4;
          const code = action.code?.value;
          if (action.code !== undefined && code !== undefined) {
            if (!Number.isInteger(code) || code < 100 || code > 999) {
              // Not an SMTP reply code at all: its class means nothing, so say only that.
              report(
                action.code.span,
                "error",
                `reply code ${code} is not a three-digit SMTP code`,
                `e.g. ${action.verb} ${action.verb === "reject" ? "550 5.7.1" : "451 4.7.1"}`,
              );
            } else if (Math.floor(code / 100) !== klass) {
              // The code is the mistake to fix first; its enhanced code follows it.
              report(
                action.code.span,
                "error",
                `${action.verb} needs a ${klass}xx reply code, not ${code}`,
                action.verb === "reject"
                  ? "reject 550 5.7.1, or tempfail 4xx for a temporary failure"
                  : "tempfail 451 4.7.1, or reject 5xx for a permanent one",
              );
            } else if (action.enhancedCode !== undefined && Number(action.enhancedCode.value[0]) !== klass) {
              const enhanced = action.enhancedCode;
              report(
                enhanced.span,
                "error",
                `enhanced status code ${enhanced.value} does not agree with reply code ${code}`,
                `use ${klass}${enhanced.value.slice(1)}`,
              );
            }
          }
          if (action.text) checkTemplate(action.text, "reply text");
          break;
        }
        case "quarantine":
          checkTemplate(action.reason, "quarantine reason");
          break;
        case "log":
          checkTemplate(action.text, "log text");
          break;
        case "add header":
          if (!HEADER_NAME.test(action.name.text) || action.name.text.includes("{")) {
            report(action.name.span, "error", `'${action.name.text}' is not a valid header name`);
          }
          checkTemplate(action.value, "header value");
          break;
        case "discard":
          for (const stage of stages) {
            if (stage === "connect" || stage === "helo") {
              report(
                action.span,
                "warning",
                `'discard' at '${stage}' is ignored by the MTA: it discards messages, not connections`,
              );
            }
          }
          break;
        default:
          break;
      }
    };

    let decidedBy: Span | undefined;
    for (const statement of rule.statements) {
      if (decidedBy !== undefined) {
        report(
          statement.span,
          "warning",
          "this statement never runs: the statement before it always decides",
        );
        decidedBy = undefined;
      }
      if (statement.kind === "if") {
        condition(statement.condition);
        checkAction(statement.then);
        if (statement.else) checkAction(statement.else);
        if (statement.else !== undefined && decides(statement.then) && decides(statement.else))
          decidedBy = statement.span;
      } else {
        checkAction(statement.action);
        if (decides(statement.action)) decidedBy = statement.span;
      }
    }
  }

  // Rules that can never run: an earlier, enforced rule decides unconditionally for all their stages.
  const decidedStages = new Map<Stage, Rule>();
  for (const rule of rules) {
    const blockers = rule.stages.map((s) => decidedStages.get(s.stage));
    if (blockers.length > 0 && blockers.every((b) => b !== undefined)) {
      const blocker = blockers[0] as Rule;
      report(
        rule.span,
        "warning",
        `rule '${rule.name}' can never run: rule '${blocker.name}' always decides first`,
      );
      continue;
    }
    const decidesAlways =
      !rule.shadow &&
      rule.statements.some(
        (s) =>
          (s.kind === "action" && decides(s.action)) ||
          (s.kind === "if" && s.else !== undefined && decides(s.then) && decides(s.else)),
      ) &&
      (result.lookupsByRule.get(rule)?.size ?? 0) === 0;
    if (decidesAlways)
      for (const { stage } of rule.stages) if (!decidedStages.has(stage)) decidedStages.set(stage, rule);
  }

  for (const source of sources.values()) {
    if (options.reportUnused !== false && !usedSources.has(source.name)) {
      report(source.offset, "warning", `source '${source.name}' is not used by any rule`);
    }
  }
  return result;
}

/** Whether an action ends the stage (anything but continue, add header, log). */
export function decides(action: Action): boolean {
  return action.verb !== "continue" && action.verb !== "add header" && action.verb !== "log";
}
