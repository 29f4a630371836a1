/**
 * Soak: `filterctl serve` with the three policies (DNSBL via rbldnsd, verify-from via slapd,
 * Maildir++ quota) under a steady mixed load for 30 minutes, the rules file rewritten (a reload)
 * every minute; the server's RSS is printed each minute. Memory that keeps growing under steady
 * traffic and reloads is a leak: the run fails when RSS grows more than 10 % over the last two
 * thirds of the run (the last 20 minutes of 30), or when any reply is wrong.
 *
 * Steady means a fixed rate: sessions start on a clock (default 200 a second, `--rate N`), not as
 * fast as the server answers. Flat out, the generator's tens of thousands of TIME_WAIT sockets
 * slowed its own connect() within a minute (sessions/s fell from ~1000 to ~450 while the server's
 * CPU per session stayed flat), so the load was not steady; a fixed rate also leaves the other
 * core's time to whatever else runs. If the server falls behind, at most 64 sessions are in
 * flight and the sessions not started are counted ("behind").
 *
 * Mixed sessions, in every 20: one from a DNSBL-listed client (refused at CONNECT), one from an
 * unknown sender in our domain (refused at MAIL), the rest accepted, with 10 % of their
 * recipients over quota (refused at RCPT).
 *
 *   npm run bench:soak [-- --minutes N] [-- --rate N] [-- --quick] [-- --no-reload]
 *   (--quick: 1 minute, a reload every 10 s; --no-reload: the same load, the file left alone)
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startRbldnsd } from "../test/support/rbldnsd.js";
import { Slapd } from "../test/support/slapd.js";
import {
  freshenFixture,
  makeFixture,
  OVER_TEXT,
  percentile,
  quotaPlan,
  rssMb,
  rules,
  type Server,
  type SessionPlan,
  session,
  startServe,
  treeCpuMs,
} from "./serve.js";

const MAX_IN_FLIGHT = 64;
const GROWTH_LIMIT = 0.1;

interface Options {
  minutes: number;
  intervalMs: number;
  rate: number;
  reload: boolean;
}

function options(): Options {
  const quick = process.argv.includes("--quick");
  const at = process.argv.indexOf("--minutes");
  const minutes = at > 0 ? Number(process.argv[at + 1]) : quick ? 1 : 30;
  if (!(minutes > 0)) throw new Error("--minutes wants a positive number");
  const r = process.argv.indexOf("--rate");
  const rate = r > 0 ? Number(process.argv[r + 1]) : 200;
  if (!(rate > 0)) throw new Error("--rate wants a positive number of sessions per second");
  return {
    minutes,
    intervalMs: quick ? 10_000 : 60_000,
    rate,
    reload: !process.argv.includes("--no-reload"),
  };
}

/** Every 20 sessions: one DNSBL-listed client, one unknown sender, the rest accepted. */
export function mixedPlan(): SessionPlan {
  const quota = quotaPlan(OVER_TEXT);
  const unknown = "nobody@example.org";
  return {
    sender: (n) => (n % 20 === 13 ? `<${unknown}>` : quota.sender(n)),
    expect: quota.expect,
    client: (n) => (n % 20 === 7 ? LISTED : "198.51.100.10"),
    refusal: (n) => {
      if (n % 20 === 7) return { stage: "connect", text: `554 5.7.1 ${LISTED} is listed` };
      if (n % 20 === 13)
        return { stage: "mail", text: `550 5.7.1 Reject: your From address ${unknown} does not exist.` };
      return undefined;
    },
  };
}

/** Listed by the private rbldnsd's healthy zone (test/support/rbldnsd.ts). */
const LISTED = "127.0.0.5";

interface Paced {
  sessions: number;
  behind: number;
  latencies: number[];
  cpuMs: number;
  mismatches: string[];
}

let nextSession = 0;

/** Starts sessions on a clock at `rate` a second for `durationMs`; waits for the last ones. */
async function paced(server: Server, rate: number, durationMs: number, plan: SessionPlan): Promise<Paced> {
  const out: Paced = { sessions: 0, behind: 0, latencies: [], cpuMs: 0, mismatches: [] };
  const pid = server.child.pid as number;
  const cpuBefore = treeCpuMs(pid);
  const running = new Set<Promise<void>>();
  const started = performance.now();
  let due = 0;
  for (let now = started; now - started < durationMs; now = performance.now()) {
    const target = Math.floor(((now - started) * rate) / 1000);
    for (; due < target; due++) {
      if (running.size >= MAX_IN_FLIGHT) {
        out.behind++;
        continue;
      }
      const t0 = performance.now();
      const one = session(server.port, nextSession++, plan).then((problems) => {
        out.latencies.push(performance.now() - t0);
        out.sessions++;
        out.mismatches.push(...problems);
        running.delete(one);
      });
      running.add(one);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(running);
  out.cpuMs = treeCpuMs(pid) - cpuBefore;
  return out;
}

interface Step {
  elapsedS: number;
  rate: number;
  behind: number;
  p50: number;
  p99: number;
  rssMb: number;
  cpuMsPerSession: number;
  mismatches: string[];
}

/** Runs the load for `steps` intervals, rewriting the rules file after each (a reload). */
async function soak(
  server: Server,
  steps: number,
  o: Options,
  reload: (n: number) => void,
  freshen: () => void,
): Promise<Step[]> {
  const out: Step[] = [];
  const started = performance.now();
  const plan = mixedPlan();
  for (let n = 1; n <= steps; n++) {
    const stepStart = performance.now();
    const result = await paced(server, o.rate, o.intervalMs, plan);
    freshen();
    if (o.reload) reload(n);
    const step: Step = {
      elapsedS: (performance.now() - started) / 1000,
      rate: (result.sessions * 1000) / (performance.now() - stepStart),
      behind: result.behind,
      p50: percentile(result.latencies, 50),
      p99: percentile(result.latencies, 99),
      rssMb: rssMb(server.child.pid as number),
      cpuMsPerSession: result.cpuMs / Math.max(1, result.sessions),
      mismatches: result.mismatches,
    };
    out.push(step);
    console.log(
      `| ${step.elapsedS.toFixed(0)} | ${step.rate.toFixed(0)} | ${step.behind} | ${step.p50.toFixed(2)} | ${step.p99.toFixed(2)} | ${step.cpuMsPerSession.toFixed(3)} | ${step.rssMb.toFixed(1)} | ${step.mismatches.length} |`,
    );
  }
  return out;
}

/** RSS growth from the end of the first third of the run to its end. */
function growth(steps: readonly Step[]): { from: number; to: number; ratio: number } {
  const from = steps[Math.max(0, Math.floor(steps.length / 3) - 1)]?.rssMb ?? Number.NaN;
  const to = steps.at(-1)?.rssMb ?? Number.NaN;
  return { from, to, ratio: (to - from) / from };
}

async function main(): Promise<void> {
  const o = options();
  const { minutes, intervalMs } = o;
  const steps = Math.max(1, Math.round((minutes * 60_000) / intervalMs));
  const root = makeFixture();
  const [slapd, rbl] = await Promise.all([Slapd.start(), startRbldnsd()]);
  const configPath = join(root, "rules.yaml");
  const text = rules(root, slapd.url, rbl.server, "inet:127.0.0.1:8890", OVER_TEXT);
  writeFileSync(configPath, text);
  let server: Server | undefined;
  try {
    server = await startServe(configPath, "filterctl serve (3 policies)");
    for (let i = 0; i < 50; i++) await session(server.port, i, quotaPlan(OVER_TEXT));
    console.log(
      `soak: ${minutes} min at ${o.rate} sessions/s (mixed: accepted, over quota, DNSBL-listed, unknown sender), ${o.reload ? `a reload every ${intervalMs / 1000} s` : "no reloads"}; node ${process.version}\n`,
    );
    console.log(
      "| elapsed s | sessions/s | behind | p50 ms | p99 ms | server CPU ms/session | RSS MB | wrong replies |",
    );
    console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    const done = await soak(
      server,
      steps,
      o,
      (n) => writeFileSync(configPath, `${text}# reload ${n}\n`),
      () => freshenFixture(root),
    );
    const g = growth(done);
    const wrong = done.reduce((sum, s) => sum + s.mismatches.length, 0);
    console.log(
      `\nRSS ${g.from.toFixed(1)} MB after the first third, ${g.to.toFixed(1)} MB at the end: ${(g.ratio * 100).toFixed(1)} % (limit ${GROWTH_LIMIT * 100} %)`,
    );
    if (wrong > 0)
      console.log(
        `wrong replies: ${wrong}, e.g. ${done
          .flatMap((s) => s.mismatches)
          .slice(0, 3)
          .join("; ")}`,
      );
    if (wrong > 0 || !(g.ratio < GROWTH_LIMIT)) {
      console.log("SOAK FAILED");
      process.exitCode = 1;
    }
  } finally {
    server?.child.kill("SIGTERM");
    await Promise.allSettled([slapd.destroy(), rbl.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
