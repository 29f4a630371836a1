/**
 * Evaluation semantics (SPEC "Evaluation", "Shadow mode", "Lookup failure", "Quota semantics"):
 * real rules.yaml text through the real loader and compiler, evaluated against an in-memory
 * Lookups.
 */
import { describe, expect, it } from "vitest";
import type { QuotaStatus } from "../../src/runtime/lookups.js";
import { evaluate, FakeLookups, reply, rules, rulesetOf, SOURCES, transaction } from "./helpers.js";

const ERROR_REPLY = "451 4.3.0 Temporary lookup failure, try again later";

describe("order of rules", () => {
  const ruleset = rulesetOf(
    rules(
      'on helo: if helo == "a.example" then reject 554 5.7.1 "first"',
      'on helo: if helo matches /^a\\./ then reject 550 5.7.1 "second"',
      'on helo: tempfail 421 4.7.0 "third"',
    ),
  );

  it("runs rules in file order; the first deciding rule ends the stage", async () => {
    const outcome = await evaluate(ruleset, "helo", transaction({ helo: "a.example" }), new FakeLookups());
    expect(reply(outcome)).toBe("554 5.7.1 first");
    expect(outcome.rules.map((r) => r.rule)).toEqual(["rule-1"]);
  });

  it("goes on to the next rule while rules do not decide", async () => {
    const second = await evaluate(ruleset, "helo", transaction({ helo: "a.example.net" }), new FakeLookups());
    expect(reply(second)).toBe("550 5.7.1 second");
    expect(second.rules.map((r) => r.rule)).toEqual(["rule-1", "rule-2"]);
    const third = await evaluate(ruleset, "helo", transaction({ helo: "b.example" }), new FakeLookups());
    expect(reply(third)).toBe("421 4.7.0 third");
    expect(third.decision?.rule).toBe("rule-3");
  });

  it("without a tracer, lists only the rules that did something (the milter's hot path)", async () => {
    const outcome = await ruleset.evaluate("helo", transaction({ helo: "a.example.net" }), new FakeLookups());
    expect(outcome.rules.map((r) => r.rule)).toEqual(["rule-2"]);
    expect(outcome.decision?.rule).toBe("rule-2");
  });

  it("without a tracer, a stage where no rule did anything answers an empty outcome", async () => {
    const one = rulesetOf(rules('on helo: if helo == "a.example" then reject 554 5.7.1 "first"'));
    const outcome = await one.evaluate("helo", transaction({ helo: "c.example" }), new FakeLookups());
    expect(outcome).toEqual({ shadowDecisions: [], effects: [], rules: [] });
    // A stage that decides gets an outcome of its own: the empty one is never written to.
    const decided = await one.evaluate("helo", transaction({ helo: "a.example" }), new FakeLookups());
    expect(reply(decided)).toBe("554 5.7.1 first");
    expect(outcome.decision).toBeUndefined();
    expect(outcome.rules).toEqual([]);
  });

  it("runs only the rules of the stage", async () => {
    const outcome = await evaluate(
      ruleset,
      "mail",
      transaction({ from: "a@example.org" }),
      new FakeLookups(),
    );
    expect(outcome).toEqual({ shadowDecisions: [], effects: [], rules: [] });
  });

  it("a rule naming several stages runs at each", async () => {
    const both = rulesetOf(rules('on mail, rcpt: if from == "" then reject'));
    expect(reply(await evaluate(both, "mail", transaction(), new FakeLookups()))).toBe(
      "550 5.7.1 Rejected by policy",
    );
    expect(reply(await evaluate(both, "rcpt", transaction({ rcpt: "a@b" }), new FakeLookups()))).toBe(
      "550 5.7.1 Rejected by policy",
    );
  });
});

describe("continue, add header and log do not decide", () => {
  const ruleset = rulesetOf(
    rules(
      'on eom: log "seen {from}"',
      'on eom: add header "X-Filter" "checked"',
      "on eom: continue",
      'on eom: log "a" add header "X-Second" "2" if size > 10 then quarantine "big {size}" else continue',
      'on eom: add header "X-Never" "reached"',
    ),
  );

  it("collects effects of every rule up to the deciding one", async () => {
    const outcome = await evaluate(
      ruleset,
      "eom",
      transaction({ from: "s@example.org", messageBytes: 11 }),
      new FakeLookups(),
    );
    expect(outcome.decision).toMatchObject({ action: "quarantine", reason: "big 11", rule: "rule-4" });
    expect(outcome.effects).toEqual([
      { kind: "log", text: "seen s@example.org", rule: "rule-1" },
      { kind: "addHeader", name: "X-Filter", value: "checked", rule: "rule-2" },
      { kind: "log", text: "a", rule: "rule-4" },
      { kind: "addHeader", name: "X-Second", value: "2", rule: "rule-4" },
    ]);
  });

  it("with no deciding rule every rule runs and the stage has no decision", async () => {
    const outcome = await evaluate(ruleset, "eom", transaction({ bodyBytes: 5 }), new FakeLookups());
    expect(outcome.decision).toBeUndefined();
    expect(outcome.rules.map((r) => r.rule)).toEqual(["rule-1", "rule-2", "rule-3", "rule-4", "rule-5"]);
    expect(outcome.effects.map((e) => e.rule)).toEqual(["rule-1", "rule-2", "rule-4", "rule-4", "rule-5"]);
  });
});

describe("recipients", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"',
      'on rcpt: if rcpt not in directory.addresses then reject 550 5.1.1 "No such user {rcpt}"',
      'on connect: if client.ip in spamhaus then reject 554 5.7.1 "{client.ip} listed by {spamhaus.zone}: {spamhaus.reason}"',
      'on eoh: if header("Subject") matches /^\\[SPAM\\]/ then quarantine "tagged"',
      "on mail: if from.domain in directory.local_domains and from not in directory.addresses then reject 550 5.7.1",
    )}`,
  );
  const lookups = () =>
    new FakeLookups()
      .table("directory.addresses", ["full@example.org", "ok@example.org"])
      .mailbox("mailboxes", "full@example.org", { usage: 200, limit: 200, count: 1, countLimit: 0 })
      .mailbox("mailboxes", "ok@example.org", { usage: 10, limit: 200, count: 1, countLimit: 0 });

  it("decides each recipient on its own: one refused, the next accepted", async () => {
    const fake = lookups();
    const full = await evaluate(ruleset, "rcpt", transaction({ rcpt: "full@example.org" }), fake);
    expect(reply(full)).toBe("452 4.2.2 Quota exceeded for full@example.org, try again later");
    const ok = await evaluate(ruleset, "rcpt", transaction({ rcpt: "ok@example.org" }), fake);
    expect(ok.decision).toBeUndefined();
    const unknown = await evaluate(ruleset, "rcpt", transaction({ rcpt: "nobody@example.org" }), fake);
    expect(reply(unknown)).toBe("550 5.1.1 No such user nobody@example.org");
  });
});

describe("shadow rules", () => {
  const ruleset = rulesetOf(
    `${rules(
      'shadow on rcpt: if rcpt.domain == "example.org" then reject 550 5.7.1 "shadow says no to {rcpt}"',
      'shadow on rcpt: add header "X-Shadow" "1" log "shadow saw {rcpt}" tempfail',
      'on rcpt: if rcpt.local == "blocked" then reject 550 5.1.1 "blocked"',
    )}  - name: structured-shadow
    on: rcpt
    mode: shadow
    then: tempfail 451 4.7.1 "shadow"
  - on rcpt: add header "X-Enforced" "1"
`,
  );

  it("are evaluated and reported, but never enforced and never end the stage", async () => {
    const outcome = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "user@example.org" }),
      new FakeLookups(),
    );
    expect(outcome.decision).toBeUndefined();
    expect(outcome.shadowDecisions.map((d) => [d.rule, d.action, d.shadow])).toEqual([
      ["rule-1", "reject", true],
      ["rule-2", "tempfail", true],
      ["structured-shadow", "tempfail", true],
    ]);
    expect(outcome.shadowDecisions[0]?.text).toBe("shadow says no to user@example.org");
    // Evaluation went on to every rule after them.
    expect(outcome.rules.map((r) => r.rule)).toEqual([
      "rule-1",
      "rule-2",
      "rule-3",
      "structured-shadow",
      "rule-5",
    ]);
  });

  it("do not add their headers; their logs are kept", async () => {
    const outcome = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "user@example.org" }),
      new FakeLookups(),
    );
    expect(outcome.effects).toEqual([
      { kind: "log", text: "shadow saw user@example.org", rule: "rule-2" },
      { kind: "addHeader", name: "X-Enforced", value: "1", rule: "rule-5" },
    ]);
  });

  it("leave the decision to the enforced rule after them", async () => {
    const outcome = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "blocked@example.org" }),
      new FakeLookups(),
    );
    expect(reply(outcome)).toBe("550 5.1.1 blocked");
    expect(outcome.decision?.shadow).toBe(false);
    expect(outcome.shadowDecisions).toHaveLength(2);
  });
});

describe("lookup failure", () => {
  const yaml = (onError: string, errorReply?: string) => `
defaults:
  on_error: ${onError}
${errorReply ? `  error_reply: "${errorReply}"\n` : ""}sources:
  directory:
    type: ldap
    url: "ldap://127.0.0.1:389"
    base: "dc=mail"
    tables:
      addresses: "(mailLocalAddress={key})"
  relaxed:
    type: ldap
    url: "ldap://127.0.0.1:389"
    base: "dc=mail"
    on_error: continue
    tables:
      addresses: "(mailLocalAddress={key})"
${rules(
  'on rcpt: if rcpt not in directory.addresses then reject 550 5.1.1 "No such user" else add header "X-Known" "{rcpt}"',
  'on mail: if from in relaxed.addresses then accept else log "not accepted"',
  'on mail: if from not in relaxed.addresses then reject 550 5.7.1 "not known" else log "negated: else"',
)}`;

  for (const async of [false, true]) {
    const mode = async ? "answering with promises" : "answering synchronously";

    it(`on_error tempfail answers error_reply (${mode})`, async () => {
      const fake = new FakeLookups();
      fake.async = async;
      fake.failing.add("directory");
      const outcome = await evaluate(
        rulesetOf(yaml("tempfail")),
        "rcpt",
        transaction({ rcpt: "a@b.example" }),
        fake,
      );
      expect(reply(outcome)).toBe(ERROR_REPLY);
      expect(outcome.decision).toMatchObject({
        action: "tempfail",
        rule: "rule-1",
        lookupError: "directory: connection refused",
      });
      expect(outcome.rules[0]?.errors).toEqual([{ source: "directory", message: "connection refused" }]);
      // Neither branch ran.
      expect(outcome.effects).toEqual([]);
    });

    it(`on_error continue treats the condition as false: the else branch runs (${mode})`, async () => {
      const fake = new FakeLookups();
      fake.async = async;
      fake.failing.add("relaxed");
      const outcome = await evaluate(
        rulesetOf(yaml("tempfail")),
        "mail",
        transaction({ from: "a@b.example" }),
        fake,
      );
      expect(outcome.decision).toBeUndefined();
      // `in` failed: false, so not accepted; `not in` failed: false too (not true), so not rejected.
      expect(outcome.effects.map((e) => e.kind === "log" && e.text)).toEqual([
        "not accepted",
        "negated: else",
      ]);
      expect(outcome.rules.flatMap((r) => r.errors)).toEqual([
        { source: "relaxed", message: "connection refused" },
        { source: "relaxed", message: "connection refused" },
      ]);
    });
  }

  it("a shadow rule's failed lookup is reported, never enforced", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        "shadow on rcpt: if rcpt not in directory.addresses then reject 550 5.1.1",
        'on rcpt: add header "X-After" "1"',
      )}`,
    );
    const fake = new FakeLookups();
    fake.failing.add("directory");
    const outcome = await evaluate(ruleset, "rcpt", transaction({ rcpt: "a@b.example" }), fake);
    expect(outcome.decision).toBeUndefined();
    expect(outcome.shadowDecisions).toMatchObject([{ action: "tempfail", code: 451, enhancedCode: "4.3.0" }]);
    expect(outcome.effects).toEqual([{ kind: "addHeader", name: "X-After", value: "1", rule: "rule-2" }]);
  });

  it("takes defaults.on_error and defaults.error_reply", async () => {
    const fake = new FakeLookups();
    fake.failing.add("directory");
    const custom = rulesetOf(yaml("tempfail", "421 4.3.2 Directory down, come back later"));
    expect(reply(await evaluate(custom, "rcpt", transaction({ rcpt: "a@b.example" }), fake))).toBe(
      "421 4.3.2 Directory down, come back later",
    );
    const relaxed = rulesetOf(yaml("continue"));
    const outcome = await evaluate(relaxed, "rcpt", transaction({ rcpt: "a@b.example" }), fake);
    expect(outcome.decision).toBeUndefined();
    expect(outcome.effects).toEqual([
      { kind: "addHeader", name: "X-Known", value: "a@b.example", rule: "rule-1" },
    ]);
  });

  it("a failing quota source tempfails by default, a failing DNSBL does not", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        "on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2",
        "on connect: if client.ip in spamhaus then reject",
        "on connect: if client.ip in trusted then accept",
        "on mail: if from in directory.addresses then continue",
        "on mail: if from.domain in directory.local_domains then continue",
      )}`,
    );
    const fake = new FakeLookups().list("trusted", []);
    fake.failing.add("mailboxes");
    fake.failing.add("spamhaus");
    expect(reply(await evaluate(ruleset, "rcpt", transaction({ rcpt: "a@b.example" }), fake))).toBe(
      ERROR_REPLY,
    );
    const connect = await evaluate(ruleset, "connect", transaction(), fake);
    expect(connect.decision).toBeUndefined();
    expect(connect.rules[0]?.errors).toEqual([{ source: "spamhaus", message: "connection refused" }]);
  });
});

describe("empty keys are never looked up", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      "on mail: if from.domain in directory.local_domains and from not in directory.addresses then reject 550 5.7.1",
      'on mail: if from not in directory.addresses then reject 550 5.7.1 "negated"',
      "on mail: if from.domain in spamhaus then reject 554 5.7.1",
      "on mail: if quota(from, mailboxes) over then tempfail",
      'on mail: if directory.addresses[from] == "" then log "no value for {from}"',
      "on mail: if from in trusted then accept",
    )}`,
  );

  it("the null sender is never rejected by the forged-sender rule, and nothing is asked", async () => {
    const fake = new FakeLookups().list("trusted", ["example.org"]);
    const outcome = await evaluate(ruleset, "mail", transaction({ from: "" }), fake);
    expect(outcome.decision).toBeUndefined();
    expect(fake.calls).toEqual([]);
    expect(outcome.effects).toEqual([{ kind: "log", text: "no value for ", rule: "rule-5" }]);
  });

  it("a real sender is looked up", async () => {
    const fake = new FakeLookups().table("directory.local_domains", ["example.org"]).list("trusted", []);
    const outcome = await evaluate(ruleset, "mail", transaction({ from: "forged@example.org" }), fake);
    expect(reply(outcome)).toBe("550 5.7.1 Rejected by policy");
    expect(fake.calls).toEqual([
      { method: "has", source: "directory", table: "local_domains", key: "example.org" },
      { method: "has", source: "directory", table: "addresses", key: "forged@example.org" },
    ]);
  });
});

describe("TABLE[X]", () => {
  it('gives the value the table holds, "" when it holds none', async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on rcpt: if directory.addresses[rcpt] != "" then log "value {rcpt}"',
        'on rcpt: if directory.addresses[rcpt] == "" then log "none {rcpt}"',
        'on rcpt: if directory.addresses[rcpt] == "uid=a,dc=mail" then log "exact"',
      )}`,
    );
    const fake = new FakeLookups().table("directory.addresses", { "a@example.org": "uid=a,dc=mail" });
    const found = await evaluate(ruleset, "rcpt", transaction({ rcpt: "a@example.org" }), fake);
    expect(found.effects.map((e) => e.kind === "log" && e.text)).toEqual(["value a@example.org", "exact"]);
    const absent = await evaluate(ruleset, "rcpt", transaction({ rcpt: "b@example.org" }), fake);
    expect(absent.effects.map((e) => e.kind === "log" && e.text)).toEqual(["none b@example.org"]);
  });
});

describe("case and quoting of addresses", () => {
  const caseRules = rules(
    'on mail: if from.domain == "EXAMPLE.org" then log "domain =="',
    'on mail: if from == "User@example.ORG" then log "address =="',
    'on mail: if from == "user@example.org" then log "local part folded"',
    'on mail: if from.domain in ["Example.Org"] then log "domain in list"',
    'on mail: if from in ["User@EXAMPLE.org"] then log "address in list"',
    'on mail: if from in ["USER@example.org"] then log "folded in list"',
    'on mail: if from.local == "user" then log "local part =="',
    'on mail: if from.local in ["USER"] then log "local part in list"',
    'on mail: if from.domain != "example.org" then log "domain !="',
  );
  const logs = async (yaml: string, from: string) =>
    (await evaluate(rulesetOf(yaml), "mail", transaction({ from }), new FakeLookups())).effects.map(
      (e) => e.kind === "log" && e.text,
    );

  it("addresses compare case-insensitively as a whole by default, as Postfix's tables do", async () => {
    const all = [
      "domain ==",
      "address ==",
      "local part folded",
      "domain in list",
      "address in list",
      "folded in list",
      "local part ==",
      "local part in list",
    ];
    expect(await logs(caseRules, "User@Example.Org")).toEqual(all);
    expect(await logs(caseRules, '"USER"@EXAMPLE.ORG')).toEqual(all);
    expect(await logs(caseRules, "user@example.org.")).toEqual(all);
  });

  it("with local_part: sensitive only domains fold; needless quotes still go", async () => {
    const sensitive = `defaults:\n  local_part: sensitive\n${caseRules}`;
    const exact = ["domain ==", "address ==", "domain in list", "address in list"];
    expect(await logs(sensitive, "User@Example.Org")).toEqual(exact);
    expect(await logs(sensitive, '"User"@EXAMPLE.ORG')).toEqual(exact);
    expect(await logs(sensitive, "user@example.org")).toEqual([
      "domain ==",
      "local part folded",
      "domain in list",
      "local part ==",
    ]);
  });

  it("a local part that needs quotes keeps them, and differs from one without", async () => {
    const yaml = rules(
      'on mail: if from == "\\"a b\\"@example.org" then log "quoted =="',
      'on mail: if from == "ab@example.org" then log "unquoted =="',
      'on mail: if from.local == "a b" then log "local part unquoted"',
      'on mail: if from matches /^"a b"@example[.]org$/ then log "matches the normal form"',
    );
    expect(await logs(yaml, '"A\\ B"@Example.org')).toEqual([
      "quoted ==",
      "local part unquoted",
      "matches the normal form",
    ]);
  });

  it("texts show the address as the client wrote it; rcpts and lookups get the normal form", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "Quota exceeded for {rcpt} ({rcpt.local} at {rcpt.domain})"',
        'on rcpt: if rcpt in directory.addresses then log "{rcpt} known"',
        'on data: log "rcpts: {rcpts}"',
      )}`,
    );
    const fake = new FakeLookups()
      .mailbox("mailboxes", "bob@example.org", { usage: 11, limit: 10, count: 0, countLimit: 0 })
      .table("directory.addresses", ["alice@example.org"]);
    const tx = transaction({ rcpt: '"Bob"@Example.ORG' });
    expect(reply(await evaluate(ruleset, "rcpt", tx, fake))).toBe(
      '452 4.2.2 Quota exceeded for "Bob"@Example.ORG ("Bob" at Example.ORG)',
    );
    const alice = await evaluate(ruleset, "rcpt", transaction({ rcpt: "ALICE@example.org" }), fake);
    expect(alice.effects.map((e) => e.kind === "log" && e.text)).toEqual(["ALICE@example.org known"]);
    expect(fake.calls.map((c) => c.key)).toEqual([
      "bob@example.org",
      "alice@example.org",
      "alice@example.org",
    ]);
    const data = await evaluate(ruleset, "data", transaction({ rcpts: ["BOB@Example.org"] }), fake);
    expect(data.effects.map((e) => e.kind === "log" && e.text)).toEqual(["rcpts: BOB@Example.org"]);
  });

  it("list sources match domains and addresses case-insensitively", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on mail: if from.domain in trusted then log "domain"',
        'on mail: if from in trusted then log "address"',
        'on rcpt: if rcpt in trusted then log "rcpt"',
      )}`,
    );
    const fake = new FakeLookups().list("trusted", ["Example.ORG", "Postmaster@Example.ORG"]);
    const mail = await evaluate(ruleset, "mail", transaction({ from: "Postmaster@EXAMPLE.org" }), fake);
    expect(mail.effects.map((e) => e.kind === "log" && e.text)).toEqual(["domain", "address"]);
    const rcpt = await evaluate(ruleset, "rcpt", transaction({ rcpt: '"postmaster"@example.org' }), fake);
    expect(rcpt.effects.map((e) => e.kind === "log" && e.text)).toEqual(["rcpt"]);
    const other = await evaluate(ruleset, "rcpt", transaction({ rcpt: "post.master@example.org" }), fake);
    expect(other.effects).toEqual([]);
  });
});

describe("IP addresses and CIDR ranges", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on connect: if client.ip in ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"] then log "literal list"',
      'on connect: if client.ip in trusted then log "list source"',
      'on connect: if client.ip in 203.0.113.0/25 then log "bare cidr"',
      'on connect: if client.ip == "198.51.100.7" then log "=="',
      'on connect: if client.ip == 2001:db8::1 then log "== ipv6 literal"',
    )}`,
  );
  const fake = () => new FakeLookups().list("trusted", ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]);
  const logs = async (ip: string) =>
    (
      await evaluate(ruleset, "connect", transaction({ client: { ip, name: "", port: 0 } }), fake())
    ).effects.map((e) => e.kind === "log" && e.text);

  it.each([
    ["192.0.2.55", ["literal list", "list source"]],
    ["::ffff:192.0.2.55", ["literal list", "list source"]],
    ["2001:db8::1", ["literal list", "list source", "== ipv6 literal"]],
    ["2001:DB8:0:0::1", ["literal list", "list source", "== ipv6 literal"]],
    ["198.51.100.7", ["literal list", "list source", "=="]],
    ["::ffff:198.51.100.7", ["literal list", "list source", "=="]],
    ["::FFFF:c633:6407", ["literal list", "list source", "=="]],
    ["203.0.113.1", ["bare cidr"]],
    ["203.0.113.200", []],
    ["2001:db9::1", []],
    ["192.0.3.1", []],
  ])("%s", async (ip, expected) => {
    expect(await logs(ip)).toEqual(expected);
  });
});

describe("quota", () => {
  const ruleset = rulesetOf(
    `${SOURCES}${rules(
      'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "Quota exceeded for {rcpt} ({quota.percent}%)"',
      'on eom: if quota(from, mailboxes) over then tempfail 452 4.2.2 "{quota.usage}/{quota.limit}"',
      'on rcpt: if quota(rcpt, mailboxes).percent >= 90 then log "{rcpt} at {quota.percent}%, {quota.count}/{quota.count_limit} messages"',
    )}`,
  );
  const over = async (status: QuotaStatus | undefined, declaredSize = 0) => {
    const fake = new FakeLookups();
    if (status !== undefined) fake.mailbox("mailboxes", "u@example.org", status);
    const outcome = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "u@example.org", declaredSize }),
      fake,
    );
    return outcome.decision !== undefined;
  };
  const bytes = (usage: number, limit: number): QuotaStatus => ({ usage, limit, count: 0, countLimit: 0 });
  const messages = (count: number, countLimit: number): QuotaStatus => ({
    usage: 0,
    limit: 0,
    count,
    countLimit,
  });

  it("is over when usage plus the incoming message exceeds the byte limit", async () => {
    expect(await over(bytes(998, 1000))).toBe(false);
    expect(await over(bytes(999, 1000))).toBe(false); // 999 + 1 = 1000: fits exactly
    expect(await over(bytes(1000, 1000))).toBe(true); // exactly at the limit: the next message cannot fit
    expect(await over(bytes(5000, 1000))).toBe(true);
  });

  it("counts SIZE= of MAIL FROM as the incoming bytes", async () => {
    expect(await over(bytes(500, 1000), 500)).toBe(false);
    expect(await over(bytes(500, 1000), 501)).toBe(true);
  });

  it("is over when count + 1 exceeds a non-zero message limit", async () => {
    expect(await over(messages(9, 10))).toBe(false);
    expect(await over(messages(10, 10))).toBe(true);
    expect(await over(messages(1_000_000, 0))).toBe(false);
  });

  it("is never over without a limit, nor for a mailbox that does not exist", async () => {
    expect(await over({ usage: 10 ** 12, limit: 0, count: 10 ** 6, countLimit: 0 }, 10 ** 9)).toBe(false);
    expect(await over(undefined, 10 ** 9)).toBe(false);
  });

  it("interpolates the rule's quota status", async () => {
    const fake = new FakeLookups().mailbox("mailboxes", "u@example.org", {
      usage: 931,
      limit: 1000,
      count: 7,
      countLimit: 10,
    });
    const rcpt = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "u@example.org", declaredSize: 100 }),
      fake,
    );
    expect(reply(rcpt)).toBe("452 4.2.2 Quota exceeded for u@example.org (93%)");
    const near = await evaluate(
      ruleset,
      "rcpt",
      transaction({ rcpt: "u@example.org", declaredSize: 1 }),
      fake,
    );
    expect(near.decision).toBeUndefined();
    expect(near.effects).toEqual([
      { kind: "log", text: "u@example.org at 93%, 7/10 messages", rule: "rule-3" },
    ]);
  });

  it("at end of message the whole message's size is the incoming size", async () => {
    const fake = new FakeLookups().mailbox("mailboxes", "s@example.org", bytes(900, 1000));
    const tx = transaction({ from: "s@example.org", declaredSize: 10, messageBytes: 101 });
    expect(reply(await evaluate(ruleset, "eom", tx, fake))).toBe("452 4.2.2 900/1000");
    tx.messageBytes = 100;
    expect((await evaluate(ruleset, "eom", tx, fake)).decision).toBeUndefined();
  });

  it("quota(rcpt) without a source uses the only quota source", async () => {
    const one = rulesetOf(`
sources:
  backend:
    type: http
    url: "http://10.0.0.5:8025/quota?u={user}"
rules:
  - on rcpt: if quota(rcpt) over then tempfail 452 4.2.2
`);
    const fake = new FakeLookups().mailbox("backend", "u@example.org", bytes(10, 10));
    expect(reply(await evaluate(one, "rcpt", transaction({ rcpt: "u@example.org" }), fake))).toBe(
      "452 4.2.2 Try again later",
    );
    expect(fake.calls).toEqual([{ method: "quota", source: "backend", key: "u@example.org" }]);
  });
});

describe("reply texts", () => {
  it("interpolate values, sanitised of CR and LF", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on connect: if client.ip in spamhaus then reject 554 5.7.1 "{client.ip} listed by {spamhaus.zone}: {spamhaus.reason}"',
        'on rcpt: reject 550 5.1.1 "No such user {rcpt}"',
        'on helo: log "helo={helo}"',
      )}`,
    );
    const fake = new FakeLookups().listed("spamhaus", "192.0.2.10", {
      listed: true,
      code: "127.0.0.2",
      reason: "https://www.spamhaus.org/query/ip/192.0.2.10\r\nX-Injected: yes",
    });
    expect(reply(await evaluate(ruleset, "connect", transaction(), fake))).toBe(
      "554 5.7.1 192.0.2.10 listed by zen.spamhaus.org: https://www.spamhaus.org/query/ip/192.0.2.10 X-Injected: yes",
    );
    const rcpt = await evaluate(ruleset, "rcpt", transaction({ rcpt: "evil\r\n250 OK@example.org" }), fake);
    expect(rcpt.decision?.text).toBe("No such user evil 250 OK@example.org");
    const helo = await evaluate(ruleset, "helo", transaction({ helo: "a\nb\rc" }), fake);
    expect(helo.effects).toEqual([{ kind: "log", text: "helo=a b c", rule: "rule-3" }]);
  });

  it("{NAME.reason} is empty when the list gave no reason", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules('on connect: if client.ip in spamhaus then reject 554 5.7.1 "listed [{spamhaus.reason}]"')}`,
    );
    const fake = new FakeLookups().listed("spamhaus", "192.0.2.10");
    expect(reply(await evaluate(ruleset, "connect", transaction(), fake))).toBe("554 5.7.1 listed []");
  });

  it("default to 550 5.7.1 Rejected by policy and 451 4.7.1 Try again later", async () => {
    const ruleset = rulesetOf(
      rules(
        'on helo: if helo == "r" then reject',
        'on helo: if helo == "t" then tempfail',
        'on helo: if helo == "text" then reject "Go away"',
        'on helo: if helo == "code" then reject 554',
        'on helo: if helo == "tcode" then tempfail 421 4.7.0',
        'on helo: if helo == "braces" then reject "{{literal}} {helo}"',
      ),
    );
    const of = async (helo: string) =>
      reply(await evaluate(ruleset, "helo", transaction({ helo }), new FakeLookups()));
    expect(await of("r")).toBe("550 5.7.1 Rejected by policy");
    expect(await of("t")).toBe("451 4.7.1 Try again later");
    expect(await of("text")).toBe("550 5.7.1 Go away");
    expect(await of("code")).toBe("554 Rejected by policy");
    expect(await of("tcode")).toBe("421 4.7.0 Try again later");
    expect(await of("braces")).toBe("550 5.7.1 {literal} braces");
  });
});

describe("the synchronous fast path", () => {
  it("a ruleset without lookups answers a plain value, not a Promise", () => {
    const ruleset = rulesetOf(
      rules('on rcpt: if rcpt.domain == "example.org" then reject', 'on rcpt: log "x"'),
    );
    const result = ruleset.evaluate("rcpt", transaction({ rcpt: "a@example.org" }), new FakeLookups());
    expect(result).not.toBeInstanceOf(Promise);
    expect(result).toMatchObject({ decision: { action: "reject" } });
    const none = ruleset.evaluate("connect", transaction(), new FakeLookups());
    expect(none).not.toBeInstanceOf(Promise);
  });

  it("lookups answering synchronously keep it synchronous; a promise makes the result one", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules("on connect: if client.ip in trusted then accept", 'on connect: log "after"')}`,
    );
    const sync = new FakeLookups().list("trusted", ["192.0.2.0/24"]);
    const result = ruleset.evaluate("connect", transaction(), sync);
    expect(result).not.toBeInstanceOf(Promise);
    expect(result).toMatchObject({ decision: { action: "accept" } });

    const asyncLookups = new FakeLookups().list("trusted", ["192.0.2.0/24"]);
    asyncLookups.async = true;
    const pending = ruleset.evaluate("connect", transaction(), asyncLookups);
    expect(pending).toBeInstanceOf(Promise);
    expect(await pending).toMatchObject({ decision: { action: "accept" } });
  });

  it("and/or stop at the first operand that settles them, also across promises", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on mail: if from in directory.addresses or from.domain in directory.local_domains then log "or"',
        'on mail: if from in directory.addresses and from.domain in directory.local_domains then log "and"',
      )}`,
    );
    for (const async of [false, true]) {
      const fake = new FakeLookups()
        .table("directory.addresses", ["a@example.org"])
        .table("directory.local_domains", []);
      fake.async = async;
      const outcome = await evaluate(ruleset, "mail", transaction({ from: "a@example.org" }), fake);
      expect(outcome.effects.map((e) => e.kind === "log" && e.text)).toEqual(["or"]);
      expect(fake.calls.map((c) => c.table)).toEqual(["addresses", "addresses", "local_domains"]);
    }
  });
});

describe("texts", () => {
  it("a placeholder's control characters become one space; other texts are kept as they are", async () => {
    const ruleset = rulesetOf(rules('on helo: reject 550 5.7.1 "HELO {helo} refused"'));
    const dirty = await evaluate(ruleset, "helo", transaction({ helo: "a\r\n\x7fb\tc" }), new FakeLookups());
    expect(reply(dirty)).toBe("550 5.7.1 HELO a b c refused");
    const clean = await evaluate(ruleset, "helo", transaction({ helo: "mx.example.net" }), new FakeLookups());
    expect(reply(clean)).toBe("550 5.7.1 HELO mx.example.net refused");
  });
});
