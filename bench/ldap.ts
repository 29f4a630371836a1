/**
 * `npm run bench:ldap`: LDAP lookups per second against the test slapd (test/support/slapd.ts,
 * a private instance on 127.0.0.1), under N concurrent IDENTICAL queries (default 100), two ways:
 *
 * - direct:    every caller calls the LDAP source: N searches on the one connection;
 * - coalesced: every caller goes through CachedLookup (src/sources/cache.ts) with TTL 0, so
 *              nothing is cached and only in-flight de-duplication acts: one search answers
 *              all N callers.
 *
 * A batch is N lookups started together and awaited; batches run back to back for the measured
 * window, after a warm-up. The two modes alternate between rounds so drift hits both. Reported:
 * answers/s (lookups answered to callers), searches/s (what reached slapd), batch latency
 * p50/p99, and CPU ms per 1000 answers for this process and for slapd (from /proc).
 *
 * Every answer is checked against the directory's content (test/support/slapd.ts ADDRESSES),
 * and the searches against the mode (one per caller direct, one per batch coalesced): a wrong
 * answer or count is printed after the table and the exit status is 1. Speed never fails it.
 *
 * Options: --quick, --rounds N (3), --warmup S (0.5), --duration S (3), --concurrency N (100),
 * --key ADDRESS (alice@example.org; an absent one measures negative answers), --help.
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { CachedLookup } from "../src/sources/cache.js";
import type { LdapSourceConfig } from "../src/sources/ldap.js";
import { createLdapSource } from "../src/sources/ldap.js";
import type { TableSource } from "../src/sources/types.js";
import { ADDRESSES, BIND_DN, BIND_PASSWORD, Slapd, SUFFIX } from "../test/support/slapd.js";
import { cpuMs } from "./proc.js";

interface Options {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  concurrency: number;
  key: string;
}

const USAGE = `npm run bench:ldap -- [--quick] [--rounds N] [--warmup S] [--duration S] [--concurrency N] [--key ADDRESS]
  --quick          1 round of 1 s per mode (default 3 rounds of 3 s)
  --key ADDRESS    the address every lookup asks for (default alice@example.org; present in the
                   test directory: ${ADDRESSES.join(", ")}; any other is absent)
`;

function parseOptions(argv: string[]): Options | undefined {
  if (argv.includes("--help")) return undefined;
  const quick = argv.includes("--quick");
  const options: Options = {
    rounds: quick ? 1 : 3,
    warmupMs: 500,
    durationMs: quick ? 1000 : 3000,
    concurrency: 100,
    key: "alice@example.org",
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
        continue;
      case "--rounds":
        options.rounds = number(value, arg, 1, 20);
        break;
      case "--warmup":
        options.warmupMs = number(value, arg, 0, 60) * 1000;
        break;
      case "--duration":
        options.durationMs = number(value, arg, 0.1, 120) * 1000;
        break;
      case "--concurrency":
        options.concurrency = number(value, arg, 1, 10_000);
        break;
      case "--key":
        options.key = value ?? "";
        break;
      default:
        throw new Error(`unknown option ${arg}`);
    }
    i++;
  }
  return options;
}

type Mode = "direct" | "coalesced";
const TABLE = "addresses";

/** What a lookup must answer: the directory matches mailLocalAddress case-insensitively. */
function expectedAnswer(key: string): boolean {
  return ADDRESSES.some((address) => address.toLowerCase() === key.toLowerCase());
}

/** Wrong answers or search counts seen; a few are kept verbatim for the report. */
interface Problems {
  wrongAnswers: number;
  wrongSearchCounts: number;
  samples: string[];
}

function sample(problems: Problems, text: string): void {
  if (problems.samples.length < 10) problems.samples.push(text);
}

interface Measure {
  answers: number;
  searches: number;
  elapsedMs: number;
  batchMs: number[];
  ownCpuMs: number;
  slapdCpuMs: number;
}

function lookupFor(
  mode: Mode,
  source: TableSource,
  searches: { count: number },
): (key: string) => Promise<boolean> {
  const counted = (key: string, signal: AbortSignal) => {
    searches.count++;
    return source.has(TABLE, key, signal);
  };
  if (mode === "direct") return (key) => counted(key, AbortSignal.timeout(5000));
  const cache = new CachedLookup<boolean>(
    { positiveTtlMs: 0, negativeTtlMs: 0, timeoutMs: 5000, maxEntries: 1000 },
    (found) => !found,
  );
  return async (key) => cache.lookup(`${TABLE}\u0000${key}`, (signal) => counted(key, signal));
}

async function measure(
  mode: Mode,
  source: TableSource,
  options: Options,
  slapdPid: number,
  windowMs: number,
  problems: Problems,
): Promise<Measure> {
  const expected = expectedAnswer(options.key);
  const searches = { count: 0 };
  const lookup = lookupFor(mode, source, searches);
  const batchMs: number[] = [];
  let answers = 0;
  let batches = 0;
  const cpu0 = process.cpuUsage();
  const slapd0 = cpuMs(slapdPid);
  const started = performance.now();
  while (performance.now() - started < windowMs) {
    const t0 = performance.now();
    const batch: Promise<boolean>[] = [];
    for (let i = 0; i < options.concurrency; i++) batch.push(lookup(options.key));
    const results = await Promise.all(batch);
    batchMs.push(performance.now() - t0);
    answers += results.length;
    batches++;
    const wrong = results.filter((found) => found !== expected).length;
    if (wrong > 0) {
      problems.wrongAnswers += wrong;
      sample(
        problems,
        `${mode}, batch ${batches}: ${wrong} of ${results.length} answers say ${options.key} is ${expected ? "absent" : "present"}`,
      );
    }
  }
  const elapsedMs = performance.now() - started;
  // Direct: each caller searches; coalescing: the batch's callers share one search.
  const expectedSearches = mode === "direct" ? answers : batches;
  if (searches.count !== expectedSearches) {
    problems.wrongSearchCounts++;
    sample(
      problems,
      `${mode}: ${searches.count} LDAP searches for ${batches} batches of ${options.concurrency}, expected ${expectedSearches}`,
    );
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    answers,
    searches: searches.count,
    elapsedMs,
    batchMs,
    ownCpuMs: (cpu.user + cpu.system) / 1000,
    slapdCpuMs: cpuMs(slapdPid) - slapd0,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function summarise(measures: Measure[]) {
  const answers = measures.reduce((a, m) => a + m.answers, 0);
  const searches = measures.reduce((a, m) => a + m.searches, 0);
  const seconds = measures.reduce((a, m) => a + m.elapsedMs, 0) / 1000;
  const batches = measures.flatMap((m) => m.batchMs).sort((a, b) => a - b);
  const own = measures.reduce((a, m) => a + m.ownCpuMs, 0);
  const slapd = measures.reduce((a, m) => a + m.slapdCpuMs, 0);
  return {
    answersPerSecond: answers / seconds,
    searchesPerSecond: searches / seconds,
    perRound: measures.map((m) => m.answers / (m.elapsedMs / 1000)),
    p50: percentile(batches, 50),
    p99: percentile(batches, 99),
    ownCpuPer1000: (own / answers) * 1000,
    slapdCpuPer1000: (slapd / answers) * 1000,
  };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }
  const slapd = await Slapd.start();
  const configPath = join(slapd.dir, "rules.yaml");
  const env = "FILTERCTL_BENCH_LDAP_PASSWORD";
  process.env[env] = BIND_PASSWORD;
  const config: LdapSourceConfig = {
    type: "ldap",
    kind: "table",
    name: "directory",
    offset: 0,
    timeoutMs: 5000,
    onError: "tempfail",
    url: slapd.url,
    bindDn: BIND_DN,
    passwordEnv: env,
    base: SUFFIX,
    startTls: false,
    tables: new Map([[TABLE, { text: "(mailLocalAddress={key})", offsetAt: (i: number) => i }]]),
  };
  const quiet = { info() {}, warn() {}, error() {} };
  const source = await createLdapSource(config, { configPath, logger: quiet });
  try {
    const found = expectedAnswer(options.key);
    process.stdout.write(
      `slapd ${slapd.url} (pid ${slapd.processId}); key ${options.key} (${found ? "present" : "absent"}, every answer checked); ` +
        `${options.concurrency} concurrent identical lookups per batch; ${options.rounds} round(s) of ` +
        `${options.durationMs / 1000} s per mode; cores: ${availableParallelism()}\n`,
    );
    const modes: Mode[] = ["direct", "coalesced"];
    const results = new Map<Mode, Measure[]>(modes.map((m) => [m, []]));
    const problems: Problems = { wrongAnswers: 0, wrongSearchCounts: 0, samples: [] };
    for (const mode of modes)
      await measure(mode, source, options, slapd.processId, options.warmupMs, problems);
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) {
        results
          .get(mode)
          ?.push(await measure(mode, source, options, slapd.processId, options.durationMs, problems));
      }
    }
    const rows = modes.map((mode) => ({ mode, ...summarise(results.get(mode) ?? []) }));
    const header = [
      "mode",
      "answers/s",
      "LDAP searches/s",
      "batch p50 ms",
      "batch p99 ms",
      "our CPU ms/1000",
      "slapd CPU ms/1000",
      "per round answers/s",
    ];
    const table = rows.map((r) => [
      r.mode === "direct" ? "direct (no coalescing)" : "CachedLookup TTL 0 (coalescing)",
      r.answersPerSecond.toFixed(0),
      r.searchesPerSecond.toFixed(0),
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      r.ownCpuPer1000.toFixed(1),
      r.slapdCpuPer1000.toFixed(1),
      r.perRound.map((v) => v.toFixed(0)).join(" / "),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
    process.stdout.write(`${line(header)}\n| ${widths.map((w) => "-".repeat(w)).join(" | ")} |\n`);
    for (const row of table) process.stdout.write(`${line(row)}\n`);
    const [direct, coalesced] = rows;
    if (direct && coalesced) {
      process.stdout.write(
        `coalescing: ${(coalesced.answersPerSecond / direct.answersPerSecond).toFixed(1)}x the answers/s, ` +
          `${(direct.searchesPerSecond > 0 ? coalesced.searchesPerSecond / coalesced.answersPerSecond : 0).toFixed(3)} searches per answer\n`,
      );
    }
    if (problems.wrongAnswers > 0 || problems.wrongSearchCounts > 0) {
      for (const text of problems.samples) process.stdout.write(`MISMATCH ${text}\n`);
      process.stdout.write(
        `\nBENCHMARK FAILED: ${problems.wrongAnswers} wrong answer(s), ${problems.wrongSearchCounts} window(s) with a wrong number of searches\n`,
      );
      return 1;
    }
    return 0;
  } finally {
    await source.close();
    await slapd.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench:ldap failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(2);
  },
);
