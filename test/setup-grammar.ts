/**
 * The grammar's parser (chevrotain-parser.ts) is required by parser.ts the first time a rule needs
 * it, from the built JavaScript; the tests run the TypeScript sources, so it is given here. The
 * built CLI's own loading of it is tested by every test that runs it on a broken file
 * (test/rules/broken.test.ts, test/cli/*).
 */
import { chevrotainParse } from "../src/dsl/chevrotain-parser.js";
import { provideGrammar } from "../src/dsl/parser.js";

provideGrammar(chevrotainParse);
