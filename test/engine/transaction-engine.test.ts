/**
 * The transaction engine driven by plain data, as `serve`, `dry-run` (and later `test` and
 * `replay`) drive it: what it fills in the transaction, which recipients it keeps, which effects
 * the message gets, and the event deadline.
 */
import { describe, expect, it } from "vitest";
import {
  acceptsRecipientOnly,
  type StageRun,
  TransactionEngine,
} from "../../src/engine/transaction-engine.js";
import type { Lookups } from "../../src/runtime/lookups.js";
import type { Decision } from "../../src/runtime/model.js";
import { FakeLookups, rules, rulesetOf, SOURCES } from "../runtime/helpers.js";

const CLIENT = { ip: "192.0.2.10", name: "mx.example.net", port: 25000 };

function engineFor(yaml: string, lookups: Lookups = new FakeLookups()): TransactionEngine {
  return new TransactionEngine({ ruleset: rulesetOf(yaml), lookups });
}

describe("the transaction engine", () => {
  it("fills the transaction from plain input, event by event", async () => {
    const engine = engineFor(rules('on rcpt: if rcpt.local == "nobody" then reject 550 5.1.1 "no"'));
    const macros: Record<string, string> = { "{auth_authen}": "alice" };
    await engine.connect(CLIENT, (name) => macros[name]);
    await engine.helo("mx.example.net");
    await engine.mail({ sender: "<Sender@Example.NET>", esmtpArgs: ["SIZE=1234", "BODY=8BITMIME"] });
    expect((await engine.rcpt("<nobody@example.org>")).outcome.decision?.action).toBe("reject");
    await engine.rcpt("<a@example.org>");
    await engine.data();
    await engine.header("Subject", "first");
    await engine.header("subject", "second");
    await engine.eoh();
    await engine.body(100);
    await engine.body(23);
    const tx = engine.transaction;
    expect(tx.client).toEqual(CLIENT);
    expect(tx.helo).toBe("mx.example.net");
    expect(tx.from).toBe("Sender@Example.NET");
    expect(tx.declaredSize).toBe(1234);
    expect(tx.authUser).toBe("alice");
    // A refused recipient is not one of the message's.
    expect(tx.rcpts).toEqual(["a@example.org"]);
    expect(tx.header).toEqual({ name: "subject", value: "second" });
    expect(tx.headers.get("subject")).toBe("first");
    expect(tx.bodyBytes).toBe(123);

    // The next MAIL starts a new message: the envelope and content are forgotten, the client is not.
    await engine.mail({ sender: "", authUser: "" });
    expect(engine.transaction).toMatchObject({
      from: "",
      rcpts: [],
      bodyBytes: 0,
      authUser: "",
      helo: "mx.example.net",
    });
    expect(engine.transaction.headers.size).toBe(0);
  });

  it("headers and a quarantine decided at connect go with every message of the connection; a message's own do not", async () => {
    const engine = engineFor(
      rules(
        'on connect: add header "X-Client" "{client.ip}"',
        'on mail: add header "X-From" "{from}"',
        'on rcpt: if rcpt.local == "suspect" then quarantine "looked at"',
      ),
    );
    await engine.connect(CLIENT);
    await engine.mail({ sender: "a@example.net" });
    await engine.rcpt("suspect@example.org");
    await engine.eom();
    expect(engine.addedHeaders.kept.map((h) => `${h.name}: ${h.value}`)).toEqual([
      "X-Client: 192.0.2.10",
      "X-From: a@example.net",
    ]);
    expect(engine.quarantine).toBe("looked at");

    await engine.mail({ sender: "b@example.net" });
    await engine.rcpt("b@example.org");
    await engine.eom();
    expect(engine.addedHeaders.kept.map((h) => `${h.name}: ${h.value}`)).toEqual([
      "X-Client: 192.0.2.10",
      "X-From: b@example.net",
    ]);
    expect(engine.quarantine).toBeUndefined();
  });

  it("an event past the deadline ends with the deadline decision; the late outcome changes nothing", async () => {
    // A quota source that never answers.
    const lookups = new FakeLookups();
    lookups.quota = () => new Promise(() => {});
    const yaml = `${SOURCES}${rules('on rcpt: if quota(rcpt, mailboxes) over then reject 552 5.2.2 "full"')}`;
    const tempfail: Decision = { action: "tempfail", code: 451, text: "later", rule: "", shadow: false };
    let onError: Decision | undefined = tempfail;
    const engine = new TransactionEngine({
      ruleset: rulesetOf(yaml),
      lookups,
      eventTimeoutMs: 30,
      deadlineDecision: (stage) => (stage === "rcpt" ? onError : undefined),
    });
    await engine.connect(CLIENT);
    await engine.mail({ sender: "a@example.net" });
    const run: StageRun = await engine.rcpt("a@example.org");
    expect(run.lateAfterMs).toBe(30);
    expect(run.outcome.decision).toBe(tempfail);
    expect(engine.transaction.rcpts).toEqual([]);
    // on_error: continue — the recipient goes on.
    onError = undefined;
    const next = await engine.rcpt("b@example.org");
    expect(next.lateAfterMs).toBe(30);
    expect(next.outcome.decision).toBeUndefined();
    expect(engine.transaction.rcpts).toEqual(["b@example.org"]);
  });

  it("lists every rule evaluated when asked (dry-run), only those that did something otherwise", async () => {
    const yaml = rules('on mail: if from == "x@example.net" then reject', 'on mail: log "seen"');
    const quiet = engineFor(yaml);
    const everyRule = new TransactionEngine(
      { ruleset: rulesetOf(yaml), lookups: new FakeLookups() },
      { everyRule: true },
    );
    for (const engine of [quiet, everyRule]) await engine.connect(CLIENT);
    expect((await quiet.mail({ sender: "a@example.net" })).outcome.rules.map((r) => r.rule)).toEqual([
      "rule-2",
    ]);
    expect((await everyRule.mail({ sender: "a@example.net" })).outcome.rules.map((r) => r.rule)).toEqual([
      "rule-1",
      "rule-2",
    ]);
  });

  it("accept at rcpt decides that recipient only: it joins rcpts, its later rules are skipped, the next recipient runs them", async () => {
    const engine = engineFor(
      rules(
        'on rcpt: if rcpt.local == "postmaster" then accept',
        'on rcpt: reject 550 5.7.1 "no"',
        'on data: log "{rcpts}"',
      ),
    );
    await engine.connect(CLIENT);
    await engine.mail({ sender: "a@example.net" });
    const accepted = await engine.rcpt("<postmaster@example.org>");
    expect(accepted.outcome.decision).toMatchObject({ action: "accept", rule: "rule-1" });
    expect(accepted.outcome.rules.map((r) => r.rule)).toEqual(["rule-1"]);
    expect(acceptsRecipientOnly("rcpt", accepted.outcome.decision)).toBe(true);
    expect((await engine.rcpt("<b@example.org>")).outcome.decision).toMatchObject({ action: "reject" });
    expect(engine.transaction.rcpts).toEqual(["postmaster@example.org"]);
    expect((await engine.data()).outcome.effects).toEqual([
      { kind: "log", text: "postmaster@example.org", rule: "rule-3" },
    ]);
    // Elsewhere accept keeps its meaning: the connection (connect, helo) or the message.
    for (const stage of ["connect", "helo", "mail", "data", "eom"] as const)
      expect(acceptsRecipientOnly(stage, accepted.outcome.decision)).toBe(false);
  });

  it("client.net: the client's /24 or /64 from connect, in conditions and texts; none for a unix-socket client", async () => {
    const engine = engineFor(
      rules(
        'on connect: if client.net == "192.0.2.0/24" then log "v4 {client.net}"',
        'on connect: if client.net in ["2001:db8:1:2::/64"] then log "v6 {client.net}"',
        'on connect: if client.net == "" then log "no network"',
      ),
    );
    const logs = async (ip: string) =>
      (await engine.connect({ ip, name: "x", port: 0 })).outcome.effects.map((e) =>
        e.kind === "log" ? e.text : "",
      );
    expect(await logs("192.0.2.10")).toEqual(["v4 192.0.2.0/24"]);
    expect(await logs("::ffff:192.0.2.200")).toEqual(["v4 192.0.2.0/24"]);
    expect(await logs("2001:DB8:1:2:0:0:0:99")).toEqual(["v6 2001:db8:1:2::/64"]);
    // A unix-socket client (milter family 'L' or 'U'): its address is a path or nothing.
    expect(await logs("")).toEqual(["no network"]);
    expect(await logs("/var/run/smtpd.sock")).toEqual(["no network"]);
  });

  it("size at eom is the whole message: each header line as `Name: value` and CRLF, the blank line, the body", async () => {
    const engine = engineFor(
      rules('on mail, eom: log "{size}"', 'on eom: if size > 70 then reject 552 5.3.4 "too big: {size}"'),
    );
    const logged = (run: StageRun) => run.outcome.effects.map((e) => (e.kind === "log" ? e.text : ""));
    await engine.connect(CLIENT);
    expect(logged(await engine.mail({ sender: "a@example.net", esmtpArgs: ["SIZE=5000"] }))).toEqual([
      "5000",
    ]);
    await engine.rcpt("b@example.org");
    await engine.data();
    await engine.header("Subject", "hi"); // "Subject: hi\r\n": 13
    await engine.header("X-Folded", "one\n\ttwo"); // "X-Folded: one\r\n\ttwo\r\n": 21
    await engine.header("X-Utf8", "é"); // "X-Utf8: é\r\n": 12 (é is two bytes)
    await engine.eoh();
    expect(engine.transaction.headerBytes).toBe(13 + 21 + 12);
    await engine.body(20);
    const eom = await engine.eom();
    expect(logged(eom)).toEqual([String(13 + 21 + 12 + 2 + 20)]);
    expect(eom.outcome.decision).toBeUndefined();
    // The next message starts from nothing.
    await engine.mail({ sender: "a@example.net" });
    await engine.rcpt("b@example.org");
    await engine.data();
    await engine.header("Subject", "x".repeat(60)); // 71
    await engine.eoh();
    expect((await engine.eom()).outcome.decision).toMatchObject({ action: "reject", text: "too big: 73" });
  });
});
