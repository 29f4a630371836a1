/**
 * Go to definition (a source named in a rule → its key under `sources:`) and find references
 * (a source → every rule naming it).
 */
import type { RulesDocument, SourceReference } from "./document.js";

export interface FileRange {
  start: number;
  end: number;
}

function within(offset: number, range: FileRange): boolean {
  return offset >= range.start && offset <= range.end;
}

/** The source named at `offset`: in a rule, or its own key. */
function sourceNameAt(doc: RulesDocument, offset: number, references: SourceReference[]): string | undefined {
  const used = references.find((r) => within(offset, r));
  if (used !== undefined) return used.name;
  for (const source of doc.sources.values())
    if (within(offset, { start: source.keyStart, end: source.keyEnd })) return source.name;
  return undefined;
}

export function definitionAt(doc: RulesDocument, offset: number): FileRange | undefined {
  const name = doc.sourceReferences().find((r) => within(offset, r))?.name;
  const source = name === undefined ? undefined : doc.sources.get(name);
  return source === undefined ? undefined : { start: source.keyStart, end: source.keyEnd };
}

export function referencesAt(doc: RulesDocument, offset: number, withDeclaration: boolean): FileRange[] {
  const references = doc.sourceReferences();
  const name = sourceNameAt(doc, offset, references);
  if (name === undefined) return [];
  const found: FileRange[] = references
    .filter((r) => r.name === name)
    .map(({ start, end }) => ({ start, end }));
  const source = doc.sources.get(name);
  if (withDeclaration && source !== undefined) found.unshift({ start: source.keyStart, end: source.keyEnd });
  return found;
}
