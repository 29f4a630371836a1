/**
 * The files in examples/ are what a postmaster copies first: each must validate cleanly with
 * the real `filterctl`, and examples/rules.yaml must do what its comments say when run
 * through `filterctl dry-run` over the sample data shipped with it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./cli/run.js";

const EXAMPLES = resolve(import.meta.dirname, "..", "examples");
const RULES = join(EXAMPLES, "rules.yaml");
const MESSAGE = join(EXAMPLES, "message.eml");

interface Diagnostic {
  severity: "error" | "warning";
  message: string;
  line: number;
}
interface Report {
  recipients: { rcpt: string; decision: string; reply: string | null; rule?: string }[];
  stages: {
    stage: string;
    decision: string;
    reply: string | null;
    rule?: string;
    rules: { rule: string; shadow: boolean; decision?: { action: string }; errors: { source: string }[] }[];
    lookups: { rule: string; source: string; key: string; result: string }[];
    shadow: { rule: string; decision: string; reply: string | null }[];
  }[];
  result: { decision: string; reply: string | null };
  headersAdded: { name: string; value: string; rule: string }[];
}

function dryRun(args: string[]): Report {
  const { status, stdout, stderr } = runCli(["dry-run", "--config", RULES, "--json", ...args]);
  expect(stderr).toBe("");
  expect(status).toBe(0);
  return JSON.parse(stdout) as Report;
}

function stage(report: Report, name: string) {
  const found = report.stages.find((s) => s.stage === name);
  if (found === undefined) throw new Error(`no ${name} stage in ${JSON.stringify(report.stages)}`);
  return found;
}

const EXTERNAL = [
  "--client-ip",
  "203.0.113.7",
  "--client-name",
  "mx.example.com",
  "--helo",
  "mx.example.com",
];

describe("examples/*.yaml", () => {
  // rules.test.yaml is a test file (filterctl test), not rules: test/cli/rules-test.test.ts runs it.
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"));

  it("ships rules.yaml and one file per production source", () => {
    expect(files.sort()).toEqual(
      expect.arrayContaining(["dnsbl.yaml", "http.yaml", "ldap.yaml", "rules.yaml"]),
    );
  });

  it.each(files)("%s passes filterctl validate with no error and no warning", (file) => {
    const { status, stdout, stderr } = runCli(["validate", "--config", join(EXAMPLES, file), "--json"]);
    const output = JSON.parse(stdout) as { ok: boolean; diagnostics: Diagnostic[] };
    expect(stderr).toBe("");
    expect(output.diagnostics).toEqual([]);
    expect(output.ok).toBe(true);
    expect(status).toBe(0);
  });
});

describe("examples/filterctl.service", () => {
  /** `Key=value` settings of the unit, comments left out; a key set twice keeps every value. */
  const settings = (text: string) =>
    text
      .split("\n")
      .filter((line) => /^[A-Za-z]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)] as const);

  it("lets serve read Maildirs under /home (ProtectHome=read-only, not true, which hides them)", () => {
    const unit = settings(readFileSync(join(EXAMPLES, "filterctl.service"), "utf8"));
    expect(unit.filter(([key]) => key === "ProtectHome")).toEqual([["ProtectHome", "read-only"]]);
    // The rest of the sandbox stays: the system read-only, the socket's directory writable.
    expect(unit).toContainEqual(["ProtectSystem", "strict"]);
    expect(unit).toContainEqual(["ReadWritePaths", "/run/filterctl"]);
  });
});

describe("filterctl dry-run on examples/rules.yaml", () => {
  it("verify-from: a forged sender in our domain is rejected at MAIL FROM with 550 5.7.1", () => {
    const report = dryRun([...EXTERNAL, "--from", "nobody@example.org", "--rcpt", "alice@example.org"]);
    const mail = stage(report, "mail");
    expect(mail.decision).toBe("reject");
    expect(mail.rule).toBe("verify-from");
    expect(mail.reply).toBe("550 5.7.1 Reject: your From address nobody@example.org does not exist.");
    expect(mail.lookups.map((l) => [l.source, l.key, l.result])).toEqual([
      ["local_domains", "example.org", "found"],
      ["addresses", "nobody@example.org", "not found"],
    ]);
    // Refused at MAIL: no recipient stage runs, every recipient gets the reply.
    expect(report.stages.some((s) => s.stage === "rcpt")).toBe(false);
    expect(report.recipients).toEqual([
      { rcpt: "alice@example.org", decision: "reject", reply: mail.reply, rule: "verify-from" },
    ]);
    expect(report.result).toEqual({ decision: "reject", reply: mail.reply });
  });

  it("verify-from: domains compare case-insensitively", () => {
    const report = dryRun([...EXTERNAL, "--from", "Nobody@EXAMPLE.NET", "--rcpt", "alice@example.org"]);
    expect(stage(report, "mail").decision).toBe("reject");
  });

  it("verify-from: an existing sender of our domain passes MAIL FROM", () => {
    const report = dryRun([...EXTERNAL, "--from", "alice@example.org", "--rcpt", "bob@example.org"]);
    const mail = stage(report, "mail");
    expect(mail.decision).toBe("continue");
    expect(mail.lookups.map((l) => [l.source, l.result])).toEqual([
      ["local_domains", "found"],
      ["addresses", "found"],
    ]);
  });

  it("verify-from: a sender of another domain is not looked up in the address list", () => {
    const report = dryRun([...EXTERNAL, "--from", "someone@example.com", "--rcpt", "bob@example.org"]);
    const mail = stage(report, "mail");
    expect(mail.decision).toBe("continue");
    expect(mail.lookups.map((l) => [l.source, l.result])).toEqual([["local_domains", "not found"]]);
  });

  it("verify-from: the null sender <> is never rejected, and nothing is looked up for it", () => {
    const report = dryRun([...EXTERNAL, "--from", "", "--rcpt", "alice@example.org"]);
    const mail = stage(report, "mail");
    expect(mail.decision).toBe("continue");
    expect(mail.lookups).toEqual([]);
    expect(mail.rules.find((r) => r.rule === "verify-from")?.decision).toBeUndefined();
  });

  it("allow list: a client in trusted_networks is accepted at connect, no other rule runs", () => {
    for (const ip of ["192.0.2.25", "127.0.0.1", "::1"]) {
      const report = dryRun([
        "--client-ip",
        ip,
        "--from",
        "nobody@example.org",
        "--rcpt",
        "bob@example.org",
        "--message",
        MESSAGE,
      ]);
      expect(report.stages.map((s) => s.stage)).toEqual(["connect"]);
      const connect = stage(report, "connect");
      expect(connect.decision).toBe("accept");
      expect(connect.rule).toBe("trusted-networks");
      expect(report.result).toEqual({ decision: "accept", reply: null });
      expect(report.recipients).toEqual([{ rcpt: "bob@example.org", decision: "continue", reply: null }]);
      expect(report.headersAdded).toEqual([]);
    }
  });

  it("allow list: other clients go on to the DNSBL, which never blocks here (no list is on before its first healthy probe; on_error: continue)", () => {
    const report = dryRun([...EXTERNAL, "--from", "alice@example.org", "--rcpt", "friend@example.com"]);
    const connect = stage(report, "connect");
    expect(connect.decision).toBe("continue");
    expect(connect.lookups.map((l) => [l.rule, l.key])).toEqual([
      ["trusted-networks", "203.0.113.7"],
      ["dnsbl", "203.0.113.7"],
    ]);
  });

  it("an authenticated client skips the sender check, not the quota check", () => {
    const report = dryRun([
      ...EXTERNAL,
      "--auth",
      "nobody",
      "--from",
      "nobody@example.org",
      "--rcpt",
      "bob@example.org",
    ]);
    const mail = stage(report, "mail");
    expect(mail.decision).toBe("continue");
    expect(mail.lookups).toEqual([]);
    expect(report.recipients).toEqual([
      {
        rcpt: "bob@example.org",
        decision: "tempfail",
        reply: "452 4.2.2 Mailbox of bob@example.org is full, try again later",
        rule: "mailbox-full",
      },
    ]);
  });

  it("postmaster: accepted at RCPT for itself only; a full mailbox in the same message is still deferred", () => {
    const report = dryRun([
      ...EXTERNAL,
      "--from",
      "someone@example.com",
      "--rcpt",
      "postmaster@example.org",
      "--rcpt",
      "bob@example.org",
      "--message",
      MESSAGE,
    ]);
    expect(report.recipients).toEqual([
      { rcpt: "postmaster@example.org", decision: "accept", reply: null, rule: "postmaster" },
      {
        rcpt: "bob@example.org",
        decision: "tempfail",
        reply: "452 4.2.2 Mailbox of bob@example.org is full, try again later",
        rule: "mailbox-full",
      },
    ]);
    // Its quota was not asked; the message went on to the end and got its header.
    expect(report.stages.find((s) => s.stage === "rcpt")?.lookups).toEqual([]);
    expect(report.headersAdded.map((h) => h.name)).toEqual(["X-Filterctl"]);
    expect(report.result).toEqual({ decision: "accept", reply: null });
  });

  it("the shadow rule reports what it would do but changes nothing", () => {
    const report = dryRun([
      "--client-ip",
      "203.0.113.7",
      "--helo",
      "localhost",
      "--from",
      "alice@example.org",
      "--rcpt",
      "friend@example.com",
    ]);
    const helo = stage(report, "helo");
    expect(helo.decision).toBe("continue");
    expect(helo.shadow).toEqual([
      {
        rule: "helo-without-dot",
        decision: "reject",
        reply: "550 5.7.1 HELO name localhost is not a fully qualified host name",
      },
    ]);
    expect(stage(report, "mail").decision).toBe("continue");
  });

  it("--message: a message that gets through gets the X-Filterctl header at end of message", () => {
    // friend@example.com is not in our domains, so the quota rule does not look it up.
    const report = dryRun([
      ...EXTERNAL,
      "--from",
      "alice@example.org",
      "--rcpt",
      "friend@example.com",
      "--message",
      MESSAGE,
    ]);
    expect(report.stages.filter((s) => s.stage === "header").length).toBeGreaterThanOrEqual(8);
    expect(stage(report, "eom").decision).toBe("continue");
    expect(report.headersAdded).toEqual([
      { name: "X-Filterctl", value: "checked, client 203.0.113.7", rule: "rule-7" },
    ]);
    expect(report.result).toEqual({ decision: "accept", reply: null });
  });

  it("quota: full mailboxes (bytes or count, +detail too) get 452 4.2.2 at RCPT, the others go on", () => {
    const report = dryRun([
      ...EXTERNAL,
      "--from",
      "someone@example.com",
      ...["alice", "bob", "bob+lists", "carol", "dave", "nobody"].flatMap((u) => [
        "--rcpt",
        `${u}@example.org`,
      ]),
      "--rcpt",
      "friend@example.com",
    ]);
    const full = (rcpt: string) => ({
      rcpt,
      decision: "tempfail",
      reply: `452 4.2.2 Mailbox of ${rcpt} is full, try again later`,
      rule: "mailbox-full",
    });
    const goesOn = (rcpt: string) => ({ rcpt, decision: "continue", reply: null });
    expect(report.recipients).toEqual([
      goesOn("alice@example.org"), // well under quota
      full("bob@example.org"), // over its byte quota
      full("bob+lists@example.org"), // recipient_delimiter "+": bob's mailbox
      full("carol@example.org"), // at its message-count limit: one more does not fit
      goesOn("dave@example.org"), // no maildirsize: counted from the Maildir, against quota: 200MB
      goesOn("nobody@example.org"), // no mailbox: never over quota
      goesOn("friend@example.com"), // not our domain: no quota lookup
    ]);
    const rcpts = report.stages.filter((s) => s.stage === "rcpt");
    for (const rcpt of rcpts) expect(rcpt.rules[0]?.errors).toEqual([]);
    expect(rcpts.at(-1)?.lookups.map((l) => l.source)).toEqual(["local_domains"]);
    // Some recipients accepted: the message goes on for them.
    expect(report.result).toEqual({ decision: "accept", reply: null });
  });
});
