/**
 * Types of arithmetic (`+ - *`): units must agree, as a postmaster would write them on paper.
 * A size plus a size is a size, a number times a size is a size; a size plus a bare number has no
 * meaning (bytes? megabytes?), so it is an error that says how to write the unit. Durations work
 * as sizes do. Texts, booleans, IPs, lists and quota statuses do no arithmetic.
 */
import { parseDuration, parseSize } from "../../common/units.js";
import type { ArithmeticOp, Expr, Span } from "../ast.js";
import type { ValueType } from "../words/types.js";

type ArithExpr = Extract<Expr, { kind: "arith" }>;
type Report = (at: Span | number, message: string, hint?: string) => void;

/** The quantities arithmetic works on; `any` (a word whose type is not fixed) goes with the other side. */
type Quantity = "number" | "size" | "duration" | "any";
const QUANTITIES: readonly ValueType[] = ["number", "size", "duration", "any"];

function article(type: ValueType): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** "cannot add a number to a size", "cannot subtract a size from a number", "cannot multiply two sizes". */
function mismatch(op: ArithmeticOp, left: Quantity, right: Quantity): string {
  if (op === "*")
    return left === right
      ? `cannot multiply two ${left}s`
      : `cannot multiply ${article(left)} by ${article(right)}`;
  // Addition commutes: a bare number is always the one added ("cannot add a number to a size").
  if (op === "+" && left === "number") return `cannot add a number to ${article(right)}`;
  if (op === "+") return `cannot add ${article(right)} to ${article(left)}`;
  return `cannot subtract ${article(right)} from ${article(left)}`;
}

/** How to write a bare number as the unit the other side has. */
function unitHint(unit: Quantity, number: Expr): string | undefined {
  const example = number.kind === "number" ? String(number.value) : undefined;
  if (unit === "size")
    return example === undefined ? "give the number a unit: N * 1B" : `write ${example}MB or ${example}B`;
  if (unit === "duration")
    return example === undefined ? "give the number a unit: N * 1s" : `write ${example}s or ${example}ms`;
  return undefined;
}

/** Why a text (or another non-quantity) cannot be an operand. */
function notQuantity(expr: Expr, type: ValueType, report: Report): undefined {
  const quoted =
    expr.kind === "string" && (parseSize(expr.value) !== undefined || parseDuration(expr.value) !== undefined)
      ? `write ${expr.value} without quotes`
      : type === "quota"
        ? "use a member such as quota(rcpt).usage"
        : undefined;
  report(
    expr.span,
    `arithmetic works on numbers, sizes and durations, not on a value of type ${type}`,
    quoted,
  );
  return undefined;
}

/** The type of `left op right` given its operands' types, or undefined after reporting why it has none. */
export function arithmeticType(
  expr: ArithExpr,
  leftType: ValueType,
  rightType: ValueType,
  report: Report,
): ValueType | undefined {
  if (!QUANTITIES.includes(leftType)) return notQuantity(expr.left, leftType, report);
  if (!QUANTITIES.includes(rightType)) return notQuantity(expr.right, rightType, report);
  const left = leftType as Quantity;
  const right = rightType as Quantity;
  if (left === "any") return right;
  if (right === "any") return left;
  if (expr.op === "*") {
    if (left === "number") return right;
    if (right === "number") return left;
    report(expr.opSpan, mismatch("*", left, right), "multiply by a number: 2 * size");
    return undefined;
  }
  if (left === right) return left;
  // A unit on one side only: point at the bare number and say how to give it the unit.
  const bare = left === "number" ? expr.left : right === "number" ? expr.right : undefined;
  const unit = left === "number" ? right : left;
  report(
    bare?.span ?? expr.opSpan,
    mismatch(expr.op, left, right),
    bare === undefined ? undefined : unitHint(unit, bare),
  );
  return undefined;
}
