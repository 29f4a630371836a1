/**
 * What the editor features need to know about a rules.yaml as it is being typed, errors and all:
 * the sources it declares (with their key's place) and every piece of rule language in it (a
 * text-form rule, or a structured rule's `on`, `if`, `then`, `else`), each located in the file
 * through the config layer's scalar map, so escapes and block scalars are placed exactly as
 * `validate` places them. Built from the YAML alone: nothing is checked or opened here.
 */
import type { IToken } from "chevrotain";
import { isMap, isPair, isScalar, isSeq, type Node, type Pair, parseDocument, type Scalar } from "yaml";
import { STAGES, type Stage } from "../common/stages.js";
import { locateScalar, MappedText } from "../config/load.js";
import type { SourceKind } from "../config/types.js";
import { Dot, Identifier, RuleLexer, StringLiteral } from "../dsl/tokens.js";
import { SOURCE_CATALOG } from "../sources/catalog.js";

/** What a piece of rule language holds, for completion: a whole rule or one structured key. */
export type PieceRole = "rule" | "on" | "if" | "then" | "else";

export interface RulePiece {
  role: PieceRole;
  /** The scalar's value mapped to file offsets. */
  text: MappedText;
  /** The scalar node (for formatting); absent for a shorthand rule (`- on rcpt: ...`). */
  node?: Scalar;
  /** The rule's stages as written (unknown words left out). */
  stages: Stage[];
  /** File range of the node(s) the piece is read from. */
  from: number;
  to: number;
}

export interface DeclaredSource {
  name: string;
  /** File range of the key under `sources:`. */
  keyStart: number;
  keyEnd: number;
  type?: string;
  /** File range of the `type:` value. */
  typeRange?: [number, number];
  kind?: SourceKind;
  /** Named tables (`tables:` of an LDAP source). */
  tables: string[];
  /** The source's mapping as written in the file. */
  settings: string;
}

/** A name in a rule that is one of the file's sources (never a member after a dot). */
export interface SourceReference {
  name: string;
  start: number;
  end: number;
}

const KIND_OF = new Map<string, SourceKind>(SOURCE_CATALOG.map((d) => [d.type, d.kind]));

function scalarText(node: unknown): string | undefined {
  return isScalar(node) && node.value !== null ? String(node.value) : undefined;
}

function pairOf(map: unknown, key: string): Pair | undefined {
  if (!isMap(map)) return undefined;
  return map.items.find((p) => isPair(p) && scalarText(p.key) === key) as Pair | undefined;
}

/** Stage words of `text` that are stages. */
function stagesIn(words: readonly string[]): Stage[] {
  return words.filter((w): w is Stage => (STAGES as readonly string[]).includes(w));
}

function textRuleStages(text: string): Stage[] {
  const head = /^\s*(?:shadow\s+)?on\s+([^:]*)/.exec(text);
  return head === null ? [] : stagesIn((head[1] ?? "").split(/[\s,]+/));
}

export class RulesDocument {
  readonly sources = new Map<string, DeclaredSource>();
  readonly pieces: RulePiece[] = [];

  constructor(readonly text: string) {
    const doc = parseDocument(text, { keepSourceTokens: false, uniqueKeys: false });
    const root = doc.contents;
    this.readSources(pairOf(root, "sources")?.value);
    const rules = pairOf(root, "rules")?.value;
    if (isSeq(rules)) for (const item of rules.items) this.readRule(item as Node);
  }

  private readSources(node: unknown): void {
    if (!isMap(node)) return;
    for (const pair of node.items) {
      const name = scalarText(pair.key);
      const key = pair.key as Scalar | null;
      if (name === undefined || key?.range === undefined || key.range === null) continue;
      const value = pair.value as Node | null;
      const typeNode = pairOf(value, "type")?.value;
      const type = scalarText(typeNode);
      const tables = pairOf(value, "tables")?.value;
      const range = value?.range;
      const source: DeclaredSource = {
        name,
        keyStart: key.range[0],
        keyEnd: key.range[1],
        tables: isMap(tables) ? tables.items.flatMap((p) => scalarText(p.key) ?? []) : [],
        settings: range ? this.text.slice(key.range[0], range[1]).trimEnd() : name,
      };
      if (type !== undefined) {
        source.type = type;
        const at = (typeNode as Scalar).range;
        if (at) source.typeRange = [at[0], at[1]];
        const kind = KIND_OF.get(type);
        if (kind !== undefined) source.kind = kind;
      }
      this.sources.set(name, source);
    }
  }

  private piece(role: PieceRole, node: Scalar, stages: Stage[]): void {
    const range = node.range ?? [0, 0, 0];
    this.pieces.push({
      role,
      text: locateScalar(this.text, node),
      node,
      stages,
      from: range[0],
      to: range[1],
    });
  }

  private readRule(node: Node | null): void {
    if (isScalar(node)) {
      const value = scalarText(node) ?? "";
      this.piece("rule", node, textRuleStages(value));
      return;
    }
    if (!isMap(node)) return;
    const only = node.items.length === 1 ? node.items[0] : undefined;
    const keyText = scalarText(only?.key);
    if (only !== undefined && keyText !== undefined && /^\s*(shadow\s+)?on\s/.test(keyText)) {
      this.shorthand(only);
      return;
    }
    const on = pairOf(node, "on")?.value;
    const onNodes = isSeq(on) ? on.items.filter(isScalar) : isScalar(on) ? [on] : [];
    const stages = stagesIn(onNodes.flatMap((n) => (scalarText(n) ?? "").split(/[\s,]+/)));
    for (const n of onNodes) this.piece("on", n, stages);
    for (const role of ["if", "then", "else"] as const) {
      const value = pairOf(node, role)?.value;
      if (isScalar(value)) this.piece(role, value, stages);
    }
  }

  /** `- on rcpt: if ...` read by YAML as a mapping: key, `: `, value, as the config layer joins them. */
  private shorthand(pair: Pair): void {
    const key = pair.key as Scalar;
    const keyText = locateScalar(this.text, key);
    const keyEnd = key.range?.[1] ?? keyText.offsetAt(keyText.text.length);
    const colon = this.text.indexOf(":", keyEnd);
    const at = colon === -1 ? keyEnd : colon;
    const parts = [keyText, MappedText.at(":", at), MappedText.at(" ", at + 1)];
    if (isScalar(pair.value)) parts.push(locateScalar(this.text, pair.value));
    const body = MappedText.concat(parts);
    const end = (pair.value as Node | null)?.range?.[1] ?? at + 1;
    this.pieces.push({
      role: "rule",
      text: body,
      stages: textRuleStages(body.text),
      from: key.range?.[0] ?? 0,
      to: end,
    });
  }

  /** The piece of rule language at a file offset (its end included: the cursor after the last character). */
  pieceAt(offset: number): RulePiece | undefined {
    return this.pieces.find((p) => offset >= p.from && offset <= p.to);
  }

  /** Every name in the rules that is a source of the file. */
  sourceReferences(): SourceReference[] {
    const found: SourceReference[] = [];
    for (const piece of this.pieces) {
      const tokens = lex(piece.text.text);
      tokens.forEach((token, i) => {
        if (token.tokenType === StringLiteral) found.push(...this.placeholderReferences(piece, token));
        if (token.tokenType !== Identifier || !this.sources.has(token.image)) return;
        if (tokens[i - 1]?.tokenType === Dot) return;
        const { start, end } = tokenRange(piece, token);
        found.push({ name: token.image, start, end });
      });
    }
    return found;
  }

  /** `{spamhaus.zone}` in a text names the source spamhaus. */
  private placeholderReferences(piece: RulePiece, token: IToken): SourceReference[] {
    const found: SourceReference[] = [];
    for (const match of token.image.matchAll(/\{([A-Za-z_][A-Za-z0-9_-]*)[.}]/g)) {
      const name = match[1] as string;
      if (!this.sources.has(name)) continue;
      const at = token.startOffset + match.index + 1;
      found.push({ name, start: piece.text.offsetAt(at), end: piece.text.endAt(at + name.length - 1) });
    }
    return found;
  }
}

/** The tokens of a rule text (errors ignored: the text is being typed). */
export function lex(text: string): IToken[] {
  return RuleLexer.tokenize(text).tokens;
}

/** Index just after a token in its text (the lexer tracks start offsets only). */
export function tokenEnd(token: IToken): number {
  return token.startOffset + token.image.length;
}

/** File range of a token of a piece. */
export function tokenRange(piece: RulePiece, token: IToken): { start: number; end: number } {
  return { start: piece.text.offsetAt(token.startOffset), end: piece.text.endAt(tokenEnd(token) - 1) };
}

/** Index in the piece's text of a file offset: the characters placed before it. */
export function indexAt(piece: RulePiece, offset: number): number {
  const text = piece.text;
  let index = 0;
  while (index < text.text.length && text.offsetAt(index) < offset) index++;
  return index;
}
