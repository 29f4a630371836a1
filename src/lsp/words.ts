/**
 * The documentation the editor shows, read from where each thing is declared: values and
 * functions from the registry (src/dsl/registry.ts), source types from their descriptors
 * (src/sources/catalog.ts). Actions have no registry entry (the parser knows them), so their
 * one-line docs are here, keyed by the parser's own list (a verb added there fails to compile
 * until it is documented here).
 */
import { STAGE_ORDER, type Stage } from "../common/stages.js";
import type { ActionVerb } from "../dsl/ast.js";
import { type FunctionWord, REGISTRY, type ValueWord } from "../dsl/registry.js";
import { SOURCE_CATALOG } from "../sources/catalog.js";
import type { SourceDescriptor } from "../sources/descriptor.js";

export const ACTION_DOCS: Readonly<Record<ActionVerb, { usage: string; doc: string }>> = {
  continue: { usage: "continue", doc: "Decides nothing: the next rule of the stage runs." },
  accept: {
    usage: "accept",
    doc: "At connect or helo: stop filtering the connection; at mail, data and later: the message; at rcpt: this recipient only.",
  },
  reject: {
    usage: 'reject [CODE [XCODE]] ["text"]',
    doc: 'Refuses with a 5xx reply (default `550 5.7.1 "Rejected by policy"`); at rcpt, this recipient only.',
  },
  tempfail: {
    usage: 'tempfail [CODE [XCODE]] ["text"]',
    doc: 'Defers with a 4xx reply (default `451 4.7.1 "Try again later"`): the client retries later.',
  },
  discard: { usage: "discard", doc: "Accepts the message and throws it away." },
  quarantine: { usage: 'quarantine "reason"', doc: "Accepts the message into the MTA's hold queue." },
  "add header": {
    usage: 'add header "Name" "value"',
    doc: "Adds a header at the end of the message; does not decide (the next rules still run).",
  },
  log: { usage: 'log "text"', doc: "Writes a line to the log; does not decide." },
};

/** Whether a word may be used in a rule running at every one of `stages`. */
export function knownAt(word: { from: Stage; only?: Stage }, stages: readonly Stage[]): boolean {
  return stages.every(
    (stage) =>
      STAGE_ORDER[stage] >= STAGE_ORDER[word.from] && (word.only === undefined || word.only === stage),
  );
}

export function valuesAt(stages: readonly Stage[]): ValueWord[] {
  return REGISTRY.values().filter((v) => knownAt(v, stages));
}

export function functionsAt(stages: readonly Stage[]): FunctionWord[] {
  return REGISTRY.functions().filter((f) => knownAt(f, stages));
}

function whenKnown(word: { from: Stage; only?: Stage }): string {
  return word.only !== undefined ? `only in \`on ${word.only}\` rules` : `known from \`${word.from}\` on`;
}

export function valueDoc(word: ValueWord): string {
  return `**${word.name}** (${word.type}), ${whenKnown(word)}\n\n${word.doc}`;
}

export function functionDoc(word: FunctionWord): string {
  return `**${word.usage}** → ${word.returns}, ${whenKnown(word)}\n\n${word.doc}`;
}

export function actionDoc(verb: ActionVerb): string {
  const { usage, doc } = ACTION_DOCS[verb];
  return `**${usage}**\n\n${doc}`;
}

export function sourceType(type: string | undefined): SourceDescriptor | undefined {
  return SOURCE_CATALOG.find((d) => d.type === type);
}

export function sourceTypeDoc(descriptor: SourceDescriptor): string {
  return `**${descriptor.type}** source (${descriptor.kind}): ${descriptor.schema.definition.description}`;
}
