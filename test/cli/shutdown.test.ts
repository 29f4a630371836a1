/**
 * endProcess and the shutdown deadline, in a real Node process: process.exit joins libuv's pool threads, so a thread stuck
 * in a blocking call (here an open() of a FIFO nobody writes to) would keep it from ever
 * returning. endProcess waits a bounded time, then ends the process by SIGTERM's default action.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";

const ROOT = resolve(import.meta.dirname, "..", "..");
const SHUTDOWN = pathToFileURL(join(ROOT, "dist", "cli", "shutdown.js")).href;
const dir = mkdtempSync(join(tmpdir(), "filterctl-exit-"));
const fifo = join(dir, "fifo");
execFileSync("mkfifo", [fifo]);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Child {
  /** Everything the child wrote to stdout and stderr so far. */
  readonly out: () => string;
  readonly kill: (signal: NodeJS.Signals) => void;
  /** How it ended; it is SIGKILLed after `killAfterMs`, so this always settles. */
  readonly closed: Promise<{ code: number | null; signal: string | null }>;
}

/** A Node child running `script` (an ES module) from the repository's root. */
function spawnScript(script: string, killAfterMs: number): Child {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const collect = (chunk: Buffer) => {
    out += chunk.toString();
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const killer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  const closed = new Promise<{ code: number | null; signal: string | null }>((done) =>
    child.once("close", (code, signal) => {
      clearTimeout(killer);
      done({ code, signal });
    }),
  );
  return { out: () => out, kill: (signal) => child.kill(signal), closed };
}

/** Runs endProcess(0, now + 500 ms) in a child, with or without a pool thread stuck on the FIFO. */
async function run(
  stuck: boolean,
): Promise<{ code: number | null; signal: string | null; ms: number; out: string }> {
  const script = `
    import { open } from "node:fs/promises";
    import { pino } from "pino";
    import { endProcess } from ${JSON.stringify(SHUTDOWN)};
    const logger = pino({ base: undefined }, pino.destination({ dest: 1, sync: false }));
    process.on("SIGTERM", () => logger.info({}, "a handler of our own"));
    if (${stuck}) void open(${JSON.stringify(fifo)}, "r");
    setTimeout(() => endProcess(0, Date.now() + 500, logger), 100);
  `;
  const started = Date.now();
  const child = spawnScript(script, 10_000);
  const status = await child.closed;
  return { ...status, ms: Date.now() - started, out: child.out() };
}

describe("endProcess", () => {
  it("exits with the code when the thread pool is idle", async () => {
    const result = await run(false);
    expect(result).toMatchObject({ code: 0, signal: null, out: "" });
  });

  it("ends by SIGTERM, saying why, when a pool thread is stuck (process.exit would hang)", async () => {
    const result = await run(true);
    expect(result.signal, result.out).toBe("SIGTERM");
    expect(result.ms).toBeLessThan(5000);
    const line = JSON.parse(result.out.trim().split("\n").at(-1) as string) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 50,
      pending: ["FSReqPromise"],
      msg: "cannot exit normally: a file or host name operation does not finish; ending by SIGTERM",
    });
    // Our own SIGTERM handler did not catch it.
    expect(result.out).not.toContain("a handler of our own");
  });
});

describe("stopOnSignals", () => {
  it("exits 0 by shutdown_timeout + 3.5 s when stopping hangs, saying what was left", async () => {
    const script = `
      import { pino } from "pino";
      import { stopOnSignals } from ${JSON.stringify(SHUTDOWN)};
      const logger = pino({ base: undefined }, pino.destination({ dest: 1, sync: false }));
      // A server whose drain never ends (a bug, a session that cannot be closed).
      const server = { activeConnections: 1, shutdown: () => new Promise(() => {}) };
      stopOnSignals({ server, runtime: undefined, metricsServer: undefined, shutdownTimeoutMs: 500, logger });
      setInterval(() => {}, 1000);
      logger.info({}, "ready");
    `;
    const child = spawnScript(script, 20_000);
    await vi.waitFor(() => expect(child.out()).toContain('"msg":"ready"'), { timeout: 10_000 });
    const sent = Date.now();
    child.kill("SIGTERM");
    const status = await child.closed;
    const took = Date.now() - sent;
    const out = child.out();
    expect(status, out).toEqual({ code: 0, signal: null });
    expect(took).toBeGreaterThanOrEqual(3400);
    expect(took).toBeLessThan(500 + 5000);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.level === 50)).toMatchObject({
      signal: "SIGTERM",
      connections: 1,
      reloadInFlight: false,
      msg: "shutdown not done 3.5 s after SIGTERM: exiting without waiting any longer",
    });
  });
});
