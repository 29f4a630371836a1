/**
 * Hostile and broken MTA streams: each one closes or answers only its own connection, with a
 * log line, and a healthy connection opened before keeps working throughout.
 */
import { createConnection, type Socket } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Command,
  encodeCommand,
  type MilterClient,
  type MilterCommand,
  packet,
  reply,
} from "../../src/milter/index.js";
import { CLIENT, startServer, type TestServer, waitFor } from "./helpers.js";

let server: TestServer;
let healthy: MilterClient;

beforeAll(async () => {
  server = await startServer(
    () => ({
      connect: () => undefined,
      mail: () => undefined,
      rcpt: (recipient: string) =>
        recipient.includes("full") ? reply.tempfail(452, "4.2.2", "over quota") : undefined,
      eoh: () => undefined,
      body: () => undefined,
      eom: () => ({ reply: reply.continue(), modifications: [] }),
    }),
    { negotiationTimeoutMs: 200, maxPacketBytes: 64 * 1024 },
  );
  healthy = await server.connect();
  await healthy.negotiate();
  await healthy.connectInfo(CLIENT);
});

afterAll(async () => {
  healthy.destroy();
  await server.stop();
});

function raw(): Promise<Socket> {
  const address = server.address;
  if (address.kind !== "tcp") throw new Error("tcp expected");
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: address.host, port: address.port });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Sends bytes and collects everything the server answers until it closes (or `waitMs` passes). */
async function exchange(bytes: Buffer, waitMs = 1000): Promise<{ answer: Buffer; closed: boolean }> {
  const socket = await raw();
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("error", () => {});
  let closed = false;
  const done = new Promise<void>((resolve) => {
    socket.once("close", () => {
      closed = true;
      resolve();
    });
    setTimeout(resolve, waitMs);
  });
  if (bytes.length > 0) socket.write(bytes);
  await done;
  socket.destroy();
  return { answer: Buffer.concat(chunks), closed };
}

const negotiate = encodeCommand({
  type: "optneg",
  version: 6,
  actions: 0x1ff,
  protocol: 0x1fffff,
  macroLists: new Map(),
});
const command = (c: MilterCommand) => encodeCommand(c);
const NEGOTIATION_REPLY_BYTES = 17;

function lastLog(): string {
  return server.entries[server.entries.length - 1]?.message ?? "";
}

async function stillHealthy() {
  expect(await healthy.mail("<a@example.org>")).toEqual({ type: "continue" });
  expect(await healthy.rcpt("<full@example.org>")).toEqual({
    type: "replycode",
    text: "452 4.2.2 over quota",
  });
  healthy.abort();
}

describe("bad input on one connection", () => {
  it("a zero length closes that connection", async () => {
    const { closed } = await exchange(Buffer.concat([negotiate, Buffer.from([0, 0, 0, 0, 0x43])]));
    expect(closed).toBe(true);
    expect(lastLog()).toContain("packet length 0");
    await stillHealthy();
  });

  it("a length of 0xFFFFFFFF closes it without allocating anything", async () => {
    const before = process.memoryUsage().arrayBuffers;
    const { closed } = await exchange(
      Buffer.concat([negotiate, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x42])]),
    );
    expect(closed).toBe(true);
    expect(lastLog()).toContain("exceeds the limit");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    await stillHealthy();
  });

  it("a packet above the configured limit closes it", async () => {
    const { closed } = await exchange(
      Buffer.concat([negotiate, command({ type: "body", chunk: Buffer.alloc(70 * 1024) })]),
    );
    expect(closed).toBe(true);
    expect(lastLog()).toContain("exceeds the limit of 65536");
  });

  it("an unknown command byte closes it", async () => {
    const { closed } = await exchange(Buffer.concat([negotiate, packet(0x7a, "zzz")]));
    expect(closed).toBe(true);
    expect(lastLog()).toContain("unknown command byte 0x7a");
    await stillHealthy();
  });

  it("a malformed payload closes it", async () => {
    const { closed } = await exchange(
      Buffer.concat([negotiate, packet(Command.Connect, Buffer.from("no-nul"))]),
    );
    expect(closed).toBe(true);
    expect(lastLog()).toContain("connect: unterminated host name");
  });

  it("garbage before negotiation closes it without an answer", async () => {
    const { closed, answer } = await exchange(Buffer.from("GET / HTTP/1.0\r\n\r\n"));
    expect(closed).toBe(true);
    expect(answer.length).toBe(0);
    expect(lastLog()).toMatch(/protocol error/);
    await stillHealthy();
  });

  it("a command before negotiation closes it", async () => {
    const { closed } = await exchange(command({ type: "helo", name: "x" }));
    expect(closed).toBe(true);
    expect(lastLog()).toContain("before option negotiation");
  });

  it("a second negotiation closes it", async () => {
    const { closed } = await exchange(Buffer.concat([negotiate, negotiate]));
    expect(closed).toBe(true);
    expect(lastLog()).toContain("second option negotiation");
  });

  it("RCPT before MAIL gets the fallback reply and the connection stays usable", async () => {
    const { answer, closed } = await exchange(
      Buffer.concat([
        negotiate,
        command({ type: "connect", ...CLIENT }),
        command({ type: "rcpt", recipient: "<x@y>", args: [] }),
        command({ type: "mail", sender: "<a@b>", args: [] }),
      ]),
      300,
    );
    expect(closed).toBe(false);
    // negotiation, connect=c, rcpt=t (fallback), mail=c
    expect([...answer.subarray(NEGOTIATION_REPLY_BYTES)]).toEqual([
      0, 0, 0, 1, 0x63, 0, 0, 0, 1, 0x74, 0, 0, 0, 1, 0x63,
    ]);
    expect(server.entries.some((e) => e.message.includes("RCPT before MAIL"))).toBe(true);
  });

  it("a body before the end of headers gets the fallback reply", async () => {
    const { answer } = await exchange(
      Buffer.concat([
        negotiate,
        command({ type: "connect", ...CLIENT }),
        command({ type: "mail", sender: "<a@b>", args: [] }),
        command({ type: "body", chunk: Buffer.from("early") }),
      ]),
      300,
    );
    expect(answer.subarray(-1)[0]).toBe(0x74);
    expect(server.entries.some((e) => e.message.includes("body before end of headers"))).toBe(true);
  });

  it("a peer that disconnects mid-packet is logged and forgotten", async () => {
    const partial = command({ type: "mail", sender: "<a@example.org>", args: [] }).subarray(0, 9);
    const socket = await raw();
    socket.write(Buffer.concat([negotiate, partial]));
    await new Promise((r) => setTimeout(r, 50));
    socket.end();
    await waitFor(() => server.entries.some((e) => e.message.includes("in the middle of a packet")));
    await stillHealthy();
  });

  it("a peer that sends nothing is closed after the negotiation timeout", async () => {
    const started = Date.now();
    const { closed } = await exchange(Buffer.alloc(0), 2000);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(server.entries.some((e) => e.message.includes("no negotiation from the MTA in time"))).toBe(true);
    await stillHealthy();
  });

  it("a truncated negotiation followed by silence is closed too", async () => {
    const { closed } = await exchange(negotiate.subarray(0, 7), 2000);
    expect(closed).toBe(true);
  });
});

describe("fuzzing", () => {
  const validStream = Buffer.concat([
    negotiate,
    command({ type: "macro", forCommand: Command.Connect, macros: [["j", "mx"]] }),
    command({ type: "connect", ...CLIENT }),
    command({ type: "helo", name: "client.example" }),
    command({ type: "mail", sender: "<a@example.org>", args: ["SIZE=10"] }),
    command({ type: "rcpt", recipient: "<full@example.org>", args: [] }),
    command({ type: "rcpt", recipient: "<b@example.org>", args: [] }),
    command({ type: "data" }),
    command({ type: "header", name: "Subject", value: "x" }),
    command({ type: "eoh" }),
    command({ type: "body", chunk: Buffer.from("body\r\n") }),
    command({ type: "eom", chunk: Buffer.alloc(0) }),
    command({ type: "abort" }),
    command({ type: "quit" }),
  ]);

  const mutation = fc.oneof(
    // Random bytes from scratch.
    fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
    // A valid session with bytes flipped.
    fc
      .array(fc.tuple(fc.nat(validStream.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      })
      .map((flips) => {
        const copy = Buffer.from(validStream);
        for (const [at, value] of flips) copy[at] = value;
        return copy;
      }),
    // A valid session cut short, or with a slice repeated.
    fc.tuple(fc.nat(validStream.length), fc.nat(validStream.length)).map(([a, b]) => {
      const [from, to] = a < b ? [a, b] : [b, a];
      return Buffer.concat([validStream.subarray(0, to), validStream.subarray(from)]);
    }),
  );

  it("survives random and mutated streams, and serves a clean session after each", async () => {
    await fc.assert(
      fc.asyncProperty(mutation, fc.integer({ min: 1, max: 64 }), async (bytes, splitEvery) => {
        const socket = await raw();
        socket.on("error", () => {});
        socket.on("data", () => {});
        for (let at = 0; at < bytes.length; at += splitEvery)
          socket.write(bytes.subarray(at, at + splitEvery));
        await new Promise((r) => setTimeout(r, 5));
        socket.destroy();
        const client = await server.connect();
        await client.negotiate();
        expect(await client.connectInfo(CLIENT)).toEqual({ type: "continue" });
        expect(await client.mail("<a@example.org>")).toEqual({ type: "continue" });
        expect(await client.rcpt("<full@example.org>")).toEqual({
          type: "replycode",
          text: "452 4.2.2 over quota",
        });
        expect((await client.eom()).reply).toEqual({ type: "continue" });
        client.destroy();
      }),
      { numRuns: 150 },
    );
    await stillHealthy();
    await waitFor(() => server.server.activeConnections === 1, 3000);
  }, 60_000);
});
