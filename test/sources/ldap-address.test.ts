/**
 * Issue 8 against a real, private slapd (test/support/slapd.ts): an LDAP lookup of an address
 * written with other case or needless quotes finds the same entry, because `{key}`, `{user}` and
 * `{address}` are filled with the normalised address. The rules run through the real loader,
 * compiler, registry and LDAP source.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { type DryRunReport, dryRun } from "../../src/engine/dry-run.js";
import type { Ruleset } from "../../src/runtime/ruleset.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";
import { SourceRegistry } from "../../src/sources/registry.js";
import { BIND_DN, BIND_PASSWORD, Slapd } from "../support/slapd.js";

describe("LDAP lookups of addresses in any case or quoting hit the same entry", () => {
  let slapd: Slapd;
  let dir: string;
  let ruleset: Ruleset;
  let registry: SourceRegistry;

  beforeAll(async () => {
    slapd = await Slapd.start();
    dir = await mkdtemp(join(tmpdir(), "filterctl-ldap-address-"));
    await writeFile(join(dir, "ldap.secret"), `${BIND_PASSWORD}\n`, { mode: 0o600 });
    const path = join(dir, "rules.yaml");
    await writeFile(
      path,
      `sources:
  directory:
    type: ldap
    url: "${slapd.url}"
    bind_dn: "${BIND_DN}"
    password_file: ldap.secret
    base: "dc=mail"
    recipient_delimiter: "+"
    tables:
      local_domains: "(sendmailMTAClassValue={key})"
      addresses: "(mailLocalAddress={key})"
      mailboxes: "(mailLocalAddress={user}@{domain})"
rules:
  - |
    on mail: if from.domain in directory.local_domains and from not in directory.addresses
      then reject 550 5.7.1 "Reject: your From address {from} does not exist."
  - on rcpt: if rcpt not in directory.mailboxes then reject 550 5.1.1 "No such user {rcpt}"
`,
    );
    const loaded = await loadConfig(path, { sourceTypes: SOURCE_CATALOG });
    if (loaded.config === undefined) throw new Error(JSON.stringify(loaded.diagnostics));
    const compiled = compileConfig(loaded.config);
    if (compiled.ruleset === undefined) throw new Error(JSON.stringify(compiled.diagnostics));
    ruleset = compiled.ruleset;
    registry = await SourceRegistry.create(loaded.config);
  });
  afterAll(async () => {
    await registry?.close();
    await slapd?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const run = (from: string, rcpts: string[]): Promise<DryRunReport> =>
    dryRun(ruleset, registry, { clientIp: "203.0.113.7", from, rcpts, headers: [], body: Buffer.alloc(0) });

  it("a real sender in other case and quotes is found; the reply shows the address as given", async () => {
    const known = await run('<"Bob"@Example.ORG>', []);
    expect(known.stages.find((s) => s.stage === "mail")?.decision).toBe("continue");
    const lookups = known.stages.flatMap((s) => s.lookups.map((l) => `${l.what} ${l.key} ${l.result}`));
    expect(lookups).toEqual([
      "directory.local_domains example.org found",
      "directory.addresses bob@example.org found",
    ]);
    const unknown = await run('"Carol"@Example.ORG', ["alice@example.org"]);
    expect(unknown.result.reply).toBe(
      '550 5.7.1 Reject: your From address "Carol"@Example.ORG does not exist.',
    );
  });

  it("{user} is the unquoted, folded local part without +detail", async () => {
    const report = await run("sender@outside.test", [
      '"Alice+Lists"@EXAMPLE.org',
      "POSTMASTER@example.org.",
      '"j\\örg"@Example.org',
      "mallory@example.org",
    ]);
    expect(report.recipients.map((r) => `${r.rcpt}: ${r.reply ?? r.decision}`)).toEqual([
      '"Alice+Lists"@EXAMPLE.org: continue',
      "POSTMASTER@example.org.: continue",
      '"j\\örg"@Example.org: continue',
      "mallory@example.org: 550 5.1.1 No such user mallory@example.org",
    ]);
  });

  it("a quoted local part that needs its quotes stays escaped in the filter: no injection", async () => {
    const report = await run("sender@outside.test", [
      '"bob)(mailLocalAddress=*"@example.org',
      '"*"@example.org',
      '"a\\"b"@example.org',
    ]);
    expect(report.recipients.map((r) => r.decision)).toEqual(["reject", "reject", "reject"]);
  });
});
