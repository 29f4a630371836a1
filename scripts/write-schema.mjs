// Writes schema/rules.schema.json (and its validator as code, schema/rules.validate.cjs): the JSON Schema of rules.yaml for the built-in source types,
// assembled from src/config/schema-base.ts and each type's fragment (src/sources/types/), for
// editors. `npm run schema` builds dist/ first; test/config/schema.test.ts fails when the file
// is out of date.
import { writeFileSync } from "node:fs";
import { assembleSchema, SCHEMA_URL } from "../dist/config/schema.js";
import { standaloneValidator } from "../dist/config/schema-standalone.js";
import { SOURCE_CATALOG } from "../dist/sources/catalog.js";

const VALIDATOR_URL = new URL("../schema/rules.validate.cjs", import.meta.url);

const WIDTH = 110;

/** One line: `{ "a": 1, "b": [1, 2] }`. */
function inline(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(inline).join(", ")}]`;
  const entries = Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${inline(item)}`);
  return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
}

/** JSON with objects and lists on one line when they fit, as the file was written by hand. */
function format(value, indent, key = "") {
  const line = inline(value);
  // The line also holds the key before the value and the comma after it.
  if (value === null || typeof value !== "object" || indent.length + key.length + line.length < WIDTH)
    return line;
  const inner = `${indent}  `;
  const items = Array.isArray(value)
    ? value.map((item) => `${inner}${format(item, inner)}`)
    : Object.entries(value).map(
        ([key, item]) => `${inner}${JSON.stringify(key)}: ${format(item, inner, `${JSON.stringify(key)}: `)}`,
      );
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${items.join(",\n")}\n${indent}${close}`;
}

writeFileSync(SCHEMA_URL, `${format(assembleSchema(SOURCE_CATALOG), "")}\n`);
process.stdout.write(`wrote ${SCHEMA_URL.pathname}\n`);

// The validator as code (src/config/schema-standalone.ts): serve validates without loading ajv.
writeFileSync(VALIDATOR_URL, standaloneValidator(assembleSchema(SOURCE_CATALOG)));
process.stdout.write(`wrote ${VALIDATOR_URL.pathname}\n`);
