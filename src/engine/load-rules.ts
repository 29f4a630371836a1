/**
 * Reading, checking and compiling a rules file, for every command that needs one.
 */

import type { Diagnostic, SourceFile } from "../common/diagnostics.js";
import { hasErrors, sortDiagnostics } from "../common/diagnostics.js";
import { ConfigReadError, checkReferencedFiles, parseConfig, readConfigFile } from "../config/load.js";
import type { Config } from "../config/types.js";
import { compileConfig } from "../dsl/compile.js";
import type { Ruleset } from "../runtime/ruleset.js";
import { SOURCE_CATALOG } from "../sources/catalog.js";
import type { SourceDescriptor } from "../sources/descriptor.js";

export type LoadOutcome =
  | { kind: "unreadable"; message: string }
  | {
      kind: "loaded";
      file: SourceFile;
      config?: Config;
      ruleset?: Ruleset;
      diagnostics: Diagnostic[];
    };

/**
 * `mustRead`: the files the configuration names are about to be read (serve): missing is an error
 * too. `sourceTypes`: the source types rules.yaml may use; the loaded Config carries them on to
 * whoever opens its sources.
 */
export async function loadRules(
  path: string,
  mustRead = false,
  sourceTypes: readonly SourceDescriptor[] = SOURCE_CATALOG,
): Promise<LoadOutcome> {
  let source: SourceFile;
  try {
    source = await readConfigFile(path);
  } catch (error) {
    if (error instanceof ConfigReadError) return { kind: "unreadable", message: error.message };
    throw error;
  }
  return loadRulesText(source, mustRead, sourceTypes);
}

/**
 * The same checks on text already in memory (the editor's unsaved buffer, `filterctl lsp`):
 * one code path, so the editor shows exactly what `validate` prints.
 */
export async function loadRulesText(
  source: SourceFile,
  mustRead = false,
  sourceTypes: readonly SourceDescriptor[] = SOURCE_CATALOG,
): Promise<Extract<LoadOutcome, { kind: "loaded" }>> {
  const parsed = parseConfig(source, { sourceTypes });
  if (parsed.config === undefined || hasErrors(parsed.diagnostics)) {
    return { kind: "loaded", file: source, diagnostics: sortDiagnostics([...parsed.diagnostics]) };
  }
  // A named file that is a FIFO, a device or too large is an error at the value naming it.
  const files = await checkReferencedFiles(parsed.config, mustRead);
  const compiled = compileConfig(parsed.config);
  const diagnostics = sortDiagnostics([...parsed.diagnostics, ...files, ...compiled.diagnostics]);
  return compiled.ruleset === undefined || hasErrors(files)
    ? { kind: "loaded", file: source, config: parsed.config, diagnostics }
    : {
        kind: "loaded",
        file: source,
        config: parsed.config,
        ruleset: compiled.ruleset,
        diagnostics,
      };
}
