/**
 * `state: redis`: rate() and greylist() counted on a Redis 6+ / Valkey server that several
 * filterctl processes share. Each call is one EVALSHA of a Lua script (redis-scripts.ts), atomic
 * on the server and timed by the server's clock.
 *
 * ioredis rather than node-redis: Sentinel and Cluster are built in with one API, `defineCommand`
 * runs scripts by EVALSHA and falls back to EVAL when the server does not know the script yet
 * (after a restart or a failover), and its offline queue can be switched off, so a call while the
 * server is away fails at once instead of waiting to be replayed later (a replayed rate() would
 * count an event whose evaluation already gave up).
 *
 * Failure modes: every call has a deadline (`timeoutMs`) and rejects with a StateError when the
 * server is away, slow or answers an error; the client reconnects by itself (backoff capped at
 * RECONNECT_CAP_MS) and the next call after it is back succeeds. Going down and coming back are
 * logged once per transition; the client's own error events never reach the process.
 */
import { createRequire } from "node:module";
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";

/**
 * ioredis is loaded when a Redis store is opened, not with the program: most configurations use
 * the memory store, and the client costs several MB of idle memory. It is CommonJS, so `require`
 * loads it synchronously and opening a store stays synchronous.
 */
function ioredis(): typeof import("ioredis") {
  return createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
}

import { withDeadline } from "../../common/deadline.js";
import {
  type GreylistSettings,
  type StateCallOptions,
  StateError,
  type StateStore,
} from "../../runtime/state.js";
import { GREYLIST, RATE_READ, RATE_RECORD } from "./redis-scripts.js";

/** The `state:` settings of `type: redis`, as the config builds them. */
export interface RedisStateConfig {
  /**
   * redis:// or rediss:// URLs: one server; with `sentinel`, the Sentinels; with `cluster`, some
   * nodes of the cluster. Credentials and the database number in a URL are the data server's.
   */
  urls: string[];
  /** The Sentinel master group name: `urls` are Sentinels. */
  sentinel?: string;
  /** `urls` are Redis Cluster nodes. */
  cluster?: boolean;
  /** Put before every key ("filterctl:"): keys are PREFIX + "rate:" / "greylist:" + the rule's key. */
  keyPrefix: string;
  /** Each call's deadline, in milliseconds. */
  timeoutMs: number;
}

export interface StateLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Knobs tests turn; serve uses the defaults. */
export interface RedisStoreTuning {
  /** Events kept per rate key and window before the oldest are folded into one counter (see RATE_RECORD). */
  maxEventsPerKey?: number;
}

export const DEFAULT_MAX_EVENTS_PER_KEY = 10_000;
/** Reconnection waits grow 50, 100, 200 … ms up to this (plus up to 10% jitter). */
export const RECONNECT_CAP_MS = 2000;

/** How the client is built: one server, Sentinels, or a cluster. */
export type RedisClientPlan =
  | { mode: "standalone"; options: RedisOptions }
  | { mode: "sentinel"; options: RedisOptions }
  | { mode: "cluster"; nodes: { host: string; port: number }[]; options: ClusterOptions };

export function reconnectDelay(attempt: number): number {
  const base = Math.min(RECONNECT_CAP_MS, 50 * 2 ** Math.min(Math.max(attempt - 1, 0), 10));
  return Math.round(base * (1 + Math.random() * 0.1));
}

interface ParsedUrl {
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
  db?: number;
}

function parseUrl(text: string): ParsedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`redis state: not a URL: ${text}`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new Error(`redis state: ${text} is not a redis:// or rediss:// URL`);
  const parsed: ParsedUrl = {
    // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
    host: url.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1",
    port: url.port === "" ? 6379 : Number(url.port),
    tls: url.protocol === "rediss:",
  };
  if (url.username !== "") parsed.username = decodeURIComponent(url.username);
  if (url.password !== "") parsed.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, "");
  if (db !== "") {
    if (!/^\d+$/.test(db)) throw new Error(`redis state: ${text}: the path must be a database number`);
    parsed.db = Number(db);
  }
  return parsed;
}

/** What every connection shares: fail fast while away, never replay a command, RESP2. */
function commonOptions(config: RedisStateConfig, first: ParsedUrl): RedisOptions {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    // A command lost with its connection is not sent again: its evaluation has given up on it.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, config.timeoutMs * 5),
    retryStrategy: reconnectDelay,
    // RESP2: what every Redis-compatible server speaks, one round trip less at connect (no HELLO).
    protocol: 2,
    maintNotifications: "disabled",
    connectionName: "filterctl",
  };
  if (first.username !== undefined) options.username = first.username;
  if (first.password !== undefined) options.password = first.password;
  if (first.tls) options.tls = {};
  return options;
}

/** Maps the `state:` settings to ioredis options (exported for tests: no connection is made). */
export function redisClientPlan(config: RedisStateConfig): RedisClientPlan {
  const parsed = config.urls.map(parseUrl);
  const first = parsed[0];
  if (first === undefined) throw new Error("redis state: no URL");
  if (config.sentinel !== undefined && config.cluster === true)
    throw new Error("redis state: sentinel and cluster exclude each other");
  const common = commonOptions(config, first);
  if (config.cluster === true) {
    const { db: _db, ...redisOptions } = common;
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelay,
      redisOptions: stripClusterManaged(redisOptions),
    };
    return { mode: "cluster", nodes: parsed.map(({ host, port }) => ({ host, port })), options };
  }
  if (config.sentinel !== undefined) {
    const options: RedisOptions = {
      ...common,
      name: config.sentinel,
      sentinels: parsed.map(({ host, port }) => ({ host, port })),
      sentinelRetryStrategy: reconnectDelay,
    };
    if (first.tls) options.enableTLSForSentinelMode = true;
    if (first.db !== undefined) options.db = first.db;
    return { mode: "sentinel", options };
  }
  if (parsed.length > 1)
    throw new Error("redis state: several URLs need `sentinel: NAME` or `cluster: true`");
  const options: RedisOptions = { ...common, host: first.host, port: first.port };
  if (first.db !== undefined) options.db = first.db;
  return { mode: "standalone", options };
}

/** Cluster sets these itself (per node) and refuses them under redisOptions. */
function stripClusterManaged(options: RedisOptions): ClusterOptions["redisOptions"] {
  const {
    retryStrategy: _r,
    enableOfflineQueue: _q,
    maintNotifications: _m,
    host: _h,
    port: _p,
    ...rest
  } = options;
  return rest;
}

/** The scripts as ioredis commands (defineCommand adds them at run time, so the types are ours). */
interface ScriptCommands {
  filterctlRateRecord(key: string, windowMs: number, cap: number, member: string): Promise<number>;
  filterctlRateRead(key: string, windowMs: number): Promise<number>;
  filterctlGreylist(
    key: string,
    delayMs: number,
    retryWindowMs: number,
    passTtlMs: number,
    record: 0 | 1,
  ): Promise<number>;
}

type Client = Redis | Cluster;

function openClient(plan: RedisClientPlan): Client {
  const { Cluster: ClusterClient, Redis: RedisClient } = ioredis();
  const client =
    plan.mode === "cluster" ? new ClusterClient(plan.nodes, plan.options) : new RedisClient(plan.options);
  client.defineCommand("filterctlRateRecord", { numberOfKeys: 1, lua: RATE_RECORD });
  client.defineCommand("filterctlRateRead", { numberOfKeys: 1, lua: RATE_READ });
  client.defineCommand("filterctlGreylist", { numberOfKeys: 1, lua: GREYLIST });
  return client;
}

/** Where the servers are, for logs: host:port, never credentials. */
function describe(config: RedisStateConfig): object {
  const where = config.urls.map((u) => {
    try {
      const url = new URL(u);
      return `${url.hostname}:${url.port || 6379}`;
    } catch {
      return "?";
    }
  });
  const mode = config.cluster ? "cluster" : config.sentinel !== undefined ? "sentinel" : "standalone";
  return { redis: where, mode, ...(config.sentinel !== undefined ? { sentinel: config.sentinel } : {}) };
}

interface Health {
  /** Settles when the first connection attempt has succeeded or failed. */
  firstOutcome: Promise<void>;
  stop(): void;
}

/**
 * Logs "down" once when the connection is lost or cannot be made, and "connected" once when it
 * is (back); the client's error events are swallowed here (they would otherwise be thrown).
 */
function watchHealth(client: Client, config: RedisStateConfig, logger: StateLogger): Health {
  let health: "starting" | "up" | "down" | "closed" = "starting";
  let settleFirst = () => {};
  const firstOutcome = new Promise<void>((resolve) => {
    settleFirst = resolve;
  });
  const where = describe(config);
  const down = (reason: string) => {
    settleFirst();
    if (health === "down" || health === "closed") return;
    health = "down";
    logger.warn({ ...where, reason }, "redis state is down: rate() and greylist() take state.on_error");
  };
  client.on("error", (error: Error) => down(error.message));
  client.on("close", () => down("connection closed"));
  client.on("ready", () => {
    settleFirst();
    if (health === "up" || health === "closed") return;
    const back = health === "down";
    health = "up";
    logger.info(where, back ? "redis state is back" : "redis state connected");
  });
  return {
    firstOutcome,
    stop: () => {
      health = "closed";
      settleFirst();
    },
  };
}

export function createRedisStore(
  config: RedisStateConfig,
  logger: StateLogger,
  tuning: RedisStoreTuning = {},
): StateStore {
  const client = openClient(redisClientPlan(config));
  const scripts = client as unknown as ScriptCommands;
  const health = watchHealth(client, config, logger);
  const cap = Math.max(1, tuning.maxEventsPerKey ?? DEFAULT_MAX_EVENTS_PER_KEY);
  // Members must be unique across hosts and calls: a random id per store, then a counter.
  // node:crypto when a Redis store opens, not for every serve (this module is loaded by all).
  const instance = process.getBuiltinModule("node:crypto").randomBytes(8).toString("hex");
  let sequence = 0;
  let closed = false;
  const keyOf = (kind: string, key: string) => `${config.keyPrefix}${kind}:${key}`;

  function call<T>(what: string, options: StateCallOptions, work: () => Promise<T>): Promise<T> {
    if (closed) return Promise.reject(new StateError("redis state: the store is closed"));
    // A call while the first connection is being made waits for it (within the deadline); after
    // that, a call while the server is away fails at once (no offline queue).
    const running = health.firstOutcome.then(work).catch((error: unknown) => {
      throw new StateError(`redis state: ${what} failed: ${messageOf(error)}`, { cause: error });
    });
    return withDeadline(running, {
      ms: config.timeoutMs,
      signal: options.signal,
      onTimeout: () => {
        throw new StateError(`redis state: no answer to ${what} within ${config.timeoutMs} ms`);
      },
    });
  }

  return {
    kind: "redis",
    rate(key, windowMs, options) {
      const redisKey = keyOf("rate", key);
      if (!options.record)
        return call("rate()", options, () => scripts.filterctlRateRead(redisKey, windowMs));
      sequence += 1;
      const member = `${instance}:${sequence.toString(36)}`;
      return call("rate()", options, () => scripts.filterctlRateRecord(redisKey, windowMs, cap, member));
    },
    async greylist(key, settings: GreylistSettings, options) {
      const { delayMs, retryWindowMs, passTtlMs } = settings;
      const record = options.record ? 1 : 0;
      const answer = await call("greylist()", options, () =>
        scripts.filterctlGreylist(keyOf("greylist", key), delayMs, retryWindowMs, passTtlMs, record),
      );
      return answer === 1;
    },
    async close() {
      if (closed) return;
      closed = true;
      health.stop();
      await closeClient(client);
    },
  };
}

/** QUIT when connected (bounded wait), else drop the connection and stop reconnecting. */
async function closeClient(client: Client): Promise<void> {
  if (client.status === "ready") {
    const quit = client.quit().then(
      () => true,
      () => false,
    );
    const quitted = await withDeadline(quit, { ms: 1000, onTimeout: () => false, unref: true });
    if (quitted) return;
  }
  client.disconnect();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
