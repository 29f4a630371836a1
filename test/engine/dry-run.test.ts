/**
 * The whole-message result of one transaction (SPEC: `result.decision` is reject/tempfail when
 * the transaction is refused before or at end of data, or every recipient was refused; else
 * accept, discard or quarantine), as `filterctl dry-run` computes it.
 */
import { describe, expect, it } from "vitest";
import { type DryRunInput, dryRun } from "../../src/engine/dry-run.js";
import { FakeLookups, rules, rulesetOf, SOURCES } from "../runtime/helpers.js";

function input(fill: Partial<DryRunInput> = {}): DryRunInput {
  return {
    clientIp: "192.0.2.10",
    clientName: "mx.example.net",
    helo: "mx.example.net",
    from: "sender@example.net",
    rcpts: ["a@example.org", "b@example.org"],
    headers: [{ name: "Subject", value: "hello" }],
    body: Buffer.from("body\r\n"),
    ...fill,
  };
}

const stagesOf = (report: Awaited<ReturnType<typeof dryRun>>) => report.stages.map((s) => s.stage);

describe("dry-run result", () => {
  it("accepts a message no rule refuses, running every stage", async () => {
    const report = await dryRun(rulesetOf(rules('on eom: log "done"')), new FakeLookups(), input());
    expect(report.result).toEqual({ decision: "accept", reply: null });
    expect(report.recipients).toEqual([
      { rcpt: "a@example.org", decision: "continue", reply: null },
      { rcpt: "b@example.org", decision: "continue", reply: null },
    ]);
    expect(stagesOf(report)).toEqual([
      "connect",
      "helo",
      "mail",
      "rcpt",
      "rcpt",
      "data",
      "header",
      "eoh",
      "body",
      "eom",
    ]);
    expect(report.logs).toEqual([{ text: "done", rule: "rule-1" }]);
  });

  it("refused at mail: the whole transaction and every recipient are refused", async () => {
    const ruleset = rulesetOf(
      rules('on mail: if from.domain == "example.net" then reject 550 5.7.1 "Go away"'),
    );
    const report = await dryRun(ruleset, new FakeLookups(), input());
    expect(report.result).toEqual({ decision: "reject", reply: "550 5.7.1 Go away" });
    expect(report.recipients).toEqual([
      { rcpt: "a@example.org", decision: "reject", reply: "550 5.7.1 Go away", rule: "rule-1" },
      { rcpt: "b@example.org", decision: "reject", reply: "550 5.7.1 Go away", rule: "rule-1" },
    ]);
    expect(stagesOf(report)).toEqual(["connect", "helo", "mail"]);
  });

  it("refused at connect with a temporary failure", async () => {
    const report = await dryRun(
      rulesetOf(rules('on connect: tempfail 421 4.7.0 "Busy"')),
      new FakeLookups(),
      input(),
    );
    expect(report.result).toEqual({ decision: "tempfail", reply: "421 4.7.0 Busy" });
    expect(stagesOf(report)).toEqual(["connect"]);
  });

  it("some recipients refused: the message is accepted for the others", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules('on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"')}`,
    );
    const fake = new FakeLookups().mailbox("mailboxes", "a@example.org", {
      usage: 100,
      limit: 100,
      count: 0,
      countLimit: 0,
    });
    const report = await dryRun(ruleset, fake, input());
    expect(report.result).toEqual({ decision: "accept", reply: null });
    expect(report.recipients).toEqual([
      {
        rcpt: "a@example.org",
        decision: "tempfail",
        reply: "452 4.2.2 Quota exceeded for a@example.org, try again later",
        rule: "rule-1",
      },
      { rcpt: "b@example.org", decision: "continue", reply: null },
    ]);
    expect(stagesOf(report)).toContain("eom");
  });

  it("every recipient refused: the transaction is refused; one temporary refusal makes it temporary", async () => {
    const ruleset = rulesetOf(
      rules(
        'on rcpt: if rcpt.local == "a" then reject 550 5.1.1 "No such user {rcpt}"',
        'on rcpt: if rcpt.local == "b" then tempfail 452 4.2.2 "Full"',
        'on rcpt: if rcpt.local == "c" then reject 550 5.1.1 "No such user {rcpt}"',
      ),
    );
    const permanent = await dryRun(
      ruleset,
      new FakeLookups(),
      input({ rcpts: ["a@example.org", "c@example.org"] }),
    );
    expect(permanent.result).toEqual({ decision: "reject", reply: "550 5.1.1 No such user a@example.org" });
    expect(stagesOf(permanent)).toEqual(["connect", "helo", "mail", "rcpt", "rcpt"]);

    const temporary = await dryRun(
      ruleset,
      new FakeLookups(),
      input({ rcpts: ["a@example.org", "b@example.org"] }),
    );
    expect(temporary.result).toEqual({ decision: "tempfail", reply: "452 4.2.2 Full" });
    expect(temporary.recipients.map((r) => r.decision)).toEqual(["reject", "tempfail"]);
  });

  it("accept at connect stops filtering: no later stage runs", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules("on connect: if client.ip in trusted then accept", "on mail: reject", "on rcpt: reject")}`,
    );
    const report = await dryRun(ruleset, new FakeLookups().list("trusted", ["192.0.2.0/24"]), input());
    expect(report.result).toEqual({ decision: "accept", reply: null });
    expect(stagesOf(report)).toEqual(["connect"]);
    expect(report.recipients.map((r) => r.decision)).toEqual(["continue", "continue"]);
  });

  it("accept at rcpt accepts that recipient only: the others are still checked, later stages still run", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules(
        'on rcpt: if rcpt.local == "postmaster" then accept',
        'on rcpt: if quota(rcpt, mailboxes) over then tempfail 452 4.2.2 "Mailbox of {rcpt} is full"',
        'on eom: add header "X-Checked" "yes"',
      )}`,
    );
    const full = { usage: 100, limit: 100, count: 0, countLimit: 0 };
    const fake = new FakeLookups()
      .mailbox("mailboxes", "postmaster@example.org", full)
      .mailbox("mailboxes", "a@example.org", full);
    const report = await dryRun(
      ruleset,
      fake,
      input({ rcpts: ["postmaster@example.org", "a@example.org", "b@example.org"] }),
    );
    expect(report.recipients).toEqual([
      { rcpt: "postmaster@example.org", decision: "accept", reply: null, rule: "rule-1" },
      {
        rcpt: "a@example.org",
        decision: "tempfail",
        reply: "452 4.2.2 Mailbox of a@example.org is full",
        rule: "rule-2",
      },
      { rcpt: "b@example.org", decision: "continue", reply: null },
    ]);
    // The accepted recipient's quota was never asked: the rest of its rules were skipped.
    const rcpts = report.stages.filter((s) => s.stage === "rcpt");
    expect(rcpts[0]?.rules.map((r) => [r.rule, r.decision?.action])).toEqual([["rule-1", "accept"]]);
    expect(rcpts[0]?.lookups).toEqual([]);
    expect(rcpts.map((s) => s.decision)).toEqual(["accept", "tempfail", "continue"]);
    expect(stagesOf(report)).toContain("eom");
    expect(report.headersAdded).toEqual([{ name: "X-Checked", value: "yes", rule: "rule-3" }]);
    expect(report.result).toEqual({ decision: "accept", reply: null });
  });

  it("a recipient accepted at rcpt is refused with the message when a later stage refuses it", async () => {
    const ruleset = rulesetOf(
      rules('on rcpt: if rcpt.local == "postmaster" then accept', 'on eom: reject 554 5.7.1 "No"'),
    );
    const report = await dryRun(ruleset, new FakeLookups(), input({ rcpts: ["postmaster@example.org"] }));
    expect(report.result).toEqual({ decision: "reject", reply: "554 5.7.1 No" });
    expect(report.recipients).toEqual([
      { rcpt: "postmaster@example.org", decision: "reject", reply: "554 5.7.1 No", rule: "rule-2" },
    ]);
  });

  it("accept at mail and at data still accept the whole message", async () => {
    for (const stage of ["mail", "data"]) {
      const ruleset = rulesetOf(rules(`on ${stage}: accept`, "on header: reject", "on eom: reject"));
      const report = await dryRun(ruleset, new FakeLookups(), input());
      expect(report.result).toEqual({ decision: "accept", reply: null });
      expect(stagesOf(report).at(-1)).toBe(stage);
    }
  });

  it("discard at rcpt discards the message", async () => {
    const ruleset = rulesetOf(rules('on rcpt: if rcpt.local == "spamtrap" then discard', "on eom: reject"));
    const report = await dryRun(
      ruleset,
      new FakeLookups(),
      input({ rcpts: ["spamtrap@example.org", "b@example.org"] }),
    );
    expect(report.result).toEqual({ decision: "discard", reply: null });
    expect(stagesOf(report)).toEqual(["connect", "helo", "mail", "rcpt"]);
  });

  it("discard at end of message", async () => {
    const report = await dryRun(rulesetOf(rules("on eom: discard")), new FakeLookups(), input());
    expect(report.result).toEqual({ decision: "discard", reply: null });
  });

  it("quarantine keeps the message and says why", async () => {
    const ruleset = rulesetOf(
      rules('on eoh: if header("subject") matches /^\\[SPAM\\]/i then quarantine "tagged by {client.ip}"'),
    );
    const report = await dryRun(
      ruleset,
      new FakeLookups(),
      input({ headers: [{ name: "Subject", value: "[spam] hi" }] }),
    );
    expect(report.result).toEqual({ decision: "quarantine", reply: null });
    expect(report.quarantine).toBe("tagged by 192.0.2.10");
  });

  it("refused at end of message by a header rule", async () => {
    const ruleset = rulesetOf(
      rules('on header: if header.name == "X-Virus" then reject 554 5.7.1 "{header.name}: {header.value}"'),
    );
    const report = await dryRun(
      ruleset,
      new FakeLookups(),
      input({
        headers: [
          { name: "Subject", value: "x" },
          { name: "X-Virus", value: "EICAR" },
        ],
      }),
    );
    expect(report.result).toEqual({ decision: "reject", reply: "554 5.7.1 X-Virus: EICAR" });
    expect(report.stages.filter((s) => s.stage === "header").map((s) => s.header)).toEqual([
      "Subject: x",
      "X-Virus: EICAR",
    ]);
    expect(report.recipients.map((r) => r.decision)).toEqual(["reject", "reject"]);
  });

  it("the null sender reaches the rules as an empty from", async () => {
    const ruleset = rulesetOf(rules('on mail: if from == "" then log "bounce" else log "not a bounce"'));
    const bounce = await dryRun(ruleset, new FakeLookups(), input({ from: "" }));
    expect(bounce.logs).toEqual([{ text: "bounce", rule: "rule-1" }]);
    const angle = await dryRun(ruleset, new FakeLookups(), input({ from: "<>" }));
    expect(angle.logs).toEqual([{ text: "bounce", rule: "rule-1" }]);
    const bracketed = await dryRun(ruleset, new FakeLookups(), input({ from: "<a@example.net>" }));
    expect(bracketed.logs).toEqual([{ text: "not a bounce", rule: "rule-1" }]);
  });

  it("shadow decisions are reported per stage and change nothing", async () => {
    const ruleset = rulesetOf(
      rules(
        'shadow on rcpt: reject 550 5.7.1 "would reject {rcpt}"',
        'shadow on eom: add header "X-Shadow" "1"',
      ),
    );
    const report = await dryRun(ruleset, new FakeLookups(), input({ rcpts: ["a@example.org"] }));
    expect(report.result).toEqual({ decision: "accept", reply: null });
    const rcpt = report.stages.find((s) => s.stage === "rcpt");
    expect(rcpt?.decision).toBe("continue");
    expect(rcpt?.shadow).toEqual([
      { rule: "rule-1", decision: "reject", reply: "550 5.7.1 would reject a@example.org" },
    ]);
    expect(report.headersAdded).toEqual([]);
  });

  it("headers added by enforced rules are listed", async () => {
    const report = await dryRun(
      rulesetOf(rules('on rcpt: add header "X-Rcpt" "{rcpt}"', 'on eom: add header "X-Size" "{size}"')),
      new FakeLookups(),
      input({ rcpts: ["a@example.org"] }),
    );
    expect(report.headersAdded).toEqual([
      { name: "X-Rcpt", value: "a@example.org", rule: "rule-1" },
      // The whole message: "Subject: hello" and CRLF (16), the blank line (2), "body" and CRLF (6).
      { name: "X-Size", value: "24", rule: "rule-2" },
    ]);
  });

  it("records each lookup with its result", async () => {
    const ruleset = rulesetOf(
      `${SOURCES}${rules("on rcpt: if rcpt not in directory.addresses then reject 550 5.1.1")}`,
    );
    const fake = new FakeLookups().table("directory.addresses", ["a@example.org"]);
    const report = await dryRun(ruleset, fake, input());
    const lookups = report.stages.filter((s) => s.stage === "rcpt").flatMap((s) => s.lookups);
    expect(lookups.map((l) => [l.rule, l.source, l.what, l.key, l.result])).toEqual([
      ["rule-1", "directory", "directory.addresses", "a@example.org", "found"],
      ["rule-1", "directory", "directory.addresses", "b@example.org", "not found"],
    ]);
    expect(lookups.every((l) => typeof l.ms === "number" && l.ms >= 0)).toBe(true);
  });

  it("without a HELO name, uses the client name (the README's --helo default), else an empty one", async () => {
    const ruleset = rulesetOf(rules('on helo: log "HELO <{helo}>"'));
    const named = await dryRun(ruleset, new FakeLookups(), input({ helo: undefined }));
    expect(named.stages.find((s) => s.stage === "helo")?.detail).toBe("mx.example.net");
    expect(named.logs).toEqual([{ text: "HELO <mx.example.net>", rule: "rule-1" }]);
    const bare = await dryRun(ruleset, new FakeLookups(), input({ helo: undefined, clientName: undefined }));
    expect(bare.logs).toEqual([{ text: "HELO <>", rule: "rule-1" }]);
  });
});
