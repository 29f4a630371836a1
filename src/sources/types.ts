/**
 * What each kind of data source offers, before caching and policy. The registry wraps every
 * source with a bounded cache, in-flight de-duplication, a per-lookup timeout (the AbortSignal)
 * and counters; sources only do the lookup, and throw (any Error) when it fails.
 */
import type { DnsblAnswer, QuotaStatus } from "../runtime/lookups.js";
import type { Now } from "./cache.js";

export interface SourceLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** What a source needs from its surroundings. */
export interface SourceContext {
  /** The rules file's path: relative file names in a source resolve against its folder. */
  configPath: string;
  /** `dns.servers` of the config ("127.0.0.1:5353"), undefined = the system resolver. */
  dnsServers?: readonly string[];
  logger: SourceLogger;
  /** Aborted when whoever opens the sources gives up (a reload past its deadline): stop, and throw. */
  signal?: AbortSignal;
  /** Opened for `filterctl quota-server`: a mailbox without a limit is reported with its real usage. */
  quotaService?: boolean;
}

/** A mailbox quota source (maildir, mbox, http). */
export interface QuotaSource {
  kind: "quota";
  /** undefined = no such mailbox (never over quota). */
  quota(address: string, signal: AbortSignal): Promise<QuotaStatus | undefined>;
  /** The same answer when it is at hand without waiting (no I/O but a stat), else LATER. */
  quotaNow?(address: string): Now<QuotaStatus | undefined>;
  close(): Promise<void>;
}

/** A key → value table (ldap tables, list). `table` names an LDAP source's table. */
export interface TableSource {
  kind: "table";
  has(table: string | undefined, key: string, signal: AbortSignal): Promise<boolean>;
  get(table: string | undefined, key: string, signal: AbortSignal): Promise<string | undefined>;
  close(): Promise<void>;
}

export type DnsblState = "unknown" | "healthy" | "lists-everything" | "dead" | "refused";

export interface DnsblHealth {
  state: DnsblState;
  /** A sentence for the postmaster: what was seen, and what to do. */
  detail: string;
  /** When the state last changed (ms since epoch). */
  since: number;
}

/** A DNS block list with health checking. Lookups on a list that is not healthy answer "not listed". */
export interface DnsblSource {
  kind: "dnsbl";
  zone: string;
  lookup(key: string, signal: AbortSignal): Promise<DnsblAnswer>;
  health(): DnsblHealth;
  /** Runs one probe round now and answers the resulting health. */
  probe(): Promise<DnsblHealth>;
  /** Starts background probing (the first round at once). */
  start(): void;
  /** Called on each state change. */
  onStateChange?: (health: DnsblHealth, previous: DnsblHealth) => void;
  close(): Promise<void>;
}

/**
 * A table held in memory (list): it answers at once, so the registry neither caches nor times
 * its lookups, and it is built anew on every load (its file may be what changed).
 */
export interface MemoryTable {
  kind: "memory";
  /** The entry matching `key`, undefined when none does. */
  find(key: string): string | undefined;
  close(): Promise<void>;
}

export type Source = QuotaSource | TableSource | DnsblSource | MemoryTable;
