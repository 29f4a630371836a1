/**
 * Hostile-stream fuzzing of the real `filterctl serve` (SPEC.md "Hardening"): several peers at
 * once send mutated and hostile milter streams (flipped bytes, random bytes, trickled bytes,
 * partial packets held open, pipelining without reading a reply, macro floods, silence, absurd
 * lengths) while a health checker runs an ordinary session every second and checks each reply.
 * The server's VmRSS is sampled all along.
 *
 *   npm run bench:fuzz [-- --seconds 600 --peers 8 --seed N]
 *
 * `npm run bench:lib` runs it for 10 minutes after the benchmark; `npm run bench:lib -- --quick` for a
 * few seconds. Everything talks to 127.0.0.1; every case is bounded in time and bytes. Fails
 * (exit 1) if the server dies, a health session fails, or a case hangs.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, MilterClient } from "../src/milter/index.js";
import {
  ABORT,
  PEER_CLIENT as CLIENT,
  CONNECT,
  command as cmd,
  MAIL,
  NEGOTIATE,
  RCPT,
  HOSTILE_RULES as RULES,
} from "../test/support/hostile-packets.js";
import { prng } from "./fixture.js";
import { statusField } from "./proc.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(repo, "bin", "filterctl.js");
const MiB = 1024 * 1024;
const VALID = Buffer.concat([
  NEGOTIATE,
  cmd({ type: "macro", forCommand: Command.Connect, macros: [["j", "mx"]] }),
  CONNECT,
  cmd({ type: "helo", name: "client.example" }),
  cmd({ type: "macro", forCommand: Command.Mail, macros: [["{daemon_name}", "smtpd"]] }),
  MAIL,
  cmd({ type: "rcpt", recipient: "<blocked@example.org>", args: [] }),
  RCPT,
  cmd({ type: "data" }),
  cmd({ type: "header", name: "Subject", value: "fuzz" }),
  cmd({ type: "eoh" }),
  cmd({ type: "body", chunk: Buffer.from("body\r\n") }),
  cmd({ type: "eom", chunk: Buffer.alloc(0) }),
  ABORT,
  cmd({ type: "quit" }),
]);

type Random = () => number;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = (random: Random, n: number) => Math.floor(random() * n);

interface Peer {
  socket: Socket;
  closedByServer: boolean;
  sent: number;
}

/** Sockets the fuzz closes itself: their 'close' is not the server's doing. */
const closing = new WeakSet<Socket>();

/** A connection; `read` false leaves replies unread (the kernel's buffers fill). */
function open(port: number, read: boolean): Promise<Peer> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const peer: Peer = { socket, closedByServer: false, sent: 0 };
    socket.on("error", () => {});
    if (read) socket.resume();
    const closedHere = () => {
      if (!closing.has(socket)) peer.closedByServer = true;
    };
    socket.once("end", closedHere);
    socket.once("close", closedHere);
    socket.once("connect", () => resolve(peer));
    socket.once("error", () => resolve(peer));
  });
}

function send(peer: Peer, bytes: Buffer): void {
  if (peer.socket.destroyed) return;
  peer.socket.write(bytes);
  peer.sent += bytes.length;
}

/** Sends `bytes` in pieces of random sizes, at most `ms` apart. */
async function sendSplit(peer: Peer, bytes: Buffer, random: Random, maxGapMs: number): Promise<void> {
  for (let at = 0; at < bytes.length && !peer.socket.destroyed; ) {
    const size = 1 + pick(random, 64);
    send(peer, bytes.subarray(at, at + size));
    at += size;
    if (maxGapMs > 0) await sleep(pick(random, maxGapMs));
  }
}

function mutated(random: Random): Buffer {
  const copy = Buffer.from(VALID);
  for (let i = 1 + pick(random, 8); i > 0; i--) copy[pick(random, copy.length)] = pick(random, 256);
  return copy;
}

function spliced(random: Random): Buffer {
  const a = pick(random, VALID.length);
  const b = pick(random, VALID.length);
  return Buffer.concat([VALID.subarray(0, Math.max(a, b)), VALID.subarray(Math.min(a, b))]);
}

function macroFlood(random: Random): Buffer {
  const packets: Buffer[] = [NEGOTIATE, CONNECT];
  for (let i = 1 + pick(random, 6); i > 0; i--) {
    const size = pick(random, 500 * 1024);
    packets.push(
      cmd({
        type: "macro",
        forCommand: [Command.Connect, Command.Mail, Command.Rcpt][pick(random, 3)] as number,
        macros: [
          ["{daemon_name}", "d".repeat(pick(random, 100 * 1024))],
          [`{junk${i}}`, "j".repeat(size)],
        ],
      }),
    );
  }
  packets.push(MAIL);
  return Buffer.concat(packets);
}

/** Each case: what it does to one connection, bounded in time (about 2 s at most) and bytes. */
const CASES: Record<string, (port: number, random: Random) => Promise<Peer>> = {
  mutated: async (port, random) => {
    const peer = await open(port, true);
    await sendSplit(peer, mutated(random), random, 0);
    await sleep(pick(random, 200));
    return peer;
  },
  spliced: async (port, random) => {
    const peer = await open(port, true);
    await sendSplit(peer, spliced(random), random, 0);
    await sleep(pick(random, 200));
    return peer;
  },
  random: async (port, random) => {
    const peer = await open(port, true);
    send(peer, Buffer.from(Array.from({ length: 1 + pick(random, 4096) }, () => pick(random, 256))));
    await sleep(pick(random, 200));
    return peer;
  },
  trickle: async (port, random) => {
    const peer = await open(port, true);
    const bytes = random() < 0.5 ? NEGOTIATE : VALID;
    const until = Date.now() + 1500;
    for (let at = 0; at < bytes.length && Date.now() < until && !peer.socket.destroyed; at++) {
      send(peer, bytes.subarray(at, at + 1));
      await sleep(20 + pick(random, 80));
    }
    return peer;
  },
  partial: async (port, random) => {
    const peer = await open(port, true);
    const length = 1 + pick(random, MiB);
    const body = cmd({ type: "body", chunk: Buffer.alloc(length, 0x61) });
    send(peer, Buffer.concat([NEGOTIATE, CONNECT, MAIL, cmd({ type: "eoh" })]));
    send(peer, body.subarray(0, pick(random, Math.min(body.length - 1, 900 * 1024))));
    await sleep(1000 + pick(random, 1000));
    return peer;
  },
  "no-read": async (port, random) => {
    const peer = await open(port, false);
    send(peer, Buffer.concat([NEGOTIATE, CONNECT]));
    const batch = Buffer.concat(Array.from({ length: 500 }, () => Buffer.concat([MAIL, RCPT, ABORT])));
    const until = Date.now() + 500 + pick(random, 1000);
    while (Date.now() < until && peer.sent < 20 * MiB && !peer.socket.destroyed) {
      if (peer.socket.writableLength < MiB) send(peer, batch);
      await sleep(5);
    }
    return peer;
  },
  "macro-flood": async (port, random) => {
    const peer = await open(port, true);
    send(peer, macroFlood(random));
    await sleep(200 + pick(random, 500));
    return peer;
  },
  silent: async (port, random) => {
    const peer = await open(port, true);
    await sleep(500 + pick(random, 1000));
    return peer;
  },
  "absurd-length": async (port, random) => {
    const peer = await open(port, true);
    const header = Buffer.alloc(5);
    header.writeUInt32BE([0, 0xffffffff, MiB + 1, 0x7fffffff][pick(random, 4)] as number);
    header[4] = 0x42;
    send(peer, Buffer.concat([random() < 0.5 ? NEGOTIATE : Buffer.alloc(0), header]));
    await sleep(pick(random, 200));
    return peer;
  },
};

interface Tally {
  runs: number;
  closedByServer: number;
  bytes: number;
}

interface Health {
  ok: number;
  failed: number;
  slowestMs: number;
  failures: string[];
}

/** An ordinary session; every reply is checked. */
async function healthSession(port: number, health: Health): Promise<void> {
  const started = Date.now();
  let client: MilterClient | undefined;
  try {
    client = await MilterClient.connect(`inet:127.0.0.1:${port}`, 5000);
    await client.negotiate();
    await client.connectInfo(CLIENT);
    await client.mail("<a@example.org>");
    const rcpt = await client.rcpt("<blocked@example.org>");
    if (rcpt?.type !== "replycode" || rcpt.text !== "550 5.7.1 no such user")
      throw new Error(`RCPT answered ${JSON.stringify(rcpt)}`);
    const eom = await client.eom();
    if (eom.reply.type !== "continue") throw new Error(`EOM answered ${JSON.stringify(eom.reply)}`);
    health.ok++;
  } catch (error) {
    health.failed++;
    if (health.failures.length < 10) health.failures.push(String(error));
  } finally {
    client?.destroy();
    health.slowestMs = Math.max(health.slowestMs, Date.now() - started);
  }
}

/** Rebuilds dist/ when a source file is newer: `filterctl serve` runs from there. */
function ensureBuilt(): void {
  const built = join(repo, "dist", "cli", "main.js");
  let builtAt = 0;
  try {
    builtAt = statSync(built).mtimeMs;
  } catch {
    builtAt = 0;
  }
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
      ),
    );
  if (newest(join(repo, "src")) > builtAt) {
    process.stdout.write("fuzz: building dist/ (tsc -p tsconfig.build.json)\n");
    execFileSync(join(repo, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], {
      cwd: repo,
      stdio: "inherit",
    });
  }
}

interface Server {
  child: ChildProcess;
  port: number;
  warnings: Map<string, number>;
  exited: () => boolean;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function startServe(dir: string): Promise<Server> {
  const config = join(dir, "rules.yaml");
  writeFileSync(config, RULES);
  const listen = `inet:127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, [BIN, "serve", "--config", config, "--listen", listen], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const warnings = new Map<string, number>();
  let partial = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("filterctl serve did not listen within 15 s")), 15_000);
    child.stdout?.setEncoding("utf8").on("data", (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const listening = /"msg":"milter listening"/.test(line) ? /"listen":"inet:(\d+)@/.exec(line) : null;
        if (listening) {
          clearTimeout(timer);
          resolve(Number(listening[1]));
        }
        if (/"level":(4|5)0/.test(line)) {
          const msg = /"msg":"([^":]{0,60})/.exec(line)?.[1] ?? "?";
          warnings.set(msg, (warnings.get(msg) ?? 0) + 1);
        }
      }
    });
    child.once("exit", (code) => reject(new Error(`filterctl serve exited with ${code}`)));
  });
  return { child, port, warnings, exited: () => exited };
}

export interface FuzzOptions {
  seconds: number;
  peers: number;
  seed: number;
}

/** Runs the fuzz and prints its table; resolves false when it found a failure. */
export async function runFuzz(options: FuzzOptions): Promise<boolean> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), "filterctl-fuzz-"));
  const server = await startServe(dir);
  const pid = server.child.pid as number;
  const tallies = new Map<string, Tally>(
    Object.keys(CASES).map((name) => [name, { runs: 0, closedByServer: 0, bytes: 0 }]),
  );
  const health: Health = { ok: 0, failed: 0, slowestMs: 0, failures: [] };
  const rss = { startKb: statusField(pid, "VmRSS"), peakKb: 0, endKb: 0 };
  const hung: string[] = [];
  const deadline = Date.now() + options.seconds * 1000;
  const sampler = setInterval(() => {
    if (!server.exited()) rss.peakKb = Math.max(rss.peakKb, statusField(pid, "VmRSS"));
  }, 100);
  const names = Object.keys(CASES);
  const worker = async (index: number) => {
    const random = prng(options.seed * 1000 + index);
    while (Date.now() < deadline && !server.exited()) {
      const name = names[pick(random, names.length)] as string;
      const run = CASES[name] as (port: number, random: Random) => Promise<Peer>;
      const timeout = sleep(10_000).then(() => undefined);
      const peer = await Promise.race([run(server.port, random), timeout]);
      const tally = tallies.get(name) as Tally;
      tally.runs++;
      if (peer === undefined) {
        if (hung.length < 10) hung.push(name);
        continue;
      }
      tally.bytes += peer.sent;
      if (peer.closedByServer) tally.closedByServer++;
      closing.add(peer.socket);
      peer.socket.destroy();
    }
  };
  const checker = async () => {
    while (Date.now() < deadline && !server.exited()) {
      await healthSession(server.port, health);
      await sleep(1000);
    }
  };
  await Promise.all([...Array.from({ length: options.peers }, (_, i) => worker(i)), checker()]);
  clearInterval(sampler);
  const alive = !server.exited();
  if (alive) rss.endKb = statusField(pid, "VmRSS");
  server.child.kill("SIGTERM");
  await new Promise((resolve) => (server.exited() ? resolve(undefined) : server.child.once("exit", resolve)));
  rmSync(dir, { recursive: true, force: true });
  printFuzz(options, tallies, health, rss, alive, server.warnings, hung);
  return alive && health.failed === 0 && health.ok > 0 && hung.length === 0;
}

function printFuzz(
  options: FuzzOptions,
  tallies: Map<string, Tally>,
  health: Health,
  rss: { startKb: number; peakKb: number; endKb: number },
  alive: boolean,
  warnings: Map<string, number>,
  hung: string[],
): void {
  const rows = [["case", "runs", "closed by server", "MB sent"]];
  let runs = 0;
  let bytes = 0;
  for (const [name, tally] of tallies) {
    rows.push([name, String(tally.runs), String(tally.closedByServer), (tally.bytes / MiB).toFixed(1)]);
    runs += tally.runs;
    bytes += tally.bytes;
  }
  rows.push(["all", String(runs), "", (bytes / MiB).toFixed(1)]);
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  const text = rows.map((r) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join("  "),
  );
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  process.stdout.write(
    `\nFuzz: hostile streams against filterctl serve (${options.seconds} s, ${options.peers} peers at once, seed ${options.seed})\n${text.join("\n")}\n` +
      `connections: ${runs + health.ok + health.failed} (${health.ok + health.failed} of them health sessions)\n` +
      `health sessions (one a second, every reply checked): ${health.ok} ok, ${health.failed} failed, slowest ${health.slowestMs} ms\n` +
      `server VmRSS: ${mb(rss.startKb)} MB at start, peak ${mb(rss.peakKb)} MB, ${alive ? `${mb(rss.endKb)} MB at the end` : "SERVER DIED"}\n` +
      `server warnings: ${[...warnings].map(([msg, n]) => `${n}× ${msg}`).join("; ") || "none"}\n`,
  );
  for (const failure of health.failures) process.stdout.write(`  health failure: ${failure}\n`);
  if (hung.length > 0) process.stdout.write(`  cases that did not finish within 10 s: ${hung.join(", ")}\n`);
}

function numberArg(argv: string[], name: string, fallback: number): number {
  const at = argv.indexOf(name);
  if (at === -1) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} takes a number`);
  return value;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  runFuzz({
    seconds: numberArg(argv, "--seconds", 600),
    peers: numberArg(argv, "--peers", 8),
    seed: numberArg(argv, "--seed", Date.now() % 100_000),
  }).then(
    (ok) => process.exit(ok ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`FUZZ FAILED: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
