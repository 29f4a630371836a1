/**
 * `npm run bench:state`: what rate() and greylist() cost with `state: memory`.
 *
 * Evaluations per second of one rule at RCPT, compiled as `serve` compiles it, on the same
 * transaction (client, sender and recipient vary over a few thousand keys so the store holds
 * many keys, as in production):
 *
 *   plain     on rcpt: if rcpt.domain == "example.net" then reject        (no state)
 *   rate      on rcpt: if rate(from, 1h) > 1000000 then tempfail          (counts every call)
 *   greylist  on rcpt: if greylist(client.ip, from, rcpt) then tempfail   (records every sight)
 *
 * and each state rule's ratio to the plain one. The memory store answers synchronously, so this
 * is the price of the key, the store and its bookkeeping. The Redis column is for the lead to add
 * (src/engine/state/redis.ts is written on its own branch).
 *
 * Options: --quick (shorter rounds), --rounds N (default 5).
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, SourceFile } from "../src/common/diagnostics.js";
import { parseConfig } from "../src/config/load.js";
import { compileConfig } from "../src/dsl/compile.js";
import { createMemoryStore } from "../src/engine/state/memory.js";
import { stateLookups } from "../src/engine/state/open.js";
import type { Lookups } from "../src/runtime/lookups.js";
import type { Ruleset } from "../src/runtime/ruleset.js";
import { newTransaction } from "../src/runtime/transaction.js";
import { SOURCE_CATALOG } from "../src/sources/catalog.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");

/** src/config/schema.ts reads ../../schema/ from its module: dist-bench/schema/. */
function provideSchema(): void {
  const target = join(repo, "dist-bench", "schema", "rules.schema.json");
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(repo, "schema", "rules.schema.json"), target);
}

const RULES = {
  plain: 'on rcpt: if rcpt.domain == "example.net" then reject',
  rate: "on rcpt: if rate(from, 1h) > 1000000 then tempfail",
  greylist: "on rcpt: if greylist(client.ip, from, rcpt) then tempfail",
} as const;
type Kind = keyof typeof RULES;

function compile(rule: string): Ruleset {
  const file = new SourceFile("bench.yaml", `rules:\n  - ${JSON.stringify(rule)}\n`);
  const parsed = parseConfig(file, { sourceTypes: SOURCE_CATALOG });
  if (parsed.config === undefined) throw new Error(parsed.diagnostics.map(formatDiagnostic).join("\n"));
  const compiled = compileConfig(parsed.config);
  if (compiled.ruleset === undefined) throw new Error(compiled.diagnostics.map(formatDiagnostic).join("\n"));
  return compiled.ruleset;
}

function lookups(): Lookups {
  const store = createMemoryStore();
  const settings = { delayMs: 300_000, retryWindowMs: 172_800_000, passTtlMs: 3_024_000_000 };
  const none = () => {
    throw new Error("no source in this bench");
  };
  return {
    has: none,
    get: none,
    quota: none,
    dnsbl: none,
    zoneOf: () => "",
    state: stateLookups(store, settings, { record: true }),
  };
}

/** Evaluations per second of `ruleset` over `ms` (synchronous: the memory store never waits). */
function measure(ruleset: Ruleset, impl: Lookups, ms: number): number {
  const tx = newTransaction();
  tx.client = { ip: "192.0.2.1", name: "[192.0.2.1]", port: 25 };
  const senders = Array.from({ length: 1000 }, (_, i) => `sender${i}@example.com`);
  const rcpts = Array.from({ length: 5 }, (_, i) => `user${i}@example.org`);
  let n = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms) {
    for (let i = 0; i < 1000; i++, n++) {
      tx.from = senders[n % senders.length] as string;
      tx.rcpt = rcpts[n % rcpts.length] as string;
      tx.client.ip = `192.0.2.${n % 200}`;
      const outcome = ruleset.evaluate("rcpt", tx, impl);
      if (outcome instanceof Promise) throw new Error("the memory state answers synchronously");
    }
    now = performance.now();
  }
  return (n / (now - started)) * 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function main(): void {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const roundsAt = argv.indexOf("--rounds");
  const rounds = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : quick ? 3 : 5;
  const ms = quick ? 300 : 1000;
  provideSchema();
  const rulesets = Object.fromEntries(Object.entries(RULES).map(([k, r]) => [k, compile(r)])) as Record<
    Kind,
    Ruleset
  >;
  const results: Record<Kind, number[]> = { plain: [], rate: [], greylist: [] };
  // Interleaved rounds, each kind with a fresh store: drift in the machine hits all alike.
  for (let round = 0; round < rounds; round++) {
    for (const kind of Object.keys(RULES) as Kind[])
      results[kind].push(measure(rulesets[kind], lookups(), ms));
  }
  const plain = median(results.plain);
  process.stdout.write(`state: memory; ${rounds} rounds of ${ms} ms each, median evaluations/s\n\n`);
  process.stdout.write(`${"rule".padEnd(10)}${"evals/s".padStart(14)}${"time vs plain".padStart(15)}\n`);
  for (const kind of Object.keys(RULES) as Kind[]) {
    const rate = median(results[kind]);
    const ratio = `${(plain / rate).toFixed(1)}x`;
    process.stdout.write(
      `${kind.padEnd(10)}${Math.round(rate).toLocaleString("en").padStart(14)}${ratio.padStart(15)}\n`,
    );
  }
}

main();
