/**
 * Maildir quota source micro-benchmark: lookups per second when `maildirsize` must be opened,
 * read and parsed ("fresh": each lookup is the source's first of that mailbox) against a file
 * answered from the source's (inode, size, mtime, ctime) cache after one lstat ("cached"), and,
 * for scale, the pure parser and an untrusted file that makes the source count the maildir.
 *
 *   npm run bench:maildir -- [--quick] [--duration S] [--mailboxes N] [--concurrency 1,32] [--help]
 *
 * The mailboxes are copies of one made by maildrop (`maildirmake -q`, `deliverquota` × 20)
 * when it is installed, else of a file and messages written in the same Courier format. Every
 * answer timed is checked against the template's messages on disk (sizes from stat, not from
 * maildirsize): a wrong one is printed after the table and the exit status is 1. Speed never
 * fails the run. Everything runs in this process, in a temporary directory removed at the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { setMaxListeners } from "node:events";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import type { MaildirSourceConfig } from "../src/sources/maildir.js";
import { createMaildirSource, type MaildirQuotaSource } from "../src/sources/maildir.js";
import { parseMaildirsize } from "../src/sources/maildirsize.js";

const USAGE = `npm run bench:maildir -- [--quick] [--duration S] [--mailboxes N] [--concurrency 1,32]
  --quick            0.7 s per row, 200 mailboxes (default 2 s, 1000)
  --duration S       seconds per row
  --mailboxes N      copies of the template mailbox
  --concurrency A,B  lookups in flight, one set of rows each
`;

interface Options {
  durationMs: number;
  mailboxes: number;
  concurrency: number[];
}

function parseOptions(argv: string[]): Options | undefined {
  if (argv.includes("--help")) return undefined;
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

const LIMIT = 100_000_000;
const COUNT_LIMIT = 10_000;
const MESSAGES = 20;

const messageText = (i: number) => `From: a@example.org\nSubject: ${i}\n\n${"x".repeat(1000 + i)}\n`;

/** One template mailbox: by maildrop when present. */
async function templateMailbox(dir: string): Promise<string> {
  const maildir = join(dir, "template");
  if (existsSync("/usr/bin/maildirmake") && existsSync("/usr/sbin/deliverquota")) {
    execFileSync("/usr/bin/maildirmake", [maildir]);
    execFileSync("/usr/bin/maildirmake", ["-q", `${LIMIT}S,${COUNT_LIMIT}C`, maildir]);
    for (let i = 0; i < MESSAGES; i++) {
      const delivered = spawnSync("/usr/sbin/deliverquota", [maildir], { input: messageText(i) });
      if (delivered.status !== 0) throw new Error(`deliverquota exited ${delivered.status}`);
    }
    return "maildrop";
  }
  for (const sub of ["cur", "new", "tmp"]) await mkdir(join(maildir, sub), { recursive: true });
  let text = `${LIMIT}S,${COUNT_LIMIT}C\n${pad(0, 0)}`;
  for (let i = 0; i < MESSAGES; i++) {
    const message = messageText(i);
    await writeFile(join(maildir, "new", `1700000000.M${i}P1.bench,S=${message.length}`), message);
    text += pad(message.length, 1);
  }
  await writeFile(join(maildir, "maildirsize"), text);
  return "hand-written (maildrop not installed)";
}

interface Expected {
  usage: number;
  count: number;
}

/** What every mailbox holds, from the template's message files themselves (stat sizes). */
async function holdings(maildir: string): Promise<Expected> {
  let usage = 0;
  let count = 0;
  for (const sub of ["new", "cur"]) {
    for (const name of await readdir(join(maildir, sub))) {
      usage += (await stat(join(maildir, sub, name))).size;
      count++;
    }
  }
  if (count !== MESSAGES) throw new Error(`the template holds ${count} messages, not ${MESSAGES}`);
  return { usage, count };
}

/** Wrong answers seen, by row; the first few of each row are kept verbatim for the report. */
class Mismatches {
  count = 0;
  private readonly byRow = new Map<string, { count: number; samples: string[] }>();

  note(row: string, text: string): void {
    this.count++;
    const seen = this.byRow.get(row) ?? { count: 0, samples: [] };
    seen.count++;
    if (seen.samples.length < 3) seen.samples.push(text);
    this.byRow.set(row, seen);
  }

  report(): string {
    const lines: string[] = [];
    for (const [row, seen] of this.byRow) {
      lines.push(`MISMATCH ${row}: ${seen.count} wrong`);
      for (const text of seen.samples) lines.push(`  ${text}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** Checks a quota answer against the template; answers nothing when right. */
function quotaChecker(expected: Expected): (answer: unknown) => string | undefined {
  const want = { usage: expected.usage, limit: LIMIT, count: expected.count, countLimit: COUNT_LIMIT };
  return (answer) => {
    const got = answer as Record<string, unknown> | undefined;
    const right =
      got !== undefined &&
      got.usage === want.usage &&
      got.limit === want.limit &&
      got.count === want.count &&
      got.countLimit === want.countLimit;
    return right ? undefined : `got ${JSON.stringify(answer)}, expected ${JSON.stringify(want)}`;
  };
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

/**
 * Runs `lookup(i)` with `concurrency` in flight for `durationMs`; i counts up from 0. Each
 * answer goes through `check` (after its latency is taken); a wrong one is noted.
 */
async function measure(
  scenario: string,
  concurrency: number,
  durationMs: number,
  lookup: (i: number) => Promise<unknown>,
  check: (answer: unknown) => string | undefined,
  mismatches: Mismatches,
): Promise<Row> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const end = started + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const i = next++;
      const answer = await lookup(i);
      latencies.push((performance.now() - t) * 1000);
      const wrong = check(answer);
      if (wrong !== undefined)
        mismatches.note(`${scenario}, in flight ${concurrency}`, `lookup ${i}: ${wrong}`);
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

interface Setup {
  users: string[];
  untrusted: string[];
  fileBytes: Buffer;
  newSource: () => MaildirQuotaSource;
  signal: AbortSignal;
}

/** The table's rows, every answer checked against `expected`. */
async function runRows(options: Options, setup: Setup, expected: Expected, mismatches: Mismatches) {
  const { users, untrusted, fileBytes, newSource, signal } = setup;
  const quotaRight = quotaChecker(expected);
  const parseRight = (answer: unknown) => {
    const parsed = answer as ReturnType<typeof parseMaildirsize>;
    const right =
      parsed.usage === expected.usage &&
      parsed.count === expected.count &&
      parsed.definition?.bytes === LIMIT &&
      parsed.definition?.messages === COUNT_LIMIT &&
      parsed.suspect.length === 0;
    return right
      ? undefined
      : `parsed usage ${parsed.usage}, count ${parsed.count}, expected ${JSON.stringify(expected)}`;
  };
  /** Warms a source on these users, checking its answers too. */
  const warm = async (source: MaildirQuotaSource, names: string[]) => {
    for (const user of names) {
      const wrong = quotaRight(await source.quota(`${user}@example.org`, signal));
      if (wrong !== undefined) mismatches.note("warming a source", `${user}: ${wrong}`);
    }
    return source;
  };
  const rows: Row[] = [];
  const row = async (scenario: string, concurrency: number, lookup: (i: number) => Promise<unknown>) => {
    const check = scenario.startsWith("parse") ? parseRight : quotaRight;
    rows.push(await measure(scenario, concurrency, options.durationMs, lookup, check, mismatches));
  };
  await row("parse only (no I/O)", 1, async () => parseMaildirsize(fileBytes));
  for (const concurrency of options.concurrency) {
    // Fresh: a new source for every pass over the mailboxes, so each lookup opens and reads the file.
    let source = newSource();
    await row("fresh: open+fstat+read+parse", concurrency, (i) => {
      if (i % users.length === 0 && i > 0) source = newSource();
      return source.quota(`${users[i % users.length]}@example.org`, signal);
    });
    // Cached: one source that has seen every mailbox; each lookup is one lstat.
    const cached = await warm(newSource(), users);
    await row("cached: lstat (inode/size/mtime)", concurrency, (i) =>
      cached.quota(`${users[i % users.length]}@example.org`, signal),
    );
    if (cached.stats.fileReads !== users.length)
      mismatches.note("cached", `${cached.stats.fileReads} file reads for ${users.length} mailboxes`);
    // Untrusted file: counted from the directories (20 messages), then the count reused.
    let counting = newSource();
    await row("untrusted: count the maildir", concurrency, (i) => {
      if (i % untrusted.length === 0 && i > 0) counting = newSource();
      return counting.quota(`${untrusted[i % untrusted.length]}@example.org`, signal);
    });
    const reuse = await warm(newSource(), untrusted);
    await row("untrusted: count reused (dir stamps)", concurrency, (i) =>
      reuse.quota(`${untrusted[i % untrusted.length]}@example.org`, signal),
    );
  }
  return rows;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dir = await mkdtemp(join(tmpdir(), "filterctl-bench-maildir-"));
  try {
    const made = await templateMailbox(dir);
    const expected = await holdings(join(dir, "template"));
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
      kind: "quota",
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

    const mismatches = new Mismatches();
    const rows = await runRows(
      options,
      { users, untrusted, fileBytes, newSource, signal },
      expected,
      mismatches,
    );
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    process.stdout.write(
      `maildir source, ${options.mailboxes} mailboxes (maildirsize ${fileBytes.length} bytes, ${made}; ` +
        `every answer checked: ${expected.usage} bytes, ${expected.count} messages), ` +
        `${options.durationMs / 1000} s per row, Node ${process.version}, ${cpus().length} × ${cpu}, ` +
        `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? "4 (default)"}\n\n${table(rows)}\n`,
    );
    if (mismatches.count > 0) {
      process.stdout.write(mismatches.report());
      process.stdout.write(`\nBENCHMARK FAILED: ${mismatches.count} wrong answer(s)\n`);
      return 1;
    }
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
