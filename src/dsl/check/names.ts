/**
 * Names in conditions: a value of the transaction (from the registry), a source or a source's
 * table or attribute, or a mistake, reported with the nearest name that exists.
 */
import { didYouMean } from "../../common/diagnostics.js";
import type { LdapSourceConfig, SourceConfig } from "../../config/types.js";
import type { Expr, Span } from "../ast.js";
import { DNSBL_ATTRIBUTES } from "../source-kinds.js";
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

  private source(expr: NameExpr, source: SourceConfig, rest: string[]): ValueType | undefined {
    this.scope.use(source.name);
    switch (source.type) {
      case "dnsbl":
        return this.dnsbl(expr, source.name, rest);
      case "list":
        return this.list(expr, source.name, rest);
      case "ldap":
        return this.ldap(expr, source, rest);
      default:
        this.scope.report(
          expr.span,
          "error",
          `'${source.name}' is a quota source: use quota(ADDRESS, ${source.name})`,
        );
        return undefined;
    }
  }

  private dnsbl(expr: NameExpr, head: string, rest: string[]): ValueType | undefined {
    if (rest.length === 0) {
      this.scope.resolve(expr, { kind: "dnsbl", source: head });
      return "table";
    }
    const attribute = rest[0] as string;
    if (rest.length === 1 && (DNSBL_ATTRIBUTES as readonly string[]).includes(attribute)) {
      this.scope.resolve(expr, {
        kind: "sourceAttribute",
        source: head,
        attribute: attribute as "zone" | "reason",
      });
      return "string";
    }
    this.scope.report(
      expr.partSpans[1] as Span,
      "error",
      `DNSBL source '${head}' has no '${rest.join(".")}'`,
      didYouMean(attribute, DNSBL_ATTRIBUTES),
    );
    return undefined;
  }

  private list(expr: NameExpr, head: string, rest: string[]): ValueType | undefined {
    if (rest.length > 0) {
      this.scope.report(
        expr.partSpans[1] as Span,
        "error",
        `list source '${head}' has no members: use '${head}' as a table`,
      );
      return undefined;
    }
    this.scope.resolve(expr, { kind: "table", source: head });
    return "table";
  }

  private ldap(expr: NameExpr, source: LdapSourceConfig, rest: string[]): ValueType | undefined {
    const head = source.name;
    const tables = [...source.tables.keys()];
    if (rest.length !== 1) {
      this.scope.report(
        rest.length === 0 ? expr.span : (expr.partSpans[2] as Span),
        "error",
        `LDAP source '${head}' is used through its tables: ${tables.map((t) => `${head}.${t}`).join(", ")}`,
      );
      return undefined;
    }
    const table = rest[0] as string;
    if (!source.tables.has(table)) {
      this.scope.report(
        expr.partSpans[1] as Span,
        "error",
        `unknown table '${table}' in LDAP source '${head}'`,
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
      if (s.type === "ldap") for (const t of s.tables.keys()) candidates.push(`${s.name}.${t}`);
    this.scope.report(
      expr.span,
      "error",
      sources.size > 0 && rest.length > 0 ? `unknown source '${head}'` : `unknown name '${full}'`,
      rest.length > 0 ? didYouMean(head, sources.keys()) : didYouMean(full, candidates),
    );
  }
}
