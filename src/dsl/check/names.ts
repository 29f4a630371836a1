/**
 * Names in conditions: a value of the transaction (from the registry), a source or a source's
 * table or attribute, or a mistake, reported with the nearest name that exists.
 */
import { didYouMean } from "../../common/diagnostics.js";
import type { SourceConfig } from "../../config/types.js";
import type { Expr, Span } from "../ast.js";
import { DNSBL_ATTRIBUTES, type DnsblAttribute } from "../source-kinds.js";
import type { ValueType, ValueWord } from "../words/types.js";
import type { RuleScope } from "./scope.js";

type NameExpr = Extract<Expr, { kind: "name" }>;

export class Names {
  constructor(private readonly scope: RuleScope) {}

  /** The type of a name, or undefined after reporting why it has none. */
  typeOf(expr: NameExpr): ValueType | undefined {
    const full = expr.parts.join(".");
    const value = this.scope.registry.value(full);
    if (value !== undefined) return this.value(expr, value);
    const [head, ...rest] = expr.parts as [string, ...string[]];
    const source = this.scope.sources.get(head);
    if (source !== undefined) return this.source(expr, source, rest);
    this.unknown(expr, full, head, rest);
    return undefined;
  }

  private value(expr: NameExpr, word: ValueWord): ValueType | undefined {
    if (!this.scope.known(word.name, expr.span, word.from, word.only)) return undefined;
    this.scope.resolve(expr, { kind: "value", word });
    this.scope.session.result.valuesUsed.add(word.name);
    return word.type;
  }

  /** A source by its kind: a DNSBL, a table (one, or named tables), or a quota source. */
  private source(expr: NameExpr, source: SourceConfig, rest: string[]): ValueType | undefined {
    this.scope.use(source.name);
    const kind = source.kind;
    switch (kind) {
      case "dnsbl":
        return this.dnsbl(expr, source, rest);
      case "table":
        return source.tables === undefined ? this.table(expr, source, rest) : this.tables(expr, source, rest);
      case "quota":
        this.scope.report(
          expr.span,
          "error",
          `'${source.name}' is a quota source: use quota(ADDRESS, ${source.name})`,
        );
        return undefined;
      default: {
        const unknown: never = kind;
        this.scope.report(
          expr.span,
          "error",
          `source '${source.name}' is of kind '${String(unknown)}', which rules cannot use`,
        );
        return undefined;
      }
    }
  }

  private dnsbl(expr: NameExpr, source: SourceConfig, rest: string[]): ValueType | undefined {
    const head = source.name;
    if (rest.length === 0) {
      this.scope.resolve(expr, { kind: "dnsbl", source: head });
      return "table";
    }
    const attribute = rest[0] as string;
    if (rest.length === 1 && (DNSBL_ATTRIBUTES as readonly string[]).includes(attribute)) {
      this.scope.resolve(expr, {
        kind: "sourceAttribute",
        source: head,
        attribute: attribute as DnsblAttribute,
      });
      return attribute === "codes" ? "ip list" : "string";
    }
    this.scope.report(
      expr.partSpans[1] as Span,
      "error",
      `${this.scope.session.labelOf(source)} source '${head}' has no '${rest.join(".")}'`,
      didYouMean(attribute, DNSBL_ATTRIBUTES),
    );
    return undefined;
  }

  /** A source that is one table: `NAME`. */
  private table(expr: NameExpr, source: SourceConfig, rest: string[]): ValueType | undefined {
    const head = source.name;
    if (rest.length > 0) {
      this.scope.report(
        expr.partSpans[1] as Span,
        "error",
        `${this.scope.session.labelOf(source)} source '${head}' has no members: use '${head}' as a table`,
      );
      return undefined;
    }
    this.scope.resolve(expr, { kind: "table", source: head });
    return "table";
  }

  /** A source with named tables: `NAME.table`. */
  private tables(expr: NameExpr, source: SourceConfig, rest: string[]): ValueType | undefined {
    const head = source.name;
    const label = this.scope.session.labelOf(source);
    const tables = [...(source.tables?.keys() ?? [])];
    if (rest.length !== 1) {
      this.scope.report(
        rest.length === 0 ? expr.span : (expr.partSpans[2] as Span),
        "error",
        `${label} source '${head}' is used through its tables: ${tables.map((t) => `${head}.${t}`).join(", ")}`,
      );
      return undefined;
    }
    const table = rest[0] as string;
    if (!tables.includes(table)) {
      this.scope.report(
        expr.partSpans[1] as Span,
        "error",
        `unknown table '${table}' in ${label} source '${head}'`,
        didYouMean(table, tables) ?? `its tables are ${tables.join(", ")}`,
      );
      return undefined;
    }
    this.scope.resolve(expr, { kind: "table", source: head, table });
    return "table";
  }

  /** `from.domian`, `client.addr`, `helo.name`: a value's part, never a source; else the nearest name. */
  private unknown(expr: NameExpr, full: string, head: string, rest: string[]): void {
    const { registry, sources } = this.scope;
    const subtraction = subtractionHint(
      full,
      (name) => registry.value(name) !== undefined || sources.has(name),
    );
    if (subtraction !== undefined) {
      this.scope.report(expr.span, "error", `unknown name '${full}'`, subtraction);
      return;
    }
    const valueNames = registry.valueNames();
    const members = valueNames.filter((n) => n.startsWith(`${head}.`));
    if (members.length > 0 || valueNames.includes(head)) {
      const hint = members.length > 0 ? `'${head}' has ${members.join(", ")}` : `'${head}' has no parts`;
      this.scope.report(expr.span, "error", `unknown name '${full}'`, didYouMean(full, valueNames) ?? hint);
      return;
    }
    const fn = registry.fn(head);
    if (fn !== undefined) {
      this.scope.report(expr.span, "error", `'${head}' is a function: ${fn.usage}`);
      return;
    }
    const candidates = [...valueNames, ...sources.keys()];
    for (const s of sources.values())
      for (const t of s.tables?.keys() ?? []) candidates.push(`${s.name}.${t}`);
    this.scope.report(
      expr.span,
      "error",
      sources.size > 0 && rest.length > 0 ? `unknown source '${head}'` : `unknown name '${full}'`,
      rest.length > 0 ? didYouMean(head, sources.keys()) : didYouMean(full, candidates),
    );
  }
}

/**
 * `size-1MB` is one name to the lexer (names may hold `-`, like `my-list`). When the part before a
 * `-` is a value or a source, the rule meant a subtraction: say how to write it.
 */
function subtractionHint(full: string, known: (name: string) => boolean): string | undefined {
  for (let at = full.indexOf("-"); at > 0; at = full.indexOf("-", at + 1)) {
    const left = full.slice(0, at);
    if (known(left)) return `to subtract, put spaces around '-': ${left} - ${full.slice(at + 1)}`;
  }
  return undefined;
}
