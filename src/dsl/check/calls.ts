/**
 * Function calls: the function must exist and be known at the rule's stages; its own check (in
 * its registry entry, words/functions.ts) judges the arguments and binds the implementation.
 */
import { didYouMean } from "../../common/diagnostics.js";
import type { Expr } from "../ast.js";
import type { CallCheck, ValueType } from "../words/types.js";
import type { RuleScope } from "./scope.js";

type CallExpr = Extract<Expr, { kind: "call" }>;

export class Calls {
  constructor(
    private readonly scope: RuleScope,
    /** Checks an argument (the type checker, which owns this). */
    private readonly typeOfArgument: (expr: Expr) => ValueType | undefined,
  ) {}

  /** The type of a call, or undefined after reporting why it has none. */
  typeOf(expr: CallExpr): ValueType | undefined {
    const scope = this.scope;
    const word = scope.registry.fn(expr.callee);
    if (word === undefined) {
      const sourceHint = scope.sources.has(expr.callee)
        ? `'${expr.callee}' is a source, not a function`
        : undefined;
      scope.report(
        expr.calleeSpan,
        "error",
        `unknown function '${expr.callee}'`,
        didYouMean(expr.callee, scope.registry.functionNames()) ?? sourceHint,
      );
      return undefined;
    }
    if (!scope.known(`${expr.callee}()`, expr.calleeSpan, word.from)) return undefined;
    const checked = word.check(this.callCheck(expr));
    if (checked === undefined) return undefined;
    scope.addCall(word.name);
    scope.resolve(expr, { kind: "call", word, checked });
    return checked.type;
  }

  private callCheck(call: CallExpr): CallCheck {
    const scope = this.scope;
    return {
      call,
      stages: scope.stages,
      sources: scope.sources,
      quotaTypes: scope.session.quotaTypes(),
      report: (at, severity, message, hint) => scope.report(at, severity, message, hint),
      typeOf: this.typeOfArgument,
      lookUp: (source) => scope.lookUp(source),
      useState: () => scope.session.result.stateRules.add(scope.rule),
      useMacro: (name) => scope.session.result.macrosUsed.push({ name, stages: scope.stages }),
    };
  }
}
