// Writes editors/vscode/syntaxes/filterctl-rules.injection.json: the TextMate grammar of the rule
// language, made from the registry's words by src/dsl/textmate.ts. `npm run grammar` builds dist/
// first; test/editors/grammar.test.ts fails when the file is out of date.
import { writeFileSync } from "node:fs";
import { ruleGrammar } from "../dist/dsl/textmate.js";

const target = new URL("../editors/vscode/syntaxes/filterctl-rules.injection.json", import.meta.url);
writeFileSync(target, `${JSON.stringify(ruleGrammar(), null, 2)}\n`);
process.stdout.write(`wrote ${target.pathname}\n`);
