/**
 * Every lookup goes through here: a bounded LRU cache with positive and negative TTLs,
 * in-flight de-duplication (concurrent identical lookups make one request), a per-lookup
 * timeout, and counters for the metrics.
 */
import { LRUCache } from "lru-cache";
import { withDeadline } from "../common/deadline.js";

export interface LookupCounters {
  lookups: number;
  hits: number;
  misses: number;
  coalesced: number;
  errors: number;
  timeouts: number;
}

export interface CacheOptions {
  /** TTL of a positive answer, ms; 0 = not cached. */
  positiveTtlMs: number;
  /** TTL of a negative answer ("not found"), ms; 0 = not cached. */
  negativeTtlMs: number;
  /** Deadline of one lookup at the source, ms. */
  timeoutMs: number;
  /** Entries kept at most. */
  maxEntries: number;
}

export class LookupTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/**
 * What a source's synchronous answer returns when it cannot answer without waiting (a file to
 * read, a server to ask): the lookup then takes the asynchronous path with its deadline.
 */
export const LATER: unique symbol = Symbol("answer later");
export type Now<V> = V | typeof LATER;

/** Wraps value (never undefined) so a cached "absent" can be told from "not cached". */
interface Entry<V> {
  value: V;
}

/** A source's lookups bound to it (plain functions, called without `this`): what a cache asks when its caller passes none. */
export interface BoundSource<V> {
  fetch(key: string, signal: AbortSignal): Promise<V>;
  now?(key: string): Now<V>;
}

/** A source's synchronous answer, or LATER when it has none or fails (the asynchronous path reports why). */
function answerNow<V>(now: (key: string) => Now<V>, key: string): Now<V> {
  try {
    return now(key);
  } catch {
    return LATER;
  }
}

export function emptyCounters(): LookupCounters {
  return { lookups: 0, hits: 0, misses: 0, coalesced: 0, errors: 0, timeouts: 0 };
}

export class CachedLookup<V> {
  readonly counters: LookupCounters = emptyCounters();
  private readonly cache: LRUCache<string, Entry<V>> | undefined;
  private readonly inFlight = new Map<string, Promise<V>>();
  /** Called with each latency measured at the source (ms) and the outcome. */
  onMeasured?: (ms: number, outcome: "ok" | "error" | "timeout") => void;

  constructor(
    private readonly options: CacheOptions,
    /** Whether an answer counts as negative (for the negative TTL). */
    private readonly isNegative: (value: V) => boolean,
    /** The source's lookups, when every lookup of this cache asks the same (the registry's). */
    private readonly source?: BoundSource<V>,
  ) {
    if (options.positiveTtlMs > 0 || options.negativeTtlMs > 0) {
      this.cache = new LRUCache<string, Entry<V>>({
        max: Math.max(1, options.maxEntries),
        ttlAutopurge: false,
      });
    }
  }

  get size(): number {
    return this.cache?.size ?? 0;
  }

  clear(): void {
    this.cache?.clear();
  }

  /**
   * Answers from the cache, joins an identical lookup in flight, or asks the source with a
   * deadline. A lookup that finishes after its deadline is still cached for the next one.
   *
   * `now`, when the source has one, is tried first on a miss: an answer it can give without
   * waiting (a parsed file still valid after one lstat) needs no deadline, timer, abort signal or
   * promise — the whole cost of a milter event that a lookup answers from memory. It counts and
   * is measured as a miss answered by the source, as the asynchronous path would be; if it throws,
   * the asynchronous path runs and reports the failure.
   */
  lookup(
    key: string,
    fetch?: (signal: AbortSignal) => Promise<V>,
    now: ((key: string) => Now<V>) | undefined = this.source?.now,
  ): V | Promise<V> {
    this.counters.lookups++;
    const cached = this.cache?.get(key);
    if (cached !== undefined) {
      this.counters.hits++;
      return cached.value;
    }
    const pending = this.inFlight.get(key);
    if (pending !== undefined) {
      this.counters.coalesced++;
      return pending;
    }
    this.counters.misses++;
    if (now !== undefined) {
      const started = performance.now();
      const answer = answerNow(now, key);
      if (answer !== LATER) {
        this.remember(key, answer);
        this.measure(performance.now() - started, "ok");
        return answer;
      }
    }
    const request = this.fetchWithDeadline(
      key,
      fetch ?? ((signal) => (this.source as BoundSource<V>).fetch(key, signal)),
    );
    this.inFlight.set(key, request);
    const forget = () => {
      if (this.inFlight.get(key) === request) this.inFlight.delete(key);
    };
    request.then(forget, forget);
    return request;
  }

  private fetchWithDeadline(key: string, fetch: (signal: AbortSignal) => Promise<V>): Promise<V> {
    const started = performance.now();
    const timeoutMs = this.options.timeoutMs;
    let late = false;
    return withDeadline(
      (signal) =>
        fetch(signal).then((value) => {
          this.remember(key, value);
          return value;
        }),
      {
        ms: timeoutMs,
        onTimeout: () => {
          late = true;
          this.counters.timeouts++;
          this.counters.errors++;
          this.measure(performance.now() - started, "timeout");
          throw new LookupTimeout(timeoutMs);
        },
        // Let a slow source finish and fill the cache, but tell it to give up after a grace period.
        abortGraceMs: timeoutMs,
      },
    ).then(
      (value) => {
        this.measure(performance.now() - started, "ok");
        return value;
      },
      (error: unknown) => {
        if (!late) {
          this.counters.errors++;
          this.measure(performance.now() - started, "error");
        }
        throw error;
      },
    );
  }

  private remember(key: string, value: V): void {
    if (this.cache === undefined) return;
    const ttl = this.isNegative(value) ? this.options.negativeTtlMs : this.options.positiveTtlMs;
    if (ttl > 0) this.cache.set(key, { value }, { ttl });
  }

  // Latencies go to whoever observes them (the metrics' histogram); none are kept here.
  private measure(ms: number, outcome: "ok" | "error" | "timeout"): void {
    this.onMeasured?.(ms, outcome);
  }
}
