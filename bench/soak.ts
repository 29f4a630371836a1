/**
 * Soak: `filterctl serve` with the three policies (DNSBL via rbldnsd, verify-from via slapd,
 * Maildir++ quota) under a steady load for 30 minutes, the rules file rewritten (a reload) every
 * minute; the server's RSS is printed each minute. Memory that keeps growing under steady traffic
 * and reloads is a leak: the run fails when RSS grows more than 10 % over the last two thirds of
 * the run (the last 20 minutes of 30), or when any reply is wrong.
 *
 * One TCP connection per session, from this process on loopback: after a minute tens of thousands
 * of client sockets sit in TIME_WAIT and the kernel's search for a free port in connect() slows
 * the load generator (measured: sessions/s falls from ~1000 to ~450 in the first minute, with or
 * without reloads, while the server's CPU per session stays flat). So sessions/s here is the
 * generator's; server CPU ms/session and RSS are the figures that show the server degrading.
 *
 *   npm run bench:soak [-- --minutes N] [-- --quick] [-- --no-reload]
 *   (--quick: 1 minute, a reload every 10 s; --no-reload: the same load, the file left alone)
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startRbldnsd } from "../test/support/rbldnsd.js";
import { Slapd } from "../test/support/slapd.js";
import {
  load,
  makeFixture,
  OVER_TEXT,
  percentile,
  quotaPlan,
  rssMb,
  rules,
  type Server,
  session,
  startServe,
} from "./serve.js";

const CONCURRENCY = 8;
const GROWTH_LIMIT = 0.1;

interface Options {
  minutes: number;
  intervalMs: number;
}

function options(): Options {
  const quick = process.argv.includes("--quick");
  const at = process.argv.indexOf("--minutes");
  const minutes = at > 0 ? Number(process.argv[at + 1]) : quick ? 1 : 30;
  if (!(minutes > 0)) throw new Error("--minutes wants a positive number");
  return { minutes, intervalMs: quick ? 10_000 : 60_000 };
}

interface Step {
  elapsedS: number;
  rate: number;
  p99: number;
  rssMb: number;
  cpuMsPerSession: number;
  mismatches: string[];
}

/** Runs the load for `steps` intervals, rewriting the rules file after each (a reload). */
async function soak(
  server: Server,
  steps: number,
  intervalMs: number,
  reload: (n: number) => void,
): Promise<Step[]> {
  const out: Step[] = [];
  const started = performance.now();
  for (let n = 1; n <= steps; n++) {
    const result = await load(server, CONCURRENCY, 0, intervalMs, quotaPlan(OVER_TEXT));
    reload(n);
    const step: Step = {
      elapsedS: (performance.now() - started) / 1000,
      rate: result.sessions / result.seconds,
      p99: percentile(result.latencies, 99),
      rssMb: rssMb(server.child.pid as number),
      cpuMsPerSession: result.cpuMs / Math.max(1, result.sessions),
      mismatches: result.mismatches,
    };
    out.push(step);
    console.log(
      `| ${step.elapsedS.toFixed(0)} | ${step.rate.toFixed(0)} | ${step.p99.toFixed(2)} | ${step.cpuMsPerSession.toFixed(3)} | ${step.rssMb.toFixed(1)} | ${step.mismatches.length} |`,
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
  const { minutes, intervalMs } = options();
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
      `soak: ${minutes} min at concurrency ${CONCURRENCY}, a reload every ${intervalMs / 1000} s; node ${process.version}\n`,
    );
    console.log("| elapsed s | sessions/s | p99 ms | server CPU ms/session | RSS MB | wrong replies |");
    console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
    const done = await soak(server, steps, intervalMs, (n) =>
      writeFileSync(configPath, `${text}# reload ${n}\n`),
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
