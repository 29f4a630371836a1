/**
 * The lookup cache's cost: lookups per second answered from the cache (hits) against the same
 * answers read from a plain Map, and the wrapper's overhead per lookup on the miss path
 * (in-flight de-duplication, deadline timer, counters) against calling the source directly.
 * Both contenders run in this process, alternating, in the same run. Every answer is checked
 * against the table the answers come from (and a hit must come at once, not as a promise): a
 * wrong one is printed after the table and the exit status is 1. Speed never fails the run.
 *
 *   npm run bench:cache [-- --quick | --rounds N --duration S | --help]
 */
import { CachedLookup } from "../src/sources/cache.js";

interface Row {
  name: string;
  perSecond: number;
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user${i}@example.org`);
/** The right answer for KEYS[i]: one key in ten is "found". */
const EXPECTED = KEYS.map((_, i) => i % 10 === 0);

const USAGE = `npm run bench:cache -- [--quick] [--rounds N] [--duration S]
  --quick        1 round of 0.2 s per contender (default 5 rounds of 0.5 s; the median is shown)
`;

function parseOptions(argv: string[]): { rounds: number; durationMs: number } | undefined {
  const options = { rounds: 5, durationMs: 500 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--help") return undefined;
    if (argv[i] === "--quick") Object.assign(options, { rounds: 1, durationMs: 200 });
    else if (argv[i] === "--rounds") options.rounds = Number(argv[++i]);
    else if (argv[i] === "--duration") options.durationMs = Number(argv[++i]) * 1000;
    else throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
  }
  if (!(options.rounds >= 1) || !(options.durationMs > 0))
    throw new Error("--rounds and --duration must be positive");
  return options;
}

/** Wrong answers by contender; the first few are kept verbatim for the report. */
const wrong = new Map<string, { count: number; samples: string[] }>();

function mismatch(contender: string, i: number, got: unknown): void {
  const seen = wrong.get(contender) ?? { count: 0, samples: [] };
  seen.count++;
  if (seen.samples.length < 3) {
    const shown = got instanceof Promise ? "a promise (not a hit)" : String(got);
    seen.samples.push(`${KEYS[i]}: got ${shown}, expected ${EXPECTED[i]}`);
  }
  wrong.set(contender, seen);
}

/** Checks a batch of answers for KEYS[0..]. */
function checkAll(contender: string, answers: boolean[]): void {
  for (let i = 0; i < answers.length; i++) if (answers[i] !== EXPECTED[i]) mismatch(contender, i, answers[i]);
}

/** Runs `batch` (which performs `size` lookups) repeatedly for `durationMs`; answers lookups/s. */
async function measure(durationMs: number, size: number, batch: () => Promise<void> | void): Promise<number> {
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const pending = batch();
    if (pending !== undefined) await pending;
    done += size;
  }
  return done / ((performance.now() - started) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { rounds, durationMs } = options;
  const answers = new Map(KEYS.map((k, i) => [k, EXPECTED[i] as boolean]));

  // Hits: a warm cache against a plain Map holding the same answers.
  const warm = new CachedLookup<boolean>(
    { positiveTtlMs: 3_600_000, negativeTtlMs: 3_600_000, timeoutMs: 2000, maxEntries: 100_000 },
    (found) => !found,
  );
  checkAll(
    "warming the cache",
    await Promise.all(KEYS.map((key) => warm.lookup(key, async () => answers.get(key) ?? false))),
  );

  // Misses: no TTL, so every lookup goes to the "source", which answers at once (a resolved promise).
  const uncached = new CachedLookup<boolean>(
    { positiveTtlMs: 0, negativeTtlMs: 0, timeoutMs: 2000, maxEntries: 1 },
    (found) => !found,
  );
  const source = (key: string) => Promise.resolve(answers.get(key) ?? false);

  // Each contender compares every answer with EXPECTED the same way, so the check costs both alike.
  const results: Record<string, number[]> = { map: [], hits: [], direct: [], wrapped: [] };
  for (let round = 0; round < rounds; round++) {
    results.map?.push(
      await measure(durationMs, KEYS.length, () => {
        for (let i = 0; i < KEYS.length; i++) {
          const got = answers.get(KEYS[i] as string);
          if (got !== EXPECTED[i]) mismatch("plain Map get", i, got);
        }
      }),
    );
    results.hits?.push(
      await measure(durationMs, KEYS.length, () => {
        for (let i = 0; i < KEYS.length; i++) {
          const key = KEYS[i] as string;
          const got = warm.lookup(key, () => source(key));
          if (got !== EXPECTED[i]) mismatch("CachedLookup hit", i, got);
        }
      }),
    );
    results.direct?.push(
      await measure(durationMs, 1000, async () => {
        checkAll("source called directly", await Promise.all(KEYS.slice(0, 1000).map((key) => source(key))));
      }),
    );
    results.wrapped?.push(
      await measure(durationMs, 1000, async () => {
        checkAll(
          "CachedLookup miss",
          await Promise.all(KEYS.slice(0, 1000).map((key) => uncached.lookup(key, () => source(key)))),
        );
      }),
    );
  }

  const rows: Row[] = [
    { name: "plain Map get (baseline for hits)", perSecond: median(results.map ?? []) },
    { name: "CachedLookup hit", perSecond: median(results.hits ?? []) },
    { name: "source called directly (baseline for misses)", perSecond: median(results.direct ?? []) },
    { name: "CachedLookup miss (dedupe, deadline, counters)", perSecond: median(results.wrapped ?? []) },
  ];
  const hitCost = 1e9 / (rows[1]?.perSecond ?? 1) - 1e9 / (rows[0]?.perSecond ?? 1);
  const missCost = 1e9 / (rows[3]?.perSecond ?? 1) - 1e9 / (rows[2]?.perSecond ?? 1);
  console.log(
    `lookup cache benchmark (node ${process.version}), median of ${rounds} rounds of ${durationMs} ms\n`,
  );
  console.log("| contender | lookups/s | ns/lookup |");
  console.log("| --- | ---: | ---: |");
  for (const row of rows) {
    console.log(
      `| ${row.name} | ${Math.round(row.perSecond).toLocaleString("en")} | ${(1e9 / row.perSecond).toFixed(0)} |`,
    );
  }
  const hitRatio = (rows[0]?.perSecond ?? 0) / (rows[1]?.perSecond ?? 1);
  const missRatio = (rows[2]?.perSecond ?? 0) / (rows[3]?.perSecond ?? 1);
  console.log(
    `\nhit: ${hitRatio.toFixed(1)}x the time of a plain Map get (+${hitCost.toFixed(0)} ns/lookup); ` +
      `miss: the wrapper adds ${missCost.toFixed(0)} ns/lookup (${missRatio.toFixed(2)}x the direct call)`,
  );
  if (wrong.size === 0) return 0;
  let total = 0;
  for (const [contender, seen] of wrong) {
    total += seen.count;
    console.log(`MISMATCH ${contender}: ${seen.count} wrong`);
    for (const text of seen.samples) console.log(`  ${text}`);
  }
  console.log(`\nBENCHMARK FAILED: ${total} wrong answer(s)`);
  return 1;
}

process.exitCode = await main();
