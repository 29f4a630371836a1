/**
 * Issue #5 end to end: the real `filterctl serve` behind a private Postfix, with a rules.yaml
 * in the style of examples/rules.yaml whose sources are real servers on loopback: a private
 * slapd (the directory: our domains and addresses), Maildir++ mailboxes made by maildrop's
 * tools, the real `filterctl quota-server` for the HTTP source, and a private rbldnsd serving a
 * healthy block list and one that lists everything (ORDB in March 2008).
 *
 * The three policies of SPEC.md as a postmaster sees them through SMTP: 452 4.2.2 at RCPT for
 * a full mailbox while the other recipient gets the message, 550 5.7.1 at MAIL for a forged
 * sender of our domains (never for <>), refusal at connect of a client the healthy list names
 * while the list-everything zone is switched off; plus 451 4.3.0 when the directory is down and
 * the added header in the delivered mail.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MaildirFixtures } from "../support/maildir-fixtures.js";
import { type Rbldnsd, startRbldnsd, ZONES } from "../support/rbldnsd.js";
import { FILTERCTL_BIN, type LogLine, ServeProcess } from "../support/serve-process.js";
import { BIND_DN, BIND_PASSWORD, Slapd } from "../support/slapd.js";
import { type DeliveredMessage, PostfixInstance } from "./postfix-instance.js";
import { Background, freePort, run } from "./processes.js";
import { buildMessage, queueIdOf, SmtpClient } from "./smtp.js";

/** A client address the healthy list (bl.test) lists with 127.0.0.2; the whole 127/8 is local. */
const LISTED_CLIENT = "127.0.0.5";
/** Listed by everything.test only (as is every address). */
const ORDB_ONLY_CLIENT = "127.0.0.7";
const ERROR_REPLY = "451 4.3.0 Temporary lookup failure, try again later";

function rulesYaml(p: {
  ldapUrl: string;
  passwordFile: string;
  maildirs: string;
  quotaUrl: string;
  dns: string;
}) {
  return `# rules.yaml for the Postfix end-to-end test (examples/rules.yaml with real servers)
listen: "inet:127.0.0.1:8890"
defaults:
  on_error: tempfail
  error_reply: "${ERROR_REPLY}"
  timeout: 2s
dns:
  servers: ["${p.dns}"]
sources:
  directory:
    type: ldap
    url: "${p.ldapUrl}"
    bind_dn: "${BIND_DN}"
    password_file: "${p.passwordFile}"
    base: "dc=mail"
    tables:
      local_domains: "(sendmailMTAClassValue={key})"
      addresses: "(mailLocalAddress={key})"
    # No caching: the dead-directory test must reach the directory.
    cache: 0s
    negative_cache: 0s
    on_error: tempfail
  mailboxes:
    type: maildir
    path: "${p.maildirs}"
    recipient_delimiter: "+"
    on_error: tempfail
  backend:
    type: http
    url: "${p.quotaUrl}"
    recipient_delimiter: "+"
    cache: 0s
    negative_cache: 0s
  blocklist:
    type: dnsbl
    zone: ${ZONES.healthy}
    codes: ["127.0.0.2-127.0.0.11"]
  ordb:
    type: dnsbl
    zone: ${ZONES.everything}
rules:
  - name: dnsbl
    on: connect
    if: client.ip in blocklist
    then: reject 554 5.7.1 "Service unavailable; {client.ip} is listed by {blocklist.zone}"
  - name: dnsbl-ordb
    on: connect
    if: client.ip in ordb
    then: reject 554 5.7.1 "Service unavailable; {client.ip} is listed by {ordb.zone}"
  - name: verify-from
    on: mail
    if: from.domain in directory.local_domains and from not in directory.addresses
    then: 'reject 550 5.7.1 "Reject: your From address {from} does not exist."'
  # example.org mailboxes live here (Maildir++); example.net ones on the back-end (HTTP).
  - name: mailbox-full
    on: rcpt
    if: rcpt.domain in ["example.org"] and quota(rcpt, mailboxes) over
    then: tempfail 452 4.2.2 "Mailbox of {rcpt} is full, try again later"
  - name: backend-quota
    on: rcpt
    if: rcpt.domain == "example.net" and quota(rcpt, backend) over
    then: tempfail 452 4.2.2 "Back-end mailbox of {rcpt} is full ({quota.percent}%), try again later"
  - on eom: add header "X-Filterctl" "checked, client {client.ip}"
`;
}

function quotaServerYaml(maildirs: string): string {
  return `sources:
  mailboxes:
    type: maildir
    path: "${maildirs}"
    recipient_delimiter: "+"
rules: []
quota_server:
  listen: "127.0.0.1:8025"
  source: mailboxes
`;
}

function header(message: DeliveredMessage, name: string): string[] {
  return message.headers.filter(([field]) => field.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

interface SwaksRun {
  code: number | null;
  output: string;
  /** Server replies, last line of each, in order. */
  replies: string[];
}

/** One swaks session from a chosen loopback address (the DNSBL tests need a listed client). */
async function swaksFrom(
  port: number,
  localInterface: string,
  options: { from: string; to: string; subject: string },
): Promise<SwaksRun> {
  const result = await run(
    "swaks",
    [
      "--server",
      `127.0.0.1:${port}`,
      "--local-interface",
      localInterface,
      "--helo",
      "client.e2e.test",
      "--from",
      options.from,
      "--to",
      options.to,
      "--header",
      `Subject: ${options.subject}`,
      "--body",
      "Sent by swaks for the filterctl end-to-end tests.",
      "--timeout",
      "20",
    ],
    { timeoutMs: 30_000 },
  );
  const output = `${result.stdout}${result.stderr}`;
  const replies = output
    .split("\n")
    .filter((line) => /^<(?:-|\*\*) {1,2}\d{3}[ -]/.test(line))
    .map((line) => line.replace(/^<(?:-|\*\*) +/, ""))
    .filter((line) => /^\d{3} /.test(line));
  return { code: result.code, output, replies };
}

describe("filterctl serve behind Postfix, with real LDAP, Maildir++, HTTP and DNSBL sources", () => {
  let dir: string;
  let slapd: Slapd;
  let rbl: Rbldnsd;
  let mail: MaildirFixtures;
  let quotaServer: Background;
  let serve: ServeProcess;
  let postfix: PostfixInstance;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-serve-postfix-"));
    [slapd, rbl, mail] = await Promise.all([Slapd.start(), startRbldnsd(), MaildirFixtures.create()]);
    // The same mailboxes answer for example.org (read directly) and example.net (through the
    // quota service): alice is well under her quota, bob over his byte quota.
    await mail.underQuota("alice");
    await mail.overBytes("bob");

    const passwordFile = join(dir, "ldap.secret");
    await writeFile(passwordFile, `${BIND_PASSWORD}\n`);
    await chmod(passwordFile, 0o600);
    const quotaYaml = join(dir, "quota-server.yaml");
    await writeFile(quotaYaml, quotaServerYaml(mail.template));
    const quotaPort = await freePort();
    quotaServer = new Background(process.execPath, [
      FILTERCTL_BIN,
      "quota-server",
      "--config",
      quotaYaml,
      "--listen",
      `127.0.0.1:${quotaPort}`,
    ]);
    await quotaServer.waitForOutput(/"msg":"quota server listening"/, 15_000);

    const rules = join(dir, "rules.yaml");
    await writeFile(
      rules,
      rulesYaml({
        ldapUrl: slapd.url,
        passwordFile,
        maildirs: mail.template,
        quotaUrl: `http://127.0.0.1:${quotaPort}/quota?u={user}`,
        dns: rbl.server,
      }),
    );
    serve = await ServeProcess.start({ config: rules });
    // Both lists are off until their first probe round: wait for its verdicts.
    await serve.waitForLine((l) => l.source === "blocklist" && l.state === "healthy", 15_000);
    await serve.waitForLine((l) => l.source === "ordb" && l.state === "lists-everything", 15_000);
    postfix = await PostfixInstance.start({ milter: serve.postfixSpec });
  });

  afterAll(async () => {
    await postfix?.stop();
    await serve?.stop();
    await quotaServer?.stop();
    await Promise.allSettled([slapd?.destroy(), rbl?.stop(), mail?.cleanup()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const decisions = (predicate: (line: LogLine) => boolean) =>
    serve.lines.filter((line) => line.msg === "decision" && predicate(line));

  /** The decisions matching `predicate` once there are `count` of them (log lines come a little after the reply). */
  async function waitForDecisions(count: number, predicate: (line: LogLine) => boolean): Promise<LogLine[]> {
    const deadline = Date.now() + 5000;
    while (decisions(predicate).length < count && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return decisions(predicate);
  }

  /** An SMTP session on Postfix from 127.0.0.1, EHLO done. */
  async function session(): Promise<SmtpClient> {
    const { client, greeting } = await SmtpClient.connect(postfix.smtpPort);
    expect(greeting.code).toBe(220);
    expect((await client.command("EHLO client.e2e.test")).code).toBe(250);
    return client;
  }

  it("defers an over-quota recipient with 452 4.2.2 at RCPT and delivers to the other one", async () => {
    const client = await session();
    try {
      expect((await client.command("MAIL FROM:<alice@example.org>")).last).toMatch(/^250 /);
      expect((await client.command("RCPT TO:<bob@example.org>")).last).toBe(
        "452 4.2.2 Mailbox of bob@example.org is full, try again later",
      );
      expect((await client.command("RCPT TO:<alice+news@example.org>")).last).toMatch(/^250 /);
      const done = await client.data(
        buildMessage({
          from: "alice@example.org",
          to: ["bob@example.org", "alice+news@example.org"],
          subject: "quota end to end",
        }),
      );
      expect(done.code, client.transcript.join("\n")).toBe(250);
      const queueId = queueIdOf(done.last) as string;
      await client.quit();

      const delivered = await postfix.waitForDelivery(queueId, ["alice+news@example.org"]);
      expect(delivered.recipients).toEqual(["<alice+news@example.org>"]);
      expect(header(delivered, "Subject")).toEqual(["quota end to end"]);
      // The rule `on eom: add header ...` reached the delivered message, once.
      expect(header(delivered, "X-Filterctl")).toEqual(["checked, client 127.0.0.1"]);
      await postfix.waitForLog(
        /milter-reject: RCPT from [^\n]*: 452 4\.2\.2 Mailbox of bob@example\.org is full, try again later;[^\n]*to=<bob@example\.org>/,
      );
      expect(await waitForDecisions(1, (l) => l.rule === "mailbox-full")).toEqual([
        expect.objectContaining({
          stage: "rcpt",
          decision: "tempfail",
          reply: "452 4.2.2 Mailbox of bob@example.org is full, try again later",
          client: "127.0.0.1",
        }),
      ]);
    } finally {
      client.close();
    }
  });

  it("asks the real quota-server over HTTP for the back-end's mailboxes", async () => {
    const client = await session();
    try {
      expect((await client.command("MAIL FROM:<>")).last).toMatch(/^250 /);
      expect((await client.command("RCPT TO:<bob+lists@example.net>")).last).toBe(
        "452 4.2.2 Back-end mailbox of bob+lists@example.net is full (150%), try again later",
      );
      expect((await client.command("RCPT TO:<alice@example.net>")).last).toMatch(/^250 /);
      // Unknown to the back-end (404): not over quota.
      expect((await client.command("RCPT TO:<nobody@example.net>")).last).toMatch(/^250 /);
      const done = await client.data(
        buildMessage({ from: "mailer-daemon@example.net", to: ["alice@example.net"], subject: "back-end" }),
      );
      expect(done.code, client.transcript.join("\n")).toBe(250);
      const queueId = queueIdOf(done.last) as string;
      await client.quit();
      const delivered = await postfix.waitForDelivery(queueId, ["alice@example.net", "nobody@example.net"]);
      expect(delivered.recipients).toEqual(["<alice@example.net>", "<nobody@example.net>"]);
      expect((await waitForDecisions(1, (l) => l.rule === "backend-quota")).map((l) => l.reply)).toEqual([
        "452 4.2.2 Back-end mailbox of bob+lists@example.net is full (150%), try again later",
      ]);
    } finally {
      client.close();
    }
  });

  it("rejects a forged sender of our domain at MAIL with 550 5.7.1; existing senders and <> pass", async () => {
    const client = await session();
    try {
      expect((await client.command("MAIL FROM:<nosuchuser@example.org>")).last).toBe(
        "550 5.7.1 Reject: your From address nosuchuser@example.org does not exist.",
      );
      // Our other domain is checked too.
      expect((await client.command("MAIL FROM:<forged@Example.NET>")).last).toMatch(
        /^550 5\.7\.1 Reject: your From address forged@Example\.NET does not exist\.$/,
      );
      const sent: string[] = [];
      for (const from of ["alice@example.org", "Bob@EXAMPLE.org", "", "someone@elsewhere.test"]) {
        expect((await client.command(`MAIL FROM:<${from}>`)).last, `MAIL FROM:<${from}>`).toMatch(/^250 /);
        expect((await client.command("RCPT TO:<alice@example.org>")).last).toMatch(/^250 /);
        const done = await client.data(
          buildMessage({
            from: from || "mailer-daemon@example.org",
            to: ["alice@example.org"],
            subject: `from <${from}>`,
          }),
        );
        expect(done.code, client.transcript.join("\n")).toBe(250);
        sent.push(queueIdOf(done.last) as string);
      }
      await client.quit();
      const delivered = await Promise.all(
        sent.map((id) => postfix.waitForDelivery(id, ["alice@example.org"])),
      );
      expect(delivered.map((m) => m.mailFrom)).toEqual([
        "<alice@example.org>",
        "<Bob@EXAMPLE.org>",
        "<>",
        "<someone@elsewhere.test>",
      ]);
      await postfix.waitForLog(
        /milter-reject: MAIL from [^\n]*: 550 5\.7\.1 Reject: your From address nosuchuser@example\.org does not exist\./,
      );
      const verify = await waitForDecisions(2, (l) => l.rule === "verify-from");
      expect(verify.map((l) => [l.stage, l.decision, l.from])).toEqual([
        ["mail", "reject", "nosuchuser@example.org"],
        ["mail", "reject", "forged@Example.NET"],
      ]);
    } finally {
      client.close();
    }
  });

  it("refuses a client the healthy list names at connect (Postfix answers its own 554)", async () => {
    const result = await swaksFrom(postfix.smtpPort, LISTED_CLIENT, {
      from: "alice@example.org",
      to: "alice@example.org",
      subject: "from a listed client",
    });
    expect(result.code, result.output).not.toBe(0);
    // Postfix's own text, whatever the milter said (SPEC "Notes on MTAs").
    expect(result.replies[0], result.output).toBe("554 mx.test.example ESMTP not accepting connections");
    expect(result.output).not.toMatch(/queued as/);
    // The milter's text is not shown to the client, but filterctl and Postfix log it.
    expect(result.output).not.toContain("is listed by");
    const text = `554 5.7.1 Service unavailable; ${LISTED_CLIENT} is listed by ${ZONES.healthy}`;
    expect(await waitForDecisions(1, (l) => l.stage === "connect")).toEqual([
      expect.objectContaining({ rule: "dnsbl", decision: "reject", client: LISTED_CLIENT, reply: text }),
    ]);
    await postfix.waitForLog(
      new RegExp(
        `milter-reject: CONNECT from [^\\n]*\\[${LISTED_CLIENT.replace(/\./g, "\\.")}\\]: ${text.replace(/\./g, "\\.")}`,
      ),
    );
  });

  it("accepts a client listed only by a list-everything zone: that list is off, and filterctl said so", async () => {
    const warning = serve.find((l) => l.source === "ordb" && l.state === "lists-everything");
    expect(warning).toMatchObject({ level: 40, zone: ZONES.everything, previous: "unknown" });
    expect(String(warning?.msg)).toMatch(/\S/);
    const result = await swaksFrom(postfix.smtpPort, ORDB_ONLY_CLIENT, {
      from: "alice@example.org",
      to: "alice@example.org",
      subject: "from a client only ORDB lists",
    });
    expect(result.code, result.output).toBe(0);
    const queueId = queueIdOf(result.replies.find((r) => /queued as/.test(r)) ?? "") as string;
    expect(queueId, result.output).toBeDefined();
    const delivered = await postfix.waitForDelivery(queueId, ["alice@example.org"]);
    expect(header(delivered, "X-Filterctl")).toEqual([`checked, client ${ORDB_ONLY_CLIENT}`]);
    expect(decisions((l) => l.rule === "dnsbl-ordb")).toEqual([]);
    expect(decisions((l) => l.client === ORDB_ONLY_CLIENT)).toEqual([]);
  });

  it("answers 451 4.3.0 at MAIL while the directory is down (on_error: tempfail), and recovers", async () => {
    await slapd.stop();
    const client = await session();
    try {
      expect((await client.command("MAIL FROM:<alice@example.org>")).last).toBe(ERROR_REPLY);
      // A lookup error is never a 5xx: a forged sender is deferred too, not rejected.
      expect((await client.command("MAIL FROM:<nosuchuser@example.org>")).last).toBe(ERROR_REPLY);
      // The null sender needs no lookup: bounces still get through.
      expect((await client.command("MAIL FROM:<>")).last).toMatch(/^250 /);
      expect((await client.command("RSET")).code).toBe(250);
      await client.quit();
    } finally {
      client.close();
    }
    await postfix.waitForLog(/milter-reject: MAIL from [^\n]*: 451 4\.3\.0 Temporary lookup failure/);
    const deferred = await waitForDecisions(2, (l) => l.rule === "verify-from" && l.decision === "tempfail");
    expect(deferred).toHaveLength(2);
    expect(deferred[0]).toMatchObject({ stage: "mail", reply: ERROR_REPLY, from: "alice@example.org" });
    expect(String(deferred[0]?.lookupError)).toMatch(/directory/);
    expect(serve.find((l) => l.msg === "lookup failed" && l.source === "directory")).toBeDefined();

    await slapd.restart();
    const deadline = Date.now() + 15_000;
    for (;;) {
      const again = await session();
      try {
        const reply = (await again.command("MAIL FROM:<alice@example.org>")).last;
        if (/^250 /.test(reply)) break;
        expect(reply).toBe(ERROR_REPLY);
        if (Date.now() > deadline) throw new Error("the directory is back but MAIL is still deferred");
      } finally {
        await again.quit();
        again.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
});
