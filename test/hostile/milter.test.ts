/**
 * Issue 8, the milter side: hostile MTA peers against the real `filterctl serve` process. Each
 * attack seen against the defaults (a peer that never reads replies, tricklers, held partial
 * packets, a macro flood, a flood of connections that never negotiate) is replayed at a bounded
 * scale, and the SPEC's bound is asserted: deadlines from accept and from a packet's first byte,
 * resident memory (VmRSS from /proc) that does not follow what the attacker sends, and a normal
 * session served while the attack goes on. Every loop here is bounded in time and bytes and talks
 * to 127.0.0.1 only.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Command, MilterClient } from "../../src/milter/index.js";
import {
  ABORT,
  PEER_CLIENT as CLIENT,
  CONNECT,
  command,
  MAIL,
  NEGOTIATE,
  RCPT,
  HOSTILE_RULES as RULES,
} from "../support/hostile-packets.js";
import { type LogLine, ServeProcess } from "../support/serve-process.js";

const MiB = 1024 * 1024;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let serve: ServeProcess | undefined;
const sockets: Socket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "filterctl-hostile-milter-"));
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await serve?.stop();
  serve = undefined;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `filterctl serve` with the test rules and `extra` top-level settings; only warnings are kept. */
async function start(extra = "", listen?: string): Promise<ServeProcess> {
  const config = join(dir, `rules-${Date.now()}.yaml`);
  await writeFile(config, `${extra}${RULES}`);
  serve = await ServeProcess.start({
    config,
    ...(listen === undefined ? {} : { listen }),
    keep: (line) => (line.level ?? 0) >= 40 || line.msg === "milter listening",
  });
  return serve;
}

function rssKb(pid: number): number {
  const match = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

/** Samples the server's VmRSS every 50 ms; `stop()` answers the highest seen. */
function watchRss(pid: number): { stop: () => number } {
  let peak = rssKb(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKb(pid));
  }, 50);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, rssKb(pid));
    },
  };
}

interface Raw {
  socket: Socket;
  /** Our port: the peer's port in the server's log lines. */
  port: number;
  openedAt: number;
  closedAt: number | undefined;
}

/** A raw connection that reads (and drops) what it gets, so it sees the server close it. */
async function raw(port: number | string, read = true): Promise<Raw> {
  const socket =
    typeof port === "string" ? createConnection(port) : createConnection({ host: "127.0.0.1", port });
  sockets.push(socket);
  socket.on("error", () => {});
  if (read) socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  const peer: Raw = { socket, port: socket.localPort as number, openedAt: Date.now(), closedAt: undefined };
  socket.once("close", () => {
    peer.closedAt = Date.now();
  });
  return peer;
}

/** A whole ordinary session: the rules answer, so the server is serving. */
async function normalSession(server: ServeProcess): Promise<void> {
  const client = await MilterClient.connect(server.listen, 5000);
  try {
    await client.negotiate();
    // CONNECT and MAIL have no rule that decides there: the MTA gets no reply to wait for.
    await client.connectInfo(CLIENT);
    await client.mail("<a@example.org>");
    expect(await client.rcpt("<blocked@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.7.1 no such user",
    });
    expect((await client.eom()).reply).toEqual({ type: "continue" });
  } finally {
    client.destroy();
  }
}

function warning(server: ServeProcess, text: string): LogLine | undefined {
  return server.find((line) => typeof line.msg === "string" && line.msg.includes(text));
}

describe("hostile MTA peers against filterctl serve", () => {
  it("tricklers: 50 peers sending their negotiation a byte every 2 s are closed 10 s after accept", async () => {
    const server = await start();
    const peers = await Promise.all(Array.from({ length: 50 }, () => raw(server.port)));
    const trickle = setInterval(() => {
      const at = Math.floor((Date.now() - (peers[0]?.openedAt ?? 0)) / 2000);
      for (const peer of peers)
        if (peer.closedAt === undefined && at < NEGOTIATE.length)
          peer.socket.write(NEGOTIATE.subarray(at, at + 1));
    }, 2000);
    try {
      for (const peer of peers) peer.socket.write(NEGOTIATE.subarray(0, 1));
      await sleep(4000);
      await normalSession(server);
      const deadline = Date.now() + 14_000;
      while (peers.some((p) => p.closedAt === undefined) && Date.now() < deadline) await sleep(100);
    } finally {
      clearInterval(trickle);
    }
    for (const peer of peers) {
      expect(peer.closedAt).toBeDefined();
      const after = (peer.closedAt as number) - peer.openedAt;
      expect(after).toBeGreaterThanOrEqual(9_500);
      expect(after).toBeLessThan(12_000);
    }
    expect(warning(server, "no negotiation from the MTA in time")?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    await normalSession(server);
  }, 40_000);

  it("the 257th connection waiting to negotiate is closed at once; the 256 meet the 10 s deadline", async () => {
    const server = await start();
    const established = await MilterClient.connect(server.listen, 5000);
    await established.negotiate();
    const waiting: Raw[] = [];
    for (let i = 0; i < 256; i++) waiting.push(await raw(server.port));
    await sleep(300);
    expect(waiting.every((p) => p.closedAt === undefined)).toBe(true);
    const extra = await raw(server.port);
    await sleep(500);
    expect(extra.closedAt).toBeDefined();
    expect((extra.closedAt as number) - extra.openedAt).toBeLessThan(500);
    const refused = await server.waitForLine(
      (line) => String(line.msg).includes("256 connections are already waiting to negotiate"),
      2000,
    );
    expect(refused.peer).toBe(`127.0.0.1:${extra.port}`);
    // A connection that negotiated before is served throughout.
    await established.connectInfo(CLIENT);
    await established.mail("<a@example.org>");
    expect(await established.rcpt("<blocked@example.org>")).toEqual({
      type: "replycode",
      text: "550 5.7.1 no such user",
    });
    established.destroy();
    const deadline = Date.now() + 13_000;
    while (waiting.some((p) => p.closedAt === undefined) && Date.now() < deadline) await sleep(100);
    expect(waiting.every((p) => p.closedAt !== undefined)).toBe(true);
    await normalSession(server);
  }, 40_000);

  it("a peer that pipelines MAIL/RCPT/ABORT and never reads a reply is no longer read; memory stays put", async () => {
    // A unix socket: its kernel buffers are small (about 200 KB), so what the server does once
    // they are full shows after a few MB, not after the tens of MB loopback TCP absorbs.
    const path = join(dir, "pipeliner.sock");
    const server = await start("", `unix:${path}`);
    await normalSession(server);
    await sleep(300);
    const base = rssKb(server.pid);
    const rss = watchRss(server.pid);
    const peer = await raw(path, false);
    peer.socket.write(Buffer.concat([NEGOTIATE, CONNECT]));
    const batch = Buffer.concat(Array.from({ length: 2000 }, () => Buffer.concat([MAIL, RCPT, ABORT])));
    let sent = 0;
    const until = Date.now() + 15_000;
    let blockedSince: number | undefined;
    // Bounded: 150 MB or 15 s; stop once the server has not taken our bytes for 3 s.
    while (sent < 150 * MiB && Date.now() < until) {
      if (peer.socket.writableLength < 4 * MiB) {
        peer.socket.write(batch);
        sent += batch.length;
        blockedSince = undefined;
        await sleep(0);
      } else {
        blockedSince ??= Date.now();
        if (Date.now() - blockedSince > 3000) break;
        await sleep(20);
      }
    }
    await normalSession(server);
    const peak = rss.stop();
    // Before: the server read on and kept every reply (here +245 MB for 77 MB sent; +356 MB for
    // 400 MB reported). Now it stops reading after a few MB.
    expect(blockedSince).toBeDefined();
    expect(sent).toBeLessThan(150 * MiB);
    expect((peak - base) / 1024).toBeLessThan(40);
    expect(peer.closedAt).toBeUndefined();
  }, 40_000);

  it("120 negotiated peers holding 900 KiB of a 1 MiB packet: memory bounded, closed 30 s after the first byte", async () => {
    const server = await start("max_buffered_input: 8MiB\n");
    await normalSession(server);
    await sleep(300);
    const base = rssKb(server.pid);
    const rss = watchRss(server.pid);
    const head = Buffer.concat([NEGOTIATE, CONNECT, MAIL, command({ type: "eoh" })]);
    const body = command({ type: "body", chunk: Buffer.alloc(MiB - 16, 0x61) }).subarray(0, 900 * 1024);
    const peers: Raw[] = [];
    for (let i = 0; i < 120; i++) {
      const peer = await raw(server.port);
      peer.socket.write(head);
      peer.socket.write(body);
      peers.push(peer);
    }
    const firstByte = Date.now();
    await sleep(2000);
    await normalSession(server);
    const peak = rss.stop();
    // Before: +149 MB here (every partial packet kept whole: the 105 MiB sent must all be held,
    // so any bound below that catches it). Now: 8 MiB, one packet, and per connection the
    // allowance and a read or two (+22 MB measured on a quiet machine; up to +72 MB seen on a
    // loaded one, where the collector falls behind on the read buffers it frees).
    expect((peak - base) / 1024).toBeLessThan(95);
    expect(peers.every((p) => p.closedAt === undefined)).toBe(true);
    const deadline = firstByte + 36_000;
    while (peers.some((p) => p.closedAt === undefined) && Date.now() < deadline) await sleep(200);
    expect(peers.every((p) => p.closedAt !== undefined)).toBe(true);
    for (const peer of peers) expect((peer.closedAt as number) - peer.openedAt).toBeGreaterThan(28_000);
    const line = warning(server, "not complete in time");
    expect(line?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    // The setting reached the server (the default would be 64 MiB).
    expect(warning(server, "over max_buffered_input")?.limit).toBe(8 * MiB);
    await normalSession(server);
  }, 60_000);

  it("a macro flood (30 × 1 MiB, then 4 peers × 10 MiB) keeps only wanted macros, at most 64 KiB each", async () => {
    const server = await start();
    await normalSession(server);
    await sleep(300);
    const base = rssKb(server.pid);
    const rss = watchRss(server.pid);
    const stages = [Command.Connect, Command.Helo, Command.Mail, Command.Rcpt, Command.Data];
    const flood = (i: number) =>
      command({
        type: "macro",
        forCommand: stages[i % stages.length] as number,
        macros: [
          ["{daemon_name}", "d".repeat(300 * 1024)],
          [`{junk_${i}}`, "j".repeat(700 * 1024)],
        ],
      });
    const first = await raw(server.port);
    first.socket.write(Buffer.concat([NEGOTIATE, CONNECT]));
    for (let i = 0; i < 30; i++) first.socket.write(flood(i));
    const more = await Promise.all(Array.from({ length: 4 }, () => raw(server.port)));
    for (const peer of more) {
      peer.socket.write(Buffer.concat([NEGOTIATE, CONNECT]));
      for (let i = 0; i < 10; i++) peer.socket.write(flood(i));
    }
    await sleep(2000);
    await normalSession(server);
    const peak = rss.stop();
    // Before: +104 MB here (+66..214 MB reported), every macro kept whatever its size. What is
    // left is garbage of the 70 MiB received, freed at the garbage collector's pace.
    expect((peak - base) / 1024).toBeLessThan(60);
    const line = warning(server, "over the per-connection limit");
    expect(line?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    // The connections go on (no mail lost): MAIL still gets its answer.
    for (const peer of [first, ...more]) expect(peer.closedAt).toBeUndefined();
  }, 40_000);

  it("a protocol error names the peer's address and port", async () => {
    const server = await start();
    const peer = await raw(server.port);
    peer.socket.write(Buffer.from("GET / HTTP/1.0\r\n\r\n"));
    const line = await server.waitForLine((l) => String(l.msg).includes("protocol error"), 5000);
    expect(line.peer).toBe(`127.0.0.1:${peer.port}`);
  });
});
