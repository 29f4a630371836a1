/**
 * The one way to wait for work against a deadline and/or a caller's AbortSignal.
 *
 *   // reject at the deadline (the thrown error is also the abort reason the work sees)
 *   await withDeadline((signal) => source.quota(name, signal), {
 *     ms: 2000,
 *     onTimeout: () => { throw new Error("no answer within 2000 ms"); },
 *   });
 *   // or answer something else at the deadline
 *   const result = await withDeadline(reload(), { ms, onTimeout: () => "expired" as const, unref: true });
 *
 * Whichever comes first wins: the work settling, the deadline (`onTimeout` runs once; what it
 * returns resolves, what it throws rejects), or the caller's `signal` aborting (rejects with
 * `onAbort()`, by default the signal's reason). The timer is always cleared, the abort listener
 * always removed, and the work's later rejection is swallowed (never an unhandled rejection).
 * Work given as a function gets a signal that aborts when the deadline passes (after
 * `abortGraceMs`) or the caller's signal aborts; a settled wait never aborts it.
 */

export interface DeadlineOptions<U> {
  /** Milliseconds until the deadline; undefined: no deadline (only `signal` ends the wait). */
  ms?: number;
  /**
   * Runs once at the deadline: its return value resolves the wait, what it throws rejects it
   * (default: rejects with "deadline of <ms> ms passed").
   */
  onTimeout?: () => U | PromiseLike<U>;
  /** The caller's signal: aborting it ends the wait at once (and aborts the work's signal). */
  signal?: AbortSignal;
  /** The rejection when `signal` aborts (default: the signal's reason). */
  onAbort?: () => unknown;
  /** Lets the process exit while only this timer is left (for waits nothing must block on). */
  unref?: boolean;
  /**
   * The work's signal aborts this long after the deadline rather than at it: a slow answer may
   * still arrive (and be cached) for the next caller.
   */
  abortGraceMs?: number;
}

type Work<T> = Promise<T> | ((signal: AbortSignal) => Promise<T>);

/** Why the work's signal aborts when `onTimeout` returns instead of throwing, and the default rejection. */
function deadlineReason(ms: number): Error {
  return new Error(`deadline of ${ms} ms passed`);
}

export function withDeadline<T, U = never>(work: Work<T>, options: DeadlineOptions<U>): Promise<T | U> {
  const { ms, signal } = options;
  const rejection = () => (options.onAbort ? options.onAbort() : signal?.reason);
  const controller = typeof work === "function" ? new AbortController() : undefined;
  if (signal?.aborted) {
    // Work given as a function is not started; a promise's failure is nobody's to report.
    if (typeof work !== "function") work.catch(() => {});
    return Promise.reject(rejection());
  }
  const running = typeof work === "function" ? start(work, controller as AbortController) : work;
  if (ms === undefined && signal === undefined) return running;
  return new Promise<T | U>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    function onAbort(): void {
      settle();
      controller?.abort(signal?.reason);
      reject(rejection());
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    if (ms !== undefined) {
      timer = setTimeout(() => {
        settle();
        const abort = (reason: unknown) => abortLater(controller, reason, options.abortGraceMs);
        try {
          if (options.onTimeout === undefined) throw deadlineReason(ms);
          const value = options.onTimeout();
          abort(deadlineReason(ms));
          resolve(value as U | PromiseLike<U>);
        } catch (error) {
          abort(error);
          reject(error);
        }
      }, ms);
      if (options.unref) timer.unref();
    }
    // After a settle these calls do nothing: that is how a late answer is dropped.
    running.then(
      (value) => {
        settle();
        resolve(value);
      },
      (error: unknown) => {
        settle();
        reject(error);
      },
    );
  });
}

/** Starts the work; a synchronous throw becomes a rejection like any other failure. */
function start<T>(work: (signal: AbortSignal) => Promise<T>, controller: AbortController): Promise<T> {
  try {
    return work(controller.signal);
  } catch (error) {
    return Promise.reject(error);
  }
}

function abortLater(controller: AbortController | undefined, reason: unknown, graceMs = 0): void {
  if (controller === undefined) return;
  if (graceMs <= 0) controller.abort(reason);
  // The grace timer never keeps the process alive: the wait it belonged to is over.
  else setTimeout(() => controller.abort(reason), graceMs).unref();
}

/** Resolves true when `work` settles (either way) within `ms`, false at the deadline; never rejects. */
export function settlesWithin(work: Promise<unknown>, ms: number, unref = false): Promise<boolean> {
  return withDeadline(
    work.then(
      () => true,
      () => true,
    ),
    { ms, onTimeout: () => false, unref },
  );
}

/**
 * A signal that aborts with `reason()` after `ms`, for work that must be told to stop but is
 * still waited for (a directory count holding thread-pool slots: a second one must not start
 * while the first is stuck). `cancel()` clears the timer once the work is done.
 */
export function abortAfter(ms: number, reason: () => unknown): { signal: AbortSignal; cancel: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  return { signal: controller.signal, cancel: () => clearTimeout(timer) };
}
