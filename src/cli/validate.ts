/**
 * `filterctl validate`: parse, schema-check, type-check and compile; print every diagnostic.
 */

import { STAGES } from "../common/stages.js";
import { checkRules, EXIT_INVALID, EXIT_OK, exitCodeOf } from "../engine/open-rules.js";
import { renderDiagnostic, summary } from "./diagnostics-output.js";

export async function validateCommand(options: { config: string; json: boolean }): Promise<number> {
  const checked = await checkRules(options.config);
  if (checked.kind === "unreadable") {
    process.stderr.write(`filterctl: ${checked.message}\n`);
    return exitCodeOf(checked);
  }
  const ok = checked.kind === "checked";
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok, diagnostics: checked.diagnostics }, null, 2)}\n`);
    return ok ? EXIT_OK : EXIT_INVALID;
  }
  for (const diagnostic of checked.diagnostics)
    process.stdout.write(`${renderDiagnostic(diagnostic, checked.file)}\n`);
  if (checked.kind !== "checked") {
    process.stdout.write(`${checked.file.path}: invalid (${summary(checked.diagnostics)})\n`);
    return exitCodeOf(checked);
  }
  const { ruleset, config } = checked;
  const perStage = STAGES.map((stage) => [stage, ruleset.rulesFor(stage).length] as const)
    .filter(([, n]) => n > 0)
    .map(([stage, n]) => `${stage} ${n}`)
    .join(", ");
  const rules = ruleset.rules.length;
  const sources = config.sources.size;
  process.stdout.write(
    `${checked.file.path}: OK: ${rules} rule${rules === 1 ? "" : "s"} (${perStage || "none"}), ${sources} source${sources === 1 ? "" : "s"}, ${summary(checked.diagnostics)}\n`,
  );
  return EXIT_OK;
}
