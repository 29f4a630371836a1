import type { Server, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  ActionFlag,
  Command,
  type MilterHandler,
  ProtocolFlag,
  reply,
  type SessionContext,
} from "../../src/milter/index.js";
import { CLIENT, recordingLogger, startServer, type TestServer, waitFor } from "./helpers.js";

let running: TestServer | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function serve(createHandler: () => MilterHandler, options = {}) {
  running = await startServer(createHandler, options);
  return running;
}

describe("negotiation", () => {
  it("asks the MTA to skip every stage without a method, and keeps the ones with a method", async () => {
    const { connect } = await serve(() => ({ rcpt: () => undefined }));
    const client = await connect();
    const agreed = await client.negotiate();
    const skipped =
      ProtocolFlag.NoConnect |
      ProtocolFlag.NoHelo |
      ProtocolFlag.NoMail |
      ProtocolFlag.NoBody |
      ProtocolFlag.NoHeaders |
      ProtocolFlag.NoEndOfHeaders |
      ProtocolFlag.NoUnknown |
      ProtocolFlag.NoData;
    expect(agreed.protocol).toBe(skipped);
    expect(agreed.version).toBe(6);
    expect(agreed.actions).toBe(0);
    client.destroy();
  });

  it("connections sharing one wishes object each get what their own MTA offered", async () => {
    const wishes = {
      stages: { rcpt: "decide", header: "observe" },
      actions: ActionFlag.AddHeaders | ActionFlag.ChangeBody,
    } as const;
    const { connect } = await serve(() => ({ wishes, rcpt: () => undefined, header: () => undefined }));
    const offers = [
      { version: 6, actions: ActionFlag.AddHeaders, protocol: ProtocolFlag.NoConnect | ProtocolFlag.NoHelo },
      { version: 2, actions: ActionFlag.AddHeaders | ActionFlag.ChangeBody, protocol: 0x7f },
      { version: 6, actions: ActionFlag.AddHeaders, protocol: ProtocolFlag.NoConnect | ProtocolFlag.NoHelo },
    ];
    const agreed = [];
    for (const offer of offers) {
      const client = await connect();
      agreed.push(await client.negotiate(offer));
      client.destroy();
    }
    expect(agreed.map((a) => [a.version, a.actions, a.protocol])).toEqual([
      [6, ActionFlag.AddHeaders, ProtocolFlag.NoConnect | ProtocolFlag.NoHelo],
      [
        2,
        ActionFlag.AddHeaders | ActionFlag.ChangeBody,
        0x7f & ~(ProtocolFlag.NoRcpt | ProtocolFlag.NoHeaders),
      ],
      [6, ActionFlag.AddHeaders, ProtocolFlag.NoConnect | ProtocolFlag.NoHelo],
    ]);
  });

  it("never requests a flag the MTA did not offer", async () => {
    const { connect } = await serve(() => ({
      wishes: {
        stages: { rcpt: "decide", header: "observe" },
        actions: ActionFlag.AddHeaders | ActionFlag.ChangeBody,
      },
      rcpt: () => undefined,
      header: () => undefined,
    }));
    const client = await connect();
    const offeredProtocol = ProtocolFlag.NoConnect | ProtocolFlag.NoHelo; // an old MTA
    const agreed = await client.negotiate({
      version: 6,
      actions: ActionFlag.AddHeaders,
      protocol: offeredProtocol,
    });
    expect(agreed.protocol).toBe(offeredProtocol);
    expect(agreed.actions).toBe(ActionFlag.AddHeaders);
    client.destroy();
  });

  it("answers an older MTA with its own version, and refuses version 1", async () => {
    const { connect, entries } = await serve(() => ({ rcpt: () => undefined }));
    const old = await connect();
    expect((await old.negotiate({ version: 2 })).version).toBe(2);
    old.destroy();
    const ancient = await connect();
    await expect(ancient.negotiate({ version: 1 })).rejects.toThrow(/closed/);
    expect(entries.some((e) => e.message.includes("version 2 or later is needed"))).toBe(true);
  });

  it("uses the no-reply flags for stages the handler only observes, and calls it anyway", async () => {
    const seen: string[] = [];
    const { connect } = await serve(() => ({
      wishes: { stages: { helo: "observe", mail: "observe", rcpt: "decide" } },
      helo: (name: string) => {
        seen.push(name);
      },
      mail: (sender: string) => {
        seen.push(sender);
      },
      rcpt: () => reply.reject(550, "5.1.1", "no such user"),
    }));
    const client = await connect();
    const agreed = await client.negotiate();
    expect(agreed.protocol & ProtocolFlag.NoReplyMail).toBe(ProtocolFlag.NoReplyMail);
    expect(agreed.protocol & ProtocolFlag.NoReplyHelo).toBe(ProtocolFlag.NoReplyHelo);
    expect(agreed.protocol & ProtocolFlag.NoReplyRcpt).toBe(0);
    expect(await client.helo("client.example")).toBeUndefined();
    expect(await client.mail("<a@example.org>")).toBeUndefined();
    // The next answered command gets its own reply, not a stray one for the observed stages.
    expect(await client.rcpt("<u@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.1.1 no such user",
    });
    expect(seen).toEqual(["client.example", "<a@example.org>"]);
    client.destroy();
  });

  it("requests per-stage macro lists only when the MTA offers SETSYMLIST", async () => {
    const handler = () => ({
      wishes: { macros: { mail: ["{auth_authen}", "i"], rcpt: ["{rcpt_addr}"] } },
      mail: () => undefined,
    });
    const { connect } = await serve(handler);
    const client = await connect();
    const agreed = await client.negotiate();
    expect(agreed.actions & ActionFlag.SetMacroList).toBe(ActionFlag.SetMacroList);
    expect(agreed.macroLists).toEqual(
      new Map([
        [2, "{auth_authen} i"],
        [3, "{rcpt_addr}"],
      ]),
    );
    client.destroy();
    const without = await connect();
    const plain = await without.negotiate({ actions: ActionFlag.AddHeaders });
    expect(plain.macroLists.size).toBe(0);
    expect(plain.actions & ActionFlag.SetMacroList).toBe(0);
    without.destroy();
  });
});

/** A handler that records what it sees and rejects some recipients. */
function recorder() {
  const events: string[] = [];
  const handler: MilterHandler = {
    wishes: {
      stages: {
        connect: "decide",
        helo: "decide",
        mail: "decide",
        rcpt: "decide",
        data: "decide",
        header: "decide",
        eoh: "decide",
        body: "decide",
        eom: "decide",
        unknown: "decide",
      },
      actions: ActionFlag.AddHeaders | ActionFlag.Quarantine,
    },
    connect: (info) => {
      events.push(`connect ${info.address}:${info.port}`);
    },
    helo: (name) => {
      events.push(`helo ${name}`);
    },
    mail: (sender, _args, session: SessionContext) => {
      events.push(
        `mail ${sender} i=${session.macro("i") ?? "-"} auth=${session.macro("{auth_authen}") ?? "-"}`,
      );
    },
    rcpt: (recipient) => {
      events.push(`rcpt ${recipient}`);
      if (recipient.includes("full")) return reply.tempfail(452, "4.2.2", `Quota exceeded for ${recipient}`);
      return undefined;
    },
    data: () => {
      events.push("data");
    },
    header: (name, value) => {
      events.push(`header ${name}=${value}`);
    },
    eoh: () => {
      events.push("eoh");
    },
    body: (chunk) => {
      events.push(`body ${chunk.length}`);
    },
    eom: (session) => {
      events.push(`eom macros=${JSON.stringify(session.macrosOf("eom"))}`);
      return {
        reply: reply.continue(),
        modifications: [
          { type: "addHeader", name: "X-Filterctl", value: "checked" },
          { type: "quarantine", reason: "held\nfor review" },
          // Not negotiated: must be dropped, never sent.
          { type: "deleteRecipient", address: "<x@y>" },
        ],
      };
    },
    unknown: (line) => {
      events.push(`unknown ${line}`);
      return reply.reject(500, "5.5.1", "unknown command");
    },
    abort: () => {
      events.push("abort");
    },
    close: () => {
      events.push("close");
    },
  };
  return { events, handler };
}

describe("a session", () => {
  it("builds no line for a level the logger does not write (the debug line at negotiation)", async () => {
    const quiet = recordingLogger();
    const first = await serve(() => ({ rcpt: () => undefined }), {
      logger: { ...quiet.logger, isLevelEnabled: (level: string) => level !== "debug" },
    });
    const client = await first.connect();
    await client.negotiate();
    client.destroy();
    await first.stop();
    const plain = await serve(() => ({ rcpt: () => undefined }));
    const other = await plain.connect();
    await other.negotiate();
    other.destroy();
    expect(plain.entries.filter((e) => e.level === "debug").map((e) => e.message)).toContain("negotiated");
    expect(quiet.entries.filter((e) => e.level === "debug")).toEqual([]);
  });

  /** A negotiated connection to a server with a RCPT handler, and the server side's socket. */
  async function negotiatedWithSocket() {
    const started = await serve(() => ({ rcpt: () => undefined }));
    const sockets: Socket[] = [];
    // The underlying net.Server: its connection event gives the test the server side's socket.
    (started.server as unknown as { server: Server }).server.on("connection", (s) => sockets.push(s));
    const client = await started.connect();
    await client.negotiate();
    await waitFor(() => sockets.length === 1);
    return { started, client, socket: sockets[0] as Socket };
  }

  it("leaves no listener on a closed connection's socket (a closed session is not kept reachable)", async () => {
    const { client, socket } = await negotiatedWithSocket();
    expect(socket.listenerCount("data")).toBe(1);
    client.quit();
    await waitFor(() => socket.destroyed && socket.listenerCount("close") === 0);
    expect(["data", "end", "error", "timeout"].map((e) => socket.listenerCount(e))).toEqual([0, 0, 0, 0]);
  });

  it("schedules no read-ahead tick per chunk: the stream's read-more task is marked as pending", async () => {
    const { started, client, socket } = await negotiatedWithSocket();
    const state = (socket as unknown as { _readableState: { readingMore: boolean } })._readableState;
    expect(state.readingMore).toBe(true);
    // Commands keep being read with it: the flag only stops the no-op task.
    expect(await client.rcpt("<a@example.org>")).toEqual({ type: "continue" });
    expect(await client.rcpt("<b@example.org>")).toEqual({ type: "continue" });
    client.destroy();
    await started.stop();
  });

  it("runs two transactions on one connection, refusing one recipient only", async () => {
    const { events, handler } = recorder();
    const { connect, entries } = await serve(() => handler);
    const client = await connect();
    await client.negotiate();
    client.macro(Command.Connect, { j: "mx.example" });
    expect(await client.connectInfo(CLIENT)).toEqual({ type: "continue" });
    expect(await client.helo("client.example")).toEqual({ type: "continue" });
    client.macro(Command.Mail, { i: "QID1", "{auth_authen}": "alice" });
    expect(await client.mail("<alice@example.org>", ["SIZE=100"])).toEqual({ type: "continue" });
    expect(await client.rcpt("<full@example.org>")).toEqual({
      type: "replycode",
      text: "452 4.2.2 Quota exceeded for <full@example.org>",
    });
    expect(await client.rcpt("<ok@example.org>")).toEqual({ type: "continue" });
    expect(await client.data()).toEqual({ type: "continue" });
    expect(await client.header("Subject", "hi")).toEqual({ type: "continue" });
    expect(await client.eoh()).toEqual({ type: "continue" });
    expect(await client.body(Buffer.from("hello\r\n"))).toEqual({ type: "continue" });
    client.macro(Command.EndOfMessage, { i: "QID1" });
    const end = await client.eom();
    expect(end.reply).toEqual({ type: "continue" });
    expect(end.modifications).toEqual([
      { type: "addHeader", name: "X-Filterctl", value: "checked" },
      { type: "quarantine", reason: "held for review" },
    ]);
    expect(entries.some((e) => e.level === "error" && e.message.includes("not negotiated"))).toBe(true);
    // Postfix aborts after every message; then a second transaction, abandoned by RSET.
    client.abort();
    client.macro(Command.Mail, {});
    expect(await client.mail("<bob@example.org>")).toEqual({ type: "continue" });
    client.abort();
    // Sendmail starts a third one with MAIL directly after MAIL.
    expect(await client.mail("<carol@example.org>")).toEqual({ type: "continue" });
    expect(await client.mail("<dave@example.org>")).toEqual({ type: "continue" });
    expect(await client.unknown("XFOO")).toEqual({ type: "replycode", text: "500 5.5.1 unknown command" });
    client.quit();
    await waitFor(() => events.includes("close"));
    expect(events).toEqual([
      "connect 192.0.2.7:4242",
      "helo client.example",
      "mail <alice@example.org> i=QID1 auth=alice",
      "rcpt <full@example.org>",
      "rcpt <ok@example.org>",
      "data",
      "header Subject=hi",
      "eoh",
      "body 7",
      'eom macros={"i":"QID1"}',
      // The abort after a finished message is not a message abort.
      "mail <bob@example.org> i=- auth=-",
      "abort",
      "mail <carol@example.org> i=- auth=-",
      "abort",
      "mail <dave@example.org> i=- auth=-",
      "unknown XFOO",
      "close",
    ]);
  });

  it("starts over after QUIT_NC on the same socket without a new negotiation", async () => {
    const { events, handler } = recorder();
    const { connect } = await serve(() => handler);
    const client = await connect();
    await client.negotiate();
    await client.connectInfo(CLIENT);
    await client.mail("<a@example.org>");
    client.quitNewConnection();
    expect(await client.connectInfo({ ...CLIENT, address: "192.0.2.8" })).toEqual({ type: "continue" });
    expect(await client.mail("<b@example.org>")).toEqual({ type: "continue" });
    client.destroy();
    await waitFor(() => events.filter((e) => e === "close").length === 2);
    expect(events).toEqual([
      "connect 192.0.2.7:4242",
      "mail <a@example.org> i=- auth=-",
      "abort",
      "close",
      "connect 192.0.2.8:4242",
      "mail <b@example.org> i=- auth=-",
      "close",
    ]);
  });

  it("answers continue for a stage the MTA sends although we asked it to skip it", async () => {
    const { connect } = await serve(() => ({ rcpt: () => reply.reject(550, "5.1.1", "no") }));
    const client = await connect();
    await client.negotiate({ protocol: 0 }); // cannot skip anything
    expect(await client.connectInfo(CLIENT)).toEqual({ type: "continue" });
    expect(await client.helo("x")).toEqual({ type: "continue" });
    expect(await client.mail("<a@b>")).toEqual({ type: "continue" });
    expect(await client.rcpt("<c@d>")).toEqual({ type: "replycode", text: "550 5.1.1 no" });
    client.destroy();
  });

  it("lets a handler skip the rest of the body", async () => {
    let chunks = 0;
    const { connect } = await serve(() => ({
      body: () => {
        chunks++;
        return reply.skip();
      },
      eom: () => reply.reject(550, "5.7.1", "spam"),
    }));
    const client = await connect();
    const agreed = await client.negotiate();
    expect(agreed.protocol & ProtocolFlag.Skip).toBe(ProtocolFlag.Skip);
    await client.mail("<a@b>");
    expect(await client.body(Buffer.alloc(200_000, 0x61))).toEqual({ type: "skip" });
    expect(chunks).toBe(1);
    expect((await client.eom()).reply).toEqual({ type: "replycode", text: "550 5.7.1 spam" });
    client.destroy();
  });

  it("turns a skip at a stage other than body into continue", async () => {
    const { connect } = await serve(() => ({ rcpt: () => reply.skip() }));
    const client = await connect();
    await client.negotiate();
    expect(await client.rcpt("<a@b>")).toEqual({ type: "continue" });
    client.destroy();
  });
});

describe("handler failures", () => {
  it("answers the fallback when a handler throws, and keeps the connection", async () => {
    const { connect, entries } = await serve(() => ({
      rcpt: (recipient: string) => {
        if (recipient.includes("boom")) throw new Error("lookup exploded");
        return undefined;
      },
    }));
    const client = await connect();
    await client.negotiate();
    expect(await client.rcpt("<boom@x>")).toEqual({ type: "tempfail" });
    expect(await client.rcpt("<fine@x>")).toEqual({ type: "continue" });
    expect(entries.find((e) => e.level === "error")?.message).toContain("handler failed");
    client.destroy();
  });

  it("answers the fallback when a promise rejects", async () => {
    const { connect } = await serve(() => ({ mail: async () => Promise.reject(new Error("LDAP down")) }), {
      fallback: reply.tempfail(451, "4.3.0", "Temporary lookup failure"),
    });
    const client = await connect();
    await client.negotiate();
    expect(await client.mail("<a@b>")).toEqual({
      type: "replycode",
      text: "451 4.3.0 Temporary lookup failure",
    });
    client.destroy();
  });

  it("answers the fallback when a handler hangs past the deadline, and ignores its late answer", async () => {
    let release: (() => void) | undefined;
    const { connect, entries } = await serve(
      () => ({
        rcpt: (recipient: string) =>
          recipient.includes("slow")
            ? new Promise((resolve) => {
                release = () => resolve(reply.reject(550, "5.0.0", "late"));
              })
            : undefined,
      }),
      { handlerTimeoutMs: 50 },
    );
    const client = await connect();
    await client.negotiate();
    expect(await client.rcpt("<slow@x>")).toEqual({ type: "tempfail" });
    release?.();
    expect(await client.rcpt("<next@x>")).toEqual({ type: "continue" });
    expect(entries.some((e) => e.message.includes("did not answer in time"))).toBe(true);
    client.destroy();
  });

  it("a handler's own deadline and fallback, read at each event, win over the server's", async () => {
    // The rules handler sets them from the rules the connection uses: a reload changes them.
    const own = { handlerTimeoutMs: 50, fallback: reply.tempfail(451, "4.3.0", "first") };
    const { connect } = await serve(
      () => ({
        get handlerTimeoutMs() {
          return own.handlerTimeoutMs;
        },
        get fallback() {
          return own.fallback;
        },
        rcpt: () => new Promise<undefined>(() => {}),
      }),
      { handlerTimeoutMs: 5_000 },
    );
    const client = await connect();
    await client.negotiate();
    let started = Date.now();
    expect(await client.rcpt("<a@x>")).toEqual({ type: "replycode", text: "451 4.3.0 first" });
    expect(Date.now() - started).toBeLessThan(2_000);
    own.handlerTimeoutMs = 80;
    own.fallback = reply.tempfail(451, "4.3.0", "second");
    started = Date.now();
    expect(await client.rcpt("<b@x>")).toEqual({ type: "replycode", text: "451 4.3.0 second" });
    expect(Date.now() - started).toBeLessThan(2_000);
    client.destroy();
  });

  it("never sends an invalid reply: a 250 'reject' becomes the fallback", async () => {
    const { connect, entries } = await serve(() => ({
      rcpt: () => ({ action: "reject", code: 250, text: "nope" }) as const,
    }));
    const client = await connect();
    await client.negotiate();
    expect(await client.rcpt("<a@b>")).toEqual({ type: "tempfail" });
    expect(entries.some((e) => e.message.includes("invalid reply"))).toBe(true);
    client.destroy();
  });

  it("keeps serving when close/abort hooks throw", async () => {
    const { connect } = await serve(() => ({
      mail: () => undefined,
      abort: () => {
        throw new Error("abort hook");
      },
      close: () => {
        throw new Error("close hook");
      },
    }));
    const first = await connect();
    await first.negotiate();
    await first.mail("<a@b>");
    first.abort();
    first.quit();
    await first.closed();
    const second = await connect();
    await second.negotiate();
    expect(await second.mail("<a@b>")).toEqual({ type: "continue" });
    second.destroy();
  });
});
