import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, SourceFile } from "../src/common/diagnostics.js";
import { parseConfig } from "../src/config/load.js";
import { compileConfig } from "../src/dsl/compile.js";
import { createMemoryStore } from "../src/engine/state/memory.js";
import { stateLookups } from "../src/engine/state/open.js";
import { createRedisStore } from "../src/engine/state/redis.js";
import type { Lookups } from "../src/runtime/lookups.js";
import type { Ruleset, StageOutcome } from "../src/runtime/ruleset.js";
import type { GreylistSettings, StateStore } from "../src/runtime/state.js";
import { newTransaction, type Transaction } from "../src/runtime/transaction.js";
import { SOURCE_CATALOG } from "../src/sources/catalog.js";
import { RedisServer } from "../test/support/redis.js";
import { provideSchema } from "./in-process-schema.js";

const here = dirname(fileURLToPath(import.meta.url));
const _repo = resolve(here, "..", "..");

const RATE_LIMIT = 3;
const RULES = {
  plain: 'on rcpt: if rcpt.domain == "example.net" then reject',
  rate: `on rcpt: if rate(from, 1h) > ${RATE_LIMIT} then tempfail`,
  greylist: "on rcpt: if greylist(client.ip, from, rcpt) then tempfail",
} as const;
type Kind = keyof typeof RULES;
const KINDS = Object.keys(RULES) as Kind[];

/** Senders (and triplets: lcm(1000, 5, 200) = 1000) the evaluations cycle through. */
const SENDERS = 1000;
const RCPTS = Array.from({ length: 5 }, (_, i) => `user${i}@example.org`);
const SENDER_NAMES = Array.from({ length: SENDERS }, (_, i) => `sender${i}@example.com`);
/** Delay 0: the first sight of a triplet is deferred, every later one passes (and is refreshed). */
const GREYLIST: GreylistSettings = { delayMs: 0, retryWindowMs: 172_800_000, passTtlMs: 3_024_000_000 };

/** One row of the table: a rule on a store, with so many evaluations in flight. */
interface Row {
  kind: Kind;
  state: "-" | "memory" | "redis";
  inFlight: number;
  rates: number[];
}

function compile(rule: string): Ruleset {
  const file = new SourceFile("bench.yaml", `rules:\n  - ${JSON.stringify(rule)}\n`);
  const parsed = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
  if (parsed.config === undefined) throw new Error(parsed.diagnostics.map(formatDiagnostic).join("\n"));
  const compiled = compileConfig(parsed.config);
  if (compiled.ruleset === undefined) throw new Error(compiled.diagnostics.map(formatDiagnostic).join("\n"));
  return compiled.ruleset;
}

function lookups(store: StateStore): Lookups {
  const none = () => {
    throw new Error("no source in this bench");
  };
  return {
    has: none,
    get: none,
    quota: none,
    dnsbl: none,
    zoneOf: () => "",
    state: stateLookups(store, GREYLIST, { record: true }),
  };
}

/** Sets evaluation n's client, sender and recipient. */
function fill(tx: Transaction, n: number): void {
  tx.from = SENDER_NAMES[n % SENDERS] as string;
  tx.rcpt = RCPTS[n % RCPTS.length] as string;
  tx.client.ip = `192.0.2.${n % 200}`;
}

function newTx(): Transaction {
  const tx = newTransaction();
  tx.client = { ip: "192.0.2.1", name: "[192.0.2.1]", port: 25 };
  return tx;
}

/** The decision evaluation n must take on an empty store (see the header). */
function expected(kind: Kind, n: number): string {
  if (kind === "rate") return Math.floor(n / SENDERS) + 1 > RATE_LIMIT ? "tempfail" : "none";
  if (kind === "greylist") return n < SENDERS ? "tempfail" : "none";
  return "none";
}

/** Wrong answers: all counted, the first few kept (a broken store would give millions). */
class Mismatches {
  count = 0;
  readonly examples: string[] = [];

  /** Checks evaluation n's outcome against `expected`. */
  check(where: string, kind: Kind, n: number, outcome: StageOutcome): void {
    const got = outcome.decision?.action ?? "none";
    const want = expected(kind, n);
    if (got === want) return;
    this.count++;
    if (this.examples.length < 10)
      this.examples.push(`${where}: ${kind} evaluation ${n}: got ${got}, expected ${want}`);
  }
}

/** Evaluations per second of `ruleset` over `ms` on the memory store (synchronous). */
function measureMemory(kind: Kind, ruleset: Ruleset, ms: number, mismatches: Mismatches): number {
  const store = createMemoryStore();
  const impl = lookups(store);
  const tx = newTx();
  let n = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms) {
    for (let i = 0; i < 1000; i++, n++) {
      fill(tx, n);
      const outcome = ruleset.evaluate("rcpt", tx, impl);
      if (outcome instanceof Promise) throw new Error("the memory state answers synchronously");
      mismatches.check("memory", kind, n, outcome);
    }
    now = performance.now();
  }
  void store.close();
  return (n / (now - started)) * 1000;
}

/**
 * Evaluations per second over `ms` on the Redis store, `inFlight` at a time. Evaluation n is
 * started (and its EVALSHA written, in order on the one connection) before n + 1, and a sender
 * comes back only 1000 evaluations later, so each answer is known whatever the interleaving.
 */
async function measureRedis(
  kind: Kind,
  ruleset: Ruleset,
  store: StateStore,
  inFlight: number,
  ms: number,
  mismatches: Mismatches,
): Promise<number> {
  const impl = lookups(store);
  let next = 0;
  let done = 0;
  const started = performance.now();
  const end = started + ms;
  const worker = async () => {
    const tx = newTx();
    while (performance.now() < end) {
      const n = next++;
      fill(tx, n);
      const outcome = await ruleset.evaluate("rcpt", tx, impl);
      mismatches.check(`redis, ${inFlight} in flight`, kind, n, outcome);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return (done / (performance.now() - started)) * 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function rowsFor(redis: boolean): Row[] {
  const rows: Row[] = [{ kind: "plain", state: "-", inFlight: 1, rates: [] }];
  for (const kind of ["rate", "greylist"] as const) {
    rows.push({ kind, state: "memory", inFlight: 1, rates: [] });
    if (redis) {
      rows.push({ kind, state: "redis", inFlight: 1, rates: [] });
      rows.push({ kind, state: "redis", inFlight: 32, rates: [] });
    }
  }
  return rows;
}

interface Run {
  rounds: number;
  ms: number;
  redisMs: number;
  redis: boolean;
}

/** Interleaved rounds, each row on an empty store: drift in the machine hits all alike. */
async function measureAll(run: Run, rows: Row[], mismatches: Mismatches): Promise<void> {
  const rulesets = Object.fromEntries(KINDS.map((k) => [k, compile(RULES[k])])) as Record<Kind, Ruleset>;
  const server = run.redis ? await RedisServer.start() : undefined;
  const logger = { warn: () => {}, info: () => {} };
  const store =
    server === undefined
      ? undefined
      : createRedisStore({ urls: [server.url], keyPrefix: "bench:", timeoutMs: 2000 }, logger);
  try {
    if (store !== undefined && server !== undefined) {
      // Warm-up: the connection, the scripts loaded (EVAL once, EVALSHA after), the JIT.
      for (const kind of ["rate", "greylist"] as const)
        await measureRedis(kind, rulesets[kind], store, 8, 300, mismatches);
    }
    for (let round = 0; round < run.rounds; round++) {
      for (const row of rows) {
        const ruleset = rulesets[row.kind];
        if (row.state !== "redis") {
          row.rates.push(measureMemory(row.kind, ruleset, run.ms, mismatches));
          continue;
        }
        if ((await server?.command("FLUSHDB")) !== "+OK") throw new Error("FLUSHDB failed");
        row.rates.push(
          await measureRedis(row.kind, ruleset, store as StateStore, row.inFlight, run.redisMs, mismatches),
        );
      }
    }
  } finally {
    await store?.close();
    await server?.destroy();
  }
}

function printTable(run: Run, rows: Row[]): void {
  const redisNote = run.redis ? `, redis ${run.redisMs} ms each (private redis-server on 127.0.0.1)` : "";
  process.stdout.write(
    `${run.rounds} rounds of ${run.ms} ms each for memory${redisNote}; median evaluations/s; node ${process.version}\n\n`,
  );
  const header = ["rule", "state", "in flight", "evals/s", "time vs plain"];
  const plain = median(rows[0]?.rates ?? [1]);
  const lines = rows.map((row) => {
    const rate = median(row.rates);
    return [
      row.kind,
      row.state,
      row.state === "redis" ? String(row.inFlight) : "-",
      Math.round(rate).toLocaleString("en"),
      `${(plain / rate).toFixed(1)}x`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  for (const line of [header, ...lines])
    process.stdout.write(
      `${line.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ")}\n`,
    );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const roundsAt = argv.indexOf("--rounds");
  const run: Run = {
    rounds: roundsAt >= 0 ? Number(argv[roundsAt + 1]) : quick ? 3 : 5,
    ms: quick ? 300 : 1000,
    redisMs: quick ? 500 : 2000,
    redis: !argv.includes("--no-redis"),
  };
  provideSchema();
  const rows = rowsFor(run.redis);
  const mismatches = new Mismatches();
  await measureAll(run, rows, mismatches);
  printTable(run, rows);
  if (mismatches.count > 0) {
    process.stdout.write(`\n${mismatches.count} wrong answer(s), the first:\n`);
    for (const m of mismatches.examples) process.stdout.write(`MISMATCH ${m}\n`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
