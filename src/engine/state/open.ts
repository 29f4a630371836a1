/**
 * Opening the state store `state:` names, keeping it across reloads that leave `state:` as it
 * was, and binding it for the rules (runtime/lookups.ts StateLookups): serve counts, dry-run only
 * looks. Every failed call is counted and becomes a StateError, whatever the store threw, so the
 * rule takes `state.on_error`.
 */
import type { GreylistConfig, StateConfig } from "../../config/types.js";
import type { MaybePromise, StateLookups } from "../../runtime/lookups.js";
import { type StateCallOptions, StateError, type StateStore } from "../../runtime/state.js";
import { createMemoryStore } from "./memory.js";
import { createRedisStore } from "./redis.js";

/** An open store and the settings it was opened with. */
export interface OpenState {
  config: StateConfig;
  store: StateStore;
}

export interface StateLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Whether two `state:` settings open the same store (a reload keeps it, and its counts). */
export function sameState(a: StateConfig, b: StateConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The store `config` names: `previous` when it has the same settings, else a new one (which may
 * throw). `now` is the memory store's clock (tests).
 */
export function openState(
  config: StateConfig,
  logger: StateLogger,
  previous?: OpenState,
  now?: () => number,
): OpenState {
  if (previous !== undefined && sameState(previous.config, config)) return previous;
  const store =
    config.type === "redis"
      ? createRedisStore(config, logger)
      : createMemoryStore(now === undefined ? {} : { now });
  return { config, store };
}

/** Closes a store; a store that fails to close is only logged (nothing else can use it). */
export async function closeState(state: OpenState, logger: StateLogger): Promise<void> {
  try {
    await state.store.close();
  } catch (error) {
    logger.warn({ err: (error as Error).message, state: state.config.type }, "closing the state failed");
  }
}

function asStateError(error: unknown): StateError {
  return error instanceof StateError
    ? error
    : new StateError(error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * The store as rules call it. `record: false` (dry-run) answers without counting; `failed` is told
 * of every call that fails (metrics), before the rule takes `state.on_error`.
 */
export function stateLookups(
  store: StateStore,
  greylist: GreylistConfig,
  options: { record: boolean; failed?: () => void },
): StateLookups {
  const call: StateCallOptions = { record: options.record };
  const failed = options.failed;
  const guarded = <T>(run: () => MaybePromise<T>): MaybePromise<T> => {
    try {
      const answer = run();
      if (!(answer instanceof Promise)) return answer;
      return answer.catch((error: unknown) => {
        failed?.();
        throw asStateError(error);
      });
    } catch (error) {
      failed?.();
      throw asStateError(error);
    }
  };
  return {
    rate: (key, windowMs) => guarded(() => store.rate(key, windowMs, call)),
    greylist: (key) => guarded(() => store.greylist(key, greylist, call)),
  };
}
