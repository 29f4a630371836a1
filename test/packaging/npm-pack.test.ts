/**
 * What `npm install -g filterctl` gives a user, tried from the tarball `npm pack` makes: the
 * command on PATH, its version, the shipped examples valid, and filterctl(1) found by man.
 * Dependencies come from npm's cache when it has them (--prefer-offline), else the registry.
 * dist/ is built by the test setup, so packing skips the prepare script.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

let dir: string;
let prefix: string;

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 180_000, ...options });
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: result.stderr ?? "",
    error: result.error,
  };
}

describe("npm pack, then npm install -g of the tarball into a temporary prefix", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "filterctl-pack-"));
    prefix = join(dir, "prefix");
    const pack = run(NPM, ["pack", "--ignore-scripts", "--pack-destination", dir], { cwd: ROOT });
    expect(pack.status, pack.stderr).toBe(0);
    const tarball = join(dir, `filterctl-${VERSION}.tgz`);
    expect(existsSync(tarball)).toBe(true);
    const install = run(
      NPM,
      [
        "install",
        "-g",
        "--prefix",
        prefix,
        "--prefer-offline",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        tarball,
      ],
      { cwd: dir },
    );
    expect(install.status, install.stderr).toBe(0);
  }, 300_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const installed = () => join(prefix, "lib", "node_modules", "filterctl");
  const filterctl = (args: string[], cwd = dir) => run(join(prefix, "bin", "filterctl"), args, { cwd });

  it("installs the command, which prints the package's version", () => {
    const result = filterctl(["--version"]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`${VERSION}\n`);
  });

  it("ships the examples, and each rules file of them is valid", () => {
    const examples = join(installed(), "examples");
    const files = readdirSync(examples).filter(
      (name) => name.endsWith(".yaml") && !name.endsWith(".test.yaml"),
    );
    expect(files).toContain("rules.yaml");
    for (const file of files) {
      const result = filterctl(["validate", "--config", file], examples);
      expect(result.status, `${file}: ${result.stdout}${result.stderr}`).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^${file.replace(".", "\\.")}: OK: `));
    }
  });

  it("ships the example's test file, and it passes offline against the installed rules", () => {
    const result = filterctl(["test", "--offline", "rules.test.yaml"], join(installed(), "examples"));
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/\n\d+ passed, 0 failed\n$/);
  });

  it("installs filterctl(1) where man finds it", () => {
    expect(existsSync(join(prefix, "share", "man", "man1", "filterctl.1"))).toBe(true);
    const found = run("man", ["-w", "filterctl"], {
      cwd: dir,
      env: { ...process.env, MANPATH: join(prefix, "share", "man") },
    });
    if (found.error !== undefined) return; // no man(1) here: the installed file above is the check
    expect(found.status, found.stderr).toBe(0);
    expect(found.stdout.trim()).toMatch(/filterctl\.1$/);
    expect(readFileSync(found.stdout.trim(), "utf8")).toBe(
      readFileSync(join(ROOT, "man", "filterctl.1"), "utf8"),
    );
  });
});
