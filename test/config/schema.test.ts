import { readdirSync, readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { STAGES } from "../../src/common/stages.js";
import { assembleSchema, parseConfig, readConfigFile, SCHEMA_URL } from "../../src/config/load.js";
import { rulesSchema } from "../../src/config/schema.js";
import { EDITOR_KEYWORDS } from "../../src/config/schema-editor.js";
import { standaloneValidator } from "../../src/config/schema-standalone.js";
import type { SourceTypeSpec } from "../../src/config/types.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";

const schema = JSON.parse(readFileSync(SCHEMA_URL, "utf8")) as Record<string, unknown>;
const definitions = schema.definitions as Record<string, Record<string, unknown>>;
const SOURCE_TYPES = SOURCE_CATALOG.map((t) => t.type);
/** The built-in types, one summary (a description, no rule) told otherwise: a schema no code was generated for. */
const RETOLD: SourceTypeSpec[] = SOURCE_CATALOG.map((spec, i) =>
  i === 0 ? { ...spec, schema: { ...spec.schema, summary: `${spec.schema.summary}, retold` } } : spec,
);

/** Every `properties` entry (and additionalProperties schema) of the schema, with its pointer. */
function properties(node: unknown, pointer: string, out: [string, Record<string, unknown>][]): void {
  if (node === null || typeof node !== "object") return;
  if (Array.isArray(node)) {
    node.forEach((item, i) => {
      properties(item, `${pointer}/${i}`, out);
    });
    return;
  }
  const object = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(object)) {
    if (key === "properties" && value !== null && typeof value === "object") {
      for (const [name, property] of Object.entries(value as Record<string, unknown>)) {
        out.push([`${pointer}/properties/${name}`, property as Record<string, unknown>]);
      }
    }
    properties(value, `${pointer}/${key}`, out);
  }
}

describe("schema/rules.schema.json", () => {
  it("is the schema the source types assemble (else run `npm run schema`)", () => {
    expect(schema, "schema/rules.schema.json is out of date: run `npm run schema`").toEqual(
      assembleSchema(SOURCE_CATALOG),
    );
  });

  it("says what happens to connections over max_connections: closed at once, as the server does", () => {
    const properties = schema.properties as Record<string, { description: string }>;
    const text = properties.max_connections?.description ?? "";
    expect(text).toMatch(/closed at once/);
    expect(text).not.toMatch(/wait/);
  });

  it("compiles with ajv in strict mode", () => {
    const ajv = new Ajv({ strict: true, strictRequired: false, allowUnionTypes: true });
    for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
    expect(() => ajv.compile(schema)).not.toThrow();
  });

  it("describes every property, for editors", () => {
    const all: [string, Record<string, unknown>][] = [];
    properties(schema, "#", all);
    expect(all.length).toBeGreaterThan(60);
    const undescribed = all
      .filter(([pointer]) => !/\/if\/properties\//.test(pointer))
      .filter(([, property]) => typeof property.description !== "string" || property.description.length < 10)
      .map(([pointer]) => pointer);
    expect(undescribed).toEqual([]);
    for (const [name, definition] of Object.entries(definitions)) {
      expect(typeof definition.description, name).toBe("string");
    }
  });

  it("gives every key a markdownDescription, and no bare $ref", () => {
    const all: [string, Record<string, unknown>][] = [];
    properties(schema, "#", all);
    const missing = all
      .filter(([pointer]) => !/\/if\/properties\//.test(pointer))
      .filter(([, p]) => typeof p.markdownDescription !== "string" || typeof p.description !== "string")
      .map(([pointer]) => pointer);
    expect(missing).toEqual([]);
    const bare = all.filter(([, p]) => p.$ref !== undefined && p.markdownDescription === undefined);
    expect(bare.map(([pointer]) => pointer)).toEqual([]);
  });

  it("keeps markdownDescription off definitions, so a $ref never overwrites the key's text", () => {
    // Resolvers merge the target of a $ref into the referring key (some overwriting its keys).
    for (const [name, definition] of Object.entries(definitions))
      expect(definition.markdownDescription, name).toBeUndefined();
    const quota = definitions.quota as { description: string; else: Record<string, unknown> };
    expect(quota.else.markdownDescription).toBe(quota.description);
  });

  it("says in words what every pattern wants", () => {
    const patterns: [string, Record<string, unknown>][] = [];
    const walk = (node: unknown, pointer: string): void => {
      if (node === null || typeof node !== "object") return;
      const object = node as Record<string, unknown>;
      if (typeof object.pattern === "string") patterns.push([pointer, object]);
      for (const [key, value] of Object.entries(object)) walk(value, `${pointer}/${key}`);
    };
    walk(schema, "#");
    expect(patterns.length).toBeGreaterThan(25);
    const unexplained = patterns
      .filter(([, s]) => typeof s.patternErrorMessage !== "string" || /[\\^$]/.test(s.patternErrorMessage))
      .map(([pointer]) => pointer);
    expect(unexplained).toEqual([]);
  });

  it("forbids unknown keys in every mapping", () => {
    const all: [string, Record<string, unknown>][] = [["#", schema]];
    for (const [name, definition] of Object.entries(definitions))
      all.push([`#/definitions/${name}`, definition]);
    properties(schema, "#", all);
    const open = all
      .filter(([, s]) => s.type === "object" && s.additionalProperties === undefined)
      .map(([pointer]) => pointer);
    // A source is checked by the branch its `type` selects, and each branch forbids unknown keys.
    expect(open).toEqual(["#/definitions/source"]);
    for (const type of SOURCE_TYPES) expect(definitions[`${type}Source`]?.additionalProperties).toBe(false);
  });

  it("agrees with the code on source types and stages", () => {
    expect(definitions.sourceType?.enum).toEqual([...SOURCE_TYPES]);
    expect(definitions.stage?.enum).toEqual([...STAGES]);
  });

  it("accepts the specification's example as a plain editor would (no filterctl code)", () => {
    const text = readFileSync(new URL("./fixtures/spec-example.yaml", import.meta.url), "utf8");
    const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strictRequired: false });
    // The editor keywords are VS Code's and yaml-language-server's: ajv's strict mode must be told.
    for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
    const validate = ajv.compile(schema);
    expect(validate(parse(text))).toBe(true);
    expect(validate({ rules: [{ on: "rcpt", then: "x", bogus: 1 }] })).toBe(false);
  });
});

describe("schema/rules.validate.cjs, the validator as code (serve validates without loading ajv)", () => {
  it("is the validator of the schema the source types assemble (else run `npm run schema`)", () => {
    const written = readFileSync(new URL("../../schema/rules.validate.cjs", import.meta.url), "utf8");
    expect(written === standaloneValidator(assembleSchema(SOURCE_CATALOG)), "run `npm run schema`").toBe(
      true,
    );
  });

  it("validates the built-in source types; ajv compiles any other schema at run time", () => {
    // ajv gives the functions it compiles their schemaEnv; the generated code has none.
    expect("schemaEnv" in rulesSchema(SOURCE_CATALOG).validate).toBe(false);
    expect("schemaEnv" in rulesSchema(RETOLD).validate).toBe(true);
  });

  it("gives every broken configuration the diagnostics ajv compiling the schema gives", async () => {
    const broken = new URL("./broken/", import.meta.url);
    const names = readdirSync(broken).filter((name) => name.endsWith(".yaml"));
    expect(names.length).toBeGreaterThan(50);
    let schemaErrors = 0;
    for (const name of names) {
      const file = await readConfigFile(new URL(name, broken).pathname);
      const generated = parseConfig(file, { sourceTypes: SOURCE_CATALOG }).diagnostics;
      const compiled = parseConfig(file, { sourceTypes: RETOLD }).diagnostics;
      expect(generated, name).toEqual(compiled);
      if (generated.length > 0) schemaErrors++;
    }
    expect(schemaErrors).toBe(names.length);
  });
});
