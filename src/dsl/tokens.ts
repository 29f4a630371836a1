/**
 * The rule language's tokens (token-kinds.ts) made Chevrotain token types, and Chevrotain's lexer
 * of them. Importing this module loads Chevrotain: only the grammar's parser (chevrotain-parser.ts,
 * loaded when the hand-written parser first gives up on a rule) and the editor's features do.
 */
import { createToken, Lexer, type TokenType } from "./chevrotain.js";
import { ALL_TOKENS, SKIPPED_TOKENS } from "./token-kinds.js";

export * from "./token-kinds.js";

/**
 * Gives each token object the properties Chevrotain's createToken computes (its index, its empty
 * categories), so the objects the hand-written lexer puts in its tokens are the token types
 * Chevrotain's lexer and parser use.
 */
function makeChevrotainTypes(kinds: readonly TokenType[]): void {
  for (const kind of kinds) {
    const config: Parameters<typeof createToken>[0] = { name: kind.name, pattern: kind.PATTERN };
    if (kind.LONGER_ALT !== undefined) config.longer_alt = kind.LONGER_ALT;
    if (SKIPPED_TOKENS.includes(kind)) config.group = Lexer.SKIPPED;
    Object.assign(kind, createToken(config));
  }
}

makeChevrotainTypes(ALL_TOKENS);

export const RuleLexer = new Lexer(ALL_TOKENS, {
  positionTracking: "onlyOffset",
  ensureOptimizations: false,
});
