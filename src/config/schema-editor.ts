/**
 * What editors need from the JSON Schema beyond validation: `markdownDescription` on every key
 * (VS Code and yaml-language-server render it; `description` shows backticks literally), kept
 * where a `$ref` cannot overwrite it. filterctl's own validation ignores these keywords
 * (EDITOR_KEYWORDS are declared to ajv), so its messages do not depend on them.
 */
import type { JsonSchema } from "./types.js";

/** Keywords only editors read: ajv in strict mode must be told they exist. */
export const EDITOR_KEYWORDS = ["markdownDescription", "patternErrorMessage"] as const;

function isSchema(node: unknown): node is JsonSchema {
  return node !== null && typeof node === "object" && !Array.isArray(node);
}

function describe(node: JsonSchema, markdown: string): void {
  if (node.markdownDescription === undefined) node.markdownDescription = markdown;
}

/**
 * A key's text goes in its own `markdownDescription`, and definitions get none: resolvers merge
 * a `$ref`'s target into the referring schema, some (yaml-language-server 2, VS Code's JSON for
 * draft-07) overwriting its keys, so the key's own `description` next to a `$ref` is lost while
 * a `markdownDescription` the target does not have survives.
 */
function describeKeys(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) describeKeys(item);
    return;
  }
  if (!isSchema(node)) return;
  for (const key of ["properties", "patternProperties"]) {
    const map = node[key];
    if (!isSchema(map)) continue;
    for (const property of Object.values(map)) {
      if (isSchema(property) && typeof property.description === "string")
        describe(property, property.description);
    }
  }
  const extra = node.additionalProperties;
  if (isSchema(extra) && typeof extra.description === "string" && extra.$ref === undefined)
    describe(extra, extra.description);
  describeBranches(node);
  for (const value of Object.values(node)) describeKeys(value);
}

/**
 * Editors show the first description among the schemas a value matches, and the branch an
 * `if` chose comes before the schema holding it: a `then`/`else` that is a `$ref` to a shared
 * definition (`quota` → `size`) would hide the text of the key. The branch carries it instead.
 */
function describeBranches(node: JsonSchema): void {
  const text = node.markdownDescription ?? node.description;
  if (node.if === undefined || typeof text !== "string") return;
  for (const branch of [node.then, node.else]) {
    if (isSchema(branch) && branch.$ref !== undefined) describe(branch, text);
  }
}

/** Adds what editors read to an assembled schema, in place. */
export function addEditorKeywords(schema: JsonSchema): JsonSchema {
  describeKeys(schema);
  return schema;
}
