import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./run.js";

const EXAMPLE = new URL("../../examples/rules.yaml", import.meta.url).pathname;

describe("dry-run with real sources", () => {
  it("uses --size as the incoming bytes of the quota check", () => {
    const base = ["dry-run", "--config", EXAMPLE, "--client-ip", "203.0.113.7", "--from", "a@example.com"];
    const small = runCli([...base, "--rcpt", "alice@example.org", "--json"]);
    expect(small.status).toBe(0);
    expect(JSON.parse(small.stdout).recipients[0].decision).toBe("continue");
    // alice uses 2500 of 100000000 bytes: a message announced at 99999000 bytes would not fit.
    const big = runCli([...base, "--rcpt", "alice@example.org", "--size", "99999000", "--json"]);
    expect(JSON.parse(big.stdout).recipients[0]).toMatchObject({
      decision: "tempfail",
      rule: "mailbox-full",
    });
    expect(runCli([...base, "--rcpt", "alice@example.org", "--size", "lots"]).status).toBe(2);
  });

  it("says why sources cannot be opened, with exit 1 (invalid configuration), instead of a stack trace", () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-dry-"));
    const config = join(dir, "rules.yaml");
    writeFileSync(
      config,
      [
        "sources:",
        "  directory:",
        "    type: ldap",
        '    url: "ldap://127.0.0.1:1"',
        '    bind_dn: "cn=x,dc=mail"',
        "    password_env: FILTERCTL_TEST_UNSET_PASSWORD",
        '    base: "dc=mail"',
        "    tables:",
        '      addresses: "(mailLocalAddress={key})"',
        "rules:",
        "  - on mail: if from in directory.addresses then accept",
        "",
      ].join("\n"),
    );
    const result = runCli([
      "dry-run",
      "--config",
      config,
      "--client-ip",
      "192.0.2.1",
      "--from",
      "a@b.c",
      "--rcpt",
      "d@e.f",
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("cannot open the sources of");
    expect(result.stderr).toContain("FILTERCTL_TEST_UNSET_PASSWORD");
    expect(result.stderr).not.toContain("    at ");
  });
});
