/**
 * `filterctl validate`: parse, schema-check, type-check and compile; print every diagnostic.
 */

import { hasErrors } from "../common/diagnostics.js";
import { STAGES } from "../common/stages.js";
import { loadRules } from "../engine/load-rules.js";
import { renderDiagnostic, summary } from "./diagnostics-output.js";

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

export async function validateCommand(options: { config: string; json: boolean }): Promise<number> {
  const loaded = await loadRules(options.config);
  if (loaded.kind === "unreadable") {
    process.stderr.write(`filterctl: ${loaded.message}\n`);
    return EXIT_USAGE;
  }
  const ok = !hasErrors(loaded.diagnostics) && loaded.ruleset !== undefined;
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok, diagnostics: loaded.diagnostics }, null, 2)}\n`);
    return ok ? EXIT_OK : EXIT_INVALID;
  }
  for (const diagnostic of loaded.diagnostics)
    process.stdout.write(`${renderDiagnostic(diagnostic, loaded.file)}\n`);
  if (!ok) {
    process.stdout.write(`${loaded.file.path}: invalid (${summary(loaded.diagnostics)})\n`);
    return EXIT_INVALID;
  }
  const ruleset = loaded.ruleset;
  const perStage = STAGES.map((stage) => [stage, ruleset?.rulesFor(stage).length ?? 0] as const)
    .filter(([, n]) => n > 0)
    .map(([stage, n]) => `${stage} ${n}`)
    .join(", ");
  const rules = ruleset?.rules.length ?? 0;
  const sources = loaded.config?.sources.size ?? 0;
  process.stdout.write(
    `${loaded.file.path}: OK: ${rules} rule${rules === 1 ? "" : "s"} (${perStage || "none"}), ${sources} source${sources === 1 ? "" : "s"}, ${summary(loaded.diagnostics)}\n`,
  );
  return EXIT_OK;
}
