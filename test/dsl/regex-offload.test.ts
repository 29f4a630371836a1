/**
 * Where rule regexes run: short texts inline, long ones (where pattern size × text length could
 * hold the event loop) in a worker thread with a deadline.
 */
import { afterEach, describe, expect, it } from "vitest";
import { compileRegex } from "../../src/dsl/regex.js";
import {
  type CompiledRegex,
  INLINE_STEPS,
  matchRegex,
  RegexTimeoutError,
  RegexWorker,
} from "../../src/dsl/regex-offload.js";

function compiled(pattern: string, flags = ""): CompiledRegex {
  const result = compileRegex(pattern, flags);
  if (!result.ok) throw new Error(result.problem.message);
  return result;
}

/**
 * 9998 instructions, all alive at once on a run of x (the leading q defeats the engine's check
 * for a required literal): about 1.7 s per 4 KiB and 12 s per 64 KiB, inline.
 */
const HEAVY = compiled(`${"x.{0,999}".repeat(5)}q`);
const HEAVY_TEXT = `q${"x".repeat(65_535)}`;

/**
 * Ticks of a 10 ms interval while `work` runs, and the largest gap between them. A match held on
 * the main thread would allow no tick at all until it ended. Ticks, not a bound on the gap in
 * ms, are what the tests require: a loaded machine (the suite's other files, two cores) can
 * delay a tick by hundreds of ms, but cannot stop them.
 */
async function loopTicks<T>(work: Promise<T>): Promise<{ value: T | Error; ticks: number; lag: number }> {
  let last = performance.now();
  let lag = 0;
  let ticks = 0;
  const interval = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last);
    last = now;
    ticks++;
  }, 10);
  try {
    return { value: await work.catch((error: Error) => error), ticks, lag };
  } finally {
    clearInterval(interval);
  }
}

let worker: RegexWorker | undefined;
afterEach(async () => {
  await worker?.close();
  worker = undefined;
});

describe("matchRegex", () => {
  it("answers a short text inline, synchronously", () => {
    const regex = compiled("^\\[SPAM\\]", "i");
    expect(matchRegex(regex, "[spam] offer")).toBe(true);
    expect(matchRegex(regex, "Re: minutes")).toBe(false);
  });

  it("sends a long text to the worker, and answers as inline would", async () => {
    const regex = compiled("unsubscribe|viagra", "i");
    const long = `${"lorem ipsum ".repeat(6000)}Unsubscribe`;
    expect(long.length * regex.size).toBeGreaterThan(INLINE_STEPS);
    const answer = matchRegex(regex, long);
    expect(answer).toBeInstanceOf(Promise);
    expect(await answer).toBe(true);
    expect(await matchRegex(regex, "lorem ipsum ".repeat(6000))).toBe(false);
    expect(regex.regex.test(long)).toBe(true);
  });

  it("keeps the event loop free while a heavy match runs in the worker", async () => {
    worker = new RegexWorker(60_000);
    const started = performance.now();
    // Inline, this one holds the thread for seconds (measured: 10-20 s).
    const { value, ticks, lag } = await loopTicks(
      worker.test(HEAVY.source, HEAVY.engineFlags, HEAVY_TEXT.slice(0, 8192)),
    );
    const elapsed = performance.now() - started;
    expect(value).toBe(false);
    expect(elapsed).toBeGreaterThan(200);
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(lag).toBeLessThan(elapsed / 2);
  });
});

describe("RegexWorker", () => {
  it("abandons a match past its deadline, replaces the worker, and goes on with the next", async () => {
    worker = new RegexWorker(300);
    const heavy = worker.test(HEAVY.source, HEAVY.engineFlags, HEAVY_TEXT);
    const light = compiled("q$");
    const next = worker.test(light.source, light.engineFlags, `${HEAVY_TEXT}q`);
    // The heavy match does run long (so the deadline is what ends it).
    expect(HEAVY.size).toBe(9998);
    const started = performance.now();
    const { value, ticks } = await loopTicks(heavy);
    expect(value).toBeInstanceOf(RegexTimeoutError);
    expect((value as Error).message).toBe("regular expression match still running after 300 ms");
    // Without the deadline this match runs about 12 s; with it, 300 ms plus replacing the worker,
    // which a loaded machine can stretch but not to seconds.
    expect(performance.now() - started).toBeLessThan(6000);
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(await next).toBe(true);
  });

  it("answers in order, and fails what is waiting when closed", async () => {
    worker = new RegexWorker();
    const a = compiled("a");
    const answers = await Promise.all(
      ["xax", "xxx", "a"].map((text) => (worker as RegexWorker).test(a.source, a.engineFlags, text)),
    );
    expect(answers).toEqual([true, false, true]);
    const waiting = worker.test(HEAVY.source, HEAVY.engineFlags, HEAVY_TEXT);
    const queued = worker.test(a.source, a.engineFlags, "a");
    const failures = Promise.all([
      expect(waiting).rejects.toThrow("regular expression worker closed"),
      expect(queued).rejects.toThrow("regular expression worker closed"),
    ]);
    await worker.close();
    await failures;
  });
});
