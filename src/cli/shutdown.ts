/**
 * How `filterctl serve` ends on SIGTERM/SIGINT: stop accepting, let sessions in flight finish for
 * up to shutdown_timeout, close what is left, exit 0; and, whatever hangs meanwhile (a session,
 * a source that does not close, a log write), the process is gone within shutdown_timeout + 5 s.
 */
import type { Server } from "node:http";
import type { Logger } from "pino";
import { settlesWithin, withDeadline } from "../common/deadline.js";
import type { RulesRuntime } from "../engine/service.js";
import type { MilterServer } from "../milter/index.js";

/** After shutdown_timeout: time for closing sources and flushing the log, then the process ends. */
export const HARD_DEADLINE_MARGIN_MS = 3_000;
/** After the hard deadline: the most exiting may wait for the thread pool (see endProcess). */
const EXIT_WAIT_MS = 1_000;
/** A log write of the last lines may take this long before the process ends without it. */
const FLUSH_WAIT_MS = 500;

/**
 * Thread-pool work in flight: file system calls and host name lookups. process.exit joins the
 * pool's threads, so while one of them is blocked (a read on a hung NFS mount, an open that waits)
 * it never returns.
 */
export function threadPoolWork(): string[] {
  return process.getActiveResourcesInfo().filter((name) => /^(FSReq|GetAddrInfo|GetNameInfo)/.test(name));
}

let ending = false;

/** Calls `then` once the log is written, or after FLUSH_WAIT_MS if it cannot be. */
function flushThen(logger: Logger, then: () => void): void {
  // A flush that throws (no destination to flush) settles at once.
  const flushed = new Promise<void>((done) => logger.flush(() => done()));
  void settlesWithin(flushed, FLUSH_WAIT_MS).then(then);
}

/**
 * Ends the process with `code` once the thread pool is idle. Still busy at `waitUntil` (epoch
 * ms), the pool holds a stuck thread and process.exit would hang: the process then ends by
 * SIGTERM's default action instead (status 143; systemd counts it a clean stop), saying why.
 * Only the first call counts.
 */
export function endProcess(code: number, waitUntil: number, logger: Logger): void {
  if (ending) return;
  ending = true;
  process.exitCode = code;
  flushThen(logger, function poll(): void {
    const pending = threadPoolWork();
    if (pending.length === 0) process.exit(code);
    if (Date.now() < waitUntil) {
      setTimeout(poll, 20);
      return;
    }
    logger.error(
      { pending },
      "cannot exit normally: a file or host name operation does not finish; ending by SIGTERM",
    );
    afterWrites(pending.length, logger, () => {
      process.removeAllListeners("SIGTERM");
      process.kill(process.pid, "SIGTERM");
      // The default action cannot be blocked; this is only in case it was somehow ignored.
      setTimeout(() => process.kill(process.pid, "SIGKILL"), 500).unref();
    });
  });
}

/**
 * Calls `then` once the log lines just written have left the process, or after FLUSH_WAIT_MS.
 * pino's asynchronous destination says "flushed" while its write is still in the pool: written
 * means the pool is back to the `busy` requests it had before.
 */
function afterWrites(busy: number, logger: Logger, then: () => void): void {
  const until = Date.now() + FLUSH_WAIT_MS;
  flushThen(logger, function wait(): void {
    if (threadPoolWork().length <= busy || Date.now() >= until) then();
    else setTimeout(wait, 10);
  });
}

export interface StopTarget {
  server: MilterServer;
  runtime: RulesRuntime | undefined;
  metricsServer: Server | undefined;
  /** A function is read at the signal (a reload may have changed the value). */
  shutdownTimeoutMs: number | (() => number);
  logger: Logger;
  /** Written out after the last connection closed (serve --journal). */
  journal?: { close(): Promise<void> };
}

/** Stops on SIGTERM and SIGINT: drain, close, exit 0 — within shutdown_timeout + 5 s whatever hangs. */
export function stopOnSignals(target: StopTarget): void {
  const { server, runtime, logger } = target;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const timeout = target.shutdownTimeoutMs;
    const shutdownTimeoutMs = typeof timeout === "function" ? timeout() : timeout;
    logger.info({ signal, connections: server.activeConnections }, "stopping: no new connections");
    const hardDeadline = Date.now() + shutdownTimeoutMs + HARD_DEADLINE_MARGIN_MS;
    const drained = (async () => {
      try {
        const { cut } = await server.shutdown(shutdownTimeoutMs);
        target.metricsServer?.close();
        await runtime?.close();
        await target.journal?.close();
        logger.info({ cut }, "stopped");
      } catch (error) {
        logger.error({ err: (error as Error).message }, "error while stopping");
      }
    })();
    void withDeadline(drained, {
      ms: hardDeadline - Date.now(),
      onTimeout: () => {
        if (ending) return;
        logger.error(
          {
            signal,
            connections: server.activeConnections,
            reloadInFlight: runtime?.reloadInFlight ?? false,
            pending: threadPoolWork(),
          },
          `shutdown not done ${(shutdownTimeoutMs + HARD_DEADLINE_MARGIN_MS) / 1000} s after ${signal}: exiting without waiting any longer`,
        );
      },
      // Nothing else left running: the process may end before the deadline on its own.
      unref: true,
    }).then(() => endProcess(0, hardDeadline + EXIT_WAIT_MS, logger));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
