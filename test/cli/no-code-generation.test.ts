/**
 * The compiler makes copies of its closure factories with `new Function` (dsl/closure-copies.ts).
 * A Node run with --disallow-code-generation-from-strings refuses that: filterctl must still
 * work, with the factories themselves, and answer exactly as it does otherwise.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BIN } from "./run.js";

const EXAMPLE = new URL("../../examples/rules.yaml", import.meta.url).pathname;

function dryRun(nodeFlags: string[]) {
  const args = [
    ...nodeFlags,
    BIN,
    "dry-run",
    "--config",
    EXAMPLE,
    "--client-ip",
    "192.0.2.7",
    "--helo",
    "localhost",
    "--from",
    "someone@example.net",
    "--rcpt",
    "postmaster@example.org",
  ];
  const result = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 20_000 });
  return {
    status: result.status,
    stdout: result.stdout.replace(/\d+\.\d ms/g, "T ms"),
    stderr: result.stderr,
  };
}

describe("filterctl under --disallow-code-generation-from-strings", () => {
  it("dry-run answers as without the flag", () => {
    const plain = dryRun([]);
    const refused = dryRun(["--disallow-code-generation-from-strings"]);
    expect(plain.stderr).toBe("");
    expect(plain.status).toBe(0);
    expect(plain.stdout).toContain("postmaster@example.org");
    expect(refused).toEqual(plain);
  });
});
