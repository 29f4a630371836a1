/**
 * Prints a rule back as text form. Used by tests (parse → print → parse gives the same tree)
 * and handy for showing normalised rules.
 */
import type { Action, Expr, Rule, Statement } from "./ast.js";

/** Binding strength: higher binds tighter. */
function precedence(expr: Expr): number {
  switch (expr.kind) {
    case "or":
      return 1;
    case "and":
      return 2;
    case "not":
      return 3;
    case "compare":
    case "matches":
    case "in":
    case "over":
      return 4;
    case "arith":
      return expr.op === "*" ? 6 : 5;
    default:
      return 7;
  }
}

export function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

function wrap(expr: Expr, minimum: number): string {
  const text = printExpr(expr);
  return precedence(expr) < minimum ? `(${text})` : text;
}

export function printExpr(expr: Expr): string {
  switch (expr.kind) {
    case "string":
      return quote(expr.value);
    case "number":
      return String(expr.value);
    case "size":
    case "duration":
    case "ip":
    case "cidr":
      return expr.text;
    case "bool":
      return String(expr.value);
    case "list":
      return `[${expr.items.map(printExpr).join(", ")}]`;
    case "name":
      return expr.parts.join(".");
    case "call":
      return `${expr.callee}(${expr.args.map(printExpr).join(", ")})`;
    case "member":
      return `${wrap(expr.object, 7)}.${expr.property}`;
    case "index":
      return `${wrap(expr.table, 7)}[${printExpr(expr.key)}]`;
    case "arith": {
      // Left-associative: the right operand of the same strength needs parentheses.
      const strength = precedence(expr);
      return `${wrap(expr.left, strength)} ${expr.op} ${wrap(expr.right, strength + 1)}`;
    }
    case "or":
      return `${wrap(expr.left, 1)} or ${wrap(expr.right, 2)}`;
    case "and":
      return `${wrap(expr.left, 2)} and ${wrap(expr.right, 3)}`;
    case "not":
      return `not ${wrap(expr.operand, 3)}`;
    case "compare":
      return `${wrap(expr.left, 5)} ${expr.op} ${wrap(expr.right, 5)}`;
    case "matches":
      return `${wrap(expr.subject, 5)} matches /${expr.pattern}/${expr.flags}`;
    case "in":
      return `${wrap(expr.subject, 5)} ${expr.negated ? "not in" : "in"} ${wrap(expr.table, 7)}`;
    case "over":
      return `${wrap(expr.subject, 5)} over`;
  }
}

export function printAction(action: Action): string {
  switch (action.verb) {
    case "continue":
    case "accept":
    case "discard":
      return action.verb;
    case "reject":
    case "tempfail":
      return [
        action.verb,
        action.code?.value,
        action.enhancedCode?.value,
        action.text && quote(action.text.text),
      ]
        .filter((p) => p !== undefined)
        .join(" ");
    case "quarantine":
      return `quarantine ${quote(action.reason.text)}`;
    case "add header":
      return `add header ${quote(action.name.text)} ${quote(action.value.text)}`;
    case "log":
      return `log ${quote(action.text.text)}`;
  }
}

export function printStatement(statement: Statement): string {
  if (statement.kind === "action") return printAction(statement.action);
  const otherwise = statement.else ? ` else ${printAction(statement.else)}` : "";
  return `if ${printExpr(statement.condition)} then ${printAction(statement.then)}${otherwise}`;
}

export function printRule(rule: Rule): string {
  const stages = rule.stages.map((s) => s.stage).join(", ");
  const body = rule.statements.map(printStatement).join("\n  ");
  return `${rule.shadow ? "shadow " : ""}on ${stages}:\n  ${body}`;
}
