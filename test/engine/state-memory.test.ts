import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryStore, RATE_BUCKETS } from "../../src/engine/state/memory.js";
import { type GreylistSettings, StateError } from "../../src/runtime/state.js";

const HOUR = 3_600_000;
const COUNT = { record: true } as const;
const LOOK = { record: false } as const;
const GREYLIST: GreylistSettings = {
  delayMs: 5 * 60_000,
  retryWindowMs: 48 * HOUR,
  passTtlMs: 35 * 24 * HOUR,
};

/** A whole number of hours, so windows' buckets start at round times (and never 0: lru-cache reads a start of 0 as "no TTL"). */
const T0 = 1000 * HOUR;

function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe("memory state: rate()", () => {
  it("counts each call under its key, this one included", () => {
    const store = createMemoryStore({ now: clock().now });
    expect([1, 2, 3].map(() => store.rate("a", HOUR, COUNT))).toEqual([1, 2, 3]);
    expect(store.rate("b", HOUR, COUNT)).toBe(1);
    // Another window under the same key counts apart.
    expect(store.rate("a", 60_000, COUNT)).toBe(1);
  });

  it("record: false answers as if counted and changes nothing", () => {
    const store = createMemoryStore({ now: clock().now });
    store.rate("a", HOUR, COUNT);
    expect(store.rate("a", HOUR, LOOK)).toBe(2);
    expect(store.rate("a", HOUR, LOOK)).toBe(2);
    expect(store.rate("never", HOUR, LOOK)).toBe(1);
    expect(store.size).toBe(1);
    expect(store.rate("a", HOUR, COUNT)).toBe(2);
  });

  it("forgets events once they leave the window (and at most one bucket later)", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now });
    const bucket = HOUR / RATE_BUCKETS;
    store.rate("a", HOUR, COUNT);
    c.t = T0 + HOUR - 1;
    expect(store.rate("a", HOUR, LOOK)).toBe(2);
    // Still counted up to one bucket past the window: never less than the true count.
    c.t = T0 + HOUR + bucket - 1;
    expect(store.rate("a", HOUR, LOOK)).toBe(2);
    c.t = T0 + HOUR + bucket;
    expect(store.rate("a", HOUR, LOOK)).toBe(1);
  });

  it("a limit of 100/h lets at most 100 through in any hour, bursts at the window's edges included", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now });
    const passed: number[] = [];
    const send = (t: number) => {
      c.t = T0 + t;
      if (store.rate("k", HOUR, COUNT) <= 100) passed.push(t);
    };
    // 100 at the end of a bucket, then 100 just over 59 buckets later, then a steady 90/h
    // (refused calls count too: it passes once the bursts have left the window).
    const bucket = HOUR / RATE_BUCKETS;
    for (let i = 0; i < 100; i++) send(bucket - 1);
    for (let i = 0; i < 100; i++) send(60 * bucket);
    for (let t = 60 * bucket; t < 4 * HOUR; t += 40_000) send(t);
    expect(maxInAnyWindow(passed, HOUR)).toBeLessThanOrEqual(100);
    // And it does let traffic through again once the window has moved on.
    expect(passed.filter((t) => t > 2 * HOUR).length).toBeGreaterThan(150);
  });

  it("property: whatever the arrival times, no window of the limit's length passes more than the limit", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 * 60_000 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 30 }),
        (gaps, limit) => {
          const c = clock();
          const store = createMemoryStore({ now: c.now, maxKeys: 10 });
          const passed: number[] = [];
          for (const gap of gaps) {
            c.t += gap % 7 === 0 ? 0 : gap;
            if (store.rate("k", 60_000, COUNT) <= limit) passed.push(c.t);
          }
          return maxInAnyWindow(passed, 60_000) <= limit;
        },
      ),
      { numRuns: 200 },
    );
  });

  it("drops expired keys, and keeps at most maxKeys (least recently used evicted)", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now, maxKeys: 3 });
    for (const key of ["a", "b", "c"]) store.rate(key, 60_000, COUNT);
    store.rate("a", 60_000, COUNT);
    store.rate("d", 60_000, COUNT);
    expect(store.size).toBe(3);
    // b was the least recently used: it starts over.
    expect(store.rate("b", 60_000, LOOK)).toBe(1);
    expect(store.rate("a", 60_000, LOOK)).toBe(3);
    // Past the window (and a sweep's minute), nothing is kept.
    c.t = T0 + 10 * 60_000;
    store.rate("e", 1000, LOOK);
    expect(store.size).toBe(0);
  });

  it("a closed store fails with a StateError", async () => {
    const store = createMemoryStore();
    await store.close();
    expect(() => store.rate("a", HOUR, COUNT)).toThrow(StateError);
  });

  it("allocates its tables on the first call only (serve opens one for every rules file)", () => {
    // lru-cache's tables for MEMORY_MAX_KEYS keys hold 3 MB of typed arrays: 30 MB for 10 stores.
    const before = process.memoryUsage().arrayBuffers;
    const stores = Array.from({ length: 10 }, () => createMemoryStore());
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024);
    // Measured around the first call alone, for three stores: a collection of the buffers of
    // earlier tests in the meantime (seen once: -6 MB) can hide one store's growth, not three.
    const growth = stores.slice(0, 3).map((store) => {
      const ready = process.memoryUsage().arrayBuffers;
      store.rate("a", HOUR, COUNT);
      return process.memoryUsage().arrayBuffers - ready;
    });
    expect(Math.max(...growth)).toBeGreaterThan(2 * 1024 * 1024);
    expect(stores[0]?.size).toBe(1);
    expect(stores[3]?.size).toBe(0);
  });
});

describe("memory state: greylist()", () => {
  it("defers the first sight and retries within the delay, passes after it, then keeps passing", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now });
    const start = c.t;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(true);
    c.t = start + GREYLIST.delayMs - 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(true);
    // A retry within the delay does not restart the delay.
    c.t = start + GREYLIST.delayMs;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(false);
    c.t += GREYLIST.passTtlMs - 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(false);
    // Each pass keeps it passing pass_ttl from then.
    c.t += GREYLIST.passTtlMs - 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(false);
    c.t += GREYLIST.passTtlMs;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(true);
    expect(store.greylist("other", GREYLIST, COUNT)).toBe(true);
  });

  it("a retry after the retry window starts over", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now });
    const start = c.t;
    store.greylist("t", GREYLIST, COUNT);
    c.t = start + GREYLIST.retryWindowMs;
    expect(store.greylist("t", GREYLIST, LOOK)).toBe(false);
    c.t = start + GREYLIST.retryWindowMs + 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(true);
    c.t += GREYLIST.delayMs - 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(true);
    c.t += 1;
    expect(store.greylist("t", GREYLIST, COUNT)).toBe(false);
  });

  it("record: false answers the same and changes nothing", () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now });
    expect(store.greylist("t", GREYLIST, LOOK)).toBe(true);
    c.t += GREYLIST.delayMs;
    // Never recorded: still a first sight.
    expect(store.greylist("t", GREYLIST, LOOK)).toBe(true);
    expect(store.size).toBe(0);
    store.greylist("t", GREYLIST, COUNT);
    c.t += GREYLIST.delayMs;
    expect(store.greylist("t", GREYLIST, LOOK)).toBe(false);
    // The look did not record a pass: past the retry window it starts over.
    c.t += GREYLIST.retryWindowMs;
    expect(store.greylist("t", GREYLIST, LOOK)).toBe(true);
  });
});

/** The most timestamps in any window [t, t + windowMs). */
function maxInAnyWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  let from = 0;
  for (let to = 0; to < times.length; to++) {
    while ((times[to] as number) - (times[from] as number) >= windowMs) from++;
    most = Math.max(most, to - from + 1);
  }
  return most;
}
