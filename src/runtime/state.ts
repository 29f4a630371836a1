/**
 * State that outlives one evaluation: the counters behind rate() and the triplets behind
 * greylist(). Kept in the process (`state: memory`) or on a Redis / Valkey server that several
 * filterctl processes share (`state: redis`). The rule language reads it through this interface
 * only; the stores live in src/engine/state/.
 *
 * A store that cannot answer (Redis down, slower than `state.timeout`) rejects with a StateError;
 * the rule then takes `state.on_error`, as a rule whose source failed takes the source's on_error.
 */
import type { MaybePromise } from "./lookups.js";

/** The top-level `greylist:` settings (SPEC "Greylisting"). */
export interface GreylistSettings {
  /** A triplet first seen less than this ago is deferred (default 5m). */
  delayMs: number;
  /** A retry after the delay passes when it comes within this long of the first sight (default 48h). */
  retryWindowMs: number;
  /** A triplet that passed keeps passing this long after its last pass (default 35d). */
  passTtlMs: number;
}

/** Whether a call changes the state: serve counts; dry-run only looks. */
export interface StateCallOptions {
  /** false: answer as if the event were counted (or recorded), but change nothing. */
  record: boolean;
  /** Aborted when the evaluation gives up (the event deadline). */
  signal?: AbortSignal;
}

export interface StateStore {
  readonly kind: "memory" | "redis";
  /**
   * Counts one event under `key` and answers how many events the key had in the sliding window
   * of `windowMs` ending now, this one included. With `record: false` nothing is counted and the
   * answer is what it would have been (the events in the window, plus one).
   */
  rate(key: string, windowMs: number, options: StateCallOptions): MaybePromise<number>;
  /**
   * Whether the triplet `key` must be deferred now: never seen, first seen less than `delayMs`
   * ago, or seen longer than `retryWindowMs` ago without passing. Records the first sight and each
   * pass (which keeps it passing for `passTtlMs`), unless `record` is false.
   */
  greylist(key: string, settings: GreylistSettings, options: StateCallOptions): MaybePromise<boolean>;
  /** Stops using the server (or drops the memory). */
  close(): Promise<void>;
}

/** A store that could not answer: the rule takes `state.on_error`. */
export class StateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StateError";
  }
}
