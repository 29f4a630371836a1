/**
 * Maildir quota source micro-benchmark: lookups per second when `maildirsize` must be opened,
 * read and parsed ("fresh": each lookup is the source's first of that mailbox) against a file
 * answered from the source's (inode, size, mtime, ctime) cache after one lstat ("cached"), and,
 * for scale, the pure parser and an untrusted file that makes the source count the maildir.
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/maildir.js [--duration S] [--mailboxes N] [--concurrency 1,32]
 *
 * The mailboxes are copies of one made by maildrop (`maildirmake -q`, `deliverquota` × 20)
 * when it is installed, else of a file written in the same Courier format. Everything runs
 * in this process, in a temporary directory removed at the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { setMaxListeners } from "node:events";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import type { MaildirSourceConfig } from "../src/config/types.js";
import { createMaildirSource, type MaildirQuotaSource } from "../src/sources/maildir.js";
import { parseMaildirsize } from "../src/sources/maildirsize.js";

interface Options {
  durationMs: number;
  mailboxes: number;
  concurrency: number[];
}

function parseOptions(argv: string[]): Options {
  const options: Options = { durationMs: 2000, mailboxes: 1000, concurrency: [1, 32] };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case "--duration":
        options.durationMs = Number(value) * 1000;
        i++;
        break;
      case "--mailboxes":
        options.mailboxes = Number(value);
        i++;
        break;
      case "--concurrency":
        options.concurrency = String(value).split(",").map(Number);
        i++;
        break;
      case "--quick":
        options.durationMs = 700;
        options.mailboxes = 200;
        break;
      default:
        throw new Error(`unknown option ${argv[i]}`);
    }
  }
  if (!(options.durationMs > 0) || !(options.mailboxes > 0) || options.concurrency.some((c) => !(c > 0))) {
    throw new Error("--duration, --mailboxes and --concurrency must be positive");
  }
  return options;
}

const pad = (bytes: number, count: number) => `${String(bytes).padStart(12)} ${String(count).padStart(12)}\n`;

/** One template mailbox: by maildrop when present. */
async function templateMailbox(dir: string): Promise<string> {
  const maildir = join(dir, "template");
  if (existsSync("/usr/bin/maildirmake") && existsSync("/usr/sbin/deliverquota")) {
    execFileSync("/usr/bin/maildirmake", [maildir]);
    execFileSync("/usr/bin/maildirmake", ["-q", "100000000S,10000C", maildir]);
    for (let i = 0; i < 20; i++) {
      const message = `From: a@example.org\nSubject: ${i}\n\n${"x".repeat(1000 + i)}\n`;
      spawnSync("/usr/sbin/deliverquota", [maildir], { input: message });
    }
    return "maildrop";
  }
  for (const sub of ["cur", "new", "tmp"]) await mkdir(join(maildir, sub), { recursive: true });
  let text = `100000000S,10000C\n${pad(0, 0)}`;
  for (let i = 0; i < 20; i++) text += pad(1000 + 32 + i, 1);
  await writeFile(join(maildir, "maildirsize"), text);
  return "hand-written (maildrop not installed)";
}

interface Row {
  scenario: string;
  concurrency: number;
  lookups: number;
  perSecond: number;
  meanUs: number;
  p99Us: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Runs `lookup(i)` with `concurrency` in flight for `durationMs`; i counts up from 0. */
async function measure(
  scenario: string,
  concurrency: number,
  durationMs: number,
  lookup: (i: number) => Promise<unknown>,
): Promise<Row> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const end = started + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await lookup(next++);
      latencies.push((performance.now() - t) * 1000);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    scenario,
    concurrency,
    lookups: latencies.length,
    perSecond: (latencies.length / elapsed) * 1000,
    meanUs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    p99Us: percentile(latencies, 99),
  };
}

function table(rows: Row[]): string {
  const header = ["scenario", "in flight", "lookups", "lookups/s", "mean µs", "p99 µs"];
  const body = rows.map((r) => [
    r.scenario,
    String(r.concurrency),
    String(r.lookups),
    Math.round(r.perSecond).toLocaleString("en-US"),
    r.meanUs.toFixed(1),
    r.p99Us.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), "filterctl-bench-maildir-"));
  try {
    const made = await templateMailbox(dir);
    const users = Array.from({ length: options.mailboxes }, (_, i) => `user${i}`);
    for (const user of users)
      await cp(join(dir, "template"), join(dir, user, "Maildir"), { recursive: true });
    // Untrusted copies: a garbage line makes the source count the maildir (20 messages).
    const untrusted = users.slice(0, Math.min(users.length, 100)).map((u) => `bad-${u}`);
    const old = new Date(Date.now() - 60_000);
    for (const user of untrusted) {
      const maildir = join(dir, user, "Maildir");
      await cp(join(dir, "template"), maildir, { recursive: true });
      await writeFile(
        join(maildir, "maildirsize"),
        `${await readFile(join(maildir, "maildirsize"), "latin1")}garbage\n`,
      );
      // Quiet directories, so the count cache may reuse the count.
      for (const d of [maildir, join(maildir, "new"), join(maildir, "cur")]) await utimes(d, old, old);
    }
    const fileBytes = await readFile(join(dir, "user0", "Maildir", "maildirsize"));

    const config: MaildirSourceConfig = {
      name: "bench",
      type: "maildir",
      offset: 0,
      timeoutMs: 10_000,
      onError: "tempfail",
      path: join(dir, "{user}", "Maildir"),
    };
    const logger = { info() {}, warn() {}, error() {} };
    const newSource = () =>
      createMaildirSource(config, { configPath: join(dir, "rules.yaml"), logger }) as MaildirQuotaSource;
    const signal = new AbortController().signal;
    // One signal shared by every lookup in flight here (the registry gives each lookup its own).
    setMaxListeners(0, signal);

    const rows: Row[] = [];
    rows.push(
      await measure("parse only (no I/O)", 1, options.durationMs, async () => parseMaildirsize(fileBytes)),
    );
    for (const concurrency of options.concurrency) {
      // Fresh: a new source for every pass over the mailboxes, so each lookup opens and reads the file.
      let source = newSource();
      rows.push(
        await measure("fresh: open+fstat+read+parse", concurrency, options.durationMs, (i) => {
          if (i % users.length === 0 && i > 0) source = newSource();
          return source.quota(`${users[i % users.length]}@example.org`, signal);
        }),
      );
      // Cached: one source that has seen every mailbox; each lookup is one lstat.
      const cached = newSource();
      for (const user of users) await cached.quota(`${user}@example.org`, signal);
      rows.push(
        await measure("cached: lstat (inode/size/mtime)", concurrency, options.durationMs, (i) =>
          cached.quota(`${users[i % users.length]}@example.org`, signal),
        ),
      );
      if (cached.stats.fileReads !== users.length)
        throw new Error(`cache misses: ${JSON.stringify(cached.stats)}`);
      // Untrusted file: counted from the directories (20 messages), then the count reused.
      let counting = newSource();
      rows.push(
        await measure("untrusted: count the maildir", concurrency, options.durationMs, (i) => {
          if (i % untrusted.length === 0 && i > 0) counting = newSource();
          return counting.quota(`${untrusted[i % untrusted.length]}@example.org`, signal);
        }),
      );
      const reuse = newSource();
      for (const user of untrusted) await reuse.quota(`${user}@example.org`, signal);
      rows.push(
        await measure("untrusted: count reused (dir stamps)", concurrency, options.durationMs, (i) =>
          reuse.quota(`${untrusted[i % untrusted.length]}@example.org`, signal),
        ),
      );
    }
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    process.stdout.write(
      `maildir source, ${options.mailboxes} mailboxes (maildirsize ${fileBytes.length} bytes, ${made}), ` +
        `${options.durationMs / 1000} s per row, Node ${process.version}, ${cpus().length} × ${cpu}, ` +
        `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? "4 (default)"}\n\n${table(rows)}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
