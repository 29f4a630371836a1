/**
 * Types: every expression gets one, or a diagnostic saying why it cannot. Names and calls are
 * resolved by their own parts (names.ts, calls.ts); conditions must be booleans, comparisons
 * compare like with like, tables are looked up with text.
 */
import { didYouMean } from "../../common/diagnostics.js";
import { parseDuration, parseSize } from "../../common/units.js";
import { chainOperands, type Expr } from "../ast.js";
import { isList, isNumeric, isTextual, QUOTA_MEMBERS, type ValueType } from "../words/types.js";
import { arithmeticType } from "./arithmetic.js";
import { Calls } from "./calls.js";
import { Names } from "./names.js";
import type { RuleScope } from "./scope.js";

type Of<K extends Expr["kind"]> = Extract<Expr, { kind: K }>;

const ALLOWED_REGEX_FLAGS = /^[imsu]*$/;

export class Types {
  private readonly names: Names;
  private readonly calls: Calls;

  constructor(private readonly scope: RuleScope) {
    this.names = new Names(scope);
    this.calls = new Calls(scope, (expr) => this.typeOf(expr));
  }

  /** Type of an expression, or undefined after reporting why it has none. */
  typeOf(expr: Expr): ValueType | undefined {
    return this.typeOfNode(expr);
  }

  /**
   * typeOf, kept in the result for the compiler: only for the operands whose type decides how
   * they compile (a map entry for every expression was most of what checking kept per rule).
   */
  private recordedTypeOf(expr: Expr): ValueType | undefined {
    const type = this.typeOfNode(expr);
    if (type !== undefined) this.scope.session.result.types.set(expr, type);
    return type;
  }

  /** Checks a condition: true when it is one (a boolean), false after reporting. */
  condition(expr: Expr): boolean {
    const type = this.typeOf(expr);
    if (type === undefined) return false;
    if (type === "bool") return true;
    this.scope.report(
      expr.span,
      "error",
      `this is a value of type ${type}, not a condition`,
      type === "quota"
        ? "use quota(...) over, or compare a member such as quota(rcpt).percent > 90"
        : "compare it with ==, or test it with 'in'",
    );
    return false;
  }

  private typeOfNode(expr: Expr): ValueType | undefined {
    switch (expr.kind) {
      case "string":
      case "number":
      case "size":
      case "duration":
      case "ip":
      case "bool":
        return expr.kind;
      case "cidr":
        return "table";
      case "list":
        return this.list(expr);
      case "name":
        return this.names.typeOf(expr);
      case "call":
        return this.calls.typeOf(expr);
      case "member":
        return this.member(expr);
      case "index":
        return this.index(expr);
      case "and":
      case "or":
        return this.logic(chainOperands(expr));
      case "not":
        return this.logic([expr.operand]);
      case "compare":
        return this.compare(expr);
      case "arith":
        return this.arith(expr);
      case "matches":
        return this.matches(expr);
      case "in":
        return this.membership(expr);
      case "over":
        return this.over(expr);
    }
  }

  private list(expr: Of<"list">): ValueType | undefined {
    for (const item of expr.items) {
      if (!["string", "number", "ip", "cidr"].includes(item.kind)) {
        this.scope.report(
          item.span,
          "error",
          "a list holds only literals: strings, numbers, IP addresses and CIDRs",
        );
        return undefined;
      }
    }
    return "list";
  }

  /** Every operand is checked (each reports its own mistakes), then the whole is a boolean. */
  private logic(operands: Expr[]): ValueType | undefined {
    let ok = true;
    for (const operand of operands) if (!this.condition(operand)) ok = false;
    return ok ? "bool" : undefined;
  }

  private member(expr: Of<"member">): ValueType | undefined {
    const objectType = this.typeOf(expr.object);
    if (objectType === undefined) return undefined;
    if (objectType !== "quota") {
      const message = `'.${expr.property}' is not defined on a value of type ${objectType}`;
      this.scope.report(expr.propertySpan, "error", message);
      return undefined;
    }
    const member = QUOTA_MEMBERS[expr.property];
    if (member === undefined) {
      const members = Object.keys(QUOTA_MEMBERS);
      this.scope.report(
        expr.propertySpan,
        "error",
        `a quota status has no '${expr.property}'`,
        didYouMean(expr.property, members) ?? `it has ${members.join(", ")}`,
      );
      return undefined;
    }
    return member;
  }

  /** `TABLE[X]`: the table's value for X (text), or a DNSBL's answer for X (its A records). */
  private index(expr: Of<"index">): ValueType | undefined {
    const tableType = this.tableOf(expr.table, "[");
    const keyType = this.typeOf(expr.key);
    if (tableType === undefined || keyType === undefined) return undefined;
    if (!isTextual(keyType)) {
      this.scope.report(
        expr.key.span,
        "error",
        `a table is looked up with text, not with a value of type ${keyType}`,
      );
      return undefined;
    }
    const dnsbl = this.scope.session.result.resolutions.get(expr.table)?.kind === "dnsbl";
    return dnsbl ? "ip list" : "string";
  }

  private matches(expr: Of<"matches">): ValueType | undefined {
    const subject = this.typeOf(expr.subject);
    if (subject === undefined) return undefined;
    if (!isTextual(subject)) {
      this.scope.report(
        expr.subject.span,
        "error",
        `'matches' needs text on its left, not a value of type ${subject}`,
      );
      return undefined;
    }
    if (!ALLOWED_REGEX_FLAGS.test(expr.flags)) {
      const message = `regular expression flags '${expr.flags}': only i, m, s and u are allowed`;
      this.scope.report(expr.patternSpan, "error", message);
      return undefined;
    }
    const compiled = this.scope.session.compileRegex(expr.pattern, expr.flags);
    if (!compiled.ok) {
      const { index, message, hint } = compiled.problem;
      const at =
        index === undefined
          ? expr.patternSpan.start
          : (expr.patternOffsets?.[index] ?? expr.patternSpan.start + 1 + index);
      this.scope.report(at, "error", message, hint);
      return undefined;
    }
    this.scope.session.result.regexes.set(expr, compiled);
    return "bool";
  }

  private membership(expr: Of<"in">): ValueType | undefined {
    const subject = this.recordedTypeOf(expr.subject);
    const table = this.tableOf(expr.table, "in");
    if (subject === undefined || table === undefined) return undefined;
    if (!isTextual(subject)) {
      const message = `'in' looks up text or an IP address, not a value of type ${subject}`;
      this.scope.report(expr.subject.span, "error", message);
      return undefined;
    }
    return "bool";
  }

  private over(expr: Of<"over">): ValueType | undefined {
    const subject = this.typeOf(expr.subject);
    if (subject === undefined) return undefined;
    if (subject !== "quota") {
      this.scope.report(
        expr.span.end - 4,
        "error",
        `'over' applies to a quota status, like quota(rcpt) over`,
      );
      return undefined;
    }
    return "bool";
  }

  /** The table on the right of `in` or before `[`; answers its type, or undefined after reporting. */
  private tableOf(expr: Expr, use: "in" | "["): ValueType | undefined {
    if (expr.kind === "list" || expr.kind === "cidr") {
      if (use === "in") return this.recordedTypeOf(expr);
      this.scope.report(expr.span, "error", "a literal list cannot be indexed; use 'in'");
      return undefined;
    }
    const type = this.recordedTypeOf(expr);
    if (type === undefined) return undefined;
    // A value that is a list (`rcpts`, `spamhaus[client.ip]`) is looked in, not looked up.
    if (use === "in" && isList(type)) return type;
    const resolution = this.scope.session.result.resolutions.get(expr);
    if (type !== "table" || resolution === undefined) {
      const what = use === "in" ? "in" : "[...]";
      const message = `'${what}' needs a table: a source, a source's table, or a list like ["a", "b"]`;
      this.scope.report(expr.span, "error", message);
      return undefined;
    }
    if (resolution.kind === "table" || resolution.kind === "dnsbl") {
      this.scope.addLookup(resolution.source);
      if (resolution.kind === "dnsbl") this.scope.addDnsblLookup(resolution.source);
    }
    return type;
  }

  private arith(expr: Of<"arith">): ValueType | undefined {
    const left = this.typeOf(expr.left);
    const right = this.typeOf(expr.right);
    if (left === undefined || right === undefined) return undefined;
    return arithmeticType(expr, left, right, (at, message, hint) =>
      this.scope.report(at, "error", message, hint),
    );
  }

  private compare(expr: Of<"compare">): ValueType | undefined {
    const left = this.recordedTypeOf(expr.left);
    const right = this.recordedTypeOf(expr.right);
    if (left === undefined || right === undefined) return undefined;
    if (expr.op !== "==" && expr.op !== "!=") {
      if (isNumeric(left) && isNumeric(right)) return "bool";
      const quoted = [expr.left, expr.right].find(
        (e) =>
          e.kind === "string" && (parseSize(e.value) !== undefined || parseDuration(e.value) !== undefined),
      );
      this.scope.report(
        expr.span,
        "error",
        `'${expr.op}' compares numbers, sizes or durations, not ${left} with ${right}`,
        quoted?.kind === "string" ? `write ${quoted.value} without quotes` : undefined,
      );
      return undefined;
    }
    const compatible =
      (isTextual(left) && isTextual(right)) ||
      (isNumeric(left) && isNumeric(right)) ||
      (left === "bool" && right === "bool");
    if (compatible) return "bool";
    const list = isList(left) ? expr.left : isList(right) ? expr.right : undefined;
    this.scope.report(
      expr.span,
      "error",
      `cannot compare a value of type ${left} with one of type ${right}`,
      list === undefined
        ? undefined
        : "look in a list with 'in' (X in LIST), or count its items with count(LIST)",
    );
    return undefined;
  }
}
