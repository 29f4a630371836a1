/**
 * The JSON Schema of rules.yaml (schema/rules.schema.json), compiled once, with a way to tell
 * which part of it an ajv error came from.
 */
import { readFileSync } from "node:fs";
import { Ajv, type AnySchemaObject, type ValidateFunction } from "ajv";

/** Same place relative to src/config/ and to dist/config/ (the package ships schema/). */
export const SCHEMA_URL = new URL("../../schema/rules.schema.json", import.meta.url);

export interface CompiledSchema {
  schema: AnySchemaObject;
  validate: ValidateFunction;
  /** Schema object → its JSON pointer in the file ("#/definitions/duration"). */
  pointers: Map<object, string>;
  /** The schema object at a pointer ("#/definitions/ldapSource"). */
  resolve(pointer: string): AnySchemaObject | undefined;
}

let compiled: CompiledSchema | undefined;

function indexPointers(node: unknown, pointer: string, into: Map<object, string>): void {
  if (node === null || typeof node !== "object") return;
  if (!into.has(node)) into.set(node, pointer);
  if (Array.isArray(node)) {
    node.forEach((item, i) => {
      indexPointers(item, `${pointer}/${i}`, into);
    });
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    indexPointers(value, `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, into);
  }
}

export function rulesSchema(): CompiledSchema {
  if (compiled !== undefined) return compiled;
  const schema = JSON.parse(readFileSync(SCHEMA_URL, "utf8")) as AnySchemaObject;
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
  });
  const validate = ajv.compile(schema);
  const pointers = new Map<object, string>();
  indexPointers(schema, "#", pointers);
  const resolve = (pointer: string): AnySchemaObject | undefined => {
    let node: unknown = schema;
    for (const part of pointer.replace(/^#\/?/, "").split("/")) {
      if (part === "") continue;
      if (node === null || typeof node !== "object") return undefined;
      node = (node as Record<string, unknown>)[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    return node as AnySchemaObject | undefined;
  };
  compiled = { schema, validate, pointers, resolve };
  return compiled;
}
