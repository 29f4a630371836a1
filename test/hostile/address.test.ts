/**
 * Issue 8, address normalisation, through the real `filterctl serve` process and the milter
 * client: a recipient over quota cannot be let through by writing its address in other case or
 * needless quotes, and hostile RCPT arguments (huge, control bytes, several @, unbalanced or
 * escaped quotes, path tricks hidden in quotes) are answered without harm. The mailbox is a
 * Maildir++ made by the real maildrop tools. Every loop is bounded; loopback only.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { HAVE_MAILDROP, MaildirFixtures } from "../support/maildir-fixtures.js";
import { ServeProcess } from "../support/serve-process.js";

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

describe.runIf(HAVE_MAILDROP)("serve: RCPT TO spelled to dodge a quota check", () => {
  let fixtures: MaildirFixtures;
  let dir: string;
  let serve: ServeProcess;

  beforeAll(async () => {
    fixtures = await MaildirFixtures.create();
    await fixtures.overBytes("bob");
    await fixtures.underQuota("alice");
    dir = await mkdtemp(join(tmpdir(), "filterctl-hostile-address-"));
    const config = join(dir, "rules.yaml");
    await writeFile(
      config,
      `sources:
  mailboxes:
    type: maildir
    path: ${JSON.stringify(fixtures.template)}
    recipient_delimiter: "+"
rules:
  - name: backend-quota
    on: rcpt
    if: quota(rcpt) over
    then: 'tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"'
`,
    );
    serve = await ServeProcess.start({ config });
  }, 30_000);
  afterAll(async () => {
    await serve?.stop();
    await rm(fixtures.root, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  async function session(): Promise<MilterClient> {
    const client = await MilterClient.connect(serve.listen, 5000);
    await client.negotiate();
    await client.connectInfo({
      hostname: "mx.example.net",
      family: "inet",
      port: 25,
      address: "203.0.113.7",
    });
    await client.helo("mx.example.net");
    await client.mail("<sender@example.net>");
    return client;
  }

  it("tempfails every spelling of the over-quota recipient, and says it as the client wrote it", async () => {
    const client = await session();
    for (const rcpt of [
      '<"Bob"@Example.ORG>',
      "<Bob@example.org>",
      '<"bob"@example.org>',
      "<BOB@EXAMPLE.ORG>",
    ]) {
      const bare = rcpt.slice(1, -1);
      expect(await client.rcpt(rcpt), rcpt).toEqual({
        type: "replycode",
        text: `452 4.2.2 Quota exceeded for ${bare}, try again later`,
      });
    }
    expect(await client.rcpt("<Alice@Example.ORG>")).toEqual({ type: "continue" });
    client.quit();
    const decision = await serve.waitForLine((l) => l.msg === "decision" && l.rcpt === '"Bob"@Example.ORG');
    expect(decision).toMatchObject({ stage: "rcpt", decision: "tempfail", rule: "backend-quota" });
    const lookups = decision.lookups as { key: string; result: string }[];
    expect(lookups.map((l) => l.key)).toEqual(["bob@example.org"]);
  });

  it("hostile RCPT arguments are answered (never over quota by accident) and the server stays small", async () => {
    const hostile = [
      "<>",
      "<@>",
      '<"">',
      '<"@example.org>',
      '<"unterminated\\"@example.org>',
      '<"../bob"@example.org>',
      '<"bob/../alice"@example.org>',
      '<".bob"@example.org>',
      "<bob@@example.org>",
      "<@relay.example:Bob@Example.ORG>",
      `<${"B".repeat(60_000)}@example.org>`,
      `<"${'\\"'.repeat(20_000)}"@example.org>`,
      "<b\x01o\x7fb@example.org>",
      "<bob\r\n@example.org>",
      "<Bob@Example.ORG.>",
      "<jörg@Bücher.example>",
    ];
    const before = rssKiB(serve.pid);
    const started = Date.now();
    const client = await session();
    const answers: string[] = [];
    for (let round = 0; round < 20 && Date.now() - started < 20_000; round++) {
      for (const rcpt of hostile) {
        const reply = await client.rcpt(rcpt);
        answers.push(reply?.type === "replycode" ? reply.text.slice(0, 9) : String(reply?.type));
      }
    }
    client.quit();
    // Only the source-routed and the trailing-dot spellings of Bob are his mailbox.
    const refused = hostile.filter((_, i) => answers[i] !== "continue");
    expect(refused).toEqual(["<@relay.example:Bob@Example.ORG>", "<Bob@Example.ORG.>"]);
    expect(new Set(answers.filter((a) => a !== "continue"))).toEqual(new Set(["452 4.2.2"]));
    expect(answers.length).toBeGreaterThanOrEqual(hostile.length);
    expect(serve.running).toBe(true);
    expect(rssKiB(serve.pid) - before).toBeLessThan(64 * 1024);
    expect(serve.other).not.toMatch(/TypeError|RangeError|uncaught/i);
  }, 40_000);
});
