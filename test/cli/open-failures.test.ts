/**
 * One exit code per kind of failure to open a rules file, whatever the command (SPEC: 1 invalid
 * configuration or input, 2 usage error or unreadable file). A source that cannot be opened is a
 * configuration problem: exit 1, for dry-run (test/cli/dry-run-sources.test.ts), dnsbl-status
 * and serve alike.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { dnsblStatusCommand } from "../../src/cli/dnsbl-status.js";
import { exitCodeOf, openRules } from "../../src/engine/open-rules.js";
import type { SourceFactories } from "../../src/sources/registry.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-open-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RULES = `
sources:
  zen:
    type: dnsbl
    zone: zen.example
  backend:
    type: http
    url: "http://127.0.0.1:1/quota?u={user}"
rules:
  - on connect: if client.ip in zen then reject
  - on rcpt: if quota(rcpt, backend) over then tempfail 452 4.2.2
`;

/** Every source of a type fails to open, as an LDAP source with an unset password variable does. */
const failing = (type: "dnsbl" | "http"): SourceFactories => ({
  [type]: () => {
    throw new Error(`${type} cannot be opened here`);
  },
});

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("opening the rules", () => {
  it("each kind of failure has one exit code", async () => {
    const missing = await openRules(join(dir, "missing.yaml"));
    expect(missing.kind).toBe("unreadable");
    if (missing.kind !== "opened") expect(exitCodeOf(missing)).toBe(2);

    const invalid = await openRules(write("invalid.yaml", "rules:\n  - on connect: rejct\n"));
    expect(invalid.kind).toBe("invalid");
    if (invalid.kind !== "opened") expect(exitCodeOf(invalid)).toBe(1);

    const path = write("rules.yaml", RULES);
    const sources = await openRules(path, { registry: { factories: failing("http") } });
    expect(sources).toMatchObject({
      kind: "sources",
      message: `cannot open the sources of ${path}: http cannot be opened here`,
    });
    if (sources.kind !== "opened") expect(exitCodeOf(sources)).toBe(1);
  });

  it("opens only the sources asked for", async () => {
    const path = write("only.yaml", RULES);
    const opened = await openRules(path, {
      only: (s) => s.type === "dnsbl",
      registry: { factories: failing("http") },
    });
    expect(opened.kind).toBe("opened");
    if (opened.kind === "opened") {
      expect(opened.registry.configs().map((c) => c.name)).toEqual(["zen"]);
      await opened.registry.close();
    }
  });
});

describe("dnsbl-status", () => {
  it("a list that cannot be opened: exit 1, saying why, nothing on stdout", async () => {
    const path = write("dnsbl.yaml", RULES);
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      // The http source would fail too: dnsbl-status opens the DNSBLs only.
      const code = await dnsblStatusCommand({ config: path, json: false }, { factories: failing("dnsbl") });
      expect(code).toBe(1);
      expect(stderr.mock.calls.map((c) => String(c[0])).join("")).toBe(
        `filterctl: cannot open the sources of ${path}: dnsbl cannot be opened here\n`,
      );
      expect(stdout).not.toHaveBeenCalled();
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });
});
