/**
 * Names a source may not have, or rules could not name it: the rule language's keywords (from
 * the parser's tokens) and the first parts of its values and its functions (from the registry:
 * `from.domain`, `quota(...)`), which win over sources.
 */
import type { Diagnostic } from "../common/diagnostics.js";
import type { Config } from "../config/types.js";
import type { Registry } from "./registry.js";
import { KEYWORD_WORDS } from "./token-kinds.js";

export function reservedNames(registry: Registry): string[] {
  return [...KEYWORD_WORDS, ...registry.heads()];
}

/** An error for each source named like a word of the rule language (case does not matter). */
export function checkSourceNames(config: Config, registry: Registry): Diagnostic[] {
  const reserved = new Set(reservedNames(registry));
  const diagnostics: Diagnostic[] = [];
  for (const source of config.sources.values()) {
    if (!reserved.has(source.name.toLowerCase())) continue;
    diagnostics.push(
      config.file.diagnostic(
        source.offset,
        "error",
        `source name '${source.name}' is a word of the rule language`,
        `rules could not name it; call it, e.g., '${source.name}_list'`,
      ),
    );
  }
  return diagnostics;
}
