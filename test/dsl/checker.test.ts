import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/common/diagnostics.js";
import { compileConfig } from "../../src/dsl/compile.js";
import { configOf, SAMPLE_SOURCES } from "./helpers.js";

/** Diagnostics of a set of rules, without the unused-source warnings of the sample sources. */
function check(...rules: string[]): string[] {
  return compileConfig(configOf(rules))
    .diagnostics.filter((d) => !d.message.includes("is not used by any rule"))
    .map(formatDiagnostic);
}

describe("checker errors", () => {
  it.each([
    [
      'on mail: if rcpt == "x" then reject',
      "rules.yaml:1:13: error: 'rcpt' exists only in 'on rcpt' rules, not at 'mail'",
    ],
    [
      'on connect: if from == "" then reject',
      "rules.yaml:1:16: error: 'from' is not known yet at stage 'connect': it is known from 'mail' on",
    ],
    [
      'on helo: if header("Subject") == "x" then reject',
      "rules.yaml:1:13: error: 'header()' is not known yet at stage 'helo': it is known from 'eoh' on",
    ],
    [
      "on rcpt: if rcpt in directry.addresses then reject",
      "rules.yaml:1:21: error: unknown source 'directry' (did you mean 'directory'?)",
    ],
    [
      "on rcpt: if rcpt in directory.adresses then reject",
      "rules.yaml:1:31: error: unknown table 'adresses' in LDAP source 'directory' (did you mean 'addresses'?)",
    ],
    [
      "on rcpt: if rcpt in directory then reject",
      "rules.yaml:1:21: error: LDAP source 'directory' is used through its tables: directory.local_domains, directory.addresses",
    ],
    [
      "on rcpt: if quota(rcpt, spamhaus) over then reject",
      "rules.yaml:1:25: error: source 'spamhaus' is of type dnsbl, which has no quota (quota sources: mailboxes)",
    ],
    [
      "on rcpt: if qouta(rcpt) over then reject",
      "rules.yaml:1:13: error: unknown function 'qouta' (did you mean 'quota'?)",
    ],
    [
      "on rcpt: if rcpt then reject",
      "rules.yaml:1:13: error: this is a value of type address, not a condition (compare it with ==, or test it with 'in')",
    ],
    [
      "on rcpt: if rcpt matches /(ab/ then reject",
      "rules.yaml:1:26: error: invalid regular expression: /(ab/: Unterminated group",
    ],
    [
      "on rcpt: if rcpt matches /ab/g then reject",
      "rules.yaml:1:26: error: regular expression flags 'g': only i, m, s and u are allowed",
    ],
    [
      "on rcpt: tempfail 550 5.2.2",
      "rules.yaml:1:19: error: tempfail needs a 4xx reply code, not 550 (tempfail 451 4.7.1, or reject 5xx for a permanent one)",
    ],
    [
      "on rcpt: reject 451",
      "rules.yaml:1:17: error: reject needs a 5xx reply code, not 451 (reject 550 5.7.1, or tempfail 4xx for a temporary failure)",
    ],
    [
      "on rcpt: reject 550 4.2.2",
      "rules.yaml:1:21: error: enhanced status code 4.2.2 does not agree with reply code 550 (use 5.2.2)",
    ],
    [
      "on rcpt: reject 699",
      "rules.yaml:1:17: error: reject needs a 5xx reply code, not 699 (reject 550 5.7.1, or tempfail 4xx for a temporary failure)",
    ],
    ['on rcpt: reject 550 5.1.1 "no {recipent}"', "rules.yaml:1:31: error: unknown placeholder '{recipent}'"],
    [
      'on rcpt: reject 550 5.1.1 "no {rpct}"',
      "rules.yaml:1:31: error: unknown placeholder '{rpct}' (did you mean 'rcpt'?)",
    ],
    [
      'on rcpt: reject 550 5.1.1 "no {rcpt"',
      "rules.yaml:1:31: error: reply text: '{' is never closed (write {{ for a literal brace)",
    ],
    [
      'on mail: reject 550 5.1.1 "no {quota.usage}"',
      "rules.yaml:1:31: error: {quota.usage} needs a quota(...) lookup in the same rule",
    ],
    ['on eom: add header "X Bad" "v"', "rules.yaml:1:20: error: 'X Bad' is not a valid header name"],
    [
      'on rcpt: if size > "big" then reject',
      "rules.yaml:1:13: error: '>' compares numbers, sizes or durations, not size with string",
    ],
    [
      'on rcpt: if client.port == "x" then reject',
      "rules.yaml:1:13: error: cannot compare a value of type number with one of type string",
    ],
    [
      "on rcpt: if quota(rcpt).precent > 90 then reject",
      "rules.yaml:1:25: error: a quota status has no 'precent' (did you mean 'percent'?)",
    ],
    [
      "on rcpt: if rcpt over then reject",
      "rules.yaml:1:18: error: 'over' applies to a quota status, like quota(rcpt) over",
    ],
    [
      'on rcpt: if client.adress == "x" then reject',
      "rules.yaml:1:13: error: unknown name 'client.adress' ('client' has client.ip, client.name, client.port, client.net)",
    ],
    [
      'on rcpt: if client.nmae == "x" then reject',
      "rules.yaml:1:13: error: unknown name 'client.nmae' (did you mean 'client.name'?)",
    ],
    [
      "on rcpt: if rcpt in rcpt then reject",
      'rules.yaml:1:21: error: \'in\' needs a table: a source, a source\'s table, or a list like ["a", "b"]',
    ],
    [
      'on rcpt: if rcpt in ["a", rcpt] then reject',
      "rules.yaml:1:27: error: a list holds only literals: strings, numbers, IP addresses and CIDRs",
    ],
    [
      'on rcpt: if header.name == "x" then reject',
      "rules.yaml:1:13: error: 'header.name' exists only in 'on header' rules, not at 'rcpt'",
    ],
    [
      'on rcpt: if spamhaus.zon == "x" then reject',
      "rules.yaml:1:22: error: DNSBL source 'spamhaus' has no 'zon' (did you mean 'zone'?)",
    ],
    [
      'on rcpt: if macro("i", "j") == "x" then reject',
      'rules.yaml:1:13: error: macro() takes one quoted name: macro("{auth_type}")',
    ],
    [
      'on rcpt: if mailboxes == "x" then reject',
      "rules.yaml:1:13: error: 'mailboxes' is a quota source: use quota(ADDRESS, mailboxes)",
    ],
    ["on rcpnt: reject", "rules.yaml:1:4: error: unknown stage 'rcpnt' (did you mean 'rcpt'?)"],
  ])("%s", (rule, expected) => {
    expect(check(rule)).toContain(expected);
  });

  it("asks to name the source when several quota sources exist", () => {
    const sources = [
      ...SAMPLE_SOURCES,
      {
        name: "spool",
        type: "mbox" as const,
        kind: "quota" as const,
        path: "/var/mail/{user}",
        offset: 0,
        timeoutMs: 2000,
        onError: "tempfail" as const,
      },
    ];
    const diagnostics = compileConfig(
      configOf(["on rcpt: if quota(rcpt) over then tempfail 452 4.2.2"], sources),
    ).diagnostics.map(formatDiagnostic);
    expect(diagnostics).toContain(
      "rules.yaml:1:13: error: quota() must name its source: there are several quota sources: mailboxes, spool (e.g. quota(rcpt, mailboxes))",
    );
  });

  it("reports duplicate rule names", () => {
    const config = configOf(["same rcpt accept", "same mail accept"]);
    const at = (text: string, start: number) => ({ text, offsetAt: (i: number) => start + i });
    config.rules = [
      {
        form: "structured",
        index: 0,
        offset: 0,
        name: at("same", 0),
        on: [at("rcpt", 5)],
        then: at("accept", 10),
        mode: "enforce",
      },
      {
        form: "structured",
        index: 1,
        offset: 17,
        name: at("same", 17),
        on: [at("mail", 22)],
        then: at("accept", 27),
        mode: "enforce",
      },
    ];
    expect(compileConfig(config).diagnostics.map(formatDiagnostic)).toContain(
      "rules.yaml:2:1: error: duplicate rule name 'same'",
    );
  });
});

describe("what the milter asks for", () => {
  const needs = (...rules: string[]) => {
    const ruleset = compileConfig(configOf(rules)).ruleset;
    if (ruleset === undefined) throw new Error("no ruleset");
    return [...ruleset.needs.stages.keys()].sort();
  };

  it("counts header and body only for a rule calling quota() at eom", () => {
    const atRcpt = 'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "full"';
    const atEom = 'on eom: if quota(from, mailboxes) over then tempfail 452 4.2.2 "full"';
    expect(needs(atRcpt)).toEqual(["rcpt"]);
    expect(needs(atRcpt, 'on eom: if from.domain == "d.example" then reject 550 5.7.1 "no"')).toEqual([
      "eom",
      "mail",
      "rcpt",
    ]);
    expect(needs(atRcpt, atEom)).toEqual(["body", "eom", "header", "mail", "rcpt"]);
  });
});

describe("regular expressions (linear time)", () => {
  const BACKTRACKING = "which filterctl does not allow: its regular expressions run in linear time (RE2)";

  it("refuses what needs backtracking at the construct itself, with why", () => {
    expect(check("on rcpt: if rcpt matches /^(a)\\1/ then reject")).toEqual([
      `rules.yaml:1:31: error: backreference '\\1' in a regular expression (backreferences need backtracking, ${BACKTRACKING}; write the repeated text out, or test it in a second condition)`,
    ]);
    expect(check('on eoh: if header("Subject") matches /x(?=y)/i then reject')).toEqual([
      `rules.yaml:1:40: error: lookahead '(?=' in a regular expression (lookahead needs backtracking, ${BACKTRACKING}; match the text itself, or combine two conditions with 'and' / 'and not')`,
    ]);
    expect(check("on helo: if helo matches /(?<!a)b/ then reject")[0]).toMatch(
      /^rules\.yaml:1:27: error: lookbehind '\(\?<!' in a regular expression \(lookbehind needs backtracking/,
    );
  });

  it("reports a pattern that several rules share at each rule's own place (one compilation)", () => {
    const lines = check(
      "on rcpt: if rcpt matches /^(a)\\1/ then reject",
      'on mail: if from == "x@y.example" or from matches /^(a)\\1/ then reject',
    );
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^rules\.yaml:1:31: error: backreference '\\1'/);
    expect(lines[1]).toMatch(/^rules\.yaml:2:56: error: backreference '\\1'/);
  });

  it("reports what the engine refuses at its place, in plain words", () => {
    expect(check("on helo: if helo matches /^x{2000}$/ then reject")).toEqual([
      "rules.yaml:1:29: error: regular expression repeats something more than 1000 times (counts above 1000, and counted repetitions inside counted repetitions that multiply past 1000, are refused; use + or *)",
    ]);
  });

  it("compiles a catastrophic-for-backtracking pattern the engine runs in linear time", () => {
    const compiled = compileConfig(configOf(["on helo: if helo matches /^(a+)+$/ then reject"]));
    expect(compiled.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(compiled.ruleset).toBeDefined();
  });
});

describe("checker warnings", () => {
  it("warns about rules that can never run", () => {
    expect(check("on rcpt: reject", "on rcpt: accept")).toContain(
      "rules.yaml:2:1: warning: rule 'rule-2' can never run: rule 'rule-1' always decides first",
    );
    // A shadow rule, a conditional rule, or a rule with other stages left does not hide the next one.
    expect(check("shadow on rcpt: reject", "on rcpt: accept")).toEqual([]);
    expect(check('on rcpt: if rcpt == "a" then reject', "on rcpt: accept")).toEqual([]);
    expect(
      check("on rcpt: reject", "on rcpt, mail: accept").filter((d) => d.includes("can never run")),
    ).toEqual([]);
  });

  it("warns at an accept at mail that skips rules at rcpt and later stages, naming them", () => {
    const warning = (at: string, skipped: string) =>
      `rules.yaml:${at}: warning: accept at mail accepts the whole message, so ${skipped} for it (move it to 'on rcpt:' to accept one recipient, or add its condition to the rules it should skip)`;
    expect(check('on mail: if from == "a@example.org" then accept', "on rcpt: reject")).toEqual([
      warning("1:42", "rule 'rule-2' (rcpt) never runs"),
    ]);
    // Wherever the skipped rule is in the file: rcpt comes after mail in every message.
    expect(check("on eom: reject", 'on connect: log "x"', "on mail, rcpt: accept")).toEqual([
      warning("3:16", "rule 'rule-1' (eom) never runs"),
    ]);
    // No rule after mail, a shadow accept, accept at rcpt or connect: nothing is skipped that was meant to run.
    expect(check("on mail: accept", 'on connect, helo, mail: log "x"')).toEqual([]);
    expect(check("shadow on mail: accept", "on rcpt: reject")).toEqual([]);
    expect(check('on rcpt: if rcpt.local == "postmaster" then accept', "on rcpt: reject")).toEqual([]);
    expect(check("on connect: if client.ip == 192.0.2.1 then accept", "on rcpt: reject")).toEqual([]);
  });

  it("names the first five skipped rules and counts the rest, so thousands of rules give one readable line", () => {
    const later = Array.from({ length: 7 }, (_, i) => `on rcpt: if rcpt == "u${i}" then reject`);
    const [warning] = check('on mail: if from == "a" then accept', ...later);
    expect(warning).toContain(
      "so rules 'rule-2' (rcpt), 'rule-3' (rcpt), 'rule-4' (rcpt), 'rule-5' (rcpt), 'rule-6' (rcpt) and 2 more never run for it",
    );
  });

  it("warns about unused sources", () => {
    const diagnostics = compileConfig(
      configOf(["on connect: if client.ip in trusted then accept"]),
    ).diagnostics.map(formatDiagnostic);
    expect(diagnostics.filter((d) => d.includes("not used"))).toEqual([
      "rules.yaml:1:1: warning: source 'mailboxes' is not used by any rule",
      "rules.yaml:1:1: warning: source 'directory' is not used by any rule",
      "rules.yaml:1:1: warning: source 'spamhaus' is not used by any rule",
    ]);
  });

  it("warns about statements after one that always decides", () => {
    expect(check('on rcpt: reject 550 5.7.1 "x" log "y"')).toContain(
      "rules.yaml:1:31: warning: this statement never runs: the statement before it always decides",
    );
    expect(check('on rcpt: if rcpt == "a" then reject else accept log "y"')).toContain(
      "rules.yaml:1:49: warning: this statement never runs: the statement before it always decides",
    );
    expect(check('on rcpt: log "y" reject')).toEqual([]);
  });

  it("warns that discard at connect does nothing", () => {
    expect(check("on connect: discard")).toContain(
      "rules.yaml:1:13: warning: 'discard' at 'connect' is ignored by the MTA: it discards messages, not connections",
    );
  });
});

describe("what the ruleset asks of the MTA", () => {
  it("decides where rules decide, observes where values come from, and asks for macros", () => {
    const { ruleset } = compileConfig(
      configOf([
        'on mail: if auth.user != "" then accept',
        'on rcpt: if quota(rcpt) over then tempfail 452 4.2.2 "{helo}"',
        "shadow on connect: if client.ip in spamhaus then reject",
        'on eom: if header("Subject") matches /spam/i then add header "X-Spam" "yes"',
        'on eom: if macro("{daemon_name}") == "x" then log "y"',
      ]),
    );
    expect(Object.fromEntries(ruleset?.needs.stages ?? [])).toEqual({
      mail: "decide",
      rcpt: "decide",
      connect: "observe",
      helo: "observe",
      header: "observe",
      eom: "observe",
    });
    expect(ruleset?.needs.macros).toEqual({ mail: ["{auth_authen}"], eom: ["{daemon_name}"] });
  });

  it("the whole message's size at eom asks for the headers and the body; quota() elsewhere does not", () => {
    const stages = (...rules: string[]) =>
      Object.fromEntries(compileConfig(configOf(rules)).ruleset?.needs.stages ?? []);
    expect(stages("on eom: if size > 10MB then reject")).toEqual({
      mail: "observe",
      header: "observe",
      body: "observe",
      eom: "decide",
    });
    expect(stages("on eom: if quota(from) over then tempfail")).toEqual({
      mail: "observe",
      header: "observe",
      body: "observe",
      eom: "decide",
    });
    expect(stages("on rcpt: if quota(rcpt) over then tempfail", 'on eom: log "x"')).toEqual({
      rcpt: "decide",
      eom: "observe",
    });
  });
});
