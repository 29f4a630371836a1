/**
 * The milter server against OpenDKIM's `miltertest` (Debian package `miltertest`): each Lua
 * script under test/miltertest/ drives the policy fixture and checks the replies it gets;
 * this file checks the exit code and what the fixture recorded on its side.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActionFlag, ProtocolFlag } from "../../src/milter/index.js";
import {
  DEFAULT_QUARANTINE_REASON,
  type EventRecord,
  type PolicyMilter,
  REQUESTED_ACTIONS,
  type SessionRecord,
  startPolicyMilter,
} from "../fixtures/policy-milter.js";
import { run } from "./processes.js";

const SCRIPTS = fileURLToPath(new URL("../miltertest/", import.meta.url));

let milter: PolicyMilter;

beforeAll(async () => {
  milter = await startPolicyMilter();
});

afterAll(async () => {
  await milter?.stop();
});

/** Runs one script and answers the sessions it opened, once they are all closed. */
async function runScript(name: string, expectedSessions: number): Promise<SessionRecord[]> {
  const before = milter.sessions.length;
  const result = await run("miltertest", ["-s", `${SCRIPTS}${name}`], {
    env: { ...process.env, FILTERCTL_MILTER_PORT: String(milter.port) },
    timeoutMs: 30_000,
  });
  const report = `miltertest ${name} exited ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
  expect(result.code, report).toBe(0);
  expect(result.stdout, report).toContain(`${name.replace(/\.lua$/, "")}: all checks passed`);
  await milter.waitFor(
    (sessions) =>
      sessions.length >= before + expectedSessions && sessions.slice(before).every((s) => s.closed),
  );
  const opened = milter.sessions.slice(before);
  expect(opened).toHaveLength(expectedSessions);
  return opened;
}

function eventsOf(session: SessionRecord, stage: EventRecord["stage"]): EventRecord[] {
  return session.events.filter((event) => event.stage === stage);
}

describe("miltertest against the policy milter", () => {
  it("negotiates only what was offered and what the filter uses", async () => {
    const [full, restricted] = (await runScript("negotiation.lua", 2)) as [SessionRecord, SessionRecord];
    expect(full.negotiated).toEqual({
      version: 6,
      actions: REQUESTED_ACTIONS | ActionFlag.SetMacroList,
      protocol: ProtocolFlag.Skip,
    });
    // Restricted offer: ADDHDRS only, no SKIP; nothing beyond the offer may be requested.
    expect(restricted.negotiated).toEqual({ version: 6, actions: ActionFlag.AddHeaders, protocol: 0 });
    // The handler did want to change the Subject and quarantine; the library held those back.
    const [message] = restricted.transactions;
    expect(message?.modifications.map((m) => m.type)).toEqual([
      "addHeader",
      "addHeader",
      "addHeader",
      "insertHeader",
      "changeHeader",
      "quarantine",
    ]);
  });

  it("passes the macros sent by the MTA to the handler, per stage, and forgets them per message", async () => {
    const [session] = (await runScript("macros.lua", 1)) as [SessionRecord];
    expect(session.connect).toEqual({
      hostname: "client.example",
      family: "inet",
      port: 12345,
      address: "192.0.2.10",
    });
    expect(session.helo).toBe("client.example");
    expect(eventsOf(session, "connect")[0]?.macros).toEqual({
      j: "mx.test.example",
      "{daemon_name}": "filterctl-e2e",
      "{client_addr}": "192.0.2.10",
    });
    const [mail1, mail2] = eventsOf(session, "mail");
    expect(mail1?.macros).toEqual({
      i: "QID0001",
      "{auth_authen}": "alice",
      "{auth_type}": "PLAIN",
      "{mail_addr}": "alice@example.org",
    });
    expect(mail2?.macros).toEqual({});
    expect(eventsOf(session, "rcpt")[0]?.macros).toEqual({
      i: "QID0001",
      "{rcpt_addr}": "bob@example.net",
      "{rcpt_mailer}": "smtp",
    });
    expect(eventsOf(session, "eom")[0]?.macros).toEqual({ i: "QID0001", "{msg_id}": "<macros@example.org>" });

    const [first, second] = session.transactions;
    expect(first).toMatchObject({
      sender: "<alice@example.org>",
      mailArgs: ["SIZE=1234", "BODY=8BITMIME"],
      authenticated: "alice",
      queueId: "QID0001",
      end: "eom",
    });
    expect(first?.recipients).toEqual([
      { address: "bob@example.net", args: ["NOTIFY=NEVER"], decision: "continue" },
    ]);
    // Nothing of the first message's MAIL/RCPT/EOM macros survives into the second one.
    expect(second?.sender).toBe("<carol@example.org>");
    expect(second?.authenticated).toBeUndefined();
    expect(second?.queueId).toBeUndefined();
    expect(second?.end).toBe("eom");
    // The connection's macros stay for the whole connection.
    expect(eventsOf(session, "eom")[1]?.macros).toEqual({});
  });

  it("refuses only the recipients the policy refuses, and a forged sender at MAIL", async () => {
    const [session] = (await runScript("recipients.lua", 1)) as [SessionRecord];
    const [message, forged, next] = session.transactions;
    expect(message?.recipients.map((r) => [r.address, r.decision])).toEqual([
      ["full-box@example.net", "tempfail"],
      ["good@example.net", "continue"],
      ["bad@example.net", "reject"],
      ["also-good@example.net", "continue"],
    ]);
    expect(message?.recipients[0]?.reply).toBe(
      "452 4.2.2 Quota exceeded for full-box@example.net, try again later",
    );
    expect(message?.recipients[2]?.reply).toBe("550 5.7.1 Recipient <bad@example.net> rejected");
    expect(message?.end).toBe("eom");
    expect(forged).toMatchObject({ sender: "<forged@example.org>", mailDecision: "reject", end: "abort" });
    expect(next?.recipients.map((r) => r.decision)).toEqual(["tempfail"]);
    expect(session.transactions).toHaveLength(3);
  });

  it("keeps the connection across aborted and completed transactions", async () => {
    const [session] = (await runScript("transactions.lua", 1)) as [SessionRecord];
    expect(session.transactions.map((t) => [t.sender, t.end])).toEqual([
      ["<first@example.org>", "abort"],
      ["<second@example.org>", "eom"],
      ["<third@example.org>", "eom"],
      ["<forged@example.org>", "abort"],
      ["<fourth@example.org>", "eom"],
    ]);
    expect(session.transactions.map((t) => t.recipients.map((r) => r.address))).toEqual([
      ["dropped@example.net"],
      ["kept@example.net"],
      ["other@example.net"],
      [],
      ["last@example.net"],
    ]);
    // MAIL macros reach the handler also when MAIL follows end of message or a refused MAIL directly.
    expect(session.transactions.map((t) => t.authenticated)).toEqual([
      undefined,
      undefined,
      "third-user",
      undefined,
      "fourth-user",
    ]);
    const flow = session.events
      .map((event) => event.stage)
      .filter((stage) => ["mail", "rcpt", "abort", "eom", "close"].includes(stage));
    expect(flow).toEqual([
      "mail",
      "rcpt",
      "abort",
      "mail",
      "rcpt",
      "eom",
      "mail",
      "rcpt",
      "eom",
      "mail",
      "abort",
      "mail",
      "rcpt",
      "eom",
      "close",
    ]);
  });

  it("sends end-of-message modifications the MTA can check", async () => {
    const [session] = (await runScript("eom.lua", 1)) as [SessionRecord];
    const [modified, plain] = session.transactions;
    expect(modified?.modifications).toEqual([
      { type: "addHeader", name: "X-Filterctl-Test", value: "passed" },
      { type: "addHeader", name: "X-Filterctl-Transaction", value: "1" },
      { type: "addHeader", name: "X-Filterctl-Recipients", value: "rcpt@example.net" },
      { type: "insertHeader", index: 0, name: "X-Filterctl-Top", value: "first" },
      {
        type: "changeHeader",
        index: 1,
        name: "Subject",
        value: "[filtered] [modify] [quarantine] please filter",
      },
      { type: "quarantine", reason: DEFAULT_QUARANTINE_REASON },
    ]);
    expect(modified?.headers).toEqual([
      ["From", "sender@example.org"],
      ["Subject", "[modify] [quarantine] please filter"],
    ]);
    expect(modified?.bodyBytes).toBe("first line\r\nsecond line\r\n".length);
    expect(plain?.modifications.map((m) => m.type)).toEqual(["addHeader", "addHeader", "addHeader"]);
  });
});
