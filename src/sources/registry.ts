/**
 * Sources built from the configuration, answering the rules' lookups. Every lookup on a
 * network or file source goes through a CachedLookup (TTL cache, in-flight de-duplication,
 * deadline, counters); failures become LookupErrors naming the source, so the rule applies that
 * source's on_error. Memory tables (list sources) answer at once. Each source is opened by its
 * type's descriptor, from the list the configuration was loaded with (src/sources/catalog.ts).
 */
import { normalizeAddress } from "../common/address.js";
import type { Config, SourceConfig, SourceTypeSpec } from "../config/types.js";
import {
  type DnsblAnswer,
  LookupError,
  type Lookups,
  type MaybePromise,
  type QuotaStatus,
  type StateLookups,
} from "../runtime/lookups.js";
import { CachedLookup, emptyCounters, LATER, type LookupCounters, LookupTimeout, type Now } from "./cache.js";
import { descriptorOf, type SourceFactories, type SourceFactory } from "./descriptor.js";
import type {
  DnsblHealth,
  DnsblSource,
  QuotaSource,
  Source,
  SourceContext,
  SourceLogger,
  TableSource,
} from "./types.js";

export type { SourceFactories, SourceFactory } from "./descriptor.js";

/** TTLs of a source whose type is not known (a hand-made config): no caching. */
const NO_TTL: SourceTypeSpec["ttlMs"] = { positive: 0, negative: 0 };
const MAX_CACHE_ENTRIES = 100_000;

const silent: SourceLogger = { info() {}, warn() {}, error() {} };

interface Entry {
  config: SourceConfig;
  /** Cache TTLs when the source sets none: its type's. */
  ttlMs: SourceTypeSpec["ttlMs"];
  /** What identifies the source's configuration, positions left out: equal → reusable on reload. */
  fingerprint: string;
  source?: Source;
  /** One cache per table (LDAP) or one for the source (key ""). */
  caches: Map<string, CachedLookup<unknown>>;
  /** Lookups in a memory table (list sources: no cache); shared with the entry a reload takes over. */
  memoryLookups: { count: number };
  /** Handed over to a newer registry by a reload: not closed with this one. */
  transferred?: boolean;
  /**
   * The previous registry's entry this one reuses. It stays the previous registry's until
   * takeOver(): a reload given up at its deadline must leave the served sources alone.
   */
  takenFrom?: Entry;
}

export interface RegistryOptions {
  /** Replace the descriptors' factories for these types (tests' fake sources). */
  factories?: SourceFactories;
  logger?: SourceLogger;
  /** The sources answer `filterctl quota-server` (SourceContext.quotaService). */
  quotaService?: boolean;
  /** The registry being replaced by a reload: sources whose configuration did not change are taken over, caches and DNSBL health included. */
  previous?: SourceRegistry;
  /** Aborted when the reload building this registry is given up: building stops, what was opened is closed. */
  signal?: AbortSignal;
  /** Each lookup that reached a source, with its time. */
  onLookup?: (source: string, ms: number, outcome: "ok" | "error" | "timeout") => void;
  /** Each DNSBL health change (and the initial state of new DNSBL sources). */
  onDnsblState?: (source: string, zone: string, health: DnsblHealth) => void;
}

/** A source's configuration without file positions, as a comparable string. */
export function fingerprint(config: SourceConfig): string {
  return JSON.stringify(config, (key, value: unknown) => {
    if (key === "offset") return undefined;
    if (value instanceof Map) return Object.fromEntries(value);
    if (value !== null && typeof value === "object" && "offsetAt" in value && "text" in value)
      return (value as { text: string }).text;
    return value;
  });
}

/** How one kind of lookup reaches a source: declared once, bound to a source when its cache is made. */
interface LookupKind<V> {
  isNegative(value: V): boolean;
  fetch(
    source: Source,
    key: string,
    signal: AbortSignal,
    name: string,
    table: string | undefined,
  ): Promise<V>;
  /** The answer without waiting, when the source has one (else the cache takes the asynchronous path). */
  now?(source: Source, key: string): Now<V>;
}

const TABLE_HAS: LookupKind<boolean> = {
  isNegative: (found) => !found,
  fetch(source, key, signal, name, table) {
    if (source.kind !== "table") throw new Error(`${name} is not a table`);
    return (source as TableSource).has(table, key, signal);
  },
};

const TABLE_GET: LookupKind<string | undefined> = {
  isNegative: (value) => value === undefined,
  fetch(source, key, signal, name, table) {
    if (source.kind !== "table") throw new Error(`${name} is not a table`);
    return (source as TableSource).get(table, key, signal);
  },
};

const QUOTA: LookupKind<QuotaStatus | undefined> = {
  isNegative: (status) => status === undefined,
  fetch(source, key, signal, name) {
    if (source.kind !== "quota") throw new Error(`${name} has no quota`);
    return (source as QuotaSource).quota(key, signal);
  },
  now: (source, key) =>
    source.kind === "quota" && source.quotaNow !== undefined ? source.quotaNow(key) : LATER,
};

const DNSBL: LookupKind<DnsblAnswer> = {
  isNegative: (answer) => !answer.listed,
  fetch(source, key, signal, name) {
    if (source.kind !== "dnsbl") throw new Error(`${name} is not a DNSBL`);
    return (source as DnsblSource).lookup(key, signal);
  },
};

export class SourceRegistry implements Lookups {
  private constructor(private readonly entries: ReadonlyMap<string, Entry>) {}

  private onLookup: RegistryOptions["onLookup"];

  /** rate() and greylist(): the engine binds its state store here (the sources know nothing of it). */
  state?: StateLookups;

  static async create(config: Config, options: RegistryOptions = {}): Promise<SourceRegistry> {
    const ctx: SourceContext = { configPath: config.file.path, logger: options.logger ?? silent };
    if (config.dns.servers !== undefined) ctx.dnsServers = config.dns.servers;
    if (options.signal !== undefined) ctx.signal = options.signal;
    if (options.quotaService === true) ctx.quotaService = true;
    const entries = new Map<string, Entry>();
    const fresh: Entry[] = [];
    try {
      for (const source of config.sources.values()) {
        options.signal?.throwIfAborted();
        const ttlMs = config.sourceTypes.get(source.type)?.ttlMs ?? NO_TTL;
        // A DNSBL also depends on dns.servers: a reload that changes them opens it anew.
        const servers = source.kind === "dnsbl" ? JSON.stringify(config.dns.servers ?? null) : "";
        const entry: Entry = {
          config: source,
          ttlMs,
          fingerprint: fingerprint(source) + servers,
          caches: new Map(),
          memoryLookups: { count: 0 },
        };
        const reusable = SourceRegistry.reusable(options.previous, entry);
        if (reusable !== undefined) {
          entries.set(source.name, { ...reusable, config: source, transferred: false, takenFrom: reusable });
          continue;
        }
        entries.set(source.name, entry);
        const factory: SourceFactory | undefined =
          options.factories?.[source.type] ?? descriptorOf(config, source.type)?.create;
        if (factory !== undefined) {
          entry.source = await factory(source, ctx);
          fresh.push(entry);
        }
      }
    } catch (error) {
      await closeAll(fresh);
      throw error;
    }
    const registry = new SourceRegistry(entries);
    registry.onLookup = options.onLookup;
    SourceRegistry.startDnsbls(fresh, options.onDnsblState);
    return registry;
  }

  /**
   * The previous registry's open source for this entry, if its configuration is unchanged.
   * Memory tables are built anew every time: their file may be what changed.
   */
  private static reusable(previous: SourceRegistry | undefined, entry: Entry): Entry | undefined {
    const old = previous?.entries.get(entry.config.name);
    if (old === undefined || old.fingerprint !== entry.fingerprint || old.transferred) return undefined;
    return old.source !== undefined && old.source.kind !== "memory" ? old : undefined;
  }

  private static startDnsbls(fresh: readonly Entry[], report: RegistryOptions["onDnsblState"]): void {
    for (const entry of fresh) {
      const source = entry.source;
      if (source?.kind !== "dnsbl") continue;
      const { name } = entry.config;
      if (report !== undefined) {
        source.onStateChange = (health) => report(name, source.zone, health);
        report(name, source.zone, source.health());
      }
      source.start();
    }
  }

  /** The source object of a name (for health reports), if it was built. */
  source(name: string): Source | undefined {
    return this.entries.get(name)?.source;
  }

  configs(): SourceConfig[] {
    return [...this.entries.values()].map((e) => e.config);
  }

  /** Lookup counters per source (all tables of an LDAP source added up). */
  counters(): Map<string, LookupCounters> {
    const out = new Map<string, LookupCounters>();
    for (const [name, entry] of this.entries) {
      const total = emptyCounters();
      total.lookups = entry.memoryLookups.count;
      for (const cache of entry.caches.values()) {
        const c = cache.counters;
        total.lookups += c.lookups;
        total.hits += c.hits;
        total.misses += c.misses;
        total.coalesced += c.coalesced;
        total.errors += c.errors;
        total.timeouts += c.timeouts;
      }
      out.set(name, total);
    }
    return out;
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new LookupError(name, `no source named '${name}'`);
    return entry;
  }

  private cacheOf<V>(entry: Entry, cacheKey: string, kind: LookupKind<V>, table: string): CachedLookup<V> {
    let cache = entry.caches.get(cacheKey) as CachedLookup<V> | undefined;
    if (cache === undefined) {
      const defaults = entry.ttlMs;
      const name = entry.config.name;
      const tableName = table === "" ? undefined : table;
      // Bound once per source and table: a lookup allocates no closure to reach its source.
      const now = kind.now;
      cache = new CachedLookup<V>(
        {
          positiveTtlMs: entry.config.cacheMs ?? defaults.positive,
          negativeTtlMs: entry.config.negativeCacheMs ?? defaults.negative,
          timeoutMs: entry.config.timeoutMs,
          maxEntries: MAX_CACHE_ENTRIES,
        },
        kind.isNegative,
        {
          fetch: (key, signal) => kind.fetch(entry.source as Source, key, signal, name, tableName),
          ...(now === undefined ? {} : { now: (key: string) => now(entry.source as Source, key) }),
        },
      );
      const observe = this.onLookup;
      if (observe !== undefined) cache.onMeasured = (ms, outcome) => observe(name, ms, outcome);
      entry.caches.set(cacheKey, cache as CachedLookup<unknown>);
    }
    return cache;
  }

  /**
   * A key with an `@` is an address: one spelling per mailbox (`"Bob"@Example.ORG` is
   * `bob@example.org` unless `local_part: sensitive`), so the cache and the placeholders see one
   * key whatever case or quoting the client used.
   */
  private static keyOf(entry: Entry, key: string): string {
    return key.includes("@") ? normalizeAddress(key, entry.config.localPart) : key;
  }

  /** Runs a lookup through the source's cache, turning every failure into a LookupError. */
  private cached<V>(
    name: string,
    table: string,
    key: string,
    kind: LookupKind<V>,
    cacheKey = table,
  ): MaybePromise<V> {
    const entry = this.entry(name);
    if (entry.source === undefined)
      throw new LookupError(name, `lookups on ${entry.config.type} sources are not available`);
    const cache = this.cacheOf(entry, cacheKey, kind, table);
    const result = cache.lookup(SourceRegistry.keyOf(entry, key));
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      if (error instanceof LookupTimeout)
        throw new LookupError(name, `timed out after ${error.timeoutMs} ms`);
      throw new LookupError(name, error instanceof Error ? error.message : String(error));
    });
  }

  has(name: string, table: string | undefined, key: string): MaybePromise<boolean> {
    const entry = this.entry(name);
    if (entry.source?.kind === "memory") {
      entry.memoryLookups.count++;
      return entry.source.find(key) !== undefined;
    }
    return this.cached(name, table ?? "", key, TABLE_HAS);
  }

  get(name: string, table: string | undefined, key: string): MaybePromise<string | undefined> {
    const entry = this.entry(name);
    if (entry.source?.kind === "memory") {
      entry.memoryLookups.count++;
      return entry.source.find(key);
    }
    return this.cached(name, table ?? "", key, TABLE_GET, `${table ?? ""}[]`);
  }

  quota(name: string, address: string): MaybePromise<QuotaStatus | undefined> {
    return this.cached(name, "", address, QUOTA);
  }

  dnsbl(name: string, key: string): MaybePromise<DnsblAnswer> {
    const entry = this.entry(name);
    const source = entry.source;
    // A list that is not healthy is off: it answers "not listed" without a query, and nothing is cached.
    if (source?.kind === "dnsbl") {
      const state = source.health().state;
      if (state !== "healthy") return { listed: false, off: state };
    }
    return this.cached(name, "", key, DNSBL);
  }

  /** Runs one probe round of every DNSBL now (dry-run does, so lists are not off for lack of a first round). */
  async probeDnsbls(): Promise<void> {
    await Promise.allSettled(
      [...this.entries.values()].map((e) => (e.source?.kind === "dnsbl" ? e.source.probe() : undefined)),
    );
  }

  zoneOf(name: string): string {
    const source = this.entries.get(name)?.source;
    return source?.kind === "dnsbl" ? source.zone : "";
  }

  /**
   * This registry replaces the one it was created from: the sources it reuses are no longer
   * closed with that one.
   */
  takeOver(): void {
    for (const entry of this.entries.values()) {
      if (entry.takenFrom !== undefined) entry.takenFrom.transferred = true;
      delete entry.takenFrom;
    }
  }

  /** Closes the sources this registry still owns (not those a reload took over). */
  async close(): Promise<void> {
    await closeAll([...this.entries.values()].filter((e) => !e.transferred));
  }

  /** Drops a registry that never replaced its previous one: closes only what it opened itself. */
  async discard(): Promise<void> {
    await closeAll([...this.entries.values()].filter((e) => !e.transferred && e.takenFrom === undefined));
  }
}

async function closeAll(entries: Iterable<Entry>): Promise<void> {
  await Promise.allSettled([...entries].map((e) => e.source?.close()));
}
