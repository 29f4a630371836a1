/**
 * Chevrotain, loaded from the one-file ESM bundle its package ships (`lib/chevrotain.mjs`), not
 * from its package entry (`lib/src/api.js`). Why: the entry imports lodash-es, whose index loads
 * some 650 modules — 33 MB of RSS when imported alone, against 6 MB for the bundle, and `serve`
 * keeps whatever it loaded for its whole life (`npm run bench:rss`). The bundle is the
 * same version built from the same sources. The package's exports map names only the entry, so the
 * bundle is found next to it. Import Chevrotain's values from here, never from "chevrotain" (types
 * may come from either: they cost nothing at run time).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

type Chevrotain = typeof import("chevrotain");

// Loaded with require (an ES module without top-level await, which Node loads synchronously), so
// that this module has no top-level await either: parser.ts requires the grammar's parser, and
// with it this module, in the middle of a synchronous parse.
const require = createRequire(import.meta.url);
const bundle = require(join(dirname(require.resolve("chevrotain")), "../chevrotain.mjs")) as Chevrotain;

export const { createToken, EmbeddedActionsParser, Lexer, tokenLabel } = bundle;
export type Lexer = import("chevrotain").Lexer;
export type { IParserErrorMessageProvider, IToken, TokenType } from "chevrotain";
