/**
 * `filterctl validate` and `filterctl dry-run`, the real binary: output for humans and as JSON,
 * exit codes (0 success, 1 invalid configuration or input, 2 usage error or unreadable file).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, runCli } from "./run.js";

let dir: string;
let config: string;
let message: string;

/** A front-end's rules: Maildir++ quota at RCPT TO, a trusted list, a header rule, a shadow rule. */
function rulesYaml(root: string): string {
  return `sources:
  mailboxes:
    type: maildir
    path: "${root}/vmail/{user}/Maildir"
  backend:
    type: http
    url: "http://127.0.0.1:1/quota?u={user}"
    timeout: 1s
  trusted:
    type: list
    items: ["192.0.2.0/24", "example.org"]

rules:
  - name: backend-quota
    on: rcpt
    if: quota(rcpt, mailboxes) over
    then: tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"
  - name: http-quota
    on: rcpt
    if: rcpt.local == "remote" and quota(rcpt, backend) over
    then: reject 552 5.2.2
  - name: trusted-sender
    on: mail
    if: from.domain in trusted
    then: log "trusted sender {from}"
  - name: bounces
    on: mail
    if: from == ""
    then: log "a bounce"
  - name: folded
    on: header
    if: header.name == "X-Folded"
    then: 'log "folded: {header.value}"'
  - name: spam-subject
    on: eoh
    if: header("Subject") matches /^\\[SPAM\\]/
    then: quarantine "spam subject from {client.ip}"
  - name: extra
    on: eoh
    if: header("X-Extra") == "reject me"
    then: reject 554 5.7.1 "extra header"
  - name: big
    on: eom
    if: size > 1KB
    then: reject 552 5.3.4 "Message too big ({size} bytes)"
  - name: try-out
    mode: shadow
    on: rcpt
    if: rcpt.local == "ok"
    then: reject 550 5.7.1 "shadow would refuse {rcpt}"
`;
}

function maildir(root: string, user: string, maildirsize: string): void {
  const base = join(root, "vmail", user, "Maildir");
  for (const sub of ["cur", "new", "tmp"]) mkdirSync(join(base, sub), { recursive: true });
  writeFileSync(join(base, "maildirsize"), maildirsize);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-cli-"));
  maildir(dir, "full", "1000S\n1000 1\n");
  maildir(dir, "ok", "1000S\n10 1\n");
  config = join(dir, "rules.yaml");
  writeFileSync(config, rulesYaml(dir));
  message = join(dir, "message.eml");
  writeFileSync(
    message,
    "Subject: hello\r\nX-Folded: first line\r\n\tsecond line\r\nFrom: a@example.org\r\n\r\nHello,\r\nbody.\r\n",
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dryRun(...args: string[]) {
  return runCli(["dry-run", "--config", config, "--client-ip", "192.0.2.1", ...args]);
}

interface Report {
  recipients: { rcpt: string; decision: string; reply: string | null; rule?: string }[];
  stages: {
    stage: string;
    decision: string;
    reply: string | null;
    rule?: string;
    header?: string;
    rules: { rule: string }[];
    lookups: {
      rule: string;
      source: string;
      what: string;
      key: string;
      result: string;
      ms: number;
      error?: string;
    }[];
    shadow: { rule: string; decision: string; reply: string | null }[];
  }[];
  result: { decision: string; reply: string | null };
  headersAdded: unknown[];
  logs: { text: string; rule: string }[];
  quarantine?: string;
}

function json(result: { stdout: string }): Report {
  return JSON.parse(result.stdout) as Report;
}

describe("filterctl validate", () => {
  it("a valid file: exit 0 and a summary line", () => {
    const result = runCli(["validate", "--config", config]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(
      `${config}: OK: 9 rules (mail 2, rcpt 3, header 1, eoh 2, eom 1), 3 sources, 0 errors, 0 warnings\n`,
    );
  });

  it("--json on a valid file: ok true, warnings listed", () => {
    const file = join(dir, "warnings.yaml");
    writeFileSync(
      file,
      'sources:\n  unused:\n    type: list\n    items: ["a"]\nrules:\n  - on rcpt, rcpt: reject\n',
    );
    const result = runCli(["validate", "--config", file, "--json"]);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: true,
      diagnostics: [
        { file, line: 2, column: 3, severity: "warning", message: "source 'unused' is not used by any rule" },
        { file, line: 6, column: 14, severity: "warning", message: "stage 'rcpt' is listed twice" },
      ],
    });
    const human = runCli(["validate", "--config", file]);
    expect(human.stdout).toContain(`${file}:2:3: warning: source 'unused' is not used by any rule\n`);
    expect(human.stdout).toMatch(/: OK: 1 rule \(rcpt 1\), 1 source, 0 errors, 2 warnings\n$/);
  });

  it("an invalid file: exit 1, every diagnostic with file:line:col, the line and a caret", () => {
    const file = join(dir, "invalid.yaml");
    writeFileSync(
      file,
      [
        "sources:",
        "  directory:",
        "    type: ldap",
        '    url: "ldap://127.0.0.1:389"',
        '    base: "dc=mail"',
        "    tables:",
        '      addresses: "(mailLocalAddress={key})"',
        "rules:",
        "  - on mail: if from not in directry.addresses then reject 450",
        "",
      ].join("\n"),
    );
    const result = runCli(["validate", "--config", file]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe(
      [
        `${file}:2:3: warning: source 'directory' is not used by any rule`,
        " 2 |   directory:",
        "   |   ^",
        `${file}:9:29: error: unknown source 'directry' (did you mean 'directory'?)`,
        " 9 |   - on mail: if from not in directry.addresses then reject 450",
        "   |                             ^",
        `${file}:9:60: error: reject needs a 5xx reply code, not 450 (reject 550 5.7.1, or tempfail 4xx for a temporary failure)`,
        " 9 |   - on mail: if from not in directry.addresses then reject 450",
        "   |                                                            ^",
        `${file}: invalid (2 errors, 1 warning)`,
        "",
      ].join("\n"),
    );
    const asJson = runCli(["validate", "--config", file, "--json"]);
    expect(asJson.status).toBe(1);
    const report = JSON.parse(asJson.stdout) as { ok: boolean; diagnostics: Record<string, unknown>[] };
    expect(report.ok).toBe(false);
    expect(report.diagnostics[1]).toEqual({
      file,
      line: 9,
      column: 29,
      severity: "error",
      message: "unknown source 'directry'",
      hint: "did you mean 'directory'?",
    });
  });

  it("a missing file or a directory: exit 2", () => {
    const missing = runCli(["validate", "--config", join(dir, "nope.yaml")]);
    expect(missing.status).toBe(2);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^filterctl: .*nope\.yaml/);
    const folder = runCli(["validate", "--config", dir, "--json"]);
    expect(folder.status).toBe(2);
    expect(folder.stdout).toBe("");
    expect(folder.stderr).toMatch(/^filterctl: /);
  });

  it("--config defaults to ./rules.yaml", () => {
    const result = spawnSync(process.execPath, [BIN, "validate"], { cwd: dir, encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/rules\.yaml: OK: 9 rules/);
  });
});

describe("filterctl dry-run --json", () => {
  it("has the shape of SPEC.md: recipients, stages, result", () => {
    const result = dryRun(
      "--from",
      "sender@example.net",
      "--rcpt",
      "full@example.org",
      "--rcpt",
      "ok@example.org",
      "--json",
    );
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const report = json(result);
    expect(report.recipients).toEqual([
      {
        rcpt: "full@example.org",
        decision: "tempfail",
        reply: "452 4.2.2 Quota exceeded for full@example.org, try again later",
        rule: "backend-quota",
      },
      { rcpt: "ok@example.org", decision: "continue", reply: null },
    ]);
    expect(report.result).toEqual({ decision: "accept", reply: null });
    expect(report.stages.map((s) => [s.stage, s.decision])).toEqual([
      ["connect", "continue"],
      ["helo", "continue"],
      ["mail", "continue"],
      ["rcpt", "tempfail"],
      ["rcpt", "continue"],
      ["data", "continue"],
      ["eoh", "continue"],
      ["body", "continue"],
      ["eom", "continue"],
    ]);
    const rcpt = report.stages[3];
    expect(rcpt?.reply).toBe("452 4.2.2 Quota exceeded for full@example.org, try again later");
    expect(rcpt?.rule).toBe("backend-quota");
    expect(rcpt?.lookups).toEqual([
      {
        rule: "backend-quota",
        source: "mailboxes",
        what: "quota(mailboxes)",
        key: "full@example.org",
        result: "usage 1000/1000 bytes, 1/∞ messages",
        ms: expect.any(Number),
      },
    ]);
    expect(report.stages[4]?.shadow).toEqual([
      { rule: "try-out", decision: "reject", reply: "550 5.7.1 shadow would refuse ok@example.org" },
    ]);
  });

  it("every recipient refused: the transaction is refused, exit still 0", () => {
    const report = json(dryRun("--from", "s@example.net", "--rcpt", "full@example.org", "--json"));
    expect(report.result).toEqual({
      decision: "tempfail",
      reply: "452 4.2.2 Quota exceeded for full@example.org, try again later",
    });
  });

  it("a lookup that fails takes on_error: 451 4.3.0 error_reply, with the error shown", () => {
    const result = dryRun(
      "--from",
      "s@example.net",
      "--rcpt",
      "remote@example.org",
      "--rcpt",
      "ok@example.org",
      "--json",
    );
    expect(result.status).toBe(0);
    const report = json(result);
    expect(report.recipients[0]).toEqual({
      rcpt: "remote@example.org",
      decision: "tempfail",
      reply: "451 4.3.0 Temporary lookup failure, try again later",
      rule: "http-quota",
    });
    const failed = report.stages[3]?.lookups.find((l) => l.source === "backend");
    expect(failed).toMatchObject({ what: "quota(backend)", key: "remote@example.org", result: "error" });
    expect(failed?.error).toEqual(expect.any(String));
  });

  it("--from '' is the null sender", () => {
    const report = json(dryRun("--from", "", "--rcpt", "ok@example.org", "--json"));
    expect(report.logs).toEqual([{ text: "a bounce", rule: "bounces" }]);
    expect(report.stages[2]).toMatchObject({ stage: "mail", detail: "<>" });
  });

  it("--message gives headers (a folded one stays one header) and body; --header adds more", () => {
    const report = json(
      dryRun(
        "--from",
        "a@example.org",
        "--rcpt",
        "ok@example.org",
        "--message",
        message,
        "--header",
        "X-Extra: kept",
        "--json",
      ),
    );
    expect(report.stages.filter((s) => s.stage === "header").map((s) => s.header)).toEqual([
      "Subject: hello",
      "X-Folded: first line\n\tsecond line",
      "From: a@example.org",
      "X-Extra: kept",
    ]);
    expect(report.logs).toEqual([
      { text: "trusted sender a@example.org", rule: "trusted-sender" },
      // Control characters are replaced by one space in texts: the fold becomes a space.
      { text: "folded: first line second line", rule: "folded" },
    ]);
    expect(report.result).toEqual({ decision: "accept", reply: null });

    const rejected = json(
      dryRun(
        "--from",
        "a@example.org",
        "--rcpt",
        "ok@example.org",
        "--header",
        "X-Extra: reject me",
        "--json",
      ),
    );
    expect(rejected.result).toEqual({ decision: "reject", reply: "554 5.7.1 extra header" });
  });

  it("the whole message's size is `size` at eom; a Subject header can quarantine", () => {
    const big = join(dir, "big.eml");
    writeFileSync(big, `Subject: [SPAM] offer\r\n\r\n${"x".repeat(2000)}\r\n`);
    const report = json(
      dryRun("--from", "a@example.org", "--rcpt", "ok@example.org", "--message", big, "--json"),
    );
    // eoh quarantines, then eom refuses: refusal wins, as the MTA would refuse the message.
    // 2027 bytes: "Subject: [SPAM] offer" and CRLF (23), the blank line (2), the body (2002).
    expect(report.result).toEqual({ decision: "reject", reply: "552 5.3.4 Message too big (2027 bytes)" });
    const small = join(dir, "small.eml");
    writeFileSync(small, "Subject: [SPAM] offer\r\n\r\nhi\r\n");
    const quarantined = json(
      dryRun("--from", "a@example.org", "--rcpt", "ok@example.org", "--message", small, "--json"),
    );
    expect(quarantined.result).toEqual({ decision: "quarantine", reply: null });
    expect(quarantined.quarantine).toBe("spam subject from 192.0.2.1");
  });
});

describe("filterctl dry-run, for humans", () => {
  it("prints each stage, each rule, each lookup with its result and time, and the replies", () => {
    const result = dryRun(
      "--from",
      "a@example.org",
      "--rcpt",
      "full@example.org",
      "--rcpt",
      "ok@example.org",
    );
    expect(result.status).toBe(0);
    const out = result.stdout.replace(/\(\d+\.\d ms\)/g, "(T ms)");
    expect(out).toBe(
      [
        "connect 192.0.2.1 [192.0.2.1]",
        "  => continue",
        "helo",
        "  => continue",
        "mail    <a@example.org>",
        "  rule trusted-sender: no decision",
        '    lookup trusted "example.org" -> found (T ms)',
        "    log: trusted sender a@example.org",
        "  rule bounces: no decision",
        "  => continue",
        "rcpt    full@example.org",
        "  rule backend-quota: tempfail",
        '    lookup quota(mailboxes) "full@example.org" -> usage 1000/1000 bytes, 1/∞ messages (T ms)',
        "  => tempfail 452 4.2.2 Quota exceeded for full@example.org, try again later (rule backend-quota)",
        "rcpt    ok@example.org",
        "  rule backend-quota: no decision",
        '    lookup quota(mailboxes) "ok@example.org" -> usage 10/1000 bytes, 1/∞ messages (T ms)',
        "  rule http-quota: no decision",
        "  rule try-out [shadow]: reject",
        "  shadow try-out would reject 550 5.7.1 shadow would refuse ok@example.org",
        "  => continue",
        "data",
        "  => continue",
        "eoh",
        "  rule spam-subject: no decision",
        "  rule extra: no decision",
        "  => continue",
        "body",
        "  => continue",
        "eom",
        "  rule big: no decision",
        "  => continue",
        "",
        "recipients:",
        "  full@example.org  tempfail 452 4.2.2 Quota exceeded for full@example.org, try again later (rule backend-quota)",
        "  ok@example.org    continue",
        "result: accept",
        "",
      ].join("\n"),
    );
  });

  it("shows a failed lookup and the reply it led to", () => {
    const result = dryRun("--from", "a@example.org", "--rcpt", "remote@example.org");
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /rcpt {4}remote@example\.org\n {2}rule backend-quota: no decision\n {4}lookup quota\(mailboxes\) "remote@example\.org" -> no such mailbox \(\d+\.\d ms\)\n {2}rule http-quota: tempfail\n {4}lookup quota\(backend\) "remote@example\.org" -> error: .+ \(\d+\.\d ms\)\n {4}lookup failed on backend: .+\n {2}=> tempfail 451 4\.3\.0 Temporary lookup failure, try again later \(rule http-quota\)\n/,
    );
    expect(result.stdout).toMatch(
      /\nresult: tempfail 451 4\.3\.0 Temporary lookup failure, try again later\n$/,
    );
  });

  it("shows a folded header on one line", () => {
    const result = dryRun("--from", "a@example.org", "--rcpt", "ok@example.org", "--message", message);
    expect(result.stdout).toContain(
      "header  X-Folded: first line\\n\tsecond line\n  rule folded: no decision\n",
    );
  });
});

describe("filterctl dry-run, mistakes", () => {
  it("exit 2 for a --client-ip that is not an IP address", () => {
    const result = runCli([
      "dry-run",
      "--config",
      config,
      "--client-ip",
      "192.0.2",
      "--from",
      "a@b",
      "--rcpt",
      "c@d",
    ]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe("filterctl: --client-ip '192.0.2' is not an IP address\n");
  });

  it("exit 2 for an unreadable --message", () => {
    const result = dryRun("--from", "a@b", "--rcpt", "c@d", "--message", join(dir, "missing.eml"));
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^filterctl: cannot read --message .*missing\.eml: ENOENT\n$/);
    const folder = dryRun("--from", "a@b", "--rcpt", "c@d", "--message", dir);
    expect(folder.status).toBe(2);
  });

  it("exit 2 without --rcpt, or with a --header that is not 'Name: value'", () => {
    const none = dryRun("--from", "a@b");
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/--rcpt/);
    const header = dryRun("--from", "a@b", "--rcpt", "c@d", "--header", "no colon");
    expect(header.status).toBe(2);
    expect(header.stderr).toBe("filterctl: --header 'no colon': expected 'Name: value'\n");
  });

  it("exit 2 for a missing config file", () => {
    const result = runCli([
      "dry-run",
      "--config",
      join(dir, "nope.yaml"),
      "--client-ip",
      "192.0.2.1",
      "--from",
      "a@b",
      "--rcpt",
      "c@d",
    ]);
    expect(result.status).toBe(2);
  });

  it("exit 1 with the diagnostics for an invalid config", () => {
    const file = join(dir, "broken.yaml");
    writeFileSync(file, 'rules:\n  - on rcpt: if rcpt.domian == "x" then reject\n');
    const result = runCli([
      "dry-run",
      "--config",
      file,
      "--client-ip",
      "192.0.2.1",
      "--from",
      "a@b",
      "--rcpt",
      "c@d",
    ]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      [
        `${file}:2:17: error: unknown name 'rcpt.domian' (did you mean 'rcpt.domain'?)`,
        ' 2 |   - on rcpt: if rcpt.domian == "x" then reject',
        "   |                 ^",
        `${file}: invalid (1 error, 0 warnings)`,
        "",
      ].join("\n"),
    );
  });
});
