/**
 * The lookup cache's cost: lookups per second answered from the cache (hits) against the same
 * answers read from a plain Map, and the wrapper's overhead per lookup on the miss path
 * (in-flight de-duplication, deadline timer, counters) against calling the source directly.
 * Both contenders run in this process, alternating, in the same run.
 *
 *   npm run bench:cache [-- --rounds N --duration S]
 */
import { CachedLookup } from "../src/sources/cache.js";

interface Row {
  name: string;
  perSecond: number;
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user${i}@example.org`);

function parseOptions(argv: string[]): { rounds: number; durationMs: number } {
  const options = { rounds: 5, durationMs: 500 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--rounds") options.rounds = Number(argv[++i]);
    else if (argv[i] === "--duration") options.durationMs = Number(argv[++i]) * 1000;
  }
  return options;
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

async function main(): Promise<void> {
  const { rounds, durationMs } = parseOptions(process.argv.slice(2));
  const answers = new Map(KEYS.map((k, i) => [k, i % 10 === 0]));

  // Hits: a warm cache against a plain Map holding the same answers.
  const warm = new CachedLookup<boolean>(
    { positiveTtlMs: 3_600_000, negativeTtlMs: 3_600_000, timeoutMs: 2000, maxEntries: 100_000 },
    (found) => !found,
  );
  for (const key of KEYS) await warm.lookup(key, async () => answers.get(key) ?? false);

  // Misses: no TTL, so every lookup goes to the "source", which answers at once (a resolved promise).
  const uncached = new CachedLookup<boolean>(
    { positiveTtlMs: 0, negativeTtlMs: 0, timeoutMs: 2000, maxEntries: 1 },
    (found) => !found,
  );
  const source = (key: string) => Promise.resolve(answers.get(key) ?? false);

  const results: Record<string, number[]> = { map: [], hits: [], direct: [], wrapped: [] };
  let sink = 0;
  for (let round = 0; round < rounds; round++) {
    results.map?.push(
      await measure(durationMs, KEYS.length, () => {
        for (const key of KEYS) if (answers.get(key)) sink++;
      }),
    );
    results.hits?.push(
      await measure(durationMs, KEYS.length, () => {
        for (const key of KEYS) if (warm.lookup(key, () => source(key)) === true) sink++;
      }),
    );
    results.direct?.push(
      await measure(durationMs, 1000, async () => {
        const all = await Promise.all(KEYS.slice(0, 1000).map((key) => source(key)));
        sink += all.length;
      }),
    );
    results.wrapped?.push(
      await measure(durationMs, 1000, async () => {
        const all = await Promise.all(
          KEYS.slice(0, 1000).map((key) => uncached.lookup(key, () => source(key))),
        );
        sink += all.length;
      }),
    );
  }
  if (sink < 0) console.log(sink);

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
}

await main();
