import { describe, expect, it } from "vitest";
import type { SourceConfig } from "../../src/config/types.js";
import { LookupError } from "../../src/runtime/lookups.js";
import { SourceRegistry } from "../../src/sources/registry.js";
import type { DnsblHealth, DnsblSource, QuotaSource } from "../../src/sources/types.js";
import { configOf } from "../dsl/helpers.js";

const base = { onError: "tempfail" as const, offset: 0 };
const sources: SourceConfig[] = [
  {
    ...base,
    name: "backend",
    type: "http",
    kind: "quota",
    url: "http://127.0.0.1:1/",
    timeoutMs: 100,
    cacheMs: 1000,
    negativeCacheMs: 1000,
  },
  { ...base, name: "slow", type: "http", kind: "quota", url: "http://127.0.0.1:1/", timeoutMs: 50 },
  {
    ...base,
    onError: "continue",
    name: "bl",
    type: "dnsbl",
    kind: "dnsbl",
    zone: "bl.test",
    timeoutMs: 100,
    health: { intervalMs: 60_000, window: 50, maxListedRatio: 0.9, requirePositiveProbe: true },
  },
  {
    ...base,
    name: "allow",
    type: "list",
    kind: "table",
    items: ["192.0.2.0/24", "Example.ORG", "Alice@Example.org"],
    timeoutMs: 100,
  },
  {
    ...base,
    name: "exact",
    type: "list",
    kind: "table",
    items: ["Alice@Example.org"],
    timeoutMs: 100,
    localPart: "sensitive",
  },
];

function fakeDnsbl(state: DnsblHealth["state"], calls: string[]): DnsblSource {
  const health: DnsblHealth = { state, detail: "", since: 0 };
  return {
    kind: "dnsbl",
    zone: "bl.test",
    lookup: async (key) => {
      calls.push(key);
      return { listed: true, reason: "spam", code: "127.0.0.2", codes: ["127.0.0.2", "127.0.0.4"] };
    },
    health: () => health,
    probe: async () => health,
    start() {},
    close: async () => {},
  };
}

async function registry(dnsblState: DnsblHealth["state"] = "healthy") {
  const quotaCalls: string[] = [];
  const dnsblCalls: string[] = [];
  const quota = (delayMs: number): QuotaSource => ({
    kind: "quota",
    quota: (address) =>
      new Promise((resolve) => {
        quotaCalls.push(address);
        setTimeout(
          () =>
            resolve(address.startsWith("none") ? undefined : { usage: 1, limit: 2, count: 0, countLimit: 0 }),
          delayMs,
        );
      }),
    close: async () => {},
  });
  const r = await SourceRegistry.create(configOf([], sources), {
    factories: {
      http: (config) => quota(config.name === "slow" ? 500 : 1),
      dnsbl: () => fakeDnsbl(dnsblState, dnsblCalls),
    },
  });
  return { r, quotaCalls, dnsblCalls };
}

describe("SourceRegistry", () => {
  it("answers list sources from memory: CIDRs, domains and addresses case-insensitively", async () => {
    const { r } = await registry();
    expect(r.has("allow", undefined, "192.0.2.44")).toBe(true);
    expect(r.has("allow", undefined, "::ffff:192.0.2.44")).toBe(true);
    expect(r.has("allow", undefined, "example.org")).toBe(true);
    expect(r.has("allow", undefined, "EXAMPLE.org.")).toBe(true);
    expect(r.has("allow", undefined, "Alice@EXAMPLE.org")).toBe(true);
    expect(r.has("allow", undefined, "alice@example.org")).toBe(true);
    expect(r.has("allow", undefined, '"ALICE"@example.org')).toBe(true);
    expect(r.has("allow", undefined, "alice.x@example.org")).toBe(false);
    expect(r.get("allow", undefined, "192.0.2.1")).toBe("192.0.2.0/24");
    await r.close();
  });

  it("with local_part: sensitive a list keeps local parts exact, domains still fold", async () => {
    const { r } = await registry();
    expect(r.has("exact", undefined, "Alice@EXAMPLE.ORG")).toBe(true);
    expect(r.has("exact", undefined, '"Alice"@example.org')).toBe(true);
    expect(r.has("exact", undefined, "alice@example.org")).toBe(false);
    await r.close();
  });

  it("hands a source one spelling per address: case and quoting share a cache entry", async () => {
    const { r, quotaCalls } = await registry();
    await r.quota("backend", "Bob@Example.ORG");
    expect(r.quota("backend", '"bob"@example.org')).toEqual({ usage: 1, limit: 2, count: 0, countLimit: 0 });
    expect(r.quota("backend", "BOB@EXAMPLE.ORG.")).toEqual({ usage: 1, limit: 2, count: 0, countLimit: 0 });
    expect(quotaCalls).toEqual(["bob@example.org"]);
    await r.close();
  });

  it("caches quota answers per source with the configured TTL", async () => {
    const { r, quotaCalls } = await registry();
    expect(await r.quota("backend", "a@b")).toEqual({ usage: 1, limit: 2, count: 0, countLimit: 0 });
    expect(r.quota("backend", "a@b")).toEqual({ usage: 1, limit: 2, count: 0, countLimit: 0 });
    expect(await r.quota("backend", "none@b")).toBeUndefined();
    expect(quotaCalls).toEqual(["a@b", "none@b"]);
    expect(r.counters().get("backend")).toMatchObject({ lookups: 3, hits: 1, misses: 2 });
    await r.close();
  });

  it("turns a timeout into a LookupError naming the source", async () => {
    const { r } = await registry();
    const failure = await Promise.resolve(r.quota("slow", "a@b")).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LookupError);
    expect((failure as LookupError).source).toBe("slow");
    expect((failure as LookupError).message).toBe("timed out after 50 ms");
    await r.close();
  });

  it("answers 'not listed' without a query while a DNSBL is not healthy", async () => {
    const off = await registry("lists-everything");
    expect(off.r.dnsbl("bl", "192.0.2.1")).toEqual({ listed: false, off: "lists-everything" });
    expect(off.dnsblCalls).toEqual([]);
    await off.r.close();
    const on = await registry("healthy");
    const listed = { listed: true, reason: "spam", code: "127.0.0.2", codes: ["127.0.0.2", "127.0.0.4"] };
    expect(await on.r.dnsbl("bl", "192.0.2.1")).toEqual(listed);
    expect(on.dnsblCalls).toEqual(["192.0.2.1"]);
    // Cached as a whole: every A record, not only the first, comes back from the cache.
    expect(on.r.dnsbl("bl", "192.0.2.1")).toEqual(listed);
    expect(on.dnsblCalls).toEqual(["192.0.2.1"]);
    expect(on.r.zoneOf("bl")).toBe("bl.test");
    await on.r.close();
  });

  it("fails a lookup on an unknown source or an unbuilt type with a LookupError", async () => {
    // Read without the source types: nothing can open its sources.
    const r = await SourceRegistry.create({ ...configOf([], sources), sourceTypes: new Map() }, {});
    expect(() => r.quota("backend", "a@b")).toThrow(LookupError);
    expect(() => r.has("nope", undefined, "x")).toThrow("no source named 'nope'");
    await r.close();
  });
});

describe("reuse on reload", () => {
  it("keeps a DNSBL whose configuration is unchanged, and opens it anew when dns.servers change", async () => {
    let opened = 0;
    const factories = {
      dnsbl: () => {
        opened++;
        return fakeDnsbl("healthy", []);
      },
    };
    const bl = sources.filter((s) => s.kind === "dnsbl");
    const withServers = (servers?: string[]) => {
      const config = configOf([], bl);
      return { ...config, dns: { ...config.dns, servers } };
    };
    const first = await SourceRegistry.create(withServers(), { factories });
    const same = await SourceRegistry.create(withServers(), { factories, previous: first });
    expect(opened).toBe(1);
    expect(same.source("bl")).toBe(first.source("bl"));
    const moved = await SourceRegistry.create(withServers(["127.0.0.1:5353"]), { factories, previous: same });
    expect(opened).toBe(2);
    expect(moved.source("bl")).not.toBe(same.source("bl"));
    await moved.close();
    await same.close();
    await first.close();
  });
});
