/**
 * From the entries of `rules:` (text or structured form) to rule syntax trees.
 */

import { didYouMean } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import { STAGES } from "../common/stages.js";
import type { RuleSource } from "../config/types.js";
import { exactly, type Rule, type Statement } from "./ast.js";
import { type ParseContext, parseAction, parseCondition, parseRuleText, parseStageWords } from "./parser.js";

function stagesOf(
  words: { word: string; span: { start: number; end: number } }[],
  ctx: ParseContext,
): Rule["stages"] | undefined {
  const stages: Rule["stages"] = [];
  let ok = true;
  for (const { word, span } of words) {
    if (!(STAGES as readonly string[]).includes(word)) {
      ctx.diagnostics.push(
        ctx.file.diagnostic(
          span.start,
          "error",
          `unknown stage '${word}'`,
          didYouMean(word, STAGES) ?? `stages are ${STAGES.join(", ")}`,
        ),
      );
      ok = false;
      continue;
    }
    if (stages.some((s) => s.stage === word)) {
      ctx.diagnostics.push(ctx.file.diagnostic(span.start, "warning", `stage '${word}' is listed twice`));
      continue;
    }
    stages.push({ stage: word as Stage, span });
  }
  return ok ? exactly(stages) : undefined;
}

/** Parses every rule; a rule with errors is left out (its diagnostics explain why). */
export function parseRules(sources: readonly RuleSource[], ctx: ParseContext): Rule[] {
  const rules: Rule[] = [];
  for (const source of sources) {
    const rule = parseRule(source, ctx);
    if (rule !== undefined) rules.push(rule);
  }
  return rules;
}

/** Parses one entry of `rules:`; undefined when it has errors (its diagnostics explain why). */
export function parseRule(source: RuleSource, ctx: ParseContext): Rule | undefined {
  const defaultName = `rule-${source.index + 1}`;
  if (source.form === "text") {
    const parsed = parseRuleText(source.body, ctx);
    if (parsed === undefined) return undefined;
    const stages = stagesOf(parsed.stages, ctx);
    if (stages === undefined) return undefined;
    return {
      name: defaultName,
      nameSpan: { start: source.offset, end: source.offset },
      stages,
      statements: parsed.statements,
      shadow: parsed.shadow,
      span: parsed.span,
    };
  }
  return parseStructuredRule(source, defaultName, ctx);
}

function parseStructuredRule(
  source: Extract<RuleSource, { form: "structured" }>,
  defaultName: string,
  ctx: ParseContext,
): Rule | undefined {
  const words: { word: string; span: { start: number; end: number } }[] = [];
  let failed = false;
  for (const located of source.on) {
    const parsed = parseStageWords(located, ctx);
    if (parsed === undefined) failed = true;
    else words.push(...parsed);
  }
  const stages = failed ? undefined : stagesOf(words, ctx);
  const then = parseAction(source.then, ctx);
  const otherwise = source.else === undefined ? undefined : parseAction(source.else, ctx);
  const condition = source.if === undefined ? undefined : parseCondition(source.if, ctx);
  if (
    stages === undefined ||
    then === undefined ||
    (source.else !== undefined && otherwise === undefined) ||
    (source.if !== undefined && condition === undefined)
  ) {
    return undefined;
  }
  if (source.if === undefined && otherwise !== undefined && source.else !== undefined) {
    ctx.diagnostics.push(
      ctx.file.diagnostic(source.else.offsetAt(0), "error", "'else' needs an 'if' in the same rule"),
    );
    return undefined;
  }
  const span = { start: source.offset, end: (otherwise ?? then).span.end };
  let statement: Statement;
  if (condition === undefined) statement = { kind: "action", action: then, span: then.span };
  else if (otherwise === undefined) statement = { kind: "if", condition, then, span };
  else statement = { kind: "if", condition, then, else: otherwise, span };
  const name = source.name?.text.trim();
  return {
    name: name || defaultName,
    nameSpan: source.name
      ? { start: source.name.offsetAt(0), end: source.name.offsetAt(source.name.text.length) }
      : { start: source.offset, end: source.offset },
    stages,
    statements: [statement],
    shadow: source.mode === "shadow",
    span,
  };
}
