/**
 * `filterctl test`, through the real CLI: the shipped example passes offline and exercises every
 * rule of examples/rules.yaml; a failing case says what it expected and what it got; broken test
 * files get file:line:col diagnostics (test/cli/rules-test/broken/, each file saying what it
 * expects, as test/rules/broken/ does for rules files); --offline never asks a live source;
 * --junit writes XML a CI system reads. Reply matching, word by word, is unit-tested here too.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import { afterAll, describe, expect, it } from "vitest";
import { SourceFile } from "../../src/common/diagnostics.js";
import { checkRules, openSources } from "../../src/engine/open-rules.js";
import { matchesReply, parseReplyPattern, type ReplyPattern } from "../../src/engine/reply-match.js";
import { runCase } from "../../src/engine/rules-test.js";
import { answersOffline, checkTestAgainstRules } from "../../src/engine/rules-test-check.js";
import { readTestFile } from "../../src/engine/rules-test-file.js";
import { StubLookups } from "../../src/engine/rules-test-stubs.js";
import { LookupError } from "../../src/runtime/lookups.js";
import { runCli } from "./run.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const EXAMPLE = join(ROOT, "examples/rules.test.yaml");
const RULES = join(ROOT, "examples/rules.yaml");
const BROKEN = new URL("./rules-test/broken/", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "filterctl-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A test file in the temporary folder, testing examples/rules.yaml. */
function testFile(name: string, body: string): string {
  const path = join(tmp, name);
  writeFileSync(path, `rules: ${RULES}\n${body}`);
  return path;
}

function pattern(text: string): ReplyPattern {
  const parsed = parseReplyPattern(text);
  if ("message" in parsed) throw new Error(parsed.message);
  return parsed;
}

describe("reply expectations, word by word from the left", () => {
  const got = "tempfail 452 4.2.2 Mailbox of bob@example.org is full, try again later";

  it.each([
    ["tempfail", true],
    ["tempfail 452", true],
    ["tempfail 452 4.2.2", true],
    ['tempfail 452 4.2.2 "Mailbox of bob@example.org"', true],
    ["tempfail 452 4.2.2 Mailbox of bob@example.org is full, try again later", true],
    ["reject", false],
    ["tempfail 451", false],
    ["tempfail 452 4.2.1", false],
    ['tempfail 452 4.2.2 "Mailbox of alice@example.org"', false],
    // Words, not characters: "full" is not the word "full,".
    ['tempfail 452 4.2.2 "Mailbox of bob@example.org is full"', false],
    ["tempfail 452 4.2.2 Mailbox of bob@example.org is full, try again later now", false],
  ])("%s → %s", (text, matches) => {
    expect(matchesReply(pattern(text), got)).toBe(matches);
  });

  it("matches a bare decision only against that decision", () => {
    expect(matchesReply(pattern("continue"), "continue")).toBe(true);
    expect(matchesReply(pattern("accept"), "continue")).toBe(false);
    expect(matchesReply(pattern("reject"), "reject 550 5.7.1 Rejected by policy")).toBe(true);
  });

  it("refuses expectations no reply can match, saying where", () => {
    expect(parseReplyPattern("rejct 550")).toMatchObject({ message: "unknown decision 'rejct'", at: 0 });
    expect(parseReplyPattern("reject 450")).toMatchObject({
      message: "reject takes a 5xx code, not 450",
      at: 7,
    });
    expect(parseReplyPattern("tempfail 452 5.2.2")).toMatchObject({
      message: "tempfail takes a 4.x.x enhanced code, not 5.2.2",
      at: 13,
    });
    expect(parseReplyPattern("accept 250")).toMatchObject({ at: 7 });
    expect(parseReplyPattern('reject 550 "no end')).toMatchObject({ at: 11 });
    expect(parseReplyPattern("continue", ["accept", "reject"])).toMatchObject({
      message: "unknown decision 'continue'",
    });
  });
});

describe("filterctl test examples/rules.test.yaml", () => {
  it("passes offline: every case ok, exit 0", () => {
    const { status, stdout, stderr } = runCli(["test", EXAMPLE, "--offline"]);
    expect(stderr).toBe("");
    const lines = stdout.trim().split("\n");
    expect(lines.at(-1)).toBe("10 passed, 0 failed");
    expect(lines.slice(0, -1).every((l) => l.startsWith("ok "))).toBe(true);
    expect(lines).toContain("ok an over-quota recipient is deferred, the others accepted, the header added");
    expect(status).toBe(0);
  });

  it("exercises every rule of examples/rules.yaml (each decides, adds a header, or is evaluated as shadow)", async () => {
    const checked = await checkRules(RULES);
    if (checked.kind !== "checked") throw new Error(checked.kind);
    const read = readTestFile(new SourceFile(EXAMPLE, readFileSync(EXAMPLE, "utf8")));
    if (read.test === undefined) throw new Error(JSON.stringify(read.diagnostics));
    const { stubs, diagnostics } = checkTestAgainstRules(read.test, checked.config, checked.ruleset, true);
    expect(diagnostics).toEqual([]);
    // The example stubs every source that is not a list; the lists are read from their files.
    const lists = await openSources(checked, { only: answersOffline });
    if (lists.kind !== "opened") throw new Error(lists.kind);
    const names = new Set(lists.registry.configs().map((c) => c.name));
    const lookups = new StubLookups(stubs, lists.registry, "insensitive", names);
    const fired = new Set<string>();
    for (const testCase of read.test.cases) {
      const result = await runCase(checked.ruleset, lookups, testCase);
      expect(result.failures).toEqual([]);
      for (const stage of result.report?.stages ?? [])
        for (const rule of stage.rules)
          if (rule.decision !== undefined || rule.effects.length > 0) fired.add(rule.rule);
    }
    await lists.registry.close();
    expect([...fired].sort()).toEqual(checked.ruleset.rules.map((r) => r.name).sort());
  });
});

describe("a failing case", () => {
  const failing = testFile(
    "failing.test.yaml",
    `sources:
  mailboxes: { bob@example.org: { usage: 11000, limit: 10000 } }
  spamhaus: []
cases:
  - name: bob is accepted
    client: { ip: 203.0.113.7, name: mx.example.net }
    helo: mx.example.net
    from: someone@example.com
    rcpt: [bob@example.org, alice@example.org]
    expect:
      rcpt: { bob@example.org: continue, alice@example.org: continue }
      result: accept
      decided_by: mailbox-full
      shadow: { helo-without-dot: reject }
  - name: alice is accepted
    client: { ip: 203.0.113.7 }
    from: someone@example.com
    rcpt: alice@example.org
    expect: { rcpt: { alice@example.org: continue }, headers_added: ["X-Filterctl: checked"] }
`,
  );

  it("prints FAIL with each difference, expected against got, and exits 1", () => {
    const { status, stdout } = runCli(["test", failing, "--offline"]);
    expect(stdout).toBe(
      [
        "FAIL bob is accepted",
        "  rcpt bob@example.org: expected continue, got tempfail 452 4.2.2 Mailbox of bob@example.org is full, try again later (rule mailbox-full)",
        "  shadow helo-without-dot: expected reject, got continue",
        "  decided_by: expected mailbox-full, got no rule",
        "FAIL alice is accepted",
        '  headers_added: expected ["X-Filterctl: checked"], got ["X-Filterctl: checked, client 203.0.113.7"]',
        "0 passed, 2 failed",
        "",
      ].join("\n"),
    );
    expect(status).toBe(1);
  });

  it("--junit writes JUnit XML: counts per suite, a <failure> per failed case with its first difference", () => {
    const out = join(tmp, "junit.xml");
    const { status } = runCli(["test", failing, EXAMPLE, "--offline", "--junit", out]);
    expect(status).toBe(1);
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(
      readFileSync(out, "utf8"),
    );
    const suites = xml.testsuites;
    expect(suites).toMatchObject({ tests: "12", failures: "2", errors: "0" });
    const [mine, example] = suites.testsuite;
    expect(mine).toMatchObject({ name: failing, tests: "2", failures: "2", errors: "0" });
    expect(example).toMatchObject({ name: EXAMPLE, tests: "10", failures: "0" });
    const bob = mine.testcase[0];
    expect(bob.name).toBe("bob is accepted");
    expect(bob.failure.message).toBe(
      "rcpt bob@example.org: expected continue, got tempfail 452 4.2.2 Mailbox of bob@example.org is full, try again later (rule mailbox-full)",
    );
    expect(bob.failure["#text"]).toContain("decided_by: expected mailbox-full, got no rule");
    expect(example.testcase.every((c: Record<string, unknown>) => c.failure === undefined)).toBe(true);
  });

  it("--junit records a test file that cannot run as an <error>", () => {
    const out = join(tmp, "junit-broken.xml");
    const { status } = runCli(["test", join(BROKEN, "unknown-rule.yaml"), "--junit", out]);
    expect(status).toBe(1);
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(
      readFileSync(out, "utf8"),
    );
    expect(xml.testsuites).toMatchObject({ tests: "1", failures: "0", errors: "1" });
    expect(xml.testsuites.testsuite.testcase.error.message).toMatch(
      /unknown-rule\.yaml:11:19: error: expect\.decided_by: the rules have no rule 'mailbox-ful'/,
    );
  });
});

describe("sources: stubbed, live, offline", () => {
  const live = testFile(
    "live.test.yaml",
    `sources:
  spamhaus: []
cases:
  - name: bob's real Maildir is over quota
    client: { ip: 203.0.113.7 }
    from: someone@example.com
    rcpt: bob@example.org
    expect: { rcpt: { bob@example.org: tempfail 452 4.2.2 }, decided_by: mailbox-full }
`,
  );

  it("asks a source the file does not stub live (the example's Maildirs)", () => {
    const { status, stdout } = runCli(["test", live]);
    expect(stdout).toBe("ok bob's real Maildir is over quota\n1 passed, 0 failed\n");
    expect(status).toBe(0);
  });

  it("--offline refuses a source the rules look up that is not stubbed, before running anything", () => {
    const { status, stdout, stderr } = runCli(["test", live, "--offline"]);
    expect(stderr).toContain(
      "live.test.yaml:1:8: error: --offline: the rules look up 'mailboxes', a maildir source the test file does not stub (stub it under sources:, or run without --offline to ask it live)",
    );
    expect(stdout).toBe("0 passed, 0 failed\n");
    expect(status).toBe(1);
  });

  it("offline, a lookup of what is not stubbed fails and is named", () => {
    const lookups = new StubLookups(
      new Map([["directory.domains", { kind: "table", entries: ["example.org"] }]]),
      undefined,
    );
    expect(lookups.has("directory", "domains", "Example.ORG")).toBe(true);
    expect(() => lookups.has("directory", "addresses", "bob@example.org")).toThrow(LookupError);
    expect(lookups.takeMissing()).toEqual(["directory.addresses"]);
    expect(lookups.takeMissing()).toEqual([]);
  });

  it("stubs answer as the live sources do: CIDRs, folded addresses, +detail, DNSBL codes", () => {
    const lookups = new StubLookups(
      new Map([
        ["nets", { kind: "table", entries: ["192.0.2.0/24"] }],
        [
          "mailboxes",
          {
            kind: "quota",
            mailboxes: new Map([["Bob@Example.org", { usage: 5, limit: 4, count: 0, countLimit: 0 }]]),
            recipientDelimiter: "+",
          },
        ],
        [
          "bl",
          {
            kind: "dnsbl",
            zone: "bl.example",
            listed: new Map([["2001:DB8::1", ["127.0.0.4", "127.0.0.2"]]]),
          },
        ],
      ]),
      undefined,
    );
    expect(lookups.has("nets", undefined, "192.0.2.77")).toBe(true);
    expect(lookups.quota("mailboxes", "bob+lists@example.ORG")).toMatchObject({ usage: 5 });
    expect(lookups.quota("mailboxes", "carol@example.org")).toBeUndefined();
    expect(lookups.dnsbl("bl", "2001:db8::1")).toEqual({
      listed: true,
      code: "127.0.0.2",
      codes: ["127.0.0.2", "127.0.0.4"],
    });
    expect(lookups.dnsbl("bl", "192.0.2.1")).toEqual({ listed: false });
    expect(lookups.zoneOf("bl")).toBe("bl.example");
  });
});

describe("a case's envelope and content", () => {
  const path = testFile(
    "envelope.test.yaml",
    `sources:
  mailboxes: { alice@example.org: { usage: 2500, limit: 10KB } }
  spamhaus: []
cases:
  - name: SIZE= counts in the quota check
    client: { ip: 203.0.113.7, name: mx.example.net }
    helo: mx.example.net
    from: someone@example.com
    size: 8KB
    rcpt: alice@example.org
    expect: { rcpt: { alice@example.org: tempfail 452 4.2.2 }, result: tempfail 452, decided_by: mailbox-full }
  - name: without SIZE= the message fits
    client: { ip: 203.0.113.7, name: mx.example.net }
    from: someone@example.com
    headers: ["Subject: hello"]
    message: ${join(ROOT, "examples/message.eml")}
    rcpt: alice@example.org
    expect: { result: accept }
  - name: a message file that cannot be read fails the case
    client: { ip: 203.0.113.7 }
    from: someone@example.com
    message: nothere.eml
    rcpt: alice@example.org
    expect: { result: accept }
`,
  );

  it("takes size:, headers: and message: as dry-run takes --size, --header and --message", () => {
    const { status, stdout } = runCli(["test", path, "--offline"]);
    expect(stdout).toBe(
      [
        "ok SIZE= counts in the quota check",
        "ok without SIZE= the message fits",
        "FAIL a message file that cannot be read fails the case",
        `  cannot read message ${join(tmp, "nothere.eml")}: ENOENT`,
        "2 passed, 1 failed",
        "",
      ].join("\n"),
    );
    expect(status).toBe(1);
  });
});

describe("broken test files", () => {
  const files = readdirSync(BROKEN).filter((f) => f.endsWith(".yaml"));
  const argsOf = (text: string) => /^# args:(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  // One run per set of options (each run starts a Node): the files' diagnostics are told apart by their path.
  const runs = new Map<string, ReturnType<typeof runCli>>();
  const runOf = (args: string[]) => {
    const key = args.join(" ");
    let run = runs.get(key);
    if (run === undefined) {
      const same = files.filter((f) => argsOf(readFileSync(join(BROKEN, f), "utf8")).join(" ") === key);
      run = runCli(["test", ...same.map((f) => join(BROKEN, f)), ...args]);
      runs.set(key, run);
    }
    return run;
  };

  it.each(files)("%s: the diagnostics it expects, at file:line:col, exit 1", (name) => {
    const path = join(BROKEN, name);
    const text = readFileSync(path, "utf8");
    const expected = [...text.matchAll(/^# expect: (.*)$/gm)].map((m) => `${path}:${m[1]}`);
    expect(expected.length).toBeGreaterThan(0);
    const { status, stdout, stderr } = runOf(argsOf(text));
    const got = stderr.split("\n").filter((l) => l.startsWith(`${path}:`));
    expect(got).toEqual(expected);
    expect(stdout.trim().split("\n").at(-1)).toBe("0 passed, 0 failed");
    expect(status).toBe(1);
  });
});

describe("usage", () => {
  it("exits 2 without a file, and on a file that cannot be read", () => {
    expect(runCli(["test"]).status).toBe(2);
    const missing = runCli(["test", join(tmp, "nothere.yaml")]);
    expect(missing.stderr).toContain("nothere.yaml");
    expect(missing.status).toBe(2);
  });

  it("a rules file that is invalid makes the test file invalid, with both positions", () => {
    const rules = join(tmp, "bad-rules.yaml");
    writeFileSync(rules, "sources: {}\nrules:\n  - on rcpt: if quota(rcpt) over then tempfail\n");
    const path = join(tmp, "bad-rules.test.yaml");
    writeFileSync(
      path,
      `rules: bad-rules.yaml\ncases:\n  - { name: x, client: { ip: 192.0.2.1 }, from: "", rcpt: a@b.c, expect: { result: accept } }\n`,
    );
    const { status, stderr } = runCli(["test", path]);
    expect(stderr).toMatch(/bad-rules\.yaml:3:\d+: error: /);
    expect(stderr).toContain(`${path}:1:8: error: the rules file ${rules} is invalid`);
    expect(status).toBe(1);
  });
});
