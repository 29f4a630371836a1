/**
 * Completion inside rule language: what fits where the cursor is (cursorAt), from the registry
 * (values and functions known at the rule's stages), the file (its sources and tables), the
 * parser's actions and the stages. YAML keys are left to yaml-language-server and the schema.
 */
import { type CompletionItem, CompletionItemKind, MarkupKind, type Range } from "vscode-languageserver/node";
import { STAGES, type Stage } from "../common/stages.js";
import { ACTION_VERBS } from "../dsl/ast.js";
import { DNSBL_ATTRIBUTES, QUOTA_MEMBERS, REGISTRY } from "../dsl/registry.js";
import { type CursorContext, cursorAt } from "./context.js";
import { type DeclaredSource, indexAt, type RulesDocument } from "./document.js";
import {
  actionDoc,
  functionDoc,
  functionsAt,
  sourceType,
  sourceTypeDoc,
  valueDoc,
  valuesAt,
} from "./words.js";

/** A completion before it is placed: the text replaces the word being typed. */
export interface Offer {
  label: string;
  kind: CompletionItemKind;
  detail?: string;
  doc?: string;
  insert?: string;
}

const OPERATORS = ["and", "or", "in", "not in", "matches", "over", "then", "==", "!=", "<", "<=", ">", ">="];

function sourceOffer(source: DeclaredSource, label = source.name): Offer {
  const descriptor = sourceType(source.type);
  const offer: Offer = { label, kind: CompletionItemKind.Variable, detail: `${source.type ?? "?"} source` };
  offer.doc = `${descriptor ? `${sourceTypeDoc(descriptor)}\n\n` : ""}\`\`\`yaml\n${source.settings}\n\`\`\``;
  return offer;
}

function tableOffers(doc: RulesDocument): Offer[] {
  const offers: Offer[] = [];
  for (const source of doc.sources.values()) {
    if (source.kind === "quota") continue;
    if (source.tables.length === 0) offers.push(sourceOffer(source));
    for (const table of source.tables) offers.push(sourceOffer(source, `${source.name}.${table}`));
  }
  for (const value of REGISTRY.values())
    if (value.type.endsWith("list"))
      offers.push({ label: value.name, kind: CompletionItemKind.Field, doc: valueDoc(value) });
  return offers;
}

function expressionOffers(
  doc: RulesDocument,
  context: CursorContext & { kind: "expression" },
  at: readonly Stage[],
): Offer[] {
  if (context.afterValue) return OPERATORS.map((label) => ({ label, kind: CompletionItemKind.Keyword }));
  const offers: Offer[] = valuesAt(at).map((v) => ({
    label: v.name,
    kind: CompletionItemKind.Field,
    detail: v.type,
    doc: valueDoc(v),
  }));
  for (const f of functionsAt(at))
    offers.push({
      label: f.name,
      kind: CompletionItemKind.Function,
      detail: f.usage,
      doc: functionDoc(f),
      insert: `${f.name}(`,
    });
  for (const source of doc.sources.values()) offers.push(sourceOffer(source));
  offers.push({ label: "not", kind: CompletionItemKind.Keyword });
  return offers;
}

function memberOffers(
  doc: RulesDocument,
  head: string,
  call: string | undefined,
  at: readonly Stage[],
): Offer[] {
  if (call === "quota")
    return Object.entries(QUOTA_MEMBERS).map(([name, type]) => ({
      label: name,
      kind: CompletionItemKind.Field,
      detail: type,
    }));
  if (call !== undefined) return [];
  const source = doc.sources.get(head);
  if (source !== undefined) {
    if (source.kind === "dnsbl")
      return DNSBL_ATTRIBUTES.map((a) => ({ label: `${head}.${a}`, kind: CompletionItemKind.Field }));
    return source.tables.map((t) => sourceOffer(source, `${head}.${t}`));
  }
  return valuesAt(at)
    .filter((v) => v.name.startsWith(`${head}.`))
    .map((v) => ({ label: v.name, kind: CompletionItemKind.Field, detail: v.type, doc: valueDoc(v) }));
}

function placeholderOffers(doc: RulesDocument, at: readonly Stage[]): Offer[] {
  const offers: Offer[] = valuesAt(at).map((v) => ({
    label: v.name,
    kind: CompletionItemKind.Field,
    detail: v.type,
    doc: valueDoc(v),
  }));
  for (const name of REGISTRY.placeholderNames())
    offers.push({ label: name, kind: CompletionItemKind.Field });
  for (const source of doc.sources.values())
    if (source.kind === "dnsbl")
      for (const a of DNSBL_ATTRIBUTES)
        offers.push({ label: `${source.name}.${a}`, kind: CompletionItemKind.Field });
  return offers;
}

function actionOffers(): Offer[] {
  return ACTION_VERBS.map((verb) => ({
    label: verb,
    kind: CompletionItemKind.Keyword,
    doc: actionDoc(verb),
  }));
}

function offersFor(doc: RulesDocument, context: CursorContext, at: readonly Stage[]): Offer[] {
  switch (context.kind) {
    case "none":
      return [];
    case "stage":
      return STAGES.filter((s) => !context.listed.includes(s)).map((s) => ({
        label: s,
        kind: CompletionItemKind.EnumMember,
      }));
    case "rule-start":
      return ["on", "shadow on"].map((label) => ({ label, kind: CompletionItemKind.Keyword }));
    case "action":
      return actionOffers();
    case "statement":
      return [{ label: "if", kind: CompletionItemKind.Keyword }, ...actionOffers()];
    case "after-action":
      return ["else", "if"].map((label) => ({ label, kind: CompletionItemKind.Keyword }));
    case "expression":
      return expressionOffers(doc, context, at);
    case "table":
      return tableOffers(doc);
    case "quota-source":
      return [...doc.sources.values()].filter((s) => s.kind === "quota").map((s) => sourceOffer(s));
    case "member":
      return memberOffers(doc, context.head, context.call, at);
    case "placeholder":
      return placeholderOffers(doc, at);
  }
}

/** The completions at file offset `offset`, each replacing the file range [from, offset). */
export function completionsAt(
  doc: RulesDocument,
  offset: number,
): { from: number; offers: Offer[] } | undefined {
  const piece = doc.pieceAt(offset);
  if (piece === undefined) return undefined;
  const cursor = cursorAt(piece, indexAt(piece, offset));
  const partial = cursor.context.kind === "member" && cursor.context.call !== undefined ? "" : cursor.partial;
  const from = piece.text.offsetAt(indexAt(piece, offset) - partial.length);
  return { from: Math.min(from, offset), offers: offersFor(doc, cursor.context, cursor.stages) };
}

export function toItem(offer: Offer, range: Range): CompletionItem {
  const item: CompletionItem = {
    label: offer.label,
    kind: offer.kind,
    textEdit: { range, newText: offer.insert ?? offer.label },
    filterText: offer.label,
  };
  if (offer.detail !== undefined) item.detail = offer.detail;
  if (offer.doc !== undefined) item.documentation = { kind: MarkupKind.Markdown, value: offer.doc };
  return item;
}
