/**
 * Benches that load rules in process run from dist-bench/, where src/config/schema.ts looks for
 * the schema at ../../schema/ from its own module, i.e. dist-bench/schema/: put a copy there.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** dist-bench/bench/ → the repository root. */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function provideSchema(): void {
  const target = join(repo, "dist-bench", "schema", "rules.schema.json");
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(repo, "schema", "rules.schema.json"), target);
}
