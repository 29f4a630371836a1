/**
 * `npm run bench:state-redis`: rate() and greylist() calls per second on the Redis store
 * (src/engine/state/redis.ts) against a private redis-server (test/support/redis.ts, 127.0.0.1),
 * one call at a time (sequential: the round-trip latency) and with 32 calls in flight (what
 * concurrent milter connections do). Keys cycle through 1000 values, as many senders would.
 *
 * Reported: calls/s, latency p50/p99 per call, and CPU ms per 1000 calls for this process and for
 * redis-server (from /proc). `measureRedisState()` is exported; bench/state.ts times whole rule
 * evaluations on the same store instead (the compiled rule, the key, the decision).
 *
 * Options: --quick (1 s per row, default 3 s), --help.
 */
import { fileURLToPath } from "node:url";
import { createRedisStore } from "../src/engine/state/redis.js";
import type { GreylistSettings, StateStore } from "../src/runtime/state.js";
import { RedisServer } from "../test/support/redis.js";
import { cpuMs } from "./proc.js";

export interface RedisStateRow {
  call: "rate" | "greylist";
  concurrency: number;
  calls: number;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ourCpuMsPer1000: number;
  redisCpuMsPer1000: number;
}

const GREYLIST: GreylistSettings = { delayMs: 300_000, retryWindowMs: 172_800_000, passTtlMs: 3_024_000_000 };
const KEYS = 1000;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

async function measure(
  store: StateStore,
  redisPid: number,
  call: RedisStateRow["call"],
  concurrency: number,
  durationMs: number,
): Promise<RedisStateRow> {
  let next = 0;
  const latencies: number[] = [];
  const one = async () => {
    const key = `sender-${next++ % KEYS}@example.org`;
    const started = performance.now();
    if (call === "rate") await store.rate(key, 3_600_000, { record: true });
    else await store.greylist(key, GREYLIST, { record: true });
    latencies.push(performance.now() - started);
  };
  const cpu0 = ownCpuMs();
  const redis0 = cpuMs(redisPid);
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const elapsed = performance.now() - started;
  const calls = latencies.length;
  latencies.sort((a, b) => a - b);
  return {
    call,
    concurrency,
    calls,
    callsPerSecond: Math.round((calls * 1000) / elapsed),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ourCpuMsPer1000: ((ownCpuMs() - cpu0) * 1000) / calls,
    redisCpuMsPer1000: ((cpuMs(redisPid) - redis0) * 1000) / calls,
  };
}

/** Starts a private redis-server, measures each call sequentially and 32 in flight, stops it. */
export async function measureRedisState(durationMs = 3000): Promise<RedisStateRow[]> {
  const server = await RedisServer.start();
  const logger = { warn: () => {}, info: () => {} };
  const store = createRedisStore({ urls: [server.url], keyPrefix: "bench:", timeoutMs: 1000 }, logger);
  const rows: RedisStateRow[] = [];
  try {
    // Warm-up: the connection, the scripts loaded (EVAL once, EVALSHA after), the JIT.
    await measure(store, server.pid, "rate", 8, 300);
    await measure(store, server.pid, "greylist", 8, 300);
    for (const call of ["rate", "greylist"] as const)
      for (const concurrency of [1, 32])
        rows.push(await measure(store, server.pid, call, concurrency, durationMs));
  } finally {
    await store.close();
    await server.destroy();
  }
  return rows;
}

function printRows(rows: RedisStateRow[]): void {
  const header = ["call", "in flight", "calls/s", "p50 ms", "p99 ms", "our CPU ms/1000", "redis CPU ms/1000"];
  const lines = rows.map((r) => [
    `${r.call}()`,
    String(r.concurrency),
    String(r.callsPerSecond),
    r.p50Ms.toFixed(3),
    r.p99Ms.toFixed(3),
    r.ourCpuMsPer1000.toFixed(1),
    r.redisCpuMsPer1000.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  for (const line of [header, ...lines])
    console.log(line.map((cell, i) => cell.padStart(widths[i] ?? 0)).join("  "));
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log("npm run bench:state-redis -- [--quick]\n  --quick  1 s per row (default 3 s)");
    return;
  }
  const rows = await measureRedisState(argv.includes("--quick") ? 1000 : 3000);
  console.log(`Redis state store, node ${process.version}, private redis-server on 127.0.0.1`);
  printRows(rows);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
