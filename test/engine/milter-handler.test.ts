/**
 * Which rules decide an event when a reload lands inside a transaction. The handler pins the
 * rules at the start of each transaction (connect, MAIL): the rest of that transaction is
 * decided by them, and the next one picks up the reloaded rules, unless those need stages or
 * macros this connection did not negotiate (then it keeps what it has until the MTA reconnects).
 *
 * The reload is awaited between two milter commands whose replies the client waits for, so it
 * lands exactly there: no timing luck. Real pieces: RulesRuntime loads the rules file, the
 * MilterServer runs the handler, MilterClient speaks for the MTA over loopback.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { rulesHandler } from "../../src/engine/milter-handler.js";
import { RulesRuntime } from "../../src/engine/service.js";
import { ActionFlag, MACRO_STAGE_NUMBER, type MilterClient, ProtocolFlag } from "../../src/milter/index.js";
import { CLIENT, startServer, type TestServer } from "../milter/helpers.js";

/**
 * Rules that say which version decided: RCPT to a@ is refused with the version in the text
 * (b@ is accepted, so the message goes on as with a real MTA) and the end of message adds
 * the version as a header. The MAIL rule only makes MAIL a stage the MTA waits for,
 * so the client knows the server has handled MAIL before the test reloads.
 */
const rulesFile = (version: string, extra = "") => `
rules:
  - on mail: if from.domain == "blocked.example" then reject 550 5.7.1 "blocked"
  - on rcpt: if rcpt == "a@example.org" then reject 550 5.7.1 "rules ${version}"
  - on eom: add header "X-Rules" "${version}"
${extra}`;

/** Version 3 also decides at the header stage, which a connection opened before it did not ask for. */
const HEADER_RULE = '  - on header: if header.name == "X-Never" then reject 554 5.7.1 "header rule"';

let dir: string;
let path: string;
let runtime: RulesRuntime;
let server: TestServer;
let logLines: Record<string, unknown>[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "filterctl-rules-handler-"));
  path = join(dir, "rules.yaml");
  writeFileSync(path, rulesFile("v1"));
  logLines = [];
  const logger = pino({ level: "info" }, { write: (line: string) => logLines.push(JSON.parse(line)) });
  runtime = await RulesRuntime.start(path, logger);
  const handlerFor = rulesHandler(runtime);
  let next = 0;
  server = await startServer(() => handlerFor({ id: ++next }));
});

afterEach(async () => {
  await server.stop();
  await runtime.close();
  rmSync(dir, { recursive: true, force: true });
});

async function reloadTo(version: string, extra = ""): Promise<void> {
  writeFileSync(path, rulesFile(version, extra));
  expect(await runtime.reload("test")).toBe(true);
}

async function open(): Promise<MilterClient> {
  const client = await server.connect();
  await client.negotiate();
  await client.connectInfo(CLIENT); // observed only: the MTA does not wait
  await client.helo("client.example");
  return client;
}

/** MAIL of a new transaction; its reply is awaited, so the server has handled it. */
async function mail(client: MilterClient): Promise<void> {
  expect(await client.mail("<sender@example.org>")).toEqual({ type: "continue" });
}

const refusedBy = (version: string) => ({ type: "replycode", text: `550 5.7.1 rules ${version}` });

/** The rest of a transaction: two RCPTs and a message; answers the X-Rules header added at its end. */
async function finish(client: MilterClient, version: string): Promise<string | undefined> {
  expect(await client.rcpt("<a@example.org>")).toEqual(refusedBy(version));
  expect(await client.rcpt("<b@example.org>")).toEqual({ type: "continue" });
  await client.data();
  await client.header("Subject", "hello");
  await client.eoh();
  await client.body(Buffer.from("body\r\n"));
  const end = await client.eom();
  expect(end.reply).toEqual({ type: "continue" });
  const added = end.modifications.find((m) => m.type === "addHeader" && m.name === "X-Rules");
  return added?.type === "addHeader" ? added.value : undefined;
}

const decisions = () =>
  logLines.filter((l) => l.msg === "decision").map((l) => ({ generation: l.generation, reply: l.reply }));

describe("rules handler: a reload inside a transaction", () => {
  it("the transaction's later events keep the rules it started with; the next transaction takes the new ones", async () => {
    const client = await open();
    await mail(client);
    await reloadTo("v2"); // between MAIL and the first RCPT
    expect(runtime.generation).toBe(2);
    expect(await finish(client, "v1")).toBe("v1");

    await mail(client); // a new transaction on the same connection
    expect(await finish(client, "v2")).toBe("v2");

    // A reload between RCPT and the end of message changes nothing in that transaction either.
    await mail(client);
    expect(await client.rcpt("<b@example.org>")).toEqual({ type: "continue" });
    await reloadTo("v3");
    expect(await client.rcpt("<a@example.org>")).toEqual(refusedBy("v2"));
    await client.data();
    await client.eoh();
    const end = await client.eom();
    expect(end.modifications).toContainEqual({ type: "addHeader", name: "X-Rules", value: "v2" });
    client.quit();

    // The decision log names the generation that decided.
    expect(decisions()).toEqual([
      { generation: 1, reply: "550 5.7.1 rules v1" },
      { generation: 2, reply: "550 5.7.1 rules v2" },
      { generation: 2, reply: "550 5.7.1 rules v2" },
    ]);
  });

  it("a connection keeps its rules when the reloaded ones need a stage it did not negotiate; a new connection takes them", async () => {
    const client = await open();
    await mail(client);
    await reloadTo("v2", HEADER_RULE);
    expect(await finish(client, "v1")).toBe("v1");
    // The next transaction would need the header stage, which this connection skips: it keeps v1.
    await mail(client);
    expect(await finish(client, "v1")).toBe("v1");
    expect(logLines.filter((l) => String(l.msg).includes("keeps generation 1"))).toHaveLength(1);
    expect(logLines.find((l) => String(l.msg).includes("keeps generation 1"))).toMatchObject({
      generation: 1,
      current: 2,
    });

    const fresh = await open();
    expect(fresh.sends("header") && fresh.expectsReply("header")).toBe(true);
    await mail(fresh);
    expect(await fresh.rcpt("<a@example.org>")).toEqual(refusedBy("v2"));
    expect(await fresh.rcpt("<b@example.org>")).toEqual({ type: "continue" });
    await fresh.data();
    expect(await fresh.header("X-Never", "1")).toEqual({
      type: "replycode",
      text: "554 5.7.1 header rule",
    });
    fresh.quit();

    // A reload the old connection can follow again (no header rule) is taken at its next MAIL.
    await reloadTo("v3");
    await mail(client);
    expect(await finish(client, "v3")).toBe("v3");
    client.quit();
  });
});

describe("rules handler: accept at rcpt", () => {
  /** postmaster@ is exempt at RCPT; every spool here is over its 1KB quota. */
  const exemptRules = (spools: string) => `
sources:
  spool:
    type: mbox
    path: "${spools}/{user}"
    quota: 1KB
rules:
  - name: postmaster
    on: rcpt
    if: rcpt.local == "postmaster"
    then: accept
  - name: mailbox-full
    on: rcpt
    if: quota(rcpt, spool) over
    then: tempfail 452 4.2.2 "Mailbox of {rcpt} is full"
  - on eom: add header "X-Checked" "yes"
`;

  it("accepts that recipient only: the MTA is told continue, a second over-quota recipient still gets its tempfail, the message goes on", async () => {
    const spools = join(dir, "spools");
    mkdirSync(spools);
    for (const user of ["postmaster", "full"]) writeFileSync(join(spools, user), "x".repeat(2000));
    writeFileSync(path, exemptRules(spools));
    expect(await runtime.reload("test")).toBe(true);

    const client = await open();
    await client.mail("<sender@example.org>"); // no rule at MAIL: observed only
    expect(await client.rcpt("<postmaster@example.org>")).toEqual({ type: "continue" });
    expect(await client.rcpt("<full@example.org>")).toEqual({
      type: "replycode",
      text: "452 4.2.2 Mailbox of full@example.org is full",
    });
    await client.data();
    await client.eoh();
    await client.body(Buffer.from("body\r\n"));
    const end = await client.eom();
    expect(end.reply).toEqual({ type: "continue" });
    expect(end.modifications).toContainEqual({ type: "addHeader", name: "X-Checked", value: "yes" });
    client.quit();

    // The decision log shows the recipient accepted by its rule.
    const logged = logLines
      .filter((l) => l.msg === "decision")
      .map((l) => ({ stage: l.stage, rcpt: l.rcpt, decision: l.decision, rule: l.rule }));
    expect(logged).toEqual([
      { stage: "rcpt", rcpt: "postmaster@example.org", decision: "accept", rule: "postmaster" },
      { stage: "rcpt", rcpt: "full@example.org", decision: "tempfail", rule: "mailbox-full" },
    ]);
  });
});

describe("rules handler: size at eom", () => {
  /** The sender's spool holds 900 of its 1000 bytes: a message of 100 bytes fits, 101 does not. */
  const sizeRules = (spools: string) => `
sources:
  spool:
    type: mbox
    path: "${spools}/{user}"
    quota: 1KB
rules:
  - on eom: add header "X-Size" "{size}"
  - on eom: if quota(from, spool) over then tempfail 452 4.2.2 "{from} is full ({size} bytes)"
`;

  /** One message: "Subject: hi" (13 bytes with CRLF), the blank line (2), a body of `body` bytes. */
  async function send(client: MilterClient, body: number) {
    await client.mail("<sender@example.org>");
    await client.rcpt("<b@example.org>");
    await client.data();
    await client.header("Subject", "hi"); // observed: no reply
    await client.eoh();
    await client.body(Buffer.from(`${"x".repeat(body - 2)}\r\n`));
    return client.eom();
  }

  it("is the whole message, exactly, and quota() over at eom counts the same bytes", async () => {
    const spools = join(dir, "spools");
    mkdirSync(spools);
    writeFileSync(join(spools, "sender"), "x".repeat(900));
    writeFileSync(path, sizeRules(spools));
    expect(await runtime.reload("test")).toBe(true);

    const client = await open();
    expect(client.sends("header") && client.sends("body")).toBe(true);
    const fits = await send(client, 85);
    expect(fits.reply).toEqual({ type: "continue" });
    expect(fits.modifications).toContainEqual({ type: "addHeader", name: "X-Size", value: "100" });
    const over = await send(client, 86);
    expect(over.reply).toEqual({
      type: "replycode",
      text: "452 4.2.2 sender@example.org is full (101 bytes)",
    });
    client.quit();
  });
});

describe("rules handler: negotiates away the stages no rule needs", () => {
  const useRules = async (rules: string) => {
    writeFileSync(path, `rules:\n${rules}\n`);
    expect(await runtime.reload("test")).toBe(true);
  };
  const logged = () =>
    logLines
      .filter((l) => l.msg === "decision")
      .map((l) => ({ stage: l.stage, client: l.client, from: l.from, rcpt: l.rcpt, reply: l.reply }));

  it("a rcpt-only ruleset: no CONNECT, HELO, MAIL, DATA or content; the logs' facts come as RCPT macros", async () => {
    await useRules('  - on rcpt: if rcpt == "a@example.org" then reject 550 5.7.1 "no"');
    const client = await server.connect();
    const reply = await client.negotiate();
    const skipped =
      ProtocolFlag.NoConnect |
      ProtocolFlag.NoHelo |
      ProtocolFlag.NoMail |
      ProtocolFlag.NoData |
      ProtocolFlag.NoHeaders |
      ProtocolFlag.NoEndOfHeaders |
      ProtocolFlag.NoBody |
      ProtocolFlag.NoUnknown;
    expect(reply).toEqual({
      type: "optneg",
      version: 6,
      actions: ActionFlag.AddHeaders | ActionFlag.Quarantine | ActionFlag.SetMacroList,
      protocol: skipped,
      macroLists: new Map([
        [MACRO_STAGE_NUMBER.eom, "i"],
        [MACRO_STAGE_NUMBER.rcpt, "{mail_addr} i {client_addr}"],
      ]),
    });
    // The client sends neither CONNECT nor MAIL (skipped), only the macros asked at RCPT.
    expect(await client.connectInfo(CLIENT)).toBeUndefined();
    for (const sender of ["<sender@example.org>", "<other@example.org>"]) {
      expect(await client.mail(sender)).toBeUndefined();
      expect(await client.rcpt("<a@example.org>")).toEqual({ type: "replycode", text: "550 5.7.1 no" });
      expect(await client.rcpt("<b@example.org>")).toEqual({ type: "continue" });
      expect(await client.data()).toBeUndefined();
      expect(await client.eom()).toEqual({ reply: { type: "continue" }, modifications: [] });
      client.abort();
    }
    client.quit();
    expect(logged()).toEqual([
      {
        stage: "rcpt",
        client: "192.0.2.7",
        from: "sender@example.org",
        rcpt: "a@example.org",
        reply: "550 5.7.1 no",
      },
      {
        stage: "rcpt",
        client: "192.0.2.7",
        from: "other@example.org",
        rcpt: "a@example.org",
        reply: "550 5.7.1 no",
      },
    ]);
  });

  it("a ruleset deciding at HELO keeps HELO (and asks for the client's address with it)", async () => {
    await useRules('  - on helo: if helo == "bad.example" then reject 550 5.7.1 "bad helo"');
    const client = await server.connect();
    const reply = await client.negotiate();
    expect(reply.protocol & ProtocolFlag.NoHelo).toBe(0);
    expect(reply.protocol & (ProtocolFlag.NoConnect | ProtocolFlag.NoMail)).toBe(
      ProtocolFlag.NoConnect | ProtocolFlag.NoMail,
    );
    expect(reply.macroLists.get(MACRO_STAGE_NUMBER.helo)).toBe("{client_addr}");
    await client.connectInfo(CLIENT);
    expect(await client.helo("bad.example")).toEqual({ type: "replycode", text: "550 5.7.1 bad helo" });
    client.quit();
    expect(logged()).toEqual([
      { stage: "helo", client: "192.0.2.7", from: undefined, rcpt: undefined, reply: "550 5.7.1 bad helo" },
    ]);
  });
});
