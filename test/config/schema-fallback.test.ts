/**
 * A checkout whose schema/rules.validate.cjs is missing (it has not run `npm run schema`): ajv
 * compiles the schema when the configuration is loaded, and every diagnostic is the same. Run
 * through the real command line, on a copy of the build without the schema folder.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const REPO = resolve(import.meta.dirname, "../..");
const BROKEN = join(REPO, "test/config/broken");

function validate(bin: string, config: string) {
  const result = spawnSync(process.execPath, [bin, "validate", "--config", config], { encoding: "utf8" });
  // The file's path is the same for both; nothing else may differ.
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the schema without its generated validator", () => {
  const copy = mkdtempSync(join(tmpdir(), "filterctl-noschema-"));
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it("validate gives the same diagnostics and exit codes through ajv", () => {
    cpSync(join(REPO, "dist"), join(copy, "dist"), { recursive: true });
    cpSync(join(REPO, "bin"), join(copy, "bin"), { recursive: true });
    copyFileSync(join(REPO, "package.json"), join(copy, "package.json"));
    symlinkSync(join(REPO, "node_modules"), join(copy, "node_modules"));
    expect(existsSync(join(REPO, "schema/rules.validate.cjs"))).toBe(true);
    expect(existsSync(join(copy, "schema"))).toBe(false);
    // Files whose mistakes the schema finds (types, required keys, shapes), and a valid one.
    const files = ["missing-type", "bad-mode", "bad-size", "missing-url", "option-of-other-type"]
      .concat(["rules-not-a-list", "bad-on-error", "list-not-mapping", "empty-value"])
      .map((name) => `${name}.yaml`);
    for (const file of [...files, "../../../examples/rules.yaml"]) {
      const config = join(BROKEN, file);
      const generated = validate(join(REPO, "bin/filterctl.js"), config);
      const compiled = validate(join(copy, "bin/filterctl.js"), config);
      expect({ file, ...compiled }).toEqual({ file, ...generated });
    }
    // The copy loaded ajv to compile the schema; the checkout did not.
    const loads = (bin: string) =>
      spawnSync(process.execPath, [bin, "validate", "--config", join(BROKEN, "missing-type.yaml")], {
        encoding: "utf8",
        env: { ...process.env, NODE_DEBUG: "module" },
      }).stderr;
    expect(loads(join(copy, "bin/filterctl.js"))).toMatch(/REQUEST ajv parent: .*dist\/config\/schema\.js/);
    expect(loads(join(REPO, "bin/filterctl.js"))).not.toMatch(/REQUEST ajv parent/);
    // A broken file is refused both ways, an example accepted: the comparison saw both outcomes.
    expect(validate(join(copy, "bin/filterctl.js"), join(BROKEN, "missing-type.yaml")).status).toBe(1);
    expect(validate(join(copy, "bin/filterctl.js"), join(REPO, "examples/rules.yaml")).status).toBe(0);
  }, 120_000);
});
