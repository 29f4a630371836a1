/**
 * `state: memory`: the counts behind rate() and greylist() kept in this process (lost on restart,
 * not shared with another filterctl; `state: redis` shares them). Answers synchronously.
 *
 * Memory is bounded twice: every key has a time to live (a rate key until its last event leaves
 * the window, a greylist triplet until its retry window or its pass ends) and expired keys are
 * dropped, when read and by a sweep at most once a minute; and at most `maxKeys` keys are kept
 * (MEMORY_MAX_KEYS by default), the least recently used evicted first (lru-cache). An evicted rate
 * key starts counting again from zero; an evicted greylist triplet is greylisted again.
 *
 * Sliding windows: each rate key keeps the counts of sub-buckets of WINDOW/60 and answers the sum
 * of the current bucket and the 60 before it. That span covers the whole window and at most one
 * bucket more, so the answer is never below the true count of the last WINDOW: a rule refusing
 * above 100 per hour lets at most 100 through in any hour (it may refuse up to a sixtieth of the
 * window early). An exact log of timestamps would need memory per event (500 per key for a limit
 * of 500/h); the buckets need at most 61 counters per key, whatever the limit.
 */
import { LRUCache } from "lru-cache";
import {
  type GreylistSettings,
  type StateCallOptions,
  StateError,
  type StateStore,
} from "../../runtime/state.js";

/** Keys kept at most (rate keys and greylist triplets together). */
export const MEMORY_MAX_KEYS = 250_000;
/** Sub-buckets per window. */
export const RATE_BUCKETS = 60;
/** Expired keys nobody reads are swept this often (at most; on a call). */
const SWEEP_EVERY_MS = 60_000;

export interface MemoryStoreOptions {
  /** The clock, in ms (tests inject one); default Date.now. */
  now?: () => number;
  maxKeys?: number;
}

/** Counts per bucket, oldest first: [bucket, count, bucket, count, ...]. */
interface RateEntry {
  buckets: number[];
}

interface GreylistEntry {
  /** When the triplet was first seen (or seen again after its retry window). */
  first: number;
  /** Until when it passes; 0 while it has not passed. */
  passedUntil: number;
}

type Entry = RateEntry | GreylistEntry;

class MemoryStore implements StateStore {
  readonly kind = "memory" as const;
  /** Made on the first call: see `cache`. */
  private made: LRUCache<string, Entry> | undefined;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private lastSweep: number;
  private closed = false;

  constructor(options: MemoryStoreOptions) {
    this.now = options.now ?? Date.now;
    this.maxKeys = options.maxKeys ?? MEMORY_MAX_KEYS;
    this.lastSweep = this.now();
  }

  /**
   * lru-cache allocates its tables for `max` keys up front (7 MB for MEMORY_MAX_KEYS), and
   * serve opens a store for every rules file, whether any rule calls rate() or greylist(): made
   * on the first call, a file without them never pays for it.
   */
  private get cache(): LRUCache<string, Entry> {
    this.made ??= new LRUCache<string, Entry>({
      max: this.maxKeys,
      // The injected clock; resolution 0: no timer caches the time (the fake clock must be read).
      perf: { now: this.now },
      ttlResolution: 0,
      // No default ttl: each set gives its own (a key lives as long as what it holds matters).
    });
    return this.made;
  }

  rate(key: string, windowMs: number, options: StateCallOptions): number {
    const now = this.begin();
    const width = windowMs / RATE_BUCKETS;
    const bucket = Math.floor(now / width);
    const id = `rate:${windowMs}:${key}`;
    const entry = this.cache.get(id) as RateEntry | undefined;
    const buckets = entry?.buckets ?? [];
    let drop = 0;
    while (drop < buckets.length && (buckets[drop] as number) < bucket - RATE_BUCKETS) drop += 2;
    let count = 0;
    for (let i = drop + 1; i < buckets.length; i += 2) count += buckets[i] as number;
    if (!options.record) return count + 1;
    if (drop > 0) buckets.splice(0, drop);
    if (buckets.length > 0 && buckets[buckets.length - 2] === bucket) {
      buckets[buckets.length - 1] = (buckets[buckets.length - 1] as number) + 1;
    } else buckets.push(bucket, 1);
    // Until this bucket leaves the span counted.
    const ttl = Math.max(1, Math.ceil((bucket + RATE_BUCKETS + 1) * width - now));
    this.cache.set(id, entry ?? { buckets }, { ttl, start: now });
    return count + 1;
  }

  greylist(key: string, settings: GreylistSettings, options: StateCallOptions): boolean {
    const now = this.begin();
    const id = `greylist:${key}`;
    const entry = this.cache.get(id) as GreylistEntry | undefined;
    const passing = entry !== undefined && entry.passedUntil > now;
    const age = entry === undefined || entry.passedUntil !== 0 ? undefined : now - entry.first;
    if (passing || (age !== undefined && age >= settings.delayMs && age <= settings.retryWindowMs)) {
      // A pass (again): it keeps passing pass_ttl from now.
      if (options.record) {
        const passed: GreylistEntry = { first: entry?.first ?? now, passedUntil: now + settings.passTtlMs };
        this.cache.set(id, passed, { ttl: settings.passTtlMs, start: now });
      }
      return false;
    }
    if (age !== undefined && age < settings.delayMs) return true;
    // Never seen, its pass over, or back after its retry window: seen (again) now.
    if (options.record) {
      this.cache.set(id, { first: now, passedUntil: 0 }, { ttl: settings.retryWindowMs, start: now });
    }
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.made?.clear();
  }

  /** Keys kept now (tests). */
  get size(): number {
    return this.made?.size ?? 0;
  }

  /** The time of this call; sweeps expired keys once a minute. */
  private begin(): number {
    if (this.closed) throw new StateError("the memory state is closed");
    const now = this.now();
    if (now - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = now;
      this.made?.purgeStale();
    }
    return now;
  }
}

export type { MemoryStore };

/** Opens an empty memory store. */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new MemoryStore(options);
}
