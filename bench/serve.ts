/**
 * The pieces of the end-to-end benchmarks of `filterctl serve`: the Maildir++ fixture, the C
 * libmilter baseline (quota at RCPT only), the servers, the Postfix-style session and the load
 * loop, memory with 1000 connections, reload time and the journal's cost. `npm run bench`
 * (bench/table.ts) and bench:soak (bench/soak.ts) build on them; run directly, this file runs
 * bench/serve-rate.ts (`npm run bench:serve-rate`: a rate() rule at RCPT, memory and Redis state).
 *
 * Postfix-style sessions: one milter connection each; negotiate, CONNECT, HELO, MAIL with
 * SIZE=2600, 2 RCPT, DATA, 8 headers, EOH, a 2 KB body, EOM, QUIT. Each client sends only what
 * the server negotiated (MilterClient), and every reply is checked: any mismatch fails the run.
 * A plan can expect a refusal at CONNECT or MAIL (the session then ends, as an MTA's would).
 * The fixture's mailboxes are far from their limits (over: 250 kB of 200 kB; under: 50 kB), so
 * the product's semantics (SIZE= as the incoming bytes) and the C baseline's (one more byte)
 * give the same verdicts.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MilterClient, POSTFIX_MACROS } from "../src/milter/index.js";
import { ZONES } from "../test/support/rbldnsd.js";
import { BIND_DN, BIND_PASSWORD } from "../test/support/slapd.js";

const repo = new URL("../..", import.meta.url).pathname;
const C_SOURCE = join(repo, "bench", "baselines", "quota-milter.c");
const C_BINARY = join(repo, "dist-bench", "quota-milter-c");
const BIN = join(repo, "bin", "filterctl.js");
export const MAILBOXES = 1000;
export const OVER_TEXT = "452 4.2.2 Mailbox over quota";
const SENDER = "<alice@example.org>";
const BODY = Buffer.from(`${"x".repeat(76)}\r\n`.repeat(26));
const HEADERS: [string, string][] = [
  ["From", "Alice <alice@example.org>"],
  ["To", "Users <users@example.org>"],
  ["Subject", "benchmark message"],
  ["Date", "Thu, 26 Nov 2026 12:00:00 +0000"],
  ["Message-ID", "<bench@example.org>"],
  ["MIME-Version", "1.0"],
  ["Content-Type", "text/plain; charset=us-ascii"],
  ["X-Mailer", "filterctl-bench"],
];

export interface Server {
  name: string;
  port: number;
  child: ChildProcess;
  output: () => string;
  /** A process doing part of this server's work (redis-server): its CPU is measured too. */
  helperPid?: number;
}

export interface Result {
  name: string;
  concurrency: number;
  sessions: number;
  seconds: number;
  latencies: number[];
  cpuMs: number;
  /** CPU of the server's helper process over the window (0 without one). */
  helperCpuMs: number;
  mismatches: string[];
}

/** What a session sends and the replies it must get. */
export interface SessionPlan {
  /** MAIL FROM of session n, with its angle brackets. */
  sender(n: number): string;
  /** The reply RCPT to mailbox i must get in session n: a reply code's text, or "continue". */
  expect(n: number, mailbox: number): string;
  /** The client's address in session n (default 198.51.100.10, listed by no DNSBL). */
  client?(n: number): string;
  /** A reply that ends session n before RCPT: at "connect" or "mail" (a DNSBL, an unknown sender). */
  refusal?(n: number): { stage: "connect" | "mail"; text: string } | undefined;
  /** The end-of-message modifications, as JSON of MilterClient's answers (default: none). */
  eomModifications?: string;
}

export function user(i: number): string {
  return `user${String(i).padStart(4, "0")}`;
}

export function isOver(i: number): boolean {
  return i % 10 === 0;
}

/** The three-policy and the C baseline's sessions: one sender, mailboxes over quota refused. */
export function quotaPlan(overText: string): SessionPlan {
  return { sender: () => SENDER, expect: (_n, i) => (isOver(i) ? overText : "continue") };
}

/** Maildir++ mailboxes: <root>/<user>/{cur,new,tmp} and a maildirsize with one size line. */
export function makeFixture(): string {
  const root = mkdtempSync(join(tmpdir(), "filterctl-bench-serve-"));
  for (let i = 0; i < MAILBOXES; i++) {
    const dir = join(root, user(i));
    for (const sub of ["cur", "new", "tmp"]) mkdirSync(join(dir, sub), { recursive: true });
    const usage = isOver(i) ? 250_000 : 50_000;
    writeFileSync(join(dir, "maildirsize"), `200000S,1000C\n${usage} 10\n`);
  }
  return root;
}

/**
 * Gives every fixture maildirsize a new mtime, as deliveries would. Maildir++ believes an
 * over-quota file for 15 minutes only, then counts the maildir — and the fixture's maildirs hold
 * no messages, so a run longer than that (the soak) must keep its files fresh.
 */
export function freshenFixture(root: string): void {
  const now = new Date();
  for (let i = 0; i < MAILBOXES; i++) utimesSync(join(root, user(i), "maildirsize"), now, now);
}

export function rules(root: string, ldapUrl: string, dns: string, listen: string, overText: string): string {
  return `listen: "${listen}"
dns:
  servers: ["${dns}"]
sources:
  blocklist:
    type: dnsbl
    zone: ${ZONES.healthy}
  directory:
    type: ldap
    url: "${ldapUrl}"
    bind_dn: "${BIND_DN}"
    password_env: FILTERCTL_BENCH_LDAP_PASSWORD
    base: "dc=mail"
    tables:
      local_domains: "(sendmailMTAClassValue={key})"
      addresses: "(mailLocalAddress={key})"
    cache: 5m
  mailboxes:
    type: maildir
    path: "${root}/{user}"
rules:
  - name: dnsbl
    on: connect
    if: client.ip in blocklist
    then: 'reject 554 5.7.1 "{client.ip} is listed"'
  - name: verify-from
    on: mail
    if: from.domain in directory.local_domains and from not in directory.addresses
    then: 'reject 550 5.7.1 "Reject: your From address {from} does not exist."'
  - name: quota
    on: rcpt
    if: quota(rcpt, mailboxes) over
    then: 'tempfail ${overText.replace(/^(\d+) (\S+) (.*)$/, '$1 $2 "$3"')}'
`;
}

/** The C baseline's policy alone: the Maildir++ quota at RCPT, default settings (no cache:). */
export function quotaOnlyRules(root: string, overText: string): string {
  return `sources:
  mailboxes:
    type: maildir
    path: "${root}/{user}"
rules:
  - name: quota
    on: rcpt
    if: quota(rcpt, mailboxes) over
    then: 'tempfail ${overText.replace(/^(\d+) (\S+) (.*)$/, '$1 $2 "$3"')}'
`;
}

/**
 * Resolves when the child prints `pattern`, and stops listening then: a server logs every
 * session, and a listener left behind re-scanned all of it on each chunk, in the load generator's
 * process (a third of its CPU against serve after a few rounds, none against C, which is silent).
 */
function waitForOutput(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = "";
    const stop = () => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${what} did not start: ${text}`));
    }, 15_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match) {
        stop();
        resolve(match);
      }
    };
    const onExit = (code: number | null) => {
      stop();
      reject(new Error(`${what} exited with ${code}: ${text}`));
    };
    child.stdout?.on("data", onData);
    child.once("exit", onExit);
  });
}

/** The last 64 KiB a child printed (for error messages), without keeping a whole run's log. */
function outputTail(child: ChildProcess): () => string {
  let tail = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    tail += chunk.toString();
    if (tail.length > 128 * 1024) tail = tail.slice(-64 * 1024);
  });
  return () => tail;
}

export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

export async function startServe(
  configPath: string,
  name = "filterctl serve (3 policies)",
  args: string[] = [],
): Promise<Server> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--config", configPath, "--listen", `inet:${port}@127.0.0.1`, ...args],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, FILTERCTL_BENCH_LDAP_PASSWORD: BIND_PASSWORD },
    },
  );
  const output = outputTail(child);
  const ready = args.includes("--workers") ? /"msg":"workers serving"/ : /"msg":"milter listening"/;
  await waitForOutput(child, ready, "filterctl serve");
  return { name, port, child, output };
}

/** Builds the C baseline when it is missing (or with --rebuild). */
export function buildC(): void {
  if (!existsSync(C_BINARY) || process.argv.includes("--rebuild")) {
    mkdirSync(join(repo, "dist-bench"), { recursive: true });
    execFileSync("gcc", ["-O2", "-o", C_BINARY, C_SOURCE, "-lmilter", "-lpthread"], { stdio: "inherit" });
  }
}

export async function startC(root: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(C_BINARY, [String(port), root], { stdio: ["ignore", "pipe", "inherit"] });
  await waitForOutput(child, /READY (\d+)/, "C baseline");
  return { name: "C libmilter (quota only)", port, child, output: () => "" };
}

export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the command.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU of a process and its children alive now (serve --workers: the primary and its workers). */
export function treeCpuMs(pid: number): number {
  return [pid, ...childrenOf(pid)].reduce((sum, p) => sum + cpuMsOf(p), 0);
}

function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
    return text.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // No children file (older kernels): the process alone.
    return [];
  }
}

/** RSS of a process and its children (serve --workers: the primary and its workers). */
export function treeRssMb(pid: number): number {
  return [pid, ...childrenOf(pid)].reduce((sum, p) => sum + rssMb(p), 0);
}

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

function replyText(reply: { type: string } | undefined): string {
  return reply?.type === "replycode"
    ? (reply as unknown as { text: string }).text
    : (reply?.type ?? "continue");
}

/** One Postfix-style session; answers the mismatches it saw. */
export async function session(port: number, n: number, plan: SessionPlan): Promise<string[]> {
  const problems: string[] = [];
  const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 10_000, { mta: POSTFIX_MACROS });
  try {
    await client.negotiate();
    const refusal = plan.refusal?.(n);
    // A stage's reply: the refusal the plan expects there, else continue; false ends the session.
    const check = (stage: string, reply: { type: string } | undefined): boolean => {
      const expected = refusal?.stage === stage ? refusal.text : "continue";
      const got = replyText(reply);
      if (got !== expected) problems.push(`${stage}: got ${got}, expected ${expected}`);
      return expected === "continue";
    };
    const address = plan.client?.(n) ?? "198.51.100.10";
    const info = { hostname: "client.bench.test", family: "inet" as const, port: 40000, address };
    if (!check("connect", await client.connectInfo(info))) return finish(client, problems);
    check("helo", await client.helo("client.bench.test"));
    if (!check("mail", await client.mail(plan.sender(n), ["SIZE=2600"]))) return finish(client, problems);
    for (const i of [(n * 2) % MAILBOXES, (n * 2 + 1) % MAILBOXES]) {
      const got = replyText(await client.rcpt(`<${user(i)}@example.org>`));
      const expected = plan.expect(n, i);
      if (got !== expected) problems.push(`rcpt ${user(i)}: got ${got}, expected ${expected}`);
    }
    check("data", await client.data());
    for (const [name, value] of HEADERS) check("header", await client.header(name, value));
    check("eoh", await client.eoh());
    check("body", await client.body(BODY));
    const end = await client.eom();
    const mods = JSON.stringify(end.modifications);
    if (end.reply.type !== "continue" || mods !== (plan.eomModifications ?? "[]"))
      problems.push(`eom: ${JSON.stringify(end)}`);
    return finish(client, problems);
  } catch (error) {
    problems.push(`session failed: ${(error as Error).message}`);
    client.destroy();
    return problems;
  }
}

function finish(client: MilterClient, problems: string[]): string[] {
  client.quit();
  return problems;
}

/** Session numbers, never reused in a run (a plan may give each session its own sender). */
let nextSession = 0;

export async function load(
  server: Server,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  plan: SessionPlan = quotaPlan(OVER_TEXT),
): Promise<Result> {
  const latencies: number[] = [];
  const mismatches: string[] = [];
  let sessions = 0;
  let measuring = false;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const started = performance.now();
      const problems = await session(server.port, nextSession++, plan);
      if (measuring) {
        latencies.push(performance.now() - started);
        sessions++;
      }
      mismatches.push(...problems);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((r) => setTimeout(r, warmupMs));
  const pid = server.child.pid as number;
  const helper = server.helperPid;
  const cpuBefore = treeCpuMs(pid);
  const helperBefore = helper === undefined ? 0 : cpuMsOf(helper);
  const started = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  const cpuMs = treeCpuMs(pid) - cpuBefore;
  const helperCpuMs = helper === undefined ? 0 : cpuMsOf(helper) - helperBefore;
  stop = true;
  await Promise.all(workers);
  return { name: server.name, concurrency, sessions, seconds, latencies, cpuMs, helperCpuMs, mismatches };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function idleMemory(port: number, pid: number): Promise<{ before: number; after: number }> {
  const before = treeRssMb(pid);
  const clients: MilterClient[] = [];
  for (let i = 0; i < 1000; i++) {
    const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 10_000, { mta: POSTFIX_MACROS });
    await client.negotiate();
    clients.push(client);
  }
  await new Promise((r) => setTimeout(r, 300));
  const after = treeRssMb(pid);
  for (const client of clients) client.destroy();
  return { before, after };
}

/** Writes a changed rules file and measures until sessions see the new reply. */
export async function reloadLatency(
  port: number,
  configPath: string,
  write: (text: string) => void,
): Promise<number> {
  const newText = "452 4.2.2 Mailbox full, try again later";
  const written = performance.now();
  write(newText);
  for (;;) {
    const problems = await session(port, 0, quotaPlan(newText));
    if (problems.length === 0) return performance.now() - written;
    if (performance.now() - written > 10_000)
      throw new Error(`rules not reloaded within 10 s (${configPath})`);
  }
}

/**
 * The journal's cost: the same load on a `serve --journal` (a fresh process, warmed up the same
 * way), against the results without one; sessions/s, CPU per session, and the journal's bytes.
 */
export async function journalCost(
  configPath: string,
  root: string,
  without: Result[],
  timing: { warmupMs: number; durationMs: number },
  servers: Server[],
): Promise<string> {
  const journal = join(root, "journal.jsonl");
  const journalled = await startServe(configPath, "filterctl serve --journal", ["--journal", journal]);
  servers.push(journalled);
  for (let i = 0; i < 50; i++) await session(journalled.port, i, quotaPlan(OVER_TEXT));
  const rows: string[] = [];
  for (const base of without) {
    const r = await load(journalled, base.concurrency, timing.warmupMs, timing.durationMs);
    if (r.mismatches.length > 0) throw new Error(`journalled serve: ${r.mismatches.slice(0, 3).join("; ")}`);
    const rate = r.sessions / r.seconds;
    const baseRate = base.sessions / base.seconds;
    const cpu = (x: Result) => (x.cpuMs / Math.max(1, x.sessions)).toFixed(3);
    rows.push(
      `| ${base.concurrency} | ${baseRate.toFixed(0)} | ${rate.toFixed(0)} | ${(rate / baseRate).toFixed(2)} | ${cpu(base)} | ${cpu(r)} |`,
    );
  }
  // Written asynchronously: give the last lines a moment to land before counting.
  await new Promise((r) => setTimeout(r, 500));
  const text = readFileSync(journal, "utf8");
  const lines = text.split("\n").length - 1;
  return [
    "\njournal cost: serve --journal against the same serve without, same sessions (measured after the table above, minutes apart, on a shared machine: compare with care)\n",
    "| conc | sessions/s without | sessions/s with | ratio with / without | CPU ms/session without | CPU ms/session with |",
    "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    `\njournal: ${lines} lines, ${(text.length / Math.max(1, lines)).toFixed(0)} bytes per transaction`,
  ].join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  import("./serve-rate.js")
    .then((m) => m.main())
    .catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    });
}
