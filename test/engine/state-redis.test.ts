/**
 * The Redis store against a real, private redis-server (test/support/redis.ts): atomic counting
 * across two stores, the sliding window, TTLs, greylisting, record:false, odd keys, the per-key
 * bound; faults (killed, frozen, absent server) and coming back without a new store; and the
 * mapping of `state:` settings to ioredis options (no server needed).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisStore,
  RECONNECT_CAP_MS,
  type RedisStateConfig,
  type RedisStoreTuning,
  reconnectDelay,
  redisClientPlan,
} from "../../src/engine/state/redis.js";
import { type GreylistSettings, StateError, type StateStore } from "../../src/runtime/state.js";
import { RedisServer } from "../support/redis.js";
import { freePort } from "../support/slapd.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RECORD = { record: true };
const LOOK = { record: false };

interface LogEntry {
  level: "warn" | "info";
  obj: object;
  msg: string;
}

function recorder() {
  const entries: LogEntry[] = [];
  return {
    entries,
    warn: (obj: object, msg: string) => entries.push({ level: "warn", obj, msg }),
    info: (obj: object, msg: string) => entries.push({ level: "info", obj, msg }),
    messages: () => entries.map((e) => e.msg),
  };
}

let server: RedisServer;
let admin: Redis;
const stores: StateStore[] = [];
let prefixes = 0;

function open(
  overrides: Partial<RedisStateConfig> = {},
  logger = recorder(),
  tuning: RedisStoreTuning = {},
): StateStore {
  prefixes += 1;
  const config: RedisStateConfig = {
    urls: [server.url],
    keyPrefix: `t${prefixes}:`,
    timeoutMs: 1000,
    ...overrides,
  };
  const store = createRedisStore(config, logger, tuning);
  stores.push(store);
  return store;
}

/** Calls until one succeeds (the client connects in the background), at most `ms`. */
async function whenReady<T>(attempt: () => Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(25);
    }
  }
}

beforeAll(async () => {
  server = await RedisServer.start();
  admin = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await admin.connect();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  admin?.disconnect();
  await server?.destroy();
});

describe("rate() on Redis", () => {
  it("counts atomically across two stores hammering one key: N calls answer 1..N, each once", async () => {
    const config = { keyPrefix: "shared:" };
    const a = open(config);
    const b = open(config);
    await whenReady(async () => a.rate("warmup", 60_000, RECORD));
    await whenReady(async () => b.rate("warmup", 60_000, RECORD));
    const n = 600;
    const calls = Array.from({ length: n }, (_, i) =>
      (i % 2 === 0 ? a : b).rate("alice@example.org", 60_000, RECORD),
    );
    const counts = (await Promise.all(calls)).sort((x, y) => x - y);
    expect(counts).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(await admin.zcard("shared:rate:alice@example.org")).toBe(n);
  });

  it("slides: events older than the window stop counting", async () => {
    const store = open();
    await whenReady(async () => store.rate("warmup", 1000, RECORD));
    expect(await store.rate("k", 1000, RECORD)).toBe(1);
    expect(await store.rate("k", 1000, RECORD)).toBe(2);
    await sleep(500);
    expect(await store.rate("k", 1000, RECORD)).toBe(3);
    await sleep(650);
    // The first two are more than 1 s old now; the third is not.
    expect(await store.rate("k", 1000, RECORD)).toBe(2);
    expect(await store.rate("k", 1000, LOOK)).toBe(3);
  });

  it("is exact on the server's clock: each count is the events in the window ending at it", async () => {
    const store = open({ keyPrefix: "exact:" });
    await whenReady(async () => store.rate("warmup", 1000, RECORD));
    const windowUs = 300_000;
    // Every event's server time, read back from the set right after its call (calls are sequential).
    const scoreOf = new Map<string, number>();
    const events: { member: string; count: number }[] = [];
    const end = Date.now() + 1200;
    while (Date.now() < end) {
      const count = await store.rate("burst", 300, RECORD);
      const kept = await admin.zrange("exact:rate:burst", 0, -1, "WITHSCORES");
      const members: string[] = [];
      for (let i = 0; i < kept.length; i += 2) {
        members.push(kept[i] as string);
        if (!scoreOf.has(kept[i] as string)) scoreOf.set(kept[i] as string, Number(kept[i + 1]));
      }
      const newest = members.reduce((a, m) => ((scoreOf.get(m) ?? 0) > (scoreOf.get(a) ?? 0) ? m : a));
      expect(members).toHaveLength(count);
      events.push({ member: newest, count });
      await sleep(Math.random() * 12);
    }
    expect(events.length).toBeGreaterThan(30);
    const times = events.map((e) => scoreOf.get(e.member) as number);
    // Some events must have slid out, or this proves nothing about the window.
    expect((times.at(-1) ?? 0) - (times[0] ?? 0)).toBeGreaterThan(2 * windowUs);
    events.forEach((event, i) => {
      const now = times[i] as number;
      const inWindow = times.slice(0, i + 1).filter((t) => t > now - windowUs).length;
      expect(event.count).toBe(inWindow);
    });
    // Hence a limit of L lets at most L events through in any window.
    const limit = 5;
    const passed = times.filter((_, i) => (events[i]?.count ?? 0) <= limit);
    for (const t of passed)
      expect(passed.filter((u) => u >= t && u < t + windowUs).length).toBeLessThanOrEqual(limit);
  });

  it("gives each key a TTL of its window, and counts keys apart by prefix", async () => {
    const store = open({ keyPrefix: "ttl:" });
    const other = open({ keyPrefix: "ttl-other:" });
    await whenReady(async () => store.rate("k", 90_000, RECORD));
    const ttl = await admin.pttl("ttl:rate:k");
    expect(ttl).toBeGreaterThan(80_000);
    expect(ttl).toBeLessThanOrEqual(90_000);
    expect(await whenReady(async () => other.rate("k", 90_000, RECORD))).toBe(1);
    expect(await store.rate("k", 90_000, RECORD)).toBe(2);
  });

  it("record: false answers the count plus one and changes nothing", async () => {
    const store = open({ keyPrefix: "look:" });
    await whenReady(async () => store.rate("k", 60_000, RECORD));
    await store.rate("k", 60_000, RECORD);
    const before = await admin.zrange("look:rate:k", 0, -1, "WITHSCORES");
    const ttlBefore = await admin.pttl("look:rate:k");
    expect(await store.rate("k", 60_000, LOOK)).toBe(3);
    expect(await store.rate("k", 60_000, LOOK)).toBe(3);
    expect(await admin.zrange("look:rate:k", 0, -1, "WITHSCORES")).toEqual(before);
    expect(await admin.pttl("look:rate:k")).toBeLessThanOrEqual(ttlBefore);
    expect(await store.rate("never-seen", 60_000, LOOK)).toBe(1);
    expect(await admin.exists("look:rate:never-seen")).toBe(0);
  });

  it("bounds a key: past the cap the oldest fold into one counter, the count stays exact or high", async () => {
    const store = open({ keyPrefix: "cap:" }, recorder(), { maxEventsPerKey: 10 });
    await whenReady(async () => store.rate("warmup", 1000, RECORD));
    const counts: number[] = [];
    for (let i = 0; i < 25; i++) counts.push(await store.rate("hot", 800, RECORD));
    expect(counts).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(await admin.zcard("cap:rate:hot")).toBe(11);
    const [overflow] = await admin.zrange("cap:rate:hot", 0, 0);
    expect(overflow).toBe("!15");
    expect(await store.rate("hot", 800, LOOK)).toBe(26);
    await sleep(900);
    expect(await store.rate("hot", 800, RECORD)).toBe(1);
    expect(await admin.zcard("cap:rate:hot")).toBe(1);
  });

  it("keeps keys with any characters apart (spaces, colons, newlines, braces, unicode, empty)", async () => {
    const store = open({ keyPrefix: "odd:" });
    const keys = [
      "a b",
      "a:b",
      "a",
      "a\nb",
      "a\r\nb",
      "{a}b",
      "jörg@example.org",
      "日本",
      "",
      ":",
      "a\u0000b",
    ];
    await whenReady(async () => store.rate("warmup", 60_000, RECORD));
    for (const key of keys) expect(await store.rate(key, 60_000, RECORD)).toBe(1);
    for (const key of keys) expect(await store.rate(key, 60_000, RECORD)).toBe(2);
    for (const key of keys) expect(await admin.zcard(`odd:rate:${key}`)).toBe(2);
    for (const key of keys) expect(await store.greylist(key, LONG_GREYLIST, RECORD)).toBe(true);
    for (const key of keys) expect(await admin.exists(`odd:greylist:${key}`)).toBe(1);
  });
});

const LONG_GREYLIST: GreylistSettings = { delayMs: 60_000, retryWindowMs: 120_000, passTtlMs: 300_000 };

describe("greylist() on Redis", () => {
  const settings: GreylistSettings = { delayMs: 300, retryWindowMs: 5000, passTtlMs: 20_000 };

  it("defers, defers again before the delay, passes after it and keeps passing", async () => {
    const store = open({ keyPrefix: "grey:" });
    const triplet = "192.0.2.0/24 a@example.com b@example.org";
    expect(await whenReady(async () => store.greylist(triplet, settings, RECORD))).toBe(true);
    const key = `grey:greylist:${triplet}`;
    const firstSeen = await admin.hget(key, "first");
    const ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(4000);
    expect(ttl).toBeLessThanOrEqual(5000);
    await sleep(100);
    expect(await store.greylist(triplet, settings, RECORD)).toBe(true);
    // A retry before the delay does not restart it.
    expect(await admin.hget(key, "first")).toBe(firstSeen);
    await sleep(300);
    expect(await store.greylist(triplet, settings, RECORD)).toBe(false);
    expect(await admin.pttl(key)).toBeGreaterThan(19_000);
    expect(await store.greylist(triplet, settings, RECORD)).toBe(false);
    expect(await store.greylist("another triplet", settings, RECORD)).toBe(true);
  });

  it("starts over when the retry comes after the retry window", async () => {
    const store = open({ keyPrefix: "grey-late:" });
    const quick: GreylistSettings = { delayMs: 100, retryWindowMs: 300, passTtlMs: 20_000 };
    expect(await whenReady(async () => store.greylist("t", quick, RECORD))).toBe(true);
    await sleep(450);
    expect(await store.greylist("t", quick, RECORD)).toBe(true);
    await sleep(150);
    expect(await store.greylist("t", quick, RECORD)).toBe(false);
  });

  it("starts over when the first sight is older than a (shortened) retry window", async () => {
    const store = open({ keyPrefix: "grey-short:" });
    expect(await whenReady(async () => store.greylist("t", LONG_GREYLIST, RECORD))).toBe(true);
    await sleep(250);
    const shortened: GreylistSettings = { delayMs: 50, retryWindowMs: 200, passTtlMs: 20_000 };
    expect(await store.greylist("t", shortened, LOOK)).toBe(true);
    expect(await store.greylist("t", shortened, RECORD)).toBe(true);
    await sleep(100);
    expect(await store.greylist("t", shortened, RECORD)).toBe(false);
  });

  it("record: false answers without recording a sight or a pass", async () => {
    const store = open({ keyPrefix: "grey-look:" });
    expect(await whenReady(async () => store.greylist("t", settings, LOOK))).toBe(true);
    expect(await admin.exists("grey-look:greylist:t")).toBe(0);
    expect(await store.greylist("t", settings, RECORD)).toBe(true);
    const before = await admin.hgetall("grey-look:greylist:t");
    await sleep(350);
    expect(await store.greylist("t", settings, LOOK)).toBe(false);
    expect(await admin.hgetall("grey-look:greylist:t")).toEqual(before);
    expect(await admin.pttl("grey-look:greylist:t")).toBeLessThan(5000);
  });
});

describe("faults", () => {
  it("a killed server: calls reject with StateError within the timeout; restarted, the same store works again", async () => {
    const own = await RedisServer.start();
    const logger = recorder();
    const store = open({ urls: [own.url], timeoutMs: 200 }, logger);
    try {
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD))).toBe(1);
      const inFlight = Promise.allSettled(Array.from({ length: 50 }, () => store.rate("k", 60_000, RECORD)));
      await own.kill();
      const settled = await inFlight;
      for (const result of settled) {
        if (result.status === "rejected") expect(result.reason).toBeInstanceOf(StateError);
      }
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        await expect(store.rate("k", 60_000, RECORD)).rejects.toBeInstanceOf(StateError);
        await expect(store.greylist("t", LONG_GREYLIST, RECORD)).rejects.toBeInstanceOf(StateError);
        expect(Date.now() - started).toBeLessThan(2 * 200 + 100);
        await sleep(100);
      }
      expect(logger.entries.filter((e) => e.level === "warn")).toHaveLength(1);
      await own.launch();
      // Nothing persisted: the count starts over on the restarted server.
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD), RECONNECT_CAP_MS * 3)).toBe(1);
      expect(logger.messages()).toEqual([
        "redis state connected",
        "redis state is down: rate() and greylist() take state.on_error",
        "redis state is back",
      ]);
    } finally {
      await own.destroy();
    }
  });

  it("a frozen server: calls reject with StateError at the timeout", async () => {
    const own = await RedisServer.start();
    const store = open({ urls: [own.url], timeoutMs: 150 });
    try {
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD))).toBe(1);
      own.freeze();
      const started = Date.now();
      const error = await Promise.resolve(store.rate("k", 60_000, RECORD)).catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(error).toBeInstanceOf(StateError);
      expect((error as Error).message).toMatch(/no answer to rate\(\) within 150 ms/);
      expect(elapsed).toBeGreaterThanOrEqual(140);
      expect(elapsed).toBeLessThan(600);
      own.thaw();
      // The late answer to the timed-out call still counted it: Redis had it before the freeze.
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD))).toBe(3);
    } finally {
      own.thaw();
      await own.destroy();
    }
  });

  it("a call made while the first connection is being made waits for it", async () => {
    const store = open({ keyPrefix: "first:" });
    expect(await Promise.all([store.rate("k", 60_000, RECORD), store.rate("k", 60_000, RECORD)])).toEqual([
      1, 2,
    ]);
  });

  it("a server that is not there yet: calls fail fast; once it starts, the store uses it", async () => {
    const port = await freePort();
    const logger = recorder();
    const store = open({ urls: [`redis://127.0.0.1:${port}`], timeoutMs: 300 }, logger);
    const started = Date.now();
    await expect(store.rate("k", 60_000, RECORD)).rejects.toBeInstanceOf(StateError);
    expect(Date.now() - started).toBeLessThan(300);
    const own = await RedisServer.start({ port });
    try {
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD), RECONNECT_CAP_MS * 3)).toBe(1);
      expect(logger.messages()).toEqual([
        "redis state is down: rate() and greylist() take state.on_error",
        "redis state is back",
      ]);
    } finally {
      await own.destroy();
    }
  });

  it("rejects at once when the caller's signal is aborted, and with StateError after close()", async () => {
    const store = open();
    await whenReady(async () => store.rate("k", 60_000, RECORD));
    const controller = new AbortController();
    controller.abort(new Error("event deadline"));
    await expect(store.rate("k", 60_000, { record: true, signal: controller.signal })).rejects.toThrow(
      "event deadline",
    );
    await store.close();
    await store.close();
    await expect(store.rate("k", 60_000, RECORD)).rejects.toBeInstanceOf(StateError);
  });

  it("a Redis error (a key of another type) is a StateError", async () => {
    const store = open({ keyPrefix: "wrong:" });
    await admin.set("wrong:rate:k", "a string");
    const error = await whenReady(async () => {
      const e = await Promise.resolve(store.rate("k", 60_000, RECORD)).catch((x: unknown) => x);
      if (e instanceof StateError && /closed|connect|writeable/i.test(e.message)) throw e;
      return e;
    });
    expect(error).toBeInstanceOf(StateError);
    expect((error as Error).message).toMatch(/WRONGTYPE/);
  });
});

describe("Sentinel and Cluster, against real servers", () => {
  it("sentinel: NAME finds the master through a Sentinel and counts there", async () => {
    const sentinel = await RedisServer.start({ sentinelOf: { name: "filterctl-test", port: server.port } });
    try {
      const store = open({ urls: [sentinel.url], sentinel: "filterctl-test", keyPrefix: "via-sentinel:" });
      expect(await whenReady(async () => store.rate("k", 60_000, RECORD))).toBe(1);
      expect(await store.greylist("t", LONG_GREYLIST, RECORD)).toBe(true);
      expect(await admin.zcard("via-sentinel:rate:k")).toBe(1);
      await store.close();
    } finally {
      await sentinel.destroy();
    }
  });

  it("cluster: true counts on a (one-node) cluster, keys with braces included", async () => {
    const node = await RedisServer.start({ cluster: true });
    const nodeAdmin = new Redis({ port: node.port, host: "127.0.0.1" });
    try {
      await nodeAdmin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
      await whenReady(async () => {
        const info = String(await nodeAdmin.call("CLUSTER", "INFO"));
        if (!info.includes("cluster_state:ok")) throw new Error(info);
      });
      const store = open({ urls: [node.url], cluster: true, keyPrefix: "cl:" });
      expect(await whenReady(async () => store.rate("{a}b", 60_000, RECORD))).toBe(1);
      expect(await store.rate("{a}b", 60_000, RECORD)).toBe(2);
      expect(await store.greylist("t", LONG_GREYLIST, RECORD)).toBe(true);
      expect(await nodeAdmin.zcard("cl:rate:{a}b")).toBe(2);
      await store.close();
    } finally {
      nodeAdmin.disconnect();
      await node.destroy();
    }
  });
});

describe("state: settings → ioredis options", () => {
  const base = { keyPrefix: "filterctl:", timeoutMs: 200 };

  it("one server: host, port, credentials, database; fail fast, never replay", () => {
    const plan = redisClientPlan({ ...base, urls: ["redis://filter:s%40cret@redis.example:6380/2"] });
    expect(plan.mode).toBe("standalone");
    expect(plan.options).toMatchObject({
      host: "redis.example",
      port: 6380,
      username: "filter",
      password: "s@cret",
      db: 2,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
    });
    expect(plan.options).not.toHaveProperty("tls");
    const tls = redisClientPlan({ ...base, urls: ["rediss://[::1]"] });
    expect(tls.options).toMatchObject({ host: "::1", port: 6379, tls: {} });
  });

  it("Sentinel: the URLs are the Sentinels, the name the master group", () => {
    const plan = redisClientPlan({
      ...base,
      sentinel: "mymaster",
      urls: ["redis://:pw@10.0.0.1:26379/1", "redis://10.0.0.2:26379"],
    });
    expect(plan.mode).toBe("sentinel");
    expect(plan.options).toMatchObject({
      name: "mymaster",
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "10.0.0.2", port: 26379 },
      ],
      password: "pw",
      db: 1,
      enableOfflineQueue: false,
    });
  });

  it("Cluster: the URLs are seed nodes; per-node options under redisOptions", () => {
    const plan = redisClientPlan({
      ...base,
      cluster: true,
      urls: ["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7001"],
    });
    expect(plan.mode).toBe("cluster");
    if (plan.mode !== "cluster") return;
    expect(plan.nodes).toEqual([
      { host: "10.0.0.1", port: 7000 },
      { host: "10.0.0.2", port: 7001 },
    ]);
    expect(plan.options.enableOfflineQueue).toBe(false);
    expect(plan.options.redisOptions).toMatchObject({ password: "pw", autoResendUnfulfilledCommands: false });
    expect(plan.options.redisOptions).not.toHaveProperty("enableOfflineQueue");
  });

  it("refuses what cannot work", () => {
    expect(() => redisClientPlan({ ...base, urls: [] })).toThrow(/no URL/);
    expect(() => redisClientPlan({ ...base, urls: ["redis://a", "redis://b"] })).toThrow(/sentinel/);
    expect(() => redisClientPlan({ ...base, urls: ["http://a"] })).toThrow(/redis:\/\//);
    expect(() => redisClientPlan({ ...base, urls: ["redis://a/x"] })).toThrow(/database number/);
    expect(() => redisClientPlan({ ...base, urls: ["redis://a"], sentinel: "m", cluster: true })).toThrow(
      /exclude/,
    );
  });

  it("reconnects with a capped backoff", () => {
    expect(reconnectDelay(1)).toBeGreaterThanOrEqual(50);
    expect(reconnectDelay(1)).toBeLessThan(60);
    for (const attempt of [7, 20, 1000]) {
      expect(reconnectDelay(attempt)).toBeGreaterThanOrEqual(RECONNECT_CAP_MS);
      expect(reconnectDelay(attempt)).toBeLessThanOrEqual(RECONNECT_CAP_MS * 1.1);
    }
  });
});
