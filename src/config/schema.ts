/**
 * The JSON Schema of rules.yaml, assembled from the shared part (schema-base.ts) and each source
 * type's fragment, compiled once per list of types, with a way to tell which part of it an ajv
 * error came from. schema/rules.schema.json is this schema for the built-in types, written by
 * `npm run schema` for editors (a test fails when it is out of date).
 */
import { createRequire } from "node:module";
import type { AnySchemaObject, Options, ValidateFunction } from "ajv";
import { either } from "../common/suggest.js";
import { baseSchema, COMMON_SOURCE_PROPERTIES } from "./schema-base.js";
import { addEditorKeywords, EDITOR_KEYWORDS } from "./schema-editor.js";
import type { JsonSchema, SourceTypeSpec } from "./types.js";

/** Same place relative to src/config/ and to dist/config/ (the package ships schema/). */
export const SCHEMA_URL = new URL("../../schema/rules.schema.json", import.meta.url);

export interface CompiledSchema {
  schema: AnySchemaObject;
  validate: ValidateFunction;
  /** Schema object → its JSON pointer in the file ("#/definitions/duration"). */
  pointers: Map<object, string>;
  /** The schema object at a pointer ("#/definitions/ldapSource"). */
  resolve(pointer: string): AnySchemaObject | undefined;
  /** The source types, in their order. */
  sourceTypes: readonly string[];
  /** The source type whose branch (`#/definitions/NAMESource`) a pointer is, if any. */
  branchType(pointer: string): string | undefined;
  /** Messages the source types give for values that do not fit, by schema pointer. */
  messages: ReadonlyMap<string, (what: string) => string>;
}

/** `#/definitions/NAMESource`: the fragment with `type`, the common options and closed keys. */
function branchOf(spec: SourceTypeSpec): JsonSchema {
  const { properties, description, ...rest } = spec.schema.definition;
  const own = Object.fromEntries(
    Object.entries(properties).filter(([key]) => !(key in COMMON_SOURCE_PROPERTIES)),
  );
  const common = Object.fromEntries(
    Object.entries(COMMON_SOURCE_PROPERTIES).map(([key, value]) => [key, properties[key] ?? value]),
  );
  return {
    description,
    type: "object",
    additionalProperties: false,
    ...rest,
    properties: {
      type: { description: spec.schema.typeDescription, const: spec.type },
      ...own,
      ...structuredClone(common),
    },
  };
}

/** The whole schema for these source types: what `npm run schema` writes, and what validates. */
export function assembleSchema(specs: readonly SourceTypeSpec[]): JsonSchema {
  const schema = baseSchema();
  const definitions = schema.definitions as Record<string, JsonSchema>;
  const types = specs.map((s) => s.type);
  definitions.sourceType = {
    description: `Kind of source: ${either(specs.map((s) => s.schema.summary))}.`,
    enum: types,
  };
  const source = definitions.source as { properties: { type: JsonSchema }; allOf: JsonSchema[] };
  source.properties.type.description = `Kind of source: ${either(types)}; it decides which other keys apply.`;
  source.allOf = specs.map((spec) => ({
    if: { type: "object", required: ["type"], properties: { type: { const: spec.type } } },
    then: { $ref: `#/definitions/${spec.type}Source` },
  }));
  // Each type's branch right after `source`, where a reader of the file looks for it.
  const ordered: Record<string, JsonSchema> = {};
  for (const [name, definition] of Object.entries(definitions)) {
    ordered[name] = definition;
    if (name !== "source") continue;
    for (const spec of specs) {
      ordered[`${spec.type}Source`] = branchOf(spec);
      for (const [extra, value] of Object.entries(spec.schema.definitions ?? {})) {
        ordered[extra] = structuredClone(value);
      }
    }
  }
  schema.definitions = ordered;
  return addEditorKeywords(schema);
}

export function indexPointers(node: unknown, pointer: string, into: Map<object, string>): void {
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

/** How the schema is compiled, at run time and into schema/rules.validate.cjs alike. */
export const AJV_OPTIONS: Options = {
  allErrors: true,
  verbose: true,
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
};

/** What schema/rules.validate.cjs exports (see schema-standalone.ts). */
interface StandaloneValidator {
  /** JSON.stringify of the schema it was generated from (compared whole: no node:crypto to load). */
  schemaJson: string;
  makeValidate(at: (pointer: string) => AnySchemaObject | undefined): ValidateFunction;
}

const require = createRequire(import.meta.url);

/**
 * schema/rules.validate.cjs at the package's top: two folders up from src/config/ and
 * dist/config/, three from the benchmarks' build (dist-bench/src/config/). Without it (a
 * checkout that has not run `npm run schema`), undefined: ajv compiles the schema.
 */
function generatedValidator(): StandaloneValidator | undefined {
  for (const path of ["../../schema/rules.validate.cjs", "../../../schema/rules.validate.cjs"]) {
    try {
      return require(path) as StandaloneValidator;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw error;
    }
  }
  return undefined;
}

/**
 * The validator generated at build time when it was generated from this very schema (the
 * built-in source types); otherwise ajv compiles it here. ajv and its code generator are loaded
 * only then: they cost a process that keeps running (serve) some 10 MB of RSS.
 */
function validatorOf(
  schema: AnySchemaObject,
  resolve: (pointer: string) => AnySchemaObject | undefined,
): ValidateFunction {
  const standalone = generatedValidator();
  if (standalone?.schemaJson === JSON.stringify(schema)) return standalone.makeValidate(resolve);
  // CommonJS, required because a configuration is parsed synchronously.
  const { Ajv } = require("ajv") as typeof import("ajv");
  const ajv = new Ajv(AJV_OPTIONS);
  for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
  return ajv.compile(schema);
}

function compile(specs: readonly SourceTypeSpec[]): CompiledSchema {
  const schema = assembleSchema(specs) as AnySchemaObject;
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
  const validate = validatorOf(schema, resolve);
  const sourceTypes = specs.map((s) => s.type);
  const branches = new Map(sourceTypes.map((type) => [`#/definitions/${type}Source`, type]));
  const messages = new Map(specs.flatMap((s) => Object.entries(s.schema.messages ?? {})));
  return {
    schema,
    validate,
    pointers,
    resolve,
    sourceTypes,
    branchType: (pointer) => branches.get(pointer),
    messages,
  };
}

/** Compiling takes a while: once per list of source types (the built-in list is one constant). */
const compiled = new WeakMap<readonly SourceTypeSpec[], CompiledSchema>();

export function rulesSchema(specs: readonly SourceTypeSpec[]): CompiledSchema {
  let found = compiled.get(specs);
  if (found === undefined) {
    found = compile(specs);
    compiled.set(specs, found);
  }
  return found;
}
