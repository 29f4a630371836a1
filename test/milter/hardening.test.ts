/**
 * The hardening mechanisms of the server (SPEC.md "Hardening"), one at a time. The deadlines run
 * with their real defaults under fake timers, on a Session over a fake socket; the rest runs on a
 * real server over loopback with small limits.
 */
import { EventEmitter } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InputBudget } from "../../src/milter/budget.js";
import {
  Command,
  encodeCommand,
  FrameReader,
  type MilterCommand,
  type MilterHandler,
  MilterServer,
  packet,
  reply,
  type SessionContext,
} from "../../src/milter/index.js";
import { Session } from "../../src/milter/session.js";
import { CLIENT, type LogEntry, recordingLogger, startServer, type TestServer, waitFor } from "./helpers.js";

const command = (c: MilterCommand) => encodeCommand(c);
const NEGOTIATE = command({
  type: "optneg",
  version: 6,
  actions: 0x1ff,
  protocol: 0x1fffff,
  macroLists: new Map(),
});
const CONNECT = command({ type: "connect", ...CLIENT });
const MAIL = command({ type: "mail", sender: "<a@example.org>", args: [] });
const RCPT = command({ type: "rcpt", recipient: "<b@example.org>", args: [] });

/** What Session uses of a net.Socket, recorded. */
class FakeSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  paused = false;
  destroyed = false;
  writeAccepts = true;
  writableLength = 0;
  idleTimeoutMs = 0;
  setNoDelay(): this {
    return this;
  }
  setTimeout(ms: number): this {
    this.idleTimeoutMs = ms;
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  write(bytes: Buffer): boolean {
    this.written.push(bytes);
    return this.writeAccepts;
  }
  cork(): void {}
  uncork(): void {}
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

interface FakeSession {
  socket: FakeSocket;
  session: Session;
  entries: LogEntry[];
  budget: InputBudget;
}

/** A Session with the server's defaults, over a fake socket. */
function fakeSession(handler: MilterHandler = {}, budget = new InputBudget(64 * 1024 * 1024)): FakeSession {
  const socket = new FakeSocket();
  const { logger, entries } = recordingLogger();
  const session = new Session(
    1,
    () => "192.0.2.9:4711",
    // The fake implements every member Session touches; a real Socket is not needed to test it.
    socket as unknown as Socket,
    handler,
    {
      maxPacketBytes: 1024 * 1024,
      negotiationTimeoutMs: 10_000,
      packetTimeoutMs: 30_000,
      writeStallTimeoutMs: 60_000,
      idleTimeoutMs: 15 * 60_000,
      handlerTimeoutMs: 5_000,
      maxMacroBytes: 64 * 1024,
      fallback: { action: "tempfail" },
      logger,
      budget,
    },
    { negotiated: () => {}, closed: () => {} },
  );
  return { socket, session, entries, budget };
}

function warned(entries: LogEntry[], text: string): LogEntry | undefined {
  return entries.find((e) => e.level === "warn" && e.message.includes(text));
}

describe("deadlines (real defaults, fake timers)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("negotiation must be done 10 s after accept, however the bytes trickle in", () => {
    const { socket, entries } = fakeSession();
    // One byte of the negotiation every 2 s: each would restart a socket idle timeout.
    for (let at = 0; at < 4; at++) {
      socket.emit("data", NEGOTIATE.subarray(at, at + 1));
      vi.advanceTimersByTime(2000);
    }
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1999);
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(socket.destroyed).toBe(true);
    expect(warned(entries, "no negotiation from the MTA in time")?.fields).toMatchObject({
      peer: "192.0.2.9:4711",
      timeoutMs: 10_000,
    });
  });

  it("a negotiated connection is not closed by the negotiation deadline", () => {
    const { socket } = fakeSession();
    socket.emit("data", NEGOTIATE);
    vi.advanceTimersByTime(60_000);
    expect(socket.destroyed).toBe(false);
    expect(socket.idleTimeoutMs).toBe(15 * 60_000);
  });

  it("a packet must be complete 30 s after its first byte; more bytes do not extend it", () => {
    const { socket, entries } = fakeSession({ mail: () => undefined });
    socket.emit("data", NEGOTIATE);
    const body = command({ type: "body", chunk: Buffer.alloc(1000) });
    socket.emit("data", body.subarray(0, 10));
    for (let i = 0; i < 29; i++) {
      vi.advanceTimersByTime(1000);
      socket.emit("data", body.subarray(10 + i, 11 + i));
    }
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1000);
    expect(socket.destroyed).toBe(true);
    expect(warned(entries, "packet from the MTA was not complete in time")?.fields).toMatchObject({
      peer: "192.0.2.9:4711",
      timeoutMs: 30_000,
      pendingBytes: 39,
    });
  });

  it("the packet clock starts again with each packet", () => {
    const { socket } = fakeSession({ connect: () => undefined, mail: () => undefined });
    socket.emit("data", Buffer.concat([NEGOTIATE, CONNECT]));
    // Each MAIL completes 20 s after its first byte: slow, but within its own deadline.
    for (let i = 0; i < 5; i++) {
      socket.emit("data", MAIL.subarray(0, 5));
      vi.advanceTimersByTime(20_000);
      socket.emit("data", MAIL.subarray(5));
    }
    expect(socket.destroyed).toBe(false);
    expect(socket.written.length).toBe(1 + 1 + 5);
  });

  it("a busy handler does not count against the MTA's packet deadline", async () => {
    let finish: (() => void) | undefined;
    const { socket } = fakeSession({
      connect: () => undefined,
      mail: () =>
        new Promise<undefined>((resolve) => {
          finish = () => resolve(undefined);
        }),
      rcpt: () => undefined,
    });
    socket.emit("data", Buffer.concat([NEGOTIATE, CONNECT, MAIL, RCPT]));
    expect(finish).toBeDefined();
    // The RCPT is whole and waits for us: reading stops, and its clock does not run out.
    expect(socket.paused).toBe(true);
    vi.advanceTimersByTime(4_000);
    finish?.();
    await vi.advanceTimersByTimeAsync(40_000);
    expect(socket.destroyed).toBe(false);
    expect(socket.paused).toBe(false);
    expect(socket.written.length).toBe(4);
  });

  it("replies the MTA does not read: no more reading or processing until 'drain', closed after 60 s", () => {
    const seen: string[] = [];
    const { socket, entries } = fakeSession({
      connect: () => undefined,
      rcpt: (recipient) => {
        seen.push(recipient);
        return undefined;
      },
    });
    socket.emit("data", Buffer.concat([NEGOTIATE, CONNECT, MAIL]));
    socket.writeAccepts = false;
    socket.emit("data", Buffer.concat([RCPT, RCPT, RCPT]));
    // The first reply did not fit: the rest waits, unread input stays in the kernel.
    expect(seen).toHaveLength(1);
    expect(socket.paused).toBe(true);
    socket.writeAccepts = true;
    socket.emit("drain");
    expect(seen).toHaveLength(3);
    expect(socket.paused).toBe(false);

    socket.writeAccepts = false;
    socket.emit("data", RCPT);
    vi.advanceTimersByTime(59_999);
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(socket.destroyed).toBe(true);
    expect(warned(entries, "does not read our replies")?.fields).toMatchObject({ peer: "192.0.2.9:4711" });
  });
});

describe("input budget (fake socket)", () => {
  it("pauses a connection whose held input would pass the bound, resumes it when others let go", () => {
    const budget = new InputBudget(100 * 1024);
    const a = fakeSession({}, budget);
    const b = fakeSession({}, budget);
    const c = fakeSession({}, budget);
    for (const { socket } of [a, b, c]) socket.emit("data", NEGOTIATE);
    const big = command({ type: "body", chunk: Buffer.alloc(500 * 1024) });
    a.socket.emit("data", big.subarray(0, 90 * 1024));
    expect(budget.bytes).toBe(90 * 1024);
    expect(a.socket.paused).toBe(false);
    b.socket.emit("data", big.subarray(0, 30 * 1024));
    // B passed the bound: B waits.
    expect(b.socket.paused).toBe(true);
    c.socket.emit("data", big.subarray(0, 20 * 1024));
    expect(c.socket.paused).toBe(true);
    // A holds the most: it goes on, so the largest packet can always complete.
    a.socket.emit("data", big.subarray(90 * 1024, 91 * 1024));
    expect(a.socket.paused).toBe(false);
    expect(budget.waitingConnections).toBe(2);
    a.session.close();
    expect(budget.bytes).toBe(50 * 1024);
    expect(b.socket.paused).toBe(false);
    expect(c.socket.paused).toBe(false);
    b.session.close();
    c.session.close();
    expect(budget.bytes).toBe(0);
  });

  it("wakes the new largest holder when the largest completes its packet", () => {
    const budget = new InputBudget(100 * 1024);
    const handler = { eoh: () => undefined, body: () => undefined };
    const a = fakeSession(handler, budget);
    const b = fakeSession(handler, budget);
    const start = Buffer.concat([NEGOTIATE, CONNECT, MAIL, command({ type: "eoh" })]);
    a.socket.emit("data", start);
    b.socket.emit("data", start);
    const big = command({ type: "body", chunk: Buffer.alloc(200 * 1024) });
    a.socket.emit("data", big.subarray(0, 150 * 1024));
    b.socket.emit("data", big.subarray(0, 60 * 1024));
    expect(b.socket.paused).toBe(true);
    a.socket.emit("data", big.subarray(150 * 1024));
    // A's packet is done: B now holds the most and is read again, though the bound is still near.
    expect(budget.bytes).toBe(60 * 1024);
    expect(b.socket.paused).toBe(false);
  });

  it("never pauses a connection that holds only a small amount", () => {
    const budget = new InputBudget(0);
    const { socket } = fakeSession({ connect: () => undefined }, budget);
    socket.emit("data", Buffer.concat([NEGOTIATE, CONNECT, MAIL.subarray(0, 7)]));
    expect(budget.exhausted).toBe(true);
    expect(socket.paused).toBe(false);
  });
});

describe("macros", () => {
  it("keeps only the macros the handler asked for at negotiation", () => {
    let seen: Record<string, string | undefined> = {};
    const { socket } = fakeSession({
      wishes: { macros: { mail: ["{auth_authen}", "{i}"] } },
      connect: () => undefined,
      mail: (_sender, _args, session: SessionContext) => {
        seen = { auth: session.macro("{auth_authen}"), i: session.macro("i"), j: session.macro("j") };
      },
    });
    socket.emit(
      "data",
      Buffer.concat([
        NEGOTIATE,
        CONNECT,
        command({
          type: "macro",
          forCommand: Command.Mail,
          macros: [
            ["i", "QID1"],
            ["{auth_authen}", "alice"],
            ["j", "x".repeat(50_000)],
          ],
        }),
        MAIL,
      ]),
    );
    expect(seen).toEqual({ auth: "alice", i: "QID1", j: undefined });
  });

  it("keeps at most 64 KiB of macros per connection, drops the rest and says so once", () => {
    let seen: (string | undefined)[] = [];
    const { socket, entries } = fakeSession({
      connect: () => undefined,
      mail: (_sender, _args, session: SessionContext) => {
        seen = [session.macro("{a}"), session.macro("{b}"), session.macro("{c}")];
      },
    });
    const big = "v".repeat(40 * 1024);
    socket.emit("data", Buffer.concat([NEGOTIATE, CONNECT]));
    for (let i = 0; i < 3; i++) {
      socket.emit(
        "data",
        command({
          type: "macro",
          forCommand: Command.Mail,
          macros: [
            ["{a}", "small"],
            ["{b}", big],
            ["{c}", big],
          ],
        }),
      );
    }
    socket.emit("data", MAIL);
    expect(seen).toEqual(["small", big, undefined]);
    expect(entries.filter((e) => e.message.includes("over the per-connection limit"))).toHaveLength(1);
    expect(warned(entries, "over the per-connection limit")?.fields).toMatchObject({
      peer: "192.0.2.9:4711",
    });
    // The message goes on: MAIL was answered.
    expect(socket.written.at(-1)).toEqual(packet(0x63));
  });
});

describe("FrameReader holds what arrived, not what was announced", () => {
  it("a header announcing 1 MiB followed by a few bytes holds those bytes only", () => {
    const before = process.memoryUsage().arrayBuffers;
    const readers: FrameReader[] = [];
    for (let i = 0; i < 200; i++) {
      const reader = new FrameReader(1024 * 1024);
      reader.append(Buffer.from([0, 0x10, 0, 0, 0x42, 1, 2, 3]));
      expect(reader.next()).toBeUndefined();
      readers.push(reader);
    }
    expect(readers[0]?.bufferedBytes).toBe(8);
    expect(readers[0]?.hasFrame).toBe(false);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(20 * 1024 * 1024);
  });

  it("takes frames one at a time, across reads of any size", () => {
    const stream = Buffer.concat([NEGOTIATE, CONNECT, MAIL, RCPT]);
    const reader = new FrameReader(1024);
    for (const byte of stream.subarray(0, -1)) reader.append(Buffer.from([byte]));
    const codes: number[] = [];
    for (let frame = reader.next(); frame !== undefined; frame = reader.next())
      codes.push((frame as { code: number }).code);
    expect(codes).toEqual([Command.OptionNegotiation, Command.Connect, Command.Mail]);
    expect(reader.hasFrame).toBe(false);
    reader.append(stream.subarray(-1));
    expect(reader.hasFrame).toBe(true);
    expect((reader.next() as { code: number }).code).toBe(Command.Rcpt);
    expect(reader.bufferedBytes).toBe(0);
  });
});

// --- On a real server -------------------------------------------------------------------------

let dir: string;
let running: TestServer | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "filterctl-hardening-"));
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
  await rm(dir, { recursive: true, force: true });
});

function rawTcp(test: TestServer): Promise<Socket> {
  const address = test.address;
  if (address.kind !== "tcp") throw new Error("tcp expected");
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: address.host, port: address.port });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

describe("on a real server", () => {
  it("closes connections past the pending-negotiation limit at once, and says who", async () => {
    running = await startServer(() => ({ mail: () => undefined }), { maxPendingNegotiations: 3 });
    const test = running;
    const refused: string[] = [];
    test.server.on("refused", (reason) => refused.push(reason));
    const waiting = [await rawTcp(test), await rawTcp(test), await rawTcp(test)];
    for (const socket of waiting) socket.on("error", () => {});
    await waitFor(() => test.server.pendingNegotiations === 3);
    const fourth = await rawTcp(test);
    fourth.on("error", () => {});
    expect(await closedWithin(fourth, 1000)).toBe(true);
    expect(refused).toEqual(["3 connections are already waiting to negotiate"]);
    const line = test.entries.find((e) => e.message.includes("already waiting to negotiate"));
    expect(line?.fields.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    // Once one negotiates, there is room again.
    waiting[0]?.write(NEGOTIATE);
    await waitFor(() => test.server.pendingNegotiations === 2);
    const client = await test.connect();
    expect((await client.negotiate()).version).toBe(6);
    client.destroy();
    for (const socket of waiting) socket.destroy();
  });

  it("names the unix socket in a protocol error on a unix connection", async () => {
    const { logger, entries } = recordingLogger();
    const path = join(dir, "milter.sock");
    const server = new MilterServer(() => ({}), { logger });
    await server.listen(`unix:${path}`);
    const socket = createConnection(path);
    socket.on("error", () => {});
    socket.write(Buffer.from([0, 0, 0, 0, 0x4f]));
    await waitFor(() => entries.some((e) => e.message.includes("protocol error")));
    expect(entries.find((e) => e.message.includes("protocol error"))?.fields.peer).toBe(`unix:${path}`);
    socket.destroy();
    await server.shutdown(0);
  });

  it("a peer that pipelines and never reads replies stops being served, then is closed", async () => {
    let handled = 0;
    // Long replies fill the socket buffers after a few thousand commands.
    const long = reply.tempfail(452, "4.2.2", "x".repeat(900));
    running = await startServer(
      () => ({
        connect: () => undefined,
        rcpt: () => {
          handled++;
          return long;
        },
      }),
      { writeStallTimeoutMs: 1500 },
    );
    const test = running;
    const socket = await rawTcp(test);
    socket.on("error", () => {});
    socket.pause();
    const sent = 60_000;
    socket.write(Buffer.concat([NEGOTIATE, CONNECT, MAIL]));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => RCPT));
    for (let i = 0; i < sent / 1000; i++) socket.write(batch);
    await waitFor(() => handled > 0);
    await new Promise((r) => setTimeout(r, 500));
    const plateau = handled;
    // Without backpressure every RCPT is handled and ~55 MB of replies wait in our memory.
    expect(plateau).toBeLessThan(sent / 2);
    expect(test.server.bufferedInput).toBeLessThan(256 * 1024);
    const healthy = await test.connect();
    await healthy.negotiate();
    expect(await healthy.connectInfo(CLIENT)).toEqual({ type: "continue" });
    // The peer reads nothing, so it cannot see the close: the server's log and count tell.
    await waitFor(() => test.entries.some((e) => e.message.includes("does not read our replies")), 5000);
    expect(test.entries.find((e) => e.message.includes("does not read our replies"))?.fields.peer).toMatch(
      /^127\.0\.0\.1:\d+$/,
    );
    await waitFor(() => test.server.activeConnections === 1);
    healthy.destroy();
    socket.destroy();
  });

  it("holds at most about max_buffered_input of partial packets, and serves others meanwhile", async () => {
    const limit = 256 * 1024;
    let bodyBytes = 0;
    running = await startServer(
      () => ({
        connect: () => undefined,
        mail: () => undefined,
        body: (chunk) => {
          bodyBytes += chunk.length;
          return undefined;
        },
        eom: () => undefined,
      }),
      { maxBufferedInput: limit },
    );
    const test = running;
    const start = Buffer.concat([NEGOTIATE, CONNECT, MAIL, command({ type: "eoh" })]);
    const big = command({ type: "body", chunk: Buffer.alloc(600 * 1024, 0x61) });
    const peers: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const socket = await rawTcp(test);
      socket.on("error", () => {});
      socket.on("data", () => {});
      // All but the last byte: the packet never completes.
      socket.write(Buffer.concat([start, big.subarray(0, -1)]));
      peers.push(socket);
    }
    await new Promise((r) => setTimeout(r, 500));
    // Without the bound this is 8 × 600 KiB. With it: the limit, the largest holder's packet, and
    // per other connection the allowance and one read.
    expect(test.server.bufferedInput).toBeLessThan(limit + 600 * 1024 + 7 * 80 * 1024);
    const healthy = await test.connect();
    await healthy.negotiate();
    expect(await healthy.connectInfo(CLIENT)).toEqual({ type: "continue" });
    expect(await healthy.mail("<a@example.org>")).toEqual({ type: "continue" });
    // The holders go away: a paused peer is read again and its packet completes.
    const last = peers.pop() as Socket;
    for (const socket of peers) socket.destroy();
    last.write(big.subarray(-1));
    await waitFor(() => bodyBytes === 600 * 1024, 5000);
    last.destroy();
    healthy.destroy();
    await waitFor(() => test.server.bufferedInput === 0);
  });

  it("closes a paused connection whose packet cannot complete, at the packet deadline", async () => {
    running = await startServer(() => ({ mail: () => undefined }), {
      maxBufferedInput: 256 * 1024,
      packetTimeoutMs: 800,
    });
    const test = running;
    const other = await rawTcp(test);
    other.on("error", () => {});
    other.resume();
    const socket = await rawTcp(test);
    socket.on("error", () => {});
    socket.resume();
    const big = command({ type: "body", chunk: Buffer.alloc(500 * 1024) });
    // This packet starts first; then another connection holds more, and this one must wait.
    socket.write(Buffer.concat([NEGOTIATE, big.subarray(0, 100 * 1024)]));
    await waitFor(() => test.server.bufferedInput >= 100 * 1024);
    other.write(Buffer.concat([NEGOTIATE, big.subarray(0, 400 * 1024)]));
    await waitFor(() => test.server.bufferedInput >= 500 * 1024);
    socket.write(big.subarray(100 * 1024, 300 * 1024));
    const started = Date.now();
    expect(await closedWithin(socket, 3000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    const line = test.entries.find((e) => e.message.includes("not complete in time"));
    expect(test.entries.some((e) => e.fields.waitingForBudget === true)).toBe(true);
    expect(line).toBeDefined();
    other.destroy();
    await waitFor(() => test.server.bufferedInput === 0);
  });

  it("while a handler is busy, pipelined commands wait in the kernel, not in our memory", async () => {
    let inFlight = 0;
    let most = 0;
    let handled = 0;
    running = await startServer(() => ({
      connect: () => undefined,
      rcpt: async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        if (handled === 0) await new Promise((r) => setTimeout(r, 300));
        inFlight--;
        handled++;
        return undefined;
      },
    }));
    const test = running;
    const socket = await rawTcp(test);
    socket.on("error", () => {});
    let answered = 0;
    socket.on("data", (chunk: Buffer) => {
      answered += chunk.length;
    });
    const count = 40_000;
    socket.write(Buffer.concat([NEGOTIATE, CONNECT, MAIL]));
    socket.write(Buffer.concat(Array.from({ length: count }, () => RCPT)));
    await new Promise((r) => setTimeout(r, 150));
    // One read at most is held while the first RCPT is in the handler.
    expect(handled).toBe(0);
    expect(test.server.bufferedInput).toBeLessThanOrEqual(128 * 1024);
    await waitFor(() => handled === count, 20_000);
    expect(most).toBe(1);
    await waitFor(() => answered === 17 + 5 + 5 + count * 5);
    socket.destroy();
  }, 30_000);
});
