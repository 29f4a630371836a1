/**
 * What rules may ask of data sources. The sources layer implements it (with caching, timeouts
 * and failure policy); the list source and tests implement it directly. A failed lookup throws
 * (or rejects with) a LookupError naming its source, and the rule applies that source's on_error.
 */

export type MaybePromise<T> = T | Promise<T>;

export interface QuotaStatus {
  /** Bytes used. */
  usage: number;
  /** Byte limit; 0 = none. */
  limit: number;
  /** Messages stored. */
  count: number;
  /** Message limit; 0 = none. */
  countLimit: number;
}

export interface DnsblAnswer {
  listed: boolean;
  /** The list's TXT record, when it gave one. */
  reason?: string;
  /** The first A record that counted as listed (the lowest, as `codes` are sorted). */
  code?: string;
  /**
   * Every A record that counted as listed (inside `codes` when the source has them), sorted,
   * each once: what `NAME[X]` and `{NAME.codes}` show. Absent when not listed.
   */
  codes?: readonly string[];
  /** Set when the list is switched off by its health check (its state): the answer is "not listed" without a query. */
  off?: string;
}

/**
 * What rate() and greylist() ask of the state (runtime/state.ts), bound by the engine to its store
 * with the `greylist:` settings and whether calls count (serve) or only look (dry-run). A store
 * that cannot answer throws (or rejects with) a StateError: the rule takes `state.on_error`.
 */
export interface StateLookups {
  rate(key: string, windowMs: number): MaybePromise<number>;
  greylist(key: string): MaybePromise<boolean>;
}

export interface Lookups {
  /** Is `key` in the table? (`table` is an LDAP source's table, undefined for list sources.) */
  has(source: string, table: string | undefined, key: string): MaybePromise<boolean>;
  /** The value the table holds for `key`, undefined when absent. */
  get(source: string, table: string | undefined, key: string): MaybePromise<string | undefined>;
  /** The mailbox's quota, undefined when there is no such mailbox (never over quota). */
  quota(source: string, address: string): MaybePromise<QuotaStatus | undefined>;
  /** Whether a DNSBL lists `key` (an IP or a domain); a list that is not healthy answers not listed. */
  dnsbl(source: string, key: string): MaybePromise<DnsblAnswer>;
  /** Static facts about a source, for reply texts. */
  zoneOf(source: string): string;
  /** The rate and greylist state; absent where none is open (a call then fails as the state would). */
  state?: StateLookups;
}

export class LookupError extends Error {
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(message);
  }
}

/** Would a message of `incomingBytes` be refused at delivery? (SPEC: quota semantics.) */
export function isOverQuota(status: QuotaStatus, incomingBytes: number): boolean {
  const incoming = incomingBytes > 0 ? incomingBytes : 1;
  if (status.limit > 0 && status.usage + incoming > status.limit) return true;
  if (status.countLimit > 0 && status.count + 1 > status.countLimit) return true;
  return false;
}

export function quotaPercent(status: QuotaStatus): number {
  const bytes = status.limit > 0 ? (status.usage / status.limit) * 100 : 0;
  const count = status.countLimit > 0 ? (status.count / status.countLimit) * 100 : 0;
  return Math.round(Math.max(bytes, count));
}
