/**
 * The milter server behind a real Postfix (a private instance, see postfix-instance.ts):
 * replies reach SMTP clients with their codes and texts, header changes reach the delivered
 * message, several transactions share one connection, and a dead milter means 451, never
 * unfiltered mail. Then the real `filterctl serve` binary behind the same kind of Postfix.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_QUARANTINE_REASON,
  type PolicyMilter,
  type SessionRecord,
  startPolicyMilter,
  summarize,
} from "../fixtures/policy-milter.js";
import { type DeliveredMessage, hasQueueId, PostfixInstance } from "./postfix-instance.js";
import { Background, freePort } from "./processes.js";
import { buildMessage, queueIdOf, SmtpClient, swaks } from "./smtp.js";

const BIN = fileURLToPath(new URL("../../bin/filterctl.js", import.meta.url));

function header(message: DeliveredMessage, name: string): string | undefined {
  return message.headers.find(([field]) => field.toLowerCase() === name.toLowerCase())?.[1];
}

function headerNames(message: DeliveredMessage): string[] {
  return message.headers.map(([name]) => name);
}

/** The fixture session that handled the SMTP session whose message got `queueId`. */
function sessionWithQueueId(milter: PolicyMilter, queueId: string): SessionRecord {
  const session = milter.sessions.find((s) => s.transactions.some((t) => t.queueId === queueId));
  if (session === undefined)
    throw new Error(`no milter session saw queue id ${queueId}: ${summarize(milter.sessions)}`);
  return session;
}

describe("Postfix with the policy milter", () => {
  let milter: PolicyMilter;
  let postfix: PostfixInstance;

  beforeAll(async () => {
    milter = await startPolicyMilter();
    postfix = await PostfixInstance.start({ milter: milter.postfixSpec });
  });

  afterAll(async () => {
    await postfix?.stop();
    await milter?.stop();
  });

  it("refuses an over-quota recipient with 452 4.2.2 and delivers to the other one", async () => {
    const result = await swaks(postfix.smtpPort, {
      from: "sender@example.org",
      to: ["full-anna@example.net", "bob@example.net"],
      subject: "quota test",
    });
    expect(result.errors, result.output).toEqual([
      "452 4.2.2 Quota exceeded for full-anna@example.net, try again later",
    ]);
    expect(result.code, result.output).toBe(0);
    const queueId = result.queueId as string;
    expect(queueId, result.output).toMatch(/^[0-9A-F]+$/);

    const delivered = await postfix.waitForDelivery(queueId, ["bob@example.net"]);
    expect(delivered.recipients).toEqual(["<bob@example.net>"]);
    expect(delivered.mailFrom).toBe("<sender@example.org>");
    expect(header(delivered, "X-Filterctl-Test")).toBe("passed");
    expect(header(delivered, "X-Filterctl-Recipients")).toBe("bob@example.net");
    expect(header(delivered, "Subject")).toBe("quota test");
    expect(postfix.log()).toMatch(
      /milter-reject: RCPT from [^\n]*: 452 4\.2\.2 Quota exceeded for full-anna@example\.net/,
    );

    // What the milter saw: both recipients, the macros it asked Postfix for, the queue id.
    const session = sessionWithQueueId(milter, queueId);
    const [transaction] = session.transactions;
    expect(transaction?.recipients.map((r) => [r.address, r.decision])).toEqual([
      ["full-anna@example.net", "tempfail"],
      ["bob@example.net", "continue"],
    ]);
    expect(session.connect).toMatchObject({ family: "inet", address: "127.0.0.1" });
    expect(session.helo).toBe("client.e2e.test");
    const connectMacros = session.events.find((e) => e.stage === "connect")?.macros;
    expect(connectMacros).toMatchObject({ j: "mx.test.example", "{client_addr}": "127.0.0.1" });
    const mailMacros = session.events.find((e) => e.stage === "mail")?.macros;
    expect(mailMacros).toMatchObject({ "{mail_addr}": "sender@example.org" });
    const rcptMacros = session.events.filter((e) => e.stage === "rcpt").map((e) => e.macros["{rcpt_addr}"]);
    expect(rcptMacros).toEqual(["full-anna@example.net", "bob@example.net"]);
    const eomMacros = session.events.find((e) => e.stage === "eom")?.macros;
    expect(eomMacros?.i).toBe(queueId);
    // Postfix asks for exactly what the fixture wants, nothing of its own default lists.
    expect(
      Object.keys(mailMacros ?? {}).every((name) =>
        ["i", "{auth_authen}", "{auth_type}", "{mail_addr}"].includes(name),
      ),
    ).toBe(true);
  });

  it("rejects a forged sender at MAIL FROM with 550 5.7.1", async () => {
    const result = await swaks(postfix.smtpPort, { from: "forged@example.org", to: ["bob@example.net"] });
    expect(result.errors, result.output).toEqual([
      "550 5.7.1 Reject: your From address <forged@example.org> does not exist.",
    ]);
    expect(result.code, result.output).not.toBe(0);
    expect(result.queueId).toBeUndefined();
    expect(result.output).not.toMatch(/-> RCPT TO/);
    await milter.waitFor((sessions) =>
      sessions.some((s) => s.transactions.some((t) => t.sender === "<forged@example.org>") && s.closed),
    );
    const session = milter.sessions.find((s) =>
      s.transactions.some((t) => t.sender === "<forged@example.org>"),
    );
    expect(session?.transactions).toHaveLength(1);
    expect(session?.transactions[0]).toMatchObject({ mailDecision: "reject", recipients: [] });
    expect(session?.events.some((e) => e.stage === "rcpt")).toBe(false);
  });

  it("rejects the bad recipient with 550 5.7.1 and keeps the good one", async () => {
    const result = await swaks(postfix.smtpPort, {
      from: "sender@example.org",
      to: ["bad@example.net", "carol@example.net"],
    });
    expect(result.errors, result.output).toEqual(["550 5.7.1 Recipient <bad@example.net> rejected"]);
    expect(result.replies).toContain("250 2.1.5 Ok");
    const queueId = result.queueId as string;
    expect(queueId, result.output).toBeDefined();
    const delivered = await postfix.waitForDelivery(queueId, ["carol@example.net"]);
    expect(delivered.recipients).toEqual(["<carol@example.net>"]);
    expect(header(delivered, "X-Filterctl-Recipients")).toBe("carol@example.net");
  });

  it("handles several transactions on one SMTP connection (RSET, refused MAIL, second MAIL)", async () => {
    const { client, greeting } = await SmtpClient.connect(postfix.smtpPort);
    try {
      expect(greeting.code).toBe(220);
      expect((await client.command("EHLO multi.e2e.test")).code).toBe(250);

      // 1. A complete message.
      expect((await client.command("MAIL FROM:<first@example.org>")).last).toMatch(/^250 /);
      expect((await client.command("RCPT TO:<one@example.net>")).last).toMatch(/^250 /);
      const first = await client.data(
        buildMessage({ from: "first@example.org", to: ["one@example.net"], subject: "first of two" }),
      );
      expect(first.code, client.transcript.join("\n")).toBe(250);
      const firstId = queueIdOf(first.last) as string;

      // 2. RSET, a MAIL the milter refuses, then a MAIL that goes through.
      expect((await client.command("RSET")).code).toBe(250);
      expect((await client.command("MAIL FROM:<forged@example.org>")).last).toBe(
        "550 5.7.1 Reject: your From address <forged@example.org> does not exist.",
      );
      expect((await client.command("MAIL FROM:<second@example.org>")).code).toBe(250);
      expect((await client.command("RCPT TO:<full@example.net>")).last).toBe(
        "452 4.2.2 Quota exceeded for full@example.net, try again later",
      );
      expect((await client.command("RCPT TO:<two@example.net>")).code).toBe(250);
      const second = await client.data(
        buildMessage({ from: "second@example.org", to: ["two@example.net"], subject: "second of two" }),
      );
      expect(second.code, client.transcript.join("\n")).toBe(250);
      const secondId = queueIdOf(second.last) as string;
      expect(secondId).toBeDefined();
      expect(secondId).not.toBe(firstId);

      // 3. A transaction abandoned with RSET.
      expect((await client.command("MAIL FROM:<third@example.org>")).code).toBe(250);
      expect((await client.command("RCPT TO:<three@example.net>")).code).toBe(250);
      expect((await client.command("RSET")).code).toBe(250);
      await client.quit();

      const [one, two] = await Promise.all([
        postfix.waitForDelivery(firstId, ["one@example.net"]),
        postfix.waitForDelivery(secondId, ["two@example.net"]),
      ]);
      expect(header(one, "Subject")).toBe("first of two");
      expect(header(one, "X-Filterctl-Transaction")).toBe("1");
      expect(header(one, "X-Filterctl-Recipients")).toBe("one@example.net");
      expect(header(two, "Subject")).toBe("second of two");
      expect(header(two, "X-Filterctl-Transaction")).toBe("2");
      expect(header(two, "X-Filterctl-Recipients")).toBe("two@example.net");
      expect(two.recipients).toEqual(["<two@example.net>"]);

      // One milter connection for the whole SMTP session, with every transaction in order.
      const session = sessionWithQueueId(milter, firstId);
      await milter.waitFor(() => session.closed);
      expect(session.transactions.map((t) => [t.sender, t.end, t.queueId])).toEqual([
        ["<first@example.org>", "eom", firstId],
        ["<forged@example.org>", "abort", undefined],
        ["<second@example.org>", "eom", secondId],
        ["<third@example.org>", "abort", undefined],
      ]);
      expect(session.transactions[2]?.recipients.map((r) => r.decision)).toEqual(["tempfail", "continue"]);
      expect(session.helo).toBe("multi.e2e.test");
    } finally {
      client.close();
    }
  });

  it("inserts a header at the top and changes the Subject of the delivered message", async () => {
    const result = await swaks(postfix.smtpPort, {
      from: "sender@example.org",
      to: ["dora@example.net"],
      subject: "[modify] please rewrite me",
    });
    expect(result.code, result.output).toBe(0);
    const delivered = await postfix.waitForDelivery(result.queueId as string, ["dora@example.net"]);
    const names = headerNames(delivered);
    // Index 0 is above Postfix's own Received header.
    expect(names.slice(0, 2)).toEqual(["X-Filterctl-Top", "Received"]);
    expect(header(delivered, "X-Filterctl-Top")).toBe("first");
    expect(header(delivered, "Received")).toContain(
      `by mx.test.example (Postfix) with ESMTP id ${result.queueId}`,
    );
    expect(header(delivered, "Subject")).toBe("[filtered] [modify] please rewrite me");
    expect(names.filter((name) => name === "Subject")).toHaveLength(1);
    // Added headers go last, in the order they were sent.
    expect(names.slice(-3)).toEqual([
      "X-Filterctl-Test",
      "X-Filterctl-Transaction",
      "X-Filterctl-Recipients",
    ]);
  });

  it("puts a quarantined message on hold instead of delivering it", async () => {
    const result = await swaks(postfix.smtpPort, {
      from: "sender@example.org",
      to: ["erin@example.net"],
      subject: "[quarantine] suspicious",
    });
    expect(result.code, result.output).toBe(0);
    const queueId = result.queueId as string;
    expect(queueId).toBeDefined();
    await postfix.waitForLog(
      new RegExp(`${queueId}: milter-hold: END-OF-MESSAGE from .*: milter triggers HOLD action`),
    );
    const queue = await postfix.queue();
    expect(queue.find((entry) => entry.queue_id === queueId)).toMatchObject({
      queue_name: "hold",
      sender: "sender@example.org",
    });
    expect((await postfix.delivered()).some((message) => hasQueueId(message, queueId))).toBe(false);
    const session = sessionWithQueueId(milter, queueId);
    expect(session.transactions[0]?.modifications).toContainEqual({
      type: "quarantine",
      reason: DEFAULT_QUARANTINE_REASON,
    });
  });

  it("answers 451 when the milter is down (milter_default_action = tempfail), and recovers", async () => {
    const port = milter.port;
    await milter.stop();
    const down = await swaks(postfix.smtpPort, { from: "sender@example.org", to: ["frank@example.net"] });
    expect(down.errors, down.output).toEqual(["451 4.7.1 Service unavailable - try again later"]);
    expect(down.code).not.toBe(0);
    expect(down.queueId).toBeUndefined();
    expect(postfix.log()).toContain(`connect to Milter service inet:127.0.0.1:${port}: Connection refused`);

    milter = await startPolicyMilter({ port });
    const up = await swaks(postfix.smtpPort, { from: "sender@example.org", to: ["frank@example.net"] });
    expect(up.errors, up.output).toEqual([]);
    const delivered = await postfix.waitForDelivery(up.queueId as string, ["frank@example.net"]);
    expect(header(delivered, "X-Filterctl-Test")).toBe("passed");
  });
});

describe("Postfix with the filterctl serve binary", () => {
  let cli: Background;
  let postfix: PostfixInstance;
  let milterPort: number;

  beforeAll(async () => {
    milterPort = await freePort();
    cli = new Background(process.execPath, [BIN, "serve", "--listen", `inet:127.0.0.1:${milterPort}`]);
    await cli.waitForOutput(/"msg":"milter listening"/);
    postfix = await PostfixInstance.start({ milter: `inet:127.0.0.1:${milterPort}` });
  });

  afterAll(async () => {
    await postfix?.stop();
    await cli?.stop();
  });

  function logLines(): Record<string, unknown>[] {
    return cli.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  it("lets mail through and logs every event as a JSON line", async () => {
    const result = await swaks(postfix.smtpPort, {
      from: "sender@example.org",
      to: ["gina@example.net", "hal@example.net"],
      subject: "through the real binary",
    });
    expect(result.errors, result.output).toEqual([]);
    const queueId = result.queueId as string;
    const delivered = await postfix.waitForDelivery(queueId, ["gina@example.net", "hal@example.net"]);
    expect(delivered.recipients).toEqual(["<gina@example.net>", "<hal@example.net>"]);
    expect(header(delivered, "Subject")).toBe("through the real binary");

    await cli.waitForOutput(new RegExp(`"stage":"eom","queueId":"${queueId}"`));
    const events = logLines().filter((line) => line.msg === "event");
    const eom = events.find((line) => line.stage === "eom" && line.queueId === queueId);
    const conn = eom?.conn;
    const mine = events.filter((line) => line.conn === conn);
    const stages = mine.map((line) => line.stage);
    for (const stage of ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]) {
      expect(stages, cli.stdout).toContain(stage);
    }
    expect(stages.indexOf("connect")).toBeLessThan(stages.indexOf("helo"));
    expect(stages.indexOf("helo")).toBeLessThan(stages.indexOf("mail"));
    expect(stages.indexOf("mail")).toBeLessThan(stages.indexOf("rcpt"));
    expect(stages.indexOf("rcpt")).toBeLessThan(stages.indexOf("eom"));
    expect(mine.find((line) => line.stage === "connect")).toMatchObject({
      client: "127.0.0.1",
      family: "inet",
    });
    expect(mine.find((line) => line.stage === "helo")).toMatchObject({ helo: "client.e2e.test" });
    expect(mine.find((line) => line.stage === "mail")).toMatchObject({ from: "<sender@example.org>" });
    expect(mine.filter((line) => line.stage === "rcpt").map((line) => line.rcpt)).toEqual([
      "<gina@example.net>",
      "<hal@example.net>",
    ]);
    expect(mine.find((line) => line.stage === "header" && line.name === "Subject")).toMatchObject({
      value: "through the real binary",
    });
  });

  it("exits 0 on SIGTERM, after which Postfix defers mail instead of accepting it unfiltered", async () => {
    cli.signal("SIGTERM");
    const status = await cli.waitForExit(10_000);
    expect(status, cli.output()).toEqual({ code: 0, signal: null });
    expect(logLines().some((line) => line.msg === "stopped")).toBe(true);

    const result = await swaks(postfix.smtpPort, { from: "sender@example.org", to: ["ivan@example.net"] });
    expect(result.errors, result.output).toEqual(["451 4.7.1 Service unavailable - try again later"]);
    expect(result.queueId).toBeUndefined();
  });
});
