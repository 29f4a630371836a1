// Copies the repository's JSON Schema into the extension before `vsce package`, so the .vsix
// carries the schema of the filterctl it was built with (contributes.yamlValidation points here).

const { copyFileSync, mkdirSync } = require("node:fs");
const { join } = require("node:path");

mkdirSync(join(__dirname, "schema"), { recursive: true });
copyFileSync(
  join(__dirname, "..", "..", "schema", "rules.schema.json"),
  join(__dirname, "schema", "rules.schema.json"),
);
