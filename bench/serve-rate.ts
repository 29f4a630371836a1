/**
 * `npm run bench:serve-rate` (= `npm run bench:serve -- --rate`): `filterctl serve` with a rate()
 * rule at RCPT, with `state: memory` and with `state: redis` (a private redis-server started by
 * the bench), against the C libmilter quota baseline in the same run, with the same sessions and
 * load loop as bench/serve.ts.
 *
 * The servers, each in its own process:
 *
 *   C libmilter            the Maildir++ quota at RCPT (bench/baselines/quota-milter.c)
 *   serve, quota only      the same quota rule: what serve costs without state (the reference)
 *   serve, rate + quota    `if rate(from, 1h) > 20 then tempfail 450 4.7.1 ...` before the quota
 *                          rule, on the memory store, then on the Redis store
 *
 * so the rate rows do the C baseline's work and a rate limit on top; the ratio is sessions/s
 * ours / C at each concurrency, and "quota only" shows what the rate() call adds.
 *
 * Senders: one session in ten (n % 10 == 3) comes from one of 10 "hot" senders; every other
 * session from a sender of its own. Before the load, each hot sender sends 10 sessions (20
 * recipients: all accepted, count 1..20) and an 11th (both refused, 21 and 22), so the limit is
 * checked to be exact; from then on every RCPT of a hot sender gets the 450 and every other
 * session sees its own sender once or twice. Every reply is checked (a mismatch exits 1), and a
 * Redis slower than `state.timeout` would show as a mismatch (on_error continue lets it through).
 *
 *   npm run bench:serve-rate [-- --quick]
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RedisServer } from "../test/support/redis.js";
import {
  buildC,
  isOver,
  load,
  makeFixture,
  OVER_TEXT,
  percentile,
  quotaPlan,
  type Result,
  rssMb,
  type Server,
  type SessionPlan,
  session,
  startC,
  startServe,
} from "./serve.js";

const LIMIT = 20;
const HOT_SENDERS = 10;
const RATE_TEXT = "450 4.7.1 Sending rate exceeded, try again later";

function hotSender(k: number): string {
  return `<hot${k}@sender.example>`;
}

/** Sessions with their own sender, except one in ten from a hot sender (over its limit). */
const ratePlan: SessionPlan = {
  sender: (n) => (n % 10 === 3 ? hotSender(Math.floor(n / 10) % HOT_SENDERS) : `<s${n}@sender.example>`),
  expect: (n, i) => (n % 10 === 3 ? RATE_TEXT : isOver(i) ? OVER_TEXT : "continue"),
};

type StateKind = "none" | "memory" | "redis";

function rules(root: string, state: StateKind, redisUrl: string): string {
  const stateBlock =
    state === "redis"
      ? `state:\n  type: redis\n  url: "${redisUrl}"\n  key_prefix: "bench:"\n  timeout: 1s\n  on_error: continue\n`
      : state === "memory"
        ? "state:\n  type: memory\n"
        : "";
  const rateRule =
    state === "none"
      ? ""
      : `  - name: sender-rate
    on: rcpt
    if: rate(from, 1h) > ${LIMIT}
    then: 'tempfail ${RATE_TEXT.replace(/^(\d+) (\S+) (.*)$/, '$1 $2 "$3"')}'
`;
  return `listen: "inet:127.0.0.1:8890"
${stateBlock}sources:
  mailboxes:
    type: maildir
    path: "${root}/{user}"
rules:
${rateRule}  - name: quota
    on: rcpt
    if: quota(rcpt, mailboxes) over
    then: 'tempfail ${OVER_TEXT.replace(/^(\d+) (\S+) (.*)$/, '$1 $2 "$3"')}'
`;
}

/** Each hot sender: LIMIT recipients accepted, then refused (mailboxes 2 and 3 are under quota). */
async function prime(port: number): Promise<string[]> {
  const problems: string[] = [];
  for (let k = 0; k < HOT_SENDERS; k++) {
    for (let s = 0; s <= LIMIT / 2; s++) {
      const over = s === LIMIT / 2;
      const plan: SessionPlan = { sender: () => hotSender(k), expect: () => (over ? RATE_TEXT : "continue") };
      problems.push(...(await session(port, 1, plan)).map((p) => `priming ${hotSender(k)} #${s}: ${p}`));
    }
  }
  return problems;
}

interface Contender {
  server: Server;
  state: StateKind;
  plan: SessionPlan;
}

async function startAll(root: string, redis: RedisServer): Promise<Contender[]> {
  const contenders: Contender[] = [{ server: await startC(root), state: "none", plan: quotaPlan(OVER_TEXT) }];
  const names: Record<StateKind, string> = {
    none: "filterctl serve, quota only",
    memory: "filterctl serve, rate + quota",
    redis: "filterctl serve, rate + quota",
  };
  for (const state of ["none", "memory", "redis"] as const) {
    const configPath = join(root, `rules-${state}.yaml`);
    writeFileSync(configPath, rules(root, state, redis.url));
    const server = await startServe(configPath, names[state]);
    if (state === "redis") server.helperPid = redis.pid;
    contenders.push({ server, state, plan: state === "none" ? quotaPlan(OVER_TEXT) : ratePlan });
  }
  return contenders;
}

function printResults(results: Result[], contenders: Contender[], concurrencies: number[]): boolean {
  console.log(
    "| implementation | state | conc | sessions/s | p50 ms | p99 ms | server CPU ms/session | redis CPU ms/session | ratio sessions/s (ours / C) |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  let failed = false;
  for (const concurrency of concurrencies) {
    const row = results.filter((r) => r.concurrency === concurrency);
    const cRate = (row[0]?.sessions ?? 0) / (row[0]?.seconds ?? 1);
    row.forEach((r, i) => {
      const rate = r.sessions / r.seconds;
      const state = contenders[i]?.state ?? "none";
      const perSession = (ms: number) => (ms / Math.max(1, r.sessions)).toFixed(3);
      console.log(
        `| ${r.name} | ${state === "none" ? "-" : state} | ${concurrency} | ${rate.toFixed(0)} | ${percentile(r.latencies, 50).toFixed(2)} | ${percentile(r.latencies, 99).toFixed(2)} | ${perSession(r.cpuMs)} | ${state === "redis" ? perSession(r.helperCpuMs) : ""} | ${i === 0 ? "" : (rate / cRate).toFixed(2)} |`,
      );
      if (r.mismatches.length > 0) {
        failed = true;
        console.log(`  ${r.mismatches.length} mismatch(es), e.g. ${r.mismatches.slice(0, 3).join("; ")}`);
      }
    });
  }
  return failed;
}

export async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const warmupMs = quick ? 500 : 1500;
  const durationMs = quick ? 2000 : 6000;
  const concurrencies = [8, 32];
  buildC();
  const root = makeFixture();
  const redis = await RedisServer.start();
  const contenders: Contender[] = [];
  try {
    contenders.push(...(await startAll(root, redis)));
    const primeProblems: string[] = [];
    for (const { server, state } of contenders)
      if (state !== "none") primeProblems.push(...(await prime(server.port)));
    const results: Result[] = [];
    for (const concurrency of concurrencies)
      for (const { server, plan } of contenders)
        results.push(await load(server, concurrency, warmupMs, durationMs, plan));

    console.log(
      `filterctl serve with rate(from, 1h) > ${LIMIT} at RCPT (memory state; Redis state on a private redis-server) vs C libmilter (quota only)`,
    );
    console.log(
      `1000 mailboxes, 10% over quota; 1 session in 10 from a sender over its rate; ${quick ? "quick run" : "full run"}; node ${process.version}\n`,
    );
    let failed = printResults(results, contenders, concurrencies);
    const rss = contenders
      .filter((c) => c.state !== "none" || c.server.name.startsWith("filterctl"))
      .map(
        (c) =>
          `${c.state === "none" ? "quota only" : c.state} ${rssMb(c.server.child.pid as number).toFixed(1)} MB`,
      );
    const keys = (await redis.command("DBSIZE")).replace(/^:/, "");
    console.log(`\nafter the run: serve RSS ${rss.join(", ")}; Redis holds ${keys} keys`);
    if (primeProblems.length > 0) {
      failed = true;
      console.log(
        `priming: ${primeProblems.length} mismatch(es), e.g. ${primeProblems.slice(0, 3).join("; ")}`,
      );
    }
    if (failed) {
      console.log("BENCHMARK FAILED: some replies did not match");
      process.exitCode = 1;
    }
  } finally {
    for (const { server } of contenders) server.child.kill("SIGTERM");
    await redis.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}
