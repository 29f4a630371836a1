/**
 * Issue #5 end to end with Sendmail: Debian's Sendmail 8.17 (sendmail-bin, unpacked, see
 * test/support/sendmail.ts) with `INPUT_MAIL_FILTER` pointing at the real `filterctl serve`,
 * whose rules look things up in a private slapd (our domains and addresses), Maildir++
 * mailboxes made by maildrop's tools and a private rbldnsd. Driven with `sendmail -bs` (SMTP on
 * stdin/stdout) and, for the connect-time DNSBL check that needs a client address, the `-bD`
 * daemon on a loopback port.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MaildirFixtures } from "../support/maildir-fixtures.js";
import { type Rbldnsd, startRbldnsd, ZONES } from "../support/rbldnsd.js";
import { type QueuedMessage, SendmailInstance } from "../support/sendmail.js";
import { type LogLine, ServeProcess } from "../support/serve-process.js";
import { BIND_DN, BIND_PASSWORD, Slapd } from "../support/slapd.js";
import { freePort, run } from "./processes.js";
import { buildMessage } from "./smtp.js";

const LISTED_CLIENT = "127.0.0.5";

function rulesYaml(p: { ldapUrl: string; passwordFile: string; maildirs: string; dns: string }): string {
  return `# rules.yaml for the Sendmail end-to-end test
defaults:
  on_error: tempfail
  error_reply: "451 4.3.0 Temporary lookup failure, try again later"
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
  mailboxes:
    type: maildir
    path: "${p.maildirs}"
    recipient_delimiter: "+"
  blocklist:
    type: dnsbl
    zone: ${ZONES.healthy}
rules:
  - name: dnsbl
    on: connect
    if: client.ip in blocklist
    then: reject 554 5.7.1 "Service unavailable; {client.ip} is listed by {blocklist.zone}"
  - name: verify-from
    on: mail
    if: from.domain in directory.local_domains and from not in directory.addresses
    then: 'reject 550 5.7.1 "Reject: your From address {from} does not exist."'
  - name: mailbox-full
    on: rcpt
    if: rcpt.domain in directory.local_domains and quota(rcpt, mailboxes) over
    then: tempfail 452 4.2.2 "Mailbox of {rcpt} is full, try again later"
  - on eom: add header "X-Filterctl" "checked by filterctl"
`;
}

function headerValues(message: QueuedMessage | undefined, name: string): string[] {
  return (message?.headers ?? [])
    .filter(([field]) => field.toLowerCase() === name.toLowerCase())
    .map(([, v]) => v);
}

describe("filterctl serve behind Sendmail 8.17 (INPUT_MAIL_FILTER)", () => {
  let dir: string;
  let slapd: Slapd;
  let rbl: Rbldnsd;
  let mail: MaildirFixtures;
  let serve: ServeProcess;
  let sendmail: SendmailInstance;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "filterctl-serve-sendmail-"));
    [slapd, rbl, mail] = await Promise.all([Slapd.start(), startRbldnsd(), MaildirFixtures.create()]);
    await mail.underQuota("alice");
    await mail.overBytes("bob");
    const passwordFile = join(dir, "ldap.secret");
    await writeFile(passwordFile, `${BIND_PASSWORD}\n`);
    await chmod(passwordFile, 0o600);
    const rules = join(dir, "rules.yaml");
    await writeFile(
      rules,
      rulesYaml({ ldapUrl: slapd.url, passwordFile, maildirs: mail.template, dns: rbl.server }),
    );
    const port = await freePort();
    // Sendmail's notation for the same socket.
    serve = await ServeProcess.start({ config: rules, listen: `inet:${port}@127.0.0.1` });
    await serve.waitForLine((l) => l.source === "blocklist" && l.state === "healthy", 15_000);
    sendmail = await SendmailInstance.create({
      milter: `inet:${port}@127.0.0.1`,
      daemonPort: await freePort(),
    });
  });

  afterAll(async () => {
    await sendmail?.stop();
    await serve?.stop();
    await Promise.allSettled([slapd?.destroy(), rbl?.stop(), mail?.cleanup()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function waitForDecisions(count: number, predicate: (line: LogLine) => boolean): Promise<LogLine[]> {
    const matching = () => serve.lines.filter((line) => line.msg === "decision" && predicate(line));
    const deadline = Date.now() + 5000;
    while (matching().length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return matching();
  }

  it("defers the over-quota recipient with 452 4.2.2 at RCPT and queues the message for the other", async () => {
    const { session, greeting } = await sendmail.session();
    try {
      expect(greeting.last).toMatch(/^220 mx\.test\.example ESMTP Sendmail 8\.17/);
      expect((await session.command("EHLO client.e2e.test")).code).toBe(250);
      expect((await session.command("MAIL FROM:<alice@example.org>")).last).toMatch(/^250 2\.1\.0 /);
      expect((await session.command("RCPT TO:<bob@example.org>")).last).toBe(
        "452 4.2.2 Mailbox of bob@example.org is full, try again later",
      );
      expect((await session.command("RCPT TO:<alice+sendmail@example.org>")).last).toMatch(/^250 2\.1\.5 /);
      const done = await session.data(
        buildMessage({
          from: "alice@example.org",
          to: ["bob@example.org", "alice+sendmail@example.org"],
          subject: "quota through Sendmail",
        }),
      );
      expect(done.last, session.transcript.join("\n")).toMatch(
        /^250 2\.0\.0 \w+ Message accepted for delivery$/,
      );
      const id = /^250 2\.0\.0 (\w+) /.exec(done.last)?.[1];
      await session.quit();

      const queued = (await sendmail.queued()).find((m) => m.id === id);
      expect(queued, `queue: ${JSON.stringify(await sendmail.queued())}`).toBeDefined();
      expect(queued?.sender).toBe("<alice@example.org>");
      expect(queued?.recipients).toEqual(["<alice+sendmail@example.org>"]);
      expect(headerValues(queued, "Subject")).toEqual(["quota through Sendmail"]);
      expect(headerValues(queued, "X-Filterctl")).toEqual(["checked by filterctl"]);
      const [decision] = await waitForDecisions(1, (l) => l.rule === "mailbox-full");
      expect(decision).toMatchObject({
        stage: "rcpt",
        decision: "tempfail",
        reply: "452 4.2.2 Mailbox of bob@example.org is full, try again later",
        queueId: id,
      });
    } finally {
      session.kill();
    }
  });

  it("rejects a forged sender of our domain with 550 5.7.1 at MAIL; an existing sender and <> pass", async () => {
    const { session } = await sendmail.session();
    try {
      expect((await session.command("EHLO client.e2e.test")).code).toBe(250);
      // Sendmail puts the address in front of the milter's text at MAIL (not at RCPT).
      expect((await session.command("MAIL FROM:<forged@example.org>")).last).toBe(
        "550 5.7.1 <forged@example.org>... Reject: your From address forged@example.org does not exist.",
      );
      const ids: string[] = [];
      for (const from of ["bob@example.org", ""]) {
        expect((await session.command(`MAIL FROM:<${from}>`)).last, session.transcript.join("\n")).toMatch(
          /^250 2\.1\.0 /,
        );
        expect((await session.command("RCPT TO:<alice@example.org>")).last).toMatch(/^250 2\.1\.5 /);
        const done = await session.data(
          buildMessage({
            from: from || "MAILER-DAEMON@example.org",
            to: ["alice@example.org"],
            subject: `<${from}>`,
          }),
        );
        expect(done.last, session.transcript.join("\n")).toMatch(/^250 2\.0\.0 \w+ /);
        ids.push(/^250 2\.0\.0 (\w+) /.exec(done.last)?.[1] as string);
      }
      await session.quit();
      const queued = await sendmail.queued();
      expect(ids.map((id) => queued.find((m) => m.id === id)?.sender)).toEqual(["<bob@example.org>", "<>"]);
      const rejected = await waitForDecisions(1, (l) => l.rule === "verify-from");
      expect(rejected.map((l) => [l.stage, l.decision, l.from, l.reply])).toEqual([
        [
          "mail",
          "reject",
          "forged@example.org",
          "550 5.7.1 Reject: your From address forged@example.org does not exist.",
        ],
      ]);
    } finally {
      session.kill();
    }
  });

  it("refuses a listed client at connect on the -bD daemon (Sendmail answers its own 554)", async () => {
    await sendmail.startDaemon();
    const port = sendmail.options.daemonPort as number;
    const swaks = (from: string) =>
      run(
        "swaks",
        [
          "--server",
          `127.0.0.1:${port}`,
          "--local-interface",
          from,
          "--from",
          "alice@example.org",
          "--to",
          "alice@example.org",
          "--timeout",
          "20",
        ],
        { timeoutMs: 30_000 },
      );
    const listed = await swaks(LISTED_CLIENT);
    const listedOutput = listed.stdout + listed.stderr;
    expect(listed.code, listedOutput).not.toBe(0);
    // Sendmail's own greeting, not the milter's text (SPEC "Notes on MTAs").
    expect(listedOutput).toMatch(/^<\*\* +554 mx\.test\.example ESMTP not accepting messages$/m);
    expect(listedOutput).not.toMatch(/Message accepted for delivery/);
    expect(listedOutput).not.toContain("is listed by");
    const [decision] = await waitForDecisions(1, (l) => l.stage === "connect");
    expect(decision).toMatchObject({
      rule: "dnsbl",
      decision: "reject",
      client: LISTED_CLIENT,
      reply: `554 5.7.1 Service unavailable; ${LISTED_CLIENT} is listed by ${ZONES.healthy}`,
    });

    const clean = await swaks("127.0.0.12");
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/<- +250 2\.0\.0 \w+ Message accepted for delivery/);
  });
});
