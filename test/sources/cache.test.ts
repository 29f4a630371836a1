import { describe, expect, it } from "vitest";
import { CachedLookup, LATER, LookupTimeout } from "../../src/sources/cache.js";

const options = { positiveTtlMs: 1000, negativeTtlMs: 100, timeoutMs: 200, maxEntries: 3 };

describe("CachedLookup", () => {
  it("answers a repeated key from the cache, synchronously", async () => {
    const cache = new CachedLookup<string | undefined>(options, (v) => v === undefined);
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      return "value";
    };
    expect(await cache.lookup("k", fetch)).toBe("value");
    expect(cache.lookup("k", fetch)).toBe("value");
    expect(fetches).toBe(1);
    expect(cache.counters).toMatchObject({ lookups: 2, hits: 1, misses: 1 });
  });

  it("takes the source's synchronous answer when it has one: no promise, no fetch; LATER or a throw fetch", async () => {
    const cache = new CachedLookup<string>({ ...options, positiveTtlMs: 0, negativeTtlMs: 0 }, () => false);
    const measured: string[] = [];
    cache.onMeasured = (_ms, outcome) => measured.push(outcome);
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      return "fetched";
    };
    expect(cache.lookup("k", fetch, () => "now")).toBe("now");
    expect(fetches).toBe(0);
    const later = cache.lookup("k", fetch, () => LATER);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toBe("fetched");
    const failed = cache.lookup("k", fetch, () => {
      throw new Error("stat failed");
    });
    expect(await failed).toBe("fetched");
    expect(fetches).toBe(2);
    expect(cache.counters).toMatchObject({ lookups: 3, misses: 3, hits: 0, errors: 0 });
    expect(measured).toEqual(["ok", "ok", "ok"]);
  });

  it("caches a synchronous answer like any other for its TTL", () => {
    const cache = new CachedLookup<string>(options, () => false);
    let asked = 0;
    const now = () => {
      asked++;
      return "now";
    };
    expect(cache.lookup("k", async () => "fetched", now)).toBe("now");
    expect(cache.lookup("k", async () => "fetched", now)).toBe("now");
    expect(asked).toBe(1);
    expect(cache.counters).toMatchObject({ lookups: 2, hits: 1, misses: 1 });
  });

  it("keeps negative answers for the negative TTL only", async () => {
    const cache = new CachedLookup<string | undefined>(options, (v) => v === undefined);
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      return undefined;
    };
    await cache.lookup("absent", fetch);
    expect(cache.lookup("absent", fetch)).toBeUndefined();
    expect(fetches).toBe(1);
    await new Promise((r) => setTimeout(r, 150));
    await cache.lookup("absent", fetch);
    expect(fetches).toBe(2);
  });

  it("makes one request for 100 concurrent identical lookups", async () => {
    const cache = new CachedLookup<number>({ ...options, positiveTtlMs: 0, negativeTtlMs: 0 }, () => false);
    let fetches = 0;
    const fetch = () =>
      new Promise<number>((resolve) => {
        fetches++;
        setTimeout(() => resolve(42), 20);
      });
    const answers = await Promise.all(Array.from({ length: 100 }, () => cache.lookup("same", fetch)));
    expect(answers.every((a) => a === 42)).toBe(true);
    expect(fetches).toBe(1);
    expect(cache.counters.coalesced).toBe(99);
    // With no TTL, the next lookup asks again.
    await cache.lookup("same", fetch);
    expect(fetches).toBe(2);
  });

  it("rejects at the deadline, and still caches the late answer for the next lookup", async () => {
    const cache = new CachedLookup<string>(options, () => false);
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve("late"), 300));
    const started = Date.now();
    await expect(cache.lookup("k", slow)).rejects.toBeInstanceOf(LookupTimeout);
    expect(Date.now() - started).toBeLessThan(290);
    await new Promise((r) => setTimeout(r, 150));
    expect(cache.lookup("k", slow)).toBe("late");
    expect(cache.counters.timeouts).toBe(1);
  });

  it("passes failures through and does not cache them", async () => {
    const cache = new CachedLookup<string>(options, () => false);
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error("down");
    };
    await expect(cache.lookup("k", failing)).rejects.toThrow("down");
    await expect(cache.lookup("k", failing)).rejects.toThrow("down");
    expect(calls).toBe(2);
    expect(cache.counters.errors).toBe(2);
  });

  it("stays bounded: the least recently used entry goes first", async () => {
    const cache = new CachedLookup<string>(options, () => false);
    for (const key of ["a", "b", "c", "d"]) await cache.lookup(key, async () => key);
    expect(cache.size).toBe(3);
    let fetched = false;
    await cache.lookup("a", async () => {
      fetched = true;
      return "a";
    });
    expect(fetched).toBe(true);
  });

  it("aborts the source's signal some time after the deadline", async () => {
    const cache = new CachedLookup<string>({ ...options, timeoutMs: 50 }, () => false);
    let aborted = false;
    const hanging = (signal: AbortSignal) =>
      new Promise<string>((_, reject) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(new Error("aborted"));
        });
      });
    await expect(cache.lookup("k", hanging)).rejects.toBeInstanceOf(LookupTimeout);
    await new Promise((r) => setTimeout(r, 120));
    expect(aborted).toBe(true);
  });
});
