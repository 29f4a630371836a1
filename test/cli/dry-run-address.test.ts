/**
 * Issue 8 through the real CLI: `filterctl dry-run --rcpt '"Bob"@example.org'` shows the tempfail
 * of an over-quota bob (a Maildir++ made by the real maildrop tools), and `local_part: sensitive`
 * keeps Bob apart from bob.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_MAILDROP, MaildirFixtures } from "../support/maildir-fixtures.js";
import { runCli } from "./run.js";

describe.runIf(HAVE_MAILDROP)("filterctl dry-run with addresses in other case or quotes", () => {
  let fixtures: MaildirFixtures;
  let dir: string;
  const configWith = async (name: string, defaults: string) => {
    const path = join(dir, name);
    await writeFile(
      path,
      `${defaults}sources:
  mailboxes:
    type: maildir
    path: ${JSON.stringify(fixtures.template)}
rules:
  - name: backend-quota
    on: rcpt
    if: quota(rcpt) over
    then: 'tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"'
`,
    );
    return path;
  };
  const dryRun = (config: string, rcpts: string[], json = true) =>
    runCli([
      "dry-run",
      "--config",
      config,
      "--client-ip",
      "203.0.113.7",
      "--from",
      "sender@example.net",
      ...rcpts.flatMap((r) => ["--rcpt", r]),
      ...(json ? ["--json"] : []),
    ]);

  beforeAll(async () => {
    fixtures = await MaildirFixtures.create();
    await fixtures.overBytes("bob");
    dir = await mkdtemp(join(tmpdir(), "filterctl-dry-address-"));
  });
  afterAll(async () => {
    await rm(fixtures.root, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it("shows the tempfail of every spelling of bob, with the lookup made for bob@example.org", async () => {
    const config = await configWith("rules.yaml", "");
    const result = dryRun(config, ['"Bob"@example.org', "BOB@EXAMPLE.ORG"]);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.recipients).toEqual([
      {
        rcpt: '"Bob"@example.org',
        decision: "tempfail",
        reply: '452 4.2.2 Quota exceeded for "Bob"@example.org, try again later',
        rule: "backend-quota",
      },
      {
        rcpt: "BOB@EXAMPLE.ORG",
        decision: "tempfail",
        reply: "452 4.2.2 Quota exceeded for BOB@EXAMPLE.ORG, try again later",
        rule: "backend-quota",
      },
    ]);
    expect(report.result).toMatchObject({ decision: "tempfail" });
    const keys = report.stages.flatMap((s: { lookups: { key: string }[] }) => s.lookups.map((l) => l.key));
    expect(keys).toEqual(["bob@example.org", "bob@example.org"]);
    const text = dryRun(config, ['"Bob"@example.org'], false);
    expect(text.stdout).toContain("452 4.2.2 Quota exceeded for");
  });

  it("with defaults.local_part: sensitive, Bob is another mailbox (none here)", async () => {
    const config = await configWith("sensitive.yaml", "defaults:\n  local_part: sensitive\n");
    const report = JSON.parse(dryRun(config, ['"Bob"@example.org', '"bob"@Example.ORG']).stdout);
    expect(report.recipients.map((r: { decision: string }) => r.decision)).toEqual(["continue", "tempfail"]);
  });

  it("a wrong local_part value is a validate error with a suggestion", async () => {
    const config = await configWith("typo.yaml", "defaults:\n  local_part: insensitve\n");
    const result = runCli(["validate", "--config", config]);
    expect(result.status).toBe(1);
    expect(result.stdout + result.stderr).toContain(
      "2:15: error: 'local_part' must be insensitive or sensitive (did you mean 'insensitive'?)",
    );
  });
});
