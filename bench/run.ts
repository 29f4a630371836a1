/**
 * `npm run bench:lib`: our milter server against a C libmilter baseline, same policy, same run.
 *
 * 1. builds bench/baselines/quota-milter.c with gcc into dist-bench/ (ignored by git);
 * 2. writes a temporary Maildir++ fixture (1000 mailboxes, 10% over quota);
 * 3. starts both servers as separate processes on 127.0.0.1 and load-generator processes;
 * 4. for each round, concurrency and server (order alternated between rounds), runs a warm-up
 *    then a measured window, reading server and generator CPU time from /proc;
 * 5. holds 1000 idle negotiated connections against a fresh process of each server and
 *    reads VmRSS;
 * 6. prints the table; exits 1 (after printing every mismatch) if any reply differed from the
 *    fixture or any session failed.
 *
 * 7. fuzzes the real `filterctl serve` with hostile streams (bench/fuzz.ts): 10 minutes, or a
 *    few seconds with --quick; exits 1 if the server died or a health session failed.
 *
 * Options: --quick, --rounds N, --warmup S, --duration S, --workers N, --concurrency 8,32,
 * --idle N, --fuzz S (0 skips it), --only c|ts, --profile (runs our server under `node --cpu-prof`), --keep,
 * --diagnose (adds two rows: our server with UV_THREADPOOL_SIZE=1, and with verdicts held in
 * memory instead of read per recipient, to show where our time goes).
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createFixture, type Mailbox } from "./fixture.js";
import { runFuzz } from "./fuzz.js";
import { evaluateMaildirsize } from "./maildirsize.js";
import type { IdleReport, LoadOrder, LoadReport, Order, Report } from "./messages.js";
import { cpuMs, machineTicks, statusField } from "./proc.js";
import { summariseProfile } from "./profile.js";
import { percentile, sortedCopy } from "./stats.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist-bench/bench/run.js → the repository root. */
const repo = resolve(here, "..", "..");
const C_SOURCE = join(repo, "bench", "baselines", "quota-milter.c");
const C_BINARY = join(repo, "dist-bench", "quota-milter-c");
const TS_SERVER = join(here, "ts-quota-milter.js");
const LOADGEN = join(here, "loadgen.js");

type Impl = "c" | "ts" | "ts-pool1" | "ts-memory";
const LABEL: Record<Impl, string> = {
  c: "C libmilter",
  ts: "ours (TS)",
  "ts-pool1": "ours, UV_THREADPOOL_SIZE=1",
  "ts-memory": "ours, no file reads (diag.)",
};

interface Options {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  workers: number;
  concurrency: number[];
  idle: number;
  only: Impl | undefined;
  profile: boolean;
  keep: boolean;
  quick: boolean;
  diagnose: boolean;
  fuzzSeconds: number;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const options: Options = {
    rounds: quick ? 1 : 3,
    warmupMs: quick ? 1000 : 1500,
    durationMs: quick ? 3000 : 6000,
    workers: 2,
    concurrency: [8, 32],
    idle: 1000,
    only: undefined,
    profile: false,
    keep: false,
    quick,
    diagnose: false,
    fuzzSeconds: quick ? 5 : 600,
  };
  const number = (value: string | undefined, name: string, min: number, max: number): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min || parsed > max)
      throw new Error(`${name} must be ${min}..${max}`);
    return parsed;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    switch (arg) {
      case "--quick":
        break;
      case "--rounds":
        options.rounds = number(value, arg, 1, 10);
        i++;
        break;
      case "--warmup":
        options.warmupMs = number(value, arg, 0, 60) * 1000;
        i++;
        break;
      case "--duration":
        options.durationMs = number(value, arg, 1, 120) * 1000;
        i++;
        break;
      case "--workers":
        options.workers = number(value, arg, 1, 8);
        i++;
        break;
      case "--concurrency":
        options.concurrency = (value ?? "").split(",").map((c) => number(c, arg, 1, 512));
        i++;
        break;
      case "--idle":
        options.idle = number(value, arg, 0, 5000);
        i++;
        break;
      case "--fuzz":
        options.fuzzSeconds = number(value, arg, 0, 3600);
        i++;
        break;
      case "--only":
        if (value !== "c" && value !== "ts") throw new Error("--only takes c or ts");
        options.only = value;
        i++;
        break;
      case "--profile":
        options.profile = true;
        break;
      case "--keep":
        options.keep = true;
        break;
      case "--diagnose":
        options.diagnose = true;
        break;
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  return options;
}

// --- Processes ------------------------------------------------------------------------------

interface Server {
  impl: Impl;
  process: ChildProcess;
  pid: number;
  port: number;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

async function startServer(impl: Impl, root: string, profileDir: string | undefined): Promise<Server> {
  const port = impl === "c" ? await freePort() : 0;
  const env = { ...process.env };
  if (impl === "ts-pool1") env.UV_THREADPOOL_SIZE = "1";
  const child =
    impl === "c"
      ? spawn(C_BINARY, [String(port), root], { stdio: ["ignore", "pipe", "inherit"] })
      : spawn(
          process.execPath,
          [
            ...(profileDir && impl === "ts" ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
            TS_SERVER,
            "0",
            root,
            ...(impl === "ts-memory" ? ["--verdicts-in-memory"] : []),
          ],
          { stdio: ["ignore", "pipe", "inherit"], env },
        );
  const ready = await new Promise<number>((resolveReady, reject) => {
    let output = "";
    const timer = setTimeout(
      () => reject(new Error(`${LABEL[impl]} server did not start within 10 s`)),
      10_000,
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /READY (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveReady(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${LABEL[impl]} server exited with ${code} before it was ready`));
    });
  });
  return { impl, process: child, pid: child.pid as number, port: ready };
}

async function stopServer(server: Server): Promise<void> {
  if (server.process.exitCode !== null || server.process.signalCode !== null) return;
  await new Promise<void>((resolveStop) => {
    const timer = setTimeout(() => {
      server.process.kill("SIGKILL");
    }, 5_000);
    server.process.once("exit", () => {
      clearTimeout(timer);
      resolveStop();
    });
    server.process.kill("SIGTERM");
  });
}

interface Worker {
  process: ChildProcess;
  pid: number;
  pending: ((report: Report) => void) | undefined;
}

function startWorker(): Worker {
  const child = fork(LOADGEN, [], {
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const worker: Worker = { process: child, pid: child.pid as number, pending: undefined };
  child.on("message", (report: Report) => {
    const pending = worker.pending;
    worker.pending = undefined;
    pending?.(report);
  });
  return worker;
}

function ask<T extends Report>(worker: Worker, order: Order, timeoutMs: number): Promise<T> {
  return new Promise((resolveReport, reject) => {
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`load generator ${worker.pid} exited with ${code}`));
    };
    const timer = setTimeout(() => {
      worker.process.off("exit", onExit);
      reject(new Error(`load generator ${worker.pid} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    worker.pending = (report) => {
      clearTimeout(timer);
      worker.process.off("exit", onExit);
      resolveReport(report as T);
    };
    worker.process.once("exit", onExit);
    worker.process.send(order);
  });
}

/** Splits `total` as evenly as possible over `parts`. */
function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

// --- Measurements -------------------------------------------------------------------------

interface Sample {
  at: number;
  serverCpu: number;
  generatorCpu: number;
  machine: { busy: number; total: number };
}

function sample(server: Server, workers: Worker[]): Sample {
  return {
    at: Date.now(),
    serverCpu: cpuMs(server.pid),
    generatorCpu: workers.reduce((sum, worker) => sum + cpuMs(worker.pid), 0),
    machine: machineTicks(),
  };
}

interface Cell {
  impl: Impl;
  concurrency: number;
  windowMs: number;
  sessions: number;
  completed: number;
  serverCpuMs: number;
  generatorCpuMs: number;
  machineBusy: number;
  machineTotal: number;
  sessionMs: Float64Array[];
  replyMs: Float64Array[];
  perRound: number[];
  checked: number;
  mismatches: number;
  errors: number;
}

const problems: string[] = [];
const negotiated: Partial<Record<Impl, { protocol: number; actions: number; shape: string }>> = {};

async function runPhase(
  server: Server,
  workers: Worker[],
  concurrency: number,
  options: Options,
  expectPath: string,
  cell: Cell,
  seed: number,
): Promise<void> {
  const startAt = Date.now() + 300;
  const measureFrom = startAt + options.warmupMs;
  const measureUntil = measureFrom + options.durationMs;
  const shares = split(concurrency, Math.min(workers.length, concurrency));
  const sampleAt = (at: number) =>
    new Promise<Sample>((resolveSample) =>
      setTimeout(() => resolveSample(sample(server, workers)), Math.max(0, at - Date.now())),
    );
  const samples = Promise.all([sampleAt(measureFrom), sampleAt(measureUntil)]);
  const reports = await Promise.all(
    shares.map((share, i) => {
      const order: LoadOrder = {
        kind: "load",
        label: LABEL[server.impl],
        port: server.port,
        concurrency: share,
        startAt,
        measureFrom,
        measureUntil,
        maxSessions: 5_000_000,
        seed: seed * 100 + i,
        expectPath,
      };
      return ask<LoadReport>(workers[i] as Worker, order, measureUntil - Date.now() + 30_000);
    }),
  );
  const [from, until] = await samples;
  let measured = 0;
  for (const report of reports) {
    measured += report.measured;
    cell.completed += report.completed;
    cell.sessionMs.push(report.sessionMs);
    cell.replyMs.push(report.replyMs);
    cell.checked += report.checked;
    cell.mismatches += report.mismatches;
    cell.errors += report.errors;
    for (const text of report.mismatchSamples) problems.push(`MISMATCH ${text}`);
    for (const text of report.errorSamples) problems.push(`ERROR ${text}`);
    if (negotiated[server.impl] === undefined && report.negotiatedProtocol !== -1) {
      negotiated[server.impl] = {
        protocol: report.negotiatedProtocol,
        actions: report.negotiatedActions,
        shape: report.sessionShape,
      };
    }
  }
  cell.sessions += measured;
  cell.windowMs += options.durationMs;
  cell.serverCpuMs += until.serverCpu - from.serverCpu;
  cell.generatorCpuMs += until.generatorCpu - from.generatorCpu;
  cell.machineBusy += until.machine.busy - from.machine.busy;
  cell.machineTotal += until.machine.total - from.machine.total;
  cell.perRound.push((measured * 1000) / options.durationMs);
  const cpuPerSession = measured > 0 ? (until.serverCpu - from.serverCpu) / measured : Number.NaN;
  process.stdout.write(
    `  ${LABEL[server.impl].padEnd(12)} c=${String(concurrency).padEnd(3)} ${((measured * 1000) / options.durationMs).toFixed(0).padStart(6)} sessions/s, server ${cpuPerSession.toFixed(3)} ms CPU/session\n`,
  );
}

interface MemoryResult {
  impl: Impl;
  baseKb: number;
  loadedKb: number;
  open: number;
  threads: number;
  fds: number;
}

async function measureMemory(
  impl: Impl,
  root: string,
  workers: Worker[],
  connections: number,
): Promise<MemoryResult> {
  const server = await startServer(impl, root, undefined);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const baseKb = statusField(server.pid, "VmRSS");
    const shares = split(connections, workers.length);
    const ready = await Promise.all(
      shares.map((share, i) =>
        ask<IdleReport>(
          workers[i] as Worker,
          { kind: "idle", label: LABEL[impl], port: server.port, connections: share },
          60_000,
        ),
      ),
    );
    const open = ready.reduce((sum, report) => sum + report.open, 0);
    for (const report of ready) {
      for (const text of report.errorSamples) problems.push(`ERROR (idle connections) ${text}`);
    }
    await new Promise((r) => setTimeout(r, 1500));
    const loadedKb = statusField(server.pid, "VmRSS");
    const threads = statusField(server.pid, "Threads");
    const fds = readdirSync(`/proc/${server.pid}/fd`).length;
    await Promise.all(workers.map((worker) => ask<IdleReport>(worker, { kind: "release" }, 30_000)));
    return { impl, baseKb, loadedKb, open, threads, fds };
  } finally {
    await stopServer(server);
  }
}

// --- Output -------------------------------------------------------------------------------

function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function table(rows: string[][]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) =>
          column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
        )
        .join("  "),
    )
    .join("\n");
}

interface Derived {
  rate: number;
  p50: number;
  p99: number;
  replyP50: number;
  replyP99: number;
  serverMsPerSession: number;
  serverCorePct: number;
  generatorCorePct: number;
  generatorMsPerSession: number;
  machineBusyPct: number;
}

function derive(cell: Cell): Derived {
  const sessions = sortedCopy(cell.sessionMs);
  const replies = sortedCopy(cell.replyMs);
  return {
    rate: (cell.sessions * 1000) / cell.windowMs,
    p50: percentile(sessions, 50),
    p99: percentile(sessions, 99),
    replyP50: percentile(replies, 50),
    replyP99: percentile(replies, 99),
    serverMsPerSession: cell.serverCpuMs / cell.sessions,
    serverCorePct: (100 * cell.serverCpuMs) / cell.windowMs,
    generatorCorePct: (100 * cell.generatorCpuMs) / cell.windowMs,
    generatorMsPerSession: cell.generatorCpuMs / cell.sessions,
    machineBusyPct: (100 * cell.machineBusy) / cell.machineTotal,
  };
}

// --- Main ---------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const impls: Impl[] = options.only ? [options.only] : ["c", "ts"];
  if (options.diagnose) impls.push("ts-pool1", "ts-memory");
  const began = Date.now();

  process.stdout.write(`building the C baseline: gcc -O2 ${C_SOURCE} -lmilter -lpthread\n`);
  execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-o", C_BINARY, C_SOURCE, "-lmilter", "-lpthread"], {
    stdio: "inherit",
  });

  const fixture = createFixture(1000, 0.1, 0.02);
  const expectPath = join(fixture.root, "expect.json");
  // The fixture's verdicts come from how it was built; our parser must agree before any server runs.
  for (const mailbox of fixture.mailboxes as Mailbox[]) {
    let verdict = "ok";
    try {
      verdict = evaluateMaildirsize(readFileSync(join(fixture.root, mailbox.name, "maildirsize")));
    } catch {
      verdict = "ok";
    }
    if ((verdict === "over") !== mailbox.over) {
      throw new Error(
        `fixture self-check: ${mailbox.name} parsed as ${verdict}, built as over=${mailbox.over} (${mailbox.note})`,
      );
    }
  }
  const overCount = fixture.mailboxes.filter((m) => m.over).length;
  process.stdout.write(
    `fixture: ${fixture.mailboxes.length} mailboxes in ${fixture.root}, ${overCount} over quota; cores: ${availableParallelism()}\n`,
  );

  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), "filterctl-bench-prof-")) : undefined;
  const servers = new Map<Impl, Server>();
  const workers = Array.from({ length: options.workers }, startWorker);
  const cells = new Map<string, Cell>();
  let memory: MemoryResult[] = [];
  try {
    for (const impl of impls) servers.set(impl, await startServer(impl, fixture.root, profileDir));
    for (let round = 0; round < options.rounds; round++) {
      process.stdout.write(`round ${round + 1}/${options.rounds}\n`);
      for (const concurrency of options.concurrency) {
        // Rotate which server goes first, so drift of a noisy machine hits all alike.
        const shift = (round + options.concurrency.indexOf(concurrency)) % impls.length;
        const order = [...impls.slice(shift), ...impls.slice(0, shift)];
        for (const impl of order) {
          const key = `${impl}/${concurrency}`;
          let cell = cells.get(key);
          if (cell === undefined) {
            cell = {
              impl,
              concurrency,
              windowMs: 0,
              sessions: 0,
              completed: 0,
              serverCpuMs: 0,
              generatorCpuMs: 0,
              machineBusy: 0,
              machineTotal: 0,
              sessionMs: [],
              replyMs: [],
              perRound: [],
              checked: 0,
              mismatches: 0,
              errors: 0,
            };
            cells.set(key, cell);
          }
          await runPhase(
            servers.get(impl) as Server,
            workers,
            concurrency,
            options,
            expectPath,
            cell,
            round + 1,
          );
        }
      }
    }
    for (const server of servers.values()) await stopServer(server);
    if (options.idle > 0) {
      process.stdout.write(`memory: ${options.idle} idle negotiated connections per server\n`);
      memory = [];
      for (const impl of impls.filter((i) => i === "c" || i === "ts")) {
        memory.push(await measureMemory(impl, fixture.root, workers, options.idle));
      }
    }
  } finally {
    for (const server of servers.values()) await stopServer(server);
    for (const worker of workers) worker.process.disconnect();
    if (!options.keep) rmSync(fixture.root, { recursive: true, force: true });
  }

  // --- Report ---
  const header = [
    "implementation",
    "conc",
    "sessions/s",
    "p50 ms",
    "p99 ms",
    "reply p50",
    "reply p99",
    "srv CPU ms/sess",
    "srv CPU %core",
    "gen CPU %core",
    "gen CPU ms/sess",
    "machine busy %",
  ];
  const rows = [header];
  const derived = new Map<string, Derived>();
  for (const concurrency of options.concurrency) {
    for (const impl of impls) {
      const cell = cells.get(`${impl}/${concurrency}`) as Cell;
      const d = derive(cell);
      derived.set(`${impl}/${concurrency}`, d);
      rows.push([
        LABEL[impl],
        String(concurrency),
        fmt(d.rate, 0),
        fmt(d.p50),
        fmt(d.p99),
        fmt(d.replyP50, 3),
        fmt(d.replyP99, 3),
        fmt(d.serverMsPerSession, 3),
        fmt(d.serverCorePct, 0),
        fmt(d.generatorCorePct, 0),
        fmt(d.generatorMsPerSession, 3),
        fmt(d.machineBusyPct, 0),
      ]);
    }
    const c = derived.get(`c/${concurrency}`);
    for (const impl of impls.filter((i) => i !== "c")) {
      const ts = derived.get(`${impl}/${concurrency}`);
      if (!c || !ts) continue;
      rows.push([
        impl === "ts" ? "ratio ours / C" : `ratio ${LABEL[impl].replace(/^ours, /, "")} / C`,
        String(concurrency),
        fmt(ts.rate / c.rate),
        fmt(ts.p50 / c.p50),
        fmt(ts.p99 / c.p99),
        fmt(ts.replyP50 / c.replyP50),
        fmt(ts.replyP99 / c.replyP99),
        fmt(ts.serverMsPerSession / c.serverMsPerSession),
        "",
        "",
        "",
        "",
      ]);
    }
  }
  const seconds = ((Date.now() - began) / 1000).toFixed(0);
  process.stdout.write(
    `\nResults (${options.rounds} round(s) x ${options.durationMs / 1000} s measured per cell after ${options.warmupMs / 1000} s warm-up, ${options.workers} generator process(es), ${seconds} s in all)\n`,
  );
  process.stdout.write(`${table(rows)}\n`);
  process.stdout.write(
    "p50/p99: whole session (connect .. end-of-message reply); reply p50/p99: one awaited reply (negotiation, RCPT, end of message).\n",
  );
  for (const concurrency of options.concurrency) {
    for (const impl of impls) {
      const cell = cells.get(`${impl}/${concurrency}`) as Cell;
      process.stdout.write(
        `  ${LABEL[impl].padEnd(12)} c=${String(concurrency).padEnd(3)} per round sessions/s: ${cell.perRound.map((r) => r.toFixed(0)).join(", ")}; replies checked: ${cell.checked}, mismatches: ${cell.mismatches}, failed sessions: ${cell.errors}\n`,
      );
    }
  }
  for (const impl of impls) {
    const n = negotiated[impl];
    if (n) {
      process.stdout.write(
        `  ${LABEL[impl].padEnd(12)} negotiated protocol 0x${n.protocol.toString(16).padStart(6, "0")}, actions 0x${n.actions.toString(16)}; a session on the wire: ${n.shape}\n`,
      );
    }
  }
  if (memory.length > 0) {
    const memoryRows = [
      ["implementation", "connections", "RSS idle MB", "RSS with conns MB", "KB/conn", "threads", "open fds"],
    ];
    for (const m of memory) {
      memoryRows.push([
        LABEL[m.impl],
        String(m.open),
        fmt(m.baseKb / 1024, 1),
        fmt(m.loadedKb / 1024, 1),
        fmt((m.loadedKb - m.baseKb) / Math.max(1, m.open), 1),
        String(m.threads),
        String(m.fds),
      ]);
    }
    process.stdout.write(`\nMemory (VmRSS from /proc, idle negotiated connections)\n${table(memoryRows)}\n`);
  }
  const targets: string[] = [];
  for (const concurrency of options.concurrency) {
    const c = derived.get(`c/${concurrency}`);
    const ts = derived.get(`ts/${concurrency}`);
    if (c && ts)
      targets.push(
        `c=${concurrency}: sessions/s ours/C ${fmt(ts.rate / c.rate)} (target >= 1: ${ts.rate >= c.rate ? "met" : "NOT met"})`,
      );
    if (ts && concurrency === 32) {
      targets.push(
        `c=32: our p99 session ${fmt(ts.p99)} ms, p99 reply ${fmt(ts.replyP99, 3)} ms (target < 5 ms: session ${ts.p99 < 5 ? "met" : "NOT met"}, reply ${ts.replyP99 < 5 ? "met" : "NOT met"})`,
      );
    }
  }
  const ours = memory.find((m) => m.impl === "ts");
  if (ours)
    targets.push(
      `memory: ours ${fmt(ours.loadedKb / 1024, 1)} MB with ${ours.open} connections (target < 150 MB: ${ours.loadedKb / 1024 < 150 ? "met" : "NOT met"})`,
    );
  if (targets.length > 0) process.stdout.write(`\nTargets\n${targets.map((t) => `  ${t}`).join("\n")}\n`);

  if (profileDir) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));
    for (const file of files) {
      process.stdout.write(
        `\nCPU profile of our server (${join(profileDir, file)})\n${summariseProfile(join(profileDir, file))}\n`,
      );
    }
  }

  let fuzzOk = true;
  if (options.fuzzSeconds > 0) {
    fuzzOk = await runFuzz({ seconds: options.fuzzSeconds, peers: 8, seed: began % 100_000 });
    if (!fuzzOk) problems.push("FUZZ: the server died, a health session failed or a case hung (see above)");
  }

  const totalMismatches = [...cells.values()].reduce((sum, cell) => sum + cell.mismatches, 0);
  const totalErrors = [...cells.values()].reduce((sum, cell) => sum + cell.errors, 0);
  const idleShort = memory.filter((m) => m.open < options.idle);
  if (problems.length > 0 || totalMismatches > 0 || totalErrors > 0 || idleShort.length > 0) {
    process.stderr.write(`\n${problems.join("\n")}\n`);
    process.stderr.write(
      `\nBENCHMARK FAILED: ${totalMismatches} reply mismatch(es), ${totalErrors} failed session(s)${idleShort.length > 0 ? ", idle connections not all opened" : ""}\n`,
    );
    return 1;
  }
  process.stdout.write(
    `\nAll ${[...cells.values()].reduce((s, c) => s + c.checked, 0)} replies matched the fixture.\n`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `\nBENCHMARK FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
