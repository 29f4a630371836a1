/**
 * Issue 8: a quota check dodged by spelling the recipient differently (`Bob@example.org`,
 * `"bob"@example.org` → 250 while bob is over quota). The rules run against a Maildir++ made by
 * the real maildrop tools, through the real loader, compiler, source registry and maildir source.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { dryRun } from "../../src/engine/dry-run.js";
import type { Ruleset } from "../../src/runtime/ruleset.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";
import { SourceRegistry } from "../../src/sources/registry.js";
import { HAVE_MAILDROP, MaildirFixtures } from "../support/maildir-fixtures.js";

const RULE = "on rcpt: if quota(rcpt) over then tempfail 452 4.2.2";

async function rulesAt(
  dir: string,
  template: string,
  extra: string,
): Promise<{ ruleset: Ruleset; registry: SourceRegistry }> {
  const path = join(dir, `rules-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(
    path,
    `${extra}sources:\n  mailboxes:\n    type: maildir\n    path: ${JSON.stringify(template)}\n    recipient_delimiter: "+"\nrules:\n  - ${JSON.stringify(RULE)}\n`,
  );
  const loaded = await loadConfig(path, { sourceTypes: SOURCE_CATALOG });
  if (loaded.config === undefined) throw new Error(JSON.stringify(loaded.diagnostics));
  const compiled = compileConfig(loaded.config);
  if (compiled.ruleset === undefined) throw new Error(JSON.stringify(compiled.diagnostics));
  const registry = await SourceRegistry.create(loaded.config);
  return { ruleset: compiled.ruleset, registry };
}

async function decisions(rules: { ruleset: Ruleset; registry: SourceRegistry }, rcpts: string[]) {
  const report = await dryRun(rules.ruleset, rules.registry, {
    clientIp: "203.0.113.7",
    from: "sender@example.net",
    rcpts,
    headers: [],
    body: Buffer.alloc(0),
  });
  return Object.fromEntries(report.recipients.map((r) => [r.rcpt, r.reply ?? r.decision]));
}

describe.runIf(HAVE_MAILDROP)("a quota check cannot be dodged by case or quoting", () => {
  let fixtures: MaildirFixtures;
  let dir: string;
  const opened: SourceRegistry[] = [];

  beforeAll(async () => {
    fixtures = await MaildirFixtures.create();
    dir = await mkdtemp(join(tmpdir(), "filterctl-address-"));
    await fixtures.overBytes("bob");
    await fixtures.underQuota("alice");
  });
  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()));
    await rm(fixtures.root, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it("by default every spelling of bob is over quota; alice is not", async () => {
    const rules = await rulesAt(dir, fixtures.template, "");
    opened.push(rules.registry);
    const spellings = [
      "bob@example.org",
      "Bob@example.org",
      '"bob"@example.org',
      "BOB@EXAMPLE.ORG",
      '<"Bob"@Example.ORG>',
      '"b\\ob"@example.org',
      "bob@example.org.",
      "Bob+Lists@example.org",
      '"Bob+x y"@example.org',
    ];
    const got = await decisions(rules, [...spellings, "Alice@Example.org"]);
    for (const rcpt of spellings) expect(got[rcpt], rcpt).toBe("452 4.2.2 Try again later");
    expect(got["Alice@Example.org"]).toBe("continue");
  });

  it("with local_part: sensitive, Bob is not bob (domains and needless quotes still normalise)", async () => {
    const rules = await rulesAt(dir, fixtures.template, "defaults:\n  local_part: sensitive\n");
    opened.push(rules.registry);
    const got = await decisions(rules, [
      "Bob@example.org",
      '"Bob"@example.org',
      '"bob"@EXAMPLE.org',
      "bob@Example.ORG",
    ]);
    expect(got).toEqual({
      "Bob@example.org": "continue",
      '"Bob"@example.org': "continue",
      '"bob"@EXAMPLE.org': "452 4.2.2 Try again later",
      "bob@Example.ORG": "452 4.2.2 Try again later",
    });
  });

  it("mbox and http quota sources get the normalised {user} too", async () => {
    const spool = join(dir, "spool");
    await mkdir(spool, { recursive: true });
    await writeFile(join(spool, "carol"), "x".repeat(2000));
    const asked: string[] = [];
    const backend = createServer((request, response) => {
      const user = new URL(request.url ?? "/", "http://x").searchParams.get("u") ?? "";
      asked.push(user);
      response.end(user === "dave" ? "OVERQUOTA dave 2000 1000 1 0\n" : `OK ${user} 0 1000 0 0\n`);
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    try {
      const port = (backend.address() as AddressInfo).port;
      const path = join(dir, "mbox-http.yaml");
      await writeFile(
        path,
        `sources:
  spool:
    type: mbox
    path: ${JSON.stringify(join(spool, "{user}"))}
    quota: 1000
  backend:
    type: http
    url: "http://127.0.0.1:${port}/quota?u={user}"
rules:
  - on rcpt: if quota(rcpt, spool) over then tempfail 452 4.2.2 "spool"
  - on rcpt: if quota(rcpt, backend) over then tempfail 452 4.2.2 "backend"
`,
      );
      const loaded = await loadConfig(path, { sourceTypes: SOURCE_CATALOG });
      if (loaded.config === undefined) throw new Error(JSON.stringify(loaded.diagnostics));
      const ruleset = compileConfig(loaded.config).ruleset as Ruleset;
      const registry = await SourceRegistry.create(loaded.config);
      opened.push(registry);
      const got = await decisions({ ruleset, registry }, [
        '"Carol"@Example.ORG',
        "DAVE@example.org",
        "erin@example.org",
      ]);
      expect(got).toEqual({
        '"Carol"@Example.ORG': "452 4.2.2 spool",
        "DAVE@example.org": "452 4.2.2 backend",
        "erin@example.org": "continue",
      });
      expect(asked).toEqual(["dave", "erin"]);
    } finally {
      await new Promise((resolve) => backend.close(resolve));
    }
  });
});
