import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { abortAfter, settlesWithin, withDeadline } from "../../src/common/deadline.js";

/** A promise settled from outside, as a slow source's answer. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const timeout = () => {
  throw new Error("no answer within 100 ms");
};

describe("withDeadline", () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(() => {
    vi.useFakeTimers();
    unhandled.length = 0;
    process.on("unhandledRejection", onUnhandled);
  });
  afterEach(async () => {
    vi.useRealTimers();
    // Unhandled rejections are reported after the microtask queue drains.
    await new Promise((done) => setImmediate(done));
    process.off("unhandledRejection", onUnhandled);
    expect(unhandled).toEqual([]);
  });

  it("resolves with the work's value and clears its timer", async () => {
    const work = deferred<string>();
    const waiting = withDeadline(work.promise, { ms: 100, onTimeout: timeout });
    expect(vi.getTimerCount()).toBe(1);
    work.resolve("answer");
    await expect(waiting).resolves.toBe("answer");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects with the work's error and clears its timer", async () => {
    const waiting = withDeadline(Promise.reject(new Error("refused")), { ms: 100, onTimeout: timeout });
    await expect(waiting).rejects.toThrow("refused");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects with what onTimeout throws at the deadline, not before", async () => {
    const work = deferred<string>();
    const onTimeout = vi.fn(timeout);
    const waiting = withDeadline(work.promise, { ms: 100, onTimeout });
    const seen = expect(waiting).rejects.toThrow("no answer within 100 ms");
    await vi.advanceTimersByTimeAsync(99);
    expect(onTimeout).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    await seen;
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it("resolves with what onTimeout returns (a value or a promise)", async () => {
    const never = new Promise<boolean>(() => {});
    const expired = withDeadline(never, { ms: 50, onTimeout: () => "expired" as const });
    await vi.advanceTimersByTimeAsync(50);
    await expect(expired).resolves.toBe("expired");
    const later = withDeadline(never, { ms: 50, onTimeout: () => Promise.resolve(7) });
    await vi.advanceTimersByTimeAsync(50);
    await expect(later).resolves.toBe(7);
  });

  it("rejects with a default message when there is no onTimeout", async () => {
    const waiting = withDeadline(new Promise(() => {}), { ms: 20 });
    const seen = expect(waiting).rejects.toThrow("deadline of 20 ms passed");
    await vi.advanceTimersByTimeAsync(20);
    await seen;
  });

  it("swallows the work's rejection after the deadline", async () => {
    const work = deferred<string>();
    const waiting = withDeadline(work.promise, { ms: 10, onTimeout: () => "late" });
    await vi.advanceTimersByTimeAsync(10);
    await expect(waiting).resolves.toBe("late");
    work.reject(new Error("too late to matter"));
    // afterEach checks that no rejection went unhandled.
  });

  it("aborts the work's signal at the deadline with onTimeout's error as the reason", async () => {
    let seen: AbortSignal | undefined;
    const waiting = withDeadline(
      (signal) => {
        seen = signal;
        return new Promise<string>(() => {});
      },
      { ms: 100, onTimeout: timeout },
    );
    const rejected = expect(waiting).rejects.toThrow("no answer within 100 ms");
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    await rejected;
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBeInstanceOf(Error);
    expect((seen?.reason as Error | undefined)?.message).toBe("no answer within 100 ms");
  });

  it("aborts the work's signal only after abortGraceMs, with an unref'd timer", async () => {
    let seen: AbortSignal | undefined;
    const waiting = withDeadline(
      (signal) => {
        seen = signal;
        return new Promise<string>(() => {});
      },
      { ms: 100, onTimeout: timeout, abortGraceMs: 100 },
    );
    const rejected = expect(waiting).rejects.toThrow("no answer");
    await vi.advanceTimersByTimeAsync(100);
    await rejected;
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(seen?.aborted).toBe(true);
  });

  it("never aborts the work's signal when the work settles in time", async () => {
    let seen: AbortSignal | undefined;
    const waiting = withDeadline(
      (signal) => {
        seen = signal;
        return Promise.resolve(1);
      },
      { ms: 100, onTimeout: timeout },
    );
    await expect(waiting).resolves.toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen?.aborted).toBe(false);
  });

  it("turns a synchronous throw of the work into a rejection", async () => {
    const waiting = withDeadline(
      () => {
        throw new Error("bad key");
      },
      { ms: 100, onTimeout: timeout },
    );
    await expect(waiting).rejects.toThrow("bad key");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once when the caller's signal aborts, and aborts the work", async () => {
    const caller = new AbortController();
    let seen: AbortSignal | undefined;
    const waiting = withDeadline(
      (signal) => {
        seen = signal;
        return new Promise<string>(() => {});
      },
      { ms: 100, onTimeout: timeout, signal: caller.signal, onAbort: () => new Error("cancelled") },
    );
    caller.abort(new Error("client went away"));
    await expect(waiting).rejects.toThrow("cancelled");
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBeInstanceOf(Error);
    expect((seen?.reason as Error | undefined)?.message).toBe("client went away");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects with the signal's reason by default, without a deadline", async () => {
    const caller = new AbortController();
    const waiting = withDeadline(new Promise(() => {}), { signal: caller.signal });
    expect(vi.getTimerCount()).toBe(0);
    caller.abort(new Error("deadline reached"));
    await expect(waiting).rejects.toThrow("deadline reached");
  });

  it("does not start the work when the caller's signal has aborted already", async () => {
    const caller = new AbortController();
    caller.abort(new Error("gone"));
    const work = vi.fn(() => Promise.resolve(1));
    await expect(withDeadline(work, { ms: 100, signal: caller.signal })).rejects.toThrow("gone");
    expect(work).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("removes its abort listener once settled", async () => {
    const caller = new AbortController();
    const remove = vi.spyOn(caller.signal, "removeEventListener");
    await withDeadline(Promise.resolve(1), { ms: 100, signal: caller.signal });
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
    caller.abort(); // nothing listens: no late rejection
  });

  it("unrefs its timer when asked", () => {
    const unref = vi.spyOn(globalThis, "setTimeout");
    withDeadline(new Promise(() => {}), { ms: 100, onTimeout: () => 0, unref: true });
    const last = () => unref.mock.results.at(-1)?.value as NodeJS.Timeout | undefined;
    expect(last()?.hasRef()).toBe(false);
    withDeadline(new Promise(() => {}), { ms: 100, onTimeout: () => 0 });
    expect(last()?.hasRef()).toBe(true);
  });
});

describe("settlesWithin", () => {
  it("is true when the work settles either way in time, false at the deadline", async () => {
    await expect(settlesWithin(Promise.resolve(1), 1000)).resolves.toBe(true);
    await expect(settlesWithin(Promise.reject(new Error("x")), 1000)).resolves.toBe(true);
    await expect(settlesWithin(new Promise(() => {}), 5, true)).resolves.toBe(false);
  });
});

describe("abortAfter", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("aborts with its reason after ms, and not at all once cancelled", async () => {
    const late = abortAfter(100, () => new Error("counting took more than 100 ms"));
    await vi.advanceTimersByTimeAsync(99);
    expect(late.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((late.signal.reason as Error | undefined)?.message).toBe("counting took more than 100 ms");
    const done = abortAfter(100, () => new Error("never"));
    done.cancel();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(done.signal.aborted).toBe(false);
  });
});
