/**
 * PLACEHOLDER: the Redis store is written on another branch (h10-redis), whose file replaces this
 * one at merge. Until then `state: redis` validates but cannot be opened.
 */
import { StateError, type StateStore } from "../../runtime/state.js";

/** What the Redis store reads of `state:` (config/types.ts RedisStateConfig has these fields). */
export interface RedisStateConfig {
  urls: string[];
  sentinel?: string;
  cluster?: boolean;
  keyPrefix: string;
  timeoutMs: number;
}

export function createRedisStore(
  _config: RedisStateConfig,
  _logger: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void },
): StateStore {
  throw new StateError("redis state is not built in this branch");
}
